package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
	b := startTCPBIND(t)
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

// startTCPBIND is startBIND with BIND answering on TCP too, which the
// provider uses for every update and transfer. startBIND picks a port
// free for UDP; when its TCP twin is in use (a parallel test's load
// makes thousands of connections), named logs "creating TCP socket:
// address in use" and serves UDP only. Such a named is stopped and
// another started.
func startTCPBIND(t *testing.T) *bindLab {
	t.Helper()
	var err error
	for range 3 {
		b := startBIND(t)
		q := new(dns.Msg)
		q.SetQuestion(bindZone, dns.TypeSOA)
		var r *dns.Msg
		r, _, err = (&dns.Client{Net: "tcp", Timeout: 2 * time.Second}).Exchange(q, b.server)
		if err == nil && r.Rcode == dns.RcodeSuccess && r.Authoritative {
			return b
		}
		if err == nil {
			err = fmt.Errorf("TCP answer %s, AA %v", dns.RcodeToString[r.Rcode], r.Authoritative)
		}
		var why []string
		for _, line := range strings.Split(b.named.Tail(200), "\n") {
			if strings.Contains(line, "listen") || strings.Contains(line, "TCP") || strings.Contains(line, "in use") {
				why = append(why, line)
			}
		}
		t.Logf("named on %s does not answer on TCP (%v), starting another:\n%s", b.server, err, strings.Join(why, "\n"))
		b.named.Stop(5 * time.Second)
	}
	t.Fatalf("no named answering on TCP: %v", err)
	return nil
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
	publishInterval = time.Second // reconcile and heartbeat period
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
		"interval " + publishInterval.String(),
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

// Messages of the dane_publish app (logger "dane_publish").
const (
	msgUpdated   = "TLSA RRset updated"
	msgFailed    = "publishing TLSA RRset failed"
	msgHolding   = "holding renewed certificate until its TLSA records are visible"
	msgReleasing = "releasing renewed certificate"
)

// entryTime is a log line's timestamp (Caddy's JSON "ts", Unix seconds).
func entryTime(e LogEntry) time.Time {
	ts, _ := e["ts"].(float64)
	sec := int64(ts)
	return time.Unix(sec, int64((ts-float64(sec))*1e9))
}

// field is a log line's list field (added, removed, records) as one
// lower-case string, to look for a record's hex in.
func field(e LogEntry, k string) string {
	switch v := e[k].(type) {
	case []any:
		var parts []string
		for _, x := range v {
			parts = append(parts, fmt.Sprint(x))
		}
		return strings.ToLower(strings.Join(parts, " | "))
	case nil:
		return ""
	default:
		return strings.ToLower(fmt.Sprint(v))
	}
}

// entriesWith returns the lines among es whose field k mentions hex.
func entriesWith(es []LogEntry, k, hex string) []LogEntry {
	var out []LogEntry
	for _, e := range es {
		if strings.Contains(field(e, k), hex) {
			out = append(out, e)
		}
	}
	return out
}

// keySeen is one key as a set of samplers saw it: from the first sample
// of any of them to the last sample of any.
type keySeen struct {
	SPKI        string
	First, Last time.Time
}

// keysSeen merges the spans of several samplers (instances serving the
// same name) by key, ordered by first sight.
func keysSeen(samplers ...*keySampler) []keySeen {
	by := map[string]*keySeen{}
	var order []string
	for _, s := range samplers {
		for _, sp := range s.Spans() {
			k, ok := by[sp.SPKI]
			if !ok {
				by[sp.SPKI] = &keySeen{SPKI: sp.SPKI, First: sp.First, Last: sp.Last}
				order = append(order, sp.SPKI)
				continue
			}
			if sp.First.Before(k.First) {
				k.First = sp.First
			}
			if sp.Last.After(k.Last) {
				k.Last = sp.Last
			}
		}
	}
	out := make([]keySeen, 0, len(order))
	for _, o := range order {
		out = append(out, *by[o])
	}
	slices.SortFunc(out, func(a, b keySeen) int { return a.First.Compare(b.First) })
	return out
}

// checkRolloverStory reads the publishers' "TLSA RRset updated" lines
// against the keys the samplers saw served (RFC 7671 §8.1, current +
// next): each key's 3 1 1 record was added at least 2×TTL before any
// instance served it; each key that was replaced was removed after the
// last instance was seen serving it (by 2×TTL, less one interval); the
// key served at the end was never removed.
func checkRolloverStory(t *testing.T, keys []keySeen, owner string, publishers ...*Caddy) {
	t.Helper()
	var updated []LogEntry
	for _, c := range publishers {
		updated = append(updated, c.Entries(msgUpdated)...)
	}
	slices.SortFunc(updated, func(a, b LogEntry) int { return entryTime(a).Compare(entryTime(b)) })
	for _, u := range updated {
		if ttl, _ := u["ttl"].(float64); u.Str("owner") != owner || u.Str("zone") != bindZone || ttl != publishTTL.Seconds() {
			t.Errorf("%q line %v: want owner %s, zone %s, ttl %v", msgUpdated, u, owner, bindZone, publishTTL.Seconds())
		}
	}
	const slack = 100 * time.Millisecond // a sample is timed after its handshake
	for i, k := range keys {
		added := entriesWith(updated, "added", k.SPKI)
		if len(added) == 0 {
			t.Errorf("key %d (%.12s…): served from %s, but no %q line added its record", i, k.SPKI, k.First.Format(time.TimeOnly), msgUpdated)
			continue
		}
		at := entryTime(added[0])
		lead := k.First.Sub(at)
		t.Logf("key %d (%.12s…): record added %s, first served %s (%v later), last seen %s",
			i, k.SPKI, at.Format("15:04:05.000"), k.First.Format("15:04:05.000"), lead.Round(time.Millisecond), k.Last.Format("15:04:05.000"))
		if lead < 2*publishTTL-slack {
			t.Errorf("key %d served %v after its record was added, want ≥ 2×TTL = %v (a client may still hold the old RRset)", i, lead, 2*publishTTL)
		}
		removed := entriesWith(updated, "removed", k.SPKI)
		if i == len(keys)-1 {
			if len(removed) > 0 {
				t.Errorf("the key served at the end (%.12s…) was removed at %s: %v", k.SPKI, entryTime(removed[0]).Format(time.TimeOnly), removed[0])
			}
			continue
		}
		if len(removed) == 0 {
			t.Errorf("key %d (%.12s…) was replaced by key %d but its record was never removed", i, k.SPKI, i+1)
			continue
		}
		// RFC 7671 §8.1: the old record stays until the old certificate
		// is out of service plus 2×TTL. The sampler's last sighting is
		// no later than the real end of service, so this is exact.
		rt := entryTime(removed[0])
		after := rt.Sub(k.Last)
		t.Logf("key %d: record removed %s, %v after it was last seen served", i, rt.Format("15:04:05.000"), after.Round(time.Millisecond))
		if after < 2*publishTTL {
			t.Errorf("key %d's record removed %v after it was last served, want ≥ 2×TTL = %v", i, after, 2*publishTTL)
		}
	}
}

// quietState polls until the upstream instances at addrs all present one
// key, the zone (AXFR) holds exactly its 3 1 1 record at the owner, and
// Unbound answers that RRset authenticated (AD): no renewal in flight.
// It returns the key, or fails after limit.
func (l *publishLab) quietState(t *testing.T, port int, limit time.Duration, addrs ...string) string {
	t.Helper()
	p := l.provider("update-key.", l.secret)
	owner, rel := tlsaOwner(port), tlsaRel(port)
	var last string
	var key string
	start := time.Now()
	ok := pollUntil(ctxTimeout(t, limit), func() bool {
		key = ""
		for _, a := range addrs {
			k, err := presentedKey(a, strings.TrimSuffix(publishHost, "."))
			if err != nil || (key != "" && k != key) {
				last = fmt.Sprintf("instances present different keys or none (%s: %v)", a, err)
				return false
			}
			key = k
		}
		want := "3 1 1 " + key
		zone := lowerAll(tlsaSet(t, p, rel))
		recs, ad, rc, err := l.unboundTLSA(owner)
		last = fmt.Sprintf("served %.12s…; zone %q; Unbound %q AD %v rcode %d err %v", key, zone, recs, ad, rc, err)
		return slices.Equal(zone, []string{want}) && err == nil && ad && slices.Equal(recs, []string{want})
	})
	if !ok {
		t.Fatalf("no quiet state within %v: %s", limit, last)
	}
	t.Logf("quiet state after %v: %s", time.Since(start).Round(time.Millisecond), last)
	// And our own validator proves the same RRset Secure from the anchor.
	provenTLSA(t, l.bindLab, owner, []string{"3 1 1 " + key})
	return key
}

func lowerAll(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = strings.ToLower(x)
	}
	return out
}

