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

// tamperAnswer applies f to every record of the answer section of
// responses to name/qtype.
func tamperAnswer(name string, qtype uint16, f func(resp *dns.Msg)) func(*tree) {
	return func(tr *tree) {
		tr.srv.Tamper = func(q, resp *dns.Msg) {
			if equalNames(q.Question[0].Name, name) && q.Question[0].Qtype == qtype {
				f(resp)
			}
		}
	}
}

func withoutRRSIGs(rrs []dns.RR) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype != dns.TypeRRSIG {
			out = append(out, rr)
		}
	}
	return out
}

func TestLookup(t *testing.T) {
	tldAnchor := func(tr *tree) []dns.RR { return dsAnchors(tr.tld) }
	rootAnchor := func(tr *tree) []dns.RR { return dsAnchors(tr.root) }
	tests := []struct {
		name    string
		hooks   hooks
		anchors func(*tree) []dns.RR
		qname   string
		qtype   uint16
		status  Status
		ede     uint16
		reason  string // substring of Err
		chain   []string
	}{
		{
			name:    "secure TLSA, anchor at test. (RFC 4035 §5)",
			anchors: tldAnchor, qname: tlsaName, qtype: dns.TypeTLSA, status: Secure,
			chain: []string{"test.", "example.test."},
		},
		{
			name:    "secure TLSA, 3 zones from a private root",
			anchors: rootAnchor, qname: tlsaName, qtype: dns.TypeTLSA, status: Secure,
			chain: []string{".", "test.", "example.test."},
		},
		{
			name: "secure TLSA, DNSKEY trust anchor (root.key style)",
			anchors: func(tr *tree) []dns.RR {
				return []dns.RR{tr.tld.DNSKEYs()[0]}
			},
			qname: tlsaName, qtype: dns.TypeTLSA, status: Secure, chain: []string{"test.", "example.test."},
		},
		{
			name:    "secure DS from the parent side (RFC 4035 §5.2)",
			anchors: rootAnchor, qname: "example.test.", qtype: dns.TypeDS, status: Secure,
			chain: []string{".", "test."},
		},
		{
			name:    "secure DNSKEY RRset",
			anchors: rootAnchor, qname: "example.test.", qtype: dns.TypeDNSKEY, status: Secure,
		},
		{
			name:    "secure CNAME followed hop by hop",
			anchors: rootAnchor, qname: "alias.example.test.", qtype: dns.TypeA, status: Secure,
		},
		{
			name:    "tampered RDATA (RFC 4035 §5.3.3)",
			anchors: tldAnchor, qname: tlsaName, qtype: dns.TypeTLSA, status: Bogus, ede: dns.ExtendedErrorCodeDNSBogus,
			hooks: hooks{afterSign: tamperAnswer(tlsaName, dns.TypeTLSA, func(r *dns.Msg) {
				for _, rr := range r.Answer {
					if t, ok := rr.(*dns.TLSA); ok {
						t.Certificate = strings.Repeat("ff", 32)
					}
				}
			})},
			reason: "RRSIG _443._tcp.svc.example.test. TLSA by key",
		},
		{
			name:    "expired RRSIG (RFC 4035 §5.3.1)",
			anchors: tldAnchor, qname: tlsaName, qtype: dns.TypeTLSA, status: Bogus, ede: dns.ExtendedErrorCodeSignatureExpired,
			hooks: hooks{afterSign: func(tr *tree) {
				must(nil, tr.zone.SignRRset(tlsaName, dns.TypeTLSA, testInception, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)))
			}},
			reason: "bogus: RRSIG _443._tcp.svc.example.test. TLSA expired 2026-02-01T00:00:00Z",
		},
		{
			name:    "not yet valid RRSIG (RFC 4035 §5.3.1)",
			anchors: tldAnchor, qname: tlsaName, qtype: dns.TypeTLSA, status: Bogus, ede: dns.ExtendedErrorCodeSignatureNotYetValid,
			hooks: hooks{afterSign: func(tr *tree) {
				must(nil, tr.zone.SignRRset(tlsaName, dns.TypeTLSA, time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), testExpiration))
			}},
			reason: "not valid before 2026-04-01T00:00:00Z",
		},
		{
			name:    "expired DNSKEY RRSIG on the chain",
			anchors: rootAnchor, qname: tlsaName, qtype: dns.TypeTLSA, status: Bogus, ede: dns.ExtendedErrorCodeSignatureExpired,
			hooks: hooks{afterSign: func(tr *tree) {
				must(nil, tr.tld.SignRRset("test.", dns.TypeDNSKEY, testInception, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)))
			}},
			reason: "RRSIG test. DNSKEY expired",
		},
		{
			name:    "stripped RRSIGs (RFC 4035 §5.3)",
			anchors: tldAnchor, qname: tlsaName, qtype: dns.TypeTLSA, status: Bogus, ede: dns.ExtendedErrorCodeRRSIGsMissing,
			hooks:  hooks{afterSign: tamperAnswer(tlsaName, dns.TypeTLSA, func(r *dns.Msg) { r.Answer = withoutRRSIGs(r.Answer) })},
			reason: "bogus: no RRSIG over _443._tcp.svc.example.test. TLSA",
		},
		{
			name:    "stripped DNSKEY RRSIGs",
			anchors: tldAnchor, qname: tlsaName, qtype: dns.TypeTLSA, status: Bogus, ede: dns.ExtendedErrorCodeRRSIGsMissing,
			hooks:  hooks{afterSign: tamperAnswer("example.test.", dns.TypeDNSKEY, func(r *dns.Msg) { r.Answer = withoutRRSIGs(r.Answer) })},
			reason: "no RRSIG over example.test. DNSKEY",
		},
		{
			name:    "DNSKEY does not match DS (RFC 4035 §5.2)",
			anchors: tldAnchor, qname: tlsaName, qtype: dns.TypeTLSA, status: Bogus, ede: dns.ExtendedErrorCodeDNSKEYMissing,
			hooks: hooks{beforeSign: func(tr *tree) {
				other := zonekit.NewZone("example.test.")
				tr.tld.Remove("example.test.", dns.TypeDS)
				must(nil, tr.tld.AddRR(other.DS()[0]))
			}},
			reason: "bogus: no DNSKEY in example.test. matches DS",
		},
		{
			name:    "signer name not an ancestor (RFC 4035 §5.3.1)",
			anchors: tldAnchor, qname: tlsaName, qtype: dns.TypeTLSA, status: Bogus, ede: dns.ExtendedErrorCodeDNSBogus,
			hooks: hooks{afterSign: tamperAnswer(tlsaName, dns.TypeTLSA, func(r *dns.Msg) {
				for _, rr := range r.Answer {
					if s, ok := rr.(*dns.RRSIG); ok {
						s.SignerName = "other.test."
					}
				}
			})},
			reason: "signer other.test. is neither the owner nor an ancestor",
		},
		{
			name:    "signer name is the parent, which has no such key",
			anchors: tldAnchor, qname: tlsaName, qtype: dns.TypeTLSA, status: Bogus, ede: dns.ExtendedErrorCodeDNSKEYMissing,
			hooks: hooks{afterSign: tamperAnswer(tlsaName, dns.TypeTLSA, func(r *dns.Msg) {
				for _, rr := range r.Answer {
					if s, ok := rr.(*dns.RRSIG); ok {
						s.SignerName = "test."
					}
				}
			})},
			reason: "in test. for RRSIG",
		},
		{
			name:    "DS signed by the child (RFC 4035 §5.2)",
			anchors: tldAnchor, qname: "example.test.", qtype: dns.TypeDS, status: Bogus,
			hooks: hooks{afterSign: tamperAnswer("example.test.", dns.TypeDS, func(r *dns.Msg) {
				for _, rr := range r.Answer {
					if s, ok := rr.(*dns.RRSIG); ok {
						s.SignerName = "example.test."
					}
				}
			})},
			reason: "signed by the child zone",
		},
		{
			name:    "signature above the trust anchor",
			anchors: tldAnchor, qname: "example.test.", qtype: dns.TypeDS, status: Bogus,
			hooks: hooks{afterSign: tamperAnswer("example.test.", dns.TypeDS, func(r *dns.Msg) {
				for _, rr := range r.Answer {
					if s, ok := rr.(*dns.RRSIG); ok {
						s.SignerName = "."
					}
				}
			})},
			reason: "above the trust anchor test.",
		},
		{
			name:    "unsigned zone under a provably unsigned delegation is Insecure (RFC 4035 §5.2)",
			anchors: tldAnchor, qname: tlsaName, qtype: dns.TypeTLSA, status: Insecure,
			hooks:  hooks{beforeDelegate: func(tr *tree) { tr.zone.SetUnsigned(true) }},
			reason: "NSEC proves example.test. is an unsigned delegation from test.",
		},
		{
			name:    "wrong trust anchor",
			anchors: func(*tree) []dns.RR { return dsAnchors(zonekit.NewZone("test.")) },
			qname:   tlsaName, qtype: dns.TypeTLSA, status: Bogus, ede: dns.ExtendedErrorCodeDNSKEYMissing,
			reason: "no DNSKEY in test. matches trust anchor",
		},
		{
			name:    "no trust anchor above the name (RFC 4033 §5)",
			anchors: func(*tree) []dns.RR { return dsAnchors(zonekit.NewZone("other.")) },
			qname:   tlsaName, qtype: dns.TypeTLSA, status: Indeterminate,
			reason: "no trust anchor",
		},
		{
			name:    "DS with unknown algorithm only is Insecure (RFC 4035 §5.2)",
			anchors: tldAnchor, qname: tlsaName, qtype: dns.TypeTLSA, status: Insecure, ede: dns.ExtendedErrorCodeUnsupportedDNSKEYAlgorithm,
			hooks: hooks{beforeSign: func(tr *tree) {
				ds := tr.zone.DS()[0]
				ds.Algorithm = dns.PRIVATEDNS
				tr.tld.Remove("example.test.", dns.TypeDS)
				must(nil, tr.tld.AddRR(ds))
			}},
			reason: "no DS for example.test. has a supported algorithm",
		},
		{
			name:    "zone signed with RSASHA1 (algorithm 5) is Insecure (RFC 8624)",
			anchors: rootAnchor, qname: tlsaName, qtype: dns.TypeTLSA, status: Insecure, ede: dns.ExtendedErrorCodeUnsupportedDNSKEYAlgorithm,
			hooks:  hooks{beforeDelegate: func(tr *tree) { must(nil, tr.zone.SetAlgorithm(dns.RSASHA1)) }},
			reason: "insecure zone example.test.",
		},
		{
			name:    "DS with unsupported digest only is Insecure (RFC 6840 §5.2)",
			anchors: tldAnchor, qname: tlsaName, qtype: dns.TypeTLSA, status: Insecure, ede: dns.ExtendedErrorCodeUnsupportedDSDigestType,
			hooks: hooks{beforeSign: func(tr *tree) {
				ds := tr.zone.DS()[0]
				ds.DigestType = dns.GOST94
				tr.tld.Remove("example.test.", dns.TypeDS)
				must(nil, tr.tld.AddRR(ds))
			}},
		},
		{
			name:    "SHA-1 DS ignored when a SHA-256 DS exists for the key (RFC 4509 §3)",
			anchors: tldAnchor, qname: tlsaName, qtype: dns.TypeTLSA, status: Bogus, ede: dns.ExtendedErrorCodeDNSKEYMissing,
			hooks: hooks{beforeSign: func(tr *tree) {
				ksk, _ := tr.zone.Keys()
				bad := tr.zone.DS()[0]
				bad.Digest = strings.Repeat("00", 32)
				tr.tld.Remove("example.test.", dns.TypeDS)
				must(nil, tr.tld.AddRR(bad, ksk.DNSKEY.ToDS(dns.SHA1)))
			}},
		},
		{
			name:    "NXDOMAIN proven by NSEC (RFC 4035 §5.4)",
			anchors: tldAnchor, qname: "_443._tcp.nope.example.test.", qtype: dns.TypeTLSA, status: Secure,
		},
		{
			name:    "NODATA proven by NSEC (RFC 4035 §5.4)",
			anchors: tldAnchor, qname: "svc.example.test.", qtype: dns.TypeTLSA, status: Secure,
		},
		{
			name:    "NXDOMAIN without NSEC from a signed zone (RFC 4035 §5.4)",
			anchors: tldAnchor, qname: "_443._tcp.nope.example.test.", qtype: dns.TypeTLSA, status: Bogus, ede: dns.ExtendedErrorCodeNSECMissing,
			hooks: hooks{afterSign: tamperAnswer("_443._tcp.nope.example.test.", dns.TypeTLSA, func(r *dns.Msg) {
				var keep []dns.RR
				for _, rr := range r.Ns {
					if s, ok := rr.(*dns.RRSIG); (!ok || s.TypeCovered != dns.TypeNSEC) && rr.Header().Rrtype != dns.TypeNSEC {
						keep = append(keep, rr)
					}
				}
				r.Ns = keep
			})},
		},
		{
			name:    "NXDOMAIN in an insecure zone is Insecure",
			anchors: tldAnchor, qname: "nope.example.test.", qtype: dns.TypeTLSA, status: Insecure,
			hooks: hooks{beforeSign: func(tr *tree) {
				ds := tr.zone.DS()[0]
				ds.Algorithm = 200
				tr.tld.Remove("example.test.", dns.TypeDS)
				must(nil, tr.tld.AddRR(ds))
			}},
		},
		{
			name:    "unsigned delegation: DS NODATA with NS bit is Insecure",
			anchors: tldAnchor, qname: "www.plain.test.", qtype: dns.TypeA, status: Insecure,
			hooks: hooks{beforeSign: func(tr *tree) {
				plain := zonekit.NewZone("plain.test.")
				plain.SetUnsigned(true)
				plain.MustAdd("www IN A 192.0.2.9")
				must(nil, zonekit.Delegate(tr.tld, plain))
				must(nil, plain.Sign(testInception, testExpiration))
				tr.extra = append(tr.extra, plain)
			}},
			reason: "plain.test. is an unsigned delegation",
		},
		{
			name:    "wildcard expansion with NSEC proof (RFC 4035 §5.3.4)",
			anchors: tldAnchor, qname: "_443._tcp.x.wild.example.test.", qtype: dns.TypeTLSA, status: Secure,
		},
		{
			name:    "CNAME loop",
			anchors: tldAnchor, qname: "loop1.example.test.", qtype: dns.TypeA, status: Bogus,
			reason: "CNAME loop",
		},
		{
			name:    "response to another question is ignored (RFC 5452 §9.1)",
			anchors: tldAnchor, qname: tlsaName, qtype: dns.TypeTLSA, status: Indeterminate,
			hooks: hooks{afterSign: tamperAnswer(tlsaName, dns.TypeTLSA, func(r *dns.Msg) {
				r.Question[0].Name = "_443._tcp.evil.example.test."
			})},
			reason: "ignored: question _443._tcp.evil.example.test.",
		},
		{
			name:    "response without QR bit is ignored",
			anchors: tldAnchor, qname: tlsaName, qtype: dns.TypeTLSA, status: Indeterminate,
			hooks:  hooks{afterSign: tamperAnswer(tlsaName, dns.TypeTLSA, func(r *dns.Msg) { r.Response = false })},
			reason: "QR bit not set",
		},
		{
			name:    "SERVFAIL is Indeterminate",
			anchors: tldAnchor, qname: tlsaName, qtype: dns.TypeTLSA, status: Indeterminate,
			hooks: hooks{afterSign: tamperAnswer(tlsaName, dns.TypeTLSA, func(r *dns.Msg) {
				r.Rcode, r.Answer = dns.RcodeServerFailure, nil
			})},
			reason: "resolver answered SERVFAIL",
		},
		{
			name:    "out-of-bailiwick records in the answer are ignored",
			anchors: tldAnchor, qname: tlsaName, qtype: dns.TypeTLSA, status: Secure,
			hooks: hooks{afterSign: tamperAnswer(tlsaName, dns.TypeTLSA, func(r *dns.Msg) {
				rr, _ := dns.NewRR("evil.test. 300 IN TLSA " + tlsaData)
				r.Answer = append(r.Answer, rr)
			})},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTree(t, tt.hooks)
			clk := newClock()
			v := newValidator(t, tr.srv, tt.anchors(tr), clk)
			r := v.Lookup(context.Background(), tt.qname, tt.qtype)
			t.Logf("%s", r)
			for _, s := range r.Chain {
				t.Logf("  %s", s)
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
			if r.Status == Secure {
				if r.Err != nil || (len(r.RRset) == 0) != (r.Rcode == dns.RcodeNameError || strings.HasPrefix(tt.name, "NODATA")) || r.TTL <= 0 {
					t.Errorf("secure result: err %v, %d records, ttl %s", r.Err, len(r.RRset), r.TTL)
				}
			} else if r.Err == nil {
				t.Errorf("status %s without an error", r.Status)
			}
			checkErrType(t, r)
			if tt.chain != nil {
				var got []string
				for _, s := range r.Chain {
					got = append(got, s.Zone)
					if s.Status != Secure || len(s.KeyTags) == 0 {
						t.Errorf("chain step %s", s)
					}
				}
				if strings.Join(got, " ") != strings.Join(tt.chain, " ") {
					t.Errorf("chain %v, want %v", got, tt.chain)
				}
			}
		})
	}
}

