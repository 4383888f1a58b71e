package zonekit

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

var (
	inception  = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	expiration = time.Date(2035, 1, 1, 0, 0, 0, 0, time.UTC)
)

func testTree(t *testing.T) (*Server, *Zone, *Zone) {
	t.Helper()
	parent := NewZone("test.")
	child := NewZone("example.test.")
	child.MustAdd(
		"_443._tcp.svc 300 IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"svc IN A 192.0.2.1",
		"alias IN CNAME svc",
		"*.wild IN TXT \"wild\"",
	)
	if err := Delegate(parent, child); err != nil {
		t.Fatal(err)
	}
	for _, z := range []*Zone{parent, child} {
		if err := z.Sign(inception, expiration); err != nil {
			t.Fatal(err)
		}
	}
	return NewServer(parent, child), parent, child
}

func query(name string, qtype uint16) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.SetEdns0(1232, true)
	q.CheckingDisabled = true
	return q
}

func sigsOK(t *testing.T, z *Zone, rrs []dns.RR) int {
	t.Helper()
	sets := map[string][]dns.RR{}
	var sigs []*dns.RRSIG
	for _, rr := range rrs {
		if s, ok := rr.(*dns.RRSIG); ok {
			sigs = append(sigs, s)
			continue
		}
		k := fmt.Sprint(rr.Header().Name, rr.Header().Rrtype)
		sets[k] = append(sets[k], rr)
	}
	for _, s := range sigs {
		key := z.DNSKEYs()[1]
		if s.TypeCovered == dns.TypeDNSKEY {
			key = z.DNSKEYs()[0]
		}
		if err := s.Verify(key, sets[fmt.Sprint(s.Hdr.Name, s.TypeCovered)]); err != nil {
			t.Errorf("RRSIG %s %s: %v", s.Hdr.Name, dns.TypeToString[s.TypeCovered], err)
		}
	}
	return len(sigs)
}

func TestAnswers(t *testing.T) {
	srv, parent, child := testTree(t)
	tests := []struct {
		name    string
		qname   string
		qtype   uint16
		zone    *Zone
		rcode   int
		answers int // non-RRSIG answer records
		nsecs   int
	}{
		{"positive RFC 4035 §3.1.1", "_443._tcp.svc.example.test.", dns.TypeTLSA, child, dns.RcodeSuccess, 1, 0},
		{"DS from parent RFC 4035 §3.1.4.1", "example.test.", dns.TypeDS, parent, dns.RcodeSuccess, 1, 0},
		{"DNSKEY", "example.test.", dns.TypeDNSKEY, child, dns.RcodeSuccess, 2, 0},
		{"NODATA RFC 4035 §3.1.3.1", "svc.example.test.", dns.TypeTLSA, child, dns.RcodeSuccess, 0, 1},
		{"NODATA empty non-terminal", "_tcp.svc.example.test.", dns.TypeTLSA, child, dns.RcodeSuccess, 0, 1},
		{"NXDOMAIN RFC 4035 §3.1.3.2", "nope.example.test.", dns.TypeTLSA, child, dns.RcodeNameError, 0, 2},
		{"wildcard RFC 4035 §3.1.3.3", "x.wild.example.test.", dns.TypeTXT, child, dns.RcodeSuccess, 1, 1},
		{"CNAME followed", "alias.example.test.", dns.TypeA, child, dns.RcodeSuccess, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := srv.Exchange(context.Background(), query(tt.qname, tt.qtype))
			if err != nil {
				t.Fatal(err)
			}
			if r.Rcode != tt.rcode {
				t.Fatalf("rcode %s, want %s\n%s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode], r)
			}
			n := 0
			for _, rr := range r.Answer {
				if rr.Header().Rrtype != dns.TypeRRSIG {
					n++
				}
			}
			if n != tt.answers {
				t.Errorf("%d answers, want %d\n%s", n, tt.answers, r)
			}
			nsecs := 0
			for _, rr := range r.Ns {
				if rr.Header().Rrtype == dns.TypeNSEC {
					nsecs++
				}
			}
			if nsecs != tt.nsecs {
				t.Errorf("%d NSECs, want %d\n%s", nsecs, tt.nsecs, r)
			}
			if tt.answers > 0 && tt.name != "wildcard RFC 4035 §3.1.3.3" {
				if sigsOK(t, tt.zone, r.Answer) == 0 {
					t.Errorf("no RRSIGs in answer")
				}
			}
			sigsOK(t, tt.zone, r.Ns)
		})
	}
}