// checkFrontClean checks the front's side of a load: every request got
// 200 "ok", no upstream connection was refused (log and metrics), every
// handshake the front made was a full one that the transport verified,
// and there were at least as many of them as requests the upstreams
// served (keepalive off: a new connection per request).
func checkFrontClean(t *testing.T, g *steadyLoad, warm int, front *Caddy, frontAdmin string, upstreams ...*Caddy) {
	t.Helper()
	res := g.Results()
	failed := g.Failed("ok")
	t.Logf("load: %d requests at %.1f req/s, %d failed", len(res), g.Rate(), len(failed))
	if len(failed) > 0 {
		n := min(len(failed), 5)
		for _, f := range failed[:n] {
			t.Errorf("failed request at %s: status %d body %q err %v", f.At.Format("15:04:05.000"), f.Status, f.Body, f.Err)
		}
		t.Errorf("%d of %d requests failed, want 0", len(failed), len(res))
	}
	if r := g.Rate(); r < 100 {
		t.Errorf("load rate %.1f req/s, want ≥ 100", r)
	}
	if refs := front.Refusals(""); len(refs) > 0 {
		t.Errorf("the front refused %d upstream connections: reasons %q", len(refs), reasons(refs))
	}
	m := scrape(t, frontAdmin)
	refused := m.Sum("caddy_dane_verifications_total", `result="refused"`)
	verified := m.Sum("caddy_dane_verifications_total", `result="verified"`)
	full := m.Sum("caddy_dane_upstream_handshakes_total", `kind="full"`)
	resumed := m.Sum("caddy_dane_upstream_handshakes_total", `kind="resumed"`)
	total := 0
	for _, u := range upstreams {
		total += served(u)
	}
	ok := len(res) - len(failed) + warm
	t.Logf("front: %v verified, %v refused, handshakes full %v resumed %v; upstreams served %d; client got %d × 200",
		verified, refused, full, resumed, total, ok)
	if refused != 0 {
		t.Errorf("caddy_dane_verifications_total{result=refused} = %v, want 0: %v", refused, m.Series("caddy_dane_verifications_total"))
	}
	if total != ok {
		t.Errorf("the upstreams served %d requests, the client got %d × 200", total, ok)
	}
	if resumed != 0 || full != verified {
		t.Errorf("%v full and %v resumed handshakes, %v verified: want every handshake full (session_resumption off) and verified", full, resumed, verified)
	}
	// A verified connection may carry no request (Go's HTTP/2 client may
	// dial one it then does not use, or retry a refused stream on a new
	// one), so verified may exceed the requests, never fall short.
	if verified < float64(total) {
		t.Errorf("%d requests served, but only %v verified upstream connections: keepalive off should give each its own", total, verified)
	}
}

