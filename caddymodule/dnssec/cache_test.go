package dnssec

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/internal/zonekit"
)

func TestCacheHit(t *testing.T) {
	tr := newTree(t, hooks{})
	ex := countQueries(tr.srv)
	v := newValidator(t, ex, dsAnchors(tr.root), newClock())
	first := v.Lookup(context.Background(), tlsaName, dns.TypeTLSA)
	if first.Status != Secure || first.Cached {
		t.Fatal(first)
	}
	// TLSA + DNSKEY ×3 + DS ×2.
	if n := ex.Total(); n != 6 {
		t.Errorf("cold lookup made %d queries, want 6: %v", n, ex.byKey)
	}
	second := v.Lookup(context.Background(), tlsaName, dns.TypeTLSA)
	if second.Status != Secure || !second.Cached {
		t.Fatal(second)
	}
	if n := ex.Total(); n != 6 {
		t.Errorf("warm lookup made %d queries", n-6)
	}
	// Another name in a zone whose keys are cached: one query.
	if r := v.Lookup(context.Background(), "svc.example.test.", dns.TypeA); r.Status != Secure {
		t.Fatal(r)
	}
	if n := ex.Total(); n != 7 {
		t.Errorf("lookup under cached keys made %d queries, want 1", n-6)
	}
}

func TestCacheExpiry(t *testing.T) {
	tr := newTree(t, hooks{})
	ex := countQueries(tr.srv)
	clk := newClock()
	v := newValidator(t, ex, dsAnchors(tr.root), clk)
	v.Lookup(context.Background(), tlsaName, dns.TypeTLSA)
	clk.Add(299 * time.Second)
	if r := v.Lookup(context.Background(), tlsaName, dns.TypeTLSA); !r.Cached || r.TTL != time.Second {
		t.Fatalf("at 299 s: cached=%v ttl=%s", r.Cached, r.TTL)
	}
	clk.Add(time.Second) // the TLSA TTL (300 s) is over, the keys (3600 s) are not
	before := ex.Total()
	if r := v.Lookup(context.Background(), tlsaName, dns.TypeTLSA); r.Cached || r.Status != Secure {
		t.Fatalf("at 300 s: %s cached=%v", r, r.Cached)
	}
	if n := ex.Total() - before; n != 1 {
		t.Errorf("refetch made %d queries, want 1", n)
	}
	clk.Add(time.Hour) // everything expired
	before = ex.Total()
	v.Lookup(context.Background(), tlsaName, dns.TypeTLSA)
	if n := ex.Total() - before; n != 6 {
		t.Errorf("after an hour %d queries, want 6", n)
	}
}

func TestBogusCachedBriefly(t *testing.T) {
	tr := newTree(t, hooks{afterSign: tamperAnswer(tlsaName, dns.TypeTLSA, func(r *dns.Msg) { r.Answer = withoutRRSIGs(r.Answer) })})
	ex := countQueries(tr.srv)
	clk := newClock()
	v := newValidator(t, ex, dsAnchors(tr.tld), clk)
	v.Lookup(context.Background(), tlsaName, dns.TypeTLSA)
	before := ex.Total()
	if r := v.Lookup(context.Background(), tlsaName, dns.TypeTLSA); r.Status != Bogus || !r.Cached {
		t.Fatalf("%s cached=%v", r, r.Cached)
	}
	clk.Add(badTTL)
	v.Lookup(context.Background(), tlsaName, dns.TypeTLSA)
	if n := ex.Total() - before; n != 1 {
		t.Errorf("after badTTL %d queries, want 1", n)
	}
}

func TestCacheBounded(t *testing.T) {
	c := newLRU(3)
	exp := testNow.Add(time.Hour)
	for _, k := range []string{"a", "b", "c", "d"} {
		c.put(k, k, testNow, exp)
	}
	if c.len() != 3 {
		t.Fatalf("len %d", c.len())
	}
	if _, _, ok := c.get("a", testNow, false); ok {
		t.Error("least recently used entry kept")
	}
	c.get("b", testNow, false)
	c.put("e", "e", testNow, exp)
	if _, _, ok := c.get("b", testNow, false); !ok {
		t.Error("recently used entry evicted")
	}
	if _, _, ok := c.get("e", exp, false); ok {
		t.Error("expired entry returned")
	}
	// Renewal: an entry in the last tenth of its life is a miss.
	if _, _, ok := c.get("b", testNow.Add(53*time.Minute), true); !ok {
		t.Error("renew missed an entry with 7 of 60 minutes left")
	}
	if _, _, ok := c.get("b", testNow.Add(54*time.Minute), true); ok {
		t.Error("renew hit an entry with 6 of 60 minutes left")
	}
	if _, _, ok := c.get("b", testNow.Add(54*time.Minute), false); !ok {
		t.Error("an entry near its end is gone for ordinary lookups")
	}
}

func TestSingleflight(t *testing.T) {
	tr := newTree(t, hooks{})
	gate := make(chan struct{})
	ex := countQueries(ExchangeFunc(func(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
		<-gate
		return tr.srv.Exchange(ctx, q)
	}))
	v := newValidator(t, ex, dsAnchors(tr.root), newClock())
	var wg sync.WaitGroup
	results := make([]*Result, 100)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = v.Lookup(context.Background(), tlsaName, dns.TypeTLSA)
		}()
	}
	time.Sleep(50 * time.Millisecond) // let them pile up on the first query
	close(gate)
	wg.Wait()
	for _, r := range results {
		if r.Status != Secure {
			t.Fatal(r)
		}
	}
	for k, n := range ex.byKey {
		if n != 1 {
			t.Errorf("%s queried %d times", k, n)
		}
	}
	if len(ex.byKey) != 6 {
		t.Errorf("queries: %v", ex.byKey)
	}
}

