package dnssec

import (
	"context"
	"strings"
	"testing"

	"github.com/caddy-dane/caddy-dane/internal/zonekit"
	"github.com/miekg/dns"
)

const (
	digest64  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	p256Key   = "mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ=="
	rsaSHA1DK = "AwEAAaz/tAm8yTn4Mfeh5eyI96WSVexTBAvkMgJzkKTOiW1vkIbzxeF3+/4RgWOq7HrxRixHlFlExOLAJr5emLvN7SWXgnLh4+B5xQlNVz8Og8kvArMtNROxVQuCaSnIDdD5LKyWbRd2n9WGe2R8PzgCmr3EgVLrjyBxWezF0jLHwVN8efS3rCj/EWgvIWgb9tarpVUDK/b58Da+sqqls3eNbuv7pr+eoZG+SrDK6nWeL3c6H5Apxz7LjVc1uTIdsIXxuOLYA4/ilBmSVIzuDWfdRUfhHdY6+cn8HFRm+2hM8AnXGXws9555KrUB5qihylGa8subX2Nn6UwNR1AkUTV74bU="
)

// TestAnchorsThatProveNothing: a trust anchor whose records all use an
// algorithm or digest type this validator does not implement can prove
// nothing; it is a configuration error, refused by ParseAnchors (with its
// line) and by New (so `caddy validate` reports it), naming the zone. One
// usable record beside unusable ones is enough (an algorithm rollover).
func TestAnchorsThatProveNothing(t *testing.T) {
	tests := []struct {
		name string
		in   string
		err  string // "" when accepted
	}{
		{"RFC4035-5.2/DS anchor with an unsupported algorithm only", "example. IN DS 12345 5 2 " + digest64 + "\n",
			"line 1: example.: no trust anchor record of this zone has a supported algorithm and digest type (DS 12345/5/2)"},
		{"RFC4035-5.2/DNSKEY anchor with an unsupported algorithm only", "example. IN DNSKEY 257 3 5 " + rsaSHA1DK + "\n",
			"line 1: example.: no trust anchor record of this zone has a supported algorithm and digest type (DNSKEY 20323/5), so it can prove nothing (algorithm unsupported"},
		{"RFC6840-5.2/DS anchor with an unsupported digest type only", "example. IN DS 12345 13 3 " + digest64 + "\n",
			"line 1: example.: no trust anchor record of this zone has a supported algorithm and digest type (DS 12345/13/3), so it can prove nothing (digest type unsupported"},
		{"RFC4035-5.2/several unusable records of one zone are all named", "\nexample. IN DS 1 200 2 " + digest64 + "\nexample. IN DNSKEY 257 3 7 " + rsaSHA1DK + "\n",
			"line 2: example.: no trust anchor record of this zone has a supported algorithm and digest type (DS 1/200/2, DNSKEY"},
		{"RFC4035-5.2/the unusable zone of two is the one named", "example. IN DS 12345 13 2 " + digest64 + "\nexample.net. IN DS 54321 200 2 " + digest64 + "\n",
			"line 2: example.net.: no trust anchor record"},
		{"RFC6840-5.11/a supported DS beside an unsupported one is accepted", "example. IN DS 1 200 2 " + digest64 + "\nexample. IN DS 2 13 2 " + digest64 + "\n", ""},
		{"RFC6840-5.11/a supported DNSKEY beside an unsupported DS is accepted", "example. IN DS 1 200 2 " + digest64 + "\nexample. IN DNSKEY 257 3 13 " + p256Key + "\n", ""},
		{"RFC4509-3/a SHA-1 DS alone is usable", "example. IN DS 2 13 1 0123456789abcdef0123456789abcdef01234567\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rrs, err := ParseAnchors(strings.NewReader(tt.in), "")
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := New(Config{Exchanger: ExchangeFunc(nil), Anchors: rrs}); err != nil {
					t.Fatalf("New rejects parsed anchors: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("ParseAnchors: error %v, want %q", err, tt.err)
			}
			// New applies the same rule to anchors it is handed directly,
			// naming the zone.
			var direct []dns.RR
			zp := dns.NewZoneParser(strings.NewReader(tt.in), ".", "")
			for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
				direct = append(direct, rr)
			}
			must(t, zp.Err())
			zone := strings.TrimSpace(tt.err[:strings.Index(tt.err, ": no trust anchor")])
			zone = zone[strings.LastIndex(zone, " ")+1:]
			_, err = New(Config{Exchanger: ExchangeFunc(nil), Anchors: direct})
			if err == nil || !strings.Contains(err.Error(), "trust anchor "+zone+": no trust anchor record") || !strings.Contains(err.Error(), "can prove nothing") {
				t.Fatalf("New: error %v, want it to name %s and say it can prove nothing", err, zone)
			}
		})
	}
}

