package integration

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/internal/labconf"
)

// Lab parts of the dane_publish integration test (publish_test.go): a
// fault proxy between the publisher's DNS provider and the primary
// server, a validating Unbound anchored at one zone, a Caddy started on
// any loopback address, a load generator, a sampler of the key a TLS
// server presents, and a reader of Caddy's Prometheus metrics.

// proxyMode is what the update proxy does with what it receives.
type proxyMode int32

const (
	proxyForward proxyMode = iota // relay to the primary and back
	proxyRefused                  // answer REFUSED itself (signed, as a primary whose policy denies the key)
	proxyDrop                     // read and never answer
)

func (m proxyMode) String() string {
	switch m {
	case proxyForward:
		return "forward"
	case proxyRefused:
		return "refused"
	case proxyDrop:
		return "drop"
	}
	return "mode" + strconv.Itoa(int(m))
}

// updateProxy stands between a DNS provider and the primary server it
// updates, on UDP and TCP of one loopback port, so that a test can cut
// the provider off (an outage of the primary, or of its policy) while
// everything that reads the zone through a resolver still sees it.
type updateProxy struct {
	Addr    string
	to      string
	keyName string // TSIG key whose refusals are signed, as BIND signs them
	secret  string
	mode    atomic.Int32

	pc net.PacketConn
	ln net.Listener
	wg sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	counts map[proxyMode]int // messages (UDP) or connections (TCP) handled, by mode
}

// startUpdateProxy listens on a free loopback port (the same for UDP and
// TCP) and forwards to the primary at to.
func startUpdateProxy(to, keyName, secret string) (*updateProxy, error) {
	p := &updateProxy{to: to, keyName: dns.Fqdn(keyName), secret: secret,
		conns: map[net.Conn]struct{}{}, counts: map[proxyMode]int{}}
	var err error
	for range 20 { // a free UDP port may be taken for TCP
		if p.pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		if p.ln, err = net.Listen("tcp", p.pc.LocalAddr().String()); err == nil {
			break
		}
		p.pc.Close()
	}
	if err != nil {
		return nil, err
	}
	p.Addr = p.pc.LocalAddr().String()
	p.wg.Add(2)
	go p.serveUDP()
	go p.serveTCP()
	return p, nil
}

// Set switches the proxy's mode; it applies to every message or
// connection received after it.
func (p *updateProxy) Set(m proxyMode) { p.mode.Store(int32(m)) }

func (p *updateProxy) current() proxyMode {
	m := proxyMode(p.mode.Load())
	p.mu.Lock()
	p.counts[m]++
	p.mu.Unlock()
	return m
}

// Count is how many messages (UDP) and connections (TCP) were handled in
// mode m.
func (p *updateProxy) Count(m proxyMode) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[m]
}

// refusal is the proxy's own REFUSED answer to the raw query q, signed
// with the TSIG key if q is (RFC 8945 §5.3: a server that knows the key
// signs its error responses), or nil if q does not parse.
func (p *updateProxy) refusal(q []byte) []byte {
	m := new(dns.Msg)
	if err := m.Unpack(q); err != nil {
		return nil
	}
	r := new(dns.Msg)
	r.SetRcode(m, dns.RcodeRefused)
	t := m.IsTsig()
	if t == nil || dns.Fqdn(t.Hdr.Name) != p.keyName {
		out, err := r.Pack()
		if err != nil {
			return nil
		}
		return out
	}
	r.SetTsig(p.keyName, t.Algorithm, 300, time.Now().Unix())
	out, _, err := dns.TsigGenerate(r, p.secret, t.MAC, false)
	if err != nil {
		return nil
	}
	return out
}

func (p *updateProxy) serveUDP() {
	defer p.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := p.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		q := append([]byte(nil), buf[:n]...)
		switch p.current() {
		case proxyDrop:
		case proxyRefused:
			if r := p.refusal(q); r != nil {
				_, _ = p.pc.WriteTo(r, from)
			}
		default:
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				c, err := net.Dial("udp", p.to)
				if err != nil {
					return
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Write(q); err != nil {
					return
				}
				rb := make([]byte, 65535)
				if n, err := c.Read(rb); err == nil {
					_, _ = p.pc.WriteTo(rb[:n], from)
				}
			}()
		}
	}
}

func (p *updateProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *updateProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *updateProxy) serveTCP() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			switch p.current() {
			case proxyDrop:
				_, _ = io.Copy(io.Discard, c) // until the client gives up
			case proxyRefused:
				for {
					q, err := readTCPMsg(c)
					if err != nil {
						return
					}
					r := p.refusal(q)
					if r == nil {
						return
					}
					if err := writeTCPMsg(c, r); err != nil {
						return
					}
				}
			default:
				up, err := net.DialTimeout("tcp", p.to, 5*time.Second)
				if err != nil {
					return
				}
				if !p.track(up) {
					return
				}
				defer p.untrack(up)
				done := make(chan struct{})
				go func() {
					_, _ = io.Copy(c, up)
					_ = c.(*net.TCPConn).CloseWrite()
					close(done)
				}()
				_, _ = io.Copy(up, c)
				_ = up.(*net.TCPConn).CloseWrite()
				<-done
			}
		}()
	}
}

