package zonekit

import (
	"fmt"
	"sort"
	"time"

	"github.com/miekg/dns"
)

// Sign (re)signs the zone: it publishes the DNSKEY RRset, builds the NSEC
// chain (RFC 4034 §4, RFC 4035 §2.3) and makes one RRSIG per authoritative
// RRset valid from inception to expiration (RFC 4035 §2.2). The key-signing
// key signs the DNSKEY RRset, the zone-signing key everything else.
// Delegation NS RRsets and glue are not authoritative and stay unsigned
// (RFC 4035 §2.2). An unsigned zone (SetUnsigned) only loses its DNSSEC
// records.
func (z *Zone) Sign(inception, expiration time.Time) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.sigs, z.nsec, z.chain, z.nsec3, z.nsec3chain = nil, nil, nil, nil, nil
	delete(z.data[z.origin], dns.TypeNSEC3PARAM)
	if z.unsigned {
		return nil
	}
	z.sigs = make(map[string]map[uint16][]dns.RR)
	if z.nsec3p != nil {
		z.buildNSEC3(z.negativeTTL())
	} else {
		z.buildNSEC()
	}
	for owner, sets := range z.data {
		for t, set := range sets {
			if !z.authoritative(owner, t) {
				continue
			}
			if err := z.signLocked(set, z.zsk, inception, expiration); err != nil {
				return err
			}
		}
	}
	for _, owner := range z.chain {
		if err := z.signLocked([]dns.RR{z.nsec[owner]}, z.zsk, inception, expiration); err != nil {
			return err
		}
	}
	for _, owner := range z.nsec3chain {
		if err := z.signLocked([]dns.RR{z.nsec3[owner]}, z.zsk, inception, expiration); err != nil {
			return err
		}
	}
	return z.signLocked(z.rrset(z.origin, dns.TypeDNSKEY), z.ksk, inception, expiration)
}

// SignRRset replaces the RRSIG over one RRset with one valid from inception
// to expiration, to make expired or not-yet-valid signatures. The zone must
// have been signed.
func (z *Zone) SignRRset(name string, rrtype uint16, inception, expiration time.Time) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	name = dns.CanonicalName(name)
	if z.sigs == nil {
		return fmt.Errorf("zone %s is not signed", z.origin)
	}
	set := z.rrset(name, rrtype)
	if len(set) == 0 {
		return fmt.Errorf("zone %s: no %s RRset at %s", z.origin, dns.TypeToString[rrtype], name)
	}
	key := z.zsk
	if rrtype == dns.TypeDNSKEY {
		key = z.ksk
	}
	delete(z.sigs[name], rrtype)
	return z.signLocked(set, key, inception, expiration)
}

// authoritative reports whether the RRset of type t at owner is signed:
// not glue below a zone cut, not occluded below a DNAME (RFC 6672 §2.4),
// and at a cut only DS (and NSEC). z.mu held.
func (z *Zone) authoritative(owner string, t uint16) bool {
	if z.dnameAbove(owner) != "" {
		return false
	}
	switch cut := z.cut(owner); {
	case cut == "":
		return true
	case cut == owner:
		return t == dns.TypeDS || t == dns.TypeNSEC
	default:
		return false
	}
}

func (z *Zone) signLocked(set []dns.RR, key *Key, inception, expiration time.Time) error {
	h := set[0].Header()
	sig := &dns.RRSIG{
		Hdr:        dns.RR_Header{Ttl: h.Ttl},
		Algorithm:  key.DNSKEY.Algorithm,
		SignerName: z.origin,
		KeyTag:     key.DNSKEY.KeyTag(),
		Inception:  uint32(inception.Unix()),
		Expiration: uint32(expiration.Unix()),
	}
	if err := sig.Sign(key.Private, set); err != nil {
		return fmt.Errorf("zone %s: signing %s %s: %w", z.origin, h.Name, dns.TypeToString[h.Rrtype], err)
	}
	if z.sigs[h.Name] == nil {
		z.sigs[h.Name] = make(map[uint16][]dns.RR)
	}
	z.sigs[h.Name][h.Rrtype] = append(z.sigs[h.Name][h.Rrtype], sig)
	return nil
}

// buildNSEC makes the NSEC chain over the authoritative owner names and
// delegation points (not glue, not names occluded by a DNAME, not empty
// non-terminals). z.mu held.
func (z *Zone) buildNSEC() {
	ttl := z.negativeTTL()
	var owners []string
	for owner := range z.data {
		if cut := z.cut(owner); (cut == "" || cut == owner) && z.dnameAbove(owner) == "" {
			owners = append(owners, owner)
		}
	}
	sort.Slice(owners, func(i, j int) bool { return CompareNames(owners[i], owners[j]) < 0 })
	z.nsec = make(map[string]*dns.NSEC, len(owners))
	z.chain = owners
	for i, owner := range owners {
		types := []uint16{dns.TypeNSEC, dns.TypeRRSIG}
		for t := range z.data[owner] {
			if z.cut(owner) == owner && t != dns.TypeNS && t != dns.TypeDS {
				continue
			}
			types = append(types, t)
		}
		if owner == z.origin {
			types = append(types, dns.TypeDNSKEY)
		}
		sort.Slice(types, func(i, j int) bool { return types[i] < types[j] })
		z.nsec[owner] = &dns.NSEC{
			Hdr:        dns.RR_Header{Name: owner, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: ttl},
			NextDomain: owners[(i+1)%len(owners)],
			TypeBitMap: types,
		}
	}
}

// covering returns the NSEC whose owner is the greatest name not after name
// in canonical order: it matches name or covers it (RFC 4035 §5.4). z.mu held.
func (z *Zone) covering(name string) *dns.NSEC {
	if len(z.chain) == 0 {
		return nil
	}
	i := sort.Search(len(z.chain), func(i int) bool { return CompareNames(z.chain[i], name) > 0 })
	if i == 0 {
		i = len(z.chain)
	}
	return z.nsec[z.chain[i-1]]
}

// negativeTTL is the TTL of NSEC and NSEC3 records: min(SOA TTL, SOA
// MINIMUM) (RFC 9077 §3.3). z.mu held.
func (z *Zone) negativeTTL() uint32 {
	ttl := uint32(DefaultTTL)
	if soa := z.data[z.origin][dns.TypeSOA]; len(soa) > 0 {
		if s, ok := soa[0].(*dns.SOA); ok {
			ttl = min(s.Minttl, s.Hdr.Ttl)
		}
	}
	return ttl
}
