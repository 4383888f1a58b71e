package dane

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/dnssec"
	"github.com/caddy-dane/caddy-dane/internal/zonekit"
)

// liveHeap is the heap in use by reachable objects: HeapAlloc right after
// two collections.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// memHosts is how many upstream hosts a memory benchmark caches.
const memHosts = 256

// BenchmarkTLSASetMemory reports what one cached upstream TLSA set costs
// (docs/benchmarks.md, Memory), as live heap after a GC, for memHosts
// hosts with one DANE-EE 3 1 1 record each in one signed zone:
//
//   - validated: the validator's Result for the TLSA RRset plus the
//     authenticator's set cache entry (parsed records, its Result view);
//   - set-cache: the set cache entry alone (the validator already holds
//     the results).
func BenchmarkTLSASetMemory(b *testing.B) {
	parent, child := zonekit.NewZone("test."), zonekit.NewZone("example.test.")
	for i := range memHosts + 1 { // h<memHosts> warms the zone keys
		sum := sha256.Sum256(fmt.Appendf(nil, "key %d", i))
		child.MustAdd(fmt.Sprintf("_443._tcp.h%d.example.test. 3600 IN TLSA 3 1 1 %s", i, hex.EncodeToString(sum[:])))
	}
	if err := child.Sign(now.Add(-24*time.Hour), now.Add(24*time.Hour)); err != nil {
		b.Fatal(err)
	}
	if err := zonekit.Delegate(parent, child); err != nil {
		b.Fatal(err)
	}
	if err := parent.Sign(now.Add(-24*time.Hour), now.Add(24*time.Hour)); err != nil {
		b.Fatal(err)
	}
	srv := zonekit.NewServer(parent, child)
	var anchors []dns.RR
	for _, ds := range parent.DS() {
		anchors = append(anchors, ds)
	}
	clock := func() time.Time { return now }
	newValidator := func() *dnssec.Validator {
		v, err := dnssec.New(dnssec.Config{Exchanger: srv, Anchors: anchors, Now: clock})
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	// fill looks every host up and returns the live heap it added.
	fill := func(a *Authenticator) int64 {
		// The zone keys are cached first: they are not per host.
		if _, err := a.lookup(context.Background(), fmt.Sprintf("h%d.example.test", memHosts), 443); err != nil {
			b.Fatal(err)
		}
		before := liveHeap()
		for i := range memHosts {
			if _, err := a.lookup(context.Background(), fmt.Sprintf("h%d.example.test", i), 443); err != nil {
				b.Fatal(err)
			}
		}
		return liveHeap() - before
	}
	b.Run("validated", func(b *testing.B) {
		var total int64
		for b.Loop() {
			a := &Authenticator{Prover: newValidator(), Now: clock}
			total += fill(a)
			runtime.KeepAlive(a)
		}
		b.ReportMetric(float64(total)/float64(b.N)/memHosts, "B/set")
	})
	b.Run("set-cache", func(b *testing.B) {
		var total int64
		for b.Loop() {
			v := newValidator()
			fill(&Authenticator{Prover: v, Now: clock}) // the validator's results
			a := &Authenticator{Prover: v, Now: clock}
			total += fill(a)
			runtime.KeepAlive(a)
		}
		b.ReportMetric(float64(total)/float64(b.N)/memHosts, "B/set")
	})
}
