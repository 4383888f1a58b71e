package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
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

// FuzzDaneSRVCaddyfile feeds arbitrary text as the body of
// `dynamic dane_srv { }`. It must never panic; an accepted config must
// encode, never carry a negative refresh, and its owner name, when it has
// no placeholder, is either a checked _service._tcp.name or refused by
// Validate.
func FuzzDaneSRVCaddyfile(f *testing.F) {
	for _, seed := range []string{
		"service https\nname svc.example.test",
		"name _https._tcp.svc.example.test\nrefresh 30s\nversions ipv4 ipv6",
		"proto udp\nservice x\nname y.example",
		"resolvers 1.1.1.1",
		"versions\n",
		"refresh -1s",
		"name {http.request.host}\nservice https",
		"service a.b\nname c",
		"name _x._tcp.",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		tokens, err := caddyfile.Tokenize([]byte("dane_srv {\n"+body+"\n}"), "Caddyfile")
		if err != nil {
			return
		}
		su := new(SRVUpstreams)
		if err := su.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
			return
		}
		if su.Refresh < 0 {
			t.Fatalf("accepted a negative refresh from %q", body)
		}
		if _, err := json.Marshal(su); err != nil {
			t.Fatalf("accepted config does not encode: %v", err)
		}
		if strings.Contains(su.Service+su.Proto+su.Name, "{") {
			return
		}
		owner, err := su.owner(caddy.NewReplacer())
		if err == nil && (!strings.HasPrefix(owner, "_") || !strings.Contains(owner, "._tcp.") || !strings.HasSuffix(owner, ".")) {
			t.Fatalf("owner %q from %q", owner, body)
		}
	})
}
