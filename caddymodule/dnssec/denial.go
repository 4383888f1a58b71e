package dnssec

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Answers that rest on the non-existence of something — NXDOMAIN, NODATA,
// and RRsets synthesized from a wildcard — are Secure only with an NSEC
// (RFC 4035 §5.4) or NSEC3 (RFC 5155 §8) proof from the zone that is
// authoritative for the name. This file authenticates the proof records
// of a response and hands them to nsec.go or nsec3.go, which decide what
// they prove (Unbound's validate_nodata_response, validate_nameerror_response
// and validate_positive_response).

// maxNegativeTTL caps how long a denial without an SOA is cached
// (Unbound's cache-max-negative-ttl default): with no SOA, the RFC 2308 §5
// bound min(SOA TTL, MINIMUM) cannot be applied, and only the signed
// NSEC/NSEC3 TTLs speak for the zone.
const maxNegativeTTL = time.Hour

// proof is the authenticated denial records of one response.
type proof struct {
	nsec  []*dns.NSEC
	nsec3 []*dns.NSEC3
	ttl   time.Duration // least lifetime of the RRsets authenticated
	// expanded says which proof RRsets were wildcard-expanded and so are
	// held under their wildcard owner, for the reason of a failed proof.
	expanded []string
}

// explain adds to a Bogus proof failure which of its records were
// wildcard expansions: the likely cause, and what a reader needs to see.
func (p *proof) explain(err error) error {
	b, ok := err.(*BogusError)
	if !ok || p == nil || len(p.expanded) == 0 {
		return err
	}
	return &BogusError{RRset: b.RRset, EDE: b.EDE,
		Reason: fmt.Sprintf("%s (%s; RFC 4592 §4.7: such a record speaks only for its wildcard)", b.Reason, strings.Join(p.expanded, "; "))}
}

// wildcardOwner returns the owner name an RRSIG with the given labels
// field was made over, for an RRset at name (RFC 4035 §5.3.2): name itself,
// or "*." and the rightmost labels of name when the RRSIG has fewer labels
// than name (the RRset was synthesized from that wildcard, §5.3.4).
func wildcardOwner(name string, labels uint8) string {
	l := dns.SplitDomainName(name)
	switch {
	case int(labels) >= len(l):
		return name
	case labels == 0:
		return "*."
	}
	return "*." + strings.Join(l[len(l)-int(labels):], ".") + "."
}

