package caddymodule

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// adapt runs the Caddyfile adapter exactly as `caddy adapt` does.
func adapt(t *testing.T, caddyfile string) ([]byte, error) {
	t.Helper()
	a := caddyconfig.GetAdapter("caddyfile")
	if a == nil {
		t.Fatal("caddyfile adapter not registered")
	}
	out, _, err := a.Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	return out, err
}

// transportJSON digs the first reverse_proxy transport out of adapted JSON.
func transportJSON(t *testing.T, cfg []byte) map[string]any {
	t.Helper()
	var found map[string]any
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if x["handler"] == "reverse_proxy" && found == nil {
				found, _ = x["transport"].(map[string]any)
				return
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	var root any
	if err := json.Unmarshal(cfg, &root); err != nil {
		t.Fatalf("adapted config is not JSON: %v", err)
	}
	walk(root)
	if found == nil {
		t.Fatalf("no reverse_proxy transport in adapted config:\n%s", cfg)
	}
	return found
}

func TestCaddyfileAdaptsToDocumentedJSON(t *testing.T) {
	out, err := adapt(t, `
:8080 {
	reverse_proxy https://api.internal.example:8443 {
		transport dane {
			dane {
				resolvers 127.0.0.1:53 [::1]:5353
				trust_anchor_file /etc/caddy/anchors.ds
				name api.internal.example
				timeout 4s
				query_timeout 1s
				check_names
				cache_size 500
			}
			keepalive 90s
			tls_server_name sni.internal.example
			dial_timeout 2s
		}
	}
}`)
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	tr := transportJSON(t, out)
	got, _ := json.Marshal(tr)
	want := `{"dane":{"cache_size":500,"check_names":true,"name":"api.internal.example","query_timeout":1000000000,"resolvers":["127.0.0.1:53","[::1]:5353"],"timeout":4000000000,"trust_anchor_file":"/etc/caddy/anchors.ds"},"dial_timeout":2000000000,"keep_alive":{"idle_timeout":90000000000},"protocol":"dane","tls":{"server_name":"sni.internal.example"}}`
	if string(got) != want {
		t.Errorf("adapted transport:\n got %s\nwant %s", got, want)
	}
}

func TestCaddyfileTLSAlwaysOn(t *testing.T) {
	// No scheme on the upstream: the transport still enables TLS.
	out, err := adapt(t, ":8080 {\n reverse_proxy api.example:8443 {\n  transport dane\n }\n}")
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	tr := transportJSON(t, out)
	if _, ok := tr["tls"]; !ok {
		t.Errorf("TLS not enabled in %v", tr)
	}
	// An explicit http:// upstream contradicts DANE and is refused.
	_, err = adapt(t, ":8080 {\n reverse_proxy http://api.example:8080 {\n  transport dane\n }\n}")
	if err == nil || !strings.Contains(err.Error(), "HTTP") {
		t.Errorf("http:// upstream: got err %v, want a scheme error", err)
	}
}

func TestCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, block, want string
	}{
		{"unknown dane option", "dane {\n bogus 1\n}", `unrecognized dane option "bogus"`},
		{"dane args", "dane foo {\n}", "wrong argument count"},
		{"resolvers without args", "dane {\n resolvers\n}", "wrong argument count"},
		{"bad timeout", "dane {\n timeout soon\n}", `invalid timeout duration "soon"`},
		{"negative timeout", "dane {\n timeout -1s\n}", "timeout must be positive"},
		{"bad cache size", "dane {\n cache_size many\n}", `invalid cache_size "many"`},
		{"check_names takes no argument", "dane {\n check_names yes\n}", "wrong argument count"},
		{"two dane blocks", "dane {\n}\ndane {\n}", "dane block already specified"},
		{"unknown http option still rejected", "frobnicate 1", "unrecognized subdirective frobnicate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adapt(t, ":8080 {\n reverse_proxy https://a.example:443 {\n  transport dane {\n"+tc.block+"\n  }\n }\n}")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got err %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// validate loads and provisions a config as `caddy validate` does.
func validate(t *testing.T, caddyfile string) error {
	t.Helper()
	out, err := adapt(t, caddyfile)
	if err != nil {
		return err
	}
	var cfg caddy.Config
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("unmarshal adapted config: %v", err)
	}
	return caddy.Validate(&cfg)
}

func TestValidateRefusesBypasses(t *testing.T) {
	anchors := filepath.Join(t.TempDir(), "anchors.ds")
	if err := os.WriteFile(anchors, []byte("example.test. 3600 IN DS 12345 13 2 "+strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "resolvers 127.0.0.1:5300\ntrust_anchor_file " + anchors
	for _, tc := range []struct {
		name, upstream, opts, dane, want string
	}{
		{"valid config", "https://svc.example.test:8443", "", base, ""},
		{"HTTP/3", "https://svc.example.test:8443", "versions 3", base, "HTTP/3"},
		{"insecure skip verify", "https://svc.example.test:8443", "tls_insecure_skip_verify", base, "tls_insecure_skip_verify"},
		{"except ports", "https://svc.example.test:8443", "tls_except_ports 8080", base, "tls_except_ports"},
		{"forward proxy", "https://svc.example.test:8443", "forward_proxy_url http://127.0.0.1:3128", base, "network_proxy"},
		{"network proxy", "https://svc.example.test:8443", "network_proxy url http://127.0.0.1:3128", base, "network_proxy"},
		{"h2c version", "https://svc.example.test:8443", "versions h2c 2", base, "h2c"},
		{"IP upstream without name", "https://127.0.0.1:8443", "", base, "has no name to look up TLSA"},
		{"IP upstream with dane name", "https://127.0.0.1:8443", "", base + "\nname svc.example.test", ""},
		{"IP upstream with tls_server_name", "https://127.0.0.1:8443", "tls_server_name svc.example.test", base, ""},
		{"bad dane name", "https://127.0.0.1:8443", "", base + "\nname 10.0.0.1", "is an IP address"},
		{"bad resolver", "https://svc.example.test:8443", "", "resolvers dns.example:53", "resolvers"},
		{"missing anchor file", "https://svc.example.test:8443", "", "resolvers 127.0.0.1\ntrust_anchor_file /nonexistent/anchors.ds", "trust_anchor_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cf := ":0 {\n reverse_proxy " + tc.upstream + " {\n  transport dane {\n   dane {\n" + tc.dane + "\n   }\n" + tc.opts + "\n  }\n }\n}"
			err := validate(t, cf)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got err %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestH2CSchemeRefused(t *testing.T) {
	_, err := adapt(t, ":8080 {\n reverse_proxy h2c://a.example:8080 {\n  transport dane\n }\n}")
	if err == nil || !strings.Contains(err.Error(), "h2c") {
		t.Errorf("h2c:// upstream: got %v, want an h2c refusal", err)
	}
}
