package dnssec

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// keyEntry is what the validator knows about one zone's keys (Unbound's
// key_entry): an authenticated DNSKEY RRset, or proof that the zone is
// insecure, or why neither could be had.
type keyEntry struct {
	zone    string
	status  Status
	keys    []*dns.DNSKEY // the authenticated DNSKEY RRset, when Secure
	err     error         // when not Secure
	reason  string        // short reason when not Secure, for the chain
	chain   []ZoneStep    // from the trust anchor down to this zone
	expires time.Time

	insecureZone string // the zone whose DS RRset proved insecurity
}

// zoneKeys returns the key entry for zone, from the cache or by building
// it once for all concurrent callers.
func (v *Validator) zoneKeys(ctx context.Context, w *work, zone string) *keyEntry {
	key := keysKey(zone)
	for attempt := 0; ; attempt++ {
		if val, _, ok := v.cached(key, w.renew); ok {
			return val.(*keyEntry)
		}
		ch := v.flight.DoChan(key, func() (any, error) {
			ke := v.fetchKeys(ctx, w, zone)
			v.store(key, ke, ke.status, ke.err, ke.expires.Sub(v.now()))
			return ke, nil
		})
		select {
		case res := <-ch:
			ke := res.Val.(*keyEntry)
			if res.Shared && attempt == 0 && ctx.Err() == nil && ctxFailure(ke.err) {
				continue // the caller that ran the flight gave up; try on our own context
			}
			return ke
		case <-ctx.Done():
			return v.failKeys(zone, nil, ctxIndeterminate(rrsetName(zone, dns.TypeDNSKEY), ctx.Err()))
		}
	}
}

func (v *Validator) failKeys(zone string, parent []ZoneStep, err error) *keyEntry {
	s := statusOf(err)
	ke := &keyEntry{zone: zone, status: s, err: err, reason: Reason(err), expires: v.now().Add(badTTL)}
	ke.chain = append(append([]ZoneStep(nil), parent...), ZoneStep{Zone: zone, Status: s, Reason: ke.reason})
	return ke
}

