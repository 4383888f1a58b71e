package caddymodule

import (
	"encoding/json"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// FuzzCaddyfile feeds arbitrary text as the body of `transport dane { }`
// to the transport's Caddyfile parser (the `dane` block is taken out and
// the rest handed to the standard HTTP transport's parser). It must never
// panic or loop, and whatever it accepts must be encodable as the JSON
// config Caddy would run.
func FuzzCaddyfile(f *testing.F) {
	for _, seed := range []string{
		"",
		"dane {\n resolvers 127.0.0.1:53 [::1]:5353\n trust_anchor_file /etc/caddy/anchors.ds\n name api.example\n timeout 4s\n query_timeout 1s\n check_names\n cache_size 500\n}\nkeepalive 90s",
		"dane {\n}\ndane {\n}",
		"dane foo {\n}",
		"dane {\n timeout -1s\n}",
		"dane {\n cache_size 99999999999999999999\n}",
		"dane {\n name {http.request.host}\n}",
		"dane {\n dane {\n  resolvers 1.1.1.1\n }\n}",
		"tls_server_name x.example\nversions 1.1 2\ndane {\nresolvers 127.0.0.1\n}",
		"keepalive off\ndane",
		"dane {\n resolvers\n}",
		"dane {\n check_names\n check_names\n}",
		"tls_trust_pool file {\n pem_file /x.pem\n}\ndane {\n}",
		"dane {\n resolvers 127.0.0.1 {\n  nested\n }\n}",
		"{\n}\n}",
		"dane {",
		"\"dane\" `{` }",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		tokens, err := caddyfile.Tokenize([]byte("dane {\n"+body+"\n}"), "Caddyfile")
		if err != nil {
			return // not even tokens: the adapter stops before us
		}
		tr := new(Transport)
		if err := tr.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
			return
		}
		if tr.TLS == nil {
			t.Fatalf("accepted config without TLS: %q", body)
		}
		if o := tr.DANE; o != nil && (o.Timeout < 0 || o.QueryTimeout < 0 || o.CacheSize < 0) {
			t.Fatalf("accepted a negative value from %q: %+v", body, *o)
		}
		if _, err := json.Marshal(tr); err != nil {
			t.Fatalf("accepted config does not encode: %v", err)
		}
	})
}
