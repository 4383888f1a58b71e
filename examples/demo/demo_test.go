package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestDemo runs the README's first command in process: it must show one
// verified request and two refusals with their reasons.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out, false); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"GET /good     -> 200 ok",
		"GET /tampered -> 502 ok",
		"GET /mitm     -> 502 ok",
		`reason="bogus" dnssec=bogus`,
		`reason="tlsa mismatch" dnssec=secure`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}
