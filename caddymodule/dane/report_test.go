package dane

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestCheckReport: Check reports the verdict of Lookup + Verify, the
// records with their fate, the presented chain, and the DNSSEC chain even
// when the lookup refused.
func TestCheckReport(t *testing.T) {
	good, goodDigest := selfSigned(t, "svc.example.test")
	other, _ := selfSigned(t, "svc.example.test")
	f := newFixture(t, nil,
		"_443._tcp.svc 300 IN TLSA 3 1 1 "+goodDigest,
		"_443._tcp.svc 300 IN TLSA 4 1 1 "+goodDigest,
	)
	fetch := func(c *x509.Certificate) func(context.Context, string) ([]*x509.Certificate, error) {
		return func(context.Context, string) ([]*x509.Certificate, error) { return []*x509.Certificate{c}, nil }
	}
	for _, tc := range []struct {
		name    string
		host    string
		fetch   func(context.Context, string) ([]*x509.Certificate, error)
		verdict string
		reason  Reason
	}{
		{"RFC 7671 §5.1 DANE-EE match", "svc.example.test", fetch(good), Verified, ""},
		{"other key", "svc.example.test", fetch(other), Refused, ReasonMismatch},
		{"handshake failed", "svc.example.test", func(context.Context, string) ([]*x509.Certificate, error) {
			return nil, errors.New("connection refused")
		}, Refused, ReasonHandshake},
		{"no TLSA", "none.example.test", fetch(good), Refused, ReasonNoTLSA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.auth.Check(context.Background(), CheckInput{Target: Target{Host: tc.host, Port: 443}, Fetch: tc.fetch})
			if r.Verdict != tc.verdict || r.Reason != string(tc.reason) {
				t.Fatalf("verdict %q reason %q, want %q %q (%s)", r.Verdict, r.Reason, tc.verdict, tc.reason, r.Error)
			}
			if r.DNSSEC == nil || len(r.DNSSEC.Chain) == 0 {
				t.Errorf("no DNSSEC chain in the report: %+v", r.DNSSEC)
			}
			if tc.host == "svc.example.test" {
				if len(r.Records) != 2 || !r.Records[0].Usable || r.Records[1].Usable || r.Records[1].Unusable == "" {
					t.Errorf("records %+v: want the 3 1 1 usable and the 4 1 1 unusable with a reason", r.Records)
				}
				if r.Records[0].Matched != (tc.verdict == Verified) {
					t.Errorf("records %+v: matched flag", r.Records)
				}
			}
			var text strings.Builder
			if err := r.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(text.String(), strings.ToUpper(tc.verdict)) {
				t.Errorf("text report lacks the verdict:\n%s", text.String())
			}
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			for _, key := range []string{`"tlsa_owner"`, `"records"`, `"chain"`, `"verdict"`, `"dnssec"`} {
				if !strings.Contains(string(b), key) {
					t.Errorf("JSON lacks %s: %s", key, b)
				}
			}
		})
	}
}
