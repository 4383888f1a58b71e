package dane

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/dnssec"
	"github.com/caddy-dane/caddy-dane/caddymodule/tlsa"
	"github.com/caddy-dane/caddy-dane/internal/pkikit"
	"github.com/caddy-dane/caddy-dane/internal/zonekit"
)

// Tests of DANE client authentication (client.go), by the section of
// draft-ietf-dance-client-auth-13 they exercise. Every verification goes
// through VerifyClient, hence Authenticate, the one entry point.

// clientFixture is example.test. (anchored at its own DS, signed on the
// real clock: pkikit certificates are dated from now) with the unsigned
// child zone unsigned.example.test., behind an exchanger that counts
// queries and can tamper with or stall answers.
type clientFixture struct {
	auth    *Authenticator
	srv     *zonekit.Server
	queries atomic.Int64  // queries sent to the zones
	lookups atomic.Int64  // Prover.Lookup calls (the validator may answer from its cache)
	stall   atomic.Bool   // hold every query until its context ends
	delay   time.Duration // added to every answer (set before use)
	anchors []dns.RR      // the DS of example.test.
}

// countingProver counts the lookups that reach the Prover.
type countingProver struct {
	dnssec.Prover
	n *atomic.Int64
}

func (p countingProver) Lookup(ctx context.Context, name string, qtype uint16) *dnssec.Result {
	p.n.Add(1)
	return p.Prover.Lookup(ctx, name, qtype)
}

