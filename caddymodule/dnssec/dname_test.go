package dnssec

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddy-dane/caddy-dane/internal/zonekit"
	"github.com/miekg/dns"
)

// longTarget is a DNAME target long enough that any query name of more
// than about 110 octets below "long.example.test." overflows 255 octets.
var longTarget = strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 10) + ".example.test."

// longQname is below "long.example.test." and 128 octets long.
var longQname = strings.Repeat("q", 50) + "." + strings.Repeat("r", 50) + ".x.long.example.test."

// dnameZone adds the DNAMEs of the tests to example.test. (and the
// unsigned plain.test. they may lead to).
func dnameZone(tr *tree) {
	plainDelegation(tr)
	tr.zone.MustAdd(
		"dn 300 IN DNAME svc.example.test.",
		"dn 300 IN A 192.0.2.77",
		"occluded.dn IN A 192.0.2.66", // below the DNAME: never answered
		"toplain IN DNAME plain.test.",
		"loopd1 IN DNAME loopd2.example.test.",
		"loopd2 IN DNAME loopd1.example.test.",
		"grow IN DNAME x.grow.example.test.",
		"two IN DNAME svc.example.test.",
		"two IN DNAME alias.example.test.",
		"long IN DNAME "+longTarget,
		"tozone IN DNAME example.test.",
	)
}

