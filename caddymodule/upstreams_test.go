package caddymodule

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// TestUpstreamSourcesAtLoad (issue 10 item 2b): no configuration lets a
// name from unvalidated DNS become a TLSA base domain without an error at
// `caddy validate` time; dane_srv and IP sources with a name load.
func TestUpstreamSourcesAtLoad(t *testing.T) {
	good, _, _, _ := anchorFiles(t)
	dane := "dane {\n resolvers 127.0.0.1:5300\n trust_anchor_file " + good + "\n}"
	for _, tc := range []struct {
		name, proxy, transport, want string
	}{
		{"stock dynamic srv is refused", "dynamic srv _https._tcp.svc.example.test", dane,
			"dynamic srv takes SRV records from the system resolver without DNSSEC"},
		{"stock srv inside dynamic multi is refused", "dynamic multi {\n  a svc.example.test 443\n  srv _https._tcp.svc.example.test\n }", strings.Replace(dane, "}", " name svc.example.test\n}", 1),
			"use dynamic dane_srv"},
		{"dynamic a without a name is refused", "dynamic a svc.example.test 443", dane,
			"dynamic a gives IP addresses"},
		{"dynamic a with a name loads", "dynamic a svc.example.test 443", strings.Replace(dane, "}", " name svc.example.test\n}", 1), ""},
		{"dynamic a with tls_server_name loads", "dynamic a svc.example.test 443", dane + "\ntls_server_name svc.example.test", ""},
		{"dane_srv loads", "dynamic dane_srv _https._tcp.svc.example.test\n lb_policy first", dane, ""},
		{"dane_srv with service and name", "dynamic dane_srv {\n  service https\n  name svc.example.test\n  refresh 30s\n  versions ipv4\n }", dane, ""},
		{"dane_srv inside multi loads", "dynamic multi {\n  dane_srv _https._tcp.svc.example.test\n }", dane, ""},
		{"dane_srv with udp is refused", "dynamic dane_srv _https._udp.svc.example.test", dane, `SRV proto "udp": TLS upstreams need tcp`},
		{"dane_srv name not an SRV owner", "dynamic dane_srv svc.example.test", dane, "want _service._proto.name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cf := ":0 {\n reverse_proxy {\n " + tc.proxy + "\n  transport dane {\n" + tc.transport + "\n  }\n }\n}"
			err := validate(t, cf)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v\n%s", err, cf)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q\n%s", err, tc.want, cf)
			}
		})
	}

	t.Run("dane_srv behind another transport is refused", func(t *testing.T) {
		err := validate(t, ":0 {\n reverse_proxy {\n  dynamic dane_srv _https._tcp.svc.example.test\n  transport http {\n   tls\n  }\n }\n}")
		if err == nil || !strings.Contains(err.Error(), "authenticated by `transport dane`") {
			t.Fatalf("got %v", err)
		}
	})
}

// TestDaneSRVCaddyfile: the Caddyfile form adapts to the documented JSON,
// and the options that would trust unvalidated or stale data are refused.
func TestDaneSRVCaddyfile(t *testing.T) {
	out, err := adapt(t, ":0 {\n reverse_proxy {\n  dynamic dane_srv {\n   service https\n   name svc.example.test\n   refresh 1m\n   versions ipv6\n  }\n  transport dane\n }\n}")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Handle []struct {
							Dynamic json.RawMessage `json:"dynamic_upstreams"`
						} `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	var dyn json.RawMessage
	for _, s := range got.Apps.HTTP.Servers {
		dyn = s.Routes[0].Handle[0].Dynamic
	}
	want := `{"name":"svc.example.test","refresh":60000000000,"service":"https","source":"dane_srv","versions":{"ipv6":true}}`
	var a, b any
	_ = json.Unmarshal(dyn, &a)
	_ = json.Unmarshal([]byte(want), &b)
	if ja, _ := json.Marshal(a); string(ja) != mustJSON(b) {
		t.Errorf("adapted %s, want %s", dyn, want)
	}
	for _, tc := range []struct{ block, want string }{
		{"resolvers 127.0.0.1", "dane_srv has no resolvers option"},
		{"grace_period 1m", "dane_srv has no grace_period option"},
		{"refresh 0s", "invalid refresh"},
		{"versions ipv5", `unsupported version "ipv5"`},
		{"service https\n service http", `dane_srv option "service" specified more than once`},
	} {
		_, err := adapt(t, ":0 {\n reverse_proxy {\n  dynamic dane_srv _https._tcp.svc.example.test {\n   "+tc.block+"\n  }\n  transport dane\n }\n}")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.block, err, tc.want)
		}
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// TestUnauthenticatedOrigins: which upstreams' host names the transport
// refuses to take as TLSA base domains.
func TestUnauthenticatedOrigins(t *testing.T) {
	up := func(dial string) *reverseproxy.Upstream { return &reverseproxy.Upstream{Dial: dial} }
	static := map[string]bool{"svc.example.test:443": true}
	for _, tc := range []struct {
		name string
		o    upstreamOrigins
		up   *reverseproxy.Upstream
		want string
	}{
		{"no handler known", upstreamOrigins{}, up("x:443"), ""},
		{"static only", upstreamOrigins{handler: true, static: static}, up("svc.example.test:443"), ""},
		{"static fallback beside a dynamic source", upstreamOrigins{handler: true, static: static, sources: []string{"docker"}}, up("svc.example.test:443"), ""},
		{"a third-party dynamic source", upstreamOrigins{handler: true, static: static, sources: []string{"docker"}}, up("evil.example:443"), "dynamic docker"},
		{"stock srv (defence in depth; refused at load)", upstreamOrigins{handler: true, sources: []string{"srv"}}, up("evil.example:443"), "dynamic srv"},
		{"dane_srv gives bound IP addresses", upstreamOrigins{handler: true, sources: []string{"dane_srv"}}, up("192.0.2.1:443"), ""},
	} {
		if got := tc.o.unauthenticated(tc.up); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := sourceNames(json.RawMessage(`{"source":"multi","sources":[{"source":"a"},{"source":"multi","sources":[{"source":"srv"}]}]}`)); strings.Join(got, ",") != "a,srv" {
		t.Errorf("sourceNames: %v", got)
	}
}

// TestCaddyfileExampleValidates: the documented production config (with
// its dane_srv site) loads, as `caddy validate` would.
func TestCaddyfileExampleValidates(t *testing.T) {
	b, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(t, string(b)); err != nil {
		t.Fatalf("Caddyfile.example: %v", err)
	}
}
