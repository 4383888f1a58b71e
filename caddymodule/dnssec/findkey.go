package dnssec

import (
	"context"
	"fmt"
	"time"

	"github.com/miekg/dns"
)

// Zone cuts for unsigned data. A signed RRset names its zone in the RRSIG
// signer field; unsigned data names nothing, so the validator walks down
// from the closest trust anchor towards the name, asking for the DS RRset
// at every name on the way (Unbound's processFindKey, RFC 4035 §5.2). The
// walk ends at the first cut the parent proves unsigned (NSEC/NSEC3 with
// the NS bit and no DS, or an opt-out span), or at an unsupported
// algorithm: below it everything is Insecure. If every cut on the way is
// signed, unsigned data at the name is Bogus. Signed data names its zone,
// and knownCut checks that claim against the cuts already proven.

// provenInsecure returns an *InsecureError when a zone cut between anchor
// and name is proven unsigned, nil when the chain of trust reaches name's
// zone securely (so its data must be signed), or the error that ended the
// walk. ttl is how long an Insecure proof holds. For qtype DS the walk
// stops above name: its DS RRset lives in the parent.
func (v *Validator) provenInsecure(ctx context.Context, w *work, name string, qtype uint16, anchor string) (chain []ZoneStep, ttl time.Duration, err error) {
	var path []string
	for n := name; n != anchor && isAncestorOrSelf(anchor, n); n = parentName(n) {
		if !(qtype == dns.TypeDS && n == name) {
			path = append(path, n)
		}
		if n == "." {
			break
		}
	}
	for i := len(path) - 1; i >= 0; i-- {
		z := path[i]
		dr := v.lookup(ctx, w, z, dns.TypeDS, false)
		switch {
		case dr.Status == Insecure:
			return dr.Chain, dr.TTL, dr.Err
		case dr.Status != Secure:
			return dr.Chain, 0, dr.Err
		case dr.alias != "" || len(dr.CNAME) > 0:
			return dr.Chain, 0, bogusf(rrsetName(name, qtype), dns.ExtendedErrorCodeDNSBogus, "%s is a CNAME, so %s cannot hold unsigned data", z, name)
		case dr.Rcode == dns.RcodeNameError:
			return dr.Chain, 0, bogusf(rrsetName(name, qtype), dns.ExtendedErrorCodeDNSBogus, "%s provably does not exist, yet %s was answered", z, rrsetName(name, qtype))
		case len(dr.RRset) == 0:
			continue // proven not a zone cut
		}
		ke := v.zoneKeys(ctx, w, z)
		switch ke.status {
		case Secure:
			chain = ke.chain
		case Insecure:
			return ke.chain, ke.expires.Sub(v.now()), &InsecureError{RRset: rrsetName(name, qtype), Zone: ke.insecureZone, EDE: edeOf(ke.err), Reason: ke.reason}
		default:
			return ke.chain, 0, ke.err
		}
	}
	return chain, 0, nil
}

// zoneCut is a zone cut the validator has already proven.
type zoneCut struct {
	zone    string
	status  Status // Secure: its DS RRset is authenticated; Insecure: proven unsigned
	reason  string // how it was proven
	ede     uint16
	chain   []ZoneStep
	expires time.Time // end of the proof, for an Insecure result's TTL
}

// knownCut returns the highest zone cut strictly below signer on the way
// down to the RRset name/qtype (to its parent for DS, which the parent
// holds) that the validator has already proven, or nil. RFC 4035 §5.3.1
// wants the signer to be the zone that contains the RRset; an ancestor of
// the owner is that zone only if no cut separates them, and proving that
// there is none would take a DS query per name in between, for every
// answer. The validator instead consults what it already knows: the DS
// results and zone keys in its cache (each chain of trust it builds, each
// walk for unsigned data and each DS lookup leaves them), so the common
// case, where the signer is the zone, sends nothing more. A cut it has
// not met is not found: an ancestor's key holder can still forge data in
// a child zone the validator has not looked at yet (Unbound and delv
// accept such data always); once the child's DS is known, they cannot.
func (v *Validator) knownCut(signer, name string, qtype uint16) *zoneCut {
	n := name
	if qtype == dns.TypeDS {
		if name == "." {
			return nil
		}
		n = parentName(name)
	}
	var path []string
	for ; n != signer && dns.IsSubDomain(signer, n); n = parentName(n) {
		path = append(path, n)
	}
	for i := len(path) - 1; i >= 0; i-- {
		if c := v.cachedCut(signer, path[i]); c != nil {
			return c
		}
	}
	return nil
}

// cachedCut reports what the cache proves about a cut at z (strictly below
// signer): a zone with authenticated keys or an authenticated DS RRset is
// a signed cut; a key entry or DS result proven Insecure by a cut below
// signer (at z or between) is an unsigned one. Bogus and Indeterminate
// entries prove nothing and are ignored.
func (v *Validator) cachedCut(signer, z string) *zoneCut {
	below := func(zone string) bool { return zone != signer && dns.IsSubDomain(signer, zone) }
	if val, exp, ok := v.cached(keysKey(z), false); ok {
		switch ke := val.(*keyEntry); {
		case ke.status == Secure:
			return &zoneCut{zone: z, status: Secure, reason: "its DNSKEY RRset is authenticated by a DS RRset", chain: ke.chain, expires: exp}
		case ke.status == Insecure && below(ke.insecureZone):
			return &zoneCut{zone: ke.insecureZone, status: Insecure, reason: ke.reason, ede: edeOf(ke.err), chain: ke.chain, expires: exp}
		}
	}
	if val, exp, ok := v.cached(resultKey(z, dns.TypeDS), false); ok {
		r := val.(*Result)
		ie, _ := r.Err.(*InsecureError)
		switch {
		case r.Status == Secure && len(r.RRset) > 0 && r.alias == "" && len(r.CNAME) == 0:
			return &zoneCut{zone: z, status: Secure, reason: fmt.Sprintf("its DS RRset is authenticated, signed by %s", r.Signer), chain: r.Chain, expires: exp}
		case r.Status == Insecure && ie != nil && below(ie.Zone):
			return &zoneCut{zone: ie.Zone, status: Insecure, reason: ie.Reason, ede: ie.EDE, chain: r.Chain, expires: exp}
		}
	}
	return nil
}
