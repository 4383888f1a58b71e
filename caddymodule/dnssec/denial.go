package dnssec

import (
	"context"
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// Answers that rest on the non-existence of something — NXDOMAIN, NODATA,
// and RRsets synthesized from a wildcard — are Secure only with an NSEC
// (RFC 4035 §5.4) or NSEC3 (RFC 5155 §8) proof from the zone that is
// authoritative for the name. This file decides what such an answer is
// worth; the proofs themselves are checked by the code for each kind of
// denial record.

// validateDenial classifies an NXDOMAIN or NODATA response. The zone is
// taken from the SOA in the authority section (it must enclose the name,
// and for DS be strictly above it, RFC 4035 §3.1.4.1). If the chain of
// trust proves that zone insecure, so is the answer; if the zone is
// signed, a response without any NSEC, NSEC3 or RRSIG is bogus
// (Unbound's "NSEC Missing"); a response carrying a proof is not yet
// accepted as Secure.
func (v *Validator) validateDenial(ctx context.Context, w *work, name string, qtype uint16, kind responseKind, m *dns.Msg) *Result {
	set := rrsetName(name, qtype)
	r := &Result{Name: name, Type: qtype, Rcode: m.Rcode}
	what := fmt.Sprintf("no %s: %s", set, kind)
	anchor := v.closestAnchor(name)
	if anchor == "" {
		r.Err = indeterminatef(set, nil, "%s, and no trust anchor at or above %s", what, name)
		return finish(r)
	}
	zone, proof := "", false
	for _, rr := range m.Ns {
		h := rr.Header()
		switch h.Rrtype {
		case dns.TypeSOA:
			owner := dns.CanonicalName(h.Name)
			if isAncestorOrSelf(owner, name) && isAncestorOrSelf(anchor, owner) && !(qtype == dns.TypeDS && owner == name) {
				zone = owner
			}
		case dns.TypeNSEC, dns.TypeNSEC3, dns.TypeRRSIG:
			proof = true
		}
	}
	if zone == "" {
		r.Err = indeterminatef(set, nil, "%s without an SOA for a zone enclosing %s", what, name)
		return finish(r)
	}
	ke := v.zoneKeys(ctx, w, zone)
	r.Chain, r.Signer = ke.chain, zone
	switch {
	case ke.status == Insecure:
		r.TTL = ke.expires.Sub(v.now())
		r.Err = &InsecureError{RRset: set, Zone: ke.insecureZone, EDE: edeOf(ke.err),
			Reason: fmt.Sprintf("%s in insecure zone %s: %s", what, ke.insecureZone, ke.reason)}
	case ke.status != Secure:
		r.Err = ke.err
	case !proof:
		r.Err = bogusf(set, dns.ExtendedErrorCodeNSECMissing, "%s from signed zone %s without NSEC, NSEC3 or RRSIG", what, zone)
	default:
		r.Err = indeterminatef(set, nil, "%s (denial not yet proven)", what)
	}
	return finish(r)
}

// validateWildcard handles an RRset whose RRSIG shows wildcard expansion
// (RFC 4035 §5.3.4): it is Secure only together with a proof that the
// queried name itself does not exist (RFC 4035 §5.4, RFC 5155 §8.8), which
// is not accepted yet; the wildcard owner is recorded in the result.
func (v *Validator) validateWildcard(_ context.Context, _ *work, r *Result, sig *dns.RRSIG, _ *dns.Msg) *Result {
	labels := dns.SplitDomainName(r.Name)
	r.Wildcard = "*." + strings.Join(labels[len(labels)-int(sig.Labels):], ".") + "."
	if sig.Labels == 0 {
		r.Wildcard = "*."
	}
	set := rrsetName(r.Name, r.Type)
	r.Err = indeterminatef(set, nil, "%s from %s: wildcard expansion without denial proof", set, r.Wildcard)
	return finish(r)
}
