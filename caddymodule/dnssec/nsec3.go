package dnssec

import (
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// NSEC3 proofs (RFC 5155 §8; Unbound's val_nsec3.c). The records handed
// in were already authenticated as RRsets of zone; this file checks their
// parameters against the limits (RFC 9276), hashes names (within the
// lookup's budget, CVE-2023-50868) and decides what they prove.

// nsec3Hashed is one usable NSEC3 record with its owner hash decoded.
type nsec3Hashed struct {
	rr    *dns.NSEC3
	owner string // base32hex owner hash, upper case
	next  string // base32hex next hashed owner, upper case
}

func (h nsec3Hashed) optOut() bool { return h.rr.Flags&1 != 0 }

// nsec3Set is the NSEC3 records of one response that share the zone's
// parameters, with a per-response cache of the hashes computed.
type nsec3Set struct {
	v      *Validator
	w      *work
	zone   string
	set    string // the RRset the proof is about, for errors
	recs   []nsec3Hashed
	iter   uint16
	salt   string
	hashes map[string]string
}

// newNSEC3Set keeps the NSEC3 records a validator can use (RFC 5155 §8.1,
// §8.2): SHA-1 hashes (algorithm 1), flags 0 or 1, owner "<hash>.<zone>",
// all with the parameters of the first one. Parameters over the limits
// (RFC 9276 §3.2) make the answer Insecure: the records were signed by the
// zone, so it is the zone's own choice, not an attacker's, and Unbound and
// BIND do the same. It returns an *InsecureError then.
func (v *Validator) newNSEC3Set(w *work, recs []*dns.NSEC3, zone, set string) (*nsec3Set, error) {
	s := &nsec3Set{v: v, w: w, zone: zone, set: set, hashes: make(map[string]string)}
	first := true
	for _, rr := range recs {
		owner := dns.CanonicalName(rr.Hdr.Name)
		label, end := dns.NextLabel(owner, 0)
		if end || rr.Hash != dns.SHA1 || rr.Flags&^1 != 0 || owner[label:] != zone || label-1 != 32 || len(rr.NextDomain) != 32 {
			continue
		}
		salt := strings.ToLower(rr.Salt)
		if salt == "-" {
			salt = ""
		}
		if first {
			s.iter, s.salt, first = rr.Iterations, salt, false
		} else if rr.Iterations != s.iter || salt != s.salt {
			continue
		}
		s.recs = append(s.recs, nsec3Hashed{rr: rr, owner: strings.ToUpper(owner[:label-1]), next: strings.ToUpper(rr.NextDomain)})
	}
	if len(s.recs) == 0 {
		return nil, bogusf(set, dns.ExtendedErrorCodeNSECMissing, "no usable NSEC3 (SHA-1, flags 0 or 1) from %s", zone)
	}
	saltLen := len(s.salt) / 2
	if int(s.iter) > v.limits.MaxNSEC3Iterations || saltLen > v.limits.MaxNSEC3SaltLength {
		return nil, &InsecureError{RRset: set, Zone: zone, EDE: dns.ExtendedErrorCodeUnsupportedNSEC3IterValue,
			Reason: fmt.Sprintf("NSEC3 of %s uses %d iterations and a %d-byte salt, over the limits %d and %d (RFC 9276 §3.2: treated as insecure)",
				zone, s.iter, saltLen, v.limits.MaxNSEC3Iterations, v.limits.MaxNSEC3SaltLength)}
	}
	return s, nil
}

// hash returns the NSEC3 hash of name (RFC 5155 §5), counting it against
// the lookup's hash budget.
func (s *nsec3Set) hash(name string) (string, error) {
	if h, ok := s.hashes[name]; ok {
		return h, nil
	}
	if n := s.w.hashes.Add(1); int(n) > s.v.limits.MaxNSEC3Hashes {
		return "", indeterminatef(s.set, ErrLimitExceeded, "more than %d NSEC3 hash computations for one lookup", s.v.limits.MaxNSEC3Hashes)
	}
	h := dns.HashName(name, dns.SHA1, s.iter, s.salt)
	if h == "" {
		return "", bogusf(s.set, dns.ExtendedErrorCodeDNSBogus, "cannot hash %s for NSEC3", name)
	}
	s.hashes[name] = h
	return h, nil
}

// match returns the NSEC3 whose owner is the hash of name, or nil.
func (s *nsec3Set) match(name string) (*nsec3Hashed, error) {
	h, err := s.hash(name)
	if err != nil {
		return nil, err
	}
	for i := range s.recs {
		if s.recs[i].owner == h {
			return &s.recs[i], nil
		}
	}
	return nil, nil
}

// cover returns an NSEC3 whose span covers the hash of name (RFC 5155
// §8.3: owner hash < hash < next hashed owner, the last span wrapping
// around), or nil.
func (s *nsec3Set) cover(name string) (*nsec3Hashed, error) {
	h, err := s.hash(name)
	if err != nil {
		return nil, err
	}
	for i := range s.recs {
		r := &s.recs[i]
		switch {
		case r.owner < r.next:
			if r.owner < h && h < r.next {
				return r, nil
			}
		case r.owner == r.next: // the only NSEC3 of the zone
			if h != r.owner {
				return r, nil
			}
		default: // the last span, wrapping to the first hash
			if h > r.owner || h < r.next {
				return r, nil
			}
		}
	}
	return nil, nil
}

// closestEncloser runs the closest encloser proof for qname (RFC 5155
// §8.3): the longest ancestor whose hash matches an NSEC3, and an NSEC3
// covering the next closer name. exists reports that qname itself
// matched (the caller decides whether that is a contradiction). A matching
// NSEC3 at a delegation or DNAME cannot be the closest encloser: names
// below it are not in this zone.
func (s *nsec3Set) closestEncloser(qname string) (ce, nc string, ncRec *nsec3Hashed, exists bool, err error) {
	for name := qname; dns.IsSubDomain(s.zone, name); name = parentName(name) {
		m, err := s.match(name)
		if err != nil {
			return "", "", nil, false, err
		}
		if m != nil {
			if name == qname {
				return name, "", nil, true, nil
			}
			if hasType(m.rr.TypeBitMap, dns.TypeDNAME) || delegationBits(m.rr.TypeBitMap) {
				return "", "", nil, false, bogusf(s.set, dns.ExtendedErrorCodeDNSBogus, "NSEC3 closest encloser %s of %s is a delegation or DNAME", name, qname)
			}
			nc = childToward(name, qname)
			c, err := s.cover(nc)
			if err != nil {
				return "", "", nil, false, err
			}
			if c == nil {
				return "", "", nil, false, bogusf(s.set, dns.ExtendedErrorCodeNSECMissing, "no NSEC3 covers the next closer name %s of %s", nc, qname)
			}
			return name, nc, c, false, nil
		}
		if name == s.zone || name == "." {
			break
		}
	}
	return "", "", nil, false, bogusf(s.set, dns.ExtendedErrorCodeNSECMissing, "no NSEC3 proves a closest encloser for %s in %s", qname, s.zone)
}

// optOutInsecure is the answer for an opt-out span covering the next
// closer name (RFC 5155 §6, §8.6, §9.2): an unsigned delegation may exist
// there, so nothing is proven Secure.
func (s *nsec3Set) optOutInsecure(nc, qname string) error {
	return &InsecureError{RRset: s.set, Zone: nc,
		Reason: fmt.Sprintf("opt-out NSEC3 span of %s covers %s: %s may be below an unsigned delegation (RFC 5155 §6)", s.zone, nc, qname)}
}

// nameError checks an NSEC3 NXDOMAIN proof (RFC 5155 §8.4): closest
// encloser proof, and an NSEC3 covering the wildcard at the closest
// encloser. An opt-out next-closer span makes it Insecure.
func (s *nsec3Set) nameError(qname string) error {
	ce, nc, ncRec, exists, err := s.closestEncloser(qname)
	switch {
	case err != nil:
		return err
	case exists:
		return bogusf(s.set, dns.ExtendedErrorCodeDNSBogus, "NXDOMAIN for %s, but an NSEC3 shows it exists", qname)
	}
	wc := wildcardAt(ce)
	c, err := s.cover(wc)
	if err != nil {
		return err
	}
	if c == nil {
		return bogusf(s.set, dns.ExtendedErrorCodeNSECMissing, "no NSEC3 proves that wildcard %s does not exist", wc)
	}
	if ncRec.optOut() {
		return s.optOutInsecure(nc, qname)
	}
	return nil
}

// noData checks an NSEC3 NODATA proof (RFC 5155 §8.5–§8.7): an NSEC3
// matching qname without qtype; for DS, a closest encloser whose next
// closer span is opt-out (an unsigned delegation, §8.6); otherwise a
// wildcard NODATA proof (§8.7), or, without a wildcard, an opt-out next
// closer span (Insecure, §9.2).
func (s *nsec3Set) noData(qname string, qtype uint16) error {
	m, err := s.match(qname)
	if err != nil {
		return err
	}
	if m != nil {
		return bitmapNoData(m.rr.TypeBitMap, "NSEC3", qname, qtype, s.zone, s.set)
	}
	ce, nc, ncRec, _, err := s.closestEncloser(qname)
	if err != nil {
		return err
	}
	if qtype == dns.TypeDS {
		if ncRec.optOut() {
			return s.optOutInsecure(nc, qname)
		}
		return bogusf(s.set, dns.ExtendedErrorCodeDNSBogus, "no NSEC3 matches %s, and the span covering %s is not opt-out", qname, nc)
	}
	wc := wildcardAt(ce)
	wm, err := s.match(wc)
	if err != nil {
		return err
	}
	if wm == nil {
		// RFC 5155 §9.2 (Unbound's case 5): no NSEC3 for qname or the
		// wildcard, but the next closer name lies in an opt-out span: an
		// unsigned delegation there may hold qname (or qname is an empty
		// non-terminal above opted-out delegations), so nothing is proven.
		if ncRec.optOut() {
			return s.optOutInsecure(nc, qname)
		}
		return bogusf(s.set, dns.ExtendedErrorCodeNSECMissing, "no NSEC3 proves that %s has no %s", qname, dns.TypeToString[qtype])
	}
	if err := bitmapNoData(wm.rr.TypeBitMap, "NSEC3", wc, qtype, s.zone, s.set); err != nil {
		if _, insecure := err.(*InsecureError); insecure {
			return bogusf(s.set, dns.ExtendedErrorCodeDNSBogus, "wildcard %s is a delegation", wc)
		}
		return err
	}
	if ncRec.optOut() {
		return s.optOutInsecure(nc, qname)
	}
	return nil
}

// wildcard checks that a wildcard expansion whose RRSIG has rrsigLabels
// labels was legitimate (RFC 5155 §8.8): an NSEC3 covers the next closer
// name below the wildcard's parent. An opt-out span there proves nothing
// Secure (an unsigned delegation may hold the name), so it is Insecure.
func (s *nsec3Set) wildcard(qname string, rrsigLabels int) error {
	idx := dns.Split(qname)
	if rrsigLabels >= len(idx) {
		return bogusf(s.set, dns.ExtendedErrorCodeDNSBogus, "RRSIG labels %d do not show a wildcard for %s", rrsigLabels, qname)
	}
	ce := qname[idx[len(idx)-rrsigLabels]:]
	if rrsigLabels == 0 {
		ce = "."
	}
	nc := childToward(ce, qname)
	c, err := s.cover(nc)
	if err != nil {
		return err
	}
	if c == nil {
		return bogusf(s.set, dns.ExtendedErrorCodeNSECMissing, "no NSEC3 proves that %s does not exist next to wildcard %s", nc, wildcardAt(ce))
	}
	if c.optOut() {
		return s.optOutInsecure(nc, qname)
	}
	return nil
}
