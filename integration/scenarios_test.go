package integration

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/caddy-dane/caddy-dane/internal/labconf"
)

// site is the usual configuration: Unbound for DANE and for dialing, the
// lab's trust anchor, a 2s lookup timeout.
func (e *Env) site(t *testing.T, ups ...*Upstream) Site {
	port, err := labconf.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	s := Site{
		Port:         port,
		Dane:         Dane{Resolvers: e.Lab.Resolver(), TrustAnchor: e.Lab.AnchorsFile, Timeout: "2s"},
		DialResolver: e.Lab.Resolver(),
	}
	for _, u := range ups {
		s.Upstreams = append(s.Upstreams, "https://"+u.HostPort())
	}
	return s
}

// startCaddy starts Caddy for the test and stops it at the end, printing
// its log (and Unbound's) if the test failed.
func startCaddy(t *testing.T, e *Env, s Site) *Caddy {
	t.Helper()
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	for _, u := range e.Up {
		u.Reset() // before Caddy starts: health checks begin at once
	}
	c, err := e.StartCaddy(name, s)
	if err != nil {
		t.Fatalf("%v\nCaddyfile:\n%s", err, s.Caddyfile())
	}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("Caddyfile:\n%s\n--- caddy log (tail)\n%s\n%s", s.Caddyfile(), c.Tail(25), e.diagnostics())
		}
	})
	return c
}

var client = &http.Client{Timeout: 20 * time.Second}

// request sends one request through Caddy and returns status, body and
// how long it took.
func request(t *testing.T, method, url, body string) (int, string, time.Duration) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), time.Since(start)
}

// wantRefused asserts that Caddy logged a DANE refusal of u with reason.
func wantRefused(t *testing.T, c *Caddy, u *Upstream, reason string) {
	t.Helper()
	refs := c.Refusals(u.HostPort())
	if len(refs) == 0 {
		t.Errorf("no \"dane refused upstream\" log entry for %s", u.HostPort())
		return
	}
	for _, r := range refs {
		if r.Str("reason") == reason {
			t.Logf("refusal logged: reason=%q dnssec=%q error=%q", r.Str("reason"), r.Str("dnssec"), r.Str("error"))
			return
		}
	}
	t.Errorf("refusals of %s have reasons %q, want %q (first: %v)", u.HostPort(), reasons(refs), reason, refs[0])
}

func reasons(refs []LogEntry) []string {
	var out []string
	for _, r := range refs {
		out = append(out, r.Str("reason"))
	}
	return out
}

// TestDANE is the verdict table: one upstream per DNSSEC/TLSA situation.
func TestDANE(t *testing.T) {
	e := needCaddy(t)
	tests := []struct {
		name     string
		upstream string
		anchors  string // trust anchor file; "" = the lab's
		want     int
		reason   string // for refusals
	}{
		{name: "RFC 7671 §5.1 DANE-EE 3 1 1 matches", upstream: "good", want: 200},
		{name: "RFC 7671 §5.2 DANE-TA 2 1 1 of the intermediate", upstream: "ta", want: 200},
		{name: "TLSA does not match the presented key", upstream: "mismatch", want: 502, reason: "tlsa mismatch"},
		{name: "RFC 4035 §5.3 tampered TLSA RRset is bogus", upstream: "bogus", want: 502, reason: "bogus"},
		{name: "RFC 4035 §5.3.1 expired signatures are bogus", upstream: "expired", want: 502, reason: "bogus"},
		{name: "RFC 4035 §5.2 unsigned zone under a DS is bogus", upstream: "unsigned", want: 502, reason: "bogus"},
		{name: "RFC 6698 §4.1 insecure zone is refused", upstream: "insecure", want: 502, reason: "insecure"},
		{name: "wrong trust anchor", upstream: "good", anchors: e.Lab.WrongAnchorsFile, want: 502, reason: "bogus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := e.Up[tt.upstream]
			s := e.site(t, u)
			if tt.anchors != "" {
				s.Dane.TrustAnchor = tt.anchors
			}
			c := startCaddy(t, e, s)
			status, body, el := request(t, "GET", c.URL()+"/", "")
			t.Logf("%s → %d in %v: %q", u.HostPort(), status, el.Round(time.Millisecond), strings.TrimSpace(body))
			if status != tt.want {
				t.Fatalf("status %d, want %d", status, tt.want)
			}
			if tt.want == 200 {
				if !strings.Contains(body, "upstream="+tt.upstream) {
					t.Errorf("body %q is not from upstream %s", body, tt.upstream)
				}
				if refs := c.Refusals(u.HostPort()); len(refs) > 0 {
					t.Errorf("unexpected refusal logged: %v", refs[0])
				}
				return
			}
			wantRefused(t, c, u, tt.reason)
			if n := u.Requests.Load(); n != 0 {
				t.Errorf("refused upstream received %d requests", n)
			}
		})
	}
}