// collectProof authenticates, with the zone's keys, every NSEC and NSEC3
// RRset in the authority section that belongs to zone, and the zone's SOA
// if present. Like Unbound, a proof RRset that fails to verify makes the
// whole response Bogus; records of other zones are ignored. A proof RRset
// whose RRSIG shows wildcard expansion is kept under the wildcard's owner
// name, the only name it speaks for (RFC 4592 §4.7).
func (v *Validator) collectProof(w *work, m *dns.Msg, zone string, ke *keyEntry, set string, now time.Time) (*proof, error) {
	type group struct {
		owner string
		t     uint16
	}
	var groups []group
	seen := make(map[group]bool)
	for _, rr := range m.Ns {
		h := rr.Header()
		if h.Class != dns.ClassINET || !wellTyped(rr) {
			continue
		}
		owner := dns.CanonicalName(h.Name)
		t := h.Rrtype
		if sig, ok := rr.(*dns.RRSIG); ok {
			t = sig.TypeCovered
		}
		if !dns.IsSubDomain(zone, owner) || (t != dns.TypeNSEC && t != dns.TypeNSEC3 && !(t == dns.TypeSOA && owner == zone)) {
			continue
		}
		if g := (group{owner, t}); !seen[g] {
			seen[g] = true
			groups = append(groups, g)
		}
	}
	if len(groups) > v.limits.MaxDenialRRsets+1 {
		return nil, indeterminatef(set, ErrLimitExceeded, "%d denial RRsets in one response, more than %d", len(groups), v.limits.MaxDenialRRsets)
	}
	p := &proof{ttl: maxTTL}
	for _, g := range groups {
		sec := extract(m.Ns, g.owner, g.t)
		if len(sec.rrset) == 0 {
			continue // RRSIGs without their RRset prove nothing
		}
		gset := rrsetName(g.owner, g.t)
		sig, _, err := v.verifyRRset(w, gset, sec.rrset, sec.sigs, ke.keys, zone, now)
		if err != nil {
			if b, ok := err.(*BogusError); ok {
				return nil, &BogusError{RRset: set, EDE: b.EDE, Reason: fmt.Sprintf("denial of %s: %s", set, b.Reason)}
			}
			return nil, err
		}
		p.ttl = min(p.ttl, rrsetTTL(sec.rrset, sig, now))
		rrset := sec.rrset
		// An RRSIG with fewer labels than the owner shows that the RRset
		// was synthesized from the wildcard *.<rightmost labels> (RFC 4035
		// §5.3.4): for a query of type NSEC (or NSEC3) at any name the
		// wildcard matches, a server answers the wildcard's NSEC under
		// that name, validly signed (RFC 4592 §4.7, erratum 5119). The
		// record then says what it says about the wildcard, not about
		// the name it was put at: it is used under the owner that was
		// signed, as Unbound does since CVE-2017-15105. An NSEC3 so held
		// has no hashed owner name and proves nothing (RFC 5155 §8.2).
		if signed := wildcardOwner(g.owner, sig.Labels); signed != g.owner {
			if !dns.IsSubDomain(zone, signed) {
				return nil, bogusf(set, dns.ExtendedErrorCodeDNSBogus, "denial of %s: %s is expanded from wildcard %s, outside zone %s", set, gset, signed, zone)
			}
			p.expanded = append(p.expanded, fmt.Sprintf("%s at %s is expanded from wildcard %s", dns.TypeToString[g.t], g.owner, signed))
			rrset = make([]dns.RR, len(sec.rrset))
			for i, rr := range sec.rrset {
				rrset[i] = dns.Copy(rr)
				rrset[i].Header().Name = signed
			}
		}
		for _, rr := range rrset {
			switch rr := rr.(type) {
			case *dns.NSEC:
				p.nsec = append(p.nsec, rr)
			case *dns.NSEC3:
				p.nsec3 = append(p.nsec3, rr)
			case *dns.SOA:
				// RFC 2308 §5: negative answers live for min(SOA TTL, MINIMUM).
				p.ttl = min(p.ttl, time.Duration(rr.Minttl)*time.Second)
			}
		}
	}
	return p, nil
}