func checkErrType(t *testing.T, r *Result) {
	t.Helper()
	var b *BogusError
	var i *InsecureError
	var d *IndeterminateError
	switch r.Status {
	case Bogus:
		if !errors.As(r.Err, &b) || b.EDE != r.EDE {
			t.Errorf("bogus result with %T %v", r.Err, r.Err)
		}
	case Insecure:
		if !errors.As(r.Err, &i) {
			t.Errorf("insecure result with %T", r.Err)
		}
	case Indeterminate:
		if !errors.As(r.Err, &d) {
			t.Errorf("indeterminate result with %T", r.Err)
		}
	}
}

func TestAlgorithms(t *testing.T) {
	for _, alg := range []uint8{dns.RSASHA256, dns.RSASHA512, dns.ECDSAP256SHA256, dns.ECDSAP384SHA384, dns.ED25519} {
		t.Run(dns.AlgorithmToString[alg], func(t *testing.T) {
			tr := newTree(t, hooks{beforeDelegate: func(tr *tree) {
				must(t, tr.zone.SetAlgorithm(alg))
				must(t, tr.tld.SetAlgorithm(alg))
			}})
			v := newValidator(t, tr.srv, dsAnchors(tr.root), newClock())
			if r := v.Lookup(context.Background(), tlsaName, dns.TypeTLSA); r.Status != Secure {
				t.Fatalf("%s", r)
			}
		})
	}
}

