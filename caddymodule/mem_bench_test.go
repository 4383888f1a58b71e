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
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"

	"github.com/caddy-dane/caddy-dane/internal/pkikit"
	"github.com/caddy-dane/caddy-dane/internal/zonekit"
)

// memStats is the live heap (HeapAlloc after two collections) and the
// goroutine stacks in use.
func memStats() (heap, stack int64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc), int64(m.StackInuse)
}

// memUpstreams is how many upstreams BenchmarkUpstreamMemory proxies to.
const memUpstreams = 64

// BenchmarkUpstreamMemory reports what each upstream costs a transport
// (docs/benchmarks.md, Memory): memUpstreams HTTPS upstreams on loopback
// (one port each, HTTP/2, ECDSA P-256 leaf and intermediate), one request
// to each, which leaves one idle keep-alive connection per upstream in
// the pool. Reported per upstream: the live heap (B/upstream) and the
// goroutine stacks (stack-B/upstream) added, for stock Caddy's
// `transport http` with `tls_trust_pool file` and for `transport dane`
// (DANE-EE 3 1 1 per port, in-process validator; its TLSA set per
// host:port and the validator's result are part of the upstream's cost).
// The upstream servers run in this process and cost both transports the
// same: the difference between the two is what DANE costs per upstream.
func BenchmarkUpstreamMemory(b *testing.B) {
	// The last port warms what all upstreams share (zone keys, TLS and
	// HTTP/2 machinery) before measuring.
	ports, get, sides := memUpstreamSetup(b, memUpstreams+1)
	for _, side := range sides {
		b.Run(side.name, func(b *testing.B) {
			var heap, stack int64
			for b.Loop() {
				rt := side.new()
				if err := json.Unmarshal([]byte(side.cfg), rt); err != nil {
					b.Fatal(err)
				}
				ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
				if err := rt.Provision(ctx); err != nil {
					b.Fatal(err)
				}
				if t, ok := rt.(*Transport); ok {
					t.logger = zap.NewNop() // Provision set the context's; its debug entries would measure the console
				}
				get(b, rt, ports[memUpstreams])
				h0, s0 := memStats()
				for _, p := range ports[:memUpstreams] {
					get(b, rt, p)
				}
				h1, s1 := memStats()
				heap += h1 - h0
				stack += s1 - s0
				closeIdle(rt)
				cancel()
				time.Sleep(100 * time.Millisecond) // let the servers see the connections close
			}
			b.ReportMetric(float64(heap)/float64(b.N)/memUpstreams, "B/upstream")
			b.ReportMetric(float64(stack)/float64(b.N)/memUpstreams, "stack-B/upstream")
		})
	}
}

func closeIdle(rt http.RoundTripper) {
	switch t := rt.(type) {
	case *reverseproxy.HTTPTransport:
		t.Transport.CloseIdleConnections()
	case *Transport:
		t.Transport.CloseIdleConnections()
	}
}

// BenchmarkProvisionMemory is the fixed cost of one transport: the live
// heap that provisioning it through a caddy.Context adds (Caddy provisions
// one transport per reverse_proxy handler), for stock `transport http`
// with `tls_trust_pool file` and `transport dane` with its defaults (the
// built-in root anchors, resolvers given). Nothing is looked up yet.
func BenchmarkProvisionMemory(b *testing.B) {
	root, err := pkikit.NewRoot("root")
	if err != nil {
		b.Fatal(err)
	}
	rootPEM := filepath.Join(b.TempDir(), "root.pem")
	if err := pkikit.WritePEM(rootPEM, root.Cert); err != nil {
		b.Fatal(err)
	}
	for _, side := range []struct {
		name, cfg string
		new       func() caddy.Provisioner
	}{
		{"stock-pkix", `{"tls":{"server_name":"api.bench.test","ca":{"provider":"file","pem_files":["` + rootPEM + `"]}}}`,
			func() caddy.Provisioner { return new(reverseproxy.HTTPTransport) }},
		{"dane", `{"dane":{"resolvers":["127.0.0.1:53"]},"tls":{"server_name":"api.bench.test"}}`,
			func() caddy.Provisioner { return new(Transport) }},
	} {
		b.Run(side.name, func(b *testing.B) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			// One transport first: what every later one shares (metrics
			// collectors, lazily built tables) is not a per-transport cost.
			// It is reported on its own: B/first-transport.
			keep := []caddy.Provisioner{side.new()}
			if err := json.Unmarshal([]byte(side.cfg), keep[0]); err != nil {
				b.Fatal(err)
			}
			f0, _ := memStats()
			if err := keep[0].Provision(ctx); err != nil {
				b.Fatal(err)
			}
			f1, _ := memStats()
			var heap int64
			for b.Loop() {
				rt := side.new()
				if err := json.Unmarshal([]byte(side.cfg), rt); err != nil {
					b.Fatal(err)
				}
				h0, _ := memStats()
				if err := rt.Provision(ctx); err != nil {
					b.Fatal(err)
				}
				h1, _ := memStats()
				heap += h1 - h0
				keep = append(keep, rt)
			}
			runtime.KeepAlive(keep)
			b.ReportMetric(float64(heap)/float64(b.N), "B/transport")
			b.ReportMetric(float64(f1-f0), "B/first-transport")
		})
	}
}

