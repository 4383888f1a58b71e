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

func TestPortRange(t *testing.T) {
	for _, c := range []struct {
		elo, ehi, lo, hi int
	}{
		{32768, 60999, 10000, 32767}, // Linux's default
		{1024, 65535, 10000, 65535},  // nothing left outside: the whole range
		{10000, 40000, 40001, 65535}, // above is larger
		{49152, 65535, 10000, 49151}, // IANA's dynamic range
		{10500, 64900, 10000, 65535}, // neither side has 1000 ports
	} {
		if lo, hi := portRange(c.elo, c.ehi); lo != c.lo || hi != c.hi {
			t.Errorf("portRange(%d, %d) = %d-%d; want %d-%d", c.elo, c.ehi, lo, hi, c.lo, c.hi)
		}
	}
}

// TestFreePortReserved checks what the CI failure needed: ports outside the
// ephemeral range, never handed out twice, and held against another
// process (a child running this test binary) while this one lives.
func TestFreePortReserved(t *testing.T) {
	if os.Getenv("LABCONF_PORT_CHILD") != "" {
		port, _ := strconv.Atoi(os.Getenv("LABCONF_PORT_CHILD"))
		if reserve(port) {
			os.Exit(3) // the parent's reservation did not hold
		}
		os.Exit(0)
	}
	lo, hi := PortRange()
	if elo, ehi := readEphemeral(); lo <= ehi && hi >= elo && (lo != 10000 || hi != 65535) {
		t.Fatalf("PortRange %d-%d overlaps the ephemeral range %d-%d", lo, hi, elo, ehi)
	}
	seen := map[int]bool{}
	for range 200 {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if port < lo || port > hi {
			t.Fatalf("port %d outside %d-%d", port, lo, hi)
		}
		if seen[port] {
			t.Fatalf("port %d handed out twice", port)
		}
		seen[port] = true
	}
	var one int
	for p := range seen {
		one = p
		break
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFreePortReserved$")
	cmd.Env = append(os.Environ(), "LABCONF_PORT_CHILD="+strconv.Itoa(one))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("another process could reserve port %d while this one holds it: %v\n%s", one, err, out)
	}
}
