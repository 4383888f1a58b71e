package integration

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/internal/labconf"
)

// Helpers for trust_resolver_test.go, the tests of `dnssec trust_resolver`
// (the transport takes the DNSSEC verdict from a loopback validating
// resolver's AD bit instead of validating in process).

// labZones are the zones NSD serves (see the package documentation).
var labZones = []string{zoneParent, zoneSecure, zoneBogus, zoneExpired, zoneUnsigned, zoneInsecure}

// StartExtraUnbound starts another Unbound over the same tree, on its own
// port and with its own, empty cache; the caller stops it. validating:
// configured as the lab's Unbound (the lab's anchor, RFC 8914 extended
// errors). Otherwise the validator module is left out (module-config:
// "iterator"): a recursive resolver that passes DNSSEC records through but
// never validates, so it never sets AD.
func (l *Lab) StartExtraUnbound(name string, validating bool) (p *proc, addr string, err error) {
	port, err := labconf.FreePort()
	if err != nil {
		return nil, "", err
	}
	dir := filepath.Join(l.Dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	c := labconf.Unbound{
		Port: port, Dir: dir, LogFile: filepath.Join(dir, "unbound.log"),
		Verbosity: 1, CacheMaxTTL: 5,
		StubPort: l.NSDPort, Zones: labZones,
	}
	if validating {
		c.TrustAnchorFile, c.EDE, c.ValLogLevel = l.AnchorsFile, true, 2
	}
	p, err = startUnbound(dir, c)
	if err != nil {
		if p != nil {
			p.Stop(5 * time.Second)
		}
		return nil, "", err
	}
	return p, fmt.Sprintf("127.0.0.1:%d", port), nil
}

// tcpForwarder accepts on a port of 127.0.0.1 of its own and relays each
// connection to one address: the same TLS server under a second port, so
// under a TLSA owner name (_<port>._tcp.<host>.) that does not exist.
type tcpForwarder struct {
	Port int
	ln   net.Listener
	wg   sync.WaitGroup

	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

func newTCPForwarder(to string) (*tcpForwarder, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &tcpForwarder{Port: ln.Addr().(*net.TCPAddr).Port, ln: ln}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.DialTimeout("tcp", to, 5*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			f.mu.Lock()
			if f.closed {
				f.mu.Unlock()
				c.Close()
				up.Close()
				return
			}
			f.conns = append(f.conns, c, up)
			f.mu.Unlock()
			relay := func(dst, src net.Conn) {
				defer f.wg.Done()
				_, _ = io.Copy(dst, src)
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
			}
			f.wg.Add(2)
			go relay(up, c)
			go relay(c, up)
		}
	}()
	return f, nil
}

// Close stops accepting, cuts every relayed connection and waits.
func (f *tcpForwarder) Close() {
	f.ln.Close()
	f.mu.Lock()
	f.closed = true
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// dnsRewriter is a DNS forwarder on loopback (UDP and TCP on one port)
// that passes every query to a resolver and lets rewrite change the
// answer: a validating resolver that misreports some verdicts.
type dnsRewriter struct {
	Addr     string
	to       string
	rewrite  func(q, r *dns.Msg) *dns.Msg
	udp, tcp *dns.Server
}

func startDNSRewriter(to string, rewrite func(q, r *dns.Msg) *dns.Msg) (*dnsRewriter, error) {
	// The same port for UDP and TCP: a free UDP port may be taken for TCP
	// (an ephemeral port of some connection), so try a few.
	var pc net.PacketConn
	var ln net.Listener
	var err error
	for range 20 {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		return nil, err
	}
	d := &dnsRewriter{Addr: pc.LocalAddr().String(), to: to, rewrite: rewrite}
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	d.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(d.serve), NotifyStartedFunc: notify}
	d.tcp = &dns.Server{Listener: ln, Handler: dns.HandlerFunc(d.serve), NotifyStartedFunc: notify}
	go d.udp.ActivateAndServe()
	go d.tcp.ActivateAndServe()
	<-started
	<-started
	return d, nil
}

func (d *dnsRewriter) serve(w dns.ResponseWriter, q *dns.Msg) {
	netw := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		netw = "tcp"
	}
	c := &dns.Client{Net: netw, Timeout: 3 * time.Second, UDPSize: 4096}
	r, _, err := c.Exchange(q, d.to)
	if err != nil {
		return // no answer: the client times out
	}
	if len(q.Question) == 1 {
		r = d.rewrite(q, r)
	}
	w.WriteMsg(r)
}

