package zonekit

import (
	"context"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// dnameTree is testTree with DNAMEs in example.test. (NSEC) and in a
// second child, n3.test. (NSEC3), and records occluded below them.
func dnameTree(t *testing.T) (*Server, *Zone, *Zone) {
	t.Helper()
	parent := NewZone("test.")
	child := NewZone("example.test.")
	child.MustAdd(
		"svc IN A 192.0.2.1",
		"dn 300 IN DNAME example.test.",
		"dn IN TXT \"owner data\"",
		"hidden.dn IN A 192.0.2.66",
		"*.dn IN A 192.0.2.67",
		"cut.dn IN NS ns.elsewhere.",
		"out IN DNAME n3.test.",
		"far IN DNAME nowhere.invalid.",
		"long IN DNAME "+strings.Repeat("a", 63)+"."+strings.Repeat("b", 63)+"."+strings.Repeat("c", 63)+".example.test.",
	)
	n3 := NewZone("n3.test.")
	n3.SetNSEC3(&NSEC3Params{})
	n3.MustAdd("svc IN A 192.0.2.3", "dn IN DNAME n3.test.", "hidden.dn IN A 192.0.2.66")
	for _, c := range []*Zone{child, n3} {
		if err := Delegate(parent, c); err != nil {
			t.Fatal(err)
		}
	}
	for _, z := range []*Zone{parent, child, n3} {
		if err := z.Sign(inception, expiration); err != nil {
			t.Fatal(err)
		}
	}
	return NewServer(parent, child, n3), child, n3
}

func TestDNAMEAnswers(t *testing.T) {
	srv, child, n3 := dnameTree(t)
	tests := []struct {
		name  string
		qname string
		qtype uint16
		rcode int
		want  []string // "owner TYPE [target]" of the non-RRSIG answer records
		zone  *Zone    // whose RRSIGs must verify over the answer
	}{
		{"below the owner: DNAME, synthesized CNAME, target (RFC 6672 §3.2)", "www.svc.dn.example.test.", dns.TypeA, dns.RcodeNameError,
			[]string{"dn.example.test. DNAME example.test.", "www.svc.dn.example.test. CNAME www.svc.example.test."}, child},
		{"target answered", "svc.dn.example.test.", dns.TypeA, dns.RcodeSuccess,
			[]string{"dn.example.test. DNAME example.test.", "svc.dn.example.test. CNAME svc.example.test.", "svc.example.test. A"}, child},
		{"occluded name is redirected, not answered", "hidden.dn.example.test.", dns.TypeA, dns.RcodeNameError,
			[]string{"dn.example.test. DNAME example.test.", "hidden.dn.example.test. CNAME hidden.example.test."}, child},
		{"occluded delegation is redirected", "x.cut.dn.example.test.", dns.TypeDS, dns.RcodeNameError,
			[]string{"dn.example.test. DNAME example.test.", "x.cut.dn.example.test. CNAME x.cut.example.test."}, child},
		{"DNAME query below the owner is redirected too", "x.dn.example.test.", dns.TypeDNAME, dns.RcodeNameError,
			[]string{"dn.example.test. DNAME example.test.", "x.dn.example.test. CNAME x.example.test."}, child},
		{"the owner itself is not redirected (RFC 6672 §2.3)", "dn.example.test.", dns.TypeTXT, dns.RcodeSuccess,
			[]string{"dn.example.test. TXT"}, child},
		{"DNAME at the owner", "dn.example.test.", dns.TypeDNAME, dns.RcodeSuccess,
			[]string{"dn.example.test. DNAME example.test."}, child},
		{"target in another served zone", "svc.out.example.test.", dns.TypeA, dns.RcodeSuccess,
			[]string{"out.example.test. DNAME n3.test.", "svc.out.example.test. CNAME svc.n3.test.", "svc.n3.test. A"}, child},
		{"target outside the served zones", "x.far.example.test.", dns.TypeA, dns.RcodeServerFailure,
			[]string{"far.example.test. DNAME nowhere.invalid.", "x.far.example.test. CNAME x.nowhere.invalid."}, child},
		{"NSEC3 zone", "svc.dn.n3.test.", dns.TypeA, dns.RcodeSuccess,
			[]string{"dn.n3.test. DNAME n3.test.", "svc.dn.n3.test. CNAME svc.n3.test.", "svc.n3.test. A"}, n3},
		{"substitution over 255 octets is YXDOMAIN (RFC 6672 §2.2)", strings.Repeat("q", 60) + ".long.example.test.", dns.TypeA, dns.RcodeYXDomain,
			[]string{"long.example.test. DNAME " + strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + ".example.test."}, child},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := srv.Exchange(context.Background(), query(tt.qname, tt.qtype))
			if err != nil {
				t.Fatal(err)
			}
			if r.Rcode != tt.rcode {
				t.Errorf("rcode %s, want %s\n%s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode], r)
			}
			var got []string
			var dname *dns.DNAME
			for _, rr := range r.Answer {
				h := rr.Header()
				switch rr := rr.(type) {
				case *dns.RRSIG:
					if rr.TypeCovered == dns.TypeCNAME && rr.Hdr.Name == dns.CanonicalName(tt.qname) {
						t.Errorf("synthesized CNAME signed: %s", rr)
					}
					continue
				case *dns.DNAME:
					dname = rr
					got = append(got, h.Name+" DNAME "+rr.Target)
				case *dns.CNAME:
					got = append(got, h.Name+" CNAME "+rr.Target)
					if dname != nil && h.Ttl != dname.Hdr.Ttl {
						t.Errorf("CNAME TTL %d, DNAME's %d", h.Ttl, dname.Hdr.Ttl)
					}
				default:
					if h.Rrtype == dns.TypeA && strings.HasPrefix(h.Name, "hidden.") {
						t.Errorf("occluded data answered: %s", rr)
					}
					got = append(got, h.Name+" "+dns.TypeToString[h.Rrtype])
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("answer\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			sigsOK(t, tt.zone, dnameOnly(r.Answer))
		})
	}
}

// dnameOnly returns the DNAME RRsets and RRSIGs over them.
func dnameOnly(rrs []dns.RR) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if s, ok := rr.(*dns.RRSIG); (ok && s.TypeCovered == dns.TypeDNAME) || rr.Header().Rrtype == dns.TypeDNAME {
			out = append(out, rr)
		}
	}
	return out
}

// TestDNAMEOcclusion: names below a DNAME are neither signed nor in the
// NSEC or NSEC3 chain, and the owner's bitmap shows DNAME.
func TestDNAMEOcclusion(t *testing.T) {
	_, child, n3 := dnameTree(t)
	for _, rr := range append(child.Records(), n3.Records()...) {
		h := rr.Header()
		switch rr := rr.(type) {
		case *dns.RRSIG:
			if strings.HasSuffix(h.Name, ".dn.example.test.") || strings.HasSuffix(h.Name, ".dn.n3.test.") {
				t.Errorf("occluded name signed: %s", rr)
			}
		case *dns.NSEC:
			if strings.HasSuffix(h.Name, ".dn.example.test.") || strings.HasSuffix(rr.NextDomain, ".dn.example.test.") {
				t.Errorf("occluded name in the NSEC chain: %s", rr)
			}
			if h.Name == "dn.example.test." && !hasBit(rr.TypeBitMap, dns.TypeDNAME) {
				t.Errorf("owner NSEC without DNAME: %s", rr)
			}
		case *dns.NSEC3:
			for _, n := range []string{"hidden.dn.n3.test."} {
				if h.Name == n3.HashName(n) {
					t.Errorf("occluded %s in the NSEC3 chain: %s", n, rr)
				}
			}
			if h.Name == n3.HashName("dn.n3.test.") && !hasBit(rr.TypeBitMap, dns.TypeDNAME) {
				t.Errorf("owner NSEC3 without DNAME: %s", rr)
			}
		}
	}
}

// TestDNAMELoop: a DNAME chain that loops or keeps growing ends, and the
// DNAME RRset is not repeated in the answer.
func TestDNAMELoop(t *testing.T) {
	z := NewZone("example.test.")
	z.MustAdd("d1 IN DNAME d2.example.test.", "d2 IN DNAME d1.example.test.", "grow IN DNAME x.grow.example.test.")
	if err := z.Sign(inception, expiration); err != nil {
		t.Fatal(err)
	}
	srv := NewServer(z)
	for _, name := range []string{"a.d1.example.test.", "a.grow.example.test."} {
		r, _ := srv.Exchange(context.Background(), query(name, dns.TypeA))
		dnames, cnames := 0, 0
		for _, rr := range r.Answer {
			switch rr.Header().Rrtype {
			case dns.TypeDNAME:
				dnames++
			case dns.TypeCNAME:
				cnames++
			}
		}
		if dnames > 2 || cnames > maxCNAMEHops+1 {
			t.Errorf("%s: %d DNAMEs, %d CNAMEs\n%s", name, dnames, cnames, r)
		}
	}
}

func TestNoDODNAME(t *testing.T) {
	srv, _, _ := dnameTree(t)
	q := new(dns.Msg)
	q.SetQuestion("svc.dn.example.test.", dns.TypeA)
	r, _ := srv.Exchange(context.Background(), q)
	if len(r.Answer) != 3 {
		t.Errorf("want DNAME, CNAME, A:\n%s", r)
	}
	for _, rr := range r.Answer {
		if rr.Header().Rrtype == dns.TypeRRSIG {
			t.Errorf("RRSIG without DO: %s", rr)
		}
	}
}

func hasBit(bitmap []uint16, t uint16) bool {
	for _, b := range bitmap {
		if b == t {
			return true
		}
	}
	return false
}
