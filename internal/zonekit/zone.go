package zonekit

import (
	"crypto"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// DefaultTTL is the TTL given to records added without one, and to the
// DNSKEY RRset.
const DefaultTTL = 3600

// Key is one DNSSEC key pair of a zone.
type Key struct {
	DNSKEY  *dns.DNSKEY
	Private crypto.Signer
}

// Zone is one zone: its records, its keys and, once signed, its RRSIGs and
// NSEC chain. A Zone is safe for concurrent use by a Server while another
// goroutine re-signs it.
type Zone struct {
	origin string

	mu        sync.RWMutex
	algorithm uint8
	unsigned  bool
	ksk, zsk  *Key
	data      map[string]map[uint16][]dns.RR // owner → type → RRset (no DNSSEC records)
	sigs      map[string]map[uint16][]dns.RR // owner → covered type → RRSIGs
	nsec      map[string]*dns.NSEC           // owner → NSEC
	chain     []string                       // NSEC owners in canonical order

	extraKeys  []*dns.DNSKEY         // published, not signing (PublishDNSKEY)
	nsec3p     *NSEC3Params          // NSEC3 instead of NSEC when set
	nsec3      map[string]*dns.NSEC3 // owner → NSEC3
	nsec3chain []string              // NSEC3 owners in hash order
}

// NewZone returns an empty zone for origin with an SOA, an NS record
// "ns.<origin>" and its address, and fresh ECDSA P-256 keys.
func NewZone(origin string) *Zone {
	origin = dns.CanonicalName(origin)
	z := &Zone{
		origin: origin,
		data:   make(map[string]map[uint16][]dns.RR),
	}
	if err := z.SetAlgorithm(dns.ECDSAP256SHA256); err != nil {
		panic("zonekit: generating P-256 keys: " + err.Error())
	}
	ns := "ns." + origin
	if origin == "." {
		ns = "ns."
	}
	z.MustAdd(
		fmt.Sprintf("@ %d IN SOA %s hostmaster.%s 1 7200 3600 1209600 300", DefaultTTL, ns, strings.TrimPrefix(origin, ".")),
		fmt.Sprintf("@ %d IN NS %s", DefaultTTL, ns),
		fmt.Sprintf("%s %d IN A 192.0.2.53", ns, DefaultTTL),
	)
	return z
}

// Origin returns the zone's apex name.
func (z *Zone) Origin() string { return z.origin }

// SetAlgorithm replaces the zone's keys with fresh keys of the given DNSSEC
// algorithm (5, 7, 8, 10, 13, 14 or 15). Call it before Delegate and Sign.
func (z *Zone) SetAlgorithm(alg uint8) error {
	ksk, err := newKey(z.origin, dns.ZONE|dns.SEP, alg)
	if err != nil {
		return err
	}
	zsk, err := newKey(z.origin, dns.ZONE, alg)
	if err != nil {
		return err
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	z.algorithm, z.ksk, z.zsk = alg, ksk, zsk
	return nil
}

func newKey(origin string, flags uint16, alg uint8) (*Key, error) {
	k := &dns.DNSKEY{
		Hdr:       dns.RR_Header{Name: origin, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: DefaultTTL},
		Flags:     flags,
		Protocol:  3,
		Algorithm: alg,
	}
	bits := 256
	switch alg {
	case dns.RSASHA1, dns.RSASHA1NSEC3SHA1, dns.RSASHA256, dns.RSASHA512:
		bits = 2048
	case dns.ECDSAP384SHA384:
		bits = 384
	}
	priv, err := k.Generate(bits)
	for err == nil && k.KeyTag() == 0 {
		// miekg/dns refuses to sign with key tag 0 (one key in 65536).
		priv, err = k.Generate(bits)
	}
	if err != nil {
		return nil, fmt.Errorf("generating algorithm %d key for %s: %w", alg, origin, err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("algorithm %d key for %s is not a crypto.Signer", alg, origin)
	}
	return &Key{DNSKEY: k, Private: signer}, nil
}

// PublishDNSKEY adds keys to the zone's DNSKEY RRset without signing with
// them (pre-published keys, or hostile ones for tests). Call Sign after.
func (z *Zone) PublishDNSKEY(keys ...*dns.DNSKEY) {
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, k := range keys {
		k = dns.Copy(k).(*dns.DNSKEY)
		k.Hdr.Name = z.origin
		z.extraKeys = append(z.extraKeys, k)
	}
}

// Keys returns the key-signing and zone-signing keys.
func (z *Zone) Keys() (ksk, zsk *Key) {
	z.mu.RLock()
	defer z.mu.RUnlock()
	return z.ksk, z.zsk
}

// SetUnsigned makes Sign leave the zone without DNSKEY, RRSIG and NSEC
// records, and makes Delegate put no DS for it in the parent.
func (z *Zone) SetUnsigned(unsigned bool) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.unsigned = unsigned
}

// Unsigned reports whether the zone is left unsigned.
func (z *Zone) Unsigned() bool {
	z.mu.RLock()
	defer z.mu.RUnlock()
	return z.unsigned
}

// DS returns the SHA-256 DS record of the key-signing key (RFC 4509), to put
// in the parent or to use as a trust anchor.
func (z *Zone) DS() []*dns.DS {
	z.mu.RLock()
	defer z.mu.RUnlock()
	return []*dns.DS{z.ksk.DNSKEY.ToDS(dns.SHA256)}
}

// DNSKEYs returns the zone's public keys, key-signing key first.
func (z *Zone) DNSKEYs() []*dns.DNSKEY {
	z.mu.RLock()
	defer z.mu.RUnlock()
	return []*dns.DNSKEY{z.ksk.DNSKEY, z.zsk.DNSKEY}
}

// Add parses records in presentation format, relative to the zone origin
// with DefaultTTL, and adds them. Records outside the zone and DNSSEC
// records (RRSIG, NSEC, NSEC3, DNSKEY), which Sign makes, are refused.
func (z *Zone) Add(records ...string) error {
	var rrs []dns.RR
	for _, s := range records {
		zp := dns.NewZoneParser(strings.NewReader(s), z.origin, "")
		zp.SetDefaultTTL(DefaultTTL)
		for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
			rrs = append(rrs, rr)
		}
		if err := zp.Err(); err != nil {
			return fmt.Errorf("zone %s: parsing %q: %w", z.origin, s, err)
		}
	}
	return z.AddRR(rrs...)
}

// MustAdd is Add that panics on error, for tests.
func (z *Zone) MustAdd(records ...string) *Zone {
	if err := z.Add(records...); err != nil {
		panic(err)
	}
	return z
}

// AddRR adds records; see Add. The records are copied.
func (z *Zone) AddRR(rrs ...dns.RR) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, rr := range rrs {
		h := rr.Header()
		if !dns.IsSubDomain(z.origin, h.Name) {
			return fmt.Errorf("zone %s: %s is out of zone", z.origin, h.Name)
		}
		switch h.Rrtype {
		case dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNSEC3, dns.TypeDNSKEY, dns.TypeOPT:
			return fmt.Errorf("zone %s: %s %s records are made by Sign", z.origin, h.Name, dns.TypeToString[h.Rrtype])
		}
		rr = dns.Copy(rr)
		rr.Header().Name = dns.CanonicalName(h.Name)
		owner := rr.Header().Name
		if z.data[owner] == nil {
			z.data[owner] = make(map[uint16][]dns.RR)
		}
		set := z.data[owner][h.Rrtype]
		dup := false
		for _, old := range set {
			if dns.IsDuplicate(old, rr) {
				dup = true
			}
		}
		if !dup {
			z.data[owner][h.Rrtype] = append(set, rr)
		}
	}
	return nil
}