func TestSHA384DS(t *testing.T) {
	tr := newTree(t, hooks{beforeSign: func(tr *tree) {
		ksk, _ := tr.zone.Keys()
		tr.tld.Remove("example.test.", dns.TypeDS)
		must(t, tr.tld.AddRR(ksk.DNSKEY.ToDS(dns.SHA384)))
	}})
	v := newValidator(t, tr.srv, dsAnchors(tr.tld), newClock())
	r := v.Lookup(context.Background(), tlsaName, dns.TypeTLSA)
	if r.Status != Secure || !strings.HasSuffix(r.Chain[1].DS[0], "/4") {
		t.Fatalf("%s %v", r, r.Chain)
	}
}

func TestTTLCappedAtOriginalTTL(t *testing.T) {
	tr := newTree(t, hooks{afterSign: tamperAnswer(tlsaName, dns.TypeTLSA, func(r *dns.Msg) {
		for _, rr := range r.Answer {
			rr.Header().Ttl = 86400
		}
	})})
	v := newValidator(t, tr.srv, dsAnchors(tr.tld), newClock())
	r := v.Lookup(context.Background(), tlsaName, dns.TypeTLSA)
	if r.Status != Secure {
		t.Fatal(r)
	}
	if r.RRset[0].Header().Ttl != 300 || r.TTL != 300*time.Second {
		t.Fatalf("TTL %d / %s, want 300", r.RRset[0].Header().Ttl, r.TTL)
	}
}

