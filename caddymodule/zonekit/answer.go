package zonekit

import "github.com/miekg/dns"

// response is what one zone contributes to an answer.
type response struct {
	rcode  int
	answer []dns.RR
	ns     []dns.RR
	target string // CNAME target to follow, "" when done
}

// answer looks qname/qtype up in the zone as its authoritative server would
// (RFC 1034 §4.3.2, RFC 4035 §3.1), including RRSIGs and NSEC proofs when
// do is set. A name at or below a delegation whose child the server does
// not hold gives SERVFAIL: a resolver would have failed to reach it.
func (z *Zone) answer(qname string, qtype uint16, do bool) response {
	z.mu.RLock()
	defer z.mu.RUnlock()
	if cut := z.cut(qname); cut != "" && (cut != qname || qtype != dns.TypeDS) {
		return response{rcode: dns.RcodeServerFailure}
	}
	var r response
	add := func(sec *[]dns.RR, owner string, t uint16, as string) {
		for _, rr := range z.rrset(owner, t) {
			rr = dns.Copy(rr)
			rr.Header().Name = as
			*sec = append(*sec, rr)
		}
		if do {
			for _, rr := range z.sigs[owner][t] {
				rr = dns.Copy(rr)
				rr.Header().Name = as
				*sec = append(*sec, rr)
			}
		}
	}
	soa := func() { add(&r.ns, z.origin, dns.TypeSOA, z.origin) }
	nsec := func(name string) {
		if n := z.covering(name); n != nil && do {
			for _, old := range r.ns {
				if old.Header().Rrtype == dns.TypeNSEC && old.Header().Name == n.Hdr.Name {
					return
				}
			}
			add(&r.ns, n.Hdr.Name, dns.TypeNSEC, n.Hdr.Name)
		}
	}
	hit := func(owner string) bool {
		switch {
		case len(z.rrset(owner, qtype)) > 0:
			add(&r.answer, owner, qtype, qname)
		case qtype != dns.TypeCNAME && len(z.rrset(owner, dns.TypeCNAME)) > 0:
			add(&r.answer, owner, dns.TypeCNAME, qname)
			r.target = dns.CanonicalName(z.rrset(owner, dns.TypeCNAME)[0].(*dns.CNAME).Target)
		default:
			return false
		}
		return true
	}

	if z.exists(qname) {
		if !hit(qname) {
			soa() // NODATA, RFC 4035 §3.1.3.1
			nsec(qname)
		}
		return r
	}
	ce := z.closestEncloser(qname)
	wildcard := "*." + ce
	if ce == "." {
		wildcard = "*."
	}
	if z.exists(wildcard) {
		if hit(wildcard) { // RFC 4035 §3.1.3.3
			nsec(qname)
		} else { // RFC 4035 §3.1.3.4
			soa()
			nsec(qname)
			nsec(wildcard)
		}
		return r
	}
	r.rcode = dns.RcodeNameError // RFC 4035 §3.1.3.2
	soa()
	nsec(qname)
	nsec(wildcard)
	return r
}

// closestEncloser returns the longest existing ancestor of qname (RFC 4592
// §3.3.1). z.mu held.
func (z *Zone) closestEncloser(qname string) string {
	n := qname
	for n != z.origin {
		i, end := dns.NextLabel(n, 0)
		if end {
			return z.origin
		}
		n = n[i:]
		if z.exists(n) {
			return n
		}
	}
	return n
}
