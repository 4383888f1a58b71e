package dnssec

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// trustFixture is a scripted validating resolver for TrustResolver: the
// DNSKEY probe of "test." is answered with key (AD set unless told
// otherwise), a CHAOS query by chaos (REFUSED, as Unbound answers
// servers.bind, when nil) and every other query by answer.
type trustFixture struct {
	key      *dns.DNSKEY
	probeAD  bool
	probeKey *dns.DNSKEY // answered instead of key when set
	probeRC  int
	answer   func(q *dns.Msg) *dns.Msg
	chaos    func(q *dns.Msg) (*dns.Msg, error)

	probes, chaosProbes, queries atomic.Int32
}

func newTrustFixture(t *testing.T) *trustFixture {
	t.Helper()
	return &trustFixture{key: newKey(t, "test."), probeAD: true}
}

func newKey(t *testing.T, zone string) *dns.DNSKEY {
	t.Helper()
	k := &dns.DNSKEY{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags: 257, Protocol: 3, Algorithm: dns.ECDSAP256SHA256}
	if _, err := k.Generate(256); err != nil {
		t.Fatal(err)
	}
	return k
}

func (f *trustFixture) Exchange(_ context.Context, q *dns.Msg) (*dns.Msg, error) {
	if q.Question[0].Qclass == dns.ClassCHAOS {
		f.chaosProbes.Add(1)
		if f.chaos != nil {
			return f.chaos(q)
		}
		return reply(q, dns.RcodeRefused, false), nil
	}
	if !q.AuthenticatedData || q.CheckingDisabled || !q.RecursionDesired {
		return nil, errors.New("query flags: want RD=1 AD=1 CD=0")
	}
	if opt := q.IsEdns0(); opt == nil || !opt.Do() {
		return nil, errors.New("query without EDNS0 DO")
	}
	if qq := q.Question[0]; qq.Qtype == dns.TypeDNSKEY && qq.Name == "test." {
		f.probes.Add(1)
		m := new(dns.Msg)
		m.SetReply(q)
		m.Rcode = f.probeRC
		m.AuthenticatedData = f.probeAD
		k := f.key
		if f.probeKey != nil {
			k = f.probeKey
		}
		m.Answer = []dns.RR{k}
		return m, nil
	}
	f.queries.Add(1)
	return f.answer(q), nil
}

func (f *trustFixture) trust(t *testing.T, now func() time.Time) *TrustResolver {
	t.Helper()
	rt, err := NewTrustResolver(TrustResolverConfig{Resolvers: []Resolver{{Name: "127.0.0.1:53", Exchanger: f}}, Anchors: []dns.RR{f.key.ToDS(dns.SHA256)}, Now: now, MaxCNAMEs: 3})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// reply builds an answer to q with rcode, AD and records.
func reply(q *dns.Msg, rcode int, ad bool, rrs ...string) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Rcode, m.AuthenticatedData = rcode, ad
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil {
			panic(err)
		}
		if rr.Header().Rrtype == dns.TypeSOA {
			m.Ns = append(m.Ns, rr)
		} else {
			m.Answer = append(m.Answer, rr)
		}
	}
	return m
}

func servfailMsg(q *dns.Msg, code uint16, text string) *dns.Msg {
	m := reply(q, dns.RcodeServerFailure, false)
	if code != 0 {
		m.SetEdns0(1232, true)
		opt := m.IsEdns0()
		opt.Option = append(opt.Option, &dns.EDNS0_EDE{InfoCode: code, ExtraText: text})
	}
	return m
}

const (
	trustTLSA = tlsaName + " 300 IN TLSA " + tlsaData
	trustSOA  = "example.test. 900 IN SOA ns.example.test. h.example.test. 1 7200 3600 1209600 120"
)

