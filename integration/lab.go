package integration

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/caddy-dane/caddy-dane/internal/labconf"
)

// Zone names of the lab (see the package documentation).
const (
	zoneParent   = "test"
	zoneSecure   = "example.test"
	zoneBogus    = "bogus.test"
	zoneExpired  = "expired.test"
	zoneUnsigned = "unsigned.test"
	zoneInsecure = "insecure.test"
)

// A TLSA record to publish: owner host, port, presentation RDATA.
type tlsaRR struct {
	Host string // "good.example.test"
	Port int
	Data string // "3 1 1 <hex>"
}

// Owner is the TLSA owner name, _<port>._tcp.<host>. (RFC 6698 §3).
func (r tlsaRR) Owner() string { return fmt.Sprintf("_%d._tcp.%s.", r.Port, r.Host) }

// zoneSpec is one child zone of test.: its hosts (all 127.0.0.1), TLSA
// records, and how it is (mis)signed.
type zoneSpec struct {
	Name  string
	Hosts []string
	TLSA  []tlsaRR
	Extra []string // more records, zone-file lines (SRV)

	Sign     bool              // sign it and publish its DS in test.
	Args     []string          // extra ldns-signzone options (NSEC3, validity)
	DSOnly   bool              // publish a DS in test. for a key the zone never has
	Tamper   map[string]string // after signing: replace RDATA hex (old → new)
	Insecure bool              // delegated without DS
}

// Lab is the DNS half of the test bed: signed zones, NSD and Unbound.
type Lab struct {
	Dir              string
	NSDPort          int
	UnboundPort      int
	AnchorsFile      string // DS of test.'s KSK: the only trust anchor
	WrongAnchorsFile string // DS of a KSK test. never published
	NSD, Unbound     *proc
	UnboundLog       string
}

// Resolver is Unbound's "127.0.0.1:<port>".
func (l *Lab) Resolver() string { return fmt.Sprintf("127.0.0.1:%d", l.UnboundPort) }

// ldnsTime formats a signature validity time for ldns-signzone -i/-e.
func ldnsTime(t time.Time) string { return t.UTC().Format("20060102150405") }

// zoneFile writes the unsigned zone text of a child zone.
func zoneText(z zoneSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "$ORIGIN %s.\n$TTL 300\n", z.Name)
	fmt.Fprintf(&b, "@ IN SOA ns1 hostmaster 1 3600 900 604800 300\n@ IN NS ns1\nns1 IN A 127.0.0.1\n")
	for _, h := range z.Hosts {
		fmt.Fprintf(&b, "%s. IN A 127.0.0.1\n", h)
	}
	for _, r := range z.TLSA {
		fmt.Fprintf(&b, "%s IN TLSA %s\n", r.Owner(), r.Data)
	}
	for _, l := range z.Extra {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// keygen makes an ECDSA P-256 (algorithm 13) key for zone in dir and
// returns its base name; ksk sets flags 257. ldns-keygen also writes
// <base>.ds.
func keygen(dir, zone string, ksk bool) (string, error) {
	args := []string{"-a", "ECDSAP256SHA256"}
	if ksk {
		args = append(args, "-k")
	}
	out, err := run(dir, 30*time.Second, "ldns-keygen", append(args, zone+".")...)
	return strings.TrimSpace(out), err
}

// readDS returns the DS line written by ldns-keygen for a key.
func readDS(dir, base string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, base+".ds"))
	return strings.TrimSpace(string(b)), err
}

// signZone signs dir/<zone>.zone into dir/<zone>.zone.signed with a fresh
// KSK and ZSK and returns the KSK's DS.
func signZone(dir, zone string, extra ...string) (ds string, err error) {
	ksk, err := keygen(dir, zone, true)
	if err != nil {
		return "", err
	}
	zsk, err := keygen(dir, zone, false)
	if err != nil {
		return "", err
	}
	args := append(append([]string{}, extra...), "-o", zone+".", "-f", zone+".zone.signed", zone+".zone", zsk, ksk)
	if _, err := run(dir, 30*time.Second, "ldns-signzone", args...); err != nil {
		return "", err
	}
	return readDS(dir, ksk)
}

