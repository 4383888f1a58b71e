package caddymodule

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/libdns/libdns"
	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/dane"
	"github.com/caddy-dane/caddy-dane/caddymodule/publish"
	"github.com/caddy-dane/caddy-dane/caddymodule/rfc2136"
	"github.com/caddy-dane/caddy-dane/internal/zonekit"
)

func init() {
	caddy.RegisterModule(zonekitProvider{})
}

// The zone a zonekitProvider edits, re-signed after every change, and the
// fault switch of the outage test (a refused update, as a server says it).
var (
	testZone     atomic.Pointer[zonekit.Zone]
	testZoneMu   sync.Mutex
	testZoneDown atomic.Bool
)

// zonekitProvider is a libdns provider over the in-process signed zone
// testZone, registered as dns.providers.dane_test_zonekit for the tests.
type zonekitProvider struct{}

func (zonekitProvider) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "dns.providers.dane_test_zonekit", New: func() caddy.Module { return new(zonekitProvider) }}
}

func (zonekitProvider) GetRecords(_ context.Context, zone string) ([]libdns.Record, error) {
	z := testZone.Load()
	var out []libdns.Record
	for _, rr := range z.Records() {
		if t, ok := rr.(*dns.TLSA); ok {
			out = append(out, libdns.RR{
				Name: libdns.RelativeName(t.Hdr.Name, zone), Type: "TLSA",
				TTL:  time.Duration(t.Hdr.Ttl) * time.Second,
				Data: fmt.Sprintf("%d %d %d %s", t.Usage, t.Selector, t.MatchingType, t.Certificate),
			})
		}
	}
	return out, nil
}

func (zonekitProvider) SetRecords(_ context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	if testZoneDown.Load() {
		return nil, fmt.Errorf("update: %w", rfc2136.ErrRefused)
	}
	testZoneMu.Lock()
	defer testZoneMu.Unlock()
	z := testZone.Load()
	for _, r := range recs {
		z.Remove(libdns.AbsoluteName(r.RR().Name, zone), dns.TypeTLSA)
	}
	for _, r := range recs {
		rr := r.RR()
		if err := z.Add(fmt.Sprintf("%s %d IN TLSA %s", libdns.AbsoluteName(rr.Name, zone), int(rr.TTL/time.Second), rr.Data)); err != nil {
			return nil, err
		}
	}
	return recs, resign(z)
}

func (zonekitProvider) DeleteRecords(_ context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	if testZoneDown.Load() {
		return nil, fmt.Errorf("update: %w", rfc2136.ErrRefused)
	}
	testZoneMu.Lock()
	defer testZoneMu.Unlock()
	z := testZone.Load()
	for _, r := range recs {
		z.Remove(libdns.AbsoluteName(r.RR().Name, zone), dns.TypeTLSA)
	}
	return recs, resign(z)
}

// resign signs the test zone again after a change, valid for an hour.
func resign(z *zonekit.Zone) error {
	now := time.Now()
	return z.Sign(now.Add(-time.Hour), now.Add(time.Hour))
}

func zoneTLSA(owner string) []string {
	var out []string
	for _, rr := range testZone.Load().RRset(owner, dns.TypeTLSA) {
		t := rr.(*dns.TLSA)
		out = append(out, fmt.Sprintf("%d %d %d %s", t.Usage, t.Selector, t.MatchingType, strings.ToLower(t.Certificate)))
	}
	slices.Sort(out)
	return out
}

