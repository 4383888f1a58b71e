package dane

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/dnssec"
	"github.com/caddy-dane/caddy-dane/internal/zonekit"
)

// benchHost is the upstream of the benchmarks: TLSA 3 1 1 at
// _443._tcp.api.example.test., in example.test. under the anchor test.
const benchHost = "api.example.test"

// countingExchanger answers from zonekit in process, counts queries per
// RRset, and can hold every answer for a while so that concurrent lookups
// overlap.
type countingExchanger struct {
	srv     *zonekit.Server
	anchors []dns.RR // DS of test.
	delay   time.Duration
	mu      sync.Mutex
	n       map[string]int
	total   atomic.Int64
}

func (c *countingExchanger) Exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
	c.total.Add(1)
	c.mu.Lock()
	c.n[q.Question[0].Name+" "+dns.TypeToString[q.Question[0].Qtype]]++
	c.mu.Unlock()
	if c.delay > 0 {
		select {
		case <-time.After(c.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return c.srv.Exchange(ctx, q)
}

// benchSetup signs test. → example.test. with a TLSA 3 1 1 record for a
// fresh ECDSA P-256 leaf, and returns an Authenticator anchored at test.
func benchSetup(tb testing.TB, delay time.Duration) (*Authenticator, *countingExchanger, []*x509.Certificate) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: benchHost},
		DNSNames: []string{benchHost}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)

	parent, child := zonekit.NewZone("test."), zonekit.NewZone("example.test.")
	child.MustAdd("_443._tcp."+benchHost+". 3600 IN TLSA 3 1 1 "+hex.EncodeToString(sum[:]),
		"_8443._tcp."+benchHost+". 3600 IN TLSA 3 1 1 "+hex.EncodeToString(sum[:]))
	if err := child.Sign(now.Add(-24*time.Hour), now.Add(24*time.Hour)); err != nil {
		tb.Fatal(err)
	}
	if err := zonekit.Delegate(parent, child); err != nil {
		tb.Fatal(err)
	}
	if err := parent.Sign(now.Add(-24*time.Hour), now.Add(24*time.Hour)); err != nil {
		tb.Fatal(err)
	}
	ex := &countingExchanger{srv: zonekit.NewServer(parent, child), delay: delay, n: map[string]int{}}
	for _, ds := range parent.DS() {
		ex.anchors = append(ex.anchors, ds)
	}
	anchors := ex.anchors
	clock := func() time.Time { return now }
	v, err := dnssec.New(dnssec.Config{Exchanger: ex, Anchors: anchors, Now: clock})
	if err != nil {
		tb.Fatal(err)
	}
	return &Authenticator{Prover: v, Now: clock}, ex, []*x509.Certificate{leaf}
}

var benchNames = []string{benchHost + "."}

// warmVerify is what dialTLS does per connection once the cache is warm,
// minus crypto/tls itself: look the TLSA RRset up, match the chain.
func warmVerify(a *Authenticator, chain []*x509.Certificate) error {
	set, err := a.lookup(context.Background(), benchHost, 443)
	if err != nil {
		return err
	}
	_, err = a.verify(set, chain, benchNames)
	return err
}

