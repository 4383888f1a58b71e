package publish

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libdns/libdns"

	"github.com/caddy-dane/caddy-dane/caddymodule/rfc2136"
	"github.com/caddy-dane/caddy-dane/caddymodule/tlsa"
)

const (
	zone  = "example.test."
	owner = "_443._tcp.www.example.test."
	rel   = "_443._tcp.www"
	ttl   = 300 * time.Second
)

// rec returns a distinct, well-formed 3 1 1 record for key n.
func rec(n byte) string { return "3 1 1 " + strings.Repeat(fmt.Sprintf("%02x", n), 32) }

type rig struct {
	clk     *clock
	zone    *memZone
	storage *memStorage
	needed  map[string][]string // instance → records it needs at owner
	mu      sync.Mutex
}

func newRig() *rig {
	return &rig{
		clk:     &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)},
		zone:    &memZone{watch: rel},
		storage: newMemStorage(),
		needed:  map[string][]string{},
	}
}

func (r *rig) set(instance string, recs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.needed[instance] = recs
}

// publisher returns an instance of the publisher sharing r's zone and
// storage; kind picks the provider's interfaces.
func (r *rig) publisher(instance, kind string) *Publisher {
	var prov libdns.RecordGetter
	switch kind {
	case "set":
		prov = setterZone{r.zone}
	case "append":
		prov = appendDeleteZone{r.zone}
	default:
		prov = readOnlyZone{r.zone}
	}
	return &Publisher{
		Provider: prov, Zone: zone, TTL: ttl, Storage: r.storage,
		Instance: instance, Interval: time.Minute, Now: r.clk.Now,
		Needed: func(context.Context, string) ([]string, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			return slices.Clone(r.needed[instance]), nil
		},
	}
}

// step advances the clock and reconciles with p, failing on error.
func (r *rig) step(t *testing.T, p *Publisher, d time.Duration) Change {
	t.Helper()
	r.clk.Add(d)
	ch, err := p.Reconcile(context.Background(), owner)
	if err != nil {
		t.Fatalf("Reconcile at +%s: %v", d, err)
	}
	return ch
}

func TestReconcileRollover(t *testing.T) {
	for _, kind := range []string{"set", "append"} {
		t.Run("RFC7671-8.1/current+next/"+kind, func(t *testing.T) {
			r := newRig()
			p := r.publisher("a", kind)
			r.set("a", rec(1))
			ch := r.step(t, p, 0)
			if !slices.Equal(ch.Added, []string{rec(1)}) || len(ch.Removed) != 0 {
				t.Fatalf("first publication: %+v", ch)
			}
			if got := r.zone.ttl(rel); got != ttl {
				t.Fatalf("TTL %s, want %s", got, ttl)
			}
			// The next key is needed (a held renewal) next to the current one.
			r.set("a", rec(1), rec(2))
			ch = r.step(t, p, time.Minute)
			if !slices.Equal(ch.Added, []string{rec(2)}) || len(ch.Removed) != 0 {
				t.Fatalf("next key: %+v", ch)
			}
			// The new key is served; the old one is no longer needed but
			// stays for 2×TTL after it last was.
			r.set("a", rec(2))
			r.step(t, p, 0) // rec(1) last needed at the previous step
			r.clk.Add(2*ttl + 2*p.Interval - time.Second)
			if ch = r.step(t, p, 0); ch.Changed() || !slices.Equal(r.zone.tlsa(rel), []string{rec(1), rec(2)}) {
				t.Fatalf("old record must stay until 2×TTL + the grace after last needed: %+v, zone %v", ch, r.zone.tlsa(rel))
			}
			ch = r.step(t, p, time.Second)
			if !slices.Equal(ch.Removed, []string{rec(1)}) || len(ch.Added) != 0 {
				t.Fatalf("old record after 2×TTL: %+v", ch)
			}
			if got := r.zone.tlsa(rel); !slices.Equal(got, []string{rec(2)}) {
				t.Fatalf("final RRset %v", got)
			}
			// No state of the RRset ever lacked the record of a key in
			// service: every snapshot has rec(1) until rec(2) joined, and
			// rec(2) from then on.
			for i, h := range r.zone.history {
				if !slices.Contains(h, rec(1)) && !slices.Contains(h, rec(2)) {
					t.Fatalf("write %d left neither key published: %v", i, h)
				}
			}
		})
	}
}

