package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/rfc2136"
	"github.com/caddy-dane/caddy-dane/internal/labconf"
)

// publishLab is the DNS side of the dane_publish tests: BIND 9 as the
// primary of example.test. (startBIND: dnssec-policy signs every update
// as it applies it), a validating Unbound in front of it whose only trust
// anchor is the zone's KSK as BIND serves it, and the update proxy the
// publisher's provider talks to, so that updates can be cut off while the
// zone stays readable.
type publishLab struct {
	*bindLab
	anchors  string // DNSKEY of the zone's KSK (zone-file line)
	resolver string // Unbound, 127.0.0.1:<port>
	unbound  *proc
	proxy    *updateProxy
}

// publishCacheTTL caps Unbound's cache (seconds): with the records' TTL
// of 2 s, a change is visible to a client at most 2×TTL after BIND
// applied it.
const publishCacheTTL = 2

func startPublishLab(t *testing.T) *publishLab {
	t.Helper()
	b := startBIND(t)
	l := &publishLab{bindLab: b}
	keys, _, err := b.query(bindZone, dns.TypeDNSKEY)
	if err != nil {
		t.Fatal(err)
	}
	var anchors strings.Builder
	for _, k := range keys {
		if k.(*dns.DNSKEY).Flags&dns.SEP != 0 {
			anchors.WriteString(k.String() + "\n")
		}
	}
	if anchors.Len() == 0 {
		t.Fatalf("BIND serves no KSK for %s: %v", bindZone, keys)
	}
	l.anchors = filepath.Join(b.dir, "anchors.key")
	if err := os.WriteFile(l.anchors, []byte(anchors.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if l.proxy, err = startUpdateProxy(b.server, "update-key.", b.secret); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.proxy.Close)
	_, port, _ := strings.Cut(b.server, ":")
	dir := t.TempDir()
	l.unbound, l.resolver, err = startZoneUnbound(dir, mustAtoi(t, port), bindZone, l.anchors, publishCacheTTL)
	if err != nil {
		t.Fatalf("unbound: %v\n%s", err, tailFile(filepath.Join(dir, "unbound.log"), 20))
	}
	t.Cleanup(func() { l.unbound.Stop(5 * time.Second) })
	return l
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("port %q: %v", s, err)
	}
	return n
}

// unboundTLSA asks the validating Unbound for the TLSA RRset at owner and
// returns its records ("u s m hex") and whether the answer was
// authenticated (AD).
func (l *publishLab) unboundTLSA(owner string) (recs []string, ad bool, rcode int, err error) {
	q := new(dns.Msg)
	q.SetQuestion(owner, dns.TypeTLSA)
	q.SetEdns0(1232, true)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(q, l.resolver)
	if err != nil {
		return nil, false, -1, err
	}
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TLSA); ok {
			recs = append(recs, fmt.Sprintf("%d %d %d %s", t.Usage, t.Selector, t.MatchingType, strings.ToLower(t.Certificate)))
		}
	}
	return recs, r.AuthenticatedData, r.Rcode, nil
}

