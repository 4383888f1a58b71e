package dnssec

import (
	"context"
	"strings"
	"testing"

	"github.com/caddy-dane/caddy-dane/internal/zonekit"
	"github.com/miekg/dns"
)

// The tests of this file are about which zone and which trust anchor an
// RRset is validated under: the closest anchor of the name asked (RFC 4035
// §4.3, RFC 6840 §5.10), the parent's for a DS RRset (RFC 4035 §5.2), and
// the zone that contains the RRset as signer (RFC 4035 §5.3.1).

const subZone = "sub.example.test."

// withSub adds sub.example.test. (www A, a DNAME out to example.test. and
// a CNAME to svc.example.test.), delegated from example.test. (with its DS
// unless unsigned), to the tree. Call it from beforeDelegate, after any
// SetUnsigned of example.test.
func withSub(unsigned bool) func(*tree) {
	return func(tr *tree) {
		sub := zonekit.NewZone(subZone)
		sub.SetUnsigned(unsigned)
		sub.MustAdd(
			"www 300 IN A 192.0.2.20",
			"dn 300 IN DNAME example.test.",
			"alias 300 IN CNAME svc.example.test.",
		)
		must(nil, zonekit.Delegate(tr.zone, sub))
		must(nil, sub.Sign(testInception, testExpiration))
		tr.extra = append(tr.extra, sub)
	}
}

// sub returns the zone withSub added.
func (tr *tree) sub() *zonekit.Zone {
	for _, z := range tr.extra {
		if z.Origin() == subZone {
			return z
		}
	}
	panic("no " + subZone + " in the tree")
}

// forgeRRSIG signs rrs with z's zone-signing key, as z would: what a
// holder of that key can make for any name, inside its zone or not.
func forgeRRSIG(z *zonekit.Zone, rrs ...dns.RR) *dns.RRSIG {
	_, zsk := z.Keys()
	sig := &dns.RRSIG{
		Hdr:        dns.RR_Header{Ttl: rrs[0].Header().Ttl},
		Algorithm:  zsk.DNSKEY.Algorithm,
		SignerName: z.Origin(),
		KeyTag:     zsk.DNSKEY.KeyTag(),
		Inception:  uint32(testInception.Unix()),
		Expiration: uint32(testExpiration.Unix()),
	}
	must(nil, sig.Sign(zsk.Private, rrs))
	return sig
}

func mustRR(s string) dns.RR {
	rr, err := dns.NewRR(s)
	must(nil, err)
	return rr
}

// answerWith replaces the response to name/qtype by rrs, NOERROR.
func answerWith(name string, qtype uint16, rrs func(*tree) []dns.RR) func(*tree) {
	return func(tr *tree) {
		answer := rrs(tr)
		tr.srv.Tamper = func(q, resp *dns.Msg) {
			if equalNames(q.Question[0].Name, name) && q.Question[0].Qtype == qtype {
				resp.Rcode, resp.Answer, resp.Ns = dns.RcodeSuccess, answer, nil
			}
		}
	}
}

type chainCase struct {
	name    string
	hooks   hooks
	anchors func(*tree) []dns.RR
	before  []string // "name TYPE" looked up first, on the same validator
	qname   string
	qtype   uint16
	status  Status
	ede     uint16
	reason  string   // substring of Err
	chain   []string // zones of Result.Chain, when set
}

func runChainCases(t *testing.T, tests []chainCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTree(t, tt.hooks)
			v := newValidator(t, tr.srv, tt.anchors(tr), newClock())
			for _, b := range tt.before {
				f := strings.Fields(b)
				r := v.Lookup(context.Background(), f[0], dns.StringToType[f[1]])
				t.Logf("before: %s", r)
			}
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
			if tt.reason != "" && !strings.Contains(Reason(r.Err), tt.reason) {
				t.Errorf("error %v, want it to contain %q", r.Err, tt.reason)
			}
			if r.Status != Secure && r.Err == nil {
				t.Errorf("status %s without an error", r.Status)
			}
			checkErrType(t, r)
			if tt.chain != nil {
				var got []string
				for _, s := range r.Chain {
					got = append(got, s.Zone)
				}
				if strings.Join(got, " ") != strings.Join(tt.chain, " ") {
					t.Errorf("chain %v, want %v", got, tt.chain)
				}
			}
		})
	}
}

func anchorsOf(zones ...func(*tree) *zonekit.Zone) func(*tree) []dns.RR {
	return func(tr *tree) []dns.RR {
		var out []dns.RR
		for _, z := range zones {
			out = append(out, dsAnchors(z(tr))...)
		}
		return out
	}
}

