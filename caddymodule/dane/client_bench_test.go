package dane

import (
	"context"
	"crypto/x509"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/dnssec"
	"github.com/caddy-dane/caddy-dane/internal/pkikit"
)

// Benchmarks of client verification: the cost per handshake with a warm
// cache and a cold one, and a flood of handshakes with random client
// names under an allowed suffix (the worst case: each needs a lookup).

func benchClient(b *testing.B) (*clientFixture, []*x509.Certificate) {
	b.Helper()
	l, err := pkikit.SelfSignedClient("good.clients.example.test")
	if err != nil {
		b.Fatal(err)
	}
	return newClientFixture(b, "good.clients 300 IN TLSA "+l.TLSA311()), []*x509.Certificate{l.Cert}
}

// BenchmarkVerifyClientWarm: per handshake, TLSA set cached: name
// extraction, allow-list, one map read, the 3 1 1 match.
func BenchmarkVerifyClientWarm(b *testing.B) {
	f, chain := benchClient(b)
	ctx := context.Background()
	if _, err := f.auth.VerifyClient(ctx, clientPolicy, chain); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.auth.VerifyClient(ctx, clientPolicy, chain); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyClientCold: per handshake, nothing cached (a new
// validator each time): the whole chain of trust from the anchor is
// queried and validated, in process, without network latency.
func BenchmarkVerifyClientCold(b *testing.B) {
	f, chain := benchClient(b)
	ctx := context.Background()
	b.ReportAllocs()
	q0 := f.queries.Load()
	for b.Loop() {
		b.StopTimer()
		v, err := dnssec.New(dnssec.Config{Exchanger: dnssec.ExchangeFunc(func(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
			f.queries.Add(1)
			return f.srv.Exchange(ctx, q)
		}), Anchors: f.anchors})
		if err != nil {
			b.Fatal(err)
		}
		a := &Authenticator{Prover: v}
		b.StartTimer()
		if _, err := a.VerifyClient(ctx, clientPolicy, chain); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(f.queries.Load()-q0)/float64(b.N), "queries/op")
}

// BenchmarkClientFlood: handshakes with fresh random names under the
// allowed suffix, 64 at a time, against a resolver that takes 2 ms per
// answer. Reported: queries per handshake and per second (bounded by the
// lookup rate, 100/s by default, plus the burst), the share refused as
// busy (no slot or no token: not queued), and the heap retained after the
// flood (the remembered refusals and the validator's cache, both bounded).
func BenchmarkClientFlood(b *testing.B) {
	f, _ := benchClient(b)
	f.delay = 2 * time.Millisecond
	ctx := context.Background()
	var seq, busy atomic.Int64
	// One certificate per name would dominate the cost; the names differ
	// in the SAN only, the key is shared.
	key, err := pkikit.NewKey()
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	q0 := f.queries.Load()
	b.SetParallelism(32) // 64 goroutines on 2 cores
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			leaf := &x509.Certificate{DNSNames: []string{fmt.Sprintf("r%d-%x.clients.example.test", n, n*2654435761)}, PublicKey: &key.PublicKey}
			_, err := f.auth.VerifyClient(ctx, clientPolicy, []*x509.Certificate{leaf})
			if r := RefusalOf(err); r.Reason == ReasonBusy {
				busy.Add(1)
			}
		}
	})
	b.StopTimer()
	elapsed := time.Since(start)
	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(f.queries.Load()-q0)/float64(b.N), "queries/op")
	b.ReportMetric(float64(f.queries.Load()-q0)/elapsed.Seconds(), "queries/s")
	b.ReportMetric(float64(busy.Load())/float64(b.N), "busy/op")
	b.ReportMetric(float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)), "retained-B")
	c := f.auth.clientInit()
	c.mu.Lock()
	b.ReportMetric(float64(len(c.neg)), "remembered")
	c.mu.Unlock()
}
