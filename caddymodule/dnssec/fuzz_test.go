package dnssec

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-dane/caddy-dane/internal/zonekit"
	"github.com/miekg/dns"
)

var (
	fuzzOnce  sync.Once
	fuzzTree  *tree
	fuzzTree3 *tree // example.test. with NSEC3 opt-out, plain.test. unsigned
)

// fuzzSeeds returns packed responses from a signed tree: the kinds of
// message the validator sees.
func fuzzSeeds(t testing.TB) map[string][]byte {
	fuzzOnce.Do(func() {
		fuzzTree = newTree(t, hooks{beforeDelegate: func(tr *tree) {
			tr.zone.MustAdd("dn 300 IN DNAME svc.example.test.") // RFC 6672 redirection
		}})
		fuzzTree3 = newTree(t, hooks{beforeDelegate: plainDelegation, beforeSign: func(tr *tree) {
			tr.zone.SetNSEC3(&zonekit.NSEC3Params{Iterations: 1, Salt: "aabbccdd", OptOut: true})
			tr.tld.SetNSEC3(&zonekit.NSEC3Params{})
		}})
	})
	seeds := map[string][]byte{}
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"_443._tcp.nope.example.test.", dns.TypeTLSA},
		{"svc.example.test.", dns.TypeTLSA},
		{"_443._tcp.x.wild.example.test.", dns.TypeTLSA},
		{"_443._tcp.x.wild.example.test.", dns.TypeA},
		{"plain.test.", dns.TypeDS},
		{"_tcp.svc.example.test.", dns.TypeA},
	} {
		m, err := fuzzTree3.srv.Exchange(context.Background(), newQuery(q.name, q.qtype))
		must(t, err)
		b, err := m.Pack()
		must(t, err)
		seeds[fmt.Sprintf("nsec3_%s_%s", strings.Trim(q.name, "."), dns.TypeToString[q.qtype])] = b
	}
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{tlsaName, dns.TypeTLSA},
		{"example.test.", dns.TypeDNSKEY},
		{"example.test.", dns.TypeDS},
		{"nope.example.test.", dns.TypeTLSA},
		{"svc.example.test.", dns.TypeTLSA},
		{"alias.example.test.", dns.TypeA},
		{"_443._tcp.x.wild.example.test.", dns.TypeTLSA},
		{"_443._tcp.dn.example.test.", dns.TypeTLSA},
	} {
		m, err := fuzzTree.srv.Exchange(context.Background(), newQuery(q.name, q.qtype))
		must(t, err)
		b, err := m.Pack()
		must(t, err)
		seeds[fmt.Sprintf("%s_%s", strings.Trim(q.name, "."), dns.TypeToString[q.qtype])] = b
	}
	return seeds
}

// TestWriteFuzzSeeds regenerates testdata/fuzz/FuzzLookup when
// DNSSEC_WRITE_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("DNSSEC_WRITE_SEEDS") != "1" {
		t.Skip("set DNSSEC_WRITE_SEEDS=1 to rewrite the FuzzLookup seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzLookup")
	must(t, os.MkdirAll(dir, 0o755))
	for name, b := range fuzzSeeds(t) {
		must(t, os.WriteFile(filepath.Join(dir, name), fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b), 0o644))
	}
}

// FuzzLookup answers every query of a lookup with the fuzzed message (made
// to match the question, so the validation logic is reached). The trust
// anchor is a fresh key the fuzzer cannot sign with: the result must never
// be Secure, and the lookup must end.
func FuzzLookup(f *testing.F) {
	for _, b := range fuzzSeeds(f) {
		f.Add(b)
	}
	anchor := dsAnchors(zonekit.NewZone("test."))
	f.Fuzz(func(t *testing.T, data []byte) {
		ex := ExchangeFunc(func(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
			m := new(dns.Msg)
			if err := m.Unpack(data); err != nil {
				return nil, err
			}
			m.Id, m.Response, m.Opcode, m.Truncated = q.Id, true, dns.OpcodeQuery, false
			m.Question = q.Question
			return m, nil
		})
		v, err := New(Config{Exchanger: ex, Anchors: anchor, Now: func() time.Time { return testNow }})
		must(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, q := range []struct {
			name  string
			qtype uint16
		}{{tlsaName, dns.TypeTLSA}, {"example.test.", dns.TypeDS}, {"alias.example.test.", dns.TypeA},
			{"_443._tcp.nope.example.test.", dns.TypeTLSA}, {"_443._tcp.x.wild.example.test.", dns.TypeTLSA},
			{"_443._tcp.dn.example.test.", dns.TypeTLSA}} {
			r := v.Lookup(ctx, q.name, q.qtype)
			if r.Status == Secure {
				t.Fatalf("fuzzed answer validated: %s", r)
			}
			if r.Err == nil {
				t.Fatalf("%s without error", r.Status)
			}
		}
		if ctx.Err() != nil {
			t.Fatal("lookup ran into the deadline")
		}
	})
}

// FuzzParseAnchors: no panic, and whatever parses is accepted by New.
func FuzzParseAnchors(f *testing.F) {
	f.Add(". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n")
	f.Add("$ORIGIN test.\n@ 3600 IN DNSKEY ( 257 3 13\n  mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ== ) ; c\n")
	f.Add("x. IN A 192.0.2.1\n")
	f.Add("\"(;\\\n")
	f.Fuzz(func(t *testing.T, s string) {
		rrs, err := ParseAnchors(strings.NewReader(s), "example.")
		if err != nil {
			return
		}
		for _, rr := range rrs {
			if t := rr.Header().Rrtype; t != dns.TypeDS && t != dns.TypeDNSKEY {
				panic(fmt.Sprintf("ParseAnchors returned a %s record", dns.TypeToString[t]))
			}
		}
		if _, err := New(Config{Exchanger: ExchangeFunc(nil), Anchors: rrs}); err != nil {
			t.Fatalf("New rejects parsed anchors: %v", err)
		}
	})
}