// TestPublishRollover runs a real Caddy (in a child process, because
// certmagic's renewal ticker is fixed when the process's certificate cache
// is made) that serves a site with `issuer dane_publish { issuer internal
// }`, a 20s lifetime and renewal at half of it: certmagic renews with a new
// key every ~10s. A DANE client (our authenticator, through the site's
// TLSA RRset in a signed zone) connects every 25ms for 34s. Every
// handshake must verify, the key must change at least twice, a provider
// outage in the middle must hold back any key not published before it, and at the
// end the RRset must be exactly the served key's record.
func TestPublishRollover(t *testing.T) {
	if os.Getenv("DANE_PUBLISH_CHILD") == "" {
		if testing.Short() && os.Getenv("CI") != "true" {
			t.Skip("30 s of real renewals (-short); CI always runs it")
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestPublishRollover$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "DANE_PUBLISH_CHILD=1")
		out, err := cmd.CombinedOutput()
		t.Logf("child:\n%s", out)
		if err != nil {
			t.Fatalf("child: %v", err)
		}
		return
	}
	const site = "up.example.test"
	z, dnsAddr, anchors := signedZone(t)
	testZone.Store(z)
	port := freePort(t)
	owner := dane.Owner(site, port)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "caddy.log")
	cfg, err := json.Marshal(map[string]any{
		"admin":   map[string]any{"disabled": true},
		"storage": map[string]any{"module": "file_system", "root": filepath.Join(dir, "storage")},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{
			"writer":  map[string]any{"output": "file", "filename": logFile},
			"encoder": map[string]any{"format": "json"}, "level": "DEBUG",
		}}},
		"apps": map[string]any{
			"http": map[string]any{"servers": map[string]any{"s": map[string]any{
				"listen": []string{fmt.Sprintf("127.0.0.1:%d", port)},
				"routes": []any{map[string]any{
					"match":  []any{map[string]any{"host": []string{site}}},
					"handle": []any{map[string]any{"handler": "static_response", "body": "ok"}},
				}},
				"automatic_https": map[string]any{"disable_redirects": true},
			}}},
			"tls": map[string]any{"automation": map[string]any{
				"renew_interval": "200ms",
				"policies": []any{map[string]any{
					"subjects":             []string{site},
					"renewal_window_ratio": 0.5,
					"issuers": []any{map[string]any{
						"module": "dane_publish",
						"issuer": map[string]any{"module": "internal", "lifetime": "20s"},
					}},
				}},
			}},
			// The monitor sees the key changes as covered by dane_publish.
			"dane_monitor": map[string]any{
				"names": []string{site}, "ports": []int{port}, "interval": "500ms",
				"resolvers": []string{dnsAddr}, "trust_anchor_file": anchors,
			},
			"dane_publish": map[string]any{
				"dns": map[string]any{"name": "dane_test_zonekit"},
				// 853: published too, but nothing listens there (a warning).
				"ports": []int{port, 853}, "ttl": "1s", "interval": "100ms", "zone": "example.test.",
				"resolvers": []string{dnsAddr}, "trust_anchor_file": anchors, "timeout": "2s",
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("caddy.Load: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })

	opts := Options{Resolvers: []string{dnsAddr}, TrustAnchorFile: anchors}
	auth, err := opts.newAuthenticator(nil)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	var ok, failed int
	var failures []string
	dial := func() error {
		var leafKey string
		conf := &tls.Config{ServerName: site, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12,
			VerifyConnection: func(cs tls.ConnectionState) error {
				sum := sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo)
				leafKey = "3 1 1 " + hex.EncodeToString(sum[:])
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				_, err := auth.Authenticate(ctx, dane.Target{Host: site, Port: port}, presents(cs.PeerCertificates))
				return err
			}}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", port), conf)
		if err != nil {
			return err
		}
		c.Close()
		if len(keys) == 0 || keys[len(keys)-1] != leafKey {
			keys = append(keys, leafKey)
		}
		return nil
	}
	// The first certificate is itself held until published: wait for it.
	deadline := time.Now().Add(15 * time.Second)
	for dial() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("first certificate never served with its TLSA record published; zone %v", zoneTLSA(owner))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The provider refuses every update from 8s to 18s: a renewal falls
	// into that window. A key first served during the outage must have
	// been published (and proven) before it began: nothing can be
	// published meanwhile.
	start := time.Now()
	outageFrom, outageTo := 8*time.Second, 18*time.Second
	var zoneAtOutage []string
	var keysAtOutage int
	for time.Since(start) < 34*time.Second {
		el := time.Since(start)
		switch {
		case el >= outageFrom && el < outageTo && !testZoneDown.Load():
			testZoneMu.Lock()
			testZoneDown.Store(true)
			zoneAtOutage = zoneTLSA(owner)
			testZoneMu.Unlock()
			keysAtOutage = len(keys)
		case el >= outageTo && testZoneDown.Load():
			testZoneDown.Store(false)
			for _, k := range keys[keysAtOutage:] {
				if !slices.Contains(zoneAtOutage, k) {
					t.Errorf("key %s first served during the outage was not published before it: zone then %v", k, zoneAtOutage)
				}
			}
		}
		if err := dial(); err != nil {
			failed++
			if len(failures) < 5 {
				failures = append(failures, fmt.Sprintf("+%s: %v", el.Round(time.Millisecond), err))
			}
		} else {
			ok++
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Logf("%d handshakes verified, %d failed; served keys in order: %v", ok, failed, keys)
	if failed > 0 {
		t.Errorf("%d handshakes failed DANE verification during rollovers: %v", failed, failures)
	}
	if len(keys) < 3 {
		t.Errorf("want ≥2 key changes in 34s, saw keys %v", keys)
	}
	// End state: after 2×TTL and a few intervals, only the served key.
	var final []string
	for range 50 {
		time.Sleep(100 * time.Millisecond)
		final = zoneTLSA(owner)
		if len(final) == 1 {
			break
		}
	}
	served := servedChains(site)
	if len(served) == 0 {
		t.Fatal("no served certificate")
	}
	ee, _ := publish.ParseParams("3 1 1")
	want, _ := publish.Records(served[len(served)-1].chain, []publish.Params{ee})
	if !slices.Equal(final, want) {
		t.Errorf("final RRset %v, want the served key's record %v", final, want)
	}
	// The dry run (admin endpoint and CLI) says the same, and writes nothing.
	writes := z.Records()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := servePublishPreview(w, r); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	cmd := publishCommand()
	var out strings.Builder
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--dry-run", "--address", srv.URL})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("caddy dane publish --dry-run: %v", err)
	}
	if line := owner + " 1 IN TLSA " + want[0]; !strings.Contains(out.String(), line) {
		t.Errorf("dry run printed\n%s\nwant the line %q", out.String(), line)
	}
	if !slices.EqualFunc(writes, z.Records(), func(a, b dns.RR) bool { return a.String() == b.String() }) {
		t.Error("the dry run changed the zone")
	}
	noDry := publishCommand()
	noDry.SetArgs([]string{"--address", srv.URL})
	noDry.SetOut(io.Discard)
	noDry.SetErr(io.Discard)
	if err := noDry.Execute(); err == nil {
		t.Error("caddy dane publish without --dry-run must refuse")
	}

	b, _ := os.ReadFile(logFile)
	logText := string(b)
	for _, want := range []string{`"msg":"holding renewed certificate until its TLSA records are visible"`, `"msg":"releasing renewed certificate"`, `"msg":"TLSA RRset updated"`, `"reason":"refused"`, `"next_certificate":"dane_publish publishes the next certificate's records`,
		`"msg":"no http server listens on the port whose TLSA records are published; set ports (or sites name:port) to the port clients connect to","owner":"_853._tcp.up.example.test.","port":853`} {
		if !strings.Contains(logText, want) {
			t.Errorf("log lacks %s", want)
		}
	}
	if t.Failed() {
		var lines []string
		for _, l := range strings.Split(logText, "\n") {
			if strings.Contains(l, "dane_publish") || strings.Contains(l, "renew") {
				lines = append(lines, l)
			}
		}
		t.Logf("dane_publish log:\n%s", strings.Join(lines, "\n"))
	}
}

func init() {
	caddy.RegisterModule(readOnlyProvider{})
}

// readOnlyProvider can read a zone but not change it.
type readOnlyProvider struct{}

func (readOnlyProvider) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "dns.providers.dane_test_readonly", New: func() caddy.Module { return new(readOnlyProvider) }}
}

func (readOnlyProvider) GetRecords(context.Context, string) ([]libdns.Record, error) { return nil, nil }
