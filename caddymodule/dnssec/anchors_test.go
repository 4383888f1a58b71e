package dnssec

import (
	"os"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/internal/testenv"
)

// TestRootAnchorsMatchRootKey checks the built-in root DS digests against
// the root KSKs shipped by Debian's dns-root-data (RFC 4034 §5.1.4).
func TestRootAnchorsMatchRootKey(t *testing.T) {
	f, err := os.Open("/usr/share/dns/root.key")
	if err != nil {
		testenv.Missing(t, "dns-root-data not installed: "+err.Error())
	}
	defer f.Close()
	keys, err := ParseAnchors(f, ".")
	must(t, err)
	want := map[string]bool{}
	for _, rr := range RootAnchors() {
		ds := rr.(*dns.DS)
		want[ds.String()] = true
		if ds.Hdr.Name != "." || ds.Algorithm != dns.RSASHA256 || ds.DigestType != dns.SHA256 {
			t.Errorf("unexpected root anchor %s", ds)
		}
	}
	found := 0
	for _, rr := range keys {
		k, ok := rr.(*dns.DNSKEY)
		if !ok || k.Flags&dns.SEP == 0 {
			continue
		}
		ds := k.ToDS(dns.SHA256)
		ds.Hdr.Ttl = 172800
		ds.Digest = strings.ToUpper(ds.Digest)
		if !want[ds.String()] {
			t.Errorf("root.key KSK %d gives %s, not among the built-in anchors", k.KeyTag(), ds)
		}
		found++
	}
	if found != len(want) {
		t.Errorf("root.key has %d KSKs, built-in anchors %d", found, len(want))
	}
	if b, err := os.ReadFile("/usr/share/dns/root.ds"); err == nil {
		ds, err := ParseAnchors(strings.NewReader(string(b)), ".")
		must(t, err)
		for _, rr := range ds {
			rr.Header().Ttl = 172800
			d := rr.(*dns.DS)
			d.Digest = strings.ToUpper(d.Digest)
			if !want[d.String()] {
				t.Errorf("root.ds %s not among the built-in anchors", d)
			}
		}
	}
}

func TestParseAnchors(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		origin string
		n      int
		err    string
	}{
		{"Unbound root.key", ". IN DNSKEY 257 3 8 AwEAAaz/tAm8yTn4Mfeh5eyI96WSVexTBAvkMgJzkKTOiW1vkIbzxeF3+/4RgWOq7HrxRixHlFlExOLAJr5emLvN7SWXgnLh4+B5xQlNVz8Og8kvArMtNROxVQuCaSnIDdD5LKyWbRd2n9WGe2R8PzgCmr3EgVLrjyBxWezF0jLHwVN8efS3rCj/EWgvIWgb9tarpVUDK/b58Da+sqqls3eNbuv7pr+eoZG+SrDK6nWeL3c6H5Apxz7LjVc1uTIdsIXxuOLYA4/ilBmSVIzuDWfdRUfhHdY6+cn8HFRm+2hM8AnXGXws9555KrUB5qihylGa8subX2Nn6UwNR1AkUTV74bU= ; keytag 20326\n", "", 1, ""},
		{"DS records of two zones", "; anchors\nexample.  IN DS 12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\nexample.net. 3600 IN DS 54321 8 2 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF\n", "", 2, ""},
		{"ldns-keygen .ds with origin", "@ IN DS 12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n", "example.org", 1, ""},
		{"parenthesised DNSKEY", "$ORIGIN test.\n@ 3600 IN DNSKEY ( 257 3 13\n  mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ== )\n", "", 1, ""},
		{"A record refused with line number", "example. IN DS 12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n\n; comment\nwww.example. IN A 192.0.2.1\n", "", 0, "line 4: www.example. A record: only DS and DNSKEY"},
		{"line number after parentheses", "$TTL 60\nx. IN DNSKEY ( 257 3 13\n mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ== )\nx. IN NS ns.x.\n", "", 0, "line 4: x. NS record"},
		{"non-zone DNSKEY refused", "x. IN DNSKEY 0 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==\n", "", 0, "line 1: x. DNSKEY 2114: unusable as a trust anchor: Zone Key flag not set"},
		{"revoked DNSKEY refused", "x. IN DNSKEY 385 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==\n", "", 0, "unusable as a trust anchor: revoked"},
		{"protocol 2 refused", "x. IN DNSKEY 257 2 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==\n", "", 0, "unusable as a trust anchor: protocol 2"},
		{"class CH refused", "x. CH DS 12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n", "", 0, "class CH"},
		{"syntax error", "x. IN DS 12345 thirteen 2 00\n", "", 0, "line: 1"},
		{"empty", "; nothing\n", "", 0, "no DS or DNSKEY"},
		{"$INCLUDE refused", "$INCLUDE /etc/passwd\n", "", 0, "trust anchors"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rrs, err := ParseAnchors(strings.NewReader(tt.in), tt.origin)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(rrs) != tt.n {
				t.Fatalf("%d anchors, want %d", len(rrs), tt.n)
			}
			if _, err := New(Config{Exchanger: ExchangeFunc(nil), Anchors: rrs}); err != nil {
				t.Errorf("New rejects parsed anchors: %v", err)
			}
		})
	}
}

func TestRootAnchorsFresh(t *testing.T) {
	a := RootAnchors()
	a[0].(*dns.DS).KeyTag = 1
	if RootAnchors()[0].(*dns.DS).KeyTag != 20326 {
		t.Fatal("RootAnchors shares its records")
	}
}