// fetchKeys authenticates zone's DNSKEY RRset (RFC 4035 §5.2): the DS
// RRset for the zone comes from the parent, itself authenticated by the
// parent's keys (recursively, up to the closest trust anchor), or the trust
// anchor stands in for it; a DNSKEY that matches a usable DS must sign the
// DNSKEY RRset, and then every key in that RRset is trusted.
func (v *Validator) fetchKeys(ctx context.Context, w *work, zone string) *keyEntry {
	if d := w.depth.Add(1); int(d) > v.limits.MaxChainDepth {
		w.depth.Add(-1)
		return v.failKeys(zone, nil, indeterminatef(rrsetName(zone, dns.TypeDNSKEY), ErrLimitExceeded, "chain of trust deeper than %d zones at %s", v.limits.MaxChainDepth, zone))
	}
	defer w.depth.Add(-1)
	now := v.now()
	set := rrsetName(zone, dns.TypeDNSKEY)
	step := ZoneStep{Zone: zone}
	expires := now.Add(maxTTL)
	var (
		parent     []ZoneStep
		ds         []*dns.DS
		anchorKeys []*dns.DNSKEY
	)
	var usable []*dns.DS
	var ede uint16
	if a := v.anchors[zone]; a != nil {
		step.Anchor = true
		usable, anchorKeys, ede = usableAnchor(a)
		if len(usable) == 0 && len(anchorKeys) == 0 {
			// The same rule as for a DS RRset from the parent (below), for
			// DS and DNSKEY anchors alike: no supported authentication
			// path, so the zone is Insecure (RFC 4035 §5.2, RFC 6840
			// §5.2; BIND does the same). The anchor is not dropped in
			// favour of one above it (as Unbound does): that would let the
			// parent's chain make Secure a zone the operator pinned to
			// other keys (RFC 6840 §5.10: the closest anchor decides).
			// New and ParseAnchors refuse such an anchor at configuration
			// time; this is the rule should one be reached anyway.
			err := &InsecureError{RRset: rrsetName(zone, dns.TypeDNSKEY), Zone: zone, EDE: ede,
				Reason: fmt.Sprintf("no trust anchor for %s has a supported %s (%s)", zone, unsupportedWhat(ede), anchorRecords(a))}
			ke := v.failKeys(zone, nil, err)
			ke.reason, ke.insecureZone, ke.expires = err.Reason, zone, expires
			return ke
		}
	} else {
		dr := v.lookup(ctx, w, zone, dns.TypeDS, false)
		parent = dr.Chain
		switch {
		case dr.Status == Insecure:
			ke := v.failKeys(zone, parent, dr.Err)
			ke.expires = now.Add(dr.TTL)
			ke.insecureZone = zone
			if ie, ok := dr.Err.(*InsecureError); ok {
				ke.insecureZone, ke.reason = ie.Zone, ie.Reason
			}
			return ke
		case dr.Status != Secure:
			return v.failKeys(zone, parent, dr.Err)
		case dr.alias != "":
			return v.failKeys(zone, parent, bogusf(rrsetName(zone, dns.TypeDS), dns.ExtendedErrorCodeDNSBogus, "CNAME at %s, which signs as a zone", zone))
		case len(dr.RRset) == 0:
			// A Secure denial of the DS RRset without the NS bit proves
			// that zone is no zone cut (or does not exist): whatever
			// claims it as signer is forged.
			return v.failKeys(zone, parent, bogusf(rrsetName(zone, dns.TypeDS), dns.ExtendedErrorCodeDNSBogus, "%s is provably not a zone cut (DS %s proven), yet it is named as signer", zone, dns.RcodeToString[dr.Rcode]))
		}
		for _, rr := range dr.RRset {
			ds = append(ds, rr.(*dns.DS))
		}
		expires = now.Add(dr.TTL)
		if usable, ede = usableDS(ds); len(usable) == 0 {
			// RFC 4035 §5.2, RFC 6840 §5.2: a DS RRset with no supported
			// algorithm and digest type makes the zone insecure.
			err := &InsecureError{RRset: rrsetName(zone, dns.TypeDS), Zone: zone, EDE: ede,
				Reason: fmt.Sprintf("no DS for %s has a supported %s (%s)", zone, unsupportedWhat(ede), anchorRecords(&anchorSet{ds: ds}))}
			ke := v.failKeys(zone, parent, err)
			ke.reason, ke.insecureZone, ke.expires = err.Reason, zone, expires
			return ke
		}
	}
	for _, d := range usable {
		step.DS = append(step.DS, dsString(d))
	}
	for _, k := range anchorKeys {
		step.DS = append(step.DS, fmt.Sprintf("%d/%d/DNSKEY", k.KeyTag(), k.Algorithm))
	}

	m, ierr := v.exchange(ctx, w, zone, dns.TypeDNSKEY)
	if ierr != nil {
		return v.failKeys(zone, parent, ierr)
	}
	kind, sec := classify(m, zone, dns.TypeDNSKEY)
	switch kind {
	case kindPositive:
	case kindFailure:
		return v.failKeys(zone, parent, indeterminatef(set, errNetwork, "resolver answered %s for %s", dns.RcodeToString[m.Rcode], set))
	default:
		return v.failKeys(zone, parent, bogusf(set, dns.ExtendedErrorCodeDNSKEYMissing, "no DNSKEY RRset at %s (%s)", zone, kind))
	}
	keys := make([]*dns.DNSKEY, 0, len(sec.rrset))
	for _, rr := range sec.rrset {
		keys = append(keys, rr.(*dns.DNSKEY))
	}

	// The secure entry points: DNSKEYs matching a usable DS or a DNSKEY
	// trust anchor. Colliding key tags are tried up to MaxKeysPerTag.
	var sep []*dns.DNSKEY
	for _, d := range usable {
		tried := 0
		for _, k := range keys {
			if k.KeyTag() != d.KeyTag || k.Algorithm != d.Algorithm || zoneKeyUsable(k) != "" {
				continue
			}
			if tried++; tried > v.limits.MaxKeysPerTag {
				break
			}
			if dsMatches(d, k) && !containsKey(sep, k) {
				sep = append(sep, k)
			}
		}
	}
	for _, a := range anchorKeys {
		for _, k := range keys {
			if keyMatches(a, k) && zoneKeyUsable(k) == "" && !containsKey(sep, k) {
				sep = append(sep, k)
			}
		}
	}
	if len(sep) == 0 {
		return v.failKeys(zone, parent, bogusf(set, dns.ExtendedErrorCodeDNSKEYMissing, "no DNSKEY in %s matches %s %s", zone, map[bool]string{true: "trust anchor", false: "DS"}[step.Anchor], strings.Join(step.DS, ", ")))
	}
	sig, key, err := v.verifyRRset(w, set, sec.rrset, sec.sigs, sep, zone, now)
	if err != nil {
		return v.failKeys(zone, parent, err)
	}
	step.Status = Secure
	step.KeyTags = []uint16{key.KeyTag()}
	return &keyEntry{
		zone:    zone,
		status:  Secure,
		keys:    keys,
		chain:   append(append([]ZoneStep(nil), parent...), step),
		expires: minTime(expires, now.Add(rrsetTTL(sec.rrset, sig, now))),
	}
}

// usableAnchor returns the records of a trust anchor this validator can
// use: the DS records usableDS keeps, and the DNSKEYs of a supported
// algorithm. When there are none it also returns the EDE saying why.
func usableAnchor(a *anchorSet) ([]*dns.DS, []*dns.DNSKEY, uint16) {
	ds, ede := usableDS(a.ds)
	var keys []*dns.DNSKEY
	for _, k := range a.keys {
		if algorithmSupported(k.Algorithm) {
			keys = append(keys, k)
		}
	}
	if len(ds) > 0 || len(keys) > 0 {
		return ds, keys, 0
	}
	return nil, nil, ede
}

// anchorRecords names the records of a ("DS 12345/13/2, DNSKEY 2345/5").
func anchorRecords(a *anchorSet) string {
	var names []string
	for _, d := range a.ds {
		names = append(names, "DS "+dsString(d))
	}
	for _, k := range a.keys {
		names = append(names, fmt.Sprintf("DNSKEY %d/%d", k.KeyTag(), k.Algorithm))
	}
	return strings.Join(names, ", ")
}

// unsupportedWhat names what an EDE from usableDS says is unsupported.
func unsupportedWhat(ede uint16) string {
	if ede == dns.ExtendedErrorCodeUnsupportedDSDigestType {
		return "digest type"
	}
	return "algorithm"
}

func containsKey(list []*dns.DNSKEY, k *dns.DNSKEY) bool {
	for _, x := range list {
		if x == k {
			return true
		}
	}
	return false
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
