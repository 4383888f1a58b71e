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
	nsec3 := func(owner string) {
		if owner == "" || !do {
			return
		}
		for _, old := range r.ns {
			if old.Header().Rrtype == dns.TypeNSEC3 && old.Header().Name == owner {
				return
			}
		}
		add(&r.ns, owner, dns.TypeNSEC3, owner)
	}
	// ceProof adds the closest encloser proof for name (RFC 5155 §7.2.1)
	// and returns the closest encloser.
	ceProof := func(name string) string {
		ce := z.nsec3Encloser(name)
		nsec3(z.nsec3Match(ce))
		nsec3(z.nsec3Cover(nextCloser(ce, name)))
		return ce
	}
	nsec := func(name string) {
		if z.nsec3p != nil {
			return
		}
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
			soa() // NODATA, RFC 4035 §3.1.3.1, RFC 5155 §7.2.3, §7.2.4
			nsec(qname)
			if z.nsec3p != nil {
				if m := z.nsec3Match(qname); m != "" {
					nsec3(m)
				} else {
					ceProof(qname) // opted-out delegation, RFC 5155 §7.2.4
				}
			}
		}
		return r
	}
	ce := z.closestEncloser(qname)
	wildcard := "*." + ce
	if ce == "." {
		wildcard = "*."
	}
	if z.exists(wildcard) {
		if hit(wildcard) { // RFC 4035 §3.1.3.3, RFC 5155 §7.2.6
			nsec(qname)
			if z.nsec3p != nil {
				nsec3(z.nsec3Cover(nextCloser(ce, qname)))
			}
		} else { // RFC 4035 §3.1.3.4, RFC 5155 §7.2.5
			soa()
			nsec(qname)
			nsec(wildcard)
			if z.nsec3p != nil {
				ceProof(qname)
				nsec3(z.nsec3Match(wildcard))
			}
		}
		return r
	}
	r.rcode = dns.RcodeNameError // RFC 4035 §3.1.3.2, RFC 5155 §7.2.2
	soa()
	nsec(qname)
	nsec(wildcard)
	if z.nsec3p != nil {
		ce := ceProof(qname)
		nsec3(z.nsec3Cover(wildcardAt(ce)))
	}
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

func wildcardAt(name string) string {
	if name == "." {
		return "*."
	}
	return "*." + name
}
