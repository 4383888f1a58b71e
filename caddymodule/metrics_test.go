package caddymodule

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/metrics"
)

// TestMetrics provisions the transport inside a running Caddy (a signed
// zone served in process, loopback TLS upstreams, the `metrics` handler on
// a loopback port), makes verified and refused requests, and checks what
// the metrics endpoint says.
func TestMetrics(t *testing.T) {
	l := newCheckLab(t)
	port := freePort(t)

	route := func(path string, upstreamPort int) map[string]any {
		return map[string]any{
			"match": []any{map[string]any{"path": []string{path}}},
			"handle": []any{map[string]any{
				"handler":   "reverse_proxy",
				"upstreams": []any{map[string]any{"dial": fmt.Sprintf("svc.example.test:%d", upstreamPort)}},
				"transport": map[string]any{
					"protocol": "dane",
					"dane":     map[string]any{"resolvers": []string{l.dnsAddr}, "trust_anchor_file": l.anchorsFile, "timeout": "3s"},
					"resolver": map[string]any{"addresses": []string{"udp/" + l.dnsAddr}},
					// One connection per request: each one is verified.
					"keep_alive": map[string]any{"enabled": false},
				},
			}},
			"terminal": true,
		}
	}
	cfg, err := json.Marshal(map[string]any{
		"admin":   map[string]any{"disabled": true},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"writer": map[string]any{"output": "discard"}}}},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"m": map[string]any{
			"listen": []string{fmt.Sprintf("127.0.0.1:%d", port)},
			"routes": []any{
				map[string]any{"match": []any{map[string]any{"path": []string{"/metrics"}}},
					"handle": []any{map[string]any{"handler": "metrics"}}, "terminal": true},
				route("/good", l.svc),
				route("/impostor", l.impostor),
			},
			"automatic_https": map[string]any{"disable": true},
		}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("caddy.Load: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	before := scrape(t, get)
	for _, r := range []struct {
		path string
		want int
	}{{"/good", 200}, {"/good", 200}, {"/impostor", 502}} {
		if code, _ := get(r.path); code != r.want {
			t.Errorf("GET %s: %d, want %d", r.path, code, r.want)
		}
	}
	after := scrape(t, get)

	for _, tc := range []struct {
		series string
		delta  float64
	}{
		{`caddy_dane_verifications_total{reason="",result="verified"}`, 2},
		{`caddy_dane_verifications_total{reason="tlsa mismatch",result="refused"}`, 1},
		{`caddy_dane_lookups_total{status="secure"}`, 3},
		{`caddy_dane_cache_lookups_total{result="miss"}`, 2},
		{`caddy_dane_cache_lookups_total{result="hit"}`, 1},
		{`caddy_dane_lookup_duration_seconds_count`, 3},
		{`caddy_dane_handshake_verify_duration_seconds_count`, 3},
	} {
		if got := after[tc.series] - before[tc.series]; got != tc.delta {
			t.Errorf("%s went up by %v, want %v", tc.series, got, tc.delta)
		}
	}
}

var sampleLine = regexp.MustCompile(`^(caddy_dane_[a-z_]+(?:\{[^}]*\})?) (\S+)$`)

// scrape returns the caddy_dane_* samples of the metrics endpoint.
func scrape(t *testing.T, get func(string) (int, string)) map[string]float64 {
	t.Helper()
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if m := sampleLine.FindStringSubmatch(line); m != nil {
			v, err := strconv.ParseFloat(m[2], 64)
			if err == nil {
				out[m[1]] = v
			}
		}
	}
	return out
}