func TestDNAME(t *testing.T) {
	expired := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		hooks  hooks
		qname  string
		qtype  uint16
		status Status
		ede    uint16
		reason string   // substring of Err
		cnames []string // "owner target" of Result.CNAME, in order
		rrset  uint16   // type of the final RRset's records, 0 for none
		rcode  int
	}{
		{
			name:  "secure DNAME: target's RRset Secure, synthesized CNAME in Result.CNAME (RFC 6672 §5.3.1)",
			qname: "_443._tcp.dn.example.test.", qtype: dns.TypeTLSA, status: Secure,
			cnames: []string{"_443._tcp.dn.example.test. _443._tcp.svc.example.test."}, rrset: dns.TypeTLSA,
		},
		{
			name:  "secure DNAME then CNAME",
			qname: "alias.tozone.example.test.", qtype: dns.TypeA, status: Secure,
			cnames: []string{"alias.tozone.example.test. alias.example.test.", "alias.example.test. svc.example.test."}, rrset: dns.TypeA,
		},
		{
			name:  "secure DNAME to a name that does not exist: NXDOMAIN proven at the target",
			qname: "nope.dn.example.test.", qtype: dns.TypeA, status: Secure,
			cnames: []string{"nope.dn.example.test. nope.svc.example.test."}, rcode: dns.RcodeNameError,
		},
		{
			name:  "occluded data below the DNAME is not answered (RFC 6672 §2.4)",
			qname: "occluded.dn.example.test.", qtype: dns.TypeA, status: Secure,
			cnames: []string{"occluded.dn.example.test. occluded.svc.example.test."}, rcode: dns.RcodeNameError,
		},
		{
			name:  "qname equal to the DNAME owner is not redirected (RFC 6672 §2.3)",
			qname: "dn.example.test.", qtype: dns.TypeA, status: Secure, rrset: dns.TypeA,
		},
		{
			name:  "NODATA at the DNAME owner",
			qname: "dn.example.test.", qtype: dns.TypeTLSA, status: Secure,
		},
		{
			name:  "DNAME RRset asked for at its owner is a positive answer",
			qname: "dn.example.test.", qtype: dns.TypeDNAME, status: Secure, rrset: dns.TypeDNAME,
		},
		{
			name:  "DNAME into an unsigned zone: the target is Insecure",
			qname: "www.toplain.example.test.", qtype: dns.TypeA, status: Insecure,
			cnames: []string{"www.toplain.example.test. www.plain.test."}, rrset: dns.TypeA,
			reason: "plain.test. is an unsigned delegation",
		},
		{
			name:  "DNAME in an unsigned zone is Insecure, the synthesized CNAME left unfollowed",
			hooks: hooks{beforeDelegate: func(tr *tree) { dnameZone(tr); tr.zone.SetUnsigned(true) }},
			qname: "_443._tcp.dn.example.test.", qtype: dns.TypeTLSA, status: Insecure, rrset: dns.TypeCNAME,
			reason: "insecure: dn.example.test. DNAME: NSEC proves example.test. is an unsigned delegation",
		},
		{
			name: "DNAME RRSIG stripped is Bogus (RFC 4035 §5.3)",
			hooks: hooks{afterSign: tamperAnswer("_443._tcp.dn.example.test.", dns.TypeTLSA, func(r *dns.Msg) {
				var keep []dns.RR
				for _, rr := range r.Answer {
					if s, ok := rr.(*dns.RRSIG); !ok || s.TypeCovered != dns.TypeDNAME {
						keep = append(keep, rr)
					}
				}
				r.Answer = keep
			})},
			qname: "_443._tcp.dn.example.test.", qtype: dns.TypeTLSA, status: Bogus, ede: dns.ExtendedErrorCodeRRSIGsMissing,
			reason: "bogus: no RRSIG over dn.example.test. DNAME", rrset: dns.TypeCNAME,
		},
		{
			name: "DNAME RRSIG expired is Bogus with EDE 7 (RFC 4035 §5.3.1)",
			hooks: hooks{afterSign: func(tr *tree) {
				must(nil, tr.zone.SignRRset("dn.example.test.", dns.TypeDNAME, testInception, expired))
			}},
			qname: "_443._tcp.dn.example.test.", qtype: dns.TypeTLSA, status: Bogus, ede: dns.ExtendedErrorCodeSignatureExpired,
			reason: "bogus: RRSIG dn.example.test. DNAME expired 2026-02-01T00:00:00Z", rrset: dns.TypeCNAME,
		},
		{
			name: "DNAME target changed in flight is Bogus",
			hooks: hooks{afterSign: tamperAnswer("_443._tcp.dn.example.test.", dns.TypeTLSA, func(r *dns.Msg) {
				for _, rr := range r.Answer {
					if d, ok := rr.(*dns.DNAME); ok {
						d.Target = "evil.example.test."
					}
				}
			})},
			qname: "_443._tcp.dn.example.test.", qtype: dns.TypeTLSA, status: Bogus, ede: dns.ExtendedErrorCodeDNSBogus,
			reason: "RRSIG dn.example.test. DNAME by key", rrset: dns.TypeCNAME,
		},
		{
			name: "forged synthesized CNAME is ignored: the signed DNAME is followed",
			hooks: hooks{afterSign: tamperAnswer("_443._tcp.dn.example.test.", dns.TypeTLSA, func(r *dns.Msg) {
				for _, rr := range r.Answer {
					if c, ok := rr.(*dns.CNAME); ok {
						c.Target = "_443._tcp.evil.example.test."
					}
				}
			})},
			qname: "_443._tcp.dn.example.test.", qtype: dns.TypeTLSA, status: Secure,
			cnames: []string{"_443._tcp.dn.example.test. _443._tcp.svc.example.test."}, rrset: dns.TypeTLSA,
		},
		{
			name: "missing synthesized CNAME: the validator synthesizes it",
			hooks: hooks{afterSign: tamperAnswer("_443._tcp.dn.example.test.", dns.TypeTLSA, func(r *dns.Msg) {
				var keep []dns.RR
				for _, rr := range r.Answer {
					if rr.Header().Rrtype != dns.TypeCNAME {
						keep = append(keep, rr)
					}
				}
				r.Answer = keep
			})},
			qname: "_443._tcp.dn.example.test.", qtype: dns.TypeTLSA, status: Secure,
			cnames: []string{"_443._tcp.dn.example.test. _443._tcp.svc.example.test."}, rrset: dns.TypeTLSA,
		},
		{
			name: "forged unsigned DNAME at a higher ancestor: the deepest DNAME decides",
			hooks: hooks{afterSign: tamperAnswer("_443._tcp.dn.example.test.", dns.TypeTLSA, func(r *dns.Msg) {
				rr, _ := dns.NewRR("example.test. 300 IN DNAME evil.test.")
				r.Answer = append([]dns.RR{rr}, r.Answer...)
			})},
			qname: "_443._tcp.dn.example.test.", qtype: dns.TypeTLSA, status: Secure,
			cnames: []string{"_443._tcp.dn.example.test. _443._tcp.svc.example.test."}, rrset: dns.TypeTLSA,
		},
		{
			name: "forged unsigned DNAME only is Bogus, not a CNAME",
			hooks: hooks{afterSign: tamperAnswer(tlsaName, dns.TypeTLSA, func(r *dns.Msg) {
				d, _ := dns.NewRR("svc.example.test. 300 IN DNAME evil.test.")
				c, _ := dns.NewRR(tlsaName + " 300 IN CNAME _443._tcp.evil.test.")
				r.Answer = append([]dns.RR{d, c}, r.Answer...)
			})},
			qname: tlsaName, qtype: dns.TypeTLSA, status: Bogus, ede: dns.ExtendedErrorCodeRRSIGsMissing,
			reason: "no RRSIG over svc.example.test. DNAME", rrset: dns.TypeCNAME,
		},
		{
			name:  "two DNAMEs at one owner are Bogus (RFC 6672 §2.4)",
			qname: "_443._tcp.two.example.test.", qtype: dns.TypeTLSA, status: Bogus, ede: dns.ExtendedErrorCodeDNSBogus,
			reason: "2 DNAME records at two.example.test.", rrset: dns.TypeDNAME,
		},
		{
			name:  "DNAME loop is Bogus and ends",
			qname: "x.loopd1.example.test.", qtype: dns.TypeA, status: Bogus, ede: dns.ExtendedErrorCodeDNSBogus,
			reason: "CNAME loop at x.loopd1.example.test.",
		},
		{
			name:  "DNAME chain longer than MaxCNAMEs is Indeterminate",
			qname: "a.grow.example.test.", qtype: dns.TypeA, status: Indeterminate,
			reason: "more than 8 CNAMEs from a.grow.example.test.",
		},
		{
			name:  "substitution over 255 octets: YXDOMAIN, Indeterminate (RFC 6672 §2.2)",
			qname: longQname, qtype: dns.TypeA, status: Indeterminate, rrset: dns.TypeDNAME,
			reason: "longer than 255 octets (YXDOMAIN",
			rcode:  dns.RcodeYXDomain,
		},
		{
			name: "YXDOMAIN with an unsigned DNAME is Bogus",
			hooks: hooks{afterSign: tamperAnswer(longQname, dns.TypeA, func(r *dns.Msg) {
				r.Answer = withoutRRSIGs(r.Answer)
			})},
			qname: longQname, qtype: dns.TypeA, status: Bogus, ede: dns.ExtendedErrorCodeRRSIGsMissing,
			reason: "no RRSIG over long.example.test. DNAME",
			rcode:  dns.RcodeYXDomain, rrset: dns.TypeDNAME,
		},
		{
			name: "a resolver claiming YXDOMAIN for a name that fits is not believed",
			hooks: hooks{afterSign: tamperAnswer("_443._tcp.dn.example.test.", dns.TypeTLSA, func(r *dns.Msg) {
				r.Rcode = dns.RcodeYXDomain
				r.Answer = r.Answer[:2] // DNAME and its RRSIG
			})},
			qname: "_443._tcp.dn.example.test.", qtype: dns.TypeTLSA, status: Secure,
			cnames: []string{"_443._tcp.dn.example.test. _443._tcp.svc.example.test."}, rrset: dns.TypeTLSA,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.hooks
			if h.beforeDelegate == nil {
				h.beforeDelegate = dnameZone
			}
			tr := newTree(t, h)
			v := newValidator(t, countQueries(tr.srv), dsAnchors(tr.root), newClock())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			r := v.Lookup(ctx, tt.qname, tt.qtype)
			t.Logf("%s", r)
			for _, c := range r.CNAME {
				t.Logf("  via %s", c)
			}
			if r.Status != tt.status {
				t.Fatalf("status %s, want %s: %v", r.Status, tt.status, r.Err)
			}
			if tt.ede != 0 && r.EDE != tt.ede {
				t.Errorf("EDE %d, want %d", r.EDE, tt.ede)
			}
			if tt.reason != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), tt.reason)) {
				t.Errorf("error %v, want it to contain %q", r.Err, tt.reason)
			}
			if (r.Status == Secure) != (r.Err == nil) {
				t.Errorf("status %s with error %v", r.Status, r.Err)
			}
			checkErrType(t, r)
			if r.Name != dns.CanonicalName(tt.qname) || r.Type != tt.qtype {
				t.Errorf("result for %s", rrsetName(r.Name, r.Type))
			}
			if r.Rcode != tt.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
			}
			if tt.status == Secure && r.TTL <= 0 {
				t.Errorf("ttl %s", r.TTL)
			}
			if tt.cnames != nil || r.Status == Secure {
				var got []string
				for _, c := range r.CNAME {
					got = append(got, c.Hdr.Name+" "+c.Target)
				}
				if strings.Join(got, ", ") != strings.Join(tt.cnames, ", ") {
					t.Errorf("CNAME %v, want %v", got, tt.cnames)
				}
			}
			for _, rr := range r.RRset {
				if rr.Header().Rrtype != tt.rrset {
					t.Errorf("RRset holds %s, want only %s", rr, dns.TypeToString[tt.rrset])
				}
			}
			if tt.rrset != 0 && len(r.RRset) == 0 {
				t.Errorf("no %s records", dns.TypeToString[tt.rrset])
			}
		})
	}
}