// TestPublishLab checks the lab before the publisher runs in it: a TLSA
// RRset written through the update proxy is signed by BIND and proven
// Secure by Unbound (AD) with the KSK anchor; with the proxy in refused
// and drop mode the provider fails with the error kinds the publisher's
// reasons come from, and nothing reaches the zone.
func TestPublishLab(t *testing.T) {
	l := startPublishLab(t)
	ctx := context.Background()
	p := &rfc2136.Provider{Server: l.proxy.Addr, KeyName: "update-key.", Secret: l.secret, Timeout: 2 * time.Second}
	const rel = "_8443._tcp.lab"
	owner := rel + "." + bindZone
	rec := "3 1 1 " + strings.Repeat("ab", 32)
	tlsa := []libdns.Record{libdns.RR{Name: rel, Type: "TLSA", TTL: 2 * time.Second, Data: rec}}

	if _, err := p.SetRecords(ctx, bindZone, tlsa); err != nil {
		t.Fatalf("SetRecords through the proxy: %v", err)
	}
	if !pollUntil(ctxTimeout(t, 10*time.Second), func() bool {
		recs, ad, _, err := l.unboundTLSA(owner)
		return err == nil && ad && len(recs) == 1 && recs[0] == rec
	}) {
		recs, ad, rc, err := l.unboundTLSA(owner)
		t.Fatalf("Unbound: TLSA %q AD %v rcode %d err %v, want %q with AD\n%s", recs, ad, rc, err, rec,
			tailFile(filepath.Join(filepath.Dir(l.unbound.Log), "unbound.log"), 20))
	}
	provenTLSA(t, l.bindLab, owner, []string{rec})

	for _, tc := range []struct {
		name string
		mode proxyMode
		kind error
	}{
		{"RFC2136-3.3/primary refuses the update (signed REFUSED)", proxyRefused, rfc2136.ErrRefused},
		{"RFC2136-3.8/primary unreachable (no answer)", proxyDrop, rfc2136.ErrTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l.proxy.Set(tc.mode)
			defer l.proxy.Set(proxyForward)
			before := l.proxy.Count(tc.mode)
			_, err := p.SetRecords(ctx, bindZone, []libdns.Record{libdns.RR{Name: rel, Type: "TLSA", TTL: 2 * time.Second, Data: "3 1 1 " + strings.Repeat("cd", 32)}})
			t.Logf("error: %v", err)
			if !errors.Is(err, tc.kind) {
				t.Fatalf("error %v, want %v", err, tc.kind)
			}
			if strings.Contains(err.Error(), "not authenticated") {
				t.Errorf("the proxy's refusal is not signed: %v", err)
			}
			if l.proxy.Count(tc.mode) == before {
				t.Errorf("the proxy handled nothing in mode %v", tc.mode)
			}
			if s := tlsaSet(t, l.provider("update-key.", l.secret), rel); len(s) != 1 || s[0] != rec {
				t.Errorf("zone changed: TLSA %q", s)
			}
		})
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// freePorts returns n distinct free loopback ports.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	seen := map[int]bool{}
	var out []int
	for len(out) < n {
		p, err := labconf.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// publishHost is the upstream's name; its TLSA owner is
// _<port>._tcp.upstream.example.test.
const publishHost = "upstream." + bindZone

// Timing of the upstream's certificates: certmagic renews (with a new key:
// reuse_private_keys is off by default) when half of the lifetime is
// left, checking every second. A renewal is held by the publisher until
// the new record is visible through Unbound, then 2×TTL more (about 6 s
// here), so a key change is served about every 20 s, and between two of
// them the RRset is quiet (one record) for about 10 s.
const (
	publishTTL      = 2 * time.Second
	publishLifetime = 40 * time.Second
	publishRatio    = "0.5"
)

// publishUpstream is the configuration of an upstream Caddy whose site
// gets its certificates from the internal CA through the dane_publish
// issuer and whose TLSA records the dane_publish app maintains.
type publishUpstream struct {
	Admin    string // 127.0.0.1:<port>
	Bind     string // the site's listener address
	Port     int    // the site's HTTPS port: the TLSA owner's
	HTTPPort int    // http_port (redirects are off; never used)
	Storage  string // storage file_system root (shared by instances)
	Host     string // the site's name; publishHost if empty
	// Publish is the body of the dane_publish global option, one line
	// each; nil leaves the app and the wrapping issuer out (plain `tls
	// internal`).
	Publish []string
}

func (u publishUpstream) Caddyfile() string {
	host := u.Host
	if host == "" {
		host = strings.TrimSuffix(publishHost, ".")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin %s\n\tpersist_config off\n\tskip_install_trust\n\tauto_https disable_redirects\n", u.Admin)
	fmt.Fprintf(&b, "\thttp_port %d\n\tstorage file_system %s\n\trenew_interval 1s\n\trenewal_window_ratio %s\n", u.HTTPPort, u.Storage, publishRatio)
	if u.Publish != nil {
		b.WriteString("\tdane_publish {\n")
		for _, l := range u.Publish {
			fmt.Fprintf(&b, "\t\t%s\n", l)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n\n")
	fmt.Fprintf(&b, "%s:%d {\n\tbind %s\n\ttls {\n", host, u.Port, u.Bind)
	inner := fmt.Sprintf("issuer internal {\n\t\t\tlifetime %s\n\t\t}", publishLifetime)
	if u.Publish != nil {
		inner = fmt.Sprintf("issuer dane_publish {\n\t\t\tissuer internal {\n\t\t\t\tlifetime %s\n\t\t\t}\n\t\t}", publishLifetime)
	}
	fmt.Fprintf(&b, "\t\t%s\n\t}\n\tlog\n\trespond \"ok\"\n}\n", inner)
	return b.String()
}

// publishOptions is the dane_publish body for the lab: the provider
// (through the update proxy unless server is given), TTL 2 s, reconcile
// every second, the validating path through Unbound with the zone's KSK.
func (l *publishLab) publishOptions(server, secret string, extra ...string) []string {
	if server == "" {
		server = l.proxy.Addr
	}
	if secret == "" {
		secret = l.secret
	}
	opts := []string{
		"dns dane_rfc2136 {",
		"\tserver " + server,
		"\tkey_name update-key.",
		"\tkey_alg hmac-sha256",
		"\tsecret " + secret,
		"\ttimeout 2s",
		"}",
		"ttl " + publishTTL.String(),
		"interval 1s",
		"resolvers " + l.resolver,
		"trust_anchor_file " + l.anchors,
		"timeout 2s",
	}
	return append(opts, extra...)
}

// publishFront is the front Caddy: plain HTTP on 127.0.0.1:Port, proxied
// to the upstreams by `transport dane` with a new upstream connection per
// request (keepalive off) and a full handshake each time (no session
// resumption), so that every request is authenticated against the TLSA
// RRset of that moment.
func (l *publishLab) publishFront(admin string, port int, upstreams ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin %s\n\tpersist_config off\n\tauto_https off\n}\n\n", admin)
	fmt.Fprintf(&b, "http://127.0.0.1:%d {\n\treverse_proxy %s {\n", port, strings.Join(upstreams, " "))
	// The upstream's site matches its name, not the front's address.
	fmt.Fprintf(&b, "\t\theader_up Host %s\n", strings.TrimSuffix(publishHost, "."))
	if len(upstreams) > 1 {
		b.WriteString("\t\tlb_policy round_robin\n")
	}
	fmt.Fprintf(&b, "\t\ttransport dane {\n\t\t\tdane {\n\t\t\t\tresolvers %s\n\t\t\t\ttrust_anchor_file %s\n\t\t\t\ttimeout 2s\n\t\t\t\tsession_resumption off\n\t\t\t}\n", l.resolver, l.anchors)
	fmt.Fprintf(&b, "\t\t\ttls_server_name %s\n\t\t\tkeepalive off\n\t\t}\n\t}\n}\n", strings.TrimSuffix(publishHost, "."))
	return b.String()
}

// tlsaOwner is the TLSA owner of the upstream site on port.
func tlsaOwner(port int) string { return fmt.Sprintf("_%d._tcp.%s", port, publishHost) }

// tlsaRel is the owner relative to the zone, as the provider names it.
func tlsaRel(port int) string { return strings.TrimSuffix(tlsaOwner(port), "."+bindZone) }

// startPublishCaddy writes cfg as name.Caddyfile and runs Caddy until the
// test ends, waiting until it listens on hostport. Its log's tail is
// shown if the test failed.
func startPublishCaddy(t *testing.T, e *Env, name, cfg, hostport string) *Caddy {
	t.Helper()
	path, err := e.writeCaddyfile(name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.startCaddyAt(path, hostport)
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, cfg)
	}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("--- %s caddy log (tail)\n%s", name, c.Tail(40))
		}
	})
	return c
}

// waitServed waits until the TLS server at addr presents a certificate
// for the upstream's name and returns its key.
func waitServed(t *testing.T, addr string, limit time.Duration) string {
	t.Helper()
	var key string
	var err error
	if !pollUntil(ctxTimeout(t, limit), func() bool {
		key, err = presentedKey(addr, strings.TrimSuffix(publishHost, "."))
		return err == nil
	}) {
		t.Fatalf("%s serves no certificate after %v: %v", addr, limit, err)
	}
	return key
}

// served counts the requests the upstream Caddy answered 200 (its access
// log).
func served(c *Caddy) int {
	n := 0
	for _, e := range c.Entries("handled request") {
		if s, _ := e["status"].(float64); s == 200 {
			n++
		}
	}
	return n
}

// scrape reads a Caddy's metrics or fails the test.
func scrape(t *testing.T, admin string) metrics {
	t.Helper()
	m, err := scrapeMetrics(admin)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