func TestPlanRules(t *testing.T) {
	now := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name           string
		st             State
		needed, inZone []string
		zoneTTL        time.Duration
		want           []string
	}{
		{name: "RFC7671-8.1/needed record is published", needed: []string{rec(1)}, want: []string{rec(1)}},
		{
			name: "RFC7671-8.1/unneeded record kept within 2xTTL",
			st:   State{Records: map[string]Entry{rec(1): {LastNeeded: now.Add(-2*ttl + time.Second)}}},
			want: []string{rec(1)},
		},
		{
			name: "RFC7671-8.1/unneeded record removed at 2xTTL",
			st:   State{Records: map[string]Entry{rec(1): {LastNeeded: now.Add(-2 * ttl)}}},
		},
		{name: "RFC7671-8.1/foreign record counts as needed when first seen", inZone: []string{rec(9)}, zoneTTL: ttl, want: []string{rec(9)}},
		{
			name:    "RFC7671-8.1/longer TTL found in the zone governs the wait",
			st:      State{Records: map[string]Entry{rec(1): {LastNeeded: now.Add(-3 * ttl)}}},
			inZone:  []string{rec(1)},
			zoneTTL: 4 * ttl, want: []string{rec(1)},
		},
		{
			name: "RFC7671-8.1/held records are needed",
			st:   State{Holds: []Hold{{ID: "x", Records: []string{rec(3)}, Until: now.Add(time.Hour)}}},
			want: []string{rec(3)},
		},
		{
			name: "RFC7671-8.1/expired hold is dropped",
			st: State{
				Records: map[string]Entry{rec(3): {LastNeeded: now.Add(-2 * ttl)}},
				Holds:   []Hold{{ID: "x", Records: []string{rec(3)}, Until: now}},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.st
			got := st.plan(tc.needed, tc.inZone, tc.zoneTTL, ttl, 0, now)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("plan = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestReconcileProviderFailure(t *testing.T) {
	r := newRig()
	p := r.publisher("a", "set")
	r.set("a", rec(1))
	r.step(t, p, 0)
	r.set("a", rec(1), rec(2))
	r.zone.fail = fmt.Errorf("update: %w", rfc2136.ErrTSIGRefused)
	ch, err := p.Reconcile(context.Background(), owner)
	if err == nil || Reason(err) != "tsig_refused" {
		t.Fatalf("Reconcile = %v (reason %q), want tsig_refused", err, Reason(err))
	}
	if ch.Changed() || !slices.Equal(ch.Records, []string{rec(1)}) {
		t.Fatalf("a failed write must report no change and the RRset as it is: %+v", ch)
	}
	r.zone.fail = nil
	if ch = r.step(t, p, 2*time.Second); !slices.Equal(ch.Added, []string{rec(2)}) {
		t.Fatalf("after the outage: %+v", ch)
	}
}

func TestReconcilePartialDelete(t *testing.T) {
	r := newRig()
	p := r.publisher("a", "append")
	r.set("a", rec(1))
	r.step(t, p, 0)
	r.set("a", rec(2))
	r.clk.Add(2*ttl + 2*p.Interval)
	r.zone.failDel = fmt.Errorf("delete: %w", rfc2136.ErrRefused)
	ch, err := p.Reconcile(context.Background(), owner)
	if err == nil || Reason(err) != "refused" {
		t.Fatalf("Reconcile = %v, want refused", err)
	}
	if !slices.Equal(ch.Added, []string{rec(2)}) || len(ch.Removed) != 0 {
		t.Fatalf("the half that was done must be reported: %+v", ch)
	}
	if !strings.Contains(err.Error(), "after adding 1") || !strings.Contains(err.Error(), rec(2)) {
		t.Fatalf("error must say what was added: %v", err)
	}
}

func TestReconcileTwoInstances(t *testing.T) {
	r := newRig()
	a, b := r.publisher("a", "set"), r.publisher("b", "set")
	ctx := context.Background()
	r.set("a", rec(1))
	r.set("b", rec(2)) // b still serves the older certificate... or a newer one
	for _, p := range []*Publisher{a, b} {
		if err := p.Heartbeat(ctx, map[string][]string{owner: r.needed[p.Instance]}); err != nil {
			t.Fatal(err)
		}
	}
	r.step(t, a, 0)
	r.step(t, b, time.Second)
	r.clk.Add(3 * ttl)
	// Both alive: neither removes the other's record, however long.
	for i := 0; i < 3; i++ {
		for _, p := range []*Publisher{a, b} {
			if err := p.Heartbeat(ctx, map[string][]string{owner: r.needed[p.Instance]}); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range []*Publisher{a, b} {
			if ch := r.step(t, p, 10*time.Second); ch.Changed() {
				t.Fatalf("instances fight: %+v", ch)
			}
		}
	}
	if got := r.zone.tlsa(rel); !slices.Equal(got, []string{rec(1), rec(2)}) {
		t.Fatalf("RRset %v, want both instances' records", got)
	}
	// b stops: its heartbeat dies after 3×interval, its record goes 2×TTL later.
	r.clk.Add(3*a.Interval + time.Second)
	r.step(t, a, 0)
	if got := r.zone.tlsa(rel); !slices.Contains(got, rec(2)) {
		t.Fatalf("b's record removed as soon as b died: %v", got)
	}
	r.clk.Add(2 * ttl)
	if ch := r.step(t, a, 0); !slices.Equal(ch.Removed, []string{rec(2)}) {
		t.Fatalf("dead instance's record: %+v", ch)
	}
}

func TestReconcileNeedsWritableProvider(t *testing.T) {
	r := newRig()
	if err := r.publisher("a", "read").Check(); err == nil || !strings.Contains(err.Error(), "RecordSetter") {
		t.Fatalf("Check of a read-only provider = %v", err)
	}
	for _, k := range []string{"set", "append"} {
		if err := r.publisher("a", k).Check(); err != nil {
			t.Fatalf("Check(%s) = %v", k, err)
		}
	}
}

func TestReconcileLockExcludes(t *testing.T) {
	r := newRig()
	p := r.publisher("a", "set")
	if err := r.storage.Lock(context.Background(), lockName(owner)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	r.set("a", rec(1))
	if _, err := p.Reconcile(ctx, owner); Reason(err) != "lock" {
		t.Fatalf("Reconcile while another instance holds the lock = %v, want a lock error", err)
	}
	if r.zone.writes != 0 {
		t.Fatal("wrote without the lock")
	}
}

func TestHold(t *testing.T) {
	r := newRig()
	r.clk = nil
	p := r.publisher("a", "set")
	p.Now = nil
	p.TTL = 40 * time.Millisecond
	r.set("a", rec(1))
	if _, err := p.Reconcile(context.Background(), owner); err != nil {
		t.Fatal(err)
	}
	var seen time.Time
	visible := func(context.Context) error {
		if !slices.Contains(r.zone.tlsa(rel), rec(2)) {
			return errors.New("tlsa mismatch")
		}
		if seen.IsZero() {
			seen = time.Now()
		}
		return nil
	}
	held, err := p.Hold(context.Background(), HoldOptions{
		Owners: []string{owner}, Records: []string{rec(2)}, Visible: visible,
		Max: 5 * time.Second, Poll: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if since := time.Since(seen); since < 2*p.TTL {
		t.Fatalf("released %s after the record was first visible, want ≥ 2×TTL (%s)", since, 2*p.TTL)
	}
	if got := r.zone.tlsa(rel); !slices.Equal(got, []string{rec(1), rec(2)}) {
		t.Fatalf("during the rollover the RRset must hold current and next: %v", got)
	}
	st, _ := p.loadState(context.Background(), owner)
	if len(st.Holds) != 0 {
		t.Fatalf("hold left in state: %+v", st.Holds)
	}
	t.Logf("held %s", held)

	// Never visible: Hold gives up at Max with the reason.
	_, err = p.Hold(context.Background(), HoldOptions{
		Owners: []string{owner}, Records: []string{rec(3)},
		Visible: func(context.Context) error { return errors.New("tlsa mismatch: 3 1 1 ...") },
		Max:     100 * time.Millisecond, Poll: 10 * time.Millisecond,
	})
	if err == nil || !errors.Is(err, ErrNotVisible) || !strings.Contains(err.Error(), "tlsa mismatch") {
		t.Fatalf("Hold of an invisible record = %v", err)
	}
}

func TestHoldProviderOutage(t *testing.T) {
	r := newRig()
	p := r.publisher("a", "set")
	p.Now, p.TTL = nil, 20*time.Millisecond
	r.zone.fail = fmt.Errorf("update: %w", rfc2136.ErrRefused)
	var mu sync.Mutex
	var reasons []string
	go func() { time.Sleep(150 * time.Millisecond); r.zone.mu.Lock(); r.zone.fail = nil; r.zone.mu.Unlock() }()
	_, err := p.Hold(context.Background(), HoldOptions{
		Owners: []string{owner}, Records: []string{rec(2)},
		Visible: func(context.Context) error {
			if !slices.Contains(r.zone.tlsa(rel), rec(2)) {
				return errors.New("not yet")
			}
			return nil
		},
		Max: 5 * time.Second, Poll: 5 * time.Millisecond, RetryBase: 10 * time.Millisecond, RetryLimit: 40 * time.Millisecond,
		OnError: func(_ string, err error, _ time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			reasons = append(reasons, Reason(err))
		},
	})
	if err != nil {
		t.Fatalf("Hold through an outage = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reasons) < 2 || reasons[0] != "refused" {
		t.Fatalf("outage reported as %v, want several refused", reasons)
	}
}

func TestParseParams(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "3 1 1", want: "3 1 1"},
		{in: "DANE-TA SPKI SHA2-256", want: "2 1 1"},
		{in: "3 0 2", want: "3 0 2"},
		{in: "1 1 1", err: "only DANE-EE (3) and DANE-TA (2)"},
		{in: "3 2 1", err: "unknown selector"},
		{in: "3 1 3", err: "unknown matching type"},
		{in: "3 1", err: "three parameters"},
	} {
		t.Run("RFC6698-2.1/"+tc.in, func(t *testing.T) {
			p, err := ParseParams(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseParams(%q) = %v, want error %q", tc.in, err, tc.err)
				}
				return
			}
			if err != nil || p.String() != tc.want {
				t.Fatalf("ParseParams(%q) = %v, %v", tc.in, p, err)
			}
		})
	}
}

func TestRecords(t *testing.T) {
	issuerKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &issuerKey.PublicKey, issuerKey)
	ca, _ := x509.ParseCertificate(caDER)
	lt := &x509.Certificate{SerialNumber: big.NewInt(2), DNSNames: []string{"www.example.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	leafDER, _ := x509.CreateCertificate(rand.Reader, lt, ca, &leafKey.PublicKey, issuerKey)
	leaf, _ := x509.ParseCertificate(leafDER)
	ee, _ := ParseParams("3 1 1")
	ta, _ := ParseParams("2 1 1")
	got, err := Records([]*x509.Certificate{leaf, ca}, []Params{ee, ta, ee})
	if err != nil {
		t.Fatal(err)
	}
	wantEE, _ := tlsa.NewRecord(3, 1, 1, leaf)
	wantTA, _ := tlsa.NewRecord(2, 1, 1, ca)
	if want := []string{wantTA.String(), wantEE.String()}; !slices.Equal(got, want) {
		t.Fatalf("Records = %v, want %v", got, want)
	}
	// A chain without its issuer has no DANE-TA record.
	if got, _ := Records([]*x509.Certificate{leaf}, []Params{ta}); len(got) != 0 {
		t.Fatalf("DANE-TA record without an issuer in the chain: %v", got)
	}
}

func TestReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&Error{Kind: rfc2136.ErrTSIGRefused}, "tsig_refused"},
		{&Error{Kind: classify(fmt.Errorf("x: %w", rfc2136.ErrZoneNotServed))}, "zone_not_served"},
		{&Error{Kind: ErrZoneNotFound}, "zone_not_found"},
		{&Error{Kind: classify(errors.New("some provider's API said no"))}, "other"},
		{&Error{Kind: classify(context.DeadlineExceeded)}, "timeout"},
	} {
		if got := Reason(tc.err); got != tc.want {
			t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// TestReconcileStateNotSaved: when the zone was written but the state
// could not be saved, the change is still reported, with the error.
func TestReconcileStateNotSaved(t *testing.T) {
	r := newRig()
	p := r.publisher("a", "set")
	r.set("a", rec(1))
	r.storage.fail = errors.New("disk full")
	ch, err := p.Reconcile(context.Background(), owner)
	if Reason(err) != "storage" {
		t.Fatalf("Reconcile = %v, want a storage error", err)
	}
	if !slices.Equal(ch.Added, []string{rec(1)}) || !slices.Equal(r.zone.tlsa(rel), []string{rec(1)}) {
		t.Fatalf("the write that happened must be reported: %+v, zone %v", ch, r.zone.tlsa(rel))
	}
}
