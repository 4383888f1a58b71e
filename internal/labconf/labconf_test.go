package labconf

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-dane/caddy-dane/internal/testenv"
)

// TestConfigsCheck renders each kind of configuration and has the daemons'
// own checkers parse it. A checker that is not installed skips the
// configurations it checks locally and fails them under CI=true
// (testenv.NeedTool), each in its own subtest.
func TestConfigsCheck(t *testing.T) {
	dir := t.TempDir()
	zone := filepath.Join(dir, "test.zone")
	if err := os.WriteFile(zone, []byte("$ORIGIN test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 900 604800 300\n@ IN NS ns1\nns1 IN A 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	anchors := filepath.Join(dir, "anchors.ds")
	if err := os.WriteFile(anchors, []byte("test. 3600 IN DS 1 13 2 "+strings.Repeat("ab", 32)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	confs := map[string]string{
		"nsd": NSD{Port: 5300, ZonesDir: dir, StateDir: dir, LogFile: filepath.Join(dir, "nsd.log"),
			Zones: []Zone{{Name: "test", File: "test.zone"}}}.Config(),
		"unbound-validating": Unbound{Port: 5301, Dir: dir, LogFile: filepath.Join(dir, "u.log"), TrustAnchorFile: anchors,
			Verbosity: 1, LogServfail: true, ValLogLevel: 2, EDE: true, CacheMaxTTL: 5, StubPort: 5300, Zones: []string{"test."}}.Config(),
		"unbound-iterator": Unbound{Port: 5302, Dir: dir, LogFile: filepath.Join(dir, "u.log"), ValLogLevel: 2, EDE: true,
			StubPort: 5300, Zones: []string{"test"}}.Config(),
	}
	if c := confs["unbound-iterator"]; strings.Contains(c, "validator") || strings.Contains(c, "ede:") || strings.Contains(c, "trust-anchor") {
		t.Errorf("non-validating configuration validates:\n%s", c)
	}
	if c := confs["unbound-validating"]; !strings.Contains(c, `trust-anchor-file: "`+anchors+`"`) || !strings.Contains(c, "cache-max-negative-ttl: 5") {
		t.Errorf("validating configuration lacks its anchor or cache cap:\n%s", c)
	}
	for name, conf := range confs {
		t.Run(name, func(t *testing.T) {
			tool := "unbound-checkconf"
			if name == "nsd" {
				tool = "nsd-checkconf"
			}
			tool = testenv.NeedTool(t, tool)
			path := filepath.Join(dir, name+".conf")
			if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(tool, path).CombinedOutput(); err != nil {
				t.Errorf("%s %s: %v\n%s\n%s", tool, name, err, out, conf)
			}
		})
	}
}

func TestWaitDNS(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dead := errors.New("exited")
	start := time.Now()
	err = WaitDNS("127.0.0.1:"+strconv.Itoa(port), "test.", false, func() error { return dead })
	if err != dead || time.Since(start) > time.Second {
		t.Errorf("WaitDNS with a dead process = %v after %v; want its error at once", err, time.Since(start))
	}
}