// TestUnusableAnchorAtRuntime: the one rule for a trust anchor none of
// whose records this validator can use, DS or DNSKEY alike: the zone is
// Insecure, as for a DS RRset from the parent with no supported algorithm
// or digest type (RFC 4035 §5.2, RFC 6840 §5.2; BIND does the same). The
// anchor still shadows any anchor above it (RFC 6840 §5.10), so the zone
// never becomes Secure through the parent's chain, as it would if the
// anchor were dropped (Unbound ignores such an anchor). New refuses these
// anchors; the rule is tested by setting them behind its back.
func TestUnusableAnchorAtRuntime(t *testing.T) {
	tests := []struct {
		name   string
		alg    uint8 // the zone's algorithm
		anchor func(z *zonekit.Zone) *anchorSet
		root   bool // keep the root anchor, above
		ede    uint16
	}{
		{"RFC4035-5.2/DNSKEY anchor, algorithm 5", dns.RSASHA1, func(z *zonekit.Zone) *anchorSet {
			return &anchorSet{keys: z.DNSKEYs()[:1]}
		}, false, dns.ExtendedErrorCodeUnsupportedDNSKEYAlgorithm},
		{"RFC4035-5.2/DS anchor, algorithm 5", dns.RSASHA1, func(z *zonekit.Zone) *anchorSet {
			return &anchorSet{ds: z.DS()}
		}, false, dns.ExtendedErrorCodeUnsupportedDNSKEYAlgorithm},
		{"RFC4035-5.2/DNSKEY anchor, algorithm 5, root anchor above", dns.RSASHA1, func(z *zonekit.Zone) *anchorSet {
			return &anchorSet{keys: z.DNSKEYs()[:1]}
		}, true, dns.ExtendedErrorCodeUnsupportedDNSKEYAlgorithm},
		{"RFC6840-5.2/DS anchor with an unsupported digest type", dns.ECDSAP256SHA256, func(z *zonekit.Zone) *anchorSet {
			d := z.DS()[0]
			d.DigestType = dns.GOST94
			return &anchorSet{ds: []*dns.DS{d}}
		}, false, dns.ExtendedErrorCodeUnsupportedDSDigestType},
		{"RFC6840-5.10/unusable DS anchor over a zone the root's chain proves secure: not Secure", dns.ECDSAP256SHA256, func(z *zonekit.Zone) *anchorSet {
			d := z.DS()[0]
			d.Algorithm = 200
			return &anchorSet{ds: []*dns.DS{d}}
		}, true, dns.ExtendedErrorCodeUnsupportedDNSKEYAlgorithm},
		{"RFC6840-5.10/unusable DNSKEY anchor over a zone the root's chain proves secure: not Secure", dns.ECDSAP256SHA256, func(z *zonekit.Zone) *anchorSet {
			k := dns.Copy(z.DNSKEYs()[0]).(*dns.DNSKEY)
			k.Algorithm = 200
			return &anchorSet{keys: []*dns.DNSKEY{k}}
		}, true, dns.ExtendedErrorCodeUnsupportedDNSKEYAlgorithm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTree(t, hooks{beforeDelegate: func(tr *tree) { must(nil, tr.zone.SetAlgorithm(tt.alg)) }})
			v := newValidator(t, tr.srv, dsAnchors(tr.root), newClock())
			v.anchors["example.test."] = tt.anchor(tr.zone)
			if !tt.root {
				delete(v.anchors, ".")
			}
			for _, q := range []struct {
				name  string
				qtype uint16
			}{{tlsaName, dns.TypeTLSA}, {"example.test.", dns.TypeDNSKEY}, {"_443._tcp.nope.example.test.", dns.TypeTLSA}} {
				r := v.Lookup(context.Background(), q.name, q.qtype)
				t.Logf("%s", r)
				if r.Status != Insecure || r.EDE != tt.ede || !strings.Contains(Reason(r.Err), "no trust anchor for example.test. has a supported") {
					t.Fatalf("%s (EDE %d), want insecure (EDE %d) for the unusable trust anchor", r, r.EDE, tt.ede)
				}
				checkErrType(t, r)
			}
		})
	}
}