// validity is the -i/-e window of the zones meant to be valid.
func validity() []string {
	return []string{"-i", ldnsTime(time.Now().Add(-time.Hour)), "-e", ldnsTime(time.Now().Add(24 * time.Hour))}
}

// BuildZones writes and signs the child zones and the test. parent, and
// writes the trust anchor files.
func (l *Lab) BuildZones(children []zoneSpec) error {
	var parent strings.Builder
	fmt.Fprintf(&parent, "$ORIGIN %s.\n$TTL 300\n", zoneParent)
	fmt.Fprintf(&parent, "@ IN SOA ns1 hostmaster 1 3600 900 604800 300\n@ IN NS ns1\nns1 IN A 127.0.0.1\n")
	for _, z := range children {
		path := filepath.Join(l.Dir, z.Name+".zone")
		if err := os.WriteFile(path, []byte(zoneText(z)), 0o644); err != nil {
			return err
		}
		// Delegation with glue; the glue's port 53 is never used because
		// Unbound has a stub for every zone.
		fmt.Fprintf(&parent, "%s. IN NS ns1.%s.\nns1.%s. IN A 127.0.0.1\n", z.Name, z.Name, z.Name)
		switch {
		case z.Sign:
			ds, err := signZone(l.Dir, z.Name, z.Args...)
			if err != nil {
				return fmt.Errorf("zone %s: %w", z.Name, err)
			}
			fmt.Fprintln(&parent, ds)
			if err := tamper(path+".signed", z.Tamper); err != nil {
				return fmt.Errorf("zone %s: %w", z.Name, err)
			}
		case z.DSOnly:
			ksk, err := keygen(l.Dir, z.Name, true)
			if err != nil {
				return err
			}
			ds, err := readDS(l.Dir, ksk)
			if err != nil {
				return err
			}
			fmt.Fprintln(&parent, ds)
			if err := copyFile(path, path+".signed"); err != nil {
				return err
			}
		default: // insecure: no DS
			if err := copyFile(path, path+".signed"); err != nil {
				return err
			}
		}
	}
	if err := os.WriteFile(filepath.Join(l.Dir, zoneParent+".zone"), []byte(parent.String()), 0o644); err != nil {
		return err
	}
	ds, err := signZone(l.Dir, zoneParent, validity()...)
	if err != nil {
		return fmt.Errorf("zone %s: %w", zoneParent, err)
	}
	l.AnchorsFile = filepath.Join(l.Dir, "anchors.ds")
	if err := os.WriteFile(l.AnchorsFile, []byte(ds+"\n"), 0o644); err != nil {
		return err
	}
	wrong, err := keygen(l.Dir, zoneParent, true)
	if err != nil {
		return err
	}
	wds, err := readDS(l.Dir, wrong)
	if err != nil {
		return err
	}
	l.WrongAnchorsFile = filepath.Join(l.Dir, "wrong-anchors.ds")
	return os.WriteFile(l.WrongAnchorsFile, []byte(wds+"\n"), 0o644)
}

