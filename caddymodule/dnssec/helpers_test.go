package dnssec

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/caddy-dane/caddy-dane/internal/zonekit"
	"github.com/miekg/dns"
)

var (
	testNow        = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	testInception  = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	testExpiration = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
)

const (
	tlsaName = "_443._tcp.svc.example.test."
	tlsaData = "3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// tree is a private DNS tree: "." → "test." → "example.test.".
type tree struct {
	root, tld, zone *zonekit.Zone
	extra           []*zonekit.Zone // more zones to serve, made by hooks
	srv             *zonekit.Server
}

// hooks change a tree while it is built.
type hooks struct {
	beforeDelegate func(*tree) // zones made, records added
	beforeSign     func(*tree) // delegations (NS, glue, DS) added
	afterSign      func(*tree) // zones signed, server made
}

func newTree(t testing.TB, h hooks) *tree {
	t.Helper()
	tr := &tree{root: zonekit.NewZone("."), tld: zonekit.NewZone("test."), zone: zonekit.NewZone("example.test.")}
	tr.zone.MustAdd(
		tlsaName+" 300 IN TLSA "+tlsaData,
		"svc 300 IN A 192.0.2.1",
		"alias 300 IN CNAME svc",
		"loop1 IN CNAME loop2",
		"loop2 IN CNAME loop1",
		"*.wild IN TLSA "+tlsaData,
	)
	if h.beforeDelegate != nil {
		h.beforeDelegate(tr)
	}
	must(t, zonekit.Delegate(tr.root, tr.tld))
	must(t, zonekit.Delegate(tr.tld, tr.zone))
	if h.beforeSign != nil {
		h.beforeSign(tr)
	}
	for _, z := range []*zonekit.Zone{tr.root, tr.tld, tr.zone} {
		must(t, z.Sign(testInception, testExpiration))
	}
	tr.srv = zonekit.NewServer(append([]*zonekit.Zone{tr.root, tr.tld, tr.zone}, tr.extra...)...)
	if h.afterSign != nil {
		h.afterSign(tr)
	}
	return tr
}

// must fails the test (or panics, in hooks, when t is nil) on err.
func must(t testing.TB, err error) {
	if err == nil {
		return
	}
	if t == nil {
		panic(err)
	}
	t.Helper()
	t.Fatal(err)
}

func dsAnchors(z *zonekit.Zone) []dns.RR {
	var out []dns.RR
	for _, ds := range z.DS() {
		out = append(out, ds)
	}
	return out
}

func newValidator(t testing.TB, ex Exchanger, anchors []dns.RR, now *clock) *Validator {
	t.Helper()
	v, err := New(Config{Exchanger: ex, Anchors: anchors, Now: now.Now})
	must(t, err)
	return v
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: testNow} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// counter counts queries per "name TYPE" on the way to an Exchanger.
type counter struct {
	next  Exchanger
	mu    sync.Mutex
	byKey map[string]int
	total int
}

func countQueries(next Exchanger) *counter { return &counter{next: next, byKey: map[string]int{}} }

func (c *counter) Exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
	c.mu.Lock()
	c.byKey[rrsetName(dns.CanonicalName(q.Question[0].Name), q.Question[0].Qtype)]++
	c.total++
	c.mu.Unlock()
	return c.next.Exchange(ctx, q)
}

func (c *counter) Total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