// readTCPMsg reads one length-prefixed DNS message (RFC 1035 §4.2.2).
func readTCPMsg(c net.Conn) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint16(l[:]))
	_, err := io.ReadFull(c, b)
	return b, err
}

func writeTCPMsg(c net.Conn, m []byte) error {
	b := make([]byte, 2, 2+len(m))
	binary.BigEndian.PutUint16(b, uint16(len(m)))
	_, err := c.Write(append(b, m...))
	return err
}

// Close stops listening, cuts the open connections and waits.
func (p *updateProxy) Close() {
	p.pc.Close()
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// startZoneUnbound starts a validating Unbound in dir whose only trust
// anchor is anchorFile (DNSKEY or DS lines of zone) and which stubs zone,
// and ".", to the authoritative server on 127.0.0.1:stubPort. Nothing is
// cached longer than cacheMaxTTL seconds. It returns once Unbound answers
// zone's SOA with AD.
func startZoneUnbound(dir string, stubPort int, zone, anchorFile string, cacheMaxTTL int) (*proc, string, error) {
	var lastErr error
	for range 3 { // the free port can be taken before Unbound binds it
		port, err := labconf.FreePort()
		if err != nil {
			return nil, "", err
		}
		c := labconf.Unbound{
			Port: port, Dir: dir, LogFile: filepath.Join(dir, "unbound.log"),
			TrustAnchorFile: anchorFile,
			Verbosity:       1, LogServfail: true, ValLogLevel: 2, EDE: true,
			CacheMaxTTL: cacheMaxTTL,
			StubPort:    stubPort, Zones: []string{zone},
		}
		conf := filepath.Join(dir, "unbound.conf")
		if err := os.WriteFile(conf, []byte(c.Config()), 0o644); err != nil {
			return nil, "", err
		}
		if _, err := run(dir, 10*time.Second, "unbound-checkconf", conf); err != nil {
			return nil, "", err
		}
		p, err := startProc("unbound", filepath.Join(dir, "unbound.out"), "-d", "-c", conf)
		if err != nil {
			return nil, "", err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if lastErr = waitDNS(p, addr, zone, true); lastErr == nil {
			return p, addr, nil
		}
		p.Stop(2 * time.Second)
	}
	return nil, "", lastErr
}

// startCaddyAt runs Caddy with the Caddyfile at cfg and waits until it
// accepts TCP connections on hostport (a site bound to another loopback
// address than 127.0.0.1). Port is set from hostport.
func (e *Env) startCaddyAt(cfg, hostport string) (*Caddy, error) {
	_, ps, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil {
		return nil, err
	}
	log := strings.TrimSuffix(cfg, ".Caddyfile") + ".caddy.log"
	os.Remove(log)
	p, err := startProcEnv(e.caddyEnv(), e.CaddyBin, log, "run", "--config", cfg, "--adapter", "caddyfile")
	if err != nil {
		return nil, err
	}
	c := &Caddy{p: p, Port: port, Config: cfg, Log: log}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if p.Exited() {
			return nil, fmt.Errorf("caddy exited at start: %v\n%s", p.err, p.Tail(30))
		}
		conn, err := net.DialTimeout("tcp", hostport, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return c, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.Stop()
	return nil, fmt.Errorf("caddy not listening on %s after 20s\n%s", hostport, p.Tail(30))
}

// metrics is one scrape of a Prometheus text exposition: sample value by
// series ("name{label=\"v\",...}" as exposed, or "name" without labels).
type metrics map[string]float64

// scrapeMetrics reads GET http://<admin>/metrics.
func scrapeMetrics(admin string) (metrics, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics on %s: %s", admin, resp.Status)
	}
	out := metrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// Sum adds the samples of metric name whose labels include every one of
// labels (`reason="refused"`).
func (m metrics) Sum(name string, labels ...string) float64 {
	var s float64
	for series, v := range m {
		n, rest, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				ok = false
			}
		}
		if ok {
			s += v
		}
	}
	return s
}

// Series lists the series of metric name, sorted, for messages.
func (m metrics) Series(name string) []string {
	var out []string
	for series, v := range m {
		if n, _, _ := strings.Cut(series, "{"); n == name {
			out = append(out, fmt.Sprintf("%s %v", series, v))
		}
	}
	sort.Strings(out)
	return out
}

// steadyResult is one request of the load.
type steadyResult struct {
	At     time.Time
	Status int
	Body   string
	Err    error
}

// steadyLoad sends GET url at a steady rate until stopped, each request in
// its own goroutine so that a slow one does not lower the rate.
type steadyLoad struct {
	url      string
	client   *http.Client
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup

	mu      sync.Mutex
	results []steadyResult
	started time.Time
	ended   time.Time
}

// startSteadyLoad begins rate requests per second to url.
func startSteadyLoad(url string, rate int) *steadyLoad {
	g := &steadyLoad{url: url, stop: make(chan struct{}),
		client: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	g.started = time.Now()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for {
			select {
			case <-g.stop:
				return
			case <-tick.C:
				g.wg.Add(1)
				go g.one()
			}
		}
	}()
	return g
}

func (g *steadyLoad) one() {
	defer g.wg.Done()
	r := steadyResult{At: time.Now()}
	resp, err := g.client.Get(g.url)
	if err != nil {
		r.Err = err
	} else {
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		r.Status, r.Body, r.Err = resp.StatusCode, string(b), err
	}
	g.mu.Lock()
	g.results = append(g.results, r)
	g.mu.Unlock()
}

// Stop ends the load and waits for the requests in flight; only the
// first call does anything.
func (g *steadyLoad) Stop() {
	g.stopOnce.Do(func() {
		close(g.stop)
		g.wg.Wait()
		g.ended = time.Now()
		g.client.CloseIdleConnections()
	})
}

// Results returns every request so far, in no particular order.
func (g *steadyLoad) Results() []steadyResult {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]steadyResult(nil), g.results...)
}