// waitKeys waits until the samplers together have seen n distinct keys.
func waitKeys(t *testing.T, n int, limit time.Duration, what string, samplers ...*keySampler) {
	t.Helper()
	if !pollUntil(ctxTimeout(t, limit), func() bool { return len(keysSeen(samplers...)) >= n }) {
		t.Fatalf("%s: %d distinct keys served after %v, want %d", what, len(keysSeen(samplers...)), limit, n)
	}
}

// since returns the lines of es at or after from.
func since(es []LogEntry, from time.Time) []LogEntry {
	var out []LogEntry
	for _, e := range es {
		if !entryTime(e).Before(from) {
			out = append(out, e)
		}
	}
	return out
}

// TestPublishRollover (issue 11): a front Caddy with `transport dane`
// (a new, fully verified upstream connection per request) in front of an
// upstream Caddy whose certificates come from the internal CA through
// the dane_publish issuer, its TLSA records published in BIND (which
// signs them) through RFC 2136, read back through a validating Unbound.
// Under 120 req/s the upstream's certificate is renewed with a new key
// (lifetime 40 s): no request fails and none is refused, because every
// new key is published 2×TTL before it is served and every old one
// withdrawn 2×TTL after it stopped being served (RFC 7671 §8.1). Then
// updates fail for 20 s (10 s refused by the primary, 10 s unanswered),
// long enough for the next renewal to fall into the outage: the renewal
// is held (the old key keeps being served, its record published), the
// failures are logged and counted with their reason, and after the
// outage the held key is published and served. At the end the RRset is
// exactly the served key's record.
func TestPublishRollover(t *testing.T) {
	t.Parallel()
	e := needCaddy(t)
	l := startPublishLab(t)
	ps := freePorts(t, 5)
	up := publishUpstream{Admin: fmt.Sprintf("127.0.0.1:%d", ps[0]), Bind: "127.0.0.1", Port: ps[1], HTTPPort: ps[2],
		Storage: t.TempDir(), Publish: l.publishOptions("", "", "zone "+bindZone, fmt.Sprintf("ports %d", ps[1]))}
	addr := fmt.Sprintf("127.0.0.1:%d", up.Port)
	uc := startPublishCaddy(t, e, "publish-upstream", up.Caddyfile(), addr)
	first := waitServed(t, addr, 45*time.Second)
	p := l.provider("update-key.", l.secret)
	if s := lowerAll(tlsaSet(t, p, tlsaRel(up.Port))); !slices.Contains(s, "3 1 1 "+first) {
		t.Fatalf("the first certificate is served before its record is in the zone: zone %q, served %s", s, first)
	}

	frontAdmin := fmt.Sprintf("127.0.0.1:%d", ps[3])
	front := startPublishCaddy(t, e, "publish-front", l.publishFront(frontAdmin, ps[4], "https://"+addr), fmt.Sprintf("127.0.0.1:%d", ps[4]))
	url := fmt.Sprintf("http://127.0.0.1:%d/", ps[4])
	if st, body, _ := request(t, "GET", url, ""); st != 200 || strings.TrimSpace(body) != "ok" {
		t.Fatalf("first request through the front: %d %q", st, body)
	}
	sampler := startKeySampler(addr, strings.TrimSuffix(publishHost, "."), 200*time.Millisecond)
	defer sampler.Stop()
	load := startSteadyLoad(url, 120)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("load when the test ended: %s; the front refused %d upstream connections", load.Summary(), len(front.Refusals("")))
		}
	})
	t.Cleanup(load.Stop) // before the Caddys stop (cleanups run last first)

	// 1. A renewal with a new key under load.
	waitKeys(t, 2, 40*time.Second, "renewal under load", sampler)

	// 2. The outage, started right after a key change: the next renewal
	// (about 14 s later) falls into it. For the first half the primary
	// refuses the updates, for the second it does not answer at all.
	outageStart := time.Now()
	l.proxy.Set(proxyRefused)
	keysBefore := len(keysSeen(sampler))
	const outage = 20 * time.Second
	var held LogEntry
	var dropFrom time.Time
	if !pollUntil(ctxTimeout(t, outage+5*time.Second), func() bool {
		if dropFrom.IsZero() && time.Since(outageStart) >= outage/2 {
			dropFrom = time.Now()
			l.proxy.Set(proxyDrop)
		}
		h := since(uc.Entries(msgHolding), outageStart)
		if len(h) > 0 {
			held = h[0]
		}
		return held != nil && time.Since(outageStart) >= outage
	}) {
		l.proxy.Set(proxyForward)
		t.Fatalf("no renewal was held during the %v outage (no %q line since %s)", outage, msgHolding, outageStart.Format(time.TimeOnly))
	}
	outageEnd := time.Now()
	l.proxy.Set(proxyForward)
	t.Logf("outage %s–%s (no answer from %s); renewal held at %s: %v", outageStart.Format("15:04:05.000"), outageEnd.Format("15:04:05.000"),
		dropFrom.Format("15:04:05.000"),
		entryTime(held).Format("15:04:05.000"), held)
	if n := len(keysSeen(sampler)); n != keysBefore {
		t.Errorf("the served key changed during the outage (%d keys before, %d after): a certificate whose record could not be published was served", keysBefore, n)
	}

	// 3. After the outage the held key is published, then served.
	waitKeys(t, keysBefore+1, 30*time.Second, "held renewal after the outage", sampler)
	load.Stop()
	end := l.quietState(t, up.Port, 25*time.Second, addr)
	quietAt := time.Now()
	records := scrape(t, up.Admin).Sum("caddy_dane_publish_records")
	sampler.Stop()

	keys := keysSeen(sampler)
	if keys[len(keys)-1].SPKI != end {
		t.Errorf("the quiet state's key %.12s… is not the last key sampled %.12s…", end, keys[len(keys)-1].SPKI)
	}
	if n, err := sampler.Errors(); n > 0 {
		t.Errorf("%d key samples failed (last: %v): the upstream stopped serving", n, err)
	}
	t.Logf("%d keys served, %d key changes", len(keys), len(keys)-1)
	if len(keys) < 3 {
		t.Errorf("%d key changes, want ≥ 2 (one before the outage, the held one after)", len(keys)-1)
	}
	checkFrontClean(t, load, 1, front, frontAdmin, uc)
	checkRolloverStory(t, keys, tlsaOwner(up.Port), uc)

	// The outage as the publisher saw it: retried failures, with the
	// reason of each phase (a dropped update is logged when the
	// provider's 2 s timeout ends).
	var inOutage []LogEntry
	for _, f := range since(uc.Entries(msgFailed), outageStart) {
		if entryTime(f).Before(outageEnd.Add(2500 * time.Millisecond)) {
			inOutage = append(inOutage, f)
		}
	}
	byReason := map[string]int{}
	for _, f := range inOutage {
		byReason[f.Str("reason")]++
		if f.Str("error") == "" || f.Str("owner") != tlsaOwner(up.Port) || f["retry_in"] == nil {
			t.Errorf("failure line %v: want the error, the owner %s and retry_in", f, tlsaOwner(up.Port))
		}
		if at := entryTime(f); at.Before(dropFrom) && f.Str("reason") != "refused" {
			t.Errorf("failure at %s, while the primary refused: reason %q, want refused", at.Format("15:04:05.000"), f.Str("reason"))
		} else if at.After(dropFrom.Add(2500*time.Millisecond)) && f.Str("reason") != "timeout" {
			t.Errorf("failure at %s, while the primary did not answer: reason %q, want timeout", at.Format("15:04:05.000"), f.Str("reason"))
		}
	}
	t.Logf("%d failures logged during the outage: %v; first: %v", len(inOutage), byReason, first1(inOutage))
	if byReason["refused"] < 2 || byReason["timeout"] < 1 {
		t.Errorf("failures during the outage by reason %v, want ≥ 2 refused and ≥ 1 timeout (logged and retried)", byReason)
	}
	if f := since(uc.Entries(msgFailed), outageEnd.Add(10*time.Second)); len(f) > 0 {
		t.Errorf("publishing still failing 10 s after the outage: %v", f[0])
	}
	// The held certificate was released only after the outage.
	var released LogEntry
	for _, r := range since(uc.Entries(msgReleasing), entryTime(held)) {
		released = r
		break
	}
	if released == nil {
		t.Errorf("the certificate held at %s was never released", entryTime(held).Format(time.TimeOnly))
	} else if entryTime(released).Before(outageEnd) {
		t.Errorf("the held certificate was released at %s, during the outage", entryTime(released).Format(time.TimeOnly))
	} else {
		t.Logf("released %s: %v", entryTime(released).Format("15:04:05.000"), released)
	}
	um := scrape(t, up.Admin)
	t.Logf("upstream metrics: %v %v %v %v", um.Series("caddy_dane_publish_errors_total"), um.Series("caddy_dane_publish_changes_total"),
		um.Series("caddy_dane_publish_records"), um.Series("caddy_dane_publish_held_seconds_count"))
	for reason, n := range byReason {
		if v := um.Sum("caddy_dane_publish_errors_total", `reason="`+reason+`"`); v < float64(n) {
			t.Errorf("caddy_dane_publish_errors_total{reason=%s} = %v, want ≥ %d (the failures logged)", reason, v, n)
		}
	}
	if v, want := um.Sum("caddy_dane_publish_errors_total"), um.Sum("caddy_dane_publish_errors_total", `reason="refused"`)+
		um.Sum("caddy_dane_publish_errors_total", `reason="timeout"`); v != want {
		t.Errorf("publish errors other than the outage's: %v", um.Series("caddy_dane_publish_errors_total"))
	}
	// The gauge read in the quiet state: 1, unless the next renewal had
	// already added its record by then.
	if records != 1 && (records != 2 || len(since(uc.Entries(msgHolding), quietAt.Add(-time.Second))) == 0) {
		t.Errorf("caddy_dane_publish_records = %v in the quiet state, want 1", records)
	}
	if v := um.Sum("caddy_dane_publish_held_seconds_count"); v < float64(len(keys)) {
		t.Errorf("caddy_dane_publish_held_seconds_count = %v, want ≥ %d (every certificate served was held first)", v, len(keys))
	}
	if v := um.Sum("caddy_dane_publish_held_seconds_sum"); v < (outageEnd.Sub(entryTime(held)) + 2*publishTTL).Seconds() {
		t.Errorf("caddy_dane_publish_held_seconds_sum = %v s, less than the held renewal alone", v)
	}
}

