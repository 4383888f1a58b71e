package integration

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/resolver"
	"github.com/caddy-dane/caddy-dane/internal/labconf"
)

// ask sends one DNSSEC query (DO, and CD if cd) to Unbound through our own
// resolver client.
func ask(t *testing.T, e *Env, name string, qtype uint16, cd bool) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.SetEdns0(1232, true)
	q.CheckingDisabled = cd
	c := &resolver.Client{Servers: []string{e.Lab.Resolver()}, Timeout: 3 * time.Second, Attempts: 1}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Exchange(ctx, q)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, dns.TypeToString[qtype], err, e.diagnostics())
	}
	return r
}

func tlsaData(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TLSA); ok {
			out = append(out, strings.TrimPrefix(t.String(), t.Hdr.String()))
		}
	}
	return out
}

// TestLab proves the DNS half of the test bed on its own, with Unbound as
// the validator: each zone has the DNSSEC status its scenario relies on.
func TestLab(t *testing.T) {
	e := needLab(t)
	owner := func(name string) string {
		u := e.Up[name]
		return tlsaRR{Host: u.Host, Port: u.Port}.Owner()
	}
	tests := []struct {
		name      string
		qname     string
		qtype     uint16
		cd        bool
		wantRcode int
		wantAD    bool
		wantTLSA  int // number of TLSA records in the answer
	}{
		{"secure TLSA (RFC 4035 §3.2.3 AD)", owner("good"), dns.TypeTLSA, false, dns.RcodeSuccess, true, 1},
		{"secure TLSA, two records for the rollover", owner("rollover"), dns.TypeTLSA, false, dns.RcodeSuccess, true, 2},
		{"secure A of an upstream", "good.example.test", dns.TypeA, false, dns.RcodeSuccess, true, 0},
		{"secure NXDOMAIN (NSEC3)", "_1._tcp.good.example.test", dns.TypeTLSA, false, dns.RcodeNameError, true, 0},
		{"bogus: tampered TLSA is SERVFAIL", owner("bogus"), dns.TypeTLSA, false, dns.RcodeServerFailure, false, 0},
		{"bogus with CD: tampered data returned without AD", owner("bogus"), dns.TypeTLSA, true, dns.RcodeSuccess, false, 1},
		{"expired signatures are SERVFAIL", owner("expired"), dns.TypeTLSA, false, dns.RcodeServerFailure, false, 0},
		{"unsigned zone under a DS is SERVFAIL", owner("unsigned"), dns.TypeTLSA, false, dns.RcodeServerFailure, false, 0},
		{"insecure delegation: answer without AD", owner("insecure"), dns.TypeTLSA, false, dns.RcodeSuccess, false, 1},
		{"insecure delegation proven: DS NODATA with AD", "insecure.test", dns.TypeDS, false, dns.RcodeSuccess, true, 0},
		{"outside the lab: SERVFAIL, nothing leaves the host", "www.example.org", dns.TypeA, false, dns.RcodeServerFailure, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ask(t, e, tt.qname, tt.qtype, tt.cd)
			if r.Rcode != tt.wantRcode || r.AuthenticatedData != tt.wantAD || len(tlsaData(r)) != tt.wantTLSA {
				t.Errorf("%s %s: rcode %s AD %v TLSA %q; want %s AD %v %d TLSA\n%s\n%s",
					tt.qname, dns.TypeToString[tt.qtype], dns.RcodeToString[r.Rcode], r.AuthenticatedData,
					tlsaData(r), dns.RcodeToString[tt.wantRcode], tt.wantAD, tt.wantTLSA, r, e.diagnostics())
			}
		})
	}

	t.Run("TLSA from DNS equals the computed records", func(t *testing.T) {
		for _, name := range []string{"good", "ta", "mismatch"} {
			got := digTLSA(t, e, name)
			if len(got) != 1 || !strings.HasPrefix(got[0], map[string]string{"good": "3 1 1 ", "ta": "2 1 1 ", "mismatch": "3 1 1 "}[name]) {
				t.Errorf("%s: dig gives %q", name, got)
			}
		}
	})

	t.Run("wrong trust anchor: a second Unbound would call it bogus", func(t *testing.T) {
		// Checked where it matters, in Caddy (TestDANE/wrong_trust_anchor);
		// here only that the file is a DS for test. that is not published.
		r := ask(t, e, "test.", dns.TypeDNSKEY, false)
		wrong, err := readFile(e.Lab.WrongAnchorsFile)
		if err != nil {
			t.Fatal(err)
		}
		rr, err := dns.NewRR(wrong)
		if err != nil {
			t.Fatal(err)
		}
		ds := rr.(*dns.DS)
		for _, a := range r.Answer {
			if k, ok := a.(*dns.DNSKEY); ok && k.KeyTag() == ds.KeyTag {
				t.Errorf("wrong anchor key tag %d is published", ds.KeyTag)
			}
		}
	})

	t.Run("resolver client against a dead port", func(t *testing.T) {
		port, err := labconf.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		c := &resolver.Client{Servers: []string{"127.0.0.1:" + itoa(port)}, Timeout: 200 * time.Millisecond}
		q := new(dns.Msg)
		q.SetQuestion("test.", dns.TypeSOA)
		_, err = c.Exchange(context.Background(), q)
		var se *resolver.ServerError
		if !errors.As(err, &se) || errors.Is(err, resolver.ErrTimeout) {
			t.Errorf("err = %v; want a *ServerError (connection refused), not a timeout", err)
		}
	})
}
