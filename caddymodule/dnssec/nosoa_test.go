package dnssec

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/caddy-dane/caddy-dane/internal/zonekit"
	"github.com/miekg/dns"
)

// Negative answers without an SOA (Unbound's val_find_signer: the zone of
// an NXDOMAIN or NODATA is the signer of its NSEC/NSEC3 records). RFC 2308
// §3 asks servers to include the SOA, but nothing in the proof depends on
// it: the NSEC/NSEC3 RRSIGs name the zone and are verified with its keys.

// withoutSOA removes the SOA RRset and its RRSIGs from the authority
// section.
func withoutSOA(r *dns.Msg) {
	var keep []dns.RR
	for _, rr := range r.Ns {
		if s, ok := rr.(*dns.RRSIG); ok && s.TypeCovered == dns.TypeSOA {
			continue
		}
		if rr.Header().Rrtype != dns.TypeSOA {
			keep = append(keep, rr)
		}
	}
	r.Ns = keep
}

// withProofFrom makes the response a NODATA whose authority section is
// the signed NSEC (or NSEC3) RRset of z for owner: a proof signed by
// another zone than the one that should answer.
func withProofFrom(t testing.TB, z *zonekit.Zone, owner string) func(*dns.Msg) {
	var set []dns.RR
	if h := z.HashName(owner); h != "" {
		set = signedRRset(t, z, h, dns.TypeNSEC3)
	} else {
		set = signedRRset(t, z, owner, dns.TypeNSEC)
	}
	return func(r *dns.Msg) { r.Rcode, r.Answer, r.Ns = dns.RcodeSuccess, nil, set }
}

// longTTLs gives every key of the tree, and example.test.'s SOA (so its
// negative TTL), a lifetime of one day, over maxNegativeTTL.
func longTTLs(tr *tree) {
	for _, z := range []*zonekit.Zone{tr.root, tr.tld, tr.zone} {
		ksk, zsk := z.Keys()
		ksk.DNSKEY.Hdr.Ttl, zsk.DNSKEY.Hdr.Ttl = 86400, 86400
	}
	tr.zone.Remove("example.test.", dns.TypeSOA)
	tr.zone.MustAdd("@ 86400 IN SOA ns.example.test. hostmaster.example.test. 1 7200 3600 1209600 86400")
}

