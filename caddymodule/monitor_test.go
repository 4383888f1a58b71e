package caddymodule

import (
	"bufio"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-dane/caddy-dane/caddymodule/dane"
	"github.com/caddy-dane/caddy-dane/caddymodule/tlsa"
	"github.com/caddy-dane/caddy-dane/internal/pkikit"
)

// TestMonitorGoesStaleAfterCertificateChange runs Caddy in process with a
// loaded certificate whose 3 1 1 and 2 1 1 records are published in a
// signed zone, then reloads it with a certificate from another CA and key:
// the gauge goes 1 → 0 and the warning names the records to publish.
func TestMonitorGoesStaleAfterCertificateChange(t *testing.T) {
	const site = "site.example.test"
	a, b := newPKI(t, site), newPKI(t, site)
	owner := dane.Owner(site, 443)
	rec := func(u tlsa.Usage, c *x509.Certificate) string {
		r, err := tlsa.NewRecord(u, tlsa.SPKI, tlsa.SHA256, c)
		if err != nil {
			t.Fatal(err)
		}
		return r.String()
	}
	_, dnsAddr, anchors := signedZone(t,
		owner+" 300 IN TLSA "+rec(tlsa.DANEEE, a.leaf),
		owner+" 300 IN TLSA "+rec(tlsa.DANETA, a.ca),
	)

	port := freePort(t)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "caddy.log")
	config := func(p *pki) []byte {
		chain := pkikit.PEM(p.leaf, p.ca)
		key, err := pkikit.KeyPEM(p.leafKey)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := json.Marshal(map[string]any{
			"admin":   map[string]any{"disabled": true},
			"storage": map[string]any{"module": "file_system", "root": filepath.Join(dir, "storage")},
			"logging": map[string]any{"logs": map[string]any{"default": map[string]any{
				"writer":  map[string]any{"output": "file", "filename": logFile},
				"encoder": map[string]any{"format": "json"},
				"level":   "INFO",
			}}},
			"apps": map[string]any{
				"http": map[string]any{"servers": map[string]any{"s": map[string]any{
					"listen": []string{fmt.Sprintf("127.0.0.1:%d", port)},
					"routes": []any{map[string]any{
						"match":  []any{map[string]any{"host": []string{site}}},
						"handle": []any{map[string]any{"handler": "static_response", "body": "ok"}},
					}},
					"tls_connection_policies": []any{map[string]any{}},
					"automatic_https":         map[string]any{"disable": true},
				}}},
				"tls": map[string]any{"certificates": map[string]any{
					"load_pem": []any{map[string]any{"certificate": string(chain), "key": string(key)}},
				}},
				"dane_monitor": map[string]any{
					"interval":          "100ms",
					"ports":             []int{443, 8443}, // no TLSA at 8443
					"resolvers":         []string{dnsAddr},
					"trust_anchor_file": anchors,
					"timeout":           "3s",
				},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}

	if err := caddy.Load(config(a), true); err != nil {
		t.Fatalf("caddy.Load: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	waitGauge(t, site, "443", 1)
	waitGauge(t, site, "8443", -1)
	time.Sleep(400 * time.Millisecond) // a few more ticks, same state

	if err := caddy.Load(config(b), true); err != nil {
		t.Fatalf("caddy.Load (new certificate): %v", err)
	}
	waitGauge(t, site, "443", 0)
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}

	entries := monitorLog(t, logFile)
	var matched, stale, notSecure []map[string]any
	for _, e := range entries {
		switch e["state"] {
		case stateNotSecure:
			notSecure = append(notSecure, e)
		case stateMatch:
			matched = append(matched, e)
		case stateStale:
			stale = append(stale, e)
		}
	}
	// No TLSA at port 8443, proven by DNSSEC: an error with the records.
	if len(notSecure) == 0 || notSecure[0]["level"] != "error" || notSecure[0]["port"] != float64(8443) ||
		!strings.Contains(fmt.Sprint(notSecure[0]["publish"]), dane.Owner(site, 8443)+" IN TLSA "+rec(tlsa.DANEEE, a.leaf)) {
		t.Errorf("want an error for port 8443 publishing the 3 1 1 record, got %v", notSecure)
	}
	// Logged on change of state only, not at every tick. A reload
	// overlaps two app instances for a moment (the old one may tick once
	// more and see the new certificate), so the stale state may be logged
	// by each of them: once per instance, never per tick.
	if len(matched) != 1 || len(stale) < 1 || len(stale) > 2 {
		t.Fatalf("want one match and one stale entry, got %d and %d:\n%v", len(matched), len(stale), entries)
	}
	if matched[0]["level"] != "info" || !strings.Contains(fmt.Sprint(matched[0]["next_certificate"]), "2 1 1") {
		t.Errorf("match entry: want info naming the 2 1 1 record that covers renewals, got %v", matched[0])
	}
	w := stale[len(stale)-1]
	wantPublish := []string{owner + " IN TLSA " + rec(tlsa.DANEEE, b.leaf), owner + " IN TLSA " + rec(tlsa.DANETA, b.ca)}
	if w["level"] != "warn" || fmt.Sprint(w["publish"]) != fmt.Sprint(wantPublish) {
		t.Errorf("stale entry: want a warning publishing\n%v\ngot %v", wantPublish, w)
	}
	if adv := fmt.Sprint(w["advice"]); !strings.Contains(adv, "RFC 7671 §8.1") || !strings.Contains(adv, "reuse_private_keys") {
		t.Errorf("stale entry: advice %q lacks the rollover procedure", adv)
	}
	if !strings.Contains(fmt.Sprint(w["error"]), "mismatch") {
		t.Errorf("stale entry: error %v does not say mismatch", w["error"])
	}
}

// waitGauge waits until the active config's gauge for site and port has
// value want.
func waitGauge(t *testing.T, site, port string, want float64) {
	t.Helper()
	var got []string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ctx := caddy.ActiveContext()
		mfs, err := ctx.GetMetricsRegistry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, mf := range mfs {
			if mf.GetName() != "caddy_dane_monitor_tlsa_match" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				v := m.GetGauge().GetValue()
				got = append(got, fmt.Sprintf("%v=%v", labels, v))
				if labels["site"] == site && labels["port"] == port && v == want {
					return
				}
			}
		}
	}
	t.Fatalf("caddy_dane_monitor_tlsa_match{site=%q,port=%q} never became %v; last seen %v", site, port, want, got)
}

// monitorLog returns the dane_monitor entries of a JSON log file.
func monitorLog(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e map[string]any
		if json.Unmarshal(sc.Bytes(), &e) == nil && e["logger"] == "dane_monitor" {
			out = append(out, e)
		}
	}
	return out
}