// BenchmarkWarmVerification is the per-handshake cost of DANE beyond
// crypto/tls with a warm cache: Authenticator.Lookup + Verify (3 1 1).
func BenchmarkWarmVerification(b *testing.B) {
	a, _, chain := benchSetup(b, 0)
	if err := warmVerify(a, chain); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := warmVerify(a, chain); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLookupWarm is Authenticator.Lookup served from the cache.
func BenchmarkLookupWarm(b *testing.B) {
	a, _, _ := benchSetup(b, 0)
	ctx := context.Background()
	if _, err := a.lookup(ctx, benchHost, 443); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.lookup(ctx, benchHost, 443); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyDANEEE311 is Authenticator.Verify alone: matching a leaf
// against a 3 1 1 record.
func BenchmarkVerifyDANEEE311(b *testing.B) {
	a, _, chain := benchSetup(b, 0)
	set, err := a.lookup(context.Background(), benchHost, 443)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.verify(set, chain, benchNames); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLookupCold is a first lookup down test. → example.test. with a
// fresh validator and authenticator each time (4 RRsets, 4 signature
// checks, answers in process).
func BenchmarkLookupCold(b *testing.B) {
	_, ex, _ := benchSetup(b, 0)
	clock := func() time.Time { return now }
	b.ReportAllocs()
	for b.Loop() {
		v, err := dnssec.New(dnssec.Config{Exchanger: ex.srv, Anchors: ex.anchors, Now: clock})
		if err != nil {
			b.Fatal(err)
		}
		a := &Authenticator{Prover: v, Now: clock} // an empty set cache too
		if _, err := a.lookup(context.Background(), benchHost, 443); err != nil {
			b.Fatal(err)
		}
	}
}

// The warm path allocates little: no DNS work, no re-decoding of records,
// no big structures per handshake. Allocation counts, not timings, so the
// test is stable on a shared machine.
func TestWarmVerificationAllocs(t *testing.T) {
	a, _, chain := benchSetup(t, 0)
	if err := warmVerify(a, chain); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(200, func() {
		if err := warmVerify(a, chain); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 10 {
		t.Errorf("warm Lookup+Verify allocates %.0f times per handshake, want ≤ 10", allocs)
	}
}

// 1000 concurrent first lookups of one owner make exactly one query per
// RRset (the validator's singleflight) and all succeed.
func TestConcurrentFirstLookups(t *testing.T) {
	a, ex, chain := benchSetup(t, 20*time.Millisecond)
	const n = 1000
	start := make(chan struct{})
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			set, err := a.lookup(ctx, benchHost, 443)
			if err == nil {
				_, err = a.verify(set, chain, benchNames)
			}
			errs <- err
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			if failed == 0 {
				t.Errorf("lookup failed: %v", err)
			}
			failed++
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d lookups failed", failed, n)
	}
	want := []string{"_443._tcp." + benchHost + ". TLSA", "example.test. DNSKEY", "example.test. DS", "test. DNSKEY"}
	ex.mu.Lock()
	defer ex.mu.Unlock()
	for _, k := range want {
		if ex.n[k] != 1 {
			t.Errorf("%s queried %d times, want 1", k, ex.n[k])
		}
	}
	if len(ex.n) != len(want) {
		t.Errorf("queries %v, want exactly one each of %v", ex.n, want)
	}
}

// A cached set is served until its validated lifetime ends, refreshed in
// the background once less than a tenth of it remains, and never served
// past its expiry.
func TestCachedSetPrefetchAndExpiry(t *testing.T) {
	a, ex, _ := benchSetup(t, 0)
	var clock atomic.Int64 // seconds after now
	at := func() time.Time { return now.Add(time.Duration(clock.Load()) * time.Second) }
	v, err := dnssec.New(dnssec.Config{Exchanger: ex, Anchors: ex.anchors, Now: at})
	if err != nil {
		t.Fatal(err)
	}
	a.Prover, a.Now = v, at
	refreshed := make(chan struct{}, 1)
	a.Refresh = func(ctx context.Context, owner string) *dnssec.Result {
		defer func() { refreshed <- struct{}{} }()
		return v.Refresh(ctx, owner, dns.TypeTLSA)
	}
	tlsaQueries := func() int {
		ex.mu.Lock()
		defer ex.mu.Unlock()
		return ex.n["_443._tcp."+benchHost+". TLSA"]
	}
	lookup := func() *TLSASet {
		t.Helper()
		set, err := a.lookup(context.Background(), benchHost, 443)
		if err != nil {
			t.Fatal(err)
		}
		return set
	}
	first := lookup()
	ttl := first.Result.TTL
	if ttl != time.Hour {
		t.Fatalf("TTL %v, want 1h (the TLSA and DNSKEY TTLs)", ttl)
	}
	clock.Store(int64(ttl.Seconds() / 2))
	if s := lookup(); !s.Result.Cached || tlsaQueries() != 1 {
		t.Fatalf("half-way through the TTL: cached %v, %d TLSA queries; want a cache hit", s.Result.Cached, tlsaQueries())
	}
	clock.Store(int64(ttl.Seconds() * 0.95)) // less than a tenth left: prefetch
	lookup()
	select {
	case <-refreshed:
	case <-time.After(10 * time.Second):
		t.Fatal("no background refresh with less than 10% of the TTL left")
	}
	if got := tlsaQueries(); got != 2 {
		t.Fatalf("%d TLSA queries after prefetch, want 2", got)
	}
	clock.Store(int64(ttl.Seconds() * 1.5)) // past the first result's expiry, inside the refreshed one
	lookup()
	if got := tlsaQueries(); got != 2 {
		t.Errorf("%d TLSA queries after the first expiry, want 2: the refreshed set should serve", got)
	}
	a.Refresh = nil
	clock.Store(int64(ttl.Seconds() * 2.5)) // past every expiry
	lookup()
	if got := tlsaQueries(); got != 3 {
		t.Errorf("%d TLSA queries once everything expired, want 3", got)
	}
}

// The validated DNSKEY and DS RRsets of a zone serve every owner in it: a
// second upstream in example.test. costs one TLSA query, nothing more.
func TestKeysSharedAcrossOwners(t *testing.T) {
	a, ex, chain := benchSetup(t, 0)
	for _, port := range []int{443, 8443} {
		set, err := a.lookup(context.Background(), benchHost, port)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.verify(set, chain, benchNames); err != nil {
			t.Fatal(err)
		}
	}
	ex.mu.Lock()
	defer ex.mu.Unlock()
	for k, n := range ex.n {
		if n != 1 {
			t.Errorf("%s queried %d times, want 1", k, n)
		}
	}
	if len(ex.n) != 5 {
		t.Errorf("queries %v, want two TLSA and one each of DNSKEY test., DS and DNSKEY example.test.", ex.n)
	}
}
