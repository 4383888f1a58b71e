// Command danebench measures caddy-dane against stock Caddy on loopback
// (issue 5). It is driven by bench/run.sh, which builds Caddy from
// ./cmd/caddy and pins this program to cpu 0.
//
// What it does, all on 127.0.0.1 and bounded in time:
//
//  1. An HTTPS upstream (ECDSA P-256 leaf + intermediate under a root CA)
//     and a DNSSEC-signed zone chain test. → bench.test. served in process
//     by zonekit, publishing TLSA 3 1 1 for the upstream.
//  2. Three Caddy instances pinned to -proxy-cpu with GOMAXPROCS=1 that
//     differ only in the reverse_proxy transport: stock-1 and stock-2
//     (`transport http`, `tls_trust_pool file root.pem`, PKIX over
//     leaf+intermediate) and dane (`transport dane`, DANE-EE 3 1 1). Each
//     has a keep-alive listener and a `keepalive off` listener.
//  3. wrk on -load-cpu drives them one at a time, for -rounds rounds per
//     mode, alternating the order (odd rounds run dane first). Ratios are
//     dane/stock-1 per round, next to the A/A ratio stock-2/stock-1.
//  4. 1000 concurrent first requests through a fresh dane instance: the
//     DNS server counts queries per RRset.
//  5. With -delv: a real NSD + Unbound serving a 3-zone chain, cold
//     lookup+validation of one TLSA RRset by caddy-dane (in process, and
//     as `caddy dane lookup`) against BIND's delv.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/internal/zonekit"
)

const upstreamName = "api.bench.test"

func main() {
	var (
		caddyBin = flag.String("caddy", "", "caddy binary built from ./cmd/caddy (required)")
		rounds   = flag.Int("rounds", 6, "rounds per mode (≥3); odd rounds run the sides in swapped order")
		dur      = flag.Duration("duration", 3*time.Second, "wrk duration per run (whole seconds)")
		conns    = flag.Int("conns", 32, "wrk connections")
		proxyCPU = flag.String("proxy-cpu", "1", "cpu list for the proxies under test")
		loadCPU  = flag.String("load-cpu", "0", "cpu list for wrk (this program, the upstream and DNS should run there too)")
		flood    = flag.Int("flood", 1000, "concurrent first requests through a fresh dane instance (0: skip)")
		delv     = flag.Bool("delv", true, "compare cold validation with BIND delv through real NSD + Unbound")
		delvRuns = flag.Int("delv-runs", 15, "runs per tool in the delv comparison")
		jsonOut  = flag.String("json", "", "also write the raw results here")
		pprofDir = flag.String("pprof", "", "write a CPU profile of each side under keep-alive load to this directory (enables Caddy's admin endpoint on loopback)")
		curves   = flag.String("curves", "", "comma-separated TLS key exchange groups for every proxy's upstream connections (e.g. x25519); default: Go's (X25519MLKEM768 first)")
		modes    = flag.String("modes", "keepalive,handshake,handshake-h2", "which load modes to run, comma-separated")
	)
	flag.Parse()
	if *caddyBin == "" || *rounds < 1 || *rounds > 20 {
		fmt.Fprintln(os.Stderr, "usage: danebench -caddy <path> [-rounds 1..20] ...")
		os.Exit(2)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; cleanup(); os.Exit(130) }()
	defer cleanup()

	dir, err := os.MkdirTemp("", "danebench-")
	must(err, "temp dir")
	defer os.RemoveAll(dir)

	p, err := newPKI(dir, upstreamName)
	must(err, "pki")
	up, err := startUpstream(p)
	must(err, "upstream")
	defer up.srv.Close()

	zones, anchors, err := signedChain(dir, []string{"test.", "bench.test."},
		fmt.Sprintf("_%d._tcp.%s. 3600 IN TLSA %s", up.port, upstreamName, p.tlsa311()))
	must(err, "zones")
	dnsSrv := zonekit.NewServer(zones...)
	dnsAddr, err := dnsSrv.ListenAndServe()
	must(err, "dns")
	defer dnsSrv.Close()

	e := &env{dir: dir, caddy: *caddyBin, dnsAddr: dnsAddr, anchors: anchors, sni: upstreamName, up: up, pki: p, pprof: *pprofDir != ""}
	if *curves != "" {
		e.curves = strings.Split(*curves, ",")
	}
	rep := &report{Rounds: *rounds, Duration: dur.String(), Conns: *conns, Start: loadavg()}

	sides := []*side{{name: "stock-1"}, {name: "stock-2"}, {name: "dane", dane: true}, {name: "dane-full", dane: true, noResume: true}}
	for _, s := range sides {
		must(e.start(s, *proxyCPU), "starting "+s.name)
	}
	// Warm up: first connections, DANE cache, JIT-free but page-cache and
	// allocator warm.
	for _, s := range sides {
		for _, port := range []int{s.kaPort, s.hsPort, s.h2Port} {
			_, err := runWrk(*loadCPU, fmt.Sprintf("http://127.0.0.1:%d/", port), *conns, time.Second)
			must(err, "warm-up "+s.name)
		}
	}

	if *pprofDir != "" {
		must(os.MkdirAll(*pprofDir, 0o755), "pprof dir")
		for _, s := range sides {
			must(profile(s, *loadCPU, *conns, *pprofDir), "profiling "+s.name)
		}
	}
	for _, mode := range []string{"keepalive", "handshake", "handshake-h2"} {
		if !slices.Contains(strings.Split(*modes, ","), mode) {
			continue
		}
		for r := 0; r < *rounds; r++ {
			order := slices.Clone(sides)
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, s := range order {
				port := s.kaPort
				switch mode {
				case "handshake":
					port = s.hsPort
				case "handshake-h2":
					port = s.h2Port
				}
				before, beforeH2, beforeReqs, beforeResumed := up.conns.Load(), up.h2.Load(), up.reqs.Load(), up.resum.Load()
				w, err := runWrk(*loadCPU, fmt.Sprintf("http://127.0.0.1:%d/", port), *conns, *dur)
				must(err, mode+" "+s.name)
				run := runResult{Mode: mode, Round: r + 1, Side: s.name, RPS: w.RPS, P50: w.P50, P99: w.P99,
					Errors: w.Errors, UpstreamConns: up.conns.Load() - before, UpstreamH2: up.h2.Load() - beforeH2,
					UpstreamRequests: up.reqs.Load() - beforeReqs, UpstreamResumed: up.resum.Load() - beforeResumed, Load: loadavg()}
				rep.Runs = append(rep.Runs, run)
				fmt.Fprintf(os.Stderr, "%-12s round %d %-9s %8.0f req/s  p50 %-9v p99 %-9v upstream conns %-6d requests %-7d h2 %-7d resumed %-6d errors %d  load %s\n",
					mode, r+1, s.name, w.RPS, w.P50.Round(time.Microsecond), w.P99.Round(time.Microsecond), run.UpstreamConns, run.UpstreamRequests, run.UpstreamH2, run.UpstreamResumed, w.Errors, run.Load)
			}
		}
		for _, s := range sides {
			if mode == "keepalive" {
				s.vmHWMKA = vmHWM(s.cmd.Process.Pid)
			}
		}
	}
	for _, s := range sides {
		rep.RSS = append(rep.RSS, rssResult{Side: s.name, VmHWMKeepAliveKB: s.vmHWMKA})
		stopProcess(s.cmd)
	}

	if *flood > 0 {
		rep.Flood = runFlood(e, zones, *proxyCPU, *flood)
	}
	if *delv {
		rep.Delv = runDelvComparison(dir, *caddyBin, *delvRuns)
	}
	rep.End = loadavg()
	rep.print(os.Stdout)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		must(os.WriteFile(*jsonOut, b, 0o644), "writing json")
	}
}