func first1(es []LogEntry) LogEntry {
	if len(es) == 0 {
		return nil
	}
	return es[0]
}

// TestPublishTwoInstances (issue 11): two upstream Caddys with the same
// configuration and one storage (certmagic's locks), on 127.0.0.2 and
// 127.0.0.3 with the same port, so with one TLSA owner; the front
// balances between them. Whichever renews, the other loads the renewed
// certificate from storage, and the record of the key one of them still
// serves stays published (heartbeats) until both have moved on. No
// request fails, the publishers do not fight (few changes, no
// prerequisite failures), and at the end both serve the one key the
// RRset holds.
func TestPublishTwoInstances(t *testing.T) {
	t.Parallel()
	e := needCaddy(t)
	l := startPublishLab(t)
	ps := freePorts(t, 7)
	storage := t.TempDir()
	port := ps[0]
	var ups []*Caddy
	var admins, addrs []string
	for i, bind := range []string{"127.0.0.2", "127.0.0.3"} {
		u := publishUpstream{Admin: fmt.Sprintf("127.0.0.1:%d", ps[1+i]), Bind: bind, Port: port, HTTPPort: ps[3+i],
			Storage: storage, Publish: l.publishOptions("", "", "zone "+bindZone, fmt.Sprintf("ports %d", port))}
		addr := fmt.Sprintf("%s:%d", bind, port)
		ups = append(ups, startPublishCaddy(t, e, fmt.Sprintf("publish-instance%d", i+1), u.Caddyfile(), addr))
		admins, addrs = append(admins, u.Admin), append(addrs, addr)
	}
	k1, k2 := waitServed(t, addrs[0], 45*time.Second), waitServed(t, addrs[1], 45*time.Second)
	t.Logf("instance 1 serves %.12s…, instance 2 %.12s…", k1, k2)

	frontAdmin := fmt.Sprintf("127.0.0.1:%d", ps[5])
	front := startPublishCaddy(t, e, "publish-front2", l.publishFront(frontAdmin, ps[6], "https://"+addrs[0], "https://"+addrs[1]),
		fmt.Sprintf("127.0.0.1:%d", ps[6]))
	url := fmt.Sprintf("http://127.0.0.1:%d/", ps[6])
	if !pollUntil(ctxTimeout(t, 15*time.Second), func() bool {
		a, _ := presentedKey(addrs[0], strings.TrimSuffix(publishHost, "."))
		b, _ := presentedKey(addrs[1], strings.TrimSuffix(publishHost, "."))
		return a != "" && a == b
	}) {
		t.Fatalf("the instances do not serve the same certificate from their shared storage")
	}
	warm := 0
	for range 2 { // one request to each instance (round robin)
		if st, body, _ := request(t, "GET", url, ""); st != 200 || strings.TrimSpace(body) != "ok" {
			t.Fatalf("first requests through the front: %d %q", st, body)
		}
		warm++
	}
	var samplers []*keySampler
	for _, a := range addrs {
		s := startKeySampler(a, strings.TrimSuffix(publishHost, "."), 200*time.Millisecond)
		defer s.Stop()
		samplers = append(samplers, s)
	}
	load := startSteadyLoad(url, 120)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("load when the test ended: %s; the front refused %d upstream connections", load.Summary(), len(front.Refusals("")))
		}
	})
	t.Cleanup(load.Stop)
	waitKeys(t, 2, 40*time.Second, "first renewal under load", samplers...)
	// The second renewal, if it comes within the budget.
	second := pollUntil(ctxTimeout(t, 25*time.Second), func() bool { return len(keysSeen(samplers...)) >= 3 })
	load.Stop()
	end := l.quietState(t, port, 25*time.Second, addrs...)
	for _, s := range samplers {
		s.Stop()
	}
	// Each instance says in the shared storage what it serves
	// (dane_publish/instances/<id>.json, rewritten every interval): two
	// heartbeats, both naming the key served now.
	beats, err := filepath.Glob(filepath.Join(storage, "dane_publish", "instances", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(beats) != 2 {
		t.Errorf("heartbeats in the shared storage: %q, want one per instance", beats)
	}
	for _, b := range beats {
		if text, err := os.ReadFile(b); err != nil || !strings.Contains(strings.ToLower(string(text)), end) {
			t.Errorf("heartbeat %s does not name the served key %.12s…: %s (%v)", filepath.Base(b), end, text, err)
		}
	}
	keys := keysSeen(samplers...)
	t.Logf("%d keys served by the two instances, %d key changes (second renewal within the budget: %v)", len(keys), len(keys)-1, second)
	if keys[len(keys)-1].SPKI != end {
		t.Errorf("the quiet state's key %.12s… is not the last key sampled %.12s…", end, keys[len(keys)-1].SPKI)
	}
	for i, s := range samplers {
		if n, err := s.Errors(); n > 0 {
			t.Errorf("instance %d: %d key samples failed (last: %v)", i+1, n, err)
		}
		t.Logf("instance %d keys: %d spans", i+1, len(s.Spans()))
	}
	checkFrontClean(t, load, warm, front, frontAdmin, ups...)
	for i, u := range ups {
		if served(u) == 0 {
			t.Errorf("instance %d served no request: the front did not balance", i+1)
		}
	}
	checkRolloverStory(t, keys, tlsaOwner(port), ups...)

	// No fight: each key added once and (but the last) removed once,
	// over both instances; no prerequisite failure.
	var changes float64
	for i, a := range admins {
		m := scrape(t, a)
		t.Logf("instance %d metrics: %v %v", i+1, m.Series("caddy_dane_publish_changes_total"), m.Series("caddy_dane_publish_errors_total"))
		changes += m.Sum("caddy_dane_publish_changes_total")
		if v := m.Sum("caddy_dane_publish_errors_total", `reason="prerequisite"`); v != 0 {
			t.Errorf("instance %d: caddy_dane_publish_errors_total{reason=prerequisite} = %v: the instances raced on the RRset", i+1, v)
		}
		for _, f := range ups[i].Entries(msgFailed) {
			t.Errorf("instance %d: %v", i+1, f)
		}
	}
	if limit := float64(2*len(keys) - 1); changes > limit {
		t.Errorf("caddy_dane_publish_changes_total over both instances = %v for %d keys, want ≤ %v (each added once, replaced ones removed once)", changes, len(keys), limit)
	}
	var updates int
	for _, u := range ups {
		updates += len(u.Entries(msgUpdated))
	}
	t.Logf("%v record changes in %d RRset updates over both instances", changes, updates)
}

// certsIn lists the certificate files under a Caddy storage root.
func certsIn(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(root, "certificates"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".crt") {
			out = append(out, path)
		}
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPublishBadInput (issue 11): what an operator can get wrong is a
// clear error when the configuration loads, or, where only the server
// can tell, a logged and retried failure with its reason; in neither case
// is anything published half-way, or a certificate whose record could
// not be published ever stored or served.
func TestPublishBadInput(t *testing.T) {
	t.Parallel()
	e := needCaddy(t)
	l := startPublishLab(t)

	t.Run("load", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			opts  []string
			wants []string // in the error
		}{
			{"unknown DNS provider module", append([]string{"dns no_such_provider"}, l.publishOptions(l.server, "")[7:]...),
				[]string{"dns.providers.no_such_provider"}},
			{"RFC2136-3.4.1.3/site outside the configured zone", l.publishOptions(l.server, "", "zone other.test.", "sites upstream.example.test:8443"),
				[]string{"other.test", "upstream.example.test"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ps := freePorts(t, 3)
				u := publishUpstream{Admin: fmt.Sprintf("127.0.0.1:%d", ps[0]), Bind: "127.0.0.1", Port: ps[1], HTTPPort: ps[2],
					Storage: t.TempDir(), Publish: tc.opts}
				path, err := e.writeCaddyfile("publish-bad-"+strings.ReplaceAll(strings.Fields(tc.name)[0], "/", "-"), u.Caddyfile())
				if err != nil {
					t.Fatal(err)
				}
				out, ok := e.caddyValidate(t, path, "caddyfile")
				t.Logf("caddy validate: %s", lastLine(out))
				if ok {
					t.Fatalf("caddy validate accepted the configuration:\n%s", u.Caddyfile())
				}
				for _, w := range tc.wants {
					if !strings.Contains(out, w) {
						t.Errorf("the error does not name %q:\n%s", w, out)
					}
				}
			})
		}
		// The sites taken from the tls app's policies are only known
		// when the app starts: `caddy run` (and a reload) must fail then,
		// naming the site and the zone, before anything is published.
		t.Run("RFC2136-3.4.1.3/default site outside the configured zone: refused at start", func(t *testing.T) {
			ps := freePorts(t, 3)
			storage := t.TempDir()
			u := publishUpstream{Admin: fmt.Sprintf("127.0.0.1:%d", ps[0]), Bind: "127.0.0.1", Port: ps[1], HTTPPort: ps[2],
				Storage: storage, Publish: l.publishOptions(l.server, "", "zone other.test.", fmt.Sprintf("ports %d", ps[1]))}
			path, err := e.writeCaddyfile("publish-bad-default-outside", u.Caddyfile())
			if err != nil {
				t.Fatal(err)
			}
			out, ok := e.caddyValidate(t, path, "caddyfile")
			t.Logf("caddy validate: ok %v: %s", ok, lastLine(out))
			log := filepath.Join(t.TempDir(), "caddy.log")
			p, err := startProcEnv(e.caddyEnv(), e.CaddyBin, log, "run", "--config", path, "--adapter", "caddyfile")
			if err != nil {
				t.Fatal(err)
			}
			defer p.Stop(5 * time.Second)
			if !pollUntil(ctxTimeout(t, 15*time.Second), p.Exited) {
				t.Fatalf("caddy runs with a site outside the zone:\n%s", p.Tail(20))
			}
			tail := p.Tail(5)
			t.Logf("caddy run: %v: %s", p.err, lastLine(tail))
			for _, w := range []string{"other.test", "upstream.example.test", "outside the zone"} {
				if !strings.Contains(tail, w) {
					t.Errorf("the start error does not say %q:\n%s", w, tail)
				}
			}
			if s := zoneTLSA(t, l.provider("update-key.", l.secret)); len(s) != 0 {
				t.Errorf("TLSA records in the zone: %q", s)
			}
			if crts := certsIn(t, storage); len(crts) > 0 {
				t.Errorf("certificates stored: %q", crts)
			}
		})
	})

	t.Run("runtime", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			host   string
			opts   []string
			reason string
		}{
			{"RFC8945-5.2.2/TSIG refused: wrong secret", "", l.publishOptions(l.server, newSecret(t), "zone "+bindZone), "tsig_refused"},
			{"RFC2136-2.2/zone not served by the primary: NOTAUTH", "upstream.nothere.test", l.publishOptions(l.server, "", "zone nothere.test."), "zone_not_served"},
			{"RFC1034-4.3.2/no zone found above the name", "upstream.nozone.test", l.publishOptions(l.server, ""), "zone_not_found"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				ps := freePorts(t, 3)
				storage := t.TempDir()
				u := publishUpstream{Admin: fmt.Sprintf("127.0.0.1:%d", ps[0]), Bind: "127.0.0.1", Port: ps[1], HTTPPort: ps[2],
					Storage: storage, Host: tc.host, Publish: append(slices.Clone(tc.opts), fmt.Sprintf("ports %d", ps[1]))}
				addr := fmt.Sprintf("127.0.0.1:%d", u.Port)
				c := startPublishCaddy(t, e, "publish-"+tc.reason, u.Caddyfile(), addr)
				// Retried: failures logged over more than the first
				// backoff (1 s: the interval), not only the hold's and
				// the reconcile loop's first attempts.
				var fails []LogEntry
				if !pollUntil(ctxTimeout(t, 20*time.Second), func() bool {
					fails = c.Entries(msgFailed)
					return len(fails) >= 2 && entryTime(fails[len(fails)-1]).Sub(entryTime(fails[0])) >= 900*time.Millisecond
				}) {
					t.Fatalf("%d %q lines after 20 s, want ≥ 2 over ≥ 1 s (a logged, retried failure)", len(fails), msgFailed)
				}
				t.Logf("%d failures over %v; first: %v", len(fails), entryTime(fails[len(fails)-1]).Sub(entryTime(fails[0])).Round(time.Millisecond), fails[0])
				for _, f := range fails {
					if f.Str("reason") != tc.reason || f.Str("error") == "" || f["retry_in"] == nil {
						t.Errorf("failure line %v: want reason %s, the error and retry_in", f, tc.reason)
					}
				}
				m := scrape(t, u.Admin)
				if v := m.Sum("caddy_dane_publish_errors_total", `reason="`+tc.reason+`"`); v < 2 {
					t.Errorf("caddy_dane_publish_errors_total{reason=%s} = %v, want ≥ 2: %v", tc.reason, v, m.Series("caddy_dane_publish_errors_total"))
				}
				// Nothing published, nothing stored, nothing served.
				if up := c.Entries(msgUpdated); len(up) > 0 {
					t.Errorf("an RRset was updated: %v", up[0])
				}
				if s := zoneTLSA(t, l.provider("update-key.", l.secret)); len(s) != 0 {
					t.Errorf("TLSA records in the zone: %q", s)
				}
				if crts := certsIn(t, storage); len(crts) > 0 {
					t.Errorf("a certificate reached storage although its record was never published: %q", crts)
				}
				if k, err := presentedKey(addr, strings.TrimSuffix(tlsaHost(tc.host), ".")); err == nil {
					t.Errorf("the site serves a certificate (key %.12s…) whose record was never published", k)
				}
			})
		}
	})
}

// zoneTLSA lists every TLSA record of the lab's zone (AXFR).
func zoneTLSA(t *testing.T, p *rfc2136.Provider) []string {
	t.Helper()
	recs, err := p.GetRecords(context.Background(), bindZone)
	if err != nil {
		t.Fatalf("GetRecords: %v", err)
	}
	var out []string
	for _, r := range recs {
		if rr := r.RR(); rr.Type == "TLSA" {
			out = append(out, rr.Name+" "+rr.Data)
		}
	}
	return out
}

func tlsaHost(h string) string {
	if h == "" {
		return publishHost
	}
	return h
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
