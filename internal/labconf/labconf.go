// Package labconf renders the configuration of the loopback DNSSEC labs
// that the integration suite (integration/) and the benchmark
// (bench/cmd/danebench) run: an authoritative NSD serving private zones
// under test., and a recursive Unbound, validating or not, that stubs those
// zones, and ".", to it. It also waits for such a server to answer and
// picks free ports. It starts no process: each caller keeps its own
// process management.
//
// The options every configuration sets, and why, are the ones of
// ../shared/lab/PITFALLS.md (items 1-6): both daemons run in the
// foreground as the current user, with every state file in the lab's
// directories, and no packet leaves 127.0.0.1.
package labconf

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Zone is one zone NSD serves.
type Zone struct {
	Name string // "test." or "test" (a final dot is added)
	File string // zone file, relative to NSD.ZonesDir
}

// NSD is the configuration of an authoritative NSD on 127.0.0.1 (IPv4
// only), one server process, remote control off.
type NSD struct {
	Port     int
	ZonesDir string // zonesdir: where the zone files are
	StateDir string // zone.list, xfrd.state, xfrdir and nsd.pid (PITFALLS 5)
	LogFile  string // logfile
	Zones    []Zone
}

// Config returns nsd.conf. The empty username, chroot and database, and
// state files in StateDir, let parallel labs run as any user (PITFALLS 5).
func (c NSD) Config() string {
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
    logfile: "%s"
    server-count: 1
    verbosity: 1
remote-control:
    control-enable: no
`, c.Port, c.ZonesDir, c.StateDir, c.StateDir, c.StateDir, c.StateDir, c.LogFile)
	for _, z := range c.Zones {
		fmt.Fprintf(&b, "zone:\n    name: \"%s\"\n    zonefile: \"%s\"\n", fqdn(z.Name), z.File)
	}
	return b.String()
}

// Unbound is the configuration of a recursive Unbound on 127.0.0.1 (IPv4
// only) that stubs Zones, and ".", to an NSD on 127.0.0.1@StubPort.
type Unbound struct {
	Port    int
	Dir     string // directory
	LogFile string // logfile

	// TrustAnchorFile makes Unbound validate (module-config "validator
	// iterator") with this file as its only trust anchor. Empty: the
	// validator module is left out (module-config "iterator"), a resolver
	// that passes DNSSEC records through but never sets AD.
	TrustAnchorFile string

	Verbosity   int  // verbosity
	LogServfail bool // log-servfail: yes
	ValLogLevel int  // val-log-level, if not 0 (only when validating)
	EDE         bool // ede: yes, RFC 8914 extended errors (only when validating)

	// CacheMaxTTL, if not 0, caps cache-max-ttl and cache-max-negative-ttl
	// (seconds), so that a test sees a changed zone soon.
	CacheMaxTTL int

	StubPort int      // NSD's port
	Zones    []string // zones stubbed to NSD besides "." ("test" or "test.")
}

// Validating reports whether the configuration validates.
func (c Unbound) Validating() bool { return c.TrustAnchorFile != "" }

// Config returns unbound.conf.
func (c Unbound) Config() string {
	var b strings.Builder
	fmt.Fprintf(&b, `server:
    interface: 127.0.0.1@%d
    do-ip6: no
    do-daemonize: no
    # run as the current user, files in the lab directory (PITFALLS 4)
    username: ""
    chroot: ""
    directory: "%s"
    pidfile: ""
    use-syslog: no
    logfile: "%s"
    verbosity: %d
`, c.Port, c.Dir, c.LogFile, c.Verbosity)
	if c.LogServfail {
		b.WriteString("    log-servfail: yes\n")
	}
	if c.Validating() {
		if c.ValLogLevel != 0 {
			fmt.Fprintf(&b, "    val-log-level: %d\n", c.ValLogLevel)
		}
		if c.EDE {
			b.WriteString("    ede: yes\n")
		}
	}
	b.WriteString(`    num-threads: 1
    so-reuseport: no
    access-control: 127.0.0.0/8 allow
`)
	// Unbound picks its outgoing query ports itself, from all of
	// 1024-65535: keep it out of the range the lab's servers get ports
	// from (FreePort).
	lo, hi := PortRange()
	fmt.Fprintf(&b, "    outgoing-port-avoid: %d-%d\n", lo, hi)
	if c.Validating() {
		b.WriteString("    module-config: \"validator iterator\"\n")
	} else {
		b.WriteString("    module-config: \"iterator\"\n")
	}
	b.WriteString(`    # the stubs are on 127.0.0.1, which Unbound does not query by default (PITFALLS 2)
    do-not-query-localhost: no
    # RFC 6761 built-in local zone "test." would answer NXDOMAIN itself (PITFALLS 1)
    local-zone: "test." nodefault
`)
	if c.Validating() {
		fmt.Fprintf(&b, "    trust-anchor-file: \"%s\"\n", c.TrustAnchorFile)
	}
	if c.CacheMaxTTL != 0 {
		fmt.Fprintf(&b, "    cache-max-ttl: %d\n    cache-max-negative-ttl: %d\n", c.CacheMaxTTL, c.CacheMaxTTL)
	}
	fmt.Fprintf(&b, `remote-control:
    control-enable: no
# The root is stubbed to NSD too (which refuses it): no packet leaves the host (PITFALLS 3).
stub-zone:
    name: "."
    stub-addr: 127.0.0.1@%d
`, c.StubPort)
	for _, z := range c.Zones {
		fmt.Fprintf(&b, "stub-zone:\n    name: \"%s\"\n    stub-addr: 127.0.0.1@%d\n", fqdn(z), c.StubPort)
	}
	return b.String()
}

func fqdn(name string) string { return strings.TrimSuffix(name, ".") + "." }

// ErrNotReady is wrapped by WaitDNS's error when the server never answered
// as asked in time (as opposed to alive's error).
var ErrNotReady = errors.New("not ready after 15s")

// WaitDNS waits up to 15 s until server ("127.0.0.1:port") answers SOA for
// name with NOERROR, and with AD if secure. alive, if not nil, is called
// before every try: its error (the process has exited) ends the wait and
// is returned as is.
func WaitDNS(server, name string, secure bool, alive func() error) error {
	c := &dns.Client{Timeout: 500 * time.Millisecond}
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeSOA)
	q.SetEdns0(1232, true)
	deadline := time.Now().Add(15 * time.Second)
	last := "no answer"
	for time.Now().Before(deadline) {
		if alive != nil {
			if err := alive(); err != nil {
				return err
			}
		}
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
	return fmt.Errorf("%s for %s: %w (last: %s)", server, name, ErrNotReady, last)
}