func TestResolverTrust(t *testing.T) {
	for _, tc := range []struct {
		name    string
		qname   string
		answer  func(q *dns.Msg) *dns.Msg
		setup   func(f *trustFixture)
		status  Status
		records int
		cnames  int
		rcode   int
		ttl     time.Duration
		ede     uint16
		reason  string // substring of Err
		noQuery bool   // the question must not reach the resolver
	}{
		{name: "AD set: secure", answer: func(q *dns.Msg) *dns.Msg { return reply(q, 0, true, trustTLSA) },
			status: Secure, records: 1, ttl: 300 * time.Second},
		{name: "AD clear: insecure", answer: func(q *dns.Msg) *dns.Msg { return reply(q, 0, false, trustTLSA) },
			status: Insecure, records: 1, reason: "did not set the AD bit"},
		{name: "secure NXDOMAIN takes the SOA minimum", answer: func(q *dns.Msg) *dns.Msg { return reply(q, dns.RcodeNameError, true, trustSOA) },
			status: Secure, rcode: dns.RcodeNameError, ttl: 120 * time.Second},
		{name: "secure NODATA without SOA is not cached", answer: func(q *dns.Msg) *dns.Msg { return reply(q, 0, true) },
			status: Secure, ttl: 0},
		{name: "insecure NXDOMAIN", answer: func(q *dns.Msg) *dns.Msg { return reply(q, dns.RcodeNameError, false, trustSOA) },
			status: Insecure, rcode: dns.RcodeNameError, reason: "NXDOMAIN answer"},
		{name: "SERVFAIL with a DNSSEC EDE is bogus", answer: func(q *dns.Msg) *dns.Msg {
			return servfailMsg(q, dns.ExtendedErrorCodeSignatureExpired, "validation failure <_443._tcp.svc.example.test. TLSA IN>: signature expired")
		}, status: Bogus, ede: dns.ExtendedErrorCodeSignatureExpired, reason: `bogus: 127.0.0.1:53 answered SERVFAIL for _443._tcp.svc.example.test. TLSA (EDE 7 Signature Expired: "validation failure`},
		{name: "SERVFAIL with EDE DNSSEC Bogus", answer: func(q *dns.Msg) *dns.Msg { return servfailMsg(q, dns.ExtendedErrorCodeDNSBogus, "") },
			status: Bogus, ede: dns.ExtendedErrorCodeDNSBogus, reason: "(EDE 6 DNSSEC Bogus)"},
		{name: "SERVFAIL with a network EDE is indeterminate", answer: func(q *dns.Msg) *dns.Msg {
			return servfailMsg(q, dns.ExtendedErrorCodeNoReachableAuthority, "")
		}, status: Indeterminate, ede: dns.ExtendedErrorCodeNoReachableAuthority, reason: "No Reachable Authority"},
		{name: "SERVFAIL without EDE is indeterminate", answer: func(q *dns.Msg) *dns.Msg { return servfailMsg(q, 0, "") },
			status: Indeterminate, ede: dns.ExtendedErrorCodeDNSSECIndeterminate, reason: "answered SERVFAIL"},
		{name: "REFUSED", answer: func(q *dns.Msg) *dns.Msg { return reply(q, dns.RcodeRefused, false) },
			status: Indeterminate, rcode: dns.RcodeRefused, reason: "answered REFUSED"},
		{name: "secure CNAME chain", qname: "_443._tcp.alias.example.test.", answer: func(q *dns.Msg) *dns.Msg {
			return reply(q, 0, true, "_443._tcp.alias.example.test. 60 IN CNAME _443._tcp.svc.example.test.", trustTLSA)
		}, status: Secure, records: 1, cnames: 1, ttl: 60 * time.Second},
		{name: "DNAME with its synthesized CNAME", qname: "_443._tcp.svc.old.test.", answer: func(q *dns.Msg) *dns.Msg {
			return reply(q, 0, true, "old.test. 200 IN DNAME example.test.",
				"_443._tcp.svc.old.test. 200 IN CNAME _443._tcp.svc.example.test.", trustTLSA)
		}, status: Secure, records: 1, cnames: 1, ttl: 200 * time.Second},
		{name: "insecure CNAME chain reports no CNAME", qname: "_443._tcp.alias.example.test.", answer: func(q *dns.Msg) *dns.Msg {
			return reply(q, 0, false, "_443._tcp.alias.example.test. 60 IN CNAME _443._tcp.svc.example.test.", trustTLSA)
		}, status: Insecure, records: 1},
		{name: "CNAME loop", qname: "a.example.test.", answer: func(q *dns.Msg) *dns.Msg {
			return reply(q, 0, true, "a.example.test. 60 IN CNAME b.example.test.", "b.example.test. 60 IN CNAME a.example.test.")
		}, status: Bogus, reason: "CNAME loop"},
		{name: "too many CNAMEs", qname: "a.example.test.", answer: func(q *dns.Msg) *dns.Msg {
			return reply(q, 0, true, "a.example.test. 60 IN CNAME b.example.test.", "b.example.test. 60 IN CNAME c.example.test.",
				"c.example.test. 60 IN CNAME d.example.test.", "d.example.test. 60 IN CNAME e.example.test.", "e.example.test. 60 IN TLSA "+tlsaData)
		}, status: Indeterminate, reason: "more than 3 CNAMEs"},
		{name: "two CNAMEs at one name", qname: "a.example.test.", answer: func(q *dns.Msg) *dns.Msg {
			return reply(q, 0, true, "a.example.test. 60 IN CNAME b.example.test.", "a.example.test. 60 IN CNAME c.example.test.")
		}, status: Bogus, reason: "2 CNAME records"},
		{name: "records for other names are ignored", answer: func(q *dns.Msg) *dns.Msg {
			return reply(q, 0, true, "_443._tcp.evil.example.test. 300 IN TLSA "+tlsaData)
		}, status: Secure, records: 0},
		{name: "answer to another question is ignored", answer: func(q *dns.Msg) *dns.Msg {
			m := reply(q, 0, true, trustTLSA)
			m.Question[0].Qtype = dns.TypeA
			return m
		}, status: Indeterminate, reason: "ignored: question"},
		{name: "resolver without AD on the anchor zone", setup: func(f *trustFixture) { f.probeAD = false },
			answer: func(q *dns.Msg) *dns.Msg { return reply(q, 0, true, trustTLSA) },
			status: Indeterminate, noQuery: true, reason: "does not validate DNSSEC with the configured trust anchor: its answer for test. DNSKEY came without the AD bit"},
		{name: "resolver with another anchor", setup: func(f *trustFixture) { f.probeKey = newKey(t, "test.") },
			answer: func(q *dns.Msg) *dns.Msg { return reply(q, 0, true, trustTLSA) },
			status: Indeterminate, noQuery: true, reason: "matches the trust anchor"},
		{name: "resolver failing the probe", setup: func(f *trustFixture) { f.probeRC = dns.RcodeServerFailure },
			answer: func(q *dns.Msg) *dns.Msg { return reply(q, 0, true, trustTLSA) },
			status: Indeterminate, noQuery: true, reason: "it answered SERVFAIL for test. DNSKEY"},
		{name: "no trust anchor above the name", qname: "_443._tcp.example.org.",
			answer: func(q *dns.Msg) *dns.Msg { return reply(q, 0, true, trustTLSA) },
			status: Indeterminate, noQuery: true, reason: "no trust anchor at or above"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTrustFixture(t)
			f.answer = tc.answer
			if tc.setup != nil {
				tc.setup(f)
			}
			qname := tc.qname
			if qname == "" {
				qname = tlsaName
			}
			r := f.trust(t, newClock().Now).Lookup(context.Background(), qname, dns.TypeTLSA)
			if r.Status != tc.status {
				t.Fatalf("status %s, want %s: %v", r.Status, tc.status, r.Err)
			}
			if (r.Err == nil) != (tc.status == Secure) {
				t.Fatalf("status %s with err %v", r.Status, r.Err)
			}
			if tc.reason != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), tc.reason)) {
				t.Fatalf("err %v, want it to contain %q", r.Err, tc.reason)
			}
			if len(r.RRset) != tc.records || len(r.CNAME) != tc.cnames {
				t.Fatalf("%d records, %d CNAMEs; want %d, %d", len(r.RRset), len(r.CNAME), tc.records, tc.cnames)
			}
			if tc.rcode != 0 && r.Rcode != tc.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
			}
			if tc.status == Secure && r.TTL != tc.ttl {
				t.Fatalf("TTL %s, want %s", r.TTL, tc.ttl)
			}
			if tc.ede != 0 && r.EDE != tc.ede {
				t.Fatalf("EDE %d, want %d", r.EDE, tc.ede)
			}
			if (tc.status == Bogus || tc.status == Indeterminate) && r.TTL != badTTL {
				t.Fatalf("unproven result with TTL %s", r.TTL)
			}
			if got := f.queries.Load(); tc.noQuery && got != 0 {
				t.Fatalf("%d queries reached the resolver it does not trust", got)
			}
			if r.ProvenBy != "127.0.0.1:53" && tc.qname != "_443._tcp.example.org." {
				t.Fatalf("ProvenBy %q", r.ProvenBy)
			}
		})
	}
}

