package dnssec

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestDSMatchAllocations: matching a DS against a key of a held DNSKEY
// RRset (RFC 4035 §5.2) hashes wire data derived once per RRset; it
// allocates nothing, where miekg's ToDS packed the key into a fresh
// 4 KiB buffer at every DS tried.
func TestDSMatchAllocations(t *testing.T) {
	k := &dns.DNSKEY{Hdr: dns.RR_Header{Name: "example.test.", Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600}, Flags: 257, Protocol: 3, Algorithm: dns.ECDSAP256SHA256}
	if _, err := k.Generate(256); err != nil {
		t.Fatal(err)
	}
	ds := k.ToDS(dns.SHA256)
	zk := newZoneKey(k)
	if n := testing.AllocsPerRun(50, func() {
		if !dsMatches(ds, zk) {
			t.Fatal("DS does not match its own key")
		}
	}); n != 0 {
		t.Fatalf("dsMatches allocates %v times per call, want 0", n)
	}
}

// TestZoneKeyDerivations: the key tag and DS digests derived once per
// DNSKEY RRset are the ones miekg's KeyTag and ToDS compute (RRSIG.Verify
// recomputes the tag, so they must agree, quirks included), for each DS
// digest type the validator checks.
func TestZoneKeyDerivations(t *testing.T) {
	gen := func(alg uint8, bits int, flags uint16, owner string) *dns.DNSKEY {
		k := &dns.DNSKEY{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600}, Flags: flags, Protocol: 3, Algorithm: alg}
		if _, err := k.Generate(bits); err != nil {
			t.Fatal(err)
		}
		return k
	}
	parse := func(s string) *dns.DNSKEY {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		return rr.(*dns.DNSKEY)
	}
	withKey := func(k *dns.DNSKEY, pub string) *dns.DNSKEY {
		c := *k
		c.PublicKey = pub
		return &c
	}
	p256 := gen(dns.ECDSAP256SHA256, 256, 257, "example.test.")
	// RFC 4034 §5.4: the example DNSKEY (key id 60485) and its SHA-1 DS.
	rfc := parse("dskey.example.com. 86400 IN DNSKEY 256 3 5 AQOeiiR0GOMYkDshWoSKz9XzfwJr1AYtsmx3TGkJaNXVbfi/2pHm822aJ5iI9BMzNXxeYCmZDRD99WYwYqUSdjMmmAphXdvxegXd/M5+X7OrzKBaMbCVdFLUUh6DhweJBjEVv5f2wwjM9XzcnOf+EPbtG9DMBmADjFDc2w/rljwvFw==")
	tests := []struct {
		name   string
		key    *dns.DNSKEY
		tag    int // -1: whatever KeyTag says
		sha1DS string
	}{
		{"RFC4034-5.4/example DNSKEY, key id 60485", rfc, 60485, "2BB183AF5F22588179A53B0A98631FAD1A292118"},
		{"RFC6605/ECDSA P-256 KSK", p256, -1, ""},
		{"RFC6605/ECDSA P-384 ZSK", gen(dns.ECDSAP384SHA384, 384, 256, "example.test."), -1, ""},
		{"RFC8080/Ed25519", gen(dns.ED25519, 256, 257, "example.test."), -1, ""},
		{"RFC5702/RSA/SHA-256 2048 bits", gen(dns.RSASHA256, 2048, 257, "example.test."), -1, ""},
		{"RFC5011-2.1/revoked: the REVOKE flag is in the tag", withFlags(p256, 257|dns.REVOKE), -1, ""},
		{"RFC4034-6.2/owner in upper case: the DS digests the canonical name", withOwner(p256, "EXAMPLE.Test."), -1, ""},
		{"RFC4034-2.2/public key with a line break (base64 ignores it)", withKey(p256, p256.PublicKey[:20]+"\n"+p256.PublicKey[20:]), -1, ""},
		{"RFC4034-2.1/empty public key", withKey(p256, ""), -1, ""},
		{"hostile/public key not base64: no wire form, tag 0", withKey(p256, "not base64!"), 0, ""},
		{"hostile/public key of 4095 octets: no wire form, tag 0", withKey(p256, strings.Repeat("AAAA", 1365)), 0, ""},
		{"hostile/public key of 4092 octets: the RDATA just fits a DNS message", withKey(p256, strings.Repeat("AAAA", 1364)), -1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			zk := newZoneKey(tt.key)
			want := int(tt.key.KeyTag())
			if tt.tag >= 0 && want != tt.tag {
				t.Fatalf("miekg KeyTag %d, want %d", want, tt.tag)
			}
			if int(zk.tag) != want {
				t.Fatalf("tag %d, KeyTag %d", zk.tag, want)
			}
			for _, dt := range []uint8{dns.SHA1, dns.SHA256, dns.SHA384, dns.SHA512, 3} {
				ds := tt.key.ToDS(dt)
				if dt == dns.SHA1 && tt.sha1DS != "" && (ds == nil || !strings.EqualFold(ds.Digest, tt.sha1DS)) {
					t.Fatalf("miekg ToDS(SHA-1) %v, want %s", ds, tt.sha1DS)
				}
				if ds == nil {
					if digestSupported(dt) && zk.dsInput != nil {
						t.Fatalf("digest type %d: ToDS has no DS for the key, yet it has a DS digest input here", dt)
					}
					continue
				}
				// digestSupported admits SHA-1, SHA-256 and SHA-384 only.
				supported := digestSupported(dt)
				if got := zk.digestMatches(dt, ds.Digest); got != supported {
					t.Fatalf("digest type %d: matches its own digest %v, want %v", dt, got, supported)
				}
				if got := zk.digestMatches(dt, strings.ToLower(ds.Digest)); got != supported {
					t.Fatalf("digest type %d: lower-case digest matches %v, want %v", dt, got, supported)
				}
				flipped := []byte(ds.Digest)
				flipped[len(flipped)-1] ^= 1
				for _, bad := range []string{string(flipped), ds.Digest[:len(ds.Digest)-2], ds.Digest + "00", "", strings.Repeat("G", len(ds.Digest))} {
					if zk.digestMatches(dt, bad) {
						t.Fatalf("digest type %d: %q matches", dt, bad)
					}
				}
				d := *ds
				if got := dsMatches(&d, zk); got != supported {
					t.Fatalf("digest type %d: dsMatches of its own DS %v, want %v", dt, got, supported)
				}
			}
		})
	}
}

func withFlags(k *dns.DNSKEY, flags uint16) *dns.DNSKEY {
	c := *k
	c.Flags = flags
	return &c
}

func withOwner(k *dns.DNSKEY, owner string) *dns.DNSKEY {
	c := *k
	c.Hdr.Name = owner
	return &c
}
