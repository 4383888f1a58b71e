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
// not hold gives SERVFAIL: a resolver would have failed to reach it. A
// name below a DNAME owner is answered with the DNAME RRset and a CNAME
// synthesized from it, unsigned, to follow (RFC 6672 §3.2).
func (z *Zone) answer(qname string, qtype uint16, do bool) response {
	z.mu.RLock()
	defer z.mu.RUnlock()
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

	// RFC 6672 §3.2: below a DNAME owner the DNAME answers, whatever the
	// zone holds there (occluded, like glue below a cut above it).
	if owner := z.dnameAbove(qname); owner != "" {
		add(&r.answer, owner, dns.TypeDNAME, owner)
		dname := z.rrset(owner, dns.TypeDNAME)[0].(*dns.DNAME)
		target, ok := SynthesizeDNAME(qname, owner, dname.Target)
		if !ok {
			r.rcode = dns.RcodeYXDomain // RFC 6672 §2.2
			return r
		}
		r.answer = append(r.answer, &dns.CNAME{
			Hdr:    dns.RR_Header{Name: qname, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: dname.Hdr.Ttl},
			Target: target,
		})
		r.target = target
		return r
	}
	if cut := z.cut(qname); cut != "" && (cut != qname || qtype != dns.TypeDS) {
		return response{rcode: dns.RcodeServerFailure}
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

// dnameAbove returns the highest proper ancestor of qname, in the zone and
// not below a delegation, that owns a DNAME RRset, or "". Names below it
// are occluded (RFC 6672 §2.4). z.mu held.
func (z *Zone) dnameAbove(qname string) string {
	found := ""
	for n := qname; n != z.origin; {
		i, end := dns.NextLabel(n, 0)
		if end {
			break
		}
		n = n[i:]
		if !dns.IsSubDomain(z.origin, n) {
			break
		}
		if len(z.data[n][dns.TypeDNAME]) > 0 {
			found = n
		}
	}
	if found != "" && z.cut(found) != "" {
		return "" // the DNAME is itself below (or at) a delegation
	}
	return found
}

// SynthesizeDNAME returns the name a DNAME at owner with the given target
// redirects qname to (RFC 6672 §2.2): qname's owner suffix replaced by
// target. qname must be a proper subdomain of owner. It reports false when
// the result would exceed 255 octets in wire format (YXDOMAIN).
func SynthesizeDNAME(qname, owner, target string) (string, bool) {
	qname, owner, target = dns.CanonicalName(qname), dns.CanonicalName(owner), dns.CanonicalName(target)
	prefix := qname
	if owner != "." {
		prefix = qname[:len(qname)-len(owner)]
	}
	out := prefix + target
	if target == "." {
		out = prefix
	}
	// miekg/dns accepts 256 octets; RFC 1035 §2.3.4 says 255.
	if n, err := dns.PackDomainName(out, make([]byte, 512), 0, nil, false); err != nil || n > 255 {
		return out, false
	}
	return out, true
}
