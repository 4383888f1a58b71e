// Command demo shows caddy-dane end to end, offline, with nothing to
// install and no root: it signs a private DNS zone in process, serves it on
// loopback, starts two TLS upstreams and a Caddy whose reverse_proxy uses
// `transport dane`, and sends three requests through Caddy:
//
//	/good      upstream's key matches its DNSSEC-secure TLSA record  → 200
//	/tampered  an on-path attacker rewrote the TLSA answer (bogus)   → 502
//	/mitm      the upstream presents a key no TLSA record matches    → 502
//
// Run it with `go run ./examples/demo`. It exits non-zero if any outcome is
// not the expected one, so it doubles as a smoke test.
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/miekg/dns"

	_ "github.com/caddy-dane/caddy-dane/caddymodule"
	"github.com/caddy-dane/caddy-dane/internal/labconf"
	"github.com/caddy-dane/caddy-dane/internal/pkikit"
	"github.com/caddy-dane/caddy-dane/internal/zonekit"
)

const zone = "demo.test."

func main() {
	verbose := flag.Bool("v", false, "also print Caddy's full log")
	flag.Parse()
	if err := run(os.Stdout, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

// upstream is one TLS server on loopback.
type upstream struct {
	name string
	port int
	srv  *http.Server
	cert *pkikit.Leaf
}

func run(out io.Writer, verbose bool) error {
	dir, err := os.MkdirTemp("", "caddy-dane-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	say := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }

	// 1. Three upstreams: two whose keys are published, one impostor.
	goodKey, err := pkikit.NewKey()
	if err != nil {
		return err
	}
	mitmKey, err := pkikit.NewKey()
	if err != nil {
		return err
	}
	good, err := startUpstream("api."+zone, goodKey, "hello from api.demo.test")
	if err != nil {
		return err
	}
	defer good.srv.Close()
	tampered, err := startUpstream("tampered."+zone, goodKey, "hello from tampered.demo.test")
	if err != nil {
		return err
	}
	defer tampered.srv.Close()
	mitm, err := startUpstream("mitm."+zone, mitmKey, "an impostor answered")
	if err != nil {
		return err
	}
	defer mitm.srv.Close()

	// 2. A DNSSEC-signed zone publishing TLSA 3 1 1 (DANE-EE, SPKI, SHA-256)
	// of the good key for every upstream.
	rdata := good.cert.TLSA311()
	z := zonekit.NewZone(zone)
	for _, u := range []upstream{good, tampered, mitm} {
		z.MustAdd(
			fmt.Sprintf("%s 300 IN A 127.0.0.1", u.name),
			fmt.Sprintf("_%d._tcp.%s 300 IN TLSA %s", u.port, u.name, rdata),
		)
	}
	now := time.Now()
	if err := z.Sign(now.Add(-time.Hour), now.Add(24*time.Hour)); err != nil {
		return err
	}
	say("signed zone %s (ECDSA P-256), TLSA %s", zone, rdata)

	// The resolver answers honestly, except that an on-path attacker
	// swaps the digest of tampered's TLSA record, keeping its RRSIG.
	dnsSrv := zonekit.NewServer(z)
	tamperedOwner := fmt.Sprintf("_%d._tcp.%s", tampered.port, tampered.name)
	dnsSrv.Tamper = func(q, resp *dns.Msg) {
		for _, rr := range resp.Answer {
			if t, ok := rr.(*dns.TLSA); ok && strings.EqualFold(t.Hdr.Name, tamperedOwner) {
				t.Certificate = strings.Repeat("ab", 32)
			}
		}
	}
	dnsAddr, err := dnsSrv.ListenAndServe()
	if err != nil {
		return err
	}
	defer dnsSrv.Close()
	anchors := filepath.Join(dir, "anchors.ds")
	var ds bytes.Buffer
	for _, d := range z.DS() {
		ds.WriteString(d.String() + "\n")
	}
	if err := os.WriteFile(anchors, ds.Bytes(), 0o600); err != nil {
		return err
	}
	say("DNS on %s (UDP+TCP), trust anchor %s", dnsAddr, strings.TrimSpace(ds.String()))

	// 3. Caddy with `transport dane`, configured in JSON as `caddy adapt`
	// would produce it from a Caddyfile.
	caddyPort, err := labconf.FreePort()
	if err != nil {
		return err
	}
	logFile := filepath.Join(dir, "caddy.log")
	cfg, err := caddyConfig(caddyPort, dnsAddr, anchors, logFile, map[string]upstream{
		"/good": good, "/tampered": tampered, "/mitm": mitm,
	})
	if err != nil {
		return err
	}
	if err := caddy.Load(cfg, true); err != nil {
		return fmt.Errorf("starting caddy: %w", err)
	}
	defer func() { _ = caddy.Stop() }()
	say("caddy on 127.0.0.1:%d, reverse_proxy transport dane -> upstreams on ports %d, %d, %d",
		caddyPort, good.port, tampered.port, mitm.port)
	say("")

	// 4. Requests through Caddy.
	client := &http.Client{Timeout: 15 * time.Second}
	failures := 0
	for _, c := range []struct {
		path string
		want int
		why  string
	}{
		{"/good", http.StatusOK, "key matches the DNSSEC-secure TLSA record"},
		{"/tampered", http.StatusBadGateway, "TLSA answer altered in transit: DNSSEC says bogus"},
		{"/mitm", http.StatusBadGateway, "upstream key matches no TLSA record"},
	} {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d%s", caddyPort, c.path))
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		verdict := "ok"
		if resp.StatusCode != c.want {
			verdict = fmt.Sprintf("UNEXPECTED (want %d)", c.want)
			failures++
		}
		say("GET %-9s -> %d %-11s %s", c.path, resp.StatusCode, verdict, c.why)
		if resp.StatusCode == http.StatusOK {
			say("    body: %s", strings.TrimSpace(string(body)))
		}
	}

	// 5. What Caddy logged about the refusals.
	if err := caddy.Stop(); err != nil {
		return err
	}
	logs, _ := os.ReadFile(logFile)
	say("")
	say("caddy's log of the refusals:")
	for _, line := range strings.Split(string(logs), "\n") {
		if verbose && line != "" {
			say("    %s", line)
			continue
		}
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) != nil || e["msg"] != "dane refused upstream" {
			continue
		}
		say("    upstream=%v reason=%q dnssec=%v", e["upstream"], e["reason"], e["dnssec"])
		say("      %v", e["error"])
	}
	if failures > 0 {
		return fmt.Errorf("%d request(s) had an unexpected outcome", failures)
	}
	return nil
}

// caddyConfig builds a JSON config: one HTTP server, one route per path,
// each proxying to one upstream through the dane transport.
func caddyConfig(port int, dnsAddr, anchors, logFile string, routes map[string]upstream) ([]byte, error) {
	var rs []any
	for path, u := range routes {
		rs = append(rs, map[string]any{
			"match": []any{map[string]any{"path": []string{path}}},
			"handle": []any{map[string]any{
				"handler":   "reverse_proxy",
				"upstreams": []any{map[string]any{"dial": fmt.Sprintf("%s:%d", strings.TrimSuffix(u.name, "."), u.port)}},
				"rewrite":   map[string]any{"uri": "/"},
				"transport": map[string]any{
					"protocol": "dane",
					"dane": map[string]any{
						"resolvers":         []string{dnsAddr},
						"trust_anchor_file": anchors,
						"timeout":           "3s",
					},
					// Caddy resolves the upstream's address through the
					// same local DNS server.
					"resolver": map[string]any{"addresses": []string{"udp/" + dnsAddr}},
					"tls":      map[string]any{},
				},
			}},
			"terminal": true,
		})
	}
	return json.Marshal(map[string]any{
		"admin": map[string]any{"disabled": true},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{
			"writer":  map[string]any{"output": "file", "filename": logFile},
			"encoder": map[string]any{"format": "json"},
			"level":   "INFO",
		}}},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"demo": map[string]any{
			"listen":          []string{fmt.Sprintf("127.0.0.1:%d", port)},
			"routes":          rs,
			"automatic_https": map[string]any{"disable": true},
		}}}},
	})
}

// startUpstream serves HTTPS on a loopback port with a self-signed
// certificate for name: DANE-EE(3) needs no CA and ignores names and dates.
func startUpstream(name string, key *ecdsa.PrivateKey, body string) (upstream, error) {
	cert, err := pkikit.SelfSigned(key, strings.TrimSuffix(name, "."))
	if err != nil {
		return upstream{}, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return upstream{}, err
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s (over %s)\n", body, r.Proto)
		}),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert.TLS()}},
		ReadHeaderTimeout: 5 * time.Second,
		// The impostor's failed handshakes are the point of the demo,
		// not noise worth printing.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	return upstream{name: name, port: ln.Addr().(*net.TCPAddr).Port, srv: srv, cert: cert}, nil
}