// TestResolverTrustProbeCache checks that the probe is made once per
// interval, retried soon after a failure, and shared by concurrent lookups.
func TestResolverTrustProbeCache(t *testing.T) {
	f := newTrustFixture(t)
	f.answer = func(q *dns.Msg) *dns.Msg { return reply(q, 0, true, trustTLSA) }
	clock := newClock()
	rt := f.trust(t, clock.Now)
	ctx := context.Background()

	f.probeAD = false
	if r := rt.Lookup(ctx, tlsaName, dns.TypeTLSA); r.Status != Indeterminate {
		t.Fatalf("first lookup: %s", r)
	}
	f.probeAD = true
	if r := rt.Lookup(ctx, tlsaName, dns.TypeTLSA); r.Status != Indeterminate || f.probes.Load() != 1 {
		t.Fatalf("a failed probe is remembered for badTTL: %s after %d probes", r, f.probes.Load())
	}
	clock.Add(badTTL)
	for i := 0; i < 10; i++ {
		if r := rt.Lookup(ctx, tlsaName, dns.TypeTLSA); r.Status != Secure {
			t.Fatalf("after badTTL: %s", r)
		}
	}
	if n := f.probes.Load(); n != 2 {
		t.Fatalf("%d probes, want 2", n)
	}
	clock.Add(DefaultProbeInterval)
	f.probeAD = false
	if r := rt.Lookup(ctx, tlsaName, dns.TypeTLSA); r.Status != Indeterminate || f.probes.Load() != 3 {
		t.Fatalf("the probe is made again after its interval: %s after %d probes", r, f.probes.Load())
	}
	if err := rt.Probe(ctx, "test"); err == nil || !strings.Contains(err.Error(), "does not validate") {
		t.Fatalf("Probe: %v", err)
	}
}

