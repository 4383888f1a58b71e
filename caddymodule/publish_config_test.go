package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

const publishDNS = `dns dane_rfc2136 {
			server 127.0.0.1:5300
			key_name update-key.
			key_alg hmac-sha256.
			secret c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=
		}`

func publishCaddyfile(opts, tlsBlock string) string {
	return "{\n\tdane_publish {\n\t\t" + publishDNS + "\n\t\t" + opts + "\n\t}\n}\n" +
		"up.example.test:8443 {\n\ttls {\n\t\t" + tlsBlock + "\n\t}\n\trespond ok\n}\n"
}

const wrapInternal = "issuer dane_publish {\n\t\t\tissuer internal {\n\t\t\t\tlifetime 1h\n\t\t\t}\n\t\t}"

func TestPublishCaddyfile(t *testing.T) {
	out, err := adapt(t, publishCaddyfile("sites up.example.test:8443 other.example.test\n\t\tports 443 853\n\t\trecord 3 1 1\n\t\trecord DANE-TA SPKI SHA2-256\n\t\tttl 60s\n\t\tzone example.test\n\t\tinterval 30s\n\t\tmax_hold 10m\n\t\tresolvers 127.0.0.1:5301\n\t\ttimeout 3s", wrapInternal))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Apps struct {
			Publish map[string]any `json:"dane_publish"`
			TLS     struct {
				Automation struct {
					Policies []struct {
						Issuers []map[string]any `json:"issuers"`
					} `json:"policies"`
				} `json:"automation"`
			} `json:"tls"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	p := cfg.Apps.Publish
	for k, want := range map[string]string{
		"dns":       `{"key_alg":"hmac-sha256.","key_name":"update-key.","name":"dane_rfc2136","secret":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=","server":"127.0.0.1:5300"}`,
		"sites":     `["up.example.test:8443","other.example.test"]`,
		"ports":     `[443,853]`,
		"records":   `["3 1 1","DANE-TA SPKI SHA2-256"]`,
		"ttl":       `60000000000`,
		"zone":      `"example.test"`,
		"interval":  `30000000000`,
		"max_hold":  `600000000000`,
		"resolvers": `["127.0.0.1:5301"]`,
		"timeout":   `3000000000`,
	} {
		got, _ := json.Marshal(p[k])
		if string(got) != want {
			t.Errorf("dane_publish %s = %s, want %s", k, got, want)
		}
	}
	if len(cfg.Apps.TLS.Automation.Policies) == 0 || len(cfg.Apps.TLS.Automation.Policies[0].Issuers) != 1 {
		t.Fatalf("tls policies: %s", out)
	}
	iss, _ := json.Marshal(cfg.Apps.TLS.Automation.Policies[0].Issuers[0])
	if want := `{"issuer":{"lifetime":3600000000000,"module":"internal"},"module":"dane_publish"}`; string(iss) != want {
		t.Errorf("issuer = %s, want %s", iss, want)
	}
}

func TestPublishCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct{ name, opts, tls, want string }{
		{"unknown option", "records 3 1 1", wrapInternal, `unrecognized dane_publish option "records"`},
		{"record with two fields", "record 3 1", wrapInternal, "record: want <usage> <selector> <matching>"},
		{"ttl not a duration", "ttl soon", wrapInternal, `invalid ttl "soon"`},
		{"ttl twice", "ttl 1m\n\t\tttl 2m", wrapInternal, `dane_publish option "ttl" specified more than once`},
		{"port not a number", "ports https", wrapInternal, `invalid port "https"`},
		{"unknown provider", "", wrapInternal, ""}, // replaced below
		{"issuer without inner", "", "issuer dane_publish", "an inner issuer is required"},
		{"issuer unknown inner", "", "issuer dane_publish {\n\t\t\tissuer nosuch\n\t\t}", "tls.issuance.nosuch"},
		{"issuer two inners", "", "issuer dane_publish {\n\t\t\tissuer internal\n\t\t\tissuer internal\n\t\t}", "only one inner issuer"},
		{"issuer unknown option", "", "issuer dane_publish {\n\t\t\tlifetime 1h\n\t\t}", `unrecognized dane_publish issuer option "lifetime"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cf := publishCaddyfile(tc.opts, tc.tls)
			want := tc.want
			if tc.name == "unknown provider" {
				cf = strings.Replace(cf, "dns dane_rfc2136", "dns nosuch", 1)
				want = "module not registered: dns.providers.nosuch"
			}
			_, err := adapt(t, cf)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("got error %v, want one containing %q", err, want)
			}
		})
	}
	if _, err := adapt(t, "{\n\tdane_publish {\n\t\tttl 1m\n\t}\n}\n"); err == nil || !strings.Contains(err.Error(), "a DNS provider is required") {
		t.Errorf("dane_publish without dns: got %v", err)
	}
}

// TestPublishProvisionErrors: bad values are refused when the config is
// loaded (caddy validate), naming the option and the value.
func TestPublishProvisionErrors(t *testing.T) {
	good, _, _, _ := anchorFiles(t)
	const dnsJSON = `"dns": {"name": "dane_rfc2136", "server": "127.0.0.1:5300", "key_name": "k.", "key_alg": "hmac-sha256.", "secret": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="}`
	issuer := `"tls": {"automation": {"policies": [{"subjects": ["up.example.test"], "issuers": [{"module": "dane_publish", "issuer": {"module": "internal"}}]}]}}`
	for _, tc := range []struct{ name, app, extra, want string }{
		{"no provider", `"ttl": "1m"`, "", "a DNS provider is required"},
		{"read-only provider", `"dns": {"name": "dane_test_readonly"}`, "", "can neither set an RRset"},
		{"ttl fraction", dnsJSON + `, "ttl": "1500ms"`, "", "ttl 1.5s: must be a whole number of seconds"},
		{"ttl too short", dnsJSON + `, "ttl": "0.5s"`, "", "at least 1s"},
		{"max_hold under 2 ttl", dnsJSON + `, "ttl": "10m", "max_hold": "15m"`, "", "max_hold 15m0s is shorter than twice the ttl"},
		{"interval too short", dnsJSON + `, "interval": "10ms"`, "", "interval 10ms is shorter than the minimum"},
		{"record PKIX", dnsJSON + `, "records": ["1 1 1"]`, "", "only DANE-EE (3) and DANE-TA (2)"},
		{"record garbage", dnsJSON + `, "records": ["3 x 1"]`, "", `selector "x"`},
		{"site wildcard", dnsJSON + `, "sites": ["*.example.test"]`, "", "wildcards and placeholders"},
		{"site bad port", dnsJSON + `, "sites": ["up.example.test:0"]`, "", "port must be 1-65535"},
		{"site outside zone", dnsJSON + `, "sites": ["up.other.test"], "zone": "example.test."`, "", "up.other.test (owner _443._tcp.up.other.test.) is outside the zone example.test."},
		{"zone not a name", dnsJSON + `, "zone": "a..b"`, "", `zone "a..b" is not a domain name`},
		{"issuer without app", "", issuer, "the dane_publish app must be configured"},
		{"valid", dnsJSON + `, "sites": ["up.example.test:8443"], "zone": "example.test.", "ttl": "60s"`, issuer, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			apps := []string{}
			if tc.app != "" {
				apps = append(apps, `"dane_publish": {"resolvers": ["127.0.0.1:5300"], "trust_anchor_file": "`+good+`", `+tc.app+`}`)
			}
			if tc.extra != "" {
				apps = append(apps, tc.extra)
			}
			raw := `{"admin": {"disabled": true}, "apps": {` + strings.Join(apps, ", ") + `}}`
			var cfg caddy.Config
			if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
				t.Fatal(err)
			}
			err := caddy.Validate(&cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("valid config refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