func rootZone(tr *tree) *zonekit.Zone { return tr.root }
func tldZone(tr *tree) *zonekit.Zone  { return tr.tld }
func exZone(tr *tree) *zonekit.Zone   { return tr.zone }
func subOf(tr *tree) *zonekit.Zone    { return tr.sub() }

// TestDSAtTrustAnchor: the DS RRset of a zone lives in, and is signed by,
// the parent (RFC 4035 §5.2), so a DS query at the owner of a trust anchor
// is validated under the closest anchor above that owner, never under the
// owner's own (Unbound val_qds_twoanc, val_qds_badanc). The validator's
// own DS lookups go through the same rule.
func TestDSAtTrustAnchor(t *testing.T) {
	runChainCases(t, []chainCase{
		{
			name:    "RFC4035-5.2/DS at a child anchor is validated with the parent's keys, root anchor above",
			anchors: anchorsOf(rootZone, exZone), qname: "example.test.", qtype: dns.TypeDS, status: Secure,
			chain: []string{".", "test."},
		},
		{
			name:    "RFC6840-5.10/DS at the deeper of two nested anchors: the anchor above decides (val_qds_twoanc)",
			anchors: anchorsOf(tldZone, exZone), qname: "example.test.", qtype: dns.TypeDS, status: Secure,
			chain: []string{"test."},
		},
		{
			name:    "RFC4035-5.2/DS at the only anchor: no anchor above proves it (val_qds_badanc)",
			anchors: anchorsOf(exZone), qname: "example.test.", qtype: dns.TypeDS, status: Indeterminate,
			reason: "no trust anchor at or above test.",
		},
		{
			name: "RFC4035-5.2/a wrong child anchor does not decide its own DS",
			anchors: func(tr *tree) []dns.RR {
				return append(dsAnchors(tr.root), dsAnchors(zonekit.NewZone("example.test."))...)
			},
			qname: "example.test.", qtype: dns.TypeDS, status: Secure, chain: []string{".", "test."},
		},
		{
			name: "RFC4035-5.2/a wrong child anchor still decides the zone below it",
			anchors: func(tr *tree) []dns.RR {
				return append(dsAnchors(tr.root), dsAnchors(zonekit.NewZone("example.test."))...)
			},
			qname: tlsaName, qtype: dns.TypeTLSA, status: Bogus, ede: dns.ExtendedErrorCodeDNSKEYMissing,
			reason: "matches trust anchor",
		},
		{
			name:    "RFC4035-5.2/DS at a child anchor signed by the child key is Bogus",
			anchors: anchorsOf(rootZone, exZone), qname: "example.test.", qtype: dns.TypeDS, status: Bogus,
			hooks: hooks{afterSign: answerWith("example.test.", dns.TypeDS, func(tr *tree) []dns.RR {
				ds := tr.zone.DS()[0]
				return []dns.RR{ds, forgeRRSIG(tr.zone, ds)}
			})},
			reason: "signed by the child zone",
		},
		{
			name:    "RFC4035-5.2/unsigned DS at a child anchor below a signed parent is Bogus",
			anchors: anchorsOf(rootZone, exZone), qname: "example.test.", qtype: dns.TypeDS, status: Bogus,
			ede: dns.ExtendedErrorCodeRRSIGsMissing,
			hooks: hooks{afterSign: answerWith("example.test.", dns.TypeDS, func(tr *tree) []dns.RR {
				return []dns.RR{tr.zone.DS()[0]}
			})},
			reason: "no RRSIG over example.test. DS",
		},
		{
			name:    "RFC4035-5.2/DS at an island anchor two zones down is validated under the root anchor",
			anchors: anchorsOf(rootZone, subOf), hooks: hooks{beforeDelegate: withSub(false)},
			qname: subZone, qtype: dns.TypeDS, status: Secure, chain: []string{".", "test.", "example.test."},
		},
		{
			name:    "RFC4035-4.3/data below a child anchor uses that anchor, not the one above",
			anchors: anchorsOf(rootZone, exZone), qname: tlsaName, qtype: dns.TypeTLSA, status: Secure,
			chain: []string{"example.test."},
		},
	})
}