// TestDNAMEHop checks the synthesized CNAME: owner, target, TTL capped at
// the DNAME's RRSIG original TTL, and the hop's lifetime bounding the
// result's.
func TestDNAMEHop(t *testing.T) {
	tr := newTree(t, hooks{beforeDelegate: dnameZone, afterSign: tamperAnswer("_443._tcp.dn.example.test.", dns.TypeTLSA, func(r *dns.Msg) {
		for _, rr := range r.Answer {
			if rr.Header().Rrtype == dns.TypeDNAME {
				rr.Header().Ttl = 86400 // over the RRSIG original TTL (300)
			}
		}
	})})
	v := newValidator(t, tr.srv, dsAnchors(tr.tld), newClock())
	r := v.Lookup(context.Background(), "_443._TCP.DN.example.test", dns.TypeTLSA)
	if r.Status != Secure || len(r.CNAME) != 1 {
		t.Fatalf("%s, %d CNAMEs", r, len(r.CNAME))
	}
	c := r.CNAME[0]
	if c.Hdr.Name != "_443._tcp.dn.example.test." || c.Target != tlsaName || c.Hdr.Ttl != 300 || c.Hdr.Rrtype != dns.TypeCNAME {
		t.Errorf("synthesized %s", c)
	}
	if r.TTL != 300*time.Second || r.Signer != "example.test." {
		t.Errorf("ttl %s, signer %s", r.TTL, r.Signer)
	}
	// The hop is cached like a CNAME hop: a second lookup asks nothing.
	n := tr.srv.Queries()
	if r := v.Lookup(context.Background(), "_443._tcp.dn.example.test.", dns.TypeTLSA); r.Status != Secure || tr.srv.Queries() != n {
		t.Errorf("second lookup: %s, %d queries", r, tr.srv.Queries()-n)
	}
}

