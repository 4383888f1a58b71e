package dnssec

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/caddy-dane/caddy-dane/internal/zonekit"
	"github.com/miekg/dns"
)

// rfc5155Zone is the example zone of RFC 5155 Appendix A (salt aabbccdd,
// 12 iterations, opt-out), signed with our own keys: the names, and so the
// NSEC3 chain, are the RFC's.
func rfc5155Zone(t *testing.T) *zonekit.Zone {
	z := zonekit.NewZone("example.")
	z.Remove("ns.example.", dns.TypeANY)
	z.Remove("example.", dns.TypeNS)
	z.MustAdd(
		"@ NS ns1.example.", "@ NS ns2.example.", "@ MX 1 xx.example.",
		"2t7b4g4vsa5smi47k61mv5bv1a22bojr A 192.0.2.127",
		"a NS ns1.a.example.", "a NS ns2.a.example.",
		"a DS 58470 5 1 3079F1593EBAD6DC121E202A8B766A6A4837206C",
		"ns1.a A 192.0.2.5", "ns2.a A 192.0.2.6",
		"ai A 192.0.2.9", `ai HINFO "KLH-10" "ITS"`, "ai AAAA 2001:db8::f00:baa9",
		"c NS ns1.c.example.", "c NS ns2.c.example.",
		"ns1.c A 192.0.2.7", "ns2.c A 192.0.2.8",
		"ns1 A 192.0.2.1", "ns2 A 192.0.2.2",
		"*.w MX 1 ai.example.", "x.w MX 1 xx.example.", "x.y.w MX 1 xx.example.",
		"xx A 192.0.2.10", `xx HINFO "KLH-10" "TOPS-20"`, "xx AAAA 2001:db8::f00:baaa",
	)
	z.SetNSEC3(&zonekit.NSEC3Params{Iterations: 12, Salt: "aabbccdd", OptOut: true})
	must(t, z.Sign(testInception, testExpiration))
	return z
}

// TestRFC5155Hashes checks our NSEC3 hashing against the hashed owner
// names listed in RFC 5155 Appendix A.
func TestRFC5155Hashes(t *testing.T) {
	z := rfc5155Zone(t)
	want := map[string]string{
		"example.":       "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom",
		"a.example.":     "35mthgpgcu1qg68fab165klnsnk3dpvl",
		"ai.example.":    "gjeqe526plbf1g8mklp59enfd789njgi",
		"ns1.example.":   "2t7b4g4vsa5smi47k61mv5bv1a22bojr",
		"ns2.example.":   "q04jkcevqvmu85r014c7dkba38o0ji5r",
		"w.example.":     "k8udemvp1j2f7eg6jebps17vp3n8i58h",
		"*.w.example.":   "r53bq7cc2uvmubfu5ocmm6pers9tk9en",
		"x.w.example.":   "b4um86eghhds6nea196smvmlo4ors995",
		"y.w.example.":   "ji6neoaepv8b5o6k4ev33abha8ht9fgc",
		"x.y.w.example.": "2vptu5timamqttgl4luu9kg21e0aor3s",
		"xx.example.":    "t644ebqk9bibcna874givr6joj62mlhv",
		"c.x.w.example.": "0va5bpr2ou0vk0lbqeeljri88laipsfh",
		"*.x.w.example.": "92pqneegtaue7pjatc3l3qnk738c6v5m",
	}
	for name, h := range want {
		if got := z.HashName(name); got != h+".example." {
			t.Errorf("H(%s) = %s, want %s", name, got, h)
		}
		s := &nsec3Set{v: &Validator{limits: Limits{}.withDefaults()}, w: new(work), iter: 12, salt: "aabbccdd", hashes: map[string]string{}}
		if got, err := s.hash(name); err != nil || !strings.EqualFold(got, h) {
			t.Errorf("validator H(%s) = %s %v, want %s", name, got, err, h)
		}
	}
	// The chain of Appendix A: 12 NSEC3 records (c.example. opted out).
	n := 0
	for _, rr := range z.Records() {
		if rr.Header().Rrtype == dns.TypeNSEC3 {
			n++
			if rr.(*dns.NSEC3).Flags != 1 {
				t.Errorf("%s: opt-out flag not set", rr)
			}
		}
	}
	if n != 12 {
		t.Errorf("%d NSEC3 records, the RFC's chain has 12", n)
	}
}

