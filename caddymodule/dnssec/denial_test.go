package dnssec

import (
	"context"
	"strings"
	"testing"

	"github.com/caddy-dane/caddy-dane/internal/zonekit"
	"github.com/miekg/dns"
)

// denialModes are the ways example.test. (and test.) prove non-existence.
var denialModes = []struct {
	name   string
	params *zonekit.NSEC3Params
}{
	{"NSEC", nil},
	{"NSEC3", &zonekit.NSEC3Params{Iterations: 0}},
	{"NSEC3 salted", &zonekit.NSEC3Params{Iterations: 5, Salt: "aabbccdd"}},
	{"NSEC3 opt-out", &zonekit.NSEC3Params{Iterations: 0, OptOut: true}},
}

// plainDelegation adds plain.test., an unsigned zone under test.
func plainDelegation(tr *tree) {
	plain := zonekit.NewZone("plain.test.")
	plain.SetUnsigned(true)
	plain.MustAdd("www IN A 192.0.2.9", "_443._tcp.www IN TLSA "+tlsaData)
	must(nil, zonekit.Delegate(tr.tld, plain))
	must(nil, plain.Sign(testInception, testExpiration))
	tr.extra = append(tr.extra, plain)
}

func TestDenial(t *testing.T) {
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		status Status
		optOut Status // status in the opt-out zone, when it differs
		rcode  int
		reason string
		tamper func(*tree)
	}{
		{name: "NXDOMAIN", qname: "_443._tcp.nope.example.test.", qtype: dns.TypeTLSA, status: Secure, optOut: Insecure, rcode: dns.RcodeNameError},
		{name: "NXDOMAIN below an existing name", qname: "deep.er.svc.example.test.", qtype: dns.TypeA, status: Secure, optOut: Insecure, rcode: dns.RcodeNameError},
		{name: "NODATA", qname: "svc.example.test.", qtype: dns.TypeTLSA, status: Secure},
		{name: "NODATA at the apex", qname: "example.test.", qtype: dns.TypeTLSA, status: Secure},
		{name: "NODATA at an empty non-terminal", qname: "_tcp.svc.example.test.", qtype: dns.TypeA, status: Secure},
		{name: "wildcard answer", qname: "_443._tcp.x.wild.example.test.", qtype: dns.TypeTLSA, status: Secure, optOut: Insecure},
		{name: "wildcard NODATA", qname: "_443._tcp.x.wild.example.test.", qtype: dns.TypeA, status: Secure, optOut: Insecure},
		{name: "DS NODATA at a name that is no zone cut", qname: "svc.example.test.", qtype: dns.TypeDS, status: Secure},
		{name: "unsigned delegation: DS denial", qname: "plain.test.", qtype: dns.TypeDS, status: Insecure},
		{name: "unsigned delegation: data below", qname: "_443._tcp.www.plain.test.", qtype: dns.TypeTLSA, status: Insecure},
		{name: "unsigned delegation: NXDOMAIN below", qname: "nope.plain.test.", qtype: dns.TypeTLSA, status: Insecure},
		{
			name: "stripped denial records", qname: "_443._tcp.nope.example.test.", qtype: dns.TypeTLSA, status: Bogus, reason: "without NSEC or NSEC3",
			tamper: tamperAnswer("_443._tcp.nope.example.test.", dns.TypeTLSA, func(r *dns.Msg) {
				var keep []dns.RR
				for _, rr := range r.Ns {
					if s, ok := rr.(*dns.RRSIG); ok && (s.TypeCovered == dns.TypeNSEC || s.TypeCovered == dns.TypeNSEC3) {
						continue
					}
					if t := rr.Header().Rrtype; t != dns.TypeNSEC && t != dns.TypeNSEC3 {
						keep = append(keep, rr)
					}
				}
				r.Ns = keep
			}),
		},
		{
			name: "one proof record dropped", qname: "_443._tcp.nope.example.test.", qtype: dns.TypeTLSA, status: Bogus,
			tamper: tamperAnswer("_443._tcp.nope.example.test.", dns.TypeTLSA, func(r *dns.Msg) {
				var keep []dns.RR
				var dropped string
				for _, rr := range r.Ns {
					if t := rr.Header().Rrtype; (t == dns.TypeNSEC || t == dns.TypeNSEC3) && dropped == "" {
						dropped = rr.Header().Name
					}
					if rr.Header().Name != dropped {
						keep = append(keep, rr)
					}
				}
				r.Ns = keep
			}),
		},
		{
			name: "proof record altered", qname: "svc.example.test.", qtype: dns.TypeTLSA, status: Bogus, reason: "does not verify",
			tamper: tamperAnswer("svc.example.test.", dns.TypeTLSA, func(r *dns.Msg) {
				for _, rr := range r.Ns {
					switch rr := rr.(type) {
					case *dns.NSEC:
						rr.TypeBitMap = []uint16{dns.TypeA}
					case *dns.NSEC3:
						rr.TypeBitMap = []uint16{dns.TypeA}
					}
				}
			}),
		},
		{
			name: "NXDOMAIN rcode over a NODATA proof", qname: "svc.example.test.", qtype: dns.TypeTLSA, status: Bogus,
			tamper: tamperAnswer("svc.example.test.", dns.TypeTLSA, func(r *dns.Msg) { r.Rcode = dns.RcodeNameError }),
		},
		{
			// Note 1 of the previous engineer: a forged signer name that is
			// provably no zone cut must not downgrade to Insecure.
			name: "signer name forged to a name that is no zone cut", qname: tlsaName, qtype: dns.TypeTLSA, status: Bogus, reason: "provably not a zone cut",
			tamper: tamperAnswer(tlsaName, dns.TypeTLSA, func(r *dns.Msg) {
				for _, rr := range r.Answer {
					if s, ok := rr.(*dns.RRSIG); ok {
						s.SignerName = "svc.example.test."
					}
				}
			}),
		},
		{
			name: "unsigned answer for a signed name is not downgraded", qname: tlsaName, qtype: dns.TypeTLSA, status: Bogus, reason: "no RRSIG",
			tamper: tamperAnswer(tlsaName, dns.TypeTLSA, func(r *dns.Msg) { r.Answer = withoutRRSIGs(r.Answer) }),
		},
	}
	for _, mode := range denialModes {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				tr := newTree(t, hooks{
					beforeDelegate: plainDelegation,
					beforeSign: func(tr *tree) {
						tr.zone.SetNSEC3(mode.params)
						tr.tld.SetNSEC3(mode.params)
					},
					afterSign: tt.tamper,
				})
				v := newValidator(t, tr.srv, dsAnchors(tr.root), newClock())
				r := v.Lookup(context.Background(), tt.qname, tt.qtype)
				t.Logf("%s", r)
				want := tt.status
				if mode.params != nil && mode.params.OptOut && tt.optOut != 0 {
					want = tt.optOut
				}
				if r.Status != want {
					t.Fatalf("status %s, want %s", r.Status, want)
				}
				if tt.rcode != 0 && r.Rcode != tt.rcode {
					t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
				}
				if tt.reason != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), tt.reason)) {
					t.Errorf("error %v, want %q", r.Err, tt.reason)
				}
				if r.Status == Secure && (r.TTL <= 0 || r.Err != nil) {
					t.Errorf("secure: ttl %s err %v", r.TTL, r.Err)
				}
				if r.Status != Secure && r.Err == nil {
					t.Error("no error")
				}
				checkErrType(t, r)
			})
		}
	}
}

