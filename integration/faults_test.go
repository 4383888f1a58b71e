package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/internal/labconf"
	"github.com/caddy-dane/caddy-dane/internal/pkikit"
	"github.com/caddy-dane/caddy-dane/internal/zonekit"
)

// The fault suite: steady load through a real Caddy with transport dane
// while one fault at a time is injected into DNS, DNSSEC data, the
// upstream's key or the upstream itself. For each fault it measures what
// docs/reliability.md tabulates: requests that reached an upstream on a
// connection whose key no published TLSA record held (counted at the
// upstream; must be 0), failed requests, the longest wait (must stay
// within the DANE lookup timeout plus the TLS handshake timeout), and the
// recovery time once the fault is removed.
//
// DNS is a signed zonekit tree (test. → faults.test., anchor: the DS of
// test.) behind a Go DNS front end that injects the faults; TLSA TTL 2s,
// so keep-alive connections (capped at the TLSA TTL) and caches turn over
// quickly. Everything listens on 127.0.0.1 and is stopped at the end.
//
//	DANE_INTEGRATION=1 go test ./integration/ -run TestFaults -count=1 -v

const (
	faultTLSATTL   = 2 * time.Second
	faultLookup    = 2 * time.Second // dane { timeout }
	faultHandshake = 2 * time.Second // tls_timeout
	faultRate      = 300             // requests per second offered
	faultWorkers   = 96
	faultHold      = 3 * time.Second // how long each fault lasts
)

type sample struct {
	start  time.Time
	dur    time.Duration
	status int    // 0: no HTTP response
	short  string // why the body is not all the upstream sent; "" if it is
}

// ok: a 200 whose whole body arrived. A response cut after its headers is
// a failure the client sees, whatever its status line said.
func (s sample) ok() bool { return s.status == http.StatusOK && s.short == "" }

type loadGen struct {
	mu      sync.Mutex
	samples []sample
}

func (l *loadGen) run(ctx context.Context, url string) {
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: faultWorkers}}
	jobs := make(chan struct{})
	var wg sync.WaitGroup
	for range faultWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				s := sample{start: time.Now()}
				resp, err := client.Get(url)
				if err == nil {
					body, rerr := io.ReadAll(resp.Body)
					resp.Body.Close()
					s.status = resp.StatusCode
					s.short = completeBody(resp, body, rerr)
				}
				s.dur = time.Since(s.start)
				l.mu.Lock()
				l.samples = append(l.samples, s)
				l.mu.Unlock()
			}
		}()
	}
	tick := time.NewTicker(time.Second / faultRate)
	defer func() {
		tick.Stop()
		close(jobs)
		wg.Wait()
		client.CloseIdleConnections()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			select {
			case jobs <- struct{}{}:
			default: // every worker is waiting: offered load drops
			}
		}
	}
}

// window returns the samples that started in [from, to).
func (l *loadGen) window(from, to time.Time) []sample {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []sample
	for _, s := range l.samples {
		if !s.start.Before(from) && s.start.Before(to) {
			out = append(out, s)
		}
	}
	return out
}

// healthySince reports whether every request that started in the last d
// has finished with 200 (and there were some).
func (l *loadGen) healthySince(d time.Duration) bool {
	recent := l.window(time.Now().Add(-d), time.Now())
	if len(recent) == 0 {
		return false
	}
	for _, s := range recent {
		if !s.ok() {
			return false
		}
	}
	return true
}

type faultRow struct {
	Name       string
	Requests   int
	Failed     int   // no response, a status other than 200, or a short body
	Truncated  int   // of Failed: a response whose body was cut short
	Resets     int64 // responses the upstream cut mid-body
	Breaches   int64
	MaxWait    time.Duration
	Recovery   time.Duration
	Recovered  bool
	MustNotErr bool
	ShortBody  string // one example of a short body
}

