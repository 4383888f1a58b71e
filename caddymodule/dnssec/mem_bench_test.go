package dnssec

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/caddy-dane/caddy-dane/internal/zonekit"
	"github.com/miekg/dns"
)

// liveHeap is the heap in use by reachable objects: HeapAlloc right after
// two collections (the second sweeps what the first's finalizers freed).
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// memEntries is how many entries a memory benchmark fills, enough that
// map growth and allocator rounding average out.
const memEntries = 256

// BenchmarkCacheEntryMemory reports what the validator's cache keeps per
// entry (docs/benchmarks.md, Memory), as live heap after a GC:
//
//   - rrset: one validated TLSA RRset (a Result with its RRset, RRSIG
//     TTLs and chain), the zone keys already cached;
//   - zone: one signed child zone reached through its parent: the DS
//     result, the key entry (keySet with the derived tags and DS input),
//     and the one TLSA result asked for in it. zone − rrset is the cost of
//     a zone's keys.
//
// The ECDSA P-256 keys and one TLSA record per RRset are what a DANE
// deployment typically publishes.
func BenchmarkCacheEntryMemory(b *testing.B) {
	b.Run("rrset", func(b *testing.B) {
		tr := newTree(b, hooks{beforeDelegate: func(t *tree) {
			for i := range memEntries {
				t.zone.MustAdd(fmt.Sprintf("_443._tcp.h%d.example.test. 300 IN TLSA %s", i, tlsaData))
			}
		}})
		measureEntries(b, tr.srv, dsAnchors(tr.root), tlsaName, func(i int) string {
			return fmt.Sprintf("_443._tcp.h%d.example.test.", i)
		}, "B/rrset")
	})
	b.Run("zone", func(b *testing.B) {
		var children []*zonekit.Zone
		tr := newTree(b, hooks{
			beforeDelegate: func(t *tree) {
				for i := range memEntries {
					z := zonekit.NewZone(fmt.Sprintf("c%d.test.", i))
					z.MustAdd(fmt.Sprintf("_443._tcp.www.c%d.test. 300 IN TLSA %s", i, tlsaData))
					must(nil, zonekit.Delegate(t.tld, z))
					children = append(children, z)
				}
			},
			beforeSign: func(t *tree) {
				for _, z := range children {
					must(nil, z.Sign(testInception, testExpiration))
				}
				t.extra = children
			},
		})
		measureEntries(b, tr.srv, dsAnchors(tr.root), tlsaName, func(i int) string {
			return fmt.Sprintf("_443._tcp.www.c%d.test.", i)
		}, "B/zone")
	})
}

// measureEntries validates warm (which caches the keys above the entries)
// and then memEntries names, and reports the live heap they added, per
// name, as unit.
func measureEntries(b *testing.B, ex Exchanger, anchors []dns.RR, warm string, name func(int) string, unit string) {
	var total int64
	for b.Loop() {
		v, err := New(Config{Exchanger: ex, Anchors: anchors, Now: newClock().Now, CacheSize: 4 * memEntries})
		must(b, err)
		if r := v.Lookup(context.Background(), warm, dns.TypeTLSA); r.Status != Secure {
			b.Fatal(r)
		}
		before := liveHeap()
		for i := range memEntries {
			if r := v.Lookup(context.Background(), name(i), dns.TypeTLSA); r.Status != Secure {
				b.Fatal(r)
			}
		}
		total += liveHeap() - before
		runtime.KeepAlive(v)
	}
	b.ReportMetric(float64(total)/float64(b.N)/memEntries, unit)
}