// TestCurl sends requests with curl, a client that is not Go's.
func TestCurl(t *testing.T) {
	e := needCaddy(t)
	for _, tc := range []struct {
		upstream string
		want     string
	}{{"good", "200"}, {"mismatch", "502"}} {
		t.Run(tc.upstream, func(t *testing.T) {
			c := startCaddy(t, e, e.site(t, e.Up[tc.upstream]))
			out, err := run(e.Dir, 30*time.Second, "curl", "-sS", "--max-time", "20", "-o", "/dev/null",
				"-w", "%{http_code}", c.URL()+"/")
			if err != nil {
				t.Fatal(err)
			}
			if out != tc.want {
				t.Errorf("curl: status %s, want %s", out, tc.want)
			}
		})
	}
}

// TestResolverDown: resolvers that never answer give a 502 within the
// configured timeout (+1s), and the log says it was a DNS timeout; a
// resolver port that is closed (ICMP port unreachable) fails at once, as a
// DNS error rather than a timeout.
func TestResolverDown(t *testing.T) {
	e := needCaddy(t)
	closed, err := labconf.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		resolver string
		max      time.Duration
		reason   string
	}{
		{"blackhole", blackhole(t), 3 * time.Second, "dns timeout"},
		{"port closed", "127.0.0.1:" + itoa(closed), time.Second, "dns error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := e.site(t, e.Up["good"])
			s.Dane.Resolvers = tc.resolver
			s.Dane.Timeout = "2s"
			c := startCaddy(t, e, s)
			status, body, el := request(t, "GET", c.URL()+"/", "")
			t.Logf("resolver %s (%s) → %d in %v: %q", tc.resolver, tc.name, status, el.Round(time.Millisecond), strings.TrimSpace(body))
			if status != 502 {
				t.Errorf("status %d, want 502", status)
			}
			if el > tc.max {
				t.Errorf("refusal took %v, want ≤ %v", el, tc.max)
			}
			wantRefused(t, c, e.Up["good"], tc.reason)
		})
	}
}

// blackhole listens on UDP and TCP and never answers: a resolver that is
// down without an ICMP error.
func blackhole(t *testing.T) string {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			continue
		}
		go func() {
			buf := make([]byte, 65535)
			for {
				if _, _, err := pc.ReadFrom(buf); err != nil {
					return
				}
			}
		}()
		var held []net.Conn
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					for _, c := range held {
						c.Close()
					}
					return
				}
				held = append(held, c)
			}
		}()
		t.Cleanup(func() { pc.Close(); ln.Close() })
		return pc.LocalAddr().String()
	}
	t.Fatal("no port free for UDP and TCP")
	return ""
}

