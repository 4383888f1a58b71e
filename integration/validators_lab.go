package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/dnssec"
	"github.com/caddy-dane/caddy-dane/caddymodule/resolver"
	"github.com/caddy-dane/caddy-dane/internal/labconf"
	"github.com/caddy-dane/caddy-dane/internal/zonekit"
)

// ValidatorLab serves one private DNS tree (signed in process by zonekit,
// with a scenario per child zone of test.) on loopback, and runs three
// validators on it: ours (caddymodule/dnssec), a validating Unbound that
// forwards to the tree, and BIND's delv asking the tree directly. All
// three are anchored at the same root DS.
type ValidatorLab struct {
	Dir         string
	TreeAddr    string // zonekit server, 127.0.0.1:port
	UnboundPort int
	RootDS      *dns.DS

	srv     *zonekit.Server
	unbound *exec.Cmd
	ours    *dnssec.Validator
}

// validatorTools are the binaries the cross-check needs.
var validatorTools = []string{"unbound", "delv", "dig"}

// newValidatorTree builds the scenarios: every child zone of test. is one
// kind of answer or attack. Signatures are valid from a day ago to 30
// days ahead (real validators use the real clock).
func newValidatorTree() (*zonekit.Server, *dns.DS, error) {
	now := time.Now()
	inc, exp := now.Add(-24*time.Hour), now.Add(30*24*time.Hour)
	root, tld := zonekit.NewZone("."), zonekit.NewZone("test.")
	zones := []*zonekit.Zone{root, tld}
	var errs []error
	child := func(name string, nsec3 *zonekit.NSEC3Params, records ...string) *zonekit.Zone {
		z := zonekit.NewZone(name)
		z.SetNSEC3(nsec3)
		errs = append(errs, z.Add(records...))
		zones = append(zones, z)
		return z
	}
	std := []string{"www IN A 192.0.2.1", "*.wild IN A 192.0.2.2", "alias IN CNAME www", "toplain IN CNAME www.plain.test."}
	child("nsec.test.", nil, std...)
	child("nsec3.test.", &zonekit.NSEC3Params{}, std...)
	child("salted.test.", &zonekit.NSEC3Params{Iterations: 10, Salt: "aabbccdd"}, std...)
	oo := child("optout.test.", &zonekit.NSEC3Params{OptOut: true}, std...)
	uns := child("uns.optout.test.", nil, "www IN A 192.0.2.3")
	uns.SetUnsigned(true)
	plain := child("plain.test.", nil, "www IN A 192.0.2.4")
	plain.SetUnsigned(true)
	child("nokey.test.", nil, "www IN A 192.0.2.5")
	dsbad := child("dsbad.test.", nil, "www IN A 192.0.2.6")
	expired := child("expired.test.", nil, "www IN A 192.0.2.7")
	notyet := child("notyet.test.", nil, "www IN A 192.0.2.8")
	child("signer.test.", nil, "www IN A 192.0.2.9")
	child("stripped.test.", nil, "www IN A 192.0.2.10")
	unkalg := child("unkalg.test.", nil, "www IN A 192.0.2.11")
	// DNAME redirections (RFC 6672): into a signed zone, into an unsigned
	// one, and one whose RRSIG is corrupted in flight (see Tamper).
	child("dname.test.", nil, "red IN DNAME nsec.test.", "toplain IN DNAME plain.test.", "bad IN DNAME nsec.test.")
	for _, z := range zones[2:] {
		parent := tld
		if z == uns {
			parent = oo
		}
		errs = append(errs, zonekit.Delegate(parent, z))
	}
	errs = append(errs, zonekit.Delegate(root, tld))
	// DS digest mismatch; DS of an unknown algorithm only (RFC 4035 §5.2).
	for _, c := range []struct {
		z   *zonekit.Zone
		fix func(*dns.DS)
	}{
		{dsbad, func(ds *dns.DS) { ds.Digest = strings.Repeat("00", 32) }},
		{unkalg, func(ds *dns.DS) { ds.Algorithm = 200 }},
	} {
		ds := c.z.DS()[0]
		c.fix(ds)
		tld.Remove(c.z.Origin(), dns.TypeDS)
		errs = append(errs, tld.AddRR(ds))
	}
	// Sign children before parents does not matter: DS comes from keys.
	for _, z := range zones {
		errs = append(errs, z.Sign(inc, exp))
	}
	errs = append(errs,
		expired.SignRRset("www.expired.test.", dns.TypeA, now.Add(-10*24*time.Hour), now.Add(-3*24*time.Hour)),
		// Unbound tolerates up to a day of clock skew (val-sig-skew-max).
		notyet.SignRRset("www.notyet.test.", dns.TypeA, now.Add(3*24*time.Hour), now.Add(30*24*time.Hour)))
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	srv := zonekit.NewServer(zones...)
	srv.Tamper = func(q, r *dns.Msg) {
		name, qtype := dns.CanonicalName(q.Question[0].Name), q.Question[0].Qtype
		switch {
		case name == "nokey.test." && qtype == dns.TypeDNSKEY: // missing DNSKEY
			r.Answer = nil
		case name == "www.signer.test.": // wrong signer name
			for _, rr := range r.Answer {
				if s, ok := rr.(*dns.RRSIG); ok {
					s.SignerName = "test."
				}
			}
		case dns.IsSubDomain("bad.dname.test.", name): // bad signature over the DNAME
			for _, rr := range r.Answer {
				if s, ok := rr.(*dns.RRSIG); ok && s.TypeCovered == dns.TypeDNAME {
					s.Signature = corrupt(s.Signature)
				}
			}
		case name == "www.stripped.test.": // stripped RRSIG
			var keep []dns.RR
			for _, rr := range r.Answer {
				if rr.Header().Rrtype != dns.TypeRRSIG {
					keep = append(keep, rr)
				}
			}
			r.Answer = keep
		}
	}
	return srv, root.DS()[0], nil
}