// TestMonitorNextCertificate: what the published records say about the
// certificate Caddy will switch to at renewal (RFC 7671 §8.1).
func TestMonitorNextCertificate(t *testing.T) {
	p := newPKI(t, "site.example.test")
	chain := []*x509.Certificate{p.leaf, p.ca}
	mk := func(u tlsa.Usage, s tlsa.Selector, c *x509.Certificate) tlsa.Record {
		r, err := tlsa.NewRecord(u, s, tlsa.SHA256, c)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	ee311, ee301, ta211 := mk(tlsa.DANEEE, tlsa.SPKI, p.leaf), mk(tlsa.DANEEE, tlsa.Cert, p.leaf), mk(tlsa.DANETA, tlsa.SPKI, p.ca)
	for _, tc := range []struct {
		name    string
		records []tlsa.Record
		reuse   bool
		covered bool
		why     string
	}{
		{"3 1 1 with reuse_private_keys: key kept", []tlsa.Record{ee311}, true, true, "keeps this key"},
		{"3 1 1 without reuse: next key unknown", []tlsa.Record{ee311}, false, false, "unknown until renewal"},
		{"3 0 1 with reuse: the certificate changes", []tlsa.Record{ee301}, true, false, "publish the 3 1 1"},
		{"2 1 1 of the issuer: covered while the CA key stays", []tlsa.Record{ee311, ta211}, false, true, "2 1 1 record (depth 1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			covered, why := dane.NextCertificate(chain, tc.records, "site.example.test", tc.reuse)
			if covered != tc.covered || !strings.Contains(why, tc.why) {
				t.Errorf("got (%v, %q), want (%v, …%q…)", covered, why, tc.covered, tc.why)
			}
		})
	}
}