// TestRollover: the TLSA RRset lists keys A and B; the upstream switches
// from A to B (both accepted), then to C (not listed: refused).
func TestRollover(t *testing.T) {
	e := needCaddy(t)
	u := e.Up["rollover"]
	t.Cleanup(func() { u.SetCert(e.RolloverA) })
	s := e.site(t, u)
	s.Transport = []string{"keepalive off"} // one TLS handshake per request
	c := startCaddy(t, e, s)
	for _, step := range []struct {
		key  string
		want int
	}{{"A", 200}, {"B", 200}, {"A", 200}, {"C", 502}} {
		u.SetCert(map[string]tls.Certificate{"A": e.RolloverA, "B": e.RolloverB, "C": e.RolloverC}[step.key])
		before := u.Handshakes.Load()
		status, body, _ := request(t, "GET", c.URL()+"/", "")
		if status != step.want {
			t.Errorf("key %s: status %d, want %d (%q)", step.key, status, step.want, body)
		}
		if u.Handshakes.Load() == before {
			t.Errorf("key %s: no new TLS handshake", step.key)
		}
	}
	wantRefused(t, c, u, "tlsa mismatch")
}

// TestHTTP2: the upstream connection negotiates HTTP/2 (ALPN) and is still
// DANE-verified; with `versions 1.1` it stays on HTTP/1.1.
func TestHTTP2(t *testing.T) {
	e := needCaddy(t)
	u := e.Up["good"]
	for _, tc := range []struct {
		versions string
		major    int64
		proto    string
	}{{"", 2, "HTTP/2.0"}, {"1.1", 1, "HTTP/1.1"}} {
		t.Run("versions "+tc.versions, func(t *testing.T) {
			s := e.site(t, u)
			if tc.versions != "" {
				s.Transport = []string{"versions " + tc.versions}
			}
			c := startCaddy(t, e, s)
			status, body, _ := request(t, "GET", c.URL()+"/", "")
			if status != 200 || u.LastProto.Load() != tc.major || !strings.Contains(body, "proto="+tc.proto) {
				t.Errorf("status %d, upstream saw HTTP/%d: %q; want 200 over %s", status, u.LastProto.Load(), body, tc.proto)
			}
		})
	}
}

// TestActiveHealthChecks: health checks go through the DANE transport, so
// the mismatching upstream is never sent a health request.
func TestActiveHealthChecks(t *testing.T) {
	e := needCaddy(t)
	good, bad := e.Up["good"], e.Up["mismatch"]
	s := e.site(t, good, bad)
	s.Proxy = []string{"health_uri /health", "health_interval 200ms", "health_timeout 3s"}
	c := startCaddy(t, e, s)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && (good.Health.Load() < 3 || bad.Handshakes.Load() < 2) {
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("health requests: good %d, mismatch %d (TLS handshakes at mismatch: %d)",
		good.Health.Load(), bad.Health.Load(), bad.Handshakes.Load())
	if good.Health.Load() < 3 {
		t.Errorf("good upstream got %d health checks in 10s, want ≥ 3", good.Health.Load())
	}
	if bad.Handshakes.Load() == 0 {
		t.Errorf("no handshake at the mismatching upstream: health checks did not try it")
	}
	if bad.Health.Load() != 0 {
		t.Errorf("mismatching upstream received %d health requests", bad.Health.Load())
	}
	wantRefused(t, c, bad, "tlsa mismatch")
	for i := range 4 {
		status, body, _ := request(t, "GET", c.URL()+"/", "")
		if status != 200 || !strings.Contains(body, "upstream=good") {
			t.Errorf("request %d: %d %q, want 200 from good", i, status, body)
		}
	}
	if bad.Requests.Load() != 0 {
		t.Errorf("mismatching upstream received %d requests", bad.Requests.Load())
	}
}

// TestLoadBalancingRetry: a refused upstream is a dial error, so even a
// POST is retried on the next upstream, and the refused one sees nothing.
//
// Caddy's retry loop asks the policy again, and `first` picks the first
// *available* upstream: without passive health checks (fail_duration) that
// is the refused upstream every time, until lb_try_duration runs out. So
// the configuration that works has fail_duration; the test keeps that
// explicit.
func TestLoadBalancingRetry(t *testing.T) {
	e := needCaddy(t)
	good, bad := e.Up["good"], e.Up["mismatch"]
	s := e.site(t, bad, good)
	s.Proxy = []string{"lb_policy first", "lb_try_duration 5s", "fail_duration 30s", "max_fails 1"}
	c := startCaddy(t, e, s)
	payload := strings.Repeat("caddy-dane ", 100)
	status, body, el := request(t, "POST", c.URL()+"/submit", payload)
	t.Logf("POST → %d in %v: %q", status, el.Round(time.Millisecond), strings.TrimSpace(body))
	if status != 200 || !strings.Contains(body, "upstream=good") || !strings.Contains(body, "body="+itoa(len(payload))) {
		t.Errorf("status %d %q; want 200 from good with the %d-byte body", status, body, len(payload))
	}
	if n := bad.Requests.Load(); n != 0 {
		t.Errorf("refused upstream received %d requests", n)
	}
	wantRefused(t, c, bad, "tlsa mismatch")
}

// TestOpenSSLCrossCheck: OpenSSL's DANE verifier, given the TLSA RDATA
// that dig gets through Unbound, agrees with Caddy.
func TestOpenSSLCrossCheck(t *testing.T) {
	e := needCaddy(t)
	for _, name := range []string{"good", "ta", "mismatch"} {
		t.Run(name, func(t *testing.T) {
			u := e.Up[name]
			recs := digTLSA(t, e, name)
			if len(recs) == 0 {
				t.Fatal("no TLSA from dig")
			}
			args := []string{"s_client", "-brief", "-connect", u.Addr(), "-servername", u.Host,
				"-dane_tlsa_domain", u.Host, "-verify_return_error"}
			for _, r := range recs {
				args = append(args, "-dane_tlsa_rrdata", r)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "openssl", args...)
			cmd.Stdin = strings.NewReader("")
			out, err := cmd.CombinedOutput()
			opensslOK := err == nil && strings.Contains(string(out), "Verification: OK")
			c := startCaddy(t, e, e.site(t, u))
			status, _, _ := request(t, "GET", c.URL()+"/", "")
			caddyOK := status == 200
			t.Logf("openssl: ok=%v (%s); caddy: %d", opensslOK, firstLines(string(out), "Verif", "DANE", "error"), status)
			if opensslOK != caddyOK {
				t.Errorf("openssl says ok=%v, caddy says %d\n%s", opensslOK, status, out)
			}
			if want := name != "mismatch"; caddyOK != want {
				t.Errorf("verdict ok=%v, want %v", caddyOK, want)
			}
		})
	}
}

func firstLines(s string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, p := range prefixes {
			if strings.Contains(l, p) {
				out = append(out, strings.TrimSpace(l))
				break
			}
		}
	}
	return strings.Join(out, " | ")
}