// Remove deletes the RRset of rrtype at name (all types when rrtype is
// dns.TypeANY). Sign must be called again afterwards.
func (z *Zone) Remove(name string, rrtype uint16) {
	z.mu.Lock()
	defer z.mu.Unlock()
	name = dns.CanonicalName(name)
	if rrtype == dns.TypeANY {
		delete(z.data, name)
		return
	}
	delete(z.data[name], rrtype)
	if len(z.data[name]) == 0 {
		delete(z.data, name)
	}
}

// RRset returns a copy of the records of rrtype at name, without RRSIGs.
func (z *Zone) RRset(name string, rrtype uint16) []dns.RR {
	z.mu.RLock()
	defer z.mu.RUnlock()
	return copyRRs(z.rrset(dns.CanonicalName(name), rrtype))
}

// rrset returns the stored RRset (DNSKEY and NSEC included); z.mu held.
func (z *Zone) rrset(name string, rrtype uint16) []dns.RR {
	switch rrtype {
	case dns.TypeDNSKEY:
		if name == z.origin && !z.unsigned && z.sigs != nil {
			set := []dns.RR{z.ksk.DNSKEY, z.zsk.DNSKEY}
			for _, k := range z.extraKeys {
				set = append(set, k)
			}
			return set
		}
		return nil
	case dns.TypeNSEC:
		if n := z.nsec[name]; n != nil {
			return []dns.RR{n}
		}
		return nil
	case dns.TypeNSEC3:
		if n := z.nsec3[name]; n != nil {
			return []dns.RR{n}
		}
		return nil
	}
	return z.data[name][rrtype]
}

