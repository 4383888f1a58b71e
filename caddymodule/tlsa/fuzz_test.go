package tlsa

import (
	"bytes"
	"crypto/x509"
	"testing"
)

// FuzzVerify matches an arbitrary record (and optionally a second one)
// against a fixed chain: leaf and intermediate presented, root in Roots.
// Verify must never panic, and may only succeed when the record that
// matched really holds the association data of a certificate of the PKI
// (computed here independently of the matching code).
func FuzzVerify(f *testing.F) {
	p := newTestPKI(f)
	// Matching seeds, one per certificate usage; the static corpus in
	// testdata holds non-matching and degenerate shapes.
	f.Add(uint8(3), uint8(1), uint8(1), assoc(p.leaf, SPKI, SHA256), false)
	f.Add(uint8(2), uint8(0), uint8(2), assoc(p.inter, Cert, SHA512), false)
	f.Add(uint8(2), uint8(0), uint8(0), assoc(p.root, Cert, Full), true)
	f.Add(uint8(2), uint8(1), uint8(0), assoc(p.root, SPKI, Full), false)
	f.Add(uint8(1), uint8(1), uint8(0), assoc(p.leaf, SPKI, Full), false)
	f.Add(uint8(0), uint8(1), uint8(1), assoc(p.root, SPKI, SHA256), true)

	chain := []*x509.Certificate{p.leaf, p.inter}
	pki := []*x509.Certificate{p.leaf, p.inter, p.root}
	f.Fuzz(func(t *testing.T, u, s, m uint8, data []byte, second bool) {
		rs := []Record{{Usage: Usage(u), Selector: Selector(s), MatchingType: MatchingType(m), Data: data}}
		if second {
			// A second record derived from the first exercises agility and
			// precedence between usages.
			rs = append(rs, Record{Usage: Usage(u ^ 1), Selector: Selector(s), MatchingType: MatchingType(m), Data: data})
		}
		match, err := Verify(Options{Chain: chain, Records: rs, Names: []string{testName}, Roots: p.roots, Time: testTime})
		if err != nil {
			if match != nil {
				t.Fatalf("Verify returned both a match and %v", err)
			}
			if err.Error() == "" {
				t.Fatalf("empty error message for %T", err)
			}
			return
		}
		if match == nil {
			t.Fatal("Verify returned neither match nor error")
		}
		found := false
		for _, r := range rs {
			found = found || r.Equal(match.Record)
		}
		if !found {
			t.Fatalf("matched record %v is not one of the input", match.Record)
		}
		real := false
		for _, c := range pki {
			real = real || bytes.Equal(match.Record.Data, assoc(c, match.Record.Selector, match.Record.MatchingType))
		}
		if !real {
			t.Fatalf("Verify accepted %v, which holds no certificate's association data", match.Record)
		}
	})
}

// BenchmarkVerifyDANEEE311 is the common case: one "3 1 1" record that
// matches the leaf (RFC 7671 §5.1).
func BenchmarkVerifyDANEEE311(b *testing.B) {
	p := newTestPKI(b)
	o := Options{
		Chain:   []*x509.Certificate{p.leaf, p.inter},
		Records: []Record{rec(DANEEE, SPKI, SHA256, p.leaf)},
		Names:   []string{testName},
		Time:    testTime,
	}
	if _, err := Verify(o); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(o); err != nil {
			b.Fatal(err)
		}
	}
}
