package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/dane"
	"github.com/caddy-dane/caddy-dane/caddymodule/dnssec"
	"github.com/caddy-dane/caddy-dane/caddymodule/resolver"
)

// validatingFront is a validating resolver on loopback in front of an
// authoritative zonekit server, for trust_resolver tests that need no
// Unbound (integration/ runs the same against the real one): it validates
// each question in process and answers as Unbound does, with AD set on
// Secure data, clear on Insecure data and SERVFAIL plus the RFC 8914 code
// on Bogus. With validating false it is a plain forwarder that never sets
// AD.
type validatingFront struct {
	addr       string
	validating atomic.Bool
	queries    atomic.Int32
}

func startValidatingFront(t *testing.T, upstream, anchorFile string) *validatingFront {
	t.Helper()
	f, err := os.Open(anchorFile)
	if err != nil {
		t.Fatal(err)
	}
	anchors, err := dnssec.ParseAnchors(f, ".")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	v, err := dnssec.New(dnssec.Config{Exchanger: &resolver.Client{Servers: []string{upstream}}, Anchors: anchors})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	vf := &validatingFront{addr: pc.LocalAddr().String()}
	vf.validating.Store(true)
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		vf.queries.Add(1)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		res := v.Lookup(ctx, q.Question[0].Name, q.Question[0].Qtype)
		m := new(dns.Msg)
		m.SetReply(q)
		m.RecursionAvailable = true
		m.SetEdns0(1232, true)
		switch res.Status {
		case dnssec.Secure, dnssec.Insecure:
			m.Rcode = res.Rcode
			m.AuthenticatedData = res.Status == dnssec.Secure && vf.validating.Load()
			for _, c := range res.CNAME {
				m.Answer = append(m.Answer, c)
			}
			m.Answer = append(m.Answer, res.RRset...)
		default:
			m.Rcode = dns.RcodeServerFailure
			if res.EDE != 0 {
				opt := m.IsEdns0()
				opt.Option = append(opt.Option, &dns.EDNS0_EDE{InfoCode: res.EDE, ExtraText: res.Err.Error()})
			}
		}
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return vf
}

