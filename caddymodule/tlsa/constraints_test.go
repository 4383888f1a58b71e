package tlsa

import (
	"crypto/x509"
	"testing"
)

// BenchmarkVerifyDANETA211 is a DANE-TA match on a presented root: a
// "2 1 1" record, the path leaf → intermediate → root built and checked.
func BenchmarkVerifyDANETA211(b *testing.B) {
	p := newTestPKI(b)
	o := Options{
		Chain:   []*x509.Certificate{p.leaf, p.inter, p.root},
		Records: []Record{rec(DANETA, SPKI, SHA256, p.root)},
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