func TestWildcardSignature(t *testing.T) {
	srv, _, child := testTree(t)
	r, _ := srv.Exchange(context.Background(), query("x.wild.example.test.", dns.TypeTXT))
	var sig *dns.RRSIG
	var set []dns.RR
	for _, rr := range r.Answer {
		if s, ok := rr.(*dns.RRSIG); ok {
			sig = s
		} else {
			set = append(set, rr)
		}
	}
	if sig == nil || sig.Labels != 3 {
		t.Fatalf("wildcard RRSIG labels: %v", sig)
	}
	if err := sig.Verify(child.DNSKEYs()[1], set); err != nil {
		t.Fatal(err)
	}
}

func TestNoDO(t *testing.T) {
	srv, _, _ := testTree(t)
	q := new(dns.Msg)
	q.SetQuestion("_443._tcp.svc.example.test.", dns.TypeTLSA)
	r, _ := srv.Exchange(context.Background(), q)
	for _, rr := range append(r.Answer, r.Ns...) {
		if rr.Header().Rrtype == dns.TypeRRSIG || rr.Header().Rrtype == dns.TypeNSEC {
			t.Errorf("DNSSEC record without DO: %s", rr)
		}
	}
}

func TestUnsignedDelegation(t *testing.T) {
	parent, child := NewZone("test."), NewZone("plain.test.")
	child.SetUnsigned(true)
	child.MustAdd("www IN A 192.0.2.7")
	if err := Delegate(parent, child); err != nil {
		t.Fatal(err)
	}
	parent.Sign(inception, expiration)
	child.Sign(inception, expiration)
	srv := NewServer(parent, child)
	r, _ := srv.Exchange(context.Background(), query("plain.test.", dns.TypeDS))
	if len(r.Answer) != 0 || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("want NODATA for DS:\n%s", r)
	}
	r, _ = srv.Exchange(context.Background(), query("www.plain.test.", dns.TypeA))
	if len(r.Answer) != 1 {
		t.Fatalf("want one unsigned A:\n%s", r)
	}
}

func TestResignExpired(t *testing.T) {
	srv, _, child := testTree(t)
	if err := child.SignRRset("_443._tcp.svc.example.test.", dns.TypeTLSA, inception, inception.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	r, _ := srv.Exchange(context.Background(), query("_443._tcp.svc.example.test.", dns.TypeTLSA))
	for _, rr := range r.Answer {
		if s, ok := rr.(*dns.RRSIG); ok && s.ValidityPeriod(inception.Add(2*time.Hour)) {
			t.Errorf("RRSIG still valid: %s", s)
		}
	}
}

func TestCanonicalOrder(t *testing.T) {
	// RFC 4034 §6.1 example, in order.
	names := []string{"example.", "a.example.", "yljkjljk.a.example.", "Z.a.example.", "zABC.a.EXAMPLE.", "z.example.", "\\001.z.example.", "*.z.example.", "\\200.z.example."}
	for i := 1; i < len(names); i++ {
		if CompareNames(names[i-1], names[i]) >= 0 {
			t.Errorf("%s should sort before %s", names[i-1], names[i])
		}
	}
}

func TestListenTruncation(t *testing.T) {
	parent := NewZone("test.")
	for i := 0; i < 40; i++ {
		parent.MustAdd(fmt.Sprintf("big IN TXT \"%060d\"", i))
	}
	parent.Sign(inception, expiration)
	srv := NewServer(parent)
	addr, err := srv.ListenAndServe()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if _, _, err := net.SplitHostPort(addr); err != nil {
		t.Fatal(err)
	}
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	r, _, err := c.Exchange(query("big.test.", dns.TypeTXT), addr)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Truncated {
		t.Fatalf("UDP answer of %d records not truncated", len(r.Answer))
	}
	c.Net = "tcp"
	r, _, err = c.Exchange(query("big.test.", dns.TypeTXT), addr)
	if err != nil {
		t.Fatal(err)
	}
	if r.Truncated || len(r.Answer) != 41 {
		t.Fatalf("TCP: truncated=%v answers=%d", r.Truncated, len(r.Answer))
	}
}

func TestTamper(t *testing.T) {
	srv, _, _ := testTree(t)
	srv.Tamper = func(q, resp *dns.Msg) { resp.Answer = nil }
	r, _ := srv.Exchange(context.Background(), query("svc.example.test.", dns.TypeA))
	if len(r.Answer) != 0 {
		t.Fatal("Tamper not applied")
	}
}
