package dane

import (
	"context"
	"crypto/x509"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/dnssec"
	"github.com/caddy-dane/caddy-dane/internal/zonekit"
)

// Regression tests of issue 10 (items 3, 4, 9): with follow_cname, only a
// proof decides the TLSA base domain, and a refresh renews what was
// looked up. Every test goes through Authenticate, the one entry point.

// movingClock is a clock tests can advance.
type movingClock struct{ at atomic.Int64 }

func (c *movingClock) Now() time.Time      { return time.Unix(0, c.at.Load()) }
func (c *movingClock) Add(d time.Duration) { c.at.Add(int64(d)) }
func newMovingClock(t time.Time) *movingClock {
	c := new(movingClock)
	c.at.Store(t.UnixNano())
	return c
}

// cnameFixture is example.test. (anchored at its own DS) behind an
// exchanger that drops the questions drop selects, as an attacker on the
// path (or a lossy network) would. The authenticator follows CNAMEs and
// falls back to PKIX for a proven absence of DANE, with cert as a root:
// any downgrade to PKIX would be accepted, so it shows.
func cnameFixture(t *testing.T, cert *x509.Certificate, drop func(dns.Question) bool, records ...string) (*Authenticator, *movingClock) {
	t.Helper()
	z := zonekit.NewZone("example.test.")
	z.MustAdd(records...)
	if err := z.Sign(now.Add(-24*time.Hour), now.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	srv := zonekit.NewServer(z)
	ex := dnssec.ExchangeFunc(func(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
		if drop != nil && drop(q.Question[0]) {
			return nil, errors.New("query dropped")
		}
		return srv.Exchange(ctx, q)
	})
	var anchors []dns.RR
	for _, ds := range z.DS() {
		anchors = append(anchors, ds)
	}
	clock := newMovingClock(now)
	v, err := dnssec.New(dnssec.Config{Exchanger: ex, Anchors: anchors, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return &Authenticator{Prover: v, Now: clock.Now, OnNoTLSA: NoTLSAPKIX, FollowCNAME: true, Roots: roots,
		Refresh: func(ctx context.Context, owner string) *dnssec.Result { return v.Refresh(ctx, owner, dns.TypeTLSA) }}, clock
}

// presenting is a Handshake whose server presents cert.
func presenting(cert *x509.Certificate) Handshake {
	return func(_ context.Context, p Peer) error { return p.Verify([]*x509.Certificate{cert}) }
}

func dropQ(name string, qtype uint16) func(dns.Question) bool {
	return func(q dns.Question) bool { return dns.CanonicalName(q.Name) == name && q.Qtype == qtype }
}

func TestFollowCNAMEFailsClosed(t *testing.T) {
	cert, spki := selfSigned(t, "alias.example.test")
	_, other := selfSigned(t, "x")
	for _, tc := range []struct {
		name    string
		records []string
		drop    func(dns.Question) bool
	}{
		{
			// Item 3: an indeterminate lookup at the target is no proof
			// that the target has no DANE; the host's own (denied) TLSA
			// RRset must not stand in, nor PKIX behind it.
			name:    "RFC7671-7/TLSA lookup at the CNAME target dropped: refused, no PKIX fallback",
			records: []string{"alias IN CNAME target", "target IN A 192.0.2.1", "_443._tcp.target IN TLSA 3 1 1 " + other},
			drop:    dropQ("_443._tcp.target.example.test.", dns.TypeTLSA),
		},
		{
			// Item 9: the chain stopped at an indeterminate hop; the name
			// it stopped at is not where it leads.
			name: "RFC7671-7/CNAME chain cut mid-way: the intermediate name is not the base domain",
			records: []string{"alias IN CNAME mid", "mid IN CNAME target", "target IN A 192.0.2.1",
				"_443._tcp.mid IN TLSA 3 1 1 " + spki, "_443._tcp.target IN TLSA 3 1 1 " + other},
			drop: dropQ("mid.example.test.", dns.TypeA),
		},
		{
			// Item 9, first hop: whether alias is a CNAME at all is
			// unknown, so its own (denied) TLSA RRset decides nothing.
			name:    "RFC7671-7/address lookup of the host dropped: refused, no PKIX fallback",
			records: []string{"alias IN CNAME target", "target IN A 192.0.2.1", "_443._tcp.target IN TLSA 3 1 1 " + other},
			drop:    dropQ("alias.example.test.", dns.TypeA),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, _ := cnameFixture(t, cert, tc.drop, tc.records...)
			v, err := a.Authenticate(context.Background(), Target{Host: "alias.example.test", Port: 443}, presenting(cert))
			if err == nil {
				t.Fatalf("authenticated against %s (PKIX %v): want a refusal", v.Set.Owner, v.Set.PKIX)
			}
			r := RefusalOf(err)
			if r.Status != dnssec.Indeterminate || (r.Reason != ReasonIndeterminate && r.Reason != ReasonDNSError) {
				t.Errorf("refusal %q (%s): %v; want an indeterminate lookup", r.Reason, r.Status, r)
			}
		})
	}

	t.Run("RFC7671-7/without drops the same zones authenticate", func(t *testing.T) {
		a, _ := cnameFixture(t, cert, nil, "alias IN CNAME mid", "mid IN CNAME target", "target IN A 192.0.2.1",
			"_443._tcp.target IN TLSA 3 1 1 "+spki)
		v, err := a.Authenticate(context.Background(), Target{Host: "alias.example.test", Port: 443}, presenting(cert))
		if err != nil || v.Set.Owner != "_443._tcp.target.example.test." || v.Set.PKIX {
			t.Fatalf("%+v %v: want the DANE set of the chain's target", v, err)
		}
	})
}

// TestPrefetchRenewsWhatWasLookedUp (item 4): a set found at the CNAME
// target is prefetched at the target's owner. Refreshing the host's own
// owner (which has no TLSA) would swap the DANE set for a PKIX stand-in
// under on_no_tlsa pkix.
func TestPrefetchRenewsWhatWasLookedUp(t *testing.T) {
	cert, spki := selfSigned(t, "alias.example.test")
	a, clock := cnameFixture(t, cert, nil, "alias 300 IN CNAME target", "target 300 IN A 192.0.2.1",
		"_443._tcp.target 300 IN TLSA 3 1 1 "+spki)
	target := Target{Host: "alias.example.test", Port: 443}
	auth := func() *Verdict {
		t.Helper()
		v, err := a.Authenticate(context.Background(), target, presenting(cert))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	first := auth()
	if first.Set.PKIX || first.Set.Owner != "_443._tcp.target.example.test." {
		t.Fatalf("first set %s (PKIX %v)", first.Set.Owner, first.Set.PKIX)
	}
	clock.Add(280 * time.Second) // into the last tenth of the 300 s lifetime
	_ = auth()                   // starts the prefetch
	// Wait until the prefetch has replaced the cached set (or 2 s).
	got := auth()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) && got.Set.Expires.Equal(first.Set.Expires); {
		time.Sleep(5 * time.Millisecond)
		got = auth()
	}
	if got.Set.PKIX || got.Set.Owner != "_443._tcp.target.example.test." {
		t.Fatalf("after the prefetch: set %s, PKIX %v; want the target's DANE set renewed", got.Set.Owner, got.Set.PKIX)
	}
	if !got.Set.Expires.After(first.Set.Expires) {
		t.Errorf("the set was not renewed: expires %v, first %v", got.Set.Expires, first.Set.Expires)
	}
}