func TestTimeout(t *testing.T) {
	stuck := make(chan struct{})
	defer close(stuck)
	tests := []struct {
		name string
		ex   ExchangeFunc
	}{
		{"exchanger honours ctx", func(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}},
		{"exchanger ignores ctx", func(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
			<-stuck
			return nil, context.Canceled
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTree(t, hooks{})
			v := newValidator(t, tt.ex, dsAnchors(tr.tld), newClock())
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			start := time.Now()
			r := v.Lookup(ctx, tlsaName, dns.TypeTLSA)
			if el := time.Since(start); el > time.Second {
				t.Errorf("lookup took %s", el)
			}
			if r.Status != Indeterminate || r.Err.Error() != "indeterminate: dns timeout" {
				t.Fatalf("%s", r)
			}
			// Timeouts are the caller's, not the data's: not cached.
			if _, _, ok := v.cached("r/"+tlsaName+"/52", false); ok {
				t.Error("timeout cached")
			}
		})
	}
}

func TestQueryLimit(t *testing.T) {
	tr := newTree(t, hooks{})
	v, err := New(Config{Exchanger: tr.srv, Anchors: dsAnchors(tr.root), Now: newClock().Now, Limits: Limits{MaxQueries: 3}})
	must(t, err)
	r := v.Lookup(context.Background(), tlsaName, dns.TypeTLSA)
	if r.Status == Secure || !errorsIs(r.Err, ErrLimitExceeded) {
		t.Fatalf("%s", r)
	}
}

func TestValidationLimit(t *testing.T) {
	tr := newTree(t, hooks{})
	v, err := New(Config{Exchanger: tr.srv, Anchors: dsAnchors(tr.root), Now: newClock().Now, Limits: Limits{MaxValidations: 2}})
	must(t, err)
	if r := v.Lookup(context.Background(), tlsaName, dns.TypeTLSA); r.Status == Secure || !errorsIs(r.Err, ErrLimitExceeded) {
		t.Fatalf("%s", r)
	}
}

func TestChainDepthLimit(t *testing.T) {
	tr := newTree(t, hooks{})
	v, err := New(Config{Exchanger: tr.srv, Anchors: dsAnchors(tr.root), Now: newClock().Now, Limits: Limits{MaxChainDepth: 2}})
	must(t, err)
	if r := v.Lookup(context.Background(), tlsaName, dns.TypeTLSA); r.Status == Secure || !errorsIs(r.Err, ErrLimitExceeded) {
		t.Fatalf("%s", r)
	}
}

// TestRefresh: a refresh queries the answer again (and each CNAME hop)
// but takes the zone keys from the cache, and what it validated is then
// served from the cache.
func TestRefresh(t *testing.T) {
	tr := newTree(t, hooks{})
	ex := countQueries(tr.srv)
	clock := newClock()
	v := newValidator(t, ex, dsAnchors(tr.root), clock)
	ctx := context.Background()
	if r := v.Lookup(ctx, tlsaName, dns.TypeTLSA); r.Status != Secure {
		t.Fatal(r)
	}
	cold := ex.Total()
	clock.Add(100 * time.Second)
	r := v.Refresh(ctx, tlsaName, dns.TypeTLSA)
	if r.Status != Secure || r.Cached || len(r.RRset) != 1 {
		t.Fatalf("refresh: %s cached=%v", r, r.Cached)
	}
	if n := ex.Total() - cold; n != 1 {
		t.Errorf("refresh made %d queries, want 1 (the TLSA only): %v", n, ex.byKey)
	}
	if r.TTL != 300*time.Second {
		t.Errorf("refreshed TTL %s, want the full 300s", r.TTL)
	}
	after := v.Lookup(ctx, tlsaName, dns.TypeTLSA)
	if !after.Cached || after.TTL != 300*time.Second || ex.Total()-cold != 1 {
		t.Errorf("lookup after refresh: cached=%v ttl=%s, %d queries", after.Cached, after.TTL, ex.Total()-cold-1)
	}

	// Near the end of the zone keys' life (DefaultTTL), a refresh renews
	// them too: a refreshed answer is not cut short by keys about to
	// expire, and no ordinary lookup has to wait for them later.
	clock.Add(zonekit.DefaultTTL*time.Second*95/100 - 100*time.Second)
	before := ex.Total()
	r = v.Refresh(ctx, tlsaName, dns.TypeTLSA)
	if r.Status != Secure || r.TTL != 300*time.Second {
		t.Fatalf("refresh near key expiry: %s", r)
	}
	if n := ex.Total() - before; n != 6 {
		t.Errorf("refresh near key expiry made %d queries, want 6 (TLSA, 3 DNSKEY, 2 DS)", n)
	}

	// Through a CNAME: both hops are asked again.
	if r := v.Lookup(ctx, "alias.example.test.", dns.TypeA); r.Status != Secure || len(r.CNAME) != 1 {
		t.Fatal(r)
	}
	before = ex.Total()
	if r := v.Refresh(ctx, "alias.example.test.", dns.TypeA); r.Status != Secure || len(r.CNAME) != 1 || r.Cached {
		t.Fatal(r)
	}
	if n := ex.Total() - before; n != 2 {
		t.Errorf("refresh through a CNAME made %d queries, want 2", n)
	}
}