// Failed returns the requests that did not get 200 with body want.
func (g *steadyLoad) Failed(want string) []steadyResult {
	var out []steadyResult
	for _, r := range g.Results() {
		if r.Err != nil || r.Status != http.StatusOK || strings.TrimSpace(r.Body) != want {
			out = append(out, r)
		}
	}
	return out
}

// Rate is the achieved request rate over the load's duration.
func (g *steadyLoad) Rate() float64 {
	d := g.ended.Sub(g.started)
	if g.ended.IsZero() {
		d = time.Since(g.started)
	}
	return float64(len(g.Results())) / d.Seconds()
}

// spkiSHA256 is the hex SHA-256 of a DER SubjectPublicKeyInfo: the
// association data of a 3 1 1 TLSA record (RFC 6698 §2.1).
func spkiSHA256(spki []byte) string {
	h := sha256.Sum256(spki)
	return hex.EncodeToString(h[:])
}

// keySpan is one key a server presented, from the first sample that saw
// it to the last, in the order the keys appeared.
type keySpan struct {
	SPKI        string // hex SHA-256 of the SubjectPublicKeyInfo
	First, Last time.Time
	Samples     int
}

// keySampler connects to a TLS server at a fixed period and records the
// key of the leaf it presents (no verification: it only reads the key).
type keySampler struct {
	addr, sni string
	stop      chan struct{}
	done      chan struct{}

	mu     sync.Mutex
	spans  []keySpan
	errs   int
	lastEr error
}

func startKeySampler(addr, sni string, period time.Duration) *keySampler {
	s := &keySampler{addr: addr, sni: sni, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *keySampler) sample() {
	spki, err := presentedKey(s.addr, s.sni)
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.errs++
		s.lastEr = err
		return
	}
	if n := len(s.spans); n > 0 && s.spans[n-1].SPKI == spki {
		s.spans[n-1].Last = now
		s.spans[n-1].Samples++
		return
	}
	s.spans = append(s.spans, keySpan{SPKI: spki, First: now, Last: now, Samples: 1})
}

// presentedKey is the hex SHA-256 of the SPKI of the leaf the server at
// addr presents for sni.
func presentedKey(addr, sni string) (string, error) {
	d := &net.Dialer{Timeout: 2 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: sni, InsecureSkipVerify: true}) // only reads the key
	if err != nil {
		return "", err
	}
	defer c.Close()
	certs := c.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return "", errors.New("no certificate presented")
	}
	return spkiSHA256(certs[0].RawSubjectPublicKeyInfo), nil
}

// Stop ends the sampling.
func (s *keySampler) Stop() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// Spans returns the keys seen so far, in order.
func (s *keySampler) Spans() []keySpan {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]keySpan(nil), s.spans...)
}

// Errors is how many samples failed, and the last failure.
func (s *keySampler) Errors() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errs, s.lastEr
}

// pollUntil polls cond every 100 ms until it is true or ctx ends.
func pollUntil(ctx context.Context, cond func() bool) bool {
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Summary says how the load went so far, for a test that stops early.
func (g *steadyLoad) Summary() string {
	res, failed := g.Results(), g.Failed("ok")
	s := fmt.Sprintf("%d requests, %d failed", len(res), len(failed))
	if len(failed) > 0 {
		f := failed[0]
		s += fmt.Sprintf(" (first at %s: status %d, body %q, err %v)", f.At.Format("15:04:05.000"), f.Status, f.Body, f.Err)
	}
	return s
}
