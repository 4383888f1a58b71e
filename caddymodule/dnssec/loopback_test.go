package dnssec

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestLoopbackTCPFallback validates over real sockets: an RRset too large
// for 1232-byte UDP comes back truncated, the exchanger retries over TCP,
// and the validator sees only complete answers.
func TestLoopbackTCPFallback(t *testing.T) {
	const big = "_25._tcp.mx.example.test."
	tr := newTree(t, hooks{beforeDelegate: func(tr *tree) {
		for i := 0; i < 24; i++ {
			tr.zone.MustAdd(fmt.Sprintf("%s 300 IN TLSA 3 1 2 %0128x", big, i))
		}
	}})
	addr, err := tr.srv.ListenAndServe()
	must(t, err)
	defer tr.srv.Close()
	var truncated int
	ex := ExchangeFunc(func(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
		c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
		r, _, err := c.ExchangeContext(ctx, q, addr)
		if err == nil && r.Truncated {
			truncated++
			c.Net = "tcp"
			r, _, err = c.ExchangeContext(ctx, q, addr)
		}
		return r, err
	})
	v := newValidator(t, ex, dsAnchors(tr.root), newClock())
	r := v.Lookup(context.Background(), big, dns.TypeTLSA)
	if r.Status != Secure || len(r.RRset) != 24 {
		t.Fatalf("%s, %d records", r, len(r.RRset))
	}
	if truncated != 1 {
		t.Errorf("%d truncated UDP answers, want 1", truncated)
	}
}

// TestHostileRRTypes feeds RRs whose Go type does not match their header
// type: they are ignored, not a panic.
func TestHostileRRTypes(t *testing.T) {
	ex := ExchangeFunc(func(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetReply(q)
		name := q.Question[0].Name
		for _, typ := range []uint16{dns.TypeRRSIG, dns.TypeDNSKEY, dns.TypeDS, dns.TypeCNAME, q.Question[0].Qtype} {
			m.Answer = append(m.Answer, &dns.RFC3597{Hdr: dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassINET, Ttl: 60}, Rdata: "00"})
		}
		return m, nil
	})
	v := newValidator(t, ex, RootAnchors(), newClock())
	for _, qt := range []uint16{dns.TypeTLSA, dns.TypeDS, dns.TypeDNSKEY, dns.TypeA} {
		if r := v.Lookup(context.Background(), "x.example.", qt); r.Status == Secure {
			t.Fatal(r)
		}
	}
}
