package zonekit

import (
	"sort"
	"strings"

	"github.com/miekg/dns"
)

// NSEC3Params selects NSEC3 (RFC 5155) instead of NSEC for a zone's
// authenticated denial of existence.
type NSEC3Params struct {
	// Iterations is the number of additional hash iterations (RFC 9276
	// recommends 0).
	Iterations uint16
	// Salt is the salt in hex, "" for none.
	Salt string
	// OptOut sets the Opt-Out flag on every NSEC3 and leaves unsigned
	// delegations (NS without DS) out of the chain (RFC 5155 §6).
	OptOut bool
}

// SetNSEC3 makes Sign build an NSEC3 chain with p (and an NSEC3PARAM
// RRset at the apex), or an NSEC chain again when p is nil.
func (z *Zone) SetNSEC3(p *NSEC3Params) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if p != nil {
		c := *p
		c.Salt = strings.ToUpper(c.Salt)
		p = &c
	}
	z.nsec3p = p
}

// HashName returns the NSEC3 owner name of name in the zone ("<hash>.<origin>"),
// or "" if the zone does not use NSEC3.
func (z *Zone) HashName(name string) string {
	z.mu.RLock()
	defer z.mu.RUnlock()
	if z.nsec3p == nil {
		return ""
	}
	return z.nsec3Owner(dns.CanonicalName(name))
}

// nsec3Owner returns "<hash>.<origin>" for name; z.mu held.
func (z *Zone) nsec3Owner(name string) string {
	salt := z.nsec3p.Salt
	return strings.ToLower(dns.HashName(name, dns.SHA1, z.nsec3p.Iterations, salt)) + "." + z.origin
}

// buildNSEC3 makes the NSEC3 chain (RFC 5155 §7.1): one NSEC3 per
// authoritative owner name, delegation point (signed ones only with
// opt-out) and empty non-terminal above them, ordered by hash. z.mu held.
func (z *Zone) buildNSEC3(ttl uint32) {
	p := z.nsec3p
	if p == nil {
		return
	}
	if z.data[z.origin] == nil {
		z.data[z.origin] = make(map[uint16][]dns.RR)
	}
	z.data[z.origin][dns.TypeNSEC3PARAM] = []dns.RR{&dns.NSEC3PARAM{
		Hdr:  dns.RR_Header{Name: z.origin, Rrtype: dns.TypeNSEC3PARAM, Class: dns.ClassINET, Ttl: ttl},
		Hash: dns.SHA1, Iterations: p.Iterations, Salt: p.Salt, SaltLength: uint8(len(p.Salt) / 2),
	}}
	names := make(map[string]bool)
	for owner := range z.data {
		cut := z.cut(owner)
		if cut != "" && cut != owner {
			continue // glue
		}
		if z.dnameAbove(owner) != "" {
			continue // occluded by a DNAME (RFC 6672 §2.4)
		}
		if cut == owner && p.OptOut && len(z.data[owner][dns.TypeDS]) == 0 {
			continue // unsigned delegation, opted out
		}
		names[owner] = true
		for n := owner; n != z.origin; {
			i, end := dns.NextLabel(n, 0)
			if end {
				break
			}
			n = n[i:]
			names[n] = true // empty non-terminals (RFC 5155 §7.1)
		}
	}
	type entry struct{ name, hash string }
	var chain []entry
	for n := range names {
		chain = append(chain, entry{n, strings.ToUpper(dns.HashName(n, dns.SHA1, p.Iterations, p.Salt))})
	}
	sort.Slice(chain, func(i, j int) bool { return chain[i].hash < chain[j].hash })
	z.nsec3 = make(map[string]*dns.NSEC3, len(chain))
	z.nsec3chain = z.nsec3chain[:0]
	var flags uint8
	if p.OptOut {
		flags = 1
	}
	for i, e := range chain {
		var types []uint16
		signed := false
		for t := range z.data[e.name] {
			if z.cut(e.name) == e.name && t != dns.TypeNS && t != dns.TypeDS {
				continue
			}
			types = append(types, t)
			if z.authoritative(e.name, t) {
				signed = true
			}
		}
		if e.name == z.origin {
			types = append(types, dns.TypeDNSKEY)
		}
		if signed {
			types = append(types, dns.TypeRRSIG)
		}
		sort.Slice(types, func(i, j int) bool { return types[i] < types[j] })
		owner := strings.ToLower(e.hash) + "." + z.origin
		z.nsec3[owner] = &dns.NSEC3{
			Hdr:  dns.RR_Header{Name: owner, Rrtype: dns.TypeNSEC3, Class: dns.ClassINET, Ttl: ttl},
			Hash: dns.SHA1, Flags: flags, Iterations: p.Iterations, SaltLength: uint8(len(p.Salt) / 2), Salt: p.Salt,
			HashLength: 20, NextDomain: chain[(i+1)%len(chain)].hash, TypeBitMap: types,
		}
		z.nsec3chain = append(z.nsec3chain, owner)
	}
}

// nsec3Match returns the NSEC3 owner matching name, or ""; z.mu held.
func (z *Zone) nsec3Match(name string) string {
	if o := z.nsec3Owner(name); z.nsec3[o] != nil {
		return o
	}
	return ""
}

// nsec3Cover returns the NSEC3 owner whose span covers the hash of name;
// z.mu held.
func (z *Zone) nsec3Cover(name string) string {
	if len(z.nsec3chain) == 0 {
		return ""
	}
	h := z.nsec3Owner(name)
	i := sort.Search(len(z.nsec3chain), func(i int) bool { return z.nsec3chain[i] >= h })
	if i == 0 {
		i = len(z.nsec3chain)
	}
	return z.nsec3chain[i-1]
}

// nsec3Encloser returns the closest ancestor of qname that has an NSEC3
// (the closest provable encloser, RFC 5155 §7.2.1); z.mu held.
func (z *Zone) nsec3Encloser(qname string) string {
	n := qname
	for n != z.origin {
		i, end := dns.NextLabel(n, 0)
		if end {
			break
		}
		n = n[i:]
		if z.nsec3Match(n) != "" {
			return n
		}
	}
	return z.origin
}

// nextCloser returns the name one label below ce on the way to qname.
func nextCloser(ce, qname string) string {
	idx := dns.Split(qname)
	k := len(idx) - dns.CountLabel(ce)
	if k <= 0 {
		return qname
	}
	return qname[idx[k-1]:]
}