// corrupt flips bits in a base64 signature, keeping its length.
func corrupt(sig string) string {
	b, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(b) == 0 {
		return sig
	}
	b[len(b)/2] ^= 0xff
	return base64.StdEncoding.EncodeToString(b)
}

// StartValidatorLab serves the tree and starts Unbound in dir.
func StartValidatorLab(dir string) (*ValidatorLab, error) {
	srv, ds, err := newValidatorTree()
	if err != nil {
		return nil, err
	}
	addr, err := srv.ListenAndServe()
	if err != nil {
		return nil, err
	}
	l := &ValidatorLab{Dir: dir, TreeAddr: addr, RootDS: ds, srv: srv}
	if err := os.WriteFile(filepath.Join(dir, "root.ds"), []byte(ds.String()+"\n"), 0o644); err != nil {
		l.Close()
		return nil, err
	}
	delvAnchor := fmt.Sprintf("trust-anchors {\n\t\".\" static-ds %d %d %d \"%s\";\n};\n", ds.KeyTag, ds.Algorithm, ds.DigestType, ds.Digest)
	if err := os.WriteFile(filepath.Join(dir, "delv.anchors"), []byte(delvAnchor), 0o644); err != nil {
		l.Close()
		return nil, err
	}
	if l.UnboundPort, err = freeUDPPort(); err != nil {
		l.Close()
		return nil, err
	}
	_, zport, _ := net.SplitHostPort(addr)
	avoidLo, avoidHi := labconf.PortRange() // see labconf.Unbound.Config
	conf := fmt.Sprintf(`server:
	interface: 127.0.0.1
	port: %d
	do-ip6: no
	do-not-query-localhost: no
	outgoing-port-avoid: %d-%d
	username: ""
	chroot: ""
	pidfile: ""
	directory: "%s"
	logfile: "%s/unbound.log"
	use-syslog: no
	verbosity: 1
	val-log-level: 2
	local-zone: "test." nodefault
	module-config: "validator iterator"
	trust-anchor-file: "%s/root.ds"
	trust-anchor-signaling: no
	root-key-sentinel: no
	qname-minimisation: no
	aggressive-nsec: no
	cache-max-ttl: 0
	cache-max-negative-ttl: 0
	val-bogus-ttl: 0
	access-control: 127.0.0.0/8 allow
remote-control:
	control-enable: no
forward-zone:
	name: "."
	forward-addr: 127.0.0.1@%s
`, l.UnboundPort, avoidLo, avoidHi, dir, dir, dir, zport)
	confPath := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		l.Close()
		return nil, err
	}
	l.unbound = exec.Command("unbound", "-d", "-c", confPath)
	if err := l.unbound.Start(); err != nil {
		l.Close()
		return nil, err
	}
	for i := 0; ; i++ {
		if _, err := l.Unbound("www.nsec.test.", dns.TypeA); err == nil {
			break
		} else if i > 50 {
			log, _ := os.ReadFile(filepath.Join(dir, "unbound.log"))
			l.Close()
			return nil, fmt.Errorf("unbound does not answer: %v\n%s", err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.ours, err = dnssec.New(dnssec.Config{
		Exchanger: &resolver.Client{Servers: []string{addr}, Timeout: 2 * time.Second},
		Anchors:   []dns.RR{ds},
	})
	if err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// freeUDPPort returns a loopback port free for UDP and for TCP: DNS
// servers listen on both, and named started on a port whose TCP twin was
// taken (by a parallel test's thousands of connections) serves UDP alone
// ("creating TCP socket: address in use"), failing every transfer.
func freeUDPPort() (int, error) { return labconf.FreePort() }

// Close stops Unbound (the process this lab started) and the tree.
func (l *ValidatorLab) Close() {
	if l.unbound != nil && l.unbound.Process != nil {
		_ = l.unbound.Process.Kill()
		_ = l.unbound.Wait()
	}
	if l.srv != nil {
		_ = l.srv.Close()
	}
}

// Ours returns our validator's class for name/qtype.
func (l *ValidatorLab) Ours(name string, qtype uint16) (string, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := l.ours.Lookup(ctx, name, qtype)
	return r.Status.String(), r.String()
}

// Unbound returns Unbound's class: SERVFAIL is bogus, AD secure, else
// insecure (RFC 4035 §3.2.3).
func (l *ValidatorLab) Unbound(name string, qtype uint16) (string, error) {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.SetEdns0(1232, true)
	c := &dns.Client{Timeout: 5 * time.Second}
	m, _, err := c.Exchange(q, fmt.Sprintf("127.0.0.1:%d", l.UnboundPort))
	if err != nil {
		return "", err
	}
	switch {
	case m.Rcode == dns.RcodeServerFailure:
		return "bogus", nil
	case m.AuthenticatedData:
		return "secure", nil
	}
	return "insecure", nil
}

// Delv returns delv's class and output: "fully validated" is secure,
// "unsigned answer" insecure, a failed resolution bogus.
func (l *ValidatorLab) Delv(name string, qtype uint16) (string, string) {
	host, port, _ := net.SplitHostPort(l.TreeAddr)
	cmd := exec.Command("delv", "@"+host, "-p", port, "-a", filepath.Join(l.Dir, "delv.anchors"), "+root=.", name, dns.TypeToString[qtype])
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run()
	s := out.String()
	// A CNAME chain prints one verdict per RRset: any unsigned one makes
	// the whole answer insecure.
	switch {
	case strings.Contains(s, "unsigned answer"), strings.Contains(s, "insecure"):
		return "insecure", s
	case strings.Contains(s, "fully validated"):
		return "secure", s
	}
	return "bogus", s
}
