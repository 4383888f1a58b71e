package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// providerJSON digs the first dane_rfc2136 provider object out of adapted
// JSON.
func providerJSON(cfg []byte) map[string]any {
	var v any
	if json.Unmarshal(cfg, &v) != nil {
		return nil
	}
	var found map[string]any
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if x["name"] == "dane_rfc2136" && found == nil {
				found = x
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
	walk(v)
	return found
}

// TestDNSProviderCaddyfile: the `acme_dns` and `tls { dns }` forms adapt
// to the dns.providers.dane_rfc2136 module, and caddy.Validate (Provision
// + Validate, as `caddy validate` does) accepts good values, expands
// placeholders, and refuses bad ones naming the value.
func TestDNSProviderCaddyfile(t *testing.T) {
	const secret = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	t.Setenv("DANE_TEST_TSIG_SECRET", secret)
	global := func(block string) string {
		return "{\n\tadmin off\n\tacme_dns dane_rfc2136 " + block + "\n}\nexample.test {\n\trespond ok\n}\n"
	}
	site := func(block string) string {
		return "{\n\tadmin off\n}\nexample.test {\n\ttls {\n\t\tdns dane_rfc2136 " + block + "\n\t}\n\trespond ok\n}\n"
	}
	good := "{\n\t\tserver 127.0.0.1:53\n\t\tkey_name k.\n\t\tkey_alg hmac-sha256\n\t\tsecret " + secret + "\n\t}"
	for _, tc := range []struct {
		name, caddyfile string
		want            map[string]any // fields of the adapted provider
		adaptErr        string
		validateErr     string
	}{
		{name: "acme_dns global option", caddyfile: global(good),
			want: map[string]any{"server": "127.0.0.1:53", "key_name": "k.", "key_alg": "hmac-sha256", "secret": secret}},
		{name: "tls dns site option", caddyfile: site(good),
			want: map[string]any{"server": "127.0.0.1:53", "key_name": "k.", "secret": secret}},
		{name: "server as argument, timeout, default algorithm", caddyfile: global("[::1]:5353 {\n\t\tkey_name k\n\t\tsecret " + secret + "\n\t\ttimeout 2s\n\t}"),
			want: map[string]any{"server": "[::1]:5353", "key_name": "k", "timeout": float64(2e9)}},
		{name: "secret from the environment", caddyfile: global("{\n\t\tserver 127.0.0.1:53\n\t\tkey_name k.\n\t\tsecret {env.DANE_TEST_TSIG_SECRET}\n\t}"),
			want: map[string]any{"secret": "{env.DANE_TEST_TSIG_SECRET}"}},
		{name: "secret from an unset environment variable", caddyfile: global("{\n\t\tserver 127.0.0.1:53\n\t\tkey_name k.\n\t\tsecret {env.DANE_TEST_UNSET}\n\t}"),
			validateErr: "empty TSIG secret"},
		{name: "RFC4648/secret not base64", caddyfile: global("{\n\t\tserver 127.0.0.1:53\n\t\tkey_name k.\n\t\tsecret not*base64\n\t}"),
			validateErr: "TSIG secret is not base64"},
		{name: "RFC8945-6/unknown algorithm", caddyfile: global("{\n\t\tserver 127.0.0.1:53\n\t\tkey_name k.\n\t\tkey_alg hmac-md5\n\t\tsecret " + secret + "\n\t}"),
			validateErr: `unknown TSIG algorithm "hmac-md5"`},
		{name: "server without port", caddyfile: global("{\n\t\tserver 127.0.0.1\n\t\tkey_name k.\n\t\tsecret " + secret + "\n\t}"),
			validateErr: `server "127.0.0.1" is not host:port`},
		{name: "server port out of range", caddyfile: global("{\n\t\tserver 127.0.0.1:65536\n\t\tkey_name k.\n\t\tsecret " + secret + "\n\t}"),
			validateErr: `bad port "65536"`},
		{name: "no key name", caddyfile: global("{\n\t\tserver 127.0.0.1:53\n\t\tsecret " + secret + "\n\t}"),
			validateErr: "no TSIG key name"},
		{name: "unknown option", caddyfile: global("{\n\t\tserver 127.0.0.1:53\n\t\tkeyname k.\n\t}"),
			adaptErr: `unrecognized dane_rfc2136 option "keyname"`},
		{name: "option twice", caddyfile: global("{\n\t\tsecret a\n\t\tsecret b\n\t}"),
			adaptErr: `option "secret" specified more than once`},
		{name: "server twice", caddyfile: global("127.0.0.1:53 {\n\t\tserver 127.0.0.1:54\n\t}"),
			adaptErr: "server given twice"},
		{name: "timeout not a duration", caddyfile: global("{\n\t\ttimeout soon\n\t}"),
			adaptErr: `invalid timeout "soon"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := adapt(t, tc.caddyfile)
			if tc.adaptErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.adaptErr) {
					t.Fatalf("adapt error %v, want %q", err, tc.adaptErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("adapt: %v\n%s", err, tc.caddyfile)
			}
			prov := providerJSON(out)
			if prov == nil {
				t.Fatalf("no dane_rfc2136 provider in\n%s", out)
			}
			for k, v := range tc.want {
				if prov[k] != v {
					t.Errorf("%s = %v, want %v", k, prov[k], v)
				}
			}
			var c caddy.Config
			if err := json.Unmarshal(out, &c); err != nil {
				t.Fatal(err)
			}
			err = caddy.Validate(&c)
			if tc.validateErr == "" {
				if err != nil {
					t.Fatalf("valid config refused: %v\n%s", err, out)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.validateErr) {
				t.Fatalf("validate error %v, want %q", err, tc.validateErr)
			}
		})
	}
}