// TestResolverTrustFailover: each resolver is probed on its own; a lookup
// skips one that does not validate or does not answer, and a bogus verdict
// is not hidden by a later resolver's failure.
func TestResolverTrustFailover(t *testing.T) {
	good, bad := newTrustFixture(t), newTrustFixture(t)
	bad.key = good.key
	bad.probeAD = false // a forwarder: never sets AD
	good.answer = func(q *dns.Msg) *dns.Msg { return reply(q, 0, true, trustTLSA) }
	bad.answer = func(q *dns.Msg) *dns.Msg { return reply(q, 0, true, trustTLSA) } // would claim AD on anything
	silent := ExchangeFunc(func(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
		return nil, &timeoutErr{}
	})
	anchors := []dns.RR{good.key.ToDS(dns.SHA256)}
	newRT := func(rs ...Resolver) *TrustResolver {
		rt, err := NewTrustResolver(TrustResolverConfig{Resolvers: rs, Anchors: anchors, Now: newClock().Now})
		if err != nil {
			t.Fatal(err)
		}
		return rt
	}
	ctx := context.Background()

	rt := newRT(Resolver{"forwarder", bad}, Resolver{"silent", silent}, Resolver{"unbound", good})
	r := rt.Lookup(ctx, tlsaName, dns.TypeTLSA)
	if r.Status != Secure || r.ProvenBy != "unbound" {
		t.Fatalf("%s from %q", r, r.ProvenBy)
	}
	if n := bad.queries.Load(); n != 0 {
		t.Fatalf("the forwarder was asked %d questions", n)
	}
	if err := rt.Probe(ctx, "test."); err == nil || !strings.Contains(err.Error(), "forwarder does not validate") {
		t.Fatalf("Probe: %v", err)
	}

	good.answer = func(q *dns.Msg) *dns.Msg { return servfailMsg(q, dns.ExtendedErrorCodeSignatureExpired, "") }
	r = newRT(Resolver{"unbound", good}, Resolver{"forwarder", bad}).Lookup(ctx, tlsaName, dns.TypeTLSA)
	if r.Status != Bogus || r.ProvenBy != "unbound" {
		t.Fatalf("bogus then untrusted: %s from %q", r, r.ProvenBy)
	}
	r = newRT(Resolver{"forwarder", bad}).Lookup(ctx, tlsaName, dns.TypeTLSA)
	if r.Status != Indeterminate || !strings.Contains(r.Err.Error(), "does not validate") {
		t.Fatalf("only a forwarder: %s", r)
	}
}

type timeoutErr struct{}

func (*timeoutErr) Error() string   { return "i/o timeout" }
func (*timeoutErr) Timeout() bool   { return true }
func (*timeoutErr) Temporary() bool { return true }