// validateDenial validates an NXDOMAIN or NODATA response. The zone is
// taken from the SOA in the authority section or, without one, from the
// signer of the NSEC/NSEC3 records (denialZone). If the chain of trust
// proves that zone insecure, so is the answer; otherwise the NSEC or
// NSEC3 records signed by the zone must prove the denial (Secure, with an
// empty RRset), or prove an unsigned delegation or opt-out span
// (Insecure). A response naming no such zone, or a NODATA without any
// NSEC or NSEC3 of its zone, is unsigned: Insecure below a cut proven
// unsigned, Bogus otherwise (unsignedDenial).
func (v *Validator) validateDenial(ctx context.Context, w *work, name string, qtype uint16, kind responseKind, m *dns.Msg) *Result {
	set := rrsetName(name, qtype)
	r := &Result{Name: name, Type: qtype, Rcode: m.Rcode}
	what := fmt.Sprintf("no %s: %s", set, kind)
	// A DS denial comes from the parent, as a DS RRset does (RFC 4035
	// §5.2): judged under the anchor above it, even at an anchor's owner.
	anchor := v.anchorFor(name, qtype)
	if anchor == "" {
		r.Err = indeterminatef(set, nil, "%s, and no trust anchor at or above %s", what, name)
		return finish(r)
	}
	zone, fromSOA := denialZone(m, name, qtype, anchor)
	if zone == "" {
		return v.unsignedDenial(ctx, w, r, anchor, bogusf(set, dns.ExtendedErrorCodeRRSIGsMissing,
			"%s without an SOA or signed NSEC/NSEC3 of a zone enclosing %s at or below trust anchor %s", what, name, anchor))
	}
	ke := v.zoneKeys(ctx, w, zone)
	r.Chain, r.Signer = ke.chain, zone
	now := v.now()
	switch {
	case ke.status == Insecure:
		r.TTL = ke.expires.Sub(now)
		r.Err = &InsecureError{RRset: set, Zone: ke.insecureZone, EDE: edeOf(ke.err),
			Reason: fmt.Sprintf("%s in insecure zone %s: %s", what, ke.insecureZone, ke.reason)}
		return finish(r)
	case ke.status != Secure:
		r.Err = ke.err
		return finish(r)
	}
	p, err := v.collectProof(w, m, zone, ke, set, now)
	if err == nil && kind == kindNODATA && len(p.nsec) == 0 && len(p.nsec3) == 0 {
		// A NODATA without any NSEC or NSEC3 of the zone is as good as
		// unsigned: a server holding a parent and its unsigned child may
		// answer for a name of the child with the parent's signed SOA
		// (Unbound's val_cnametoinsecure). Unbound, which takes the zone
		// from the proof's signer, finds none and judges the response
		// like unsigned data; so do we: Insecure if the chain of trust
		// proves a cut above the name unsigned, Bogus otherwise. An
		// NXDOMAIN without proof stays Bogus: it claims that the name,
		// and so any cut below the zone on the way to it, does not exist.
		return v.unsignedDenial(ctx, w, r, anchor, bogusf(set, dns.ExtendedErrorCodeNSECMissing, "%s from signed zone %s without NSEC or NSEC3", what, zone))
	}
	if err == nil {
		err = p.explain(v.proveDenial(w, p, name, qtype, kind, zone, set))
	}
	r.Err = err
	if p != nil {
		r.TTL = min(p.ttl, ke.expires.Sub(now))
		if !fromSOA {
			r.TTL = min(r.TTL, maxNegativeTTL)
		}
	}
	if err == nil {
		r.Status = Secure
		return r
	}
	return finish(r)
}

// denialZone returns the zone whose NSEC/NSEC3 records must prove a
// denial of name/qtype. It must enclose name, lie at or below the closest
// trust anchor (RFC 4035 §4.3) and, for DS, be strictly above name: the DS
// RRset is the parent's (RFC 4035 §3.1.4.1, §5.2). The zone's SOA names
// it (fromSOA). RFC 2308 §3 asks for that SOA but the proof does not need
// it: without one, the zone is the signer of the NSEC/NSEC3 RRSIGs, as in
// Unbound's val_find_signer, the deepest one when they differ, since the
// deepest zone holding name is the one whose chain can speak for it. A
// forged signer gains nothing: the records must verify with that zone's
// keys, reached by the chain of trust, and a name that is no zone cut has
// none (fetchKeys).
func denialZone(m *dns.Msg, name string, qtype uint16, anchor string) (zone string, fromSOA bool) {
	fits := func(z string) bool {
		return isAncestorOrSelf(z, name) && isAncestorOrSelf(anchor, z) && !(qtype == dns.TypeDS && z == name)
	}
	for _, rr := range m.Ns {
		h := rr.Header()
		if h.Rrtype == dns.TypeSOA && h.Class == dns.ClassINET {
			if owner := dns.CanonicalName(h.Name); fits(owner) {
				zone = owner
			}
		}
	}
	if zone != "" {
		return zone, true
	}
	for _, rr := range m.Ns {
		sig, ok := rr.(*dns.RRSIG)
		if !ok || sig.Hdr.Class != dns.ClassINET || (sig.TypeCovered != dns.TypeNSEC && sig.TypeCovered != dns.TypeNSEC3) {
			continue
		}
		if signer := dns.CanonicalName(sig.SignerName); fits(signer) && (zone == "" || dns.CountLabel(signer) > dns.CountLabel(zone)) {
			zone = signer
		}
	}
	return zone, false
}

