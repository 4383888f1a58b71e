package dnssec

import (
	"context"
	"testing"

	"github.com/miekg/dns"
)

// prepared answers from responses computed once, so a benchmark measures
// validation, not zonekit.
type prepared map[string]*dns.Msg

func prepare(b *testing.B, tr *tree) prepared {
	p := prepared{}
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{tlsaName, dns.TypeTLSA}, {".", dns.TypeDNSKEY}, {"test.", dns.TypeDNSKEY}, {"test.", dns.TypeDS}, {"example.test.", dns.TypeDNSKEY}, {"example.test.", dns.TypeDS}} {
		m, err := tr.srv.Exchange(context.Background(), newQuery(q.name, q.qtype))
		must(b, err)
		p[rrsetName(q.name, q.qtype)] = m
	}
	return p
}

func (p prepared) Exchange(_ context.Context, q *dns.Msg) (*dns.Msg, error) {
	m := *p[rrsetName(q.Question[0].Name, q.Question[0].Qtype)]
	m.Id = q.Id
	return &m, nil
}

// BenchmarkValidateChain validates a TLSA RRset down a cold 3-zone chain
// (6 RRsets, 6 ECDSA P-256 verifications) with a fresh validator each time.
func BenchmarkValidateChain(b *testing.B) {
	tr := newTree(b, hooks{})
	p := prepare(b, tr)
	anchors := dsAnchors(tr.root)
	clk := newClock()
	b.ReportAllocs()
	for b.Loop() {
		v, err := New(Config{Exchanger: p, Anchors: anchors, Now: clk.Now, CacheSize: 16})
		if err != nil {
			b.Fatal(err)
		}
		if r := v.Lookup(context.Background(), tlsaName, dns.TypeTLSA); r.Status != Secure {
			b.Fatal(r)
		}
	}
}

// BenchmarkLookupCached is a warm lookup served from the cache.
func BenchmarkLookupCached(b *testing.B) {
	tr := newTree(b, hooks{})
	v := newValidator(b, prepare(b, tr), dsAnchors(tr.root), newClock())
	if r := v.Lookup(context.Background(), tlsaName, dns.TypeTLSA); r.Status != Secure {
		b.Fatal(r)
	}
	b.ReportAllocs()
	for b.Loop() {
		if r := v.Lookup(context.Background(), tlsaName, dns.TypeTLSA); !r.Cached {
			b.Fatal(r)
		}
	}
}