// TestConfigHTTP3Rejected: `versions 3` would bypass the DANE dialer; the
// config must not load.
func TestConfigHTTP3Rejected(t *testing.T) {
	e := needCaddy(t)
	s := e.site(t, e.Up["good"])
	s.Transport = []string{"versions 3"}
	cfg, err := e.writeCaddyfile("http3", s.Caddyfile())
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(e.CaddyBin, "validate", "--config", cfg, "--adapter", "caddyfile")
	cmd.Env = append(cmd.Environ(), e.caddyEnv()...)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("caddy validate accepted versions 3:\n%s", out)
	}
	if !strings.Contains(string(out), "HTTP/3") {
		t.Errorf("caddy validate failed without mentioning HTTP/3:\n%s", out)
	}
}

// TestConfigAdapt: the Caddyfile becomes JSON with protocol "dane" and the
// dane object.
func TestConfigAdapt(t *testing.T) {
	e := needCaddy(t)
	s := e.site(t, e.Up["good"])
	cfg, err := e.writeCaddyfile("adapt", s.Caddyfile())
	if err != nil {
		t.Fatal(err)
	}
	out, err := run(e.Dir, time.Minute, e.CaddyBin, "adapt", "--config", cfg, "--adapter", "caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"protocol":"dane"`, `"dane":{`, `"resolvers":["` + e.Lab.Resolver() + `"]`,
		`"trust_anchor_file":"` + e.Lab.AnchorsFile + `"`} {
		if !strings.Contains(out, want) {
			t.Errorf("adapted JSON lacks %s:\n%s", want, out)
		}
	}
	var v any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Errorf("adapted config is not JSON: %v", err)
	}
}
