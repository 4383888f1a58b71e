package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/dane"
	"github.com/caddy-dane/caddy-dane/caddymodule/dnssec"
	"github.com/caddy-dane/caddy-dane/caddymodule/resolver"
	"github.com/caddy-dane/caddy-dane/caddymodule/zonekit"
)

// runDelvComparison serves test. → bench.test. → svc.bench.test. (signed
// by zonekit) from a real NSD behind a real validating Unbound, and times
// a cold validation of one TLSA RRset by delv and by caddy-dane. The
// resolver's cache is warm for both (it is a caching resolver), the
// validators' caches are cold: a fresh delv process, a fresh `caddy dane
// lookup` process, a fresh in-process Validator per run.
func runDelvComparison(dir, caddyBin string, runs int) *delvResult {
	const host = "api.svc.bench.test"
	owner := "_443._tcp." + host + "."
	res := &delvResult{Name: owner + " TLSA", Runs: runs}
	fail := func(err error) *delvResult { res.Error = err.Error(); return res }
	for _, tool := range []string{"nsd", "unbound", "delv"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fail(fmt.Errorf("%s not installed", tool))
		}
	}
	lab := filepath.Join(dir, "lab")
	if err := os.MkdirAll(lab, 0o755); err != nil {
		return fail(err)
	}
	zones, anchors, err := signedChain(lab, []string{"test.", "bench.test.", "svc.bench.test."},
		owner+" 3600 IN TLSA 3 1 1 "+strings.Repeat("5a", 32))
	if err != nil {
		return fail(err)
	}
	nsdPort, err := freePort()
	if err != nil {
		return fail(err)
	}
	ubPort, err := freePort()
	if err != nil {
		return fail(err)
	}
	if err := startNSD(lab, nsdPort, zones); err != nil {
		return fail(err)
	}
	if err := startUnbound(lab, ubPort, nsdPort, anchors, zones); err != nil {
		return fail(err)
	}
	resolverAddr := fmt.Sprintf("127.0.0.1:%d", ubPort)

	// delv's trust anchor file: named.conf syntax.
	var ta strings.Builder
	ta.WriteString("trust-anchors {\n")
	for _, ds := range zones[0].DS() {
		fmt.Fprintf(&ta, "  %s static-ds %d %d %d \"%s\";\n", ds.Hdr.Name, ds.KeyTag, ds.Algorithm, ds.DigestType, ds.Digest)
	}
	ta.WriteString("};\n")
	taFile := filepath.Join(lab, "delv.anchors")
	if err := os.WriteFile(taFile, []byte(ta.String()), 0o644); err != nil {
		return fail(err)
	}
	delvArgs := []string{"@127.0.0.1", "-p", fmt.Sprint(ubPort), "-a", taFile, "+root=test.", owner, "TLSA"}
	cliArgs := []string{"dane", "lookup", owner, "TLSA", "--resolver", resolverAddr, "--trust-anchor-file", anchors}

	fh, err := os.Open(anchors)
	if err != nil {
		return fail(err)
	}
	anchorRRs, err := dnssec.ParseAnchors(fh, ".")
	fh.Close()
	if err != nil {
		return fail(err)
	}
	inProc := func() error {
		v, err := dnssec.New(dnssec.Config{Exchanger: &resolver.Client{Servers: []string{resolverAddr}, Timeout: 2 * time.Second}, Anchors: anchorRRs})
		if err != nil {
			return err
		}
		a := &dane.Authenticator{Validator: v}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = a.Lookup(ctx, host, 443)
		return err
	}
	process := func(check string, name string, args ...string) func() error {
		return func() error {
			out, err := exec.Command(name, args...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%s: %v\n%s", name, err, out)
			}
			if !strings.Contains(string(out), check) {
				return fmt.Errorf("%s did not validate:\n%s", name, out)
			}
			return nil
		}
	}
	delvRun := process("fully validated", "taskset", append([]string{"-c", "0", "delv"}, delvArgs...)...)
	cliRun := process("secure", "taskset", append([]string{"-c", "0", caddyBin}, cliArgs...)...)

	// Warm Unbound's cache and check every tool validates.
	for _, f := range []func() error{delvRun, cliRun, inProc} {
		if err := f(); err != nil {
			return fail(err)
		}
	}
	var tDelv, tCLI, tIn []time.Duration
	for range runs {
		for _, m := range []struct {
			f   func() error
			out *[]time.Duration
		}{{delvRun, &tDelv}, {cliRun, &tCLI}, {inProc, &tIn}} {
			t0 := time.Now()
			if err := m.f(); err != nil {
				return fail(err)
			}
			*m.out = append(*m.out, time.Since(t0))
		}
	}
	stats := func(d []time.Duration) (med, lo, hi time.Duration) {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2].Round(10 * time.Microsecond), d[0].Round(10 * time.Microsecond), d[len(d)-1].Round(10 * time.Microsecond)
	}
	res.DelvMedian, res.DelvMin, res.DelvMax = stats(tDelv)
	res.CLIMedian, res.CLIMin, res.CLIMax = stats(tCLI)
	res.InProcMedian, res.InProcMin, res.InProcMax = stats(tIn)
	return res
}

