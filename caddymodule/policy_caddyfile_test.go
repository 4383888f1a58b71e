package caddymodule

import (
	"strings"
	"testing"
)

// TestCaddyfilePolicies: on_no_tlsa, follow_cname and dnssec adapt to their JSON
// fields, and bad values are refused.
func TestCaddyfilePolicies(t *testing.T) {
	out, err := adapt(t, ":8080 {\n reverse_proxy https://a.example:443 {\n  transport dane {\n   dane {\n    on_no_tlsa pkix\n    follow_cname\n    dnssec trust_resolver\n   }\n  }\n }\n}")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"on_no_tlsa":"pkix"`) || !strings.Contains(string(out), `"follow_cname":true`) || !strings.Contains(string(out), `"dnssec":"trust_resolver"`) {
		t.Errorf("adapted JSON lacks the policies: %s", out)
	}
	for block, want := range map[string]string{
		"on_no_tlsa insecure": `on_no_tlsa "insecure": want refuse or pkix`,
		"on_no_tlsa":          "wrong argument count",
		"follow_cname yes":    "wrong argument count",
	} {
		_, err := adapt(t, ":8080 {\n reverse_proxy https://a.example:443 {\n  transport dane {\n   dane {\n    "+block+"\n   }\n  }\n }\n}")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", block, err, want)
		}
	}
	if err := validate(t, ":8080 {\n reverse_proxy https://a.example:443 {\n  transport dane {\n   dane {\n    resolvers 127.0.0.1\n    on_no_tlsa pkix\n   }\n  }\n }\n}"); err != nil {
		t.Errorf("validate with on_no_tlsa pkix: %v", err)
	}
}
