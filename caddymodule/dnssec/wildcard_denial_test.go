package dnssec

import (
	"context"
	"strings"
	"testing"

	"github.com/caddy-dane/caddy-dane/internal/zonekit"
	"github.com/miekg/dns"
)

// Wildcard-expanded proof records (CVE-2017-15105; Unbound's
// val_nodata_failwc.rpl and val_nx_failwc.rpl). A wildcard *.Y owning an
// NSEC RRset is answered, for a query of type NSEC at any name it matches,
// with that NSEC under the query name and an RRSIG whose labels field is
// that of *.Y (RFC 4035 §5.3.4, RFC 4592 §4.7 and its erratum 5119). The
// signature verifies under the expanded name, so an attacker can put the
// record at any name below Y; it says something only about *.Y.

const tlsaData2 = "3 1 1 fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

// wildcardProofZone adds to example.test. a wildcard *.example.test. whose
// NSEC lists TXT only, and names under wild.example.test. the wildcard
// *.wild.example.test. does not answer: a.wild (so *.wild's NSEC ends
// before z.wild) and a TLSA RRset at z.wild that differs from the
// wildcard's.
func wildcardProofZone(tr *tree) {
	tr.zone.MustAdd(
		`*.example.test. 300 IN TXT "wildcard"`,
		"a.wild.example.test. 300 IN A 192.0.2.7",
		"_443._tcp.z.wild.example.test. 300 IN TLSA "+tlsaData2,
	)
}

// signedRRset returns the zone's signed RRset of type t at owner, with its
// RRSIGs, as a server would send it.
func signedRRset(t testing.TB, z *zonekit.Zone, owner string, rrtype uint16) []dns.RR {
	t.Helper()
	var out []dns.RR
	for _, rr := range z.Records() {
		if !equalNames(rr.Header().Name, owner) {
			continue
		}
		if sig, ok := rr.(*dns.RRSIG); (ok && sig.TypeCovered == rrtype) || rr.Header().Rrtype == rrtype {
			out = append(out, rr)
		}
	}
	if len(out) < 2 {
		t.Fatalf("no signed %s RRset at %s", dns.TypeToString[rrtype], owner)
	}
	return out
}

// expandedAt returns copies of rrs (an RRset and its RRSIGs) under the
// owner name as, which is what wildcard synthesis does to them.
func expandedAt(rrs []dns.RR, as string) []dns.RR {
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		out[i] = dns.Copy(rr)
		out[i].Header().Name = as
	}
	return out
}

// forge makes the server answer qname/qtype with rcode and the given
// answer and authority sections instead of the real response.
func forge(tr *tree, qname string, qtype uint16, rcode int, answer, ns []dns.RR) {
	tr.srv.Tamper = func(q, resp *dns.Msg) {
		if equalNames(q.Question[0].Name, qname) && q.Question[0].Qtype == qtype {
			resp.Rcode, resp.Answer, resp.Ns = rcode, answer, ns
		}
	}
}

// wildcardNSEC3 signs, with the zone's ZSK, an NSEC3 RRset at *.<zone>:
// something no signer makes, but which the zone's keys would vouch for at
// any hashed owner name it is expanded to. Its span runs from next to
// next, so at owner "<next>.<zone>" it covers every other hash.
func wildcardNSEC3(t testing.TB, z *zonekit.Zone, next string) []dns.RR {
	t.Helper()
	_, zsk := z.Keys()
	n := &dns.NSEC3{
		Hdr:  dns.RR_Header{Name: "*." + z.Origin(), Rrtype: dns.TypeNSEC3, Class: dns.ClassINET, Ttl: 300},
		Hash: dns.SHA1, HashLength: 20, NextDomain: next, TypeBitMap: []uint16{dns.TypeTXT},
	}
	sig := &dns.RRSIG{
		Hdr:        dns.RR_Header{Ttl: 300},
		Algorithm:  zsk.DNSKEY.Algorithm,
		SignerName: z.Origin(),
		KeyTag:     zsk.DNSKEY.KeyTag(),
		Inception:  uint32(testInception.Unix()),
		Expiration: uint32(testExpiration.Unix()),
	}
	must(t, sig.Sign(zsk.Private, []dns.RR{n}))
	return []dns.RR{n, sig}
}

