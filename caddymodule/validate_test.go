package caddymodule

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// Bad input: every option of the dane transport, given an invalid value,
// must be refused when the configuration is loaded (`caddy validate`),
// with an error that names the option and the value. Nothing may be left
// to fail, or to be silently ignored, at the first request.

// anchorFiles writes the trust anchor files the cases need.
func anchorFiles(t *testing.T) (good, garbage, noAnchors, dir string) {
	t.Helper()
	dir = t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good = write("good.ds", "example.test. 3600 IN DS 12345 13 2 "+strings.Repeat("ab", 32)+"\n")
	garbage = write("garbage.ds", "\x00\x01this is not a zone file {{{\n")
	noAnchors = write("a-only.ds", "example.test. 3600 IN A 192.0.2.1\n")
	return good, garbage, noAnchors, dir
}

// TestValidateBadCaddyfileValues: one row per option and kind of mistake,
// through the Caddyfile adapter and caddy.Validate (Provision + Validate of
// every module), as `caddy validate --adapter caddyfile` does.
func TestValidateBadCaddyfileValues(t *testing.T) {
	good, garbage, noAnchors, dir := anchorFiles(t)
	base := "resolvers 127.0.0.1:5300\ntrust_anchor_file " + good
	for _, tc := range []struct {
		name, upstream, dane, opts, want string
	}{
		// resolvers
		{"resolver host name", "", "resolvers dns.example:53\ntrust_anchor_file " + good, "", `resolver address "dns.example:53"`},
		{"resolver bare host name", "", "resolvers localhost\ntrust_anchor_file " + good, "", "host names are not accepted"},
		{"resolver port out of range", "", "resolvers 127.0.0.1:99999\ntrust_anchor_file " + good, "", `bad port "99999"`},
		{"resolver port zero", "", "resolvers 127.0.0.1:0\ntrust_anchor_file " + good, "", `bad port "0"`},
		{"resolver port not a number", "", "resolvers 127.0.0.1:dns\ntrust_anchor_file " + good, "", `bad port "dns"`},
		{"resolver with scheme", "", "resolvers udp://127.0.0.1\ntrust_anchor_file " + good, "", "resolvers"},
		{"resolver IPv6 without brackets and port", "", "resolvers ::1:53:x\ntrust_anchor_file " + good, "", "resolvers"},
		// trust_anchor_file
		{"anchor file missing", "", "resolvers 127.0.0.1\ntrust_anchor_file /nonexistent/anchors.ds", "", "no such file"},
		{"anchor file is a directory", "", "resolvers 127.0.0.1\ntrust_anchor_file " + dir, "", "trust_anchor_file"},
		{"anchor file garbage", "", "resolvers 127.0.0.1\ntrust_anchor_file " + garbage, "", "trust_anchor_file " + garbage},
		{"anchor file without DS or DNSKEY", "", "resolvers 127.0.0.1\ntrust_anchor_file " + noAnchors, "", "trust_anchor_file"},
		{"anchor file twice", "", base + "\ntrust_anchor_file " + good, "", `dane option "trust_anchor_file" specified more than once`},
		{"timeout twice", "", base + "\ntimeout 1s\ntimeout 2s", "", `dane option "timeout" specified more than once`},
		{"resolvers on two lines is fine, name twice is not", "", base + "\nresolvers 127.0.0.2\nname a.example\nname b.example", "", `dane option "name" specified more than once`},
		{"anchor file without path", "", "trust_anchor_file", "", "wrong argument count"},
		// durations
		{"timeout not a duration", "", base + "\ntimeout soon", "", `invalid timeout duration "soon"`},
		{"timeout without unit", "", base + "\ntimeout 5", "", `invalid timeout duration "5"`},
		{"timeout zero", "", base + "\ntimeout 0s", "", "timeout must be positive"},
		{"timeout negative", "", base + "\ntimeout -2s", "", "timeout must be positive"},
		{"timeout two values", "", base + "\ntimeout 1s 2s", "", "wrong argument count"},
		{"query_timeout not a duration", "", base + "\nquery_timeout fast", "", `invalid query_timeout duration "fast"`},
		{"query_timeout negative", "", base + "\nquery_timeout -1ms", "", "query_timeout must be positive"},
		{"query_timeout longer than timeout", "", base + "\ntimeout 1s\nquery_timeout 2s", "", "query_timeout"},
		// cache_size
		{"cache_size negative", "", base + "\ncache_size -1", "", `invalid cache_size "-1"`},
		{"cache_size zero", "", base + "\ncache_size 0", "", `invalid cache_size "0"`},
		{"cache_size not a number", "", base + "\ncache_size 1e3", "", `invalid cache_size "1e3"`},
		{"cache_size overflows", "", base + "\ncache_size 99999999999999999999", "", "invalid cache_size"},
		// name
		{"name is an IP", "", base + "\nname 192.0.2.1", "", "is an IP address"},
		{"name not a DNS name", "", base + "\nname " + strings.Repeat("a", 64) + ".example", "", "not a valid DNS name"},
		{"name without value", "", base + "\nname", "", "wrong argument count"},
		// dnssec
		{"dnssec unknown mode", "", base + "\ndnssec insecure", "", `dnssec "insecure": want validate or trust_resolver`},
		{"dnssec without mode", "", base + "\ndnssec", "", "wrong argument count"},
		{"dnssec twice", "", base + "\ndnssec validate\ndnssec trust_resolver", "", `dane option "dnssec" specified more than once`},
		{"trust_resolver with a remote resolver", "", "resolvers 127.0.0.1 192.0.2.53\ndnssec trust_resolver\ntrust_anchor_file " + good, "", "every resolver must be a loopback address (127.0.0.0/8 or ::1); resolvers lists 192.0.2.53:53"},
		{"trust_resolver with a remote IPv6 resolver", "", "resolvers [2001:db8::53]:53\ndnssec trust_resolver", "", "must be a loopback address"},
		// options that would bypass DANE
		{"versions 3", "", base, "versions 3", "HTTP/3"},
		{"versions h2c", "", base, "versions h2c", "h2c"},
		{"insecure skip verify", "", base, "tls_insecure_skip_verify", "tls_insecure_skip_verify"},
		{"except ports", "", base, "tls_except_ports 8443", "tls_except_ports"},
		{"forward proxy url", "", base, "forward_proxy_url http://127.0.0.1:3128", "forward_proxy_url"},
		{"network proxy", "", base, "network_proxy url http://127.0.0.1:3128", "network_proxy"},
		{"IP upstream without name", "https://192.0.2.1:8443", base, "", "has no name to look up TLSA"},
		{"IPv6 upstream without name", "https://[2001:db8::1]:8443", base, "", "has no name to look up TLSA"},
		{"http upstream", "http://svc.example.test:8080", base, "", "HTTP"},
		{"h2c upstream", "h2c://svc.example.test:8080", base, "", "h2c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := tc.upstream
			if up == "" {
				up = "https://svc.example.test:8443"
			}
			cf := ":0 {\n reverse_proxy " + up + " {\n  transport dane {\n   dane {\n" + tc.dane + "\n   }\n" + tc.opts + "\n  }\n }\n}"
			err := validate(t, cf)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got err %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestValidateBadJSONValues: the same mistakes written directly in JSON,
// which skips the Caddyfile parser's checks: Provision must catch them.
func TestValidateBadJSONValues(t *testing.T) {
	good, garbage, _, _ := anchorFiles(t)
	for _, tc := range []struct {
		name, upstream, transport, want string
	}{
		{"valid", "", `"dane":{"resolvers":["127.0.0.1"],"trust_anchor_file":"` + good + `"}`, ""},
		{"unknown dane field", "", `"dane":{"resolver":["127.0.0.1"]}`, `unknown field "resolver"`},
		{"trust_resolver on loopback", "", `"dane":{"resolvers":["127.0.0.53","::1"],"dnssec":"trust_resolver","trust_anchor_file":"` + good + `"}`, ""},
		{"dnssec unknown mode", "", `"dane":{"resolvers":["127.0.0.1"],"dnssec":"yes"}`, `dnssec "yes": want validate or trust_resolver`},
		{"trust_resolver with a remote resolver", "", `"dane":{"resolvers":["192.0.2.53"],"dnssec":"trust_resolver"}`, "must be a loopback address"},
		{"resolvers not a list", "", `"dane":{"resolvers":"127.0.0.1"}`, "resolvers"},
		{"resolver host name", "", `"dane":{"resolvers":["dns.example"]}`, `resolver address "dns.example"`},
		{"resolver empty", "", `"dane":{"resolvers":[""]}`, "empty"},
		{"anchor file missing", "", `"dane":{"resolvers":["127.0.0.1"],"trust_anchor_file":"/nonexistent"}`, "trust_anchor_file"},
		{"anchor file garbage", "", `"dane":{"resolvers":["127.0.0.1"],"trust_anchor_file":"` + garbage + `"}`, "trust_anchor_file"},
		{"timeout not a duration", "", `"dane":{"resolvers":["127.0.0.1"],"timeout":"soon"}`, "soon"},
		{"timeout negative", "", `"dane":{"resolvers":["127.0.0.1"],"timeout":-1}`, "timeout must not be negative"},
		{"query_timeout negative", "", `"dane":{"resolvers":["127.0.0.1"],"query_timeout":"-1s"}`, "query_timeout must not be negative"},
		{"query_timeout longer than timeout", "", `"dane":{"resolvers":["127.0.0.1"],"timeout":"1s","query_timeout":"3s"}`, "query_timeout"},
		{"cache_size negative", "", `"dane":{"resolvers":["127.0.0.1"],"cache_size":-5}`, "cache_size must not be negative"},
		{"cache_size not a number", "", `"dane":{"resolvers":["127.0.0.1"],"cache_size":"big"}`, "cache_size"},
		{"name is an IP", "", `"dane":{"resolvers":["127.0.0.1"],"name":"::1"}`, "is an IP address"},
		{"versions 3", "", `"dane":{"resolvers":["127.0.0.1"]},"versions":["3"]`, "HTTP/3"},
		{"versions h2c", "", `"dane":{"resolvers":["127.0.0.1"]},"versions":["h2c","2"]`, "h2c"},
		{"insecure skip verify", "", `"dane":{"resolvers":["127.0.0.1"]},"tls":{"insecure_skip_verify":true}`, "tls_insecure_skip_verify"},
		{"except ports", "", `"dane":{"resolvers":["127.0.0.1"]},"tls":{"except_ports":["8443"]}`, "tls_except_ports"},
		{"forward proxy url", "", `"dane":{"resolvers":["127.0.0.1"]},"forward_proxy_url":"http://127.0.0.1:3128"`, "forward_proxy_url"},
		{"network proxy", "", `"dane":{"resolvers":["127.0.0.1"]},"network_proxy":{"from":"url","url":"http://127.0.0.1:3128"}`, "network_proxy"},
		{"no tls object and IP upstream", "192.0.2.1:8443", `"dane":{"resolvers":["127.0.0.1"]}`, "has no name to look up TLSA"},
		{"client cert without key", "", `"dane":{"resolvers":["127.0.0.1"]},"tls":{"client_certificate_file":"/x.pem"}`, "tls_client_auth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := tc.upstream
			if up == "" {
				up = "svc.example.test:8443"
			}
			cfg := `{"admin":{"disabled":true},"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"handle":[{"handler":"reverse_proxy","upstreams":[{"dial":"` +
				up + `"}],"transport":{"protocol":"dane",` + tc.transport + `}}]}]}}}}}`
			var c caddy.Config
			if err := json.Unmarshal([]byte(cfg), &c); err != nil {
				t.Fatalf("test config is not JSON: %v\n%s", err, cfg)
			}
			err := caddy.Validate(&c)
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