func startNSD(dir string, port int, zones []*zonekit.Zone) error {
	var b strings.Builder
	fmt.Fprintf(&b, `server:
    ip-address: 127.0.0.1
    port: %d
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "%s"
    database: ""
    zonelistfile: "%s/zone.list"
    xfrdfile: "%s/xfrd.state"
    xfrdir: "%s"
    pidfile: "%s/nsd.pid"
    logfile: "%s/nsd.log"
    server-count: 1
    verbosity: 1
remote-control:
    control-enable: no
`, port, dir, dir, dir, dir, dir, dir)
	for _, z := range zones {
		file := strings.TrimSuffix(z.Origin(), ".") + ".zone"
		if err := os.WriteFile(filepath.Join(dir, file), []byte(z.String()), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(&b, "zone:\n    name: %q\n    zonefile: %q\n", z.Origin(), file)
	}
	conf := filepath.Join(dir, "nsd.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return err
	}
	if _, err := startProcess(filepath.Join(dir, "nsd.out"), nil, "taskset", "-c", "0", "nsd", "-d", "-c", conf); err != nil {
		return err
	}
	return waitDNS(fmt.Sprintf("127.0.0.1:%d", port), zones[0].Origin(), false)
}

func startUnbound(dir string, port, nsdPort int, anchors string, zones []*zonekit.Zone) error {
	var b strings.Builder
	fmt.Fprintf(&b, `server:
    interface: 127.0.0.1@%d
    do-ip6: no
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "%s"
    pidfile: ""
    use-syslog: no
    logfile: "%s/unbound.log"
    verbosity: 0
    num-threads: 1
    so-reuseport: no
    access-control: 127.0.0.0/8 allow
    module-config: "validator iterator"
    do-not-query-localhost: no
    local-zone: "test." nodefault
    trust-anchor-file: "%s"
remote-control:
    control-enable: no
stub-zone:
    name: "."
    stub-addr: 127.0.0.1@%d
`, port, dir, dir, anchors, nsdPort)
	for _, z := range zones {
		fmt.Fprintf(&b, "stub-zone:\n    name: %q\n    stub-addr: 127.0.0.1@%d\n", z.Origin(), nsdPort)
	}
	conf := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return err
	}
	if _, err := startProcess(filepath.Join(dir, "unbound.out"), nil, "taskset", "-c", "0", "unbound", "-d", "-c", conf); err != nil {
		return err
	}
	return waitDNS(fmt.Sprintf("127.0.0.1:%d", port), zones[0].Origin(), true)
}

// waitDNS waits up to 15 s until server answers SOA for name (with AD if
// secure).
func waitDNS(server, name string, secure bool) error {
	c := &dns.Client{Timeout: 500 * time.Millisecond}
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeSOA)
	q.SetEdns0(1232, true)
	deadline := time.Now().Add(15 * time.Second)
	last := "no answer"
	for time.Now().Before(deadline) {
		r, _, err := c.Exchange(q, server)
		switch {
		case err != nil:
			last = err.Error()
		case r.Rcode != dns.RcodeSuccess:
			last = dns.RcodeToString[r.Rcode]
		case secure && !r.AuthenticatedData:
			last = "answer without AD"
		default:
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready for %s after 15s (last: %s)", server, name, last)
}
