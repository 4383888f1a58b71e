package caddymodule

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"

	"github.com/caddy-dane/caddy-dane/internal/pkikit"
	"github.com/caddy-dane/caddy-dane/internal/zonekit"
)

// benchUpstream is a TLS server on loopback presenting an ECDSA P-256 leaf
// and its intermediate; it completes handshakes and closes.
type benchUpstream struct {
	port    int
	rootPEM string
	tlsa    string // "3 1 1 <hex>" of the leaf's key
	greet   bool   // write one byte after the handshake
}

func startBenchUpstream(b *testing.B, name string) *benchUpstream {
	b.Helper()
	root, err := pkikit.NewRoot("root")
	if err != nil {
		b.Fatal(err)
	}
	inter, err := root.NewIntermediate("inter")
	if err != nil {
		b.Fatal(err)
	}
	leaf, err := inter.NewLeaf(name)
	if err != nil {
		b.Fatal(err)
	}
	u := &benchUpstream{rootPEM: filepath.Join(b.TempDir(), "root.pem"), tlsa: leaf.TLSA311()}
	if err := pkikit.WritePEM(u.rootPEM, root.Cert); err != nil {
		b.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leaf.TLS()}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	u.port = ln.Addr().(*net.TCPAddr).Port
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				if c.(*tls.Conn).Handshake() == nil && u.greet {
					_, _ = c.Write([]byte{'!'})
				}
				c.Close()
			}()
		}
	}()
	return u
}