// TestDNAMEBounded: a DNAME that keeps growing the name costs a bounded
// number of queries, whatever MaxCNAMEs is.
func TestDNAMEBounded(t *testing.T) {
	tr := newTree(t, hooks{beforeDelegate: dnameZone})
	for _, max := range []int{1, 3, 8} {
		c := countQueries(tr.srv)
		v, err := New(Config{Exchanger: c, Anchors: dsAnchors(tr.tld), Now: newClock().Now, Limits: Limits{MaxCNAMEs: max}})
		must(t, err)
		r := v.Lookup(context.Background(), "a.grow.example.test.", dns.TypeA)
		if r.Status != Indeterminate || !errors.Is(r.Err, ErrLimitExceeded) || len(r.CNAME) != max+1 {
			t.Errorf("MaxCNAMEs %d: %s, %d CNAMEs", max, r, len(r.CNAME))
		}
		if c.Total() > max+1+4 { // hops plus DS/DNSKEY of example.test.
			t.Errorf("MaxCNAMEs %d: %d queries", max, c.Total())
		}
	}
}

func TestSynthesizeDNAME(t *testing.T) {
	for _, tt := range []struct {
		name, owner, target, want string
		ok                        bool
	}{
		{"a.b.example.", "example.", "other.test.", "a.b.other.test.", true},
		{"a.example.", "example.", ".", "a.", true},
		{"a.example.", ".", "x.", "a.example.x.", true},
		{"a\\.b.example.", "example.", "t.", "a\\.b.t.", true},
		{longQname, "long.example.test.", longTarget, "", false},
	} {
		got, ok := synthesizeDNAME(tt.name, tt.owner, tt.target)
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("synthesizeDNAME(%s, %s, %s) = %s, %v", tt.name, tt.owner, tt.target, got, ok)
		}
		zgot, zok := zonekit.SynthesizeDNAME(tt.name, tt.owner, tt.target)
		if zok != ok || zgot != got {
			t.Errorf("zonekit.SynthesizeDNAME = %s, %v", zgot, zok)
		}
	}
}