// memSide is one transport under test: its JSON config and constructor.
type memSide struct {
	name string
	cfg  string
	new  func() memTransport
}

type memTransport interface {
	caddy.Provisioner
	http.RoundTripper
}

// memUpstreamSetup starts n HTTPS upstreams on loopback (one port each,
// HTTP/2, ECDSA P-256 leaf and intermediate for api.bench.test), a DNS
// server with a signed TLSA 3 1 1 record per port, and returns the ports,
// a function making one proxied GET to a port the way reverse_proxy does
// (dial info in the context), and the two transports' configs.
func memUpstreamSetup(b *testing.B, n int) ([]int, func(*testing.B, http.RoundTripper, int), []memSide) {
	const name = "api.bench.test"
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
	rootPEM := filepath.Join(b.TempDir(), "root.pem")
	if err := pkikit.WritePEM(rootPEM, root.Cert); err != nil {
		b.Fatal(err)
	}
	var ports []int
	z := zonekit.NewZone("bench.test.")
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{
			Handler:   http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }),
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{leaf.TLS()}},
		}
		go func() { _ = srv.ServeTLS(ln, "", "") }()
		b.Cleanup(func() { srv.Close() })
		port := ln.Addr().(*net.TCPAddr).Port
		ports = append(ports, port)
		z.MustAdd("_" + strconv.Itoa(port) + "._tcp." + name + ". 3600 IN TLSA " + leaf.TLSA311())
	}
	if err := z.Sign(time.Now().Add(-time.Hour), time.Now().Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	dnsSrv := zonekit.NewServer(z)
	dnsAddr, err := dnsSrv.ListenAndServe()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { dnsSrv.Close() })
	anchors := filepath.Join(b.TempDir(), "anchors.ds")
	if err := os.WriteFile(anchors, []byte(z.DS()[0].String()+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}

	get := func(b *testing.B, rt http.RoundTripper, port int) {
		addr := "127.0.0.1:" + strconv.Itoa(port)
		di := reverseproxy.DialInfo{Network: "tcp", Address: addr, Host: "127.0.0.1", Port: strconv.Itoa(port)}
		ctx := context.WithValue(context.Background(), caddy.CtxKey("reverse_proxy.dial_info"), di)
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+addr+"/", nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	sides := []memSide{
		{"stock-pkix", `{"tls":{"server_name":"` + name + `","ca":{"provider":"file","pem_files":["` + rootPEM + `"]}}}`,
			func() memTransport { return new(reverseproxy.HTTPTransport) }},
		{"dane-ee", `{"dane":{"resolvers":["` + dnsAddr + `"],"trust_anchor_file":"` + anchors + `"},"tls":{"server_name":"` + name + `"}}`,
			func() memTransport { return new(Transport) }},
	}
	return ports, get, sides
}

// BenchmarkRequestKeepAlive is one proxied request over a warm HTTP/2
// keep-alive connection through each transport's RoundTrip, with B/op and
// allocs/op: the garbage a request leaves (for dane: the identity binding
// and the request copy that carries it).
// The in-process upstream's allocations are in both figures alike.
func BenchmarkRequestKeepAlive(b *testing.B) {
	ports, get, sides := memUpstreamSetup(b, 1)
	for _, side := range sides {
		b.Run(side.name, func(b *testing.B) {
			rt := side.new()
			if err := json.Unmarshal([]byte(side.cfg), rt); err != nil {
				b.Fatal(err)
			}
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			if err := rt.Provision(ctx); err != nil {
				b.Fatal(err)
			}
			if t, ok := rt.(*Transport); ok {
				t.logger = zap.NewNop()
			}
			defer closeIdle(rt)
			get(b, rt, ports[0])
			b.ReportAllocs()
			for b.Loop() {
				get(b, rt, ports[0])
			}
		})
	}
}