// TestMonitorCaddyfile: the global option adapts to the documented JSON.
func TestMonitorCaddyfile(t *testing.T) {
	out, err := adapt(t, `{
	dane_monitor {
		names a.example.test b.example.test
		ports 443 8443
		interval 30m
		resolvers 127.0.0.1:5353 [::1]:53
		trust_anchor_file /etc/caddy/anchors.ds
		timeout 3s
		query_timeout 1s
		cache_size 100
	}
}
a.example.test {
	respond ok
}
`)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Apps map[string]json.RawMessage `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	want := `{"names":["a.example.test","b.example.test"],"ports":[443,8443],"interval":1800000000000,` +
		`"resolvers":["127.0.0.1:5353","[::1]:53"],"trust_anchor_file":"/etc/caddy/anchors.ds",` +
		`"timeout":3000000000,"query_timeout":1000000000,"cache_size":100}`
	if got := string(cfg.Apps["dane_monitor"]); got != want {
		t.Errorf("apps.dane_monitor:\n got %s\nwant %s", got, want)
	}

	out, err = adapt(t, "{\n\tdane_monitor\n}\na.example.test {\n\trespond ok\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	if got := string(cfg.Apps["dane_monitor"]); got != "{}" {
		t.Errorf("bare dane_monitor: apps.dane_monitor = %s, want {}", got)
	}
}

// TestMonitorCaddyfileErrors: each mistake is refused by the adapter with
// the option and the line.
func TestMonitorCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"unknown option", "name a.example.test", `unrecognized dane_monitor option "name"`},
		{"check_names is the transport's", "check_names", `unrecognized dane_monitor option "check_names"`},
		{"port zero", "ports 0", `invalid port "0"`},
		{"port too large", "ports 443 65536", `invalid port "65536"`},
		{"port not a number", "ports https", `invalid port "https"`},
		{"ports without value", "ports", "wrong argument count"},
		{"names without value", "names", "wrong argument count"},
		{"interval not a duration", "interval soon", `invalid interval "soon"`},
		{"interval too short", "interval 1ms", `interval "1ms" is shorter than the minimum 100ms`},
		{"interval twice", "interval 1h\n\t\tinterval 2h", `dane_monitor option "interval" specified more than once`},
		{"timeout not positive", "timeout 0s", `timeout must be positive`},
		{"timeout twice", "timeout 1s\n\t\ttimeout 2s", `"timeout" specified more than once`},
		{"cache_size not a number", "cache_size many", `invalid cache_size "many"`},
		{"resolvers without value", "resolvers", "wrong argument count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adapt(t, "{\n\tdane_monitor {\n\t\t"+tc.body+"\n\t}\n}\na.example.test {\n\trespond ok\n}\n")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "Caddyfile:") {
				t.Errorf("error %q does not name the Caddyfile line", err)
			}
		})
	}
	_, err := adapt(t, "{\n\tdane_monitor extra\n}\n")
	if err == nil || !strings.Contains(err.Error(), "wrong argument count") {
		t.Errorf("dane_monitor with an argument: got %v", err)
	}
}

// TestMonitorProvisionErrors: bad values in JSON are refused when the
// config is loaded (caddy validate), naming the option and the value.
func TestMonitorProvisionErrors(t *testing.T) {
	good, garbage, _, _ := anchorFiles(t)
	for _, tc := range []struct{ name, app, want string }{
		{"interval negative", `"interval": "-1s"`, "interval -1s is shorter than the minimum 100ms"},
		{"interval too short", `"interval": "10ms"`, "interval 10ms is shorter than the minimum 100ms"},
		{"port zero", `"ports": [0]`, "ports: 0 is not a TCP port"},
		{"port too large", `"ports": [443, 70000]`, "ports: 70000 is not a TCP port"},
		{"name is an IP", `"names": ["192.0.2.1"]`, `names: "192.0.2.1" is an IP address`},
		{"name is a wildcard", `"names": ["*.example.test"]`, `names: "*.example.test" is a wildcard`},
		{"name is not a DNS name", `"names": ["a..example"]`, `names: "a..example" is not a valid DNS name`},
		{"resolver host name", `"resolvers": ["dns.example:53"]`, `dane_monitor: resolvers`},
		{"anchor file missing", `"trust_anchor_file": "/nonexistent/anchors.ds"`, "trust_anchor_file: open /nonexistent/anchors.ds"},
		{"anchor file garbage", `"trust_anchor_file": "` + garbage + `"`, "trust_anchor_file " + garbage},
		{"timeout negative", `"timeout": "-1s"`, "timeout must not be negative"},
		{"query_timeout over timeout", `"timeout": "1s", "query_timeout": "2s"`, "query_timeout 2s is longer than timeout 1s"},
		{"cache_size negative", `"cache_size": -1`, "cache_size must not be negative"},
		{"valid", `"names": ["a.example.test"], "ports": [443, 8443], "interval": "1m"`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := `"resolvers": ["127.0.0.1:5300"], "trust_anchor_file": "` + good + `"`
			if strings.Contains(tc.app, "resolvers") || strings.Contains(tc.app, "trust_anchor_file") {
				app = `"resolvers": ["127.0.0.1:5300"]`
				if strings.Contains(tc.app, "resolvers") {
					app = `"trust_anchor_file": "` + good + `"`
				}
			}
			raw := `{"admin": {"disabled": true}, "apps": {"dane_monitor": {` + app + `, ` + tc.app + `}}}`
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