func benchProvision(b *testing.B, raw string, into caddy.Provisioner) {
	b.Helper()
	if err := json.Unmarshal([]byte(raw), into); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)
	if err := into.Provision(ctx); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkUpstreamHandshake is one new upstream TLS connection (TCP dial
// + handshake + verification) the way each transport makes it: stock
// Caddy's `transport http` verifying leaf+intermediate by PKIX against
// `tls_trust_pool file`, and `transport dane` with a warm TLSA cache and a
// DANE-EE 3 1 1 record. The server's side of the handshake runs in the
// same process, so the ratio, not the absolute time, is what carries over.
func BenchmarkUpstreamHandshake(b *testing.B) {
	const name = "api.bench.test"
	up := startBenchUpstream(b, name)
	addr := "127.0.0.1:" + strconv.Itoa(up.port)

	b.Run("stock-pkix", func(b *testing.B) {
		var tr reverseproxy.HTTPTransport
		benchProvision(b, `{"tls":{"server_name":"`+name+`","ca":{"provider":"file","pem_files":["`+up.rootPEM+`"]}}}`, &tr)
		b.ReportAllocs()
		for b.Loop() {
			// What net/http does for an https request without a DialTLS hook.
			conn, err := tr.Transport.DialContext(context.Background(), "tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			cfg := tr.Transport.TLSClientConfig.Clone()
			tc := tls.Client(conn, cfg)
			if err := tc.HandshakeContext(context.Background()); err != nil {
				b.Fatal(err)
			}
			tc.Close()
		}
	})

	b.Run("dane-ee", func(b *testing.B) {
		dial := benchDANEDialer(b, up, name, addr, `"disable_session_resumption":true`)
		dial().Close() // warm the TLSA cache
		b.ReportAllocs()
		for b.Loop() {
			dial().Close()
		}
	})
}

// benchDANEDialer is a provisioned `transport dane` (extra: more JSON
// fields of its dane object) for up, whose TLSA record it serves from a
// signed zone in process, and a function that makes one new connection
// the way a request bound to its identity does.
func benchDANEDialer(b *testing.B, up *benchUpstream, name, addr, extra string) func() net.Conn {
	b.Helper()
	z := zonekit.NewZone("bench.test.")
	z.MustAdd("_" + strconv.Itoa(up.port) + "._tcp." + name + ". 3600 IN TLSA " + up.tlsa)
	if err := z.Sign(time.Now().Add(-time.Hour), time.Now().Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	srv := zonekit.NewServer(z)
	dnsAddr, err := srv.ListenAndServe()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	anchors := filepath.Join(b.TempDir(), "anchors.ds")
	if err := os.WriteFile(anchors, []byte(z.DS()[0].String()+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	if extra != "" {
		extra = "," + extra
	}
	tr := new(Transport)
	benchProvision(b, `{"dane":{"resolvers":["`+dnsAddr+`"],"trust_anchor_file":"`+anchors+`"`+extra+`},"tls":{"server_name":"`+name+`"}}`, tr)
	tr.logger = zap.NewNop() // the per-connection debug entry would measure the console
	di := reverseproxy.DialInfo{Network: "tcp", Address: addr, Host: "127.0.0.1", Port: strconv.Itoa(up.port)}
	req, _ := http.NewRequestWithContext(context.WithValue(context.Background(), caddy.CtxKey("reverse_proxy.dial_info"), di), "GET", "https://"+addr+"/", nil)
	bound, err := tr.bind(req) // the dial of a request bound to its identity, as RoundTrip makes it
	if err != nil {
		b.Fatal(err)
	}
	ctx, poolAddr := bound.Context(), bound.URL.Host+":443"
	return func() net.Conn {
		conn, err := tr.dialTLS(ctx, "tcp", poolAddr)
		if err != nil {
			b.Fatal(err)
		}
		return conn
	}
}

// BenchmarkUpstreamResumption is one new upstream connection per
// iteration, the server sending one byte after its handshake and the
// client reading it (as a proxied response does, which is also when a TLS
// 1.3 client receives the session ticket): stock Caddy (PKIX, no session
// cache), `transport dane` with resumption off (a full handshake each
// time) and on (resumed, DANE re-checked against the cached TLSA RRset).
func BenchmarkUpstreamResumption(b *testing.B) {
	const name = "api.bench.test"
	up := startBenchUpstream(b, name)
	up.greet = true
	addr := "127.0.0.1:" + strconv.Itoa(up.port)
	read := func(b *testing.B, c net.Conn) {
		var one [1]byte
		if _, err := io.ReadFull(c, one[:]); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
	b.Run("stock-pkix", func(b *testing.B) {
		var tr reverseproxy.HTTPTransport
		benchProvision(b, `{"tls":{"server_name":"`+name+`","ca":{"provider":"file","pem_files":["`+up.rootPEM+`"]}}}`, &tr)
		b.ReportAllocs()
		for b.Loop() {
			conn, err := tr.Transport.DialContext(context.Background(), "tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			tc := tls.Client(conn, tr.Transport.TLSClientConfig.Clone())
			if err := tc.HandshakeContext(context.Background()); err != nil {
				b.Fatal(err)
			}
			read(b, tc)
		}
	})
	for _, sub := range []struct{ name, extra string }{
		{"dane-ee-full", `"disable_session_resumption":true`},
		{"dane-ee-resumed", ""},
	} {
		b.Run(sub.name, func(b *testing.B) {
			dial := benchDANEDialer(b, up, name, addr, sub.extra)
			read(b, dial()) // warm the TLSA cache (and get a session)
			b.ReportAllocs()
			resumed := 0
			for b.Loop() {
				c := dial()
				if c.(*tls.Conn).ConnectionState().DidResume {
					resumed++
				}
				read(b, c)
			}
			b.ReportMetric(float64(resumed)/float64(b.N), "resumed/op")
		})
	}
}

// BenchmarkBind is what binding a request to its identity costs on every
// request (keep-alive path included): the target, its identity and pool
// key, and the request copy that carries them. Static name, and a name
// from a placeholder.
func BenchmarkBind(b *testing.B) {
	for _, name := range []string{"api.bench.test", "{tenant}"} {
		b.Run(strings.Trim(name, "{}"), func(b *testing.B) {
			tr := new(Transport)
			benchProvision(b, `{"dane":{"resolvers":["127.0.0.1:53"],"name":"`+name+`"}}`, tr)
			repl := caddy.NewReplacer()
			repl.Set("tenant", "a.bench.test")
			di := reverseproxy.DialInfo{Network: "tcp", Address: "192.0.2.1:443", Host: "192.0.2.1", Port: "443"}
			ctx := context.WithValue(context.WithValue(context.Background(), caddy.CtxKey("reverse_proxy.dial_info"), di), caddy.ReplacerCtxKey, repl)
			req, _ := http.NewRequestWithContext(ctx, "GET", "https://192.0.2.1:443/", nil)
			req.Host = "app.example"
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tr.bind(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