// TestRedirectAboveAnchor: the status of the name asked is bounded by the
// trust anchor that covers it (RFC 4035 §4.3, RFC 6840 §5.10). A DNAME
// above that anchor, signed or not, cannot redirect a name below it: the
// anchor says the name's zone is signed with the anchor's keys, and only
// they can prove anything there. A redirection at or below the anchor (a
// CNAME at the name, a DNAME in the anchored zone) is validated under it
// and may lead anywhere.
func TestRedirectAboveAnchor(t *testing.T) {
	const qname = "www." + subZone
	dname := func(target string) func(*tree) []dns.RR {
		return func(tr *tree) []dns.RR {
			d := mustRR("example.test. 300 IN DNAME " + target)
			return []dns.RR{d, mustRR("www.sub.example.test. 300 IN CNAME www.sub." + target)}
		}
	}
	signedDNAME := func(target string) func(*tree) []dns.RR {
		return func(tr *tree) []dns.RR {
			d := mustRR("example.test. 300 IN DNAME " + target)
			return []dns.RR{d, forgeRRSIG(tr.zone, d), mustRR("www.sub.example.test. 300 IN CNAME www.sub." + target)}
		}
	}
	insecureParent := func(tr *tree) {
		tr.zone.SetUnsigned(true)
		withSub(false)(tr)
	}
	runChainCases(t, []chainCase{
		{
			name:    "RFC4035-4.3/unsigned DNAME in an insecure zone above the name's anchor is Bogus, not Insecure",
			anchors: anchorsOf(rootZone, subOf), qname: qname, qtype: dns.TypeA, status: Bogus,
			hooks:  hooks{beforeDelegate: insecureParent, afterSign: answerWith(qname, dns.TypeA, dname("svc.example.test."))},
			reason: "above the trust anchor " + subZone,
		},
		{
			name:    "RFC4035-4.3/DNAME signed by the zone above the name's anchor is Bogus, not Secure",
			anchors: anchorsOf(rootZone, subOf), qname: qname, qtype: dns.TypeA, status: Bogus,
			hooks: hooks{beforeDelegate: func(tr *tree) {
				withSub(false)(tr)
				tr.zone.MustAdd("www.sub.red 300 IN A 192.0.2.21")
			}, afterSign: answerWith(qname, dns.TypeA, signedDNAME("red.example.test."))},
			reason: "above the trust anchor " + subZone,
		},
		{
			name:    "RFC4035-4.3/DNAME signed by the zone above, the zone's own anchor as well: still Bogus",
			anchors: anchorsOf(exZone, subOf), qname: qname, qtype: dns.TypeA, status: Bogus,
			hooks: hooks{beforeDelegate: func(tr *tree) {
				withSub(false)(tr)
				tr.zone.MustAdd("www.sub.red 300 IN A 192.0.2.21")
			}, afterSign: answerWith(qname, dns.TypeA, signedDNAME("red.example.test."))},
			reason: "above the trust anchor " + subZone,
		},
		{
			name:    "RFC4035-4.3/unsigned DNAME in a signed zone above the name's anchor is Bogus",
			anchors: anchorsOf(rootZone, subOf), qname: qname, qtype: dns.TypeA, status: Bogus,
			hooks: hooks{beforeDelegate: withSub(false), afterSign: answerWith(qname, dns.TypeA, dname("svc.example.test."))},
		},
		{
			name:    "RFC6672-3.2/DNAME in the anchored zone leads out of it: Secure under both anchors",
			anchors: anchorsOf(rootZone, subOf), hooks: hooks{beforeDelegate: withSub(false)},
			qname: "svc.dn." + subZone, qtype: dns.TypeA, status: Secure,
		},
		{
			name:    "RFC4035-5.3/CNAME at the name leads out of the anchored zone: Secure",
			anchors: anchorsOf(rootZone, subOf), hooks: hooks{beforeDelegate: withSub(false)},
			qname: "alias." + subZone, qtype: dns.TypeA, status: Secure,
		},
		{
			name:    "RFC6672-3.2/DNAME in the anchored zone leading into an insecure zone: Insecure",
			anchors: anchorsOf(rootZone, subOf), hooks: hooks{beforeDelegate: insecureParent},
			qname: "svc.dn." + subZone, qtype: dns.TypeA, status: Insecure,
		},
	})
}