func (d *dnsRewriter) Close() {
	d.udp.Shutdown()
	d.tcp.Shutdown()
}

// servfail is a SERVFAIL for q, with EDNS0 (DO) and, if code != 0, an
// RFC 8914 extended error.
func servfail(q *dns.Msg, code uint16, text string) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(q, dns.RcodeServerFailure)
	m.RecursionAvailable = true
	m.SetEdns0(1232, true)
	if code != 0 {
		opt := m.IsEdns0()
		opt.Option = append(opt.Option, &dns.EDNS0_EDE{InfoCode: code, ExtraText: text})
	}
	return m
}

// dnsmasqAddr is the loopback address dnsmasq listens on: another address
// than the lab's 127.0.0.1, where the Unbound it forwards to stands for a
// validating resolver across a network.
const dnsmasqAddr = "127.0.0.2"

// StartDnsmasq starts dnsmasq on dnsmasqAddr, on a port of its own, as a
// caching forwarder to upstream (host:port) only, with args added
// (--proxy-dnssec, --no-ident, ...); the caller stops it. It runs in the
// foreground in debug mode (--no-daemon: no fork, no change of user), logs
// every query to its log, and reads neither /etc/resolv.conf, /etc/hosts
// nor a configuration file.
func (l *Lab) StartDnsmasq(name, upstream string, args ...string) (p *proc, addr string, err error) {
	port, err := labconf.FreePort()
	if err != nil {
		return nil, "", err
	}
	host, uport, err := net.SplitHostPort(upstream)
	if err != nil {
		return nil, "", err
	}
	argv := append([]string{"--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--pid-file=",
		"--listen-address=" + dnsmasqAddr, "--bind-interfaces", "--port=" + strconv.Itoa(port),
		"--server=" + host + "#" + uport, "--log-queries"}, args...)
	p, err = startProc("dnsmasq", filepath.Join(l.Dir, name+".log"), argv...)
	if err != nil {
		return nil, "", err
	}
	addr = net.JoinHostPort(dnsmasqAddr, strconv.Itoa(port))
	if err := waitDNS(p, addr, zoneParent+".", false); err != nil {
		p.Stop(5 * time.Second)
		return nil, "", err
	}
	return p, addr, nil
}

// StartInsecureUnbound starts a validating Unbound like the lab's, on its
// own port and with its own cache, that treats zones as insecure
// (domain-insecure: a negative trust anchor, RFC 7646): its verdict on
// data in them is Insecure, AD=0, whatever their signatures say.
func (l *Lab) StartInsecureUnbound(name string, zones ...string) (p *proc, addr string, err error) {
	port, err := labconf.FreePort()
	if err != nil {
		return nil, "", err
	}
	dir := filepath.Join(l.Dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	c := labconf.Unbound{
		Port: port, Dir: dir, LogFile: filepath.Join(dir, "unbound.log"),
		TrustAnchorFile: l.AnchorsFile, EDE: true, ValLogLevel: 2,
		Verbosity: 1, CacheMaxTTL: 5,
		StubPort: l.NSDPort, Zones: labZones,
	}
	conf := c.Config() + "server:\n"
	for _, z := range zones {
		conf += fmt.Sprintf("    domain-insecure: \"%s.\"\n", z)
	}
	path := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, "", err
	}
	if _, err := run(dir, 10*time.Second, "unbound-checkconf", path); err != nil {
		return nil, "", err
	}
	p, err = startProc("unbound", filepath.Join(dir, "unbound.out"), "-d", "-c", path)
	if err != nil {
		return nil, "", err
	}
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	if err := waitDNS(p, addr, zoneParent+".", true); err != nil {
		p.Stop(5 * time.Second)
		return nil, "", err
	}
	return p, addr, nil
}
