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

	"github.com/caddy-dane/caddy-dane/caddymodule/dnssec"
	"github.com/caddy-dane/caddy-dane/caddymodule/resolver"
	"github.com/caddy-dane/caddy-dane/internal/labconf"
	"github.com/caddy-dane/caddy-dane/internal/zonekit"
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
	nsdPort, err := labconf.FreePort()
	if err != nil {
		return fail(err)
	}
	ubPort, err := labconf.FreePort()
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
		// The validation alone, as delv does it: a fresh validator, so
		// every RRset of the chain is validated, none cached.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if res := v.Lookup(ctx, owner, dns.TypeTLSA); res.Status != dnssec.Secure || len(res.RRset) == 0 {
			return fmt.Errorf("in-process validation of %s: %s %v", owner, res.Status, res.Err)
		}
		return nil
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
	c := labconf.NSD{Port: port, ZonesDir: dir, StateDir: dir, LogFile: filepath.Join(dir, "nsd.log")}
	for _, z := range zones {
		file := strings.TrimSuffix(z.Origin(), ".") + ".zone"
		if err := os.WriteFile(filepath.Join(dir, file), []byte(z.String()), 0o644); err != nil {
			return err
		}
		c.Zones = append(c.Zones, labconf.Zone{Name: z.Origin(), File: file})
	}
	return startDaemon(dir, "nsd", c.Config(), port, zones[0].Origin(), false)
}

// startUnbound starts a validating Unbound anchored at anchors that stubs
// the zones, and ".", to NSD; it keeps Unbound's default cache TTLs.
func startUnbound(dir string, port, nsdPort int, anchors string, zones []*zonekit.Zone) error {
	c := labconf.Unbound{
		Port: port, Dir: dir, LogFile: filepath.Join(dir, "unbound.log"),
		TrustAnchorFile: anchors, StubPort: nsdPort,
	}
	for _, z := range zones {
		c.Zones = append(c.Zones, z.Origin())
	}
	return startDaemon(dir, "unbound", c.Config(), port, zones[0].Origin(), true)
}

// startDaemon writes conf to dir/<name>.conf, starts name in the
// foreground on cpu 0 with it (output in dir/<name>.out), and waits until
// it answers SOA for zone on port, with AD if secure.
func startDaemon(dir, name, conf string, port int, zone string, secure bool) error {
	path := filepath.Join(dir, name+".conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return err
	}
	if _, err := startProcess(filepath.Join(dir, name+".out"), nil, "taskset", "-c", "0", name, "-d", "-c", path); err != nil {
		return err
	}
	return labconf.WaitDNS(fmt.Sprintf("127.0.0.1:%d", port), zone, secure, nil)
}
