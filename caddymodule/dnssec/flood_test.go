package dnssec

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestFloodOfDistinctNamesStaysBounded: a flood of lookups for distinct
// random names (what an attacker who controls request hosts, or a dynamic
// upstream source gone wrong, can cause) must not grow the validator past
// its cache bound, and must leave no singleflight entries behind. The
// cache sizes are read directly; the singleflight table has no size
// accessor, so the heap is measured instead: it must not keep growing
// once the cache is full.
func TestFloodOfDistinctNamesStaysBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("floods the validator for seconds")
	}
	const (
		cacheSize = 1000
		maxNames  = 50000
		budget    = 4 * time.Second // stop earlier on slow machines (-race)
		workers   = 16
		hosts     = 3 * cacheSize // existing names: Secure answers that overflow the cache
	)
	tr := newTree(t, hooks{beforeDelegate: func(tr *tree) {
		for i := range hosts {
			tr.zone.MustAdd(fmt.Sprintf("_443._tcp.h%d.example.test. 300 IN TLSA %s", i, tlsaData))
		}
	}})
	clk := newClock()
	v, err := New(Config{Exchanger: tr.srv, Anchors: dsAnchors(tr.root), Now: clk.Now, CacheSize: cacheSize})
	must(t, err)

	// Negative answers may end Indeterminate (kept in the bad cache) or
	// Secure (denial proven, good cache): either way within bounds.
	var done atomic.Int64
	var secure, other atomic.Int64
	heapAt := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	flood := func(from, to int64) {
		var next atomic.Int64
		next.Store(from)
		deadline := time.Now().Add(budget / 2)
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					i := next.Add(1) - 1
					if i >= to {
						return
					}
					// A third existing names (Secure, three times as many
					// as the cache holds), a third random names under the
					// wildcard, a third random names that do not exist;
					// every fourth lookup asked twice at once
					// (singleflight).
					var name string
					switch i % 3 {
					case 0:
						name = fmt.Sprintf("_443._tcp.h%d.example.test.", rand.IntN(hosts))
					case 1:
						name = fmt.Sprintf("_443._tcp.n%d-%x.wild.example.test.", i, rand.Uint64())
					default:
						name = fmt.Sprintf("_443._tcp.n%d-%x.example.test.", i, rand.Uint64())
					}
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					if i%4 == 0 {
						var pair sync.WaitGroup
						pair.Add(1)
						go func() { defer pair.Done(); v.Lookup(ctx, name, dns.TypeTLSA) }()
						defer pair.Wait()
					}
					r := v.Lookup(ctx, name, dns.TypeTLSA)
					cancel()
					if r.Status == Secure {
						secure.Add(1)
					} else {
						other.Add(1)
					}
					done.Add(1)
				}
			}()
		}
		wg.Wait()
	}

	flood(0, maxNames/2)
	half := done.Load()
	if g, b := v.good.len(), v.bad.len(); g > cacheSize || b > max(cacheSize/10, 1) {
		t.Fatalf("after %d names: cache holds %d good and %d bad entries, bound %d/%d", half, g, b, cacheSize, cacheSize/10)
	}
	heapHalf := heapAt()
	flood(maxNames/2, maxNames)
	total := done.Load()
	heapEnd := heapAt()

	t.Logf("%d lookups (%d secure, %d other), cache %d good + %d bad, heap %.1f MB at half, %.1f MB at end",
		total, secure.Load(), other.Load(), v.good.len(), v.bad.len(), float64(heapHalf)/1e6, float64(heapEnd)/1e6)
	if total < 5*cacheSize {
		t.Fatalf("only %d lookups in %v: too few to fill and churn a cache of %d", total, budget, cacheSize)
	}
	if secure.Load() < total/3-int64(workers) {
		t.Errorf("%d of %d lookups Secure; want at least the third for existing names", secure.Load(), total)
	}
	if g, b := v.good.len(), v.bad.len(); g > cacheSize || b > max(cacheSize/10, 1) {
		t.Errorf("cache holds %d good and %d bad entries, bound %d/%d", g, b, cacheSize, cacheSize/10)
	}
	// The second half of the flood saw as many new names as the first:
	// a table that kept one entry per name (a few hundred bytes each)
	// would grow by megabytes here.
	if heapEnd > heapHalf && heapEnd-heapHalf > 4<<20 {
		t.Errorf("heap grew by %.1f MB over the second half of the flood (%d lookups): something keeps per-name state",
			float64(heapEnd-heapHalf)/1e6, total-half)
	}
}