func TestWildcardExpandedProof(t *testing.T) {
	const (
		wcNODATA = "_443._tcp.x.wild.example.test." // answered by *.wild.example.test.'s TLSA
		wcHit    = "a.example.test."                // answered by *.example.test.'s TXT
		zTLSA    = "_443._tcp.z.wild.example.test." // a TLSA RRset of its own, not the wildcard's
		// hashNone is an NSEC3 owner hash that no name of the tests has.
		hashNone = "00000000000000000000000000000000"
	)
	soa := func(tr *tree) []dns.RR { return signedRRset(t, tr.zone, "example.test.", dns.TypeSOA) }
	wcNSEC := func(tr *tree) []dns.RR { return signedRRset(t, tr.zone, "*.example.test.", dns.TypeNSEC) }
	cat := func(sets ...[]dns.RR) []dns.RR {
		var out []dns.RR
		for _, s := range sets {
			out = append(out, s...)
		}
		return out
	}
	tests := []struct {
		name   string
		nsec3  bool
		qname  string
		qtype  uint16
		forge  func(tr *tree) (rcode int, answer, ns []dns.RR)
		status Status
		empty  bool // a Secure denial
		reason string
	}{
		// The real answers: the zone itself validates.
		{name: "RFC4035-5.3/control: real TLSA", qname: tlsaName, qtype: dns.TypeTLSA, status: Secure},
		{name: "RFC4035-5.3.4/control: real wildcard TXT", qname: wcHit, qtype: dns.TypeTXT, status: Secure},
		{name: "RFC4035-5.3.4/control: real wildcard TLSA", qname: wcNODATA, qtype: dns.TypeTLSA, status: Secure},
		{name: "RFC4035-5.3/control: real TLSA beside a wildcard", qname: zTLSA, qtype: dns.TypeTLSA, status: Secure},
		{name: "NSEC3/RFC5155-8/control: real TLSA", nsec3: true, qname: tlsaName, qtype: dns.TypeTLSA, status: Secure},
		{name: "NSEC3/RFC5155-8.8/control: real wildcard TLSA", nsec3: true, qname: wcNODATA, qtype: dns.TypeTLSA, status: Secure},

		// RFC 4035 §3.1.3.1 NODATA: *.example.test.'s NSEC (TXT only)
		// put at the TLSA owner denies its TLSA RRset.
		{
			name: "RFC4035-5.3.4/NODATA from the wildcard's NSEC expanded at qname", qname: tlsaName, qtype: dns.TypeTLSA, status: Bogus,
			reason: "expanded from wildcard *.example.test.",
			forge: func(tr *tree) (int, []dns.RR, []dns.RR) {
				return dns.RcodeSuccess, nil, cat(soa(tr), expandedAt(wcNSEC(tr), tlsaName))
			},
		},
		// RFC 4035 §3.1.3.2 NXDOMAIN, Unbound's val_nx_failwc shape: at
		// "!.example.test." (just before "*") the NSEC spans both the
		// name and the wildcard that answers it.
		{
			name: "RFC4035-5.3.4/NXDOMAIN from the wildcard's NSEC expanded to span the wildcard", qname: wcHit, qtype: dns.TypeTXT, status: Bogus,
			reason: "expanded from wildcard *.example.test.",
			forge: func(tr *tree) (int, []dns.RR, []dns.RR) {
				return dns.RcodeNameError, nil, cat(soa(tr), expandedAt(wcNSEC(tr), "!.example.test."))
			},
		},
		// NXDOMAIN for the TLSA owner: expanded after its next name the
		// NSEC looks like the last of the chain and covers qname; a real
		// NSEC denies the wildcard at the implied closest encloser.
		{
			name: "RFC4035-5.3.4/NXDOMAIN from the wildcard's NSEC expanded to wrap around qname", qname: tlsaName, qtype: dns.TypeTLSA, status: Bogus,
			reason: "expanded from wildcard *.example.test.",
			forge: func(tr *tree) (int, []dns.RR, []dns.RR) {
				return dns.RcodeNameError, nil, cat(soa(tr), expandedAt(wcNSEC(tr), "_400._tcp.svc.example.test."),
					signedRRset(t, tr.zone, "svc.example.test.", dns.TypeNSEC))
			},
		},
		// RFC 4035 §3.1.3.4 wildcard NODATA: at *.wild.example.test. the
		// NSEC poses as that wildcard's (without TLSA) and covers qname.
		{
			name: "RFC4035-5.3.4/wildcard NODATA from the wildcard's NSEC expanded at another wildcard", qname: wcNODATA, qtype: dns.TypeTLSA, status: Bogus,
			reason: "expanded from wildcard *.example.test.",
			forge: func(tr *tree) (int, []dns.RR, []dns.RR) {
				return dns.RcodeSuccess, nil, cat(soa(tr), expandedAt(wcNSEC(tr), "*.wild.example.test."))
			},
		},
		// RFC 4035 §5.3.4 positive wildcard answer: *.wild's TLSA for a
		// name with a TLSA RRset of its own, and *.wild's own NSEC,
		// expanded after its next name, as the proof that qname is absent.
		{
			name: "RFC4035-5.3.4/wildcard answer proven by the wildcard's own NSEC expanded", qname: zTLSA, qtype: dns.TypeTLSA, status: Bogus,
			reason: "expanded from wildcard *.wild.example.test.",
			forge: func(tr *tree) (int, []dns.RR, []dns.RR) {
				return dns.RcodeSuccess, expandedAt(signedRRset(t, tr.zone, "*.wild.example.test.", dns.TypeTLSA), zTLSA),
					expandedAt(signedRRset(t, tr.zone, "*.wild.example.test.", dns.TypeNSEC), "y.wild.example.test.")
			},
		},

		// Held under its wildcard owner, the record still proves what it
		// says about the wildcard: here that ab.example.test. does not
		// exist and *.example.test. has no A (RFC 4035 §3.1.3.4).
		{
			name: "RFC4592-4.7/expanded NSEC still proves a wildcard NODATA for its wildcard", qname: "ab.example.test.", qtype: dns.TypeA, status: Secure, empty: true,
			forge: func(tr *tree) (int, []dns.RR, []dns.RR) {
				return dns.RcodeSuccess, nil, cat(soa(tr), expandedAt(wcNSEC(tr), "ab.example.test."))
			},
		},

		// NSEC3 (RFC 5155 §8): an NSEC3 RRset signed at *.example.test.
		// would, expanded, match or cover any hash.
		{
			name: "NSEC3/RFC5155-8.5/NODATA from a wildcard NSEC3 expanded at qname's hash", nsec3: true, qname: tlsaName, qtype: dns.TypeTLSA, status: Bogus,
			reason: "expanded from wildcard *.example.test.",
			forge: func(tr *tree) (int, []dns.RR, []dns.RR) {
				return dns.RcodeSuccess, nil, cat(soa(tr), expandedAt(wildcardNSEC3(t, tr.zone, hashNone), tr.zone.HashName(tlsaName)))
			},
		},
		{
			name: "NSEC3/RFC5155-8.4/NXDOMAIN from a wildcard NSEC3 covering next closer and wildcard", nsec3: true, qname: tlsaName, qtype: dns.TypeTLSA, status: Bogus,
			reason: "expanded from wildcard *.example.test.",
			forge: func(tr *tree) (int, []dns.RR, []dns.RR) {
				return dns.RcodeNameError, nil, cat(soa(tr), signedRRset(t, tr.zone, tr.zone.HashName("_tcp.svc.example.test."), dns.TypeNSEC3),
					expandedAt(wildcardNSEC3(t, tr.zone, hashNone), strings.ToLower(hashNone)+".example.test."))
			},
		},
		{
			name: "NSEC3/RFC5155-8.7/wildcard NODATA from a wildcard NSEC3 posing as the wildcard", nsec3: true, qname: tlsaName, qtype: dns.TypeTLSA, status: Bogus,
			reason: "expanded from wildcard *.example.test.",
			forge: func(tr *tree) (int, []dns.RR, []dns.RR) {
				wc := wildcardNSEC3(t, tr.zone, hashNone)
				return dns.RcodeSuccess, nil, cat(soa(tr), signedRRset(t, tr.zone, tr.zone.HashName("_tcp.svc.example.test."), dns.TypeNSEC3),
					expandedAt(wc, strings.ToLower(hashNone)+".example.test."),
					expandedAt(wc, tr.zone.HashName("*._tcp.svc.example.test.")))
			},
		},
		{
			name: "NSEC3/RFC5155-8.8/wildcard answer proven by a wildcard NSEC3", nsec3: true, qname: zTLSA, qtype: dns.TypeTLSA, status: Bogus,
			reason: "expanded from wildcard *.example.test.",
			forge: func(tr *tree) (int, []dns.RR, []dns.RR) {
				return dns.RcodeSuccess, expandedAt(signedRRset(t, tr.zone, "*.wild.example.test.", dns.TypeTLSA), zTLSA),
					expandedAt(wildcardNSEC3(t, tr.zone, hashNone), strings.ToLower(hashNone)+".example.test.")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTree(t, hooks{
				beforeDelegate: wildcardProofZone,
				beforeSign: func(tr *tree) {
					if tt.nsec3 {
						tr.zone.SetNSEC3(&zonekit.NSEC3Params{})
					}
				},
				afterSign: func(tr *tree) {
					if tt.forge != nil {
						rcode, answer, ns := tt.forge(tr)
						forge(tr, tt.qname, tt.qtype, rcode, answer, ns)
					}
				},
			})
			v := newValidator(t, tr.srv, dsAnchors(tr.root), newClock())
			r := v.Lookup(context.Background(), tt.qname, tt.qtype)
			t.Logf("%s", r)
			if r.Status != tt.status {
				t.Fatalf("status %s, want %s", r.Status, tt.status)
			}
			if tt.reason != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), tt.reason)) {
				t.Errorf("error %v, want %q", r.Err, tt.reason)
			}
			if tt.status == Secure && (len(r.RRset) == 0) != tt.empty {
				t.Errorf("secure with %d records, want empty %v", len(r.RRset), tt.empty)
			}
			checkErrType(t, r)
		})
	}
}
