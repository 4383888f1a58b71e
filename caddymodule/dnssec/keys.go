package dnssec

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
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
	keys    keySet     // the authenticated DNSKEY RRset, when Secure
	err     error      // when not Secure
	reason  string     // short reason when not Secure, for the chain
	chain   []ZoneStep // from the trust anchor down to this zone
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
	// Key tags and DS digest input are derived here, once for the RRset
	// and the life of its cache entry, not once per DS and RRSIG tried.
	keys := newKeySet(sec.rrset)

	// The secure entry points: DNSKEYs matching a usable DS or a DNSKEY
	// trust anchor. Colliding key tags are tried up to MaxKeysPerTag.
	var sep keySet
	for _, d := range usable {
		tried := 0
		for _, k := range keys {
			if k.tag != d.KeyTag || k.Algorithm != d.Algorithm || zoneKeyUsable(k.DNSKEY) != "" {
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
			if keyMatches(a, k.DNSKEY) && zoneKeyUsable(k.DNSKEY) == "" && !containsKey(sep, k) {
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
	step.KeyTags = []uint16{key.tag}
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

func containsKey(list keySet, k zoneKey) bool {
	for _, x := range list {
		if x.DNSKEY == k.DNSKEY {
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

// zoneKey is a DNSKEY of an RRset the validator holds, with what is derived
// from it to match RRSIGs and DS records computed once: the key tag
// (RFC 4034 Appendix B) and the DS digest input (RFC 4034 §5.1.4). miekg's
// KeyTag and ToDS re-encode the key into a fresh buffer at every call, and
// a cold chain asks for each key's tag once per DS and per RRSIG tried.
type zoneKey struct {
	*dns.DNSKEY
	// tag is the key tag, 0 when the key has no wire form: the value
	// KeyTag returns, which RRSIG.Verify recomputes and must agree with.
	tag uint16
	// dsInput is the canonical owner name followed by the DNSKEY RDATA
	// (flags, protocol, algorithm, public key), nil when the key has no
	// wire form: then no DS matches it, as ToDS returns nil.
	dsInput []byte
}

// keySet is a DNSKEY RRset as zoneKeys, in the order of the RRset.
type keySet []zoneKey

// newKeySet derives the zoneKeys of rrset, which holds DNSKEY records.
func newKeySet(rrset []dns.RR) keySet {
	ks := make(keySet, 0, len(rrset))
	for _, rr := range rrset {
		ks = append(ks, newZoneKey(rr.(*dns.DNSKEY)))
	}
	return ks
}

// newZoneKey computes k's key tag and DS digest input as miekg's KeyTag
// and ToDS do: the RDATA is packed into a DNS message buffer, so a public
// key that is no base64, or does not fit in dns.DefaultMsgSize with the
// four fixed octets, has no wire form (tag 0, no DS digest).
func newZoneKey(k *dns.DNSKEY) zoneKey {
	zk := zoneKey{DNSKEY: k}
	var owner [256]byte
	ownerLen, err := dns.PackDomainName(dns.CanonicalName(k.Hdr.Name), owner[:], 0, nil, false)
	if err != nil || ownerLen > 255 {
		ownerLen = -1 // the RDATA still has a tag; only the DS digest is lost
	}
	n := base64.StdEncoding.DecodedLen(len(k.PublicKey))
	buf := make([]byte, max(ownerLen, 0)+4+n)
	rdata := buf[max(ownerLen, 0):]
	pub, err := base64.StdEncoding.Decode(rdata[4:], []byte(k.PublicKey))
	if err != nil || 4+pub > dns.DefaultMsgSize {
		return zk
	}
	rdata = rdata[:4+pub]
	binary.BigEndian.PutUint16(rdata, k.Flags)
	rdata[2], rdata[3] = k.Protocol, k.Algorithm
	zk.tag = keyTag(rdata)
	if ownerLen >= 0 {
		copy(buf, owner[:ownerLen])
		zk.dsInput = buf[:ownerLen+4+pub]
	}
	return zk
}

// keyTag is the key tag of a DNSKEY RDATA (RFC 4034 Appendix B): the
// ones-complement-style sum of its 16-bit words. As in miekg's KeyTag,
// algorithm 1 (RSA/MD5, never validated here) gets no special case.
func keyTag(rdata []byte) uint16 {
	var acc uint32
	for i, b := range rdata {
		if i&1 == 0 {
			acc += uint32(b) << 8
		} else {
			acc += uint32(b)
		}
	}
	acc += acc >> 16 & 0xFFFF
	return uint16(acc)
}

// digestMatches reports whether digest (hex, any case) is the DS digest of
// type t over k (RFC 4034 §5.1.4): SHA-1, SHA-256 or SHA-384, the types
// digestSupported admits; any other type matches nothing.
func (k zoneKey) digestMatches(t uint8, digest string) bool {
	if k.dsInput == nil {
		return false
	}
	var sum []byte
	switch t {
	case dns.SHA1:
		s := sha1.Sum(k.dsInput)
		sum = s[:]
	case dns.SHA256:
		s := sha256.Sum256(k.dsInput)
		sum = s[:]
	case dns.SHA384:
		s := sha512.Sum384(k.dsInput)
		sum = s[:]
	default:
		return false
	}
	if len(digest) != 2*len(sum) {
		return false
	}
	for i, b := range sum {
		hi, ok1 := fromHex(digest[2*i])
		lo, ok2 := fromHex(digest[2*i+1])
		if !ok1 || !ok2 || hi<<4|lo != b {
			return false
		}
	}
	return true
}

func fromHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