// unsignedDenial judges a negative response that carries no proof from a
// zone that could speak for the name (no SOA and no signed NSEC/NSEC3 from
// an enclosing zone below the anchor, or no NSEC/NSEC3 at all), as Unbound
// does an unsigned answer: Insecure only below a cut the chain of trust
// proves unsigned; ifSigned where the chain reaches the name's zone
// securely, the error of the walk otherwise.
func (v *Validator) unsignedDenial(ctx context.Context, w *work, r *Result, anchor string, ifSigned *BogusError) *Result {
	chain, ttl, err := v.provenInsecure(ctx, w, r.Name, r.Type, anchor)
	r.Chain, r.Signer = chain, ""
	switch e := err.(type) {
	case nil:
		r.Err = ifSigned
	case *InsecureError:
		ie := *e
		ie.RRset = ifSigned.RRset
		r.Err, r.Signer, r.TTL = &ie, ie.Zone, ttl
	default:
		r.Err = err
	}
	return finish(r)
}

// proveDenial dispatches to the NSEC or NSEC3 proof for kind. A response
// carrying NSEC records is judged by them; NSEC3 otherwise.
func (v *Validator) proveDenial(w *work, p *proof, name string, qtype uint16, kind responseKind, zone, set string) error {
	switch {
	case len(p.nsec) > 0:
		if kind == kindNXDOMAIN {
			return nsecNameError(p.nsec, name, zone, set)
		}
		return nsecNoData(p.nsec, name, qtype, zone, set)
	case len(p.nsec3) > 0:
		s, err := v.newNSEC3Set(w, p.nsec3, zone, set)
		if err != nil {
			return err
		}
		if kind == kindNXDOMAIN {
			return s.nameError(name)
		}
		return s.noData(name, qtype)
	}
	return bogusf(set, dns.ExtendedErrorCodeNSECMissing, "no %s: %s from signed zone %s without NSEC or NSEC3", set, kind, zone)
}

// validateWildcard handles an RRset whose RRSIG shows wildcard expansion
// (RFC 4035 §5.3.4): it is Secure only together with a proof, signed by
// the same zone, that no closer name than the wildcard matched the query
// (RFC 4035 §5.4, RFC 5155 §8.8). The wildcard owner is recorded.
func (v *Validator) validateWildcard(w *work, r *Result, sig *dns.RRSIG, m *dns.Msg, ke *keyEntry) *Result {
	if wildcardOwner(r.Name, sig.Labels) == r.Name {
		// The wildcard owner itself was asked for: the labels field does
		// not count its "*" (RFC 4034 §3.1.3), nothing was expanded.
		r.Status = Secure
		return r
	}
	r.Wildcard = wildcardOwner(r.Name, sig.Labels)
	set := rrsetName(r.Name, r.Type)
	now := v.now()
	p, err := v.collectProof(w, m, r.Signer, ke, set, now)
	if err == nil {
		switch {
		case len(p.nsec) > 0:
			err = nsecWildcard(p.nsec, r.Name, int(sig.Labels), r.Signer, set)
		case len(p.nsec3) > 0:
			var s *nsec3Set
			if s, err = v.newNSEC3Set(w, p.nsec3, r.Signer, set); err == nil {
				err = s.wildcard(r.Name, int(sig.Labels))
			}
		default:
			err = bogusf(set, dns.ExtendedErrorCodeNSECMissing, "%s from %s: wildcard expansion without NSEC or NSEC3 proof", set, r.Wildcard)
		}
		err = p.explain(err)
		r.TTL = min(r.TTL, p.ttl)
	}
	if err != nil {
		ttl := r.TTL
		r.Err = err
		r = finish(r)
		if r.Status == Insecure {
			r.TTL = ttl
		}
		return r
	}
	r.Status = Secure
	return r
}