// TestResolverTrustTimeout: a silent resolver ends in Indeterminate when
// the context ends, with the EDE Unbound gives for unreachable servers.
func TestResolverTrustTimeout(t *testing.T) {
	ex := ExchangeFunc(func(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	rt, err := NewTrustResolver(TrustResolverConfig{Resolvers: []Resolver{{Exchanger: ex}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	r := rt.Lookup(ctx, tlsaName, dns.TypeTLSA)
	if r.Status != Indeterminate || !errors.Is(r.Err, context.DeadlineExceeded) || r.EDE != dns.ExtendedErrorCodeNoReachableAuthority {
		t.Fatalf("%s (EDE %d)", r, r.EDE)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %s", d)
	}
}

// TestResolverTrustAuthoritative: an authoritative server (zonekit, as NSD)
// answers with AA and never AD, so it is never trusted as a validator.
func TestResolverTrustAuthoritative(t *testing.T) {
	tr := newTree(t, hooks{})
	rt, err := NewTrustResolver(TrustResolverConfig{Resolvers: []Resolver{{Name: "nsd", Exchanger: tr.srv}}, Anchors: dsAnchors(tr.root), Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	r := rt.Lookup(context.Background(), tlsaName, dns.TypeTLSA)
	if r.Status != Indeterminate || !strings.Contains(r.Err.Error(), "does not validate") {
		t.Fatalf("%s", r)
	}
}

func TestNewResolverTrustErrors(t *testing.T) {
	if _, err := NewTrustResolver(TrustResolverConfig{}); err == nil {
		t.Fatal("no resolver accepted")
	}
	if _, err := NewTrustResolver(TrustResolverConfig{Resolvers: []Resolver{{Name: "x"}}}); err == nil {
		t.Fatal("resolver without exchanger accepted")
	}
	a, _ := dns.NewRR("test. 3600 IN A 192.0.2.1")
	if _, err := NewTrustResolver(TrustResolverConfig{Resolvers: []Resolver{{Exchanger: ExchangeFunc(nil)}}, Anchors: []dns.RR{a}}); err == nil || !strings.Contains(err.Error(), "want DS or DNSKEY") {
		t.Fatalf("A record as anchor: %v", err)
	}
	if _, err := NewTrustResolver(TrustResolverConfig{Resolvers: []Resolver{{Exchanger: ExchangeFunc(nil)}}, Anchors: []dns.RR{}}); err == nil {
		t.Fatal("empty anchors accepted")
	}
}

// FuzzTrustResolver feeds arbitrary messages as the trusted resolver's
// answer (after a good probe): no panic, no hang, and never Secure unless
// the message answers the question with NOERROR or NXDOMAIN and AD set;
// a Secure RRset holds only records of the question's type, owned by the
// question or the end of its CNAME chain.
func FuzzTrustResolver(f *testing.F) {
	key := &dns.DNSKEY{Hdr: dns.RR_Header{Name: "test.", Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags: 257, Protocol: 3, Algorithm: dns.ECDSAP256SHA256}
	if _, err := key.Generate(256); err != nil {
		f.Fatal(err)
	}
	q := newTrustQuery(tlsaName, dns.TypeTLSA)
	for _, m := range []*dns.Msg{
		reply(q, 0, true, trustTLSA),
		reply(q, 0, false, trustTLSA),
		reply(q, dns.RcodeNameError, true, trustSOA),
		reply(q, 0, true, "_443._tcp.svc.example.test. 60 IN CNAME x.example.test.", "x.example.test. 60 IN TLSA "+tlsaData),
		reply(q, 0, true, "_443._tcp.svc.example.test. 60 IN CNAME x.example.test.", "x.example.test. 60 IN CNAME _443._tcp.svc.example.test."),
		servfailMsg(q, dns.ExtendedErrorCodeDNSBogus, "bad"),
	} {
		wire, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(wire, true)
		f.Add(wire, false)
	}
	f.Fuzz(func(t *testing.T, wire []byte, fixHeader bool) {
		var got, asked *dns.Msg
		ex := ExchangeFunc(func(_ context.Context, q *dns.Msg) (*dns.Msg, error) {
			if q.Question[0].Qclass == dns.ClassCHAOS {
				return reply(q, dns.RcodeRefused, false), nil // Unbound's answer to servers.bind
			}
			if q.Question[0].Qtype == dns.TypeDNSKEY {
				m := reply(q, 0, true)
				m.Answer = []dns.RR{key}
				return m, nil
			}
			m := new(dns.Msg)
			if err := m.Unpack(wire); err != nil {
				return nil, err
			}
			if fixHeader {
				m.Id, m.Response, m.Opcode, m.Truncated = q.Id, true, dns.OpcodeQuery, false
				m.Question = q.Question
			}
			got, asked = m, q
			return m, nil
		})
		rt, err := NewTrustResolver(TrustResolverConfig{Resolvers: []Resolver{{Exchanger: ex}}, Anchors: []dns.RR{key.ToDS(dns.SHA256)}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r := rt.Lookup(ctx, tlsaName, dns.TypeTLSA)
		if r == nil {
			t.Fatal("nil result")
		}
		if r.Status != Secure {
			return
		}
		switch {
		case got == nil:
			t.Fatal("Secure without an answer")
		case !got.AuthenticatedData:
			t.Fatalf("Secure from an answer without AD: %v", got)
		case got.Rcode != dns.RcodeSuccess && got.Rcode != dns.RcodeNameError:
			t.Fatalf("Secure from rcode %s", dns.RcodeToString[got.Rcode])
		case mismatch(asked, got) != "":
			t.Fatalf("Secure from a message that does not answer the question: %s", mismatch(asked, got))
		}
		owner := tlsaName
		if len(r.CNAME) > 0 {
			owner = dns.CanonicalName(r.CNAME[len(r.CNAME)-1].Target)
		}
		for _, rr := range r.RRset {
			if rr.Header().Rrtype != dns.TypeTLSA || rr.Header().Name != owner {
				t.Fatalf("Secure RRset holds %s (owner %s)", rr, owner)
			}
		}
	})
}

// TestTrustResolverFailoverOrder: with two validating resolvers, a DNSSEC
// verdict from the first (Secure, Insecure or Bogus) ends the lookup and
// the second is not asked; only an outcome that is no verdict (a SERVFAIL
// without a DNSSEC extended error, a timeout, REFUSED, a failed probe)
// moves on, and then the second resolver's verdict is the result.
func TestTrustResolverFailoverOrder(t *testing.T) {
	type outcome func(f *trustFixture)
	answer := func(fn func(q *dns.Msg) *dns.Msg) outcome {
		return func(f *trustFixture) { f.answer = fn }
	}
	var (
		secure     = answer(func(q *dns.Msg) *dns.Msg { return reply(q, 0, true, trustTLSA) })
		insecure   = answer(func(q *dns.Msg) *dns.Msg { return reply(q, 0, false, trustTLSA) })
		insecureNX = answer(func(q *dns.Msg) *dns.Msg { return reply(q, dns.RcodeNameError, false, trustSOA) })
		bogus      = answer(func(q *dns.Msg) *dns.Msg {
			return servfailMsg(q, dns.ExtendedErrorCodeSignatureExpired, "signature expired")
		})
		bogusNoKey = answer(func(q *dns.Msg) *dns.Msg {
			return servfailMsg(q, dns.ExtendedErrorCodeDNSKEYMissing, "No DNSKEY record")
		})
		servfail    = answer(func(q *dns.Msg) *dns.Msg { return servfailMsg(q, 0, "") })
		unreachable = answer(func(q *dns.Msg) *dns.Msg {
			return servfailMsg(q, dns.ExtendedErrorCodeNoReachableAuthority, "")
		})
		refused   = answer(func(q *dns.Msg) *dns.Msg { return reply(q, dns.RcodeRefused, false) })
		noProbe   = func(f *trustFixture) { f.probeAD = false; secure(f) }
		cnameLoop = answer(func(q *dns.Msg) *dns.Msg {
			return reply(q, 0, true, tlsaName+" 60 IN CNAME x.example.test.", "x.example.test. 60 IN CNAME "+tlsaName)
		})
	)
	for _, tc := range []struct {
		name          string
		first, second outcome
		status        Status
		provenBy      string // "" = no resolver gave a verdict
		reason        string // substring of Err
		askSecond     bool
	}{
		{"RFC4035-5.5/bogus then insecure stays bogus", bogus, insecure, Bogus, "first", "EDE 7 Signature Expired", false},
		{"RFC4035-5.5/bogus then insecure NXDOMAIN stays bogus", bogusNoKey, insecureNX, Bogus, "first", "EDE 9 DNSKEY Missing", false},
		{"RFC4035-5.5/bogus then secure stays bogus", bogus, secure, Bogus, "first", "EDE 7", false},
		{"RFC4035-5.5/bogus CNAME loop then secure stays bogus", cnameLoop, secure, Bogus, "first", "CNAME loop", false},
		{"RFC4035-4.3/secure ends the lookup", secure, bogus, Secure, "first", "", false},
		{"RFC4035-4.3/insecure ends the lookup", insecure, secure, Insecure, "first", "did not set the AD bit", false},
		{"RFC8914-4.23/SERVFAIL no reachable authority, then insecure", unreachable, insecure, Insecure, "second", "did not set the AD bit", true},
		{"RFC8914/SERVFAIL without EDE, then insecure", servfail, insecure, Insecure, "second", "did not set the AD bit", true},
		{"RFC8914/SERVFAIL without EDE, then bogus", servfail, bogus, Bogus, "second", "EDE 7", true},
		{"RFC1035-4.1.1/REFUSED, then secure", refused, secure, Secure, "second", "", true},
		{"RFC4035-4.9.3/failed probe, then insecure", noProbe, insecure, Insecure, "second", "did not set the AD bit", true},
		{"RFC4035-4.9.3/failed probe, then bogus", noProbe, bogus, Bogus, "second", "EDE 7", true},
		{"RFC4035-5.5/bogus, then failed probe stays bogus", bogus, noProbe, Bogus, "first", "EDE 7", false},
		{"RFC8914/SERVFAIL without EDE twice", servfail, servfail, Indeterminate, "second", "second answered SERVFAIL", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first, second := newTrustFixture(t), newTrustFixture(t)
			second.key = first.key
			tc.first(first)
			tc.second(second)
			rt, err := NewTrustResolver(TrustResolverConfig{
				Resolvers: []Resolver{{Name: "first", Exchanger: first}, {Name: "second", Exchanger: second}},
				Anchors:   []dns.RR{first.key.ToDS(dns.SHA256)}, Now: newClock().Now,
			})
			if err != nil {
				t.Fatal(err)
			}
			r := rt.Lookup(context.Background(), tlsaName, dns.TypeTLSA)
			if r.Status != tc.status || r.ProvenBy != tc.provenBy {
				t.Fatalf("%s from %q, want %s from %q: %v", r.Status, r.ProvenBy, tc.status, tc.provenBy, r.Err)
			}
			if tc.reason != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), tc.reason)) {
				t.Fatalf("err %v, want it to contain %q", r.Err, tc.reason)
			}
			if asked := second.queries.Load() > 0; asked != tc.askSecond {
				t.Fatalf("second resolver asked: %v, want %v", asked, tc.askSecond)
			}
		})
	}
}

// chaosTXT answers q with TXT records of class CHAOS at the question's
// name, as dnsmasq answers its *.bind names.
func chaosTXT(q *dns.Msg, txts ...string) *dns.Msg {
	m := reply(q, 0, false)
	m.Authoritative = true
	for _, s := range txts {
		m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassCHAOS}, Txt: []string{s}})
	}
	return m
}

// answered is an Exchanger's error that carries an answer with an error
// RCODE, as resolver.ServerError does.
type answered struct{ m *dns.Msg }

func (e *answered) Error() string      { return "dns: " + dns.RcodeToString[e.m.Rcode] }
func (e *answered) Response() *dns.Msg { return e.m }

// TestTrustResolverForwarder: a resolver that passes the DNSKEY probe but
// answers servers.bind CH TXT with a list of servers, as dnsmasq does, is
// a forwarder whose AD bit is its upstream's, and is refused; what a
// validator answers (Unbound: REFUSED) passes, and so, since it is no
// evidence, does what a forwarder that hides itself answers (dnsmasq
// --no-ident: NOTIMP). No answer at all fails the probe.
func TestTrustResolverForwarder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		chaos  func(q *dns.Msg) (*dns.Msg, error)
		status Status
		reason string // substring of Err
	}{
		{name: "RFC4035-4.9.3/dnsmasq proxy-dnssec lists its upstream", chaos: func(q *dns.Msg) (*dns.Msg, error) {
			return chaosTXT(q, "192.0.2.53#53 17 0"), nil
		}, status: Indeterminate, reason: `127.0.0.1:53 is a forwarder, not a validator: it answered servers.bind. CH TXT with its upstream servers ("192.0.2.53#53 17 0"), as dnsmasq does`},
		{name: "RFC4035-4.9.3/dnsmasq with a loopback upstream is still a forwarder", chaos: func(q *dns.Msg) (*dns.Msg, error) {
			return chaosTXT(q, "127.0.0.1#5353 0 0", "::1#5353 0 0"), nil
		}, status: Indeterminate, reason: `("127.0.0.1#5353 0 0", "::1#5353 0 0")`},
		{name: "RFC4035-4.9.3/many upstreams are cut short", chaos: func(q *dns.Msg) (*dns.Msg, error) {
			return chaosTXT(q, "a#53 0 0", "b#53 0 0", "c#53 0 0", "d#53 0 0", "e#53 0 0", "f#53 0 0"), nil
		}, status: Indeterminate, reason: `"d#53 0 0", ... 6 in all)`},
		{name: "RFC4035-4.9.3/a TXT record without strings", chaos: func(q *dns.Msg) (*dns.Msg, error) {
			m := chaosTXT(q)
			m.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "SERVERS.bind.", Rrtype: dns.TypeTXT, Class: dns.ClassCHAOS}}}
			return m, nil
		}, status: Indeterminate, reason: "(none listed)"},
		{name: "RFC1035-4.1.1/Unbound answers REFUSED", chaos: func(q *dns.Msg) (*dns.Msg, error) {
			return reply(q, dns.RcodeRefused, false), nil
		}, status: Secure},
		{name: "RFC1035-4.1.1/REFUSED as the client's error", chaos: func(q *dns.Msg) (*dns.Msg, error) {
			return nil, &answered{reply(q, dns.RcodeRefused, false)}
		}, status: Secure},
		{name: "RFC1035-4.1.1/NOTIMP (dnsmasq --no-ident) is no evidence", chaos: func(q *dns.Msg) (*dns.Msg, error) {
			return nil, &answered{reply(q, dns.RcodeNotImplemented, false)}
		}, status: Secure},
		{name: "RFC1035-4.1.1/NXDOMAIN is no list of servers", chaos: func(q *dns.Msg) (*dns.Msg, error) {
			return reply(q, dns.RcodeNameError, false), nil
		}, status: Secure},
		{name: "RFC1035-4.1.1/empty NOERROR is no list of servers", chaos: func(q *dns.Msg) (*dns.Msg, error) {
			return reply(q, 0, false), nil
		}, status: Secure},
		{name: "RFC1035-4.1.1/TXT of class IN or at another name is no answer", chaos: func(q *dns.Msg) (*dns.Msg, error) {
			m := reply(q, 0, false, `servers.bind. 0 IN TXT "192.0.2.53#53 0 0"`)
			m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: "version.bind.", Rrtype: dns.TypeTXT, Class: dns.ClassCHAOS}, Txt: []string{"x"}})
			return m, nil
		}, status: Secure},
		{name: "RFC5452-9.1/answer to another question", chaos: func(q *dns.Msg) (*dns.Msg, error) {
			m := chaosTXT(q)
			m.Question[0].Qclass = dns.ClassINET
			return m, nil
		}, status: Indeterminate, reason: "cannot check that 127.0.0.1:53 is not a forwarder: response for servers.bind. CH TXT ignored: question"},
		{name: "RFC4035-4.9.3/no answer fails the probe", chaos: func(q *dns.Msg) (*dns.Msg, error) {
			return nil, &timeoutErr{}
		}, status: Indeterminate, reason: "cannot check that 127.0.0.1:53 is not a forwarder: dns timeout asking 127.0.0.1:53"},
		{name: "RFC4035-4.9.3/a network error fails the probe", chaos: func(q *dns.Msg) (*dns.Msg, error) {
			return nil, errors.New("connection refused")
		}, status: Indeterminate, reason: "is not a forwarder: dns exchange for servers.bind. CH TXT with 127.0.0.1:53: connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTrustFixture(t)
			f.answer = func(q *dns.Msg) *dns.Msg { return reply(q, 0, true, trustTLSA) }
			var asked *dns.Msg
			f.chaos = func(q *dns.Msg) (*dns.Msg, error) {
				asked = q
				return tc.chaos(q)
			}
			rt := f.trust(t, newClock().Now)
			r := rt.Lookup(context.Background(), tlsaName, dns.TypeTLSA)
			if r.Status != tc.status {
				t.Fatalf("status %s, want %s: %v", r.Status, tc.status, r.Err)
			}
			if tc.reason != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), tc.reason)) {
				t.Fatalf("err %v, want it to contain %q", r.Err, tc.reason)
			}
			if asked == nil {
				t.Fatal("servers.bind CH TXT was not asked")
			}
			if qq := asked.Question[0]; qq.Name != "servers.bind." || qq.Qclass != dns.ClassCHAOS || qq.Qtype != dns.TypeTXT || asked.RecursionDesired {
				t.Fatalf("forwarder probe %v, want servers.bind. CH TXT without RD", asked.Question[0])
			}
			if n := f.queries.Load(); tc.status != Secure && n != 0 {
				t.Fatalf("%d queries reached a resolver that failed the probe", n)
			}
			// The check is part of the probe: made once per ProbeInterval.
			for range 3 {
				rt.Lookup(context.Background(), tlsaName, dns.TypeTLSA)
			}
			if n, p := f.chaosProbes.Load(), f.probes.Load(); tc.status == Secure && (n != 1 || p != 1) {
				t.Fatalf("%d forwarder checks and %d DNSKEY probes for 4 lookups, want 1 each", n, p)
			}
		})
	}
}