func newClientFixture(t testing.TB, records ...string) *clientFixture {
	t.Helper()
	start := time.Now()
	z := zonekit.NewZone("example.test.")
	z.MustAdd(records...)
	u := zonekit.NewZone("unsigned.example.test.")
	u.SetUnsigned(true)
	u.MustAdd("c.unsigned.example.test. 300 IN TLSA 3 1 1 " + strings.Repeat("ab", 32))
	if err := zonekit.Delegate(z, u); err != nil {
		t.Fatal(err)
	}
	for _, zz := range []*zonekit.Zone{u, z} {
		if err := zz.Sign(start.Add(-24*time.Hour), start.Add(24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	f := &clientFixture{srv: zonekit.NewServer(z, u)}
	ex := dnssec.ExchangeFunc(func(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
		f.queries.Add(1)
		if f.stall.Load() {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		if f.delay > 0 {
			select {
			case <-time.After(f.delay):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return f.srv.Exchange(ctx, q)
	})
	var anchors []dns.RR
	for _, ds := range z.DS() {
		anchors = append(anchors, ds)
	}
	f.anchors = anchors
	v, err := dnssec.New(dnssec.Config{Exchanger: ex, Anchors: anchors})
	if err != nil {
		t.Fatal(err)
	}
	f.auth = &Authenticator{Prover: countingProver{v, &f.lookups}, LookupTimeout: 2 * time.Second}
	return f
}

// must(t)(leaf, err) is the leaf, or a fatal error.
func must(t testing.TB) func(*pkikit.Leaf, error) *pkikit.Leaf {
	return func(l *pkikit.Leaf, err error) *pkikit.Leaf {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
}

func chainOf(l *pkikit.Leaf) []*x509.Certificate {
	return append([]*x509.Certificate{l.Cert}, l.Chain...)
}

func certSHA256(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

var clientPolicy = ClientPolicy{Names: []string{"exact.example.test"}, Suffixes: []string{"clients.example.test", "unsigned.example.test"}}

func TestVerifyClient(t *testing.T) {
	root, err := pkikit.NewRoot("Client CA")
	if err != nil {
		t.Fatal(err)
	}
	good := must(t)(pkikit.SelfSignedClient("good.clients.example.test"))
	exact := must(t)(pkikit.SelfSignedClient("exact.example.test"))
	svc := must(t)(pkikit.SelfSignedClient("svc.clients.example.test"))
	ta := must(t)(root.NewClientLeaf("ta.clients.example.test"))
	taServerOnly := must(t)(root.NewLeaf("ta.clients.example.test")) // serverAuth EKU only
	pk := must(t)(root.NewClientLeaf("pkix.clients.example.test"))
	pkServerOnly := must(t)(root.NewLeaf("pkix.clients.example.test"))
	wrong := must(t)(pkikit.SelfSignedClient("wrong.clients.example.test"))
	other := must(t)(pkikit.SelfSignedClient("other"))
	dev := must(t)(pkikit.SelfSignedClient("sensor7._device.example.test"))
	records := []string{
		"good.clients 300 IN TLSA " + good.TLSA311(),
		"exact 300 IN TLSA " + exact.TLSA311(),
		"_smtp-client.svc.clients 300 IN TLSA " + svc.TLSA311(),
		"ta.clients 300 IN TLSA 2 0 1 " + certSHA256(root.Cert),
		"pkix.clients 300 IN TLSA 1 1 1 " + pkikit.SPKISHA256(pk.Cert) + " ",
		"wrong.clients 300 IN TLSA " + other.TLSA311(),
		"notlsa.clients 300 IN A 192.0.2.1",
		"bogus.clients 300 IN TLSA " + good.TLSA311(),
		"sensor7._device 300 IN TLSA " + dev.TLSA311(),
	}
	f := newClientFixture(t, records...)
	f.srv.Tamper = func(q, resp *dns.Msg) {
		if q.Question[0].Name == "bogus.clients.example.test." {
			for _, rr := range resp.Answer {
				if tl, ok := rr.(*dns.TLSA); ok {
					tl.Certificate = strings.Repeat("00", 32)
				}
			}
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(root.Cert)
	f.auth.Roots = roots

	svcPolicy := clientPolicy
	svcPolicy.Service = "smtp-client"

	for _, tc := range []struct {
		name   string
		policy ClientPolicy
		chain  []*x509.Certificate
		want   Reason // "" = verified
		owner  string // TLSA owner of the verdict or refusal, "" = none
	}{
		{name: "draft-2.3/freeform identity, DANE-EE 3 1 1, suffix admitted", policy: clientPolicy, chain: chainOf(good), owner: "good.clients.example.test."},
		{name: "draft-2.3/freeform identity, exact name admitted", policy: clientPolicy, chain: chainOf(exact), owner: "exact.example.test."},
		{name: "draft-2.1/service specific identity _smtp-client.<name>", policy: svcPolicy, chain: chainOf(svc), owner: "_smtp-client.svc.clients.example.test."},
		{name: "draft-2.1/service label set, no record at the service owner", policy: svcPolicy, chain: chainOf(good), want: ReasonNoTLSA, owner: "_smtp-client.good.clients.example.test."},
		{name: "draft-5/DANE-TA 2 0 1, clientAuth leaf under the anchor", policy: clientPolicy, chain: append(chainOf(ta), root.Cert), owner: "ta.clients.example.test."},
		{name: "draft-5/DANE-TA, leaf for serverAuth only: not a client certificate", policy: clientPolicy, chain: append(chainOf(taServerOnly), root.Cert), want: ReasonChain, owner: "ta.clients.example.test."},
		{name: "draft-4/PKIX-EE 1 1 1, clientAuth leaf valid to the PKIX roots", policy: clientPolicy, chain: chainOf(pk), owner: "pkix.clients.example.test."},
		{name: "draft-4/PKIX-EE, leaf for serverAuth only fails PKIX for clientAuth", policy: clientPolicy, chain: chainOf(pkServerOnly), want: ReasonPKIX, owner: "pkix.clients.example.test."},
		{name: "draft-8.2/wrong key: no record matches", policy: clientPolicy, chain: chainOf(wrong), want: ReasonMismatch, owner: "wrong.clients.example.test."},
		{name: "draft-8.2/no TLSA RRset at the client name", policy: clientPolicy, chain: chainOf(must(t)(pkikit.SelfSignedClient("notlsa.clients.example.test"))), want: ReasonNoTLSA, owner: "notlsa.clients.example.test."},
		{name: "draft-8.2/NXDOMAIN client name", policy: clientPolicy, chain: chainOf(must(t)(pkikit.SelfSignedClient("nx.clients.example.test"))), want: ReasonNoTLSA, owner: "nx.clients.example.test."},
		{name: "draft-8.2/unsigned zone: insecure", policy: clientPolicy, chain: chainOf(must(t)(pkikit.SelfSignedClient("c.unsigned.example.test"))), want: ReasonInsecure, owner: "c.unsigned.example.test."},
		{name: "draft-8.2,RFC4035-5.5/tampered TLSA rdata: bogus", policy: clientPolicy, chain: chainOf(good2(t, "bogus.clients.example.test", good)), want: ReasonBogus, owner: "bogus.clients.example.test."},
		{name: "draft-8.2/name outside the allow-list, even with TLSA records", policy: ClientPolicy{Names: []string{"exact.example.test"}}, chain: chainOf(good), want: ReasonNotAllowed},
		{name: "draft-8.2/suffix admits names strictly below it only", policy: ClientPolicy{Suffixes: []string{"good.clients.example.test"}}, chain: chainOf(good), want: ReasonNotAllowed},
		{name: "draft-5/no dNSName SAN", policy: clientPolicy, chain: chainOf(must(t)(pkikit.SelfSignedClient())), want: ReasonNoName},
		{name: "draft-5/wildcard SAN names no single client", policy: clientPolicy, chain: chainOf(must(t)(pkikit.SelfSignedClient("*.clients.example.test"))), want: ReasonNoName},
		{name: "draft-6,8.2/two admitted SANs: ambiguous without the extension", policy: clientPolicy, chain: chainOf(must(t)(pkikit.SelfSignedClient("good.clients.example.test", "exact.example.test"))), want: ReasonNoName},
		{name: "draft-6/one admitted SAN among others is the identity", policy: ClientPolicy{Names: []string{"good.clients.example.test"}}, chain: chainOf(good2(t, "good.clients.example.test", good, "unrelated.example.org")), owner: "good.clients.example.test."},
		{name: "draft-2.2/device identity sensor7._device.<org> under an underscore suffix", policy: ClientPolicy{Suffixes: []string{"_device.example.test"}}, chain: chainOf(dev), owner: "sensor7._device.example.test."},
		{name: "RFC8552/attribute-leaf SAN _443._tcp.<server> is no client name", policy: ClientPolicy{Suffixes: []string{"example.test"}}, chain: chainOf(must(t)(pkikit.SelfSignedClient("_443._tcp.good.clients.example.test"))), want: ReasonNoName},
		{name: "draft-8.2/no certificate", policy: clientPolicy, chain: nil, want: ReasonNoName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := f.auth.VerifyClient(context.Background(), tc.policy, tc.chain)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if v.Set.Owner != tc.owner || v.Identity.Base != strings.TrimPrefix(tc.owner, "_smtp-client.") || v.Match == nil {
					t.Fatalf("verdict for %s at %s (match %v), want owner %s", v.Identity.Base, v.Set.Owner, v.Match, tc.owner)
				}
				return
			}
			if err == nil {
				t.Fatalf("verified %s at %s: want a refusal %q", v.Identity.Base, v.Set.Owner, tc.want)
			}
			r := RefusalOf(err)
			if r.Reason != tc.want || r.Owner != tc.owner {
				t.Fatalf("refusal %q at %q: %v; want %q at %q", r.Reason, r.Owner, err, tc.want, tc.owner)
			}
		})
	}
}

// good2 is a self-signed client certificate for names with the key of l,
// so that l's DANE-EE record matches it.
func good2(t *testing.T, name string, l *pkikit.Leaf, more ...string) *pkikit.Leaf {
	t.Helper()
	return must(t)(pkikit.SelfSigned(l.Key, append([]string{name}, more...)...))
}

// TestClientNoPKIXFallback: on_no_tlsa pkix is for servers. A client whose
// name provably has no TLSA records is refused even though its chain is
// PKIX-valid for clientAuth (draft §8.2: the server MUST abort, or treat
// the client as unauthenticated; it never authenticates it otherwise).
func TestClientNoPKIXFallback(t *testing.T) {
	root, err := pkikit.NewRoot("Client CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf := must(t)(root.NewClientLeaf("notlsa.clients.example.test"))
	f := newClientFixture(t, "notlsa.clients 300 IN A 192.0.2.1")
	roots := x509.NewCertPool()
	roots.AddCert(root.Cert)
	f.auth.Roots, f.auth.OnNoTLSA = roots, NoTLSAPKIX
	v, err := f.auth.VerifyClient(context.Background(), clientPolicy, chainOf(leaf))
	if err == nil {
		t.Fatalf("client authenticated (PKIX %v): want no tlsa", v.Set.PKIX)
	}
	if r := RefusalOf(err); r.Reason != ReasonNoTLSA {
		t.Fatalf("refusal %q: %v; want %q", r.Reason, err, ReasonNoTLSA)
	}
}

// TestClientIdentityKeyDistinct: a client identity and the server identity
// of the same name never share a Key (connection pools, session caches).
func TestClientIdentityKeyDistinct(t *testing.T) {
	leaf := must(t)(pkikit.SelfSignedClient("api.example.test"))
	ct, err := ClientPolicy{Names: []string{"api.example.test"}}.Target(leaf.Cert)
	if err != nil {
		t.Fatal(err)
	}
	cid, _ := ct.Identity()
	sid, err := Target{Host: "api.example.test", Port: 443}.Identity()
	if err != nil {
		t.Fatal(err)
	}
	if cid.Key() == sid.Key() || cid.Owner != "api.example.test." || sid.Owner != "" {
		t.Fatalf("client %+v and server %+v identities: keys %s %s", cid, sid, cid.Key(), sid.Key())
	}
	// The server identity's encoding is what it was before Owner existed.
	if got, want := string(sid.AppendFields(nil)), "17:api.example.test.p44317:api.example.test.16:api.example.test0:17:api.example.test."; got != want {
		t.Fatalf("server identity encodes as %q, want %q", got, want)
	}
}

// TestClientLookupBounds: the flood protections (draft §12 on DNS lookups
// that clients can trigger): refused when every slot is busy, refusals
// remembered for the negative TTL, then looked up again.
func TestClientLookupBounds(t *testing.T) {
	f := newClientFixture(t, "notlsa.clients 300 IN A 192.0.2.1")
	f.auth.ClientLookups = 1
	f.auth.ClientLookupRate = 1e9 // the rate is tested on its own below
	f.auth.ClientNegativeTTL = 200 * time.Millisecond
	f.auth.LookupTimeout = 2 * time.Second
	ctx := context.Background()
	notlsa := chainOf(must(t)(pkikit.SelfSignedClient("notlsa.clients.example.test")))

	t.Run("negative TTL/a refused identity costs no DNS until it expires", func(t *testing.T) {
		if _, err := f.auth.VerifyClient(ctx, clientPolicy, notlsa); RefusalOf(err).Reason != ReasonNoTLSA {
			t.Fatalf("first: %v", err)
		}
		before, lookups := f.queries.Load(), f.lookups.Load()
		_, err := f.auth.VerifyClient(ctx, clientPolicy, notlsa)
		if r := RefusalOf(err); r.Reason != ReasonNoTLSA || !strings.Contains(err.Error(), "remembered") {
			t.Fatalf("second: %v; want the remembered no-tlsa refusal", err)
		}
		if n, l := f.queries.Load()-before, f.lookups.Load()-lookups; n != 0 || l != 0 {
			t.Fatalf("the remembered refusal sent %d queries, %d lookups", n, l)
		}
		time.Sleep(250 * time.Millisecond)
		if _, err := f.auth.VerifyClient(ctx, clientPolicy, notlsa); RefusalOf(err).Reason != ReasonNoTLSA {
			t.Fatalf("after the TTL: %v", err)
		}
		if f.lookups.Load() == lookups {
			t.Fatal("after the negative TTL the identity was not looked up again")
		}
	})

	t.Run("slots/a handshake finding every lookup slot busy is refused, not queued", func(t *testing.T) {
		f.stall.Store(true)
		defer f.stall.Store(false)
		done := make(chan error, 1)
		go func() {
			_, err := f.auth.VerifyClient(ctx, clientPolicy, chainOf(must(t)(pkikit.SelfSignedClient("slow.clients.example.test"))))
			done <- err
		}()
		// Wait until the first lookup holds the slot.
		for deadline := time.Now().Add(2 * time.Second); len(f.auth.client.sem) == 0; {
			if time.Now().After(deadline) {
				t.Fatalf("the first lookup never held the slot: %v", <-done)
			}
			time.Sleep(time.Millisecond)
		}
		start := time.Now()
		_, err := f.auth.VerifyClient(ctx, clientPolicy, chainOf(must(t)(pkikit.SelfSignedClient("fresh.clients.example.test"))))
		if r := RefusalOf(err); r.Reason != ReasonBusy {
			t.Fatalf("second lookup: %v; want %q", err, ReasonBusy)
		}
		if el := time.Since(start); el > 100*time.Millisecond {
			t.Errorf("the busy refusal took %v: it must not wait for a slot", el)
		}
		if r := RefusalOf(<-done); r.Reason != ReasonDNSTimeout && r.Reason != ReasonIndeterminate && r.Reason != ReasonDNSError {
			t.Errorf("stalled lookup: %v; want it bounded by the lookup timeout", r)
		}
	})

	t.Run("rate/cold lookups beyond the rate are refused, then admitted again", func(t *testing.T) {
		g := newClientFixture(t)
		g.auth.ClientLookups, g.auth.ClientLookupRate = 2, 4 // burst 2, one token per 250 ms
		verify := func(name string) error {
			_, err := g.auth.VerifyClient(ctx, clientPolicy, chainOf(must(t)(pkikit.SelfSignedClient(name))))
			return err
		}
		for _, n := range []string{"r1.clients.example.test", "r2.clients.example.test"} {
			if r := RefusalOf(verify(n)); r.Reason != ReasonNoTLSA {
				t.Fatalf("%s within the burst: %v", n, r)
			}
		}
		err := verify("r3.clients.example.test")
		if r := RefusalOf(err); r.Reason != ReasonBusy || !strings.Contains(err.Error(), "a second") {
			t.Fatalf("third cold lookup at once: %v; want %q (rate)", err, ReasonBusy)
		}
		lookups := g.lookups.Load()
		if verify("r1.clients.example.test") == nil || g.lookups.Load() != lookups {
			t.Fatal("a remembered refusal must not need a token, nor a lookup")
		}
		time.Sleep(300 * time.Millisecond)
		if r := RefusalOf(verify("r3.clients.example.test")); r.Reason != ReasonNoTLSA {
			t.Fatalf("after a token came back: %v", r)
		}
	})

	t.Run("negative cache/bounded in entries", func(t *testing.T) {
		c := f.auth.clientInit()
		now := time.Now()
		for i := 0; i < maxClientNegative+100; i++ {
			f.auth.rememberRefusal(c, strings.Repeat("x", i%7)+"n"+hex.EncodeToString([]byte{byte(i >> 8), byte(i)})+".clients.example.test.", &Refusal{Reason: ReasonNoTLSA}, now)
		}
		c.mu.Lock()
		n := len(c.neg)
		c.mu.Unlock()
		if n > maxClientNegative {
			t.Fatalf("%d remembered refusals, want at most %d", n, maxClientNegative)
		}
	})
}

// TestClientPurposeIsClientAuth: a client's chain is checked for
// clientAuth, never serverAuth (tlsa.PurposeClient), in DANE-TA paths.
func TestClientPurposeIsClientAuth(t *testing.T) {
	id := Identity{Owner: "a.example."}
	if id.purpose() != tlsa.PurposeClient || (Identity{}).purpose() != tlsa.PurposeServer {
		t.Fatal("purpose of client and server identities")
	}
}

// TestClientPolicyValidate: an empty allow-list is refused at config load.
func TestClientPolicyValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    ClientPolicy
		ok   bool
	}{
		{"draft-8.2/empty allow-list: a TLSA record alone admits nobody", ClientPolicy{}, false},
		{"names", ClientPolicy{Names: []string{"a.example.com"}}, true},
		{"suffix", ClientPolicy{Suffixes: []string{"example.com"}}, true},
		{"draft-2.1/service label", ClientPolicy{Names: []string{"a.example.com"}, Service: "smtp-client"}, true},
		{"draft-2.1/service label given with its underscore", ClientPolicy{Names: []string{"a.example.com"}, Service: "_smtp-client"}, true},
		{"service label with a dot", ClientPolicy{Names: []string{"a.example.com"}, Service: "a.b"}, false},
		{"IP literal", ClientPolicy{Names: []string{"192.0.2.1"}}, false},
		{"RFC8552/underscore-leading name", ClientPolicy{Names: []string{"_443._tcp.a.example.com"}}, false},
		{"draft-2.2/device identities below an underscore suffix", ClientPolicy{Suffixes: []string{"_device.example.com"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.p.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
