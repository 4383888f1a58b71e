package dane

import (
	"testing"

	"github.com/caddy-dane/caddy-dane/caddymodule/dnssec"
)

// TestIdentityKeyFieldBoundaries: identities whose fields hold the same
// strings in different places never share a key. The names and the
// NoDANE proof follow each other in the encoding; the 'n' marker keeps a
// last name from reading as the proof's owner.
func TestIdentityKeyFieldBoundaries(t *testing.T) {
	insecure := dnssec.Insecure.String()
	pairs := [][2]Identity{
		{
			{Base: "a.test.", Names: []string{"a.test.", "b.test.", insecure}},
			{Base: "a.test.", Names: []string{"a.test."}, NoDANE: &dnssec.Result{Name: "b.test.", Status: dnssec.Insecure}},
		},
		{
			{Base: "a.test.", Names: []string{"a.test."}, Owner: "a.test."},
			{Base: "a.test.", Names: []string{"a.test.", "a.test."}},
		},
		{
			{Host: "a.test.", Port: 443, Base: "a.test."},
			{Host: "a.test.", Port: 4431, Base: "a.test."},
		},
	}
	for i, p := range pairs {
		if p[0].Key() == p[1].Key() {
			t.Errorf("pair %d: %+v and %+v share the key %s (encodings %q, %q)", i, p[0], p[1], p[0].Key(),
				p[0].AppendFields(nil), p[1].AppendFields(nil))
		}
	}
}
