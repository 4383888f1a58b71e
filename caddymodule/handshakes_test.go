package caddymodule

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/caddy-dane/caddy-dane/internal/pkikit"
)

// countingUpstream is an HTTPS server that counts the TCP connections it
// accepts and the requests it serves.
type countingUpstream struct {
	addr     string
	port     int
	conns    atomic.Int64
	requests atomic.Int64
	h2       atomic.Int64 // requests over HTTP/2
	inflight atomic.Int64 // requests being served now
	most     atomic.Int64 // most requests served at once
	hold     time.Duration
}

func startCountingUpstream(t *testing.T, leaf *pkikit.Leaf) *countingUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &countingUpstream{addr: ln.Addr().String(), port: ln.Addr().(*net.TCPAddr).Port}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u.requests.Add(1)
			n := u.inflight.Add(1)
			defer u.inflight.Add(-1)
			for m := u.most.Load(); n > m && !u.most.CompareAndSwap(m, n); m = u.most.Load() {
			}
			time.Sleep(u.hold)
			if r.ProtoMajor == 2 {
				u.h2.Add(1)
			}
			fmt.Fprintln(w, "ok")
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				u.conns.Add(1)
			}
		},
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{leaf.TLS()}},
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close() })
	return u
}

// load sends workers×each requests through rt concurrently, as the reverse
// proxy does, and returns how many failed (with the first error).
func load(rt http.RoundTripper, u *countingUpstream, host string, workers, each int) (int64, error) {
	di := reverseproxy.DialInfo{Network: "tcp", Address: u.addr, Host: host, Port: strconv.Itoa(u.port)}
	ctx := context.WithValue(context.Background(), caddy.CtxKey("reverse_proxy.dial_info"), di)
	var failed atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+u.addr+"/", nil)
				resp, err := rt.RoundTrip(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil {
					failed.Add(1)
					first.CompareAndSwap(nil, err)
				}
			}
		})
	}
	wg.Wait()
	err, _ := first.Load().(error)
	return failed.Load(), err
}

// TestOneHandshakePerRequest (issue 14): with keep-alive off, every
// proxied request costs exactly one upstream connection and handshake,
// over HTTP/1.1 and over HTTP/2, under concurrent load. Stock Caddy's
// `transport http` runs the same load for comparison (logged): over HTTP/2
// it wastes some, because net/http's HTTP/2 pool closes a new connection
// whose upgrade overlaps another for the same host and the request dials
// again; the DANE transport gives each single-use connection a pool of its
// own.
func TestOneHandshakePerRequest(t *testing.T) {
	const name = "svc.hs.test"
	root, err := pkikit.NewRoot("root")
	if err != nil {
		t.Fatal(err)
	}
	inter, err := root.NewIntermediate("inter")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := inter.NewLeaf(name)
	if err != nil {
		t.Fatal(err)
	}
	rootPEM := filepath.Join(t.TempDir(), "root.pem")
	if err := pkikit.WritePEM(rootPEM, root.Cert); err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 40
	for _, versions := range [][]string{{"1.1"}, {"1.1", "2"}} {
		for _, side := range []string{"stock", "dane"} {
			t.Run(strings.Join(versions, "+")+"/"+side, func(t *testing.T) {
				u := startCountingUpstream(t, leaf)
				v, _ := json.Marshal(versions)
				var rt http.RoundTripper
				if side == "stock" {
					tr := new(reverseproxy.HTTPTransport)
					raw := `{"versions":` + string(v) + `,"keep_alive":{"enabled":false},"tls":{"server_name":"` + name + `","ca":{"provider":"file","pem_files":["` + rootPEM + `"]}}}`
					if err := json.Unmarshal([]byte(raw), tr); err != nil {
						t.Fatal(err)
					}
					ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
					t.Cleanup(cancel)
					if err := tr.Provision(ctx); err != nil {
						t.Fatal(err)
					}
					rt = tr
				} else {
					_, dnsAddr, anchors := serveZone(t, "hs.test.", fmt.Sprintf("_%d._tcp.%s. 300 IN TLSA %s", u.port, name, leaf.TLSA311()))
					off := false
					rt = provisioned(t, &Transport{
						HTTPTransport: reverseproxy.HTTPTransport{Versions: versions, KeepAlive: &reverseproxy.KeepAlive{Enabled: &off}},
						DANE:          &Options{Resolvers: []string{dnsAddr}, TrustAnchorFile: anchors},
					})
				}
				failed, err := load(rt, u, name, workers, each)
				if failed > 0 {
					t.Fatalf("%d requests failed: %v", failed, err)
				}
				reqs, conns := u.requests.Load(), u.conns.Load()
				t.Logf("%d requests (%d over HTTP/2), %d upstream connections (%.3f per request)", reqs, u.h2.Load(), conns, float64(conns)/float64(reqs))
				if reqs != workers*each {
					t.Fatalf("the upstream served %d requests, want %d", reqs, workers*each)
				}
				if len(versions) == 2 && u.h2.Load() != reqs {
					t.Errorf("%d of %d requests over HTTP/2: the HTTP/2 path was not exercised", u.h2.Load(), reqs)
				}
				if side == "dane" && conns != reqs {
					t.Errorf("%d upstream connections for %d requests with keep-alive off: %d handshakes wasted", conns, reqs, conns-reqs)
				}
			})
		}
	}
}

// TestKeepAliveOffHonoursMaxConnsPerHost: with max_conns_per_host, the
// single-use connections of an identity share one pool again, so that the
// limit still counts them.
func TestKeepAliveOffHonoursMaxConnsPerHost(t *testing.T) {
	const name, limit = "svc.hs.test", 2
	leaf, err := pkikit.SelfSigned(nil, name)
	if err != nil {
		t.Fatal(err)
	}
	u := startCountingUpstream(t, leaf)
	u.hold = 5 * time.Millisecond // requests overlap: 8 at once without the limit
	_, dnsAddr, anchors := serveZone(t, "hs.test.", fmt.Sprintf("_%d._tcp.%s. 300 IN TLSA %s", u.port, name, leaf.TLSA311()))
	off := false
	tr := provisioned(t, &Transport{
		HTTPTransport: reverseproxy.HTTPTransport{Versions: []string{"1.1"}, MaxConnsPerHost: limit, KeepAlive: &reverseproxy.KeepAlive{Enabled: &off}},
		DANE:          &Options{Resolvers: []string{dnsAddr}, TrustAnchorFile: anchors},
	})
	if tr.singleUse {
		t.Fatal("single-use pools with max_conns_per_host set: the limit would count nothing")
	}
	if failed, err := load(tr, u, name, 8, 20); failed > 0 {
		t.Fatalf("%d requests failed: %v", failed, err)
	}
	// With keep-alive off a connection carries one request: requests
	// served at once are connections open at once.
	if m := u.most.Load(); m > limit {
		t.Errorf("%d upstream requests (connections) at once, max_conns_per_host %d", m, limit)
	}
}