// TestNSEC3Limits: RFC 9276 §3.2 — iterations or salt over the limits make
// the denial Insecure (EDE 27), never Secure.
func TestNSEC3Limits(t *testing.T) {
	for _, p := range []*zonekit.NSEC3Params{
		{Iterations: 150},
		{Iterations: 0, Salt: strings.Repeat("ab", 65)},
	} {
		tr := newTree(t, hooks{beforeSign: func(tr *tree) { tr.zone.SetNSEC3(p) }})
		v := newValidator(t, tr.srv, dsAnchors(tr.root), newClock())
		r := v.Lookup(context.Background(), "_443._tcp.nope.example.test.", dns.TypeTLSA)
		if r.Status != Insecure || r.EDE != dns.ExtendedErrorCodeUnsupportedNSEC3IterValue {
			t.Errorf("%+v: %s (EDE %d), want insecure EDE 27", *p, r, r.EDE)
		}
	}
	// Below the limit it is Secure.
	tr := newTree(t, hooks{beforeSign: func(tr *tree) { tr.zone.SetNSEC3(&zonekit.NSEC3Params{Iterations: 100}) }})
	v := newValidator(t, tr.srv, dsAnchors(tr.root), newClock())
	if r := v.Lookup(context.Background(), "_443._tcp.nope.example.test.", dns.TypeTLSA); r.Status != Secure {
		t.Errorf("100 iterations: %s", r)
	}
}