// TestTrustResolverEndToEnd runs the transport in trust_resolver mode
// against a loopback validating resolver and a real TLS upstream.
func TestTrustResolverEndToEnd(t *testing.T) {
	up, spki := startKAUpstream(t, false)
	dnsAddr, anchors := kaZone(t, up.port, spki, 300)
	front := startValidatingFront(t, dnsAddr, anchors)

	roundTrip := func(t *testing.T, host string, opts *Options) error {
		t.Helper()
		tr := provisioned(t, &Transport{DANE: opts})
		t.Cleanup(func() { _ = tr.Cleanup() })
		di := reverseproxy.DialInfo{Network: "tcp", Address: up.addr, Host: host, Port: strconv.Itoa(up.port)}
		ctx := context.WithValue(context.Background(), caddy.CtxKey("reverse_proxy.dial_info"), di)
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+up.addr+"/", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		return nil
	}
	trusting := func() *Options {
		return &Options{Resolvers: []string{front.addr}, DNSSEC: dnssecTrustResolver, TrustAnchorFile: anchors, Timeout: caddy.Duration(2 * time.Second)}
	}
	// refusal authenticates the host again through the transport's
	// authenticator (warm: the dial just did the same lookup) for the
	// typed refusal; the reverse proxy's DialError does not unwrap. The
	// handshake is never reached when the lookup refuses.
	refusal := func(t *testing.T, host string, opts *Options, err error) *dane.Refusal {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "dane: refused") {
			t.Fatalf("want a DANE refusal, got %v", err)
		}
		tr := provisioned(t, &Transport{DANE: opts})
		_, lerr := tr.auth.Authenticate(context.Background(), dane.Target{Host: host, Port: up.port},
			func(context.Context, dane.Peer) error { return errors.New("handshake not expected") })
		var r *dane.Refusal
		if !errors.As(lerr, &r) {
			t.Fatalf("lookup: want a refusal, got %v", lerr)
		}
		if !strings.Contains(err.Error(), string(r.Reason)) {
			t.Fatalf("dial error %q does not name the lookup's reason %q", err, r.Reason)
		}
		return r
	}

	t.Run("secure TLSA matches", func(t *testing.T) {
		if err := roundTrip(t, "svc.ka.test", trusting()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("no TLSA is a secure denial, refused", func(t *testing.T) {
		r := refusal(t, "other.ka.test", trusting(), roundTrip(t, "other.ka.test", trusting()))
		if r.Reason != dane.ReasonNoTLSA || r.Status != dnssec.Secure || r.Result.ProvenBy != front.addr {
			t.Fatalf("reason %q status %s resolver %q: %v", r.Reason, r.Status, r.Result.ProvenBy, r)
		}
	})
	t.Run("non-validating resolver is not trusted", func(t *testing.T) {
		front.validating.Store(false)
		defer front.validating.Store(true)
		r := refusal(t, "svc.ka.test", trusting(), roundTrip(t, "svc.ka.test", trusting()))
		if r.Status != dnssec.Indeterminate || r.Reason != dane.ReasonIndeterminate || !strings.Contains(r.Error(), "does not validate") {
			t.Fatalf("status %s: %v", r.Status, r)
		}
	})
	t.Run("resolver with another trust anchor is not trusted", func(t *testing.T) {
		k := &dns.DNSKEY{Hdr: dns.RR_Header{Name: "ka.test.", Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600}, Flags: 257, Protocol: 3, Algorithm: dns.ECDSAP256SHA256}
		if _, err := k.Generate(256); err != nil {
			t.Fatal(err)
		}
		other := filepath.Join(t.TempDir(), "other.ds")
		if err := os.WriteFile(other, []byte(k.ToDS(dns.SHA256).String()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		o := trusting()
		o.TrustAnchorFile = other
		r := refusal(t, "svc.ka.test", o, roundTrip(t, "svc.ka.test", o))
		if !strings.Contains(r.Error(), "matches the trust anchor") {
			t.Fatalf("%v", r)
		}
	})
	t.Run("a silent first resolver costs one query timeout", func(t *testing.T) {
		silent, err := net.ListenPacket("udp", "127.0.0.1:0") // never read
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
		const try = 400 * time.Millisecond
		o := trusting()
		o.Resolvers = []string{silent.LocalAddr().String(), front.addr}
		o.QueryTimeout = caddy.Duration(try)
		start := time.Now()
		if err := roundTrip(t, "svc.ka.test", o); err != nil {
			t.Fatal(err)
		}
		// One timeout on the silent resolver's probe, then the next
		// resolver answers at once; asking the silent one twice would
		// take at least 2*try.
		if d := time.Since(start); d < try || d >= 2*try {
			t.Fatalf("round trip took %s, want one query timeout (%s) and less than two", d, try)
		}
	})
	t.Run("same verdict as in-process validation", func(t *testing.T) {
		for _, host := range []string{"svc.ka.test", "other.ka.test"} {
			errTrust := roundTrip(t, host, trusting())
			errValidate := roundTrip(t, host, &Options{Resolvers: []string{dnsAddr}, TrustAnchorFile: anchors})
			if (errTrust == nil) != (errValidate == nil) {
				t.Fatalf("%s: trust_resolver %v, validate %v", host, errTrust, errValidate)
			}
		}
	})
}

// TestTrustResolverNeedsLoopback: the AD bit is only believed over a
// channel nobody else can write to.
func TestTrustResolverNeedsLoopback(t *testing.T) {
	for _, tc := range []struct {
		resolvers []string
		ok        bool
	}{
		{[]string{"127.0.0.1"}, true},
		{[]string{"127.0.0.53:53", "[::1]:5353"}, true},
		{[]string{"::ffff:127.0.0.1"}, true},
		{[]string{"127.0.0.1", "192.0.2.53"}, false},
		{[]string{"[2001:db8::53]:53"}, false},
		{[]string{"10.0.0.1"}, false},
	} {
		o := &Options{Resolvers: tc.resolvers, DNSSEC: dnssecTrustResolver}
		_, err := o.newEngine(nil)
		if tc.ok != (err == nil) {
			t.Errorf("%v: %v", tc.resolvers, err)
		}
		if err != nil && !strings.Contains(err.Error(), "must be a loopback address") {
			t.Errorf("%v: %v", tc.resolvers, err)
		}
	}
	if _, err := (&Options{Resolvers: []string{"127.0.0.1"}, DNSSEC: dnssecTrustResolver}).newEngine(time.Now); err == nil {
		t.Error("trust_resolver on another clock accepted")
	}
}

// startADCopier is a forwarder on loopback modelled on dnsmasq with
// proxy-dnssec: it passes every IN query to upstream and hands back the
// answer as it came, AD bit included, and answers CHAOS queries itself,
// servers.bind TXT with its upstream ("address#port queries failed"),
// any other NOTIMP.
func startADCopier(t *testing.T, upstream string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var forwarded atomic.Int32
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		if qq := q.Question[0]; qq.Qclass == dns.ClassCHAOS {
			m := new(dns.Msg)
			m.SetReply(q)
			if qq.Name == "servers.bind." && qq.Qtype == dns.TypeTXT {
				m.Authoritative = true
				host, port, _ := net.SplitHostPort(upstream)
				m.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeTXT, Class: dns.ClassCHAOS},
					Txt: []string{fmt.Sprintf("%s#%s %d 0", host, port, forwarded.Load())}}}
			} else {
				m.Rcode = dns.RcodeNotImplemented
			}
			_ = w.WriteMsg(m)
			return
		}
		forwarded.Add(1)
		c := &dns.Client{Timeout: 2 * time.Second}
		r, _, err := c.Exchange(q, upstream)
		if err != nil {
			return
		}
		_ = w.WriteMsg(r)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

// TestTrustResolverForwarder: the transport refuses a loopback forwarder
// that copies a validating upstream's AD bit (the AD bit crossed the link
// between them unprotected) when the forwarder gives itself away, as
// dnsmasq does with servers.bind; the validator itself is trusted.
func TestTrustResolverForwarder(t *testing.T) {
	up, spki := startKAUpstream(t, false)
	dnsAddr, anchors := kaZone(t, up.port, spki, 300)
	front := startValidatingFront(t, dnsAddr, anchors)
	copier := startADCopier(t, front.addr)

	for _, tc := range []struct {
		name     string
		resolver string
		refused  string // substring of the refusal; "" = accepted
	}{
		{"RFC4035-4.9.3/the validator itself", front.addr, ""},
		{"RFC4035-4.9.3/AD-copying forwarder listing its upstream", copier,
			copier + ` is a forwarder, not a validator: it answered servers.bind. CH TXT with its upstream servers ("` + strings.Replace(front.addr, ":", "#", 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &Options{Resolvers: []string{tc.resolver}, DNSSEC: dnssecTrustResolver, TrustAnchorFile: anchors, Timeout: caddy.Duration(2 * time.Second)}
			tr := provisioned(t, &Transport{DANE: o})
			t.Cleanup(func() { _ = tr.Cleanup() })
			// The lookup is what is tested: a handshake that is reached
			// ends the authentication with this error.
			reached := errors.New("handshake reached")
			_, err := tr.auth.Authenticate(context.Background(), dane.Target{Host: "svc.ka.test", Port: up.port},
				func(context.Context, dane.Peer) error { return reached })
			if tc.refused == "" {
				if !errors.Is(err, reached) {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var r *dane.Refusal
			if !errors.As(err, &r) {
				t.Fatalf("want a refusal, got %v", err)
			}
			if r.Reason != dane.ReasonIndeterminate || r.Status != dnssec.Indeterminate || !strings.Contains(r.Error(), tc.refused) {
				t.Fatalf("reason %q status %s: %v\nwant it to contain %q", r.Reason, r.Status, r, tc.refused)
			}
		})
	}
}