// tamper replaces RDATA hex in a signed zone file, keeping the RRSIGs, so
// that the RRset no longer matches its signature (RFC 4035 §5.3.3).
func tamper(path string, repl map[string]string) error {
	if len(repl) == 0 {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	for old, new := range repl {
		re := regexp.MustCompile("(?i)" + regexp.QuoteMeta(old))
		if !re.MatchString(s) {
			return fmt.Errorf("tamper: %s not found in %s", old, path)
		}
		s = re.ReplaceAllString(s, new)
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

// zones lists every zone the lab serves.
func zones(children []zoneSpec) []string {
	out := []string{zoneParent}
	for _, z := range children {
		out = append(out, z.Name)
	}
	return out
}

// StartNSD writes nsd.conf and starts NSD in the foreground, as the current
// user, with every state file in the lab directory (PITFALLS 5, 6).
func (l *Lab) StartNSD(zoneNames []string) error {
	state := filepath.Join(l.Dir, "nsd-state")
	if err := os.MkdirAll(state, 0o755); err != nil {
		return err
	}
	c := labconf.NSD{Port: l.NSDPort, ZonesDir: l.Dir, StateDir: state, LogFile: filepath.Join(l.Dir, "nsd.log")}
	for _, z := range zoneNames {
		c.Zones = append(c.Zones, labconf.Zone{Name: z, File: z + ".zone.signed"})
	}
	conf := filepath.Join(l.Dir, "nsd.conf")
	if err := os.WriteFile(conf, []byte(c.Config()), 0o644); err != nil {
		return err
	}
	if _, err := run(l.Dir, 10*time.Second, "nsd-checkconf", conf); err != nil {
		return err
	}
	p, err := startProc("nsd", filepath.Join(l.Dir, "nsd.out"), "-d", "-c", conf)
	if err != nil {
		return err
	}
	l.NSD = p
	return waitDNS(l.NSD, fmt.Sprintf("127.0.0.1:%d", l.NSDPort), zoneParent+".", false)
}

// StartUnbound writes unbound.conf and starts a validating Unbound whose
// only trust anchor is anchors.ds and which stubs every lab zone, and ".",
// to NSD (PITFALLS 1-4). It logs SERVFAIL reasons and validation failures
// (log-servfail, val-log-level 2), sends RFC 8914 extended errors, and
// caches nothing longer than 5 s.
func (l *Lab) StartUnbound(zoneNames []string) error {
	l.UnboundLog = filepath.Join(l.Dir, "unbound.log")
	var err error
	l.Unbound, err = startUnbound(l.Dir, labconf.Unbound{
		Port: l.UnboundPort, Dir: l.Dir, LogFile: l.UnboundLog,
		TrustAnchorFile: l.AnchorsFile,
		Verbosity:       1, LogServfail: true, ValLogLevel: 2, EDE: true,
		CacheMaxTTL: 5,
		StubPort:    l.NSDPort, Zones: zoneNames,
	})
	return err
}

// startUnbound writes c to dir/unbound.conf, checks it, starts Unbound
// with it and waits until Unbound answers (with AD if it validates). If
// the wait fails, the process is returned with the error: the caller stops
// it.
func startUnbound(dir string, c labconf.Unbound) (*proc, error) {
	conf := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(conf, []byte(c.Config()), 0o644); err != nil {
		return nil, err
	}
	if _, err := run(dir, 10*time.Second, "unbound-checkconf", conf); err != nil {
		return nil, err
	}
	p, err := startProc("unbound", filepath.Join(dir, "unbound.out"), "-d", "-c", conf)
	if err != nil {
		return nil, err
	}
	return p, waitDNS(p, fmt.Sprintf("127.0.0.1:%d", c.Port), zoneParent+".", c.Validating())
}

// waitDNS waits until server answers SOA for name (with AD, if secure),
// failing early if p exits.
func waitDNS(p *proc, server, name string, secure bool) error {
	err := labconf.WaitDNS(server, name, secure, func() error {
		if p.Exited() {
			return fmt.Errorf("%s exited at start: %v\n%s", p.Name, p.err, p.Tail(20))
		}
		return nil
	})
	if errors.Is(err, labconf.ErrNotReady) {
		return fmt.Errorf("%s on %w\n%s", p.Name, err, p.Tail(20))
	}
	return err
}

// Close stops Unbound and NSD.
func (l *Lab) Close() {
	l.Unbound.Stop(5 * time.Second)
	l.NSD.Stop(5 * time.Second)
}