// signedChain signs zones (parent first, each delegating to the next),
// adds records to the last one, and writes the first zone's DS as the
// trust anchor file.
func signedChain(dir string, names []string, records ...string) ([]*zonekit.Zone, string, error) {
	var zones []*zonekit.Zone
	for _, n := range names {
		zones = append(zones, zonekit.NewZone(n))
	}
	last := zones[len(zones)-1]
	if err := last.Add(records...); err != nil {
		return nil, "", err
	}
	if err := last.Add(upstreamHostRecord(last.Origin())); err != nil {
		return nil, "", err
	}
	now := time.Now()
	for i := len(zones) - 1; i >= 0; i-- {
		if i+1 < len(zones) {
			if err := zonekit.Delegate(zones[i], zones[i+1]); err != nil {
				return nil, "", err
			}
		}
		if err := zones[i].Sign(now.Add(-time.Hour), now.Add(48*time.Hour)); err != nil {
			return nil, "", err
		}
	}
	var ds bytes.Buffer
	for _, d := range zones[0].DS() {
		ds.WriteString(d.String() + "\n")
	}
	path := filepath.Join(dir, "anchors-"+strings.TrimSuffix(names[0], ".")+".ds")
	return zones, path, os.WriteFile(path, ds.Bytes(), 0o644)
}

func upstreamHostRecord(origin string) string {
	host := strings.TrimSuffix(upstreamName, ".") + "."
	if !dns.IsSubDomain(origin, host) {
		host = "api." + origin
	}
	return host + " 3600 IN A 127.0.0.1"
}

// runFlood sends n concurrent first requests through a fresh dane Caddy
// whose DNS server counts the queries per RRset.
func runFlood(e *env, zones []*zonekit.Zone, cpu string, n int) *floodResult {
	var mu sync.Mutex
	counts := map[string]int{}
	srv := zonekit.NewServer(zones...)
	srv.Tamper = func(q, _ *dns.Msg) {
		mu.Lock()
		counts[q.Question[0].Name+" "+dns.TypeToString[q.Question[0].Qtype]]++
		mu.Unlock()
	}
	addr, err := srv.ListenAndServe()
	must(err, "flood dns")
	defer srv.Close()
	fe := *e
	fe.dnsAddr = addr
	s := &side{name: "dane-flood", dane: true}
	must(fe.start(s, cpu), "starting dane-flood")
	defer stopProcess(s.cmd)

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, MaxConnsPerHost: 0}}
	start := make(chan struct{})
	var wg sync.WaitGroup
	codes := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", s.kaPort))
			if err != nil {
				errs[i] = err
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	fr := &floodResult{Requests: n, Elapsed: time.Since(t0).Round(time.Millisecond).String(), QueriesPerRRset: counts}
	for i := range n {
		switch {
		case errs[i] != nil:
			fr.Failed++
			if fr.FirstError == "" {
				fr.FirstError = errs[i].Error()
			}
		case codes[i] == http.StatusOK:
			fr.OK++
		default:
			fr.Failed++
			if fr.FirstError == "" {
				fr.FirstError = fmt.Sprintf("HTTP %d", codes[i])
			}
		}
	}
	return fr
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}

// profile takes a 4-second CPU profile of s while wrk drives its
// keep-alive listener.
func profile(s *side, cpu string, conns int, dir string) error {
	done := make(chan error, 1)
	go func() {
		_, err := runWrk(cpu, fmt.Sprintf("http://127.0.0.1:%d/", s.kaPort), conns, 6*time.Second)
		done <- err
	}()
	time.Sleep(time.Second)
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=4", s.adminPort))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, s.name+".pprof"), b, 0o644); err != nil {
		return err
	}
	return <-done
}