// Records returns every record of the zone, RRSIGs and NSECs included, in
// canonical order of owner names.
func (z *Zone) Records() []dns.RR {
	z.mu.RLock()
	defer z.mu.RUnlock()
	owners := make(map[string]bool)
	for n := range z.data {
		owners[n] = true
	}
	for n := range z.nsec {
		owners[n] = true
	}
	for n := range z.nsec3 {
		owners[n] = true
	}
	names := make([]string, 0, len(owners))
	for n := range owners {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return CompareNames(names[i], names[j]) < 0 })
	var out []dns.RR
	for _, n := range names {
		for _, t := range z.types(n) {
			out = append(out, copyRRs(z.rrset(n, t))...)
			out = append(out, copyRRs(z.sigs[n][t])...)
		}
	}
	return out
}

// String returns the zone in presentation format.
func (z *Zone) String() string {
	var b strings.Builder
	for _, rr := range z.Records() {
		b.WriteString(rr.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// types returns the types present at name, sorted; z.mu held.
func (z *Zone) types(name string) []uint16 {
	var ts []uint16
	for t := range z.data[name] {
		ts = append(ts, t)
	}
	if name == z.origin && !z.unsigned && z.sigs != nil {
		ts = append(ts, dns.TypeDNSKEY)
	}
	if z.nsec[name] != nil {
		ts = append(ts, dns.TypeNSEC)
	}
	if z.nsec3[name] != nil {
		ts = append(ts, dns.TypeNSEC3)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	return ts
}

// cut returns the delegation point at or above name inside the zone (an
// owner other than the apex holding NS records), or "".
func (z *Zone) cut(name string) string {
	for n := name; dns.IsSubDomain(z.origin, n) && n != z.origin; {
		if len(z.data[n][dns.TypeNS]) > 0 {
			return n
		}
		i, end := dns.NextLabel(n, 0)
		if end {
			break
		}
		n = n[i:]
	}
	return ""
}

// exists reports whether name owns records or is an empty non-terminal
// (RFC 4592 §2.2.2) in the zone's authoritative data.
func (z *Zone) exists(name string) bool {
	if len(z.data[name]) > 0 {
		return true
	}
	suffix := "." + name
	if name == "." {
		suffix = "."
	}
	for n := range z.data {
		if strings.HasSuffix(n, suffix) && n != name {
			return true
		}
	}
	return false
}

func copyRRs(rrs []dns.RR) []dns.RR {
	if len(rrs) == 0 {
		return nil
	}
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		out[i] = dns.Copy(rr)
	}
	return out
}