func TestDenialWithoutSOA(t *testing.T) {
	other := func(tr *tree) *zonekit.Zone { return tr.extra[1] }
	tests := []struct {
		name    string
		qname   string
		qtype   uint16
		island  bool // the trust anchor is example.test.'s DS, not the root's
		long    bool // longTTLs
		keepSOA bool
		tamper  func(t testing.TB, tr *tree) func(*dns.Msg)
		status  Status
		ttl     time.Duration // when Secure
		reason  string
		ede     uint16
	}{
		{name: "RFC4035-5.4/NODATA, zone from the NSEC signer", qname: "svc.example.test.", qtype: dns.TypeTLSA, status: Secure, ttl: 300 * time.Second},
		{name: "RFC4035-5.4/NXDOMAIN, zone from the NSEC signer", qname: "_443._tcp.nope.example.test.", qtype: dns.TypeTLSA, status: Secure, ttl: 300 * time.Second},
		{name: "RFC4035-3.1.3.2/NODATA at an empty non-terminal", qname: "_tcp.svc.example.test.", qtype: dns.TypeA, status: Secure, ttl: 300 * time.Second},
		{name: "RFC4035-3.1.3.4/wildcard NODATA", qname: "_443._tcp.x.wild.example.test.", qtype: dns.TypeA, status: Secure, ttl: 300 * time.Second},
		{name: "RFC4035-5.2/DS NODATA, signer strictly above the name", qname: "svc.example.test.", qtype: dns.TypeDS, status: Secure, ttl: 300 * time.Second},
		{name: "RFC4035-5.2/unsigned delegation: DS denial is Insecure", qname: "plain.test.", qtype: dns.TypeDS, status: Insecure},
		{name: "RFC2308-5/negative TTL without SOA: NSEC TTL capped at maxNegativeTTL", long: true, qname: "svc.example.test.", qtype: dns.TypeTLSA, status: Secure, ttl: maxNegativeTTL},
		{name: "RFC2308-5/control: with the SOA, min(SOA TTL, MINIMUM)", long: true, keepSOA: true, qname: "svc.example.test.", qtype: dns.TypeTLSA, status: Secure, ttl: 24 * time.Hour},
		{
			// RFC 4035 §5.2: the DS RRset is the parent's; the child apex
			// NSEC speaks for the child, so no zone qualifies.
			name: "RFC4035-5.2/DS NODATA signed by the child is refused", qname: "example.test.", qtype: dns.TypeDS, status: Bogus, reason: "without an SOA", ede: dns.ExtendedErrorCodeRRSIGsMissing,
			tamper: func(t testing.TB, tr *tree) func(*dns.Msg) { return withProofFrom(t, tr.zone, "example.test.") },
		},
		{
			name: "RFC4035-5.3.1/forged signer: not an ancestor of the name", qname: "svc.example.test.", qtype: dns.TypeTLSA, status: Bogus, reason: "without an SOA", ede: dns.ExtendedErrorCodeRRSIGsMissing,
			tamper: func(t testing.TB, tr *tree) func(*dns.Msg) { return withProofFrom(t, other(tr), "other.test.") },
		},
		{
			name: "RFC4035-4.3/forged signer: above the trust anchor", island: true, qname: "svc.example.test.", qtype: dns.TypeTLSA, status: Bogus, reason: "without an SOA", ede: dns.ExtendedErrorCodeRRSIGsMissing,
			tamper: func(t testing.TB, tr *tree) func(*dns.Msg) { return withProofFrom(t, tr.tld, "example.test.") },
		},
		{
			name: "RFC4035-5.3.1/forged signer: a name that is no zone cut", qname: "svc.example.test.", qtype: dns.TypeTLSA, status: Bogus, reason: "provably not a zone cut",
			tamper: func(t testing.TB, tr *tree) func(*dns.Msg) {
				return func(r *dns.Msg) {
					for _, rr := range r.Ns {
						if s, ok := rr.(*dns.RRSIG); ok {
							s.SignerName = "svc.example.test."
						}
					}
				}
			},
		},
		{
			name: "RFC4035-5.4/signed proof records stripped too", qname: "svc.example.test.", qtype: dns.TypeTLSA, status: Bogus, reason: "without an SOA", ede: dns.ExtendedErrorCodeRRSIGsMissing,
			tamper: func(t testing.TB, tr *tree) func(*dns.Msg) { return func(r *dns.Msg) { r.Ns = withoutRRSIGs(r.Ns) } },
		},
		{
			name: "RFC4035-5.2/unsigned delegation: no SOA, no proof, data below is Insecure", qname: "nope.plain.test.", qtype: dns.TypeTLSA, status: Insecure,
		},
	}
	for _, mode := range denialModes[:2] {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				tr := newTree(t, hooks{
					beforeDelegate: func(tr *tree) {
						plainDelegation(tr)
						o := zonekit.NewZone("other.test.")
						o.MustAdd("svc IN A 192.0.2.8")
						must(nil, zonekit.Delegate(tr.tld, o))
						must(nil, o.Sign(testInception, testExpiration))
						tr.extra = append(tr.extra, o)
						if tt.long {
							longTTLs(tr)
						}
					},
					beforeSign: func(tr *tree) {
						tr.zone.SetNSEC3(mode.params)
						tr.tld.SetNSEC3(mode.params)
					},
					afterSign: func(tr *tree) {
						var f func(*dns.Msg)
						if tt.tamper != nil {
							f = tt.tamper(t, tr)
						}
						tr.srv.Tamper = func(q, resp *dns.Msg) {
							if !equalNames(q.Question[0].Name, tt.qname) || q.Question[0].Qtype != tt.qtype {
								return
							}
							if !tt.keepSOA {
								withoutSOA(resp)
							}
							if f != nil {
								f(resp)
							}
						}
					},
				})
				anchors := dsAnchors(tr.root)
				if tt.island {
					anchors = dsAnchors(tr.zone)
				}
				v := newValidator(t, tr.srv, anchors, newClock())
				r := v.Lookup(context.Background(), tt.qname, tt.qtype)
				t.Logf("%s", r)
				if r.Status != tt.status {
					t.Fatalf("status %s, want %s", r.Status, tt.status)
				}
				if tt.status == Secure && r.TTL != tt.ttl {
					t.Errorf("ttl %s, want %s", r.TTL, tt.ttl)
				}
				if tt.status == Secure && (len(r.RRset) != 0 || r.Signer != "example.test.") {
					t.Errorf("secure denial with %d records, signer %q", len(r.RRset), r.Signer)
				}
				if tt.reason != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), tt.reason)) {
					t.Errorf("error %v, want %q", r.Err, tt.reason)
				}
				if tt.ede != 0 && r.EDE != tt.ede {
					t.Errorf("EDE %d, want %d", r.EDE, tt.ede)
				}
				checkErrType(t, r)
			})
		}
	}
}