// TestClassifyDNAME covers the classification rules directly.
func TestClassifyDNAME(t *testing.T) {
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		must(t, err)
		return r
	}
	msg := func(rcode int, rrs ...dns.RR) *dns.Msg {
		return &dns.Msg{MsgHdr: dns.MsgHdr{Rcode: rcode}, Answer: rrs}
	}
	top := rr("example. 300 IN DNAME a.test.")
	deep := rr("b.example. 300 IN DNAME b.test.")
	for _, tt := range []struct {
		name  string
		m     *dns.Msg
		qname string
		qtype uint16
		kind  responseKind
		owner string
	}{
		{"deepest ancestor wins", msg(0, top, deep, rr("x.b.example. 300 IN CNAME x.b.test.")), "x.b.example.", dns.TypeA, kindDNAME, "b.example."},
		{"DNAME wins over a CNAME at qname", msg(0, top, rr("x.example. 300 IN CNAME y.test.")), "x.example.", dns.TypeA, kindDNAME, "example."},
		{"owner itself not redirected", msg(0, top, rr("example. 300 IN A 192.0.2.1")), "example.", dns.TypeA, kindPositive, ""},
		{"DNAME query at the owner", msg(0, top), "example.", dns.TypeDNAME, kindPositive, ""},
		{"DNAME query below the owner", msg(0, top), "x.example.", dns.TypeDNAME, kindDNAME, "example."},
		{"DNAME elsewhere ignored", msg(0, rr("other. 300 IN DNAME a.test.")), "x.example.", dns.TypeA, kindNODATA, ""},
		{"YXDOMAIN with a DNAME", msg(dns.RcodeYXDomain, top), "x.example.", dns.TypeA, kindDNAME, "example."},
		{"YXDOMAIN without", msg(dns.RcodeYXDomain), "x.example.", dns.TypeA, kindFailure, ""},
		{"NXDOMAIN with a DNAME", msg(dns.RcodeNameError, top), "x.example.", dns.TypeA, kindDNAME, "example."},
		{"badly typed DNAME ignored", msg(0, &dns.RFC3597{Hdr: dns.RR_Header{Name: "example.", Rrtype: dns.TypeDNAME, Class: dns.ClassINET}}), "x.example.", dns.TypeA, kindNODATA, ""},
	} {
		kind, sec := classify(tt.m, tt.qname, tt.qtype)
		owner := ""
		if kind == kindDNAME {
			owner = sec.rrset[0].Header().Name
		}
		if kind != tt.kind || owner != tt.owner {
			t.Errorf("%s: %s at %q, want %s at %q", tt.name, kind, owner, tt.kind, tt.owner)
		}
	}
}