// TestSignerAboveZoneCut: the signer of an RRSIG must be the zone that
// contains the RRset (RFC 4035 §5.3.1). An ancestor's key is not enough
// once the validator knows of a zone cut between that ancestor and the
// RRset: below a cut proven signed (an authenticated DS RRset) the
// ancestor's signature is Bogus; below a cut proven unsigned it proves
// nothing, and the RRset is Insecure like everything else there. The cut
// is known from the DS RRsets and zone keys the validator has cached
// (here: from a lookup made first), so the common case, where the signer
// is the zone, costs no query.
func TestSignerAboveZoneCut(t *testing.T) {
	const forged = "forged." + subZone
	parentSigned := func(name string, rrtype string, rdata string) func(*tree) []dns.RR {
		return func(tr *tree) []dns.RR {
			rr := mustRR(name + " 300 IN " + rrtype + " " + rdata)
			return []dns.RR{rr, forgeRRSIG(tr.zone, rr)}
		}
	}
	txt := parentSigned(forged, "TXT", `"from the parent"`)
	secureSub := hooks{beforeDelegate: withSub(false), afterSign: answerWith(forged, dns.TypeTXT, txt)}
	runChainCases(t, []chainCase{
		{
			name:    "RFC4035-5.3.1/parent key below a secure cut proven by the chain of trust: Bogus",
			anchors: anchorsOf(rootZone), hooks: secureSub,
			before: []string{"www." + subZone + " A"},
			qname:  forged, qtype: dns.TypeTXT, status: Bogus, ede: dns.ExtendedErrorCodeDNSBogus,
			reason: "signer example.test. is not the zone that contains it: sub.example.test. is a zone cut",
		},
		{
			name:    "RFC4035-5.3.1/parent key below a secure cut proven by a DS query: Bogus",
			anchors: anchorsOf(rootZone), hooks: secureSub,
			before: []string{subZone + " DS"},
			qname:  forged, qtype: dns.TypeTXT, status: Bogus, ede: dns.ExtendedErrorCodeDNSBogus,
			reason: "sub.example.test. is a zone cut",
		},
		{
			name:    "RFC4035-5.3.1/grandparent key over a DS RRset below a proven cut: Bogus",
			anchors: anchorsOf(rootZone),
			hooks: hooks{beforeDelegate: withSub(false), afterSign: answerWith("x."+subZone, dns.TypeDS,
				parentSigned("x."+subZone, "DS", "12345 13 2 "+strings.Repeat("ab", 32)))},
			before: []string{"www." + subZone + " A"},
			qname:  "x." + subZone, qtype: dns.TypeDS, status: Bogus, ede: dns.ExtendedErrorCodeDNSBogus,
			reason: "sub.example.test. is a zone cut",
		},
		{
			name:    "RFC4035-5.2/parent key below a cut proven unsigned: Insecure, never Secure",
			anchors: anchorsOf(rootZone),
			hooks:   hooks{beforeDelegate: withSub(true), afterSign: answerWith(forged, dns.TypeTXT, txt)},
			before:  []string{"www." + subZone + " A"},
			qname:   forged, qtype: dns.TypeTXT, status: Insecure,
			reason: "below sub.example.test.",
		},
		{
			name:    "RFC4035-5.3.1/the zone's own signature below the known cut stays Secure",
			anchors: anchorsOf(rootZone), hooks: hooks{beforeDelegate: withSub(false)},
			before: []string{subZone + " DS"},
			qname:  "www." + subZone, qtype: dns.TypeA, status: Secure,
			chain: []string{".", "test.", "example.test.", subZone},
		},
		{
			name:    "RFC4035-5.3.1/the parent's own data beside the known cut stays Secure",
			anchors: anchorsOf(rootZone), hooks: hooks{beforeDelegate: withSub(false)},
			before: []string{"www." + subZone + " A"},
			qname:  tlsaName, qtype: dns.TypeTLSA, status: Secure,
		},
		{
			name:    "RFC4035-5.2/the DS RRset at the cut itself is the parent's: Secure",
			anchors: anchorsOf(rootZone), hooks: hooks{beforeDelegate: withSub(false)},
			before: []string{"www." + subZone + " A"},
			qname:  subZone, qtype: dns.TypeDS, status: Secure,
		},
	})
}

// TestZoneCutCheckIsFree: knowing the cuts sends no query: a cold lookup
// below a delegation costs what it did (DS and DNSKEY per zone, plus the
// answer), and a lookup in the parent's zone afterwards only its answer.
func TestZoneCutCheckIsFree(t *testing.T) {
	tr := newTree(t, hooks{beforeDelegate: withSub(false)})
	ex := countQueries(tr.srv)
	v := newValidator(t, ex, dsAnchors(tr.root), newClock())
	if r := v.Lookup(context.Background(), "www."+subZone, dns.TypeA); r.Status != Secure {
		t.Fatal(r)
	}
	// DNSKEY ., DS+DNSKEY test., example.test., sub.example.test., A.
	if n := ex.Total(); n != 8 {
		t.Errorf("cold lookup made %d queries, want 8: %v", n, ex.byKey)
	}
	if r := v.Lookup(context.Background(), tlsaName, dns.TypeTLSA); r.Status != Secure {
		t.Fatal(r)
	}
	if n := ex.Total(); n != 9 {
		t.Errorf("lookup under cached keys made %d queries, want 1: %v", n-8, ex.byKey)
	}
}
