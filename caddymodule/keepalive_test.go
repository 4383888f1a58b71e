package caddymodule

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/caddy-dane/caddy-dane/internal/pkikit"
)

// kaUpstream is a TLS server that records, for every request, how old the
// connection carrying it was.
type kaUpstream struct {
	addr string
	port int
	srv  *http.Server

	mu    sync.Mutex
	conns map[net.Conn]*kaConn
}

type kaConn struct {
	born     time.Time
	requests []time.Time
}

type connKey struct{}

func startKAUpstream(t *testing.T, h2 bool) (*kaUpstream, []byte) {
	t.Helper()
	cert, err := pkikit.SelfSigned(nil, "svc.ka.test")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.Cert.RawSubjectPublicKeyInfo)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &kaUpstream{addr: ln.Addr().String(), port: ln.Addr().(*net.TCPAddr).Port, conns: map[net.Conn]*kaConn{}}
	protos := []string{"http/1.1"}
	if h2 {
		protos = []string{"h2", "http/1.1"}
	}
	u.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c := r.Context().Value(connKey{}).(net.Conn)
			u.mu.Lock()
			u.conns[c].requests = append(u.conns[c].requests, time.Now())
			u.mu.Unlock()
			time.Sleep(2 * time.Millisecond) // keep connections busy now and then
			fmt.Fprintln(w, "ok", r.Proto)
		}),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			u.mu.Lock()
			u.conns[c] = &kaConn{born: time.Now()}
			u.mu.Unlock()
			return context.WithValue(ctx, connKey{}, c)
		},
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert.TLS()},
			NextProtos:   protos,
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() { _ = u.srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { u.srv.Close() })
	return u, sum[:]
}

// kaZone serves a signed zone with the upstream's TLSA record at ttl and
// returns the resolver address and a trust anchor file.
func kaZone(t *testing.T, port int, spki []byte, ttl int) (string, string) {
	t.Helper()
	_, addr, anchors := serveZone(t, "ka.test.", fmt.Sprintf("_%d._tcp.svc.ka.test. %d IN TLSA 3 1 1 %s", port, ttl, hex.EncodeToString(spki)))
	return addr, anchors
}

// TestKeepAliveCappedAtTLSATTL: under steady concurrent load, no upstream
// connection outlives the TLSA result it was verified against by more than
// the requests already handed to it, and no request fails because of the
// cap. TLSA TTL 1s, 2.6s of load: at least three generations of
// connections.
func TestKeepAliveCappedAtTLSATTL(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for seconds")
	}
	for _, version := range []string{"1.1", "2"} {
		t.Run("HTTP/"+version, func(t *testing.T) {
			const (
				ttl     = time.Second
				workers = 4
				runFor  = 2600 * time.Millisecond
			)
			up, spki := startKAUpstream(t, version == "2")
			dnsAddr, anchors := kaZone(t, up.port, spki, int(ttl/time.Second))
			tr := provisioned(t, &Transport{
				HTTPTransport: reverseproxy.HTTPTransport{Versions: []string{version}},
				DANE:          &Options{Resolvers: []string{dnsAddr}, TrustAnchorFile: anchors, Timeout: caddy.Duration(2 * time.Second)},
			})
			t.Cleanup(func() { _ = tr.Cleanup() })
			di := reverseproxy.DialInfo{Network: "tcp", Address: up.addr, Host: "svc.ka.test", Port: strconv.Itoa(up.port)}
			ctx := context.WithValue(context.Background(), caddy.CtxKey("reverse_proxy.dial_info"), di)

			var ok, failed atomic.Int64
			var firstErr atomic.Value
			deadline := time.Now().Add(runFor)
			var wg sync.WaitGroup
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Now().Before(deadline) {
						req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+up.addr+"/", nil)
						resp, err := tr.RoundTrip(req)
						if err != nil {
							failed.Add(1)
							firstErr.CompareAndSwap(nil, err)
							continue
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 {
							failed.Add(1)
							firstErr.CompareAndSwap(nil, fmt.Errorf("status %d", resp.StatusCode))
							continue
						}
						ok.Add(1)
					}
				}()
			}
			wg.Wait()
			if n := failed.Load(); n > 0 {
				t.Fatalf("%d of %d requests failed; first: %v", n, n+ok.Load(), firstErr.Load())
			}

			up.mu.Lock()
			defer up.mu.Unlock()
			used, late := 0, 0
			var oldest time.Duration
			for _, c := range up.conns {
				if len(c.requests) == 0 {
					continue
				}
				used++
				lateHere := 0
				for _, at := range c.requests {
					age := at.Sub(c.born)
					oldest = max(oldest, age)
					// The cap counts from the lookup, just before the
					// dial: a little slack for the handshake.
					if age > ttl+50*time.Millisecond {
						lateHere++
					}
				}
				if lateHere > workers {
					t.Errorf("a connection carried %d requests after its TLSA result expired (at most %d may have been handed to it)", lateHere, workers)
				}
				late += lateHere
			}
			t.Logf("%d requests, %d connections, %d requests after a cap, oldest connection at a request %v",
				ok.Load(), used, late, oldest.Round(time.Millisecond))
			if used < 3 {
				t.Errorf("%d connections over %v with a %v TLSA TTL: connections were not capped", used, runFor, ttl)
			}
			if oldest > ttl+500*time.Millisecond {
				t.Errorf("a request arrived on a connection %v old, TLSA TTL %v", oldest, ttl)
			}
			if tr.keepAlive.pastCap.Load() < 0 {
				t.Errorf("pastCap went negative: %d", tr.keepAlive.pastCap.Load())
			}
		})
	}
}
