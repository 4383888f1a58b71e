package dnssec

import (
	"github.com/miekg/dns"
)

// responseKind is what a response says about the question (Unbound's
// val_classify_response).
type responseKind uint8

const (
	kindPositive responseKind = iota // the RRset is in the answer section
	kindCNAME                        // a CNAME at the queried name
	kindDNAME                        // a DNAME at an ancestor of the queried name (RFC 6672)
	kindNXDOMAIN                     // the name does not exist
	kindNODATA                       // the name exists, the type does not
	kindFailure                      // an rcode that carries no answer (SERVFAIL, REFUSED, ...)
)

func (k responseKind) String() string {
	switch k {
	case kindPositive:
		return "answer"
	case kindCNAME:
		return "CNAME"
	case kindDNAME:
		return "DNAME"
	case kindNXDOMAIN:
		return "NXDOMAIN"
	case kindNODATA:
		return "NODATA"
	}
	return "failure"
}

// section is the part of a response that is about the question: the RRset
// of one type at one name and the RRSIGs covering it. Every other record in
// the answer section is out of the question's bailiwick and ignored.
type section struct {
	rrset []dns.RR
	sigs  []*dns.RRSIG
}

// extract returns the RRset of qtype at name in rrs, duplicates removed
// (RFC 2181 §5), class IN only, and the RRSIGs covering it. Owner names
// are compared case-insensitively and canonicalised in the returned copies.
func extract(rrs []dns.RR, name string, qtype uint16) section {
	var s section
	for _, rr := range rrs {
		h := rr.Header()
		if h.Class != dns.ClassINET || !equalNames(h.Name, name) || !wellTyped(rr) {
			continue
		}
		switch {
		case h.Rrtype == qtype:
			dup := false
			for _, old := range s.rrset {
				if dns.IsDuplicate(old, rr) {
					dup = true
					break
				}
			}
			if !dup {
				rr = dns.Copy(rr)
				rr.Header().Name = name
				s.rrset = append(s.rrset, rr)
			}
		case h.Rrtype == dns.TypeRRSIG:
			if sig := rr.(*dns.RRSIG); sig.TypeCovered == qtype {
				sig = dns.Copy(sig).(*dns.RRSIG)
				sig.Hdr.Name = name
				sig.SignerName = dns.CanonicalName(sig.SignerName)
				s.sigs = append(s.sigs, sig)
			}
		}
	}
	return s
}

// wellTyped reports whether an RR of a type the validator looks inside has
// the matching Go type: an Exchanger may hand over RRs it built itself
// (e.g. *dns.RFC3597 with any type in its header).
func wellTyped(rr dns.RR) bool {
	switch rr.Header().Rrtype {
	case dns.TypeRRSIG:
		_, ok := rr.(*dns.RRSIG)
		return ok
	case dns.TypeDNSKEY:
		_, ok := rr.(*dns.DNSKEY)
		return ok
	case dns.TypeDS:
		_, ok := rr.(*dns.DS)
		return ok
	case dns.TypeCNAME:
		_, ok := rr.(*dns.CNAME)
		return ok
	case dns.TypeDNAME:
		_, ok := rr.(*dns.DNAME)
		return ok
	case dns.TypeNSEC:
		_, ok := rr.(*dns.NSEC)
		return ok
	case dns.TypeNSEC3:
		_, ok := rr.(*dns.NSEC3)
		return ok
	case dns.TypeSOA:
		_, ok := rr.(*dns.SOA)
		return ok
	}
	return true
}

// classify sorts a response to name/qtype (already matched to the
// question) and extracts the part of its answer section that matters.
//
// A DNAME at a proper ancestor of name redirects the question (RFC 6672
// §2.2, §3.2) whatever the rest of the answer says: the response is
// kindDNAME and the section is the DNAME RRset of the deepest such owner,
// its owner being section.rrset[0]'s. The CNAME a resolver synthesized
// beside it is unsigned and ignored (RFC 6672 §5.3.1); the validator
// makes its own. A YXDOMAIN response (the substitution overflowed) is
// classified the same way when it carries such a DNAME. Asked for the
// DNAME RRset itself, a DNAME at name is a plain positive answer.
func classify(m *dns.Msg, name string, qtype uint16) (responseKind, section) {
	switch m.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError, dns.RcodeYXDomain:
	default:
		return kindFailure, section{}
	}
	if qtype == dns.TypeDNAME && m.Rcode != dns.RcodeYXDomain {
		if s := extract(m.Answer, name, qtype); len(s.rrset) > 0 {
			return kindPositive, s
		}
	}
	if s := dnameAbove(m.Answer, name); len(s.rrset) > 0 {
		return kindDNAME, s
	}
	if m.Rcode == dns.RcodeYXDomain {
		return kindFailure, section{}
	}
	if s := extract(m.Answer, name, qtype); len(s.rrset) > 0 {
		return kindPositive, s
	}
	if qtype != dns.TypeCNAME {
		if s := extract(m.Answer, name, dns.TypeCNAME); len(s.rrset) > 0 {
			return kindCNAME, s
		}
	}
	if m.Rcode == dns.RcodeNameError {
		return kindNXDOMAIN, section{}
	}
	return kindNODATA, section{}
}