func TestTTLCappedAtExpiration(t *testing.T) {
	tr := newTree(t, hooks{})
	clk := newClock()
	clk.t = testExpiration.Add(-100 * time.Second)
	v := newValidator(t, tr.srv, dsAnchors(tr.tld), clk)
	r := v.Lookup(context.Background(), tlsaName, dns.TypeTLSA)
	if r.Status != Secure || r.TTL != 100*time.Second {
		t.Fatalf("%s", r)
	}
}

func TestInvalidName(t *testing.T) {
	tr := newTree(t, hooks{})
	v := newValidator(t, tr.srv, dsAnchors(tr.tld), newClock())
	if r := v.Lookup(context.Background(), "a..b", dns.TypeTLSA); r.Status != Indeterminate {
		t.Fatal(r)
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("no exchanger accepted")
	}
	a, _ := dns.NewRR("test. IN A 192.0.2.1")
	if _, err := New(Config{Exchanger: ExchangeFunc(nil), Anchors: []dns.RR{a}}); err == nil {
		t.Error("A record accepted as anchor")
	}
	if _, err := New(Config{Exchanger: ExchangeFunc(nil), Anchors: []dns.RR{}}); err == nil {
		t.Error("empty anchors accepted")
	}
	v, err := New(Config{Exchanger: ExchangeFunc(nil)})
	if err != nil || v.anchors["."] == nil {
		t.Errorf("default anchors: %v", err)
	}
}