// TestRFC5155Proofs replays the responses of RFC 5155 Appendix B against
// the example zone: the NSEC3 records served must be those the RFC lists,
// and the validator's verdict follows RFC 5155 §8 (opt-out spans covering
// the next closer name make the answer Insecure, as Unbound and BIND do).
func TestRFC5155Proofs(t *testing.T) {
	z := rfc5155Zone(t)
	srv := zonekit.NewServer(z)
	tests := []struct {
		section string
		qname   string
		qtype   uint16
		owners  []string // hashed owners of the NSEC3 records in the response
		status  Status
		reason  string
	}{
		{"B.1 name error", "a.c.x.w.example.", dns.TypeA,
			[]string{"0p9mhaveqvm6t7vbl5lop2u3t2rp3tom", "b4um86eghhds6nea196smvmlo4ors995", "35mthgpgcu1qg68fab165klnsnk3dpvl"}, Insecure, "opt-out"},
		{"B.2 no data", "ns1.example.", dns.TypeMX, []string{"2t7b4g4vsa5smi47k61mv5bv1a22bojr"}, Secure, ""},
		{"B.2.1 no data, empty non-terminal", "y.w.example.", dns.TypeA, []string{"ji6neoaepv8b5o6k4ev33abha8ht9fgc"}, Secure, ""},
		{"B.3 referral to an opt-out unsigned zone (DS)", "c.example.", dns.TypeDS,
			[]string{"0p9mhaveqvm6t7vbl5lop2u3t2rp3tom", "35mthgpgcu1qg68fab165klnsnk3dpvl"}, Insecure, "opt-out"},
		{"B.4 wildcard expansion", "a.z.w.example.", dns.TypeMX, []string{"q04jkcevqvmu85r014c7dkba38o0ji5r"}, Insecure, "opt-out"},
		{"B.5 wildcard no data", "a.z.w.example.", dns.TypeAAAA,
			[]string{"k8udemvp1j2f7eg6jebps17vp3n8i58h", "q04jkcevqvmu85r014c7dkba38o0ji5r", "r53bq7cc2uvmubfu5ocmm6pers9tk9en"}, Insecure, "opt-out"},
	}
	for _, tt := range tests {
		t.Run(tt.section, func(t *testing.T) {
			m, err := srv.Exchange(context.Background(), newQuery(tt.qname, tt.qtype))
			must(t, err)
			var got []string
			for _, rr := range m.Ns {
				if rr.Header().Rrtype == dns.TypeNSEC3 {
					got = append(got, strings.TrimSuffix(rr.Header().Name, ".example."))
				}
			}
			sort.Strings(got)
			want := append([]string(nil), tt.owners...)
			sort.Strings(want)
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("NSEC3 owners %v, RFC lists %v", got, want)
			}
			v := newValidator(t, srv, dsAnchors(z), newClock())
			r := v.Lookup(context.Background(), tt.qname, tt.qtype)
			t.Logf("%s", r)
			if r.Status != tt.status || (tt.reason != "" && !strings.Contains(r.Err.Error(), tt.reason)) {
				t.Errorf("status %s (%v), want %s %q", r.Status, r.Err, tt.status, tt.reason)
			}
		})
	}
	// B.6: the DS NODATA of the apex comes from the child side (SOA bit):
	// it cannot deny a DS (Unbound: "NSEC3 from the child zone").
	t.Run("B.6 DS child zone no data", func(t *testing.T) {
		var recs []*dns.NSEC3
		for _, rr := range z.Records() {
			if n, ok := rr.(*dns.NSEC3); ok {
				recs = append(recs, n)
			}
		}
		v := &Validator{limits: Limits{}.withDefaults()}
		s, err := v.newNSEC3Set(new(work), recs, "example.", "example. DS")
		must(t, err)
		err = s.noData("example.", dns.TypeDS)
		if statusOf(err) != Bogus || !strings.Contains(err.Error(), "child apex") {
			t.Errorf("DS denial from the child apex: %v", err)
		}
		if err := s.noData("example.", dns.TypeA); err != nil {
			t.Errorf("A NODATA at the apex: %v", err)
		}
	})
}