func TestFaults(t *testing.T) {
	e := needCaddy(t)
	start := time.Now()

	// Keys: k1 published, k2 the next key of a rollover, m an attacker's.
	ca, err := pkikit.NewRoot("faults CA")
	if err != nil {
		t.Fatal(err)
	}
	leaves := map[string]*pkikit.Leaf{}
	for _, k := range []string{"k1", "k2", "m"} {
		if leaves[k], err = ca.NewLeaf("svc.faults.test"); err != nil {
			t.Fatal(err)
		}
	}
	rdata := func(k string) string { return leaves[k].TLSA311() }

	up, err := newKeyedUpstream(map[string]tls.Certificate{"k1": leaves["k1"].TLS(), "k2": leaves["k2"].TLS(), "m": leaves["m"].TLS()}, "k1", "k1")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	owner := fmt.Sprintf("_%d._tcp.svc.faults.test.", up.Port)
	ttl := int(faultTLSATTL / time.Second)

	// Honest DNS: test. → faults.test.; the attacker's own copy of
	// faults.test. with its own keys and the attacker's TLSA.
	now := time.Now()
	valid := func(z *zonekit.Zone, name string, typ uint16) {
		if err := z.SignRRset(name, typ, now.Add(-time.Hour), now.Add(24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	parent, child := zonekit.NewZone("test."), zonekit.NewZone("faults.test.")
	child.MustAdd(fmt.Sprintf("%s %d IN TLSA %s", owner, ttl, rdata("k1")))
	if err := zonekit.Delegate(parent, child); err != nil {
		t.Fatal(err)
	}
	for _, z := range []*zonekit.Zone{parent, child} {
		if err := z.Sign(now.Add(-time.Hour), now.Add(24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	evil := zonekit.NewZone("faults.test.")
	evil.MustAdd(fmt.Sprintf("%s %d IN TLSA %s", owner, ttl, rdata("m")))
	if err := evil.Sign(now.Add(-time.Hour), now.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	fd := &faultDNS{honest: zonekit.NewServer(parent, child), attacker: zonekit.NewServer(evil),
		zone: "faults.test.", spoof: rdata("m")}
	if err := fd.start(); err != nil {
		t.Fatal(err)
	}
	defer fd.close()
	var anchors strings.Builder
	for _, ds := range parent.DS() {
		anchors.WriteString(ds.String() + "\n")
	}
	anchorFile := filepath.Join(e.Dir, "faults-anchors.ds")
	if err := os.WriteFile(anchorFile, []byte(anchors.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	setTLSA := func(keys ...string) {
		child.Remove(owner, dns.TypeTLSA)
		for _, k := range keys {
			child.MustAdd(fmt.Sprintf("%s %d IN TLSA %s", owner, ttl, rdata(k)))
		}
		valid(child, owner, dns.TypeTLSA)
		up.Publish(keys...)
	}

	port, err := labconf.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.StartCaddy("faults", Site{
		Port:      port,
		Upstreams: []string{fmt.Sprintf("https://127.0.0.1:%d", up.Port)},
		Dane:      Dane{Resolvers: fd.Addr, TrustAnchor: anchorFile, Timeout: faultLookup.String()},
		Transport: []string{"tls_server_name svc.faults.test", "tls_timeout " + faultHandshake.String(), "dial_timeout 2s"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()

	lg := &loadGen{}
	ctx, stopLoad := context.WithCancel(context.Background())
	loadDone := make(chan struct{})
	go func() { lg.run(ctx, c.URL()+"/"); close(loadDone) }()
	defer func() { stopLoad(); <-loadDone }()

	// Warm up: the path works before anything is broken.
	if !waitFor(10*time.Second, func() bool { return lg.healthySince(500 * time.Millisecond) }) {
		t.Fatalf("no healthy baseline through Caddy:\n%s", c.Tail(20))
	}

	var rows []faultRow
	measure := func(name string, mustNotFail bool, inject, remove func()) {
		b0, r0 := up.Breaches.Load(), up.Resets.Load()
		t0 := time.Now()
		inject()
		time.Sleep(faultHold)
		remove()
		t1 := time.Now()
		recovered := waitFor(12*time.Second, func() bool { return lg.healthySince(time.Second) })
		time.Sleep(faultLookup + faultHandshake) // let the slowest requests of the window finish
		end := time.Now()
		row := faultRow{Name: name, Breaches: up.Breaches.Load() - b0, Resets: up.Resets.Load() - r0,
			Recovered: recovered, MustNotErr: mustNotFail}
		var lastFail time.Time
		for _, s := range lg.window(t0, end) {
			row.Requests++
			row.MaxWait = max(row.MaxWait, s.dur)
			if s.short != "" {
				row.Truncated++
				if row.ShortBody == "" {
					row.ShortBody = s.short
				}
			}
			if !s.ok() {
				row.Failed++
				if f := s.start.Add(s.dur); f.After(lastFail) {
					lastFail = f
				}
			}
		}
		if lastFail.After(t1) {
			row.Recovery = lastFail.Sub(t1)
		}
		rows = append(rows, row)
		t.Logf("%-44s requests %5d failed %5d (short body %d; cut by the upstream %d) breaches %d max wait %6v recovery %v",
			name, row.Requests, row.Failed, row.Truncated, row.Resets, row.Breaches, row.MaxWait.Round(time.Millisecond), row.Recovery.Round(10*time.Millisecond))
		if row.ShortBody != "" {
			t.Logf("%-44s e.g. %s", "", row.ShortBody)
		}
	}
	dnsFaultFn := func(f dnsFault) (func(), func()) {
		return func() { fd.set(f) }, func() { fd.set(faultNone) }
	}
	withKey := func(k string, inject, remove func()) (func(), func()) {
		return func() { up.Present(k); inject() }, func() { remove(); up.Present("k1") }
	}

	// (1) the resolver misbehaves
	for _, f := range []struct {
		name string
		f    dnsFault
	}{
		{"resolver drops every query", faultDrop},
		{"resolver answers after 3s (> timeout)", faultSlow},
		{"resolver answers SERVFAIL", faultServfail},
		{"UDP truncated, TCP closed unanswered", faultTruncTCP},
	} {
		in, out := dnsFaultFn(f.f)
		measure(f.name, false, in, out)
	}
	// (2) DNSSEC data attacked or broken
	in, out := dnsFaultFn(faultStripSigs)
	measure("RRSIGs stripped from answers", false, in, out)
	measure("RRSIG over the TLSA expired", false,
		func() {
			if err := child.SignRRset(owner, dns.TypeTLSA, now.Add(-48*time.Hour), now.Add(-24*time.Hour)); err != nil {
				t.Fatal(err)
			}
		},
		func() { valid(child, owner, dns.TypeTLSA) })
	measure("parent publishes a wrong DS", false,
		func() {
			parent.Remove("faults.test.", dns.TypeDS)
			for _, ds := range evil.DS() {
				parent.AddRR(ds)
			}
			valid(parent, "faults.test.", dns.TypeDS)
		},
		func() {
			parent.Remove("faults.test.", dns.TypeDS)
			for _, ds := range child.DS() {
				parent.AddRR(ds)
			}
			valid(parent, "faults.test.", dns.TypeDS)
		})
	in, out = dnsFaultFn(faultForeignKeys)
	in, out = withKey("m", in, out)
	measure("attacker's DNSKEY set + TLSA, attacker at upstream", false, in, out)
	in, out = dnsFaultFn(faultSpoofTLSA)
	in, out = withKey("m", in, out)
	measure("spoofed unsigned TLSA (AD=1), attacker at upstream", false, in, out)
	// (3) a key no TLSA record matches, with keep-alive connections open
	measure("upstream key swapped (MITM), keep-alive open", false,
		func() { up.Present("m") }, func() { up.Present("k1") })
	// (4) a correct rollover: publish next, wait TTL, switch, wait, remove old
	measure("correct TLSA rollover k1 → k2", true,
		func() {
			setTLSA("k1", "k2")
			time.Sleep(faultTLSATTL + 500*time.Millisecond)
			up.Present("k2")
		},
		func() {
			time.Sleep(faultTLSATTL + 500*time.Millisecond)
			setTLSA("k2")
		})
	up.Present("k2")
	// (5) the upstream restarts or cuts requests
	measure("upstream restarts (all connections closed)", false,
		func() {
			if err := up.Restart(300 * time.Millisecond); err != nil {
				t.Fatal(err)
			}
		}, func() {})
	const resetRow = "upstream resets every 20th request mid-response"
	measure(resetRow, false,
		func() { up.resetEvery.Store(20) }, func() { up.resetEvery.Store(0) })

	stopLoad()
	<-loadDone
	bound := faultLookup + faultHandshake + 500*time.Millisecond
	var table strings.Builder
	fmt.Fprintf(&table, "| fault | requests | failed (of which short body) | reached a non-matching upstream | longest wait | recovery |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		rec := r.Recovery.Round(10 * time.Millisecond).String()
		if !r.Recovered {
			rec = "not recovered in 12s"
		}
		fmt.Fprintf(&table, "| %s | %d | %d (%d) | %d | %v | %s |\n", r.Name, r.Requests, r.Failed, r.Truncated, r.Breaches, r.MaxWait.Round(time.Millisecond), rec)
		if r.Breaches != 0 {
			t.Errorf("%s: %d requests reached the upstream on a connection whose key no published TLSA record held", r.Name, r.Breaches)
		}
		if r.MustNotErr && r.Failed != 0 {
			t.Errorf("%s: %d requests failed", r.Name, r.Failed)
		}
		if r.Resets != 0 && r.Name != resetRow {
			t.Errorf("%s: the upstream cut %d responses, but only the %q row cuts any", r.Name, r.Resets, resetRow)
		}
		if r.Name == resetRow {
			// Every cut response is a request the client sees fail: a
			// 200 whose body stops short. Requests already in flight when
			// the fault was injected started before the window, so the
			// client may count a few fewer than the upstream cut, never more.
			const inFlight = faultWorkers
			switch {
			case r.Resets == 0:
				t.Errorf("%s: the upstream cut no response", r.Name)
			case int64(r.Truncated) > r.Resets || int64(r.Truncated) < r.Resets-inFlight || r.Truncated == 0:
				t.Errorf("%s: the client saw %d short bodies, the upstream cut %d responses", r.Name, r.Truncated, r.Resets)
			case r.Failed < r.Truncated:
				t.Errorf("%s: %d short bodies but only %d failed requests", r.Name, r.Truncated, r.Failed)
			}
		}
		if r.MaxWait > bound {
			t.Errorf("%s: a request waited %v, more than the lookup timeout + handshake timeout (%v)", r.Name, r.MaxWait, bound)
		}
		if !r.Recovered {
			t.Errorf("%s: not recovered within 12s of removing the fault", r.Name)
		}
	}
	total := len(lg.window(start, time.Now()))
	fmt.Fprintf(&table, "\n%d requests in %v; breaches counted at the upstream per TLS connection.\n", total, time.Since(start).Round(time.Second))
	t.Logf("fault table:\n%s", table.String())
	if p := os.Getenv("DANE_FAULT_REPORT"); p != "" {
		_ = os.WriteFile(p, []byte(table.String()), 0o644)
	}
	if refused := c.Entries("dane refused upstream"); len(refused) > 0 {
		reasons := map[string]int{}
		for _, r := range refused {
			reasons[r.Str("reason")]++
		}
		var keys []string
		for k := range reasons {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, " %s=%d", k, reasons[k])
		}
		t.Logf("refusal reasons logged by Caddy:%s", b.String())
	}
}

// TestFaultsCaddyValidateBinary: the built binary refuses bad dane options
// at `caddy validate`, naming the option.
func TestFaultsCaddyValidateBinary(t *testing.T) {
	e := needCaddy(t)
	garbage := filepath.Join(e.Dir, "garbage.ds")
	if err := os.WriteFile(garbage, []byte("not a zone file {{\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, dane, want string }{
		{"garbage anchors", "resolvers 127.0.0.1\ntrust_anchor_file " + garbage, "trust_anchor_file"},
		{"host name resolver", "resolvers dns.example", "host names are not accepted"},
		{"query_timeout over timeout", "resolvers 127.0.0.1\ntimeout 1s\nquery_timeout 2s", "query_timeout"},
	} {
		cf := "{\n\tadmin off\n}\n:0 {\n\treverse_proxy https://svc.example.test:8443 {\n\t\ttransport dane {\n\t\t\tdane {\n" + tc.dane + "\n\t\t\t}\n\t\t}\n\t}\n}\n"
		path, err := e.writeCaddyfile("validate-"+strings.ReplaceAll(tc.name, " ", "-"), cf)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(e.CaddyBin, "validate", "--config", path, "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), e.caddyEnv()...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: caddy validate err=%v, want a failure naming %q:\n%s", tc.name, err, tc.want, out)
		}
	}
}

func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cond()
}
