package dnssec

import (
	"context"
	"strings"
	"testing"

	"github.com/caddy-dane/caddy-dane/internal/zonekit"
	"github.com/miekg/dns"
)

// TestUsableDSPerRRset: which DS records of one RRset are used (RFC 4509
// §3: a validator ignores SHA-1 DS records when the DS RRset holds a SHA-256
// one; RFC 6840 §5.2: unknown digest types are ignored, and with none left
// the zone is Insecure). The SHA-1 rule is about the RRset, not about one
// key: a SHA-1 DS for a key that has no SHA-2 DS of its own is ignored as
// well, or an attacker who can add a DS (or strip one) could steer the
// chain of trust onto the weaker digest.
func TestUsableDSPerRRset(t *testing.T) {
	ds := func(tag uint16, alg, digest uint8) *dns.DS {
		return &dns.DS{Hdr: dns.RR_Header{Name: "example.test.", Rrtype: dns.TypeDS, Class: dns.ClassINET},
			KeyTag: tag, Algorithm: alg, DigestType: digest, Digest: "00"}
	}
	tests := []struct {
		name string
		set  []*dns.DS
		want []string // dsString of the usable DS records
		ede  uint16
	}{
		{"RFC4509-3/SHA-1 alone is used", []*dns.DS{ds(1, 13, 1)}, []string{"1/13/1"}, 0},
		{"RFC4509-3/SHA-1 beside SHA-256 for the same key is ignored", []*dns.DS{ds(1, 13, 1), ds(1, 13, 2)}, []string{"1/13/2"}, 0},
		{"RFC4509-3/SHA-1 for another key is ignored when the RRset has SHA-256", []*dns.DS{ds(1, 13, 2), ds(2, 13, 1)}, []string{"1/13/2"}, 0},
		{"RFC4509-3/SHA-384 also makes SHA-1 ignored", []*dns.DS{ds(2, 8, 1), ds(1, 13, 4)}, []string{"1/13/4"}, 0},
		{"RFC4509-3/SHA-256 and SHA-384 are both used", []*dns.DS{ds(1, 13, 2), ds(2, 13, 4)}, []string{"1/13/2", "2/13/4"}, 0},
		{"RFC4509-3/a SHA-256 DS of an unsupported algorithm does not make SHA-1 ignored", []*dns.DS{ds(1, 200, 2), ds(2, 13, 1)}, []string{"2/13/1"}, 0},
		{"RFC6840-5.2/unknown digest type beside SHA-1: SHA-1 used", []*dns.DS{ds(1, 13, 3), ds(2, 13, 1)}, []string{"2/13/1"}, 0},
		{"RFC6840-5.2/only unknown digest types: Insecure", []*dns.DS{ds(1, 13, 3), ds(2, 13, 5)}, nil, dns.ExtendedErrorCodeUnsupportedDSDigestType},
		{"RFC4035-5.2/only unsupported algorithms: Insecure", []*dns.DS{ds(1, 5, 2), ds(2, 200, 1)}, nil, dns.ExtendedErrorCodeUnsupportedDNSKEYAlgorithm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ede := usableDS(tt.set)
			var names []string
			for _, d := range got {
				names = append(names, dsString(d))
			}
			if strings.Join(names, " ") != strings.Join(tt.want, " ") || ede != tt.ede {
				t.Fatalf("usable %v (EDE %d), want %v (EDE %d)", names, ede, tt.want, tt.ede)
			}
		})
	}
}

// TestSHA1DSIgnoredPerRRset is the chain-of-trust case of RFC 4509 §3: the
// parent's DS RRset holds a SHA-256 DS for key A and a SHA-1 DS for key B,
// and only B signs the child's DNSKEY RRset. The SHA-1 DS is ignored, so no
// usable DS leads to a key that signed: Bogus. (Unbound, with
// harden-algo-downgrade, goes further and uses only the strongest digest
// type present: val_ds_sha2_downgrade.crpl.)
func TestSHA1DSIgnoredPerRRset(t *testing.T) {
	tests := []struct {
		name    string
		publish bool // key A is in the child's DNSKEY RRset (it signs nothing)
		status  Status
		ede     uint16
		reason  string
	}{
		{"RFC4509-3/SHA-256 DS for an unpublished key, SHA-1 DS for the signing key", false, Bogus, dns.ExtendedErrorCodeDNSKEYMissing, "no DNSKEY in example.test. matches DS"},
		{"RFC4509-3/SHA-256 DS for a published key that does not sign, SHA-1 DS for the signing key", true, Bogus, dns.ExtendedErrorCodeDNSKEYMissing, "for RRSIG example.test. DNSKEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTree(t, hooks{beforeSign: func(tr *tree) {
				other := zonekit.NewZone("example.test.")
				a, _ := other.Keys()
				if tt.publish {
					tr.zone.PublishDNSKEY(a.DNSKEY)
				}
				b, _ := tr.zone.Keys()
				tr.tld.Remove("example.test.", dns.TypeDS)
				must(nil, tr.tld.AddRR(a.DNSKEY.ToDS(dns.SHA256), b.DNSKEY.ToDS(dns.SHA1)))
			}})
			v := newValidator(t, tr.srv, dsAnchors(tr.tld), newClock())
			r := v.Lookup(context.Background(), tlsaName, dns.TypeTLSA)
			t.Logf("%s", r)
			if r.Status != tt.status || r.EDE != tt.ede || !strings.Contains(Reason(r.Err), tt.reason) {
				t.Fatalf("%s (EDE %d), want %s (EDE %d) with %q", r, r.EDE, tt.status, tt.ede, tt.reason)
			}
			checkErrType(t, r)
		})
	}
	// The same tree with the SHA-2 DS removed: SHA-1 alone still works.
	tr := newTree(t, hooks{beforeSign: func(tr *tree) {
		b, _ := tr.zone.Keys()
		tr.tld.Remove("example.test.", dns.TypeDS)
		must(nil, tr.tld.AddRR(b.DNSKEY.ToDS(dns.SHA1)))
	}})
	v := newValidator(t, tr.srv, dsAnchors(tr.tld), newClock())
	if r := v.Lookup(context.Background(), tlsaName, dns.TypeTLSA); r.Status != Secure || !strings.HasSuffix(r.Chain[1].DS[0], "/1") {
		t.Fatalf("SHA-1 DS alone: %s %v", r, r.Chain)
	}
}
