package dane

import (
	"context"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/dnssec"
)

var both = Families{IPv4: true, IPv6: true}

// srvTree is zoneTree without the zone.
func srvTree(t *testing.T, tamper func(q, r *dns.Msg), signed, unsigned []string) *Authenticator {
	t.Helper()
	a, _ := zoneTree(t, tamper, signed, unsigned)
	return a
}

// TestResolveSRV: RFC 7673 §3.1 (the SRV RRset) and §3.2 (the targets'
// address records) decide which endpoints exist and whether they get DANE.
func TestResolveSRV(t *testing.T) {
	signed := []string{
		"_https._tcp.svc 300 IN SRV 10 60 8443 a.example.test.",
		"_https._tcp.svc 300 IN SRV 10 40 8443 b.example.test.",
		"_https._tcp.svc 300 IN SRV 20 0 9443 www.plain.test.",    // insecure addresses
		"_https._tcp.svc 300 IN SRV 30 0 9443 gone.example.test.", // no address at all
		"a 300 IN A 192.0.2.1", "a 300 IN AAAA 2001:db8::1", "b 300 IN A 192.0.2.2",
		"_https._tcp.dot 300 IN SRV 0 0 0 .",
		"_https._tcp.unsigned 300 IN SRV 10 0 443 a.example.test.", // tampered below
		"gone 300 IN TXT \"no address\"",
	}
	unsigned := []string{
		"www 300 IN A 192.0.2.9",
		"_https._tcp.svc 300 IN SRV 10 0 443 a.example.test.",
	}
	a := srvTree(t, func(q, r *dns.Msg) {
		if dns.CanonicalName(q.Question[0].Name) != "_https._tcp.unsigned.example.test." {
			return
		}
		// A forged answer: the right SRV, its signatures stripped.
		var keep []dns.RR
		for _, rr := range r.Answer {
			if rr.Header().Rrtype != dns.TypeRRSIG {
				keep = append(keep, rr)
			}
		}
		r.Answer = keep
	}, signed, unsigned)

	t.Run("RFC7673-3.1/secure SRV: endpoints in priority order, DANE where the addresses are secure", func(t *testing.T) {
		set, err := a.ResolveSRV(context.Background(), "_https._tcp.svc.example.test.", both, 0)
		if err != nil {
			t.Fatal(err)
		}
		if set.Status != dnssec.Secure || len(set.Records) != 4 {
			t.Fatalf("status %s, %d records", set.Status, len(set.Records))
		}
		type want struct {
			host, base, names string
			nodane            bool
		}
		got := map[string]want{}
		for _, r := range set.Records {
			for _, ep := range r.Endpoints {
				id, err := ep.Identity()
				if err != nil {
					t.Fatal(err)
				}
				got[id.Host] = want{id.Host, id.Base, strings.Join(id.Names, " "), id.NoDANE != nil}
				if id.Port != int(r.Port) || id.Via != "_https._tcp.svc.example.test." {
					t.Errorf("%s: port %d via %s", id.Host, id.Port, id.Via)
				}
			}
		}
		for _, w := range []want{
			{"192.0.2.1", "a.example.test.", "a.example.test. svc.example.test.", false},
			{"2001:db8::1", "a.example.test.", "a.example.test. svc.example.test.", false},
			{"192.0.2.2", "b.example.test.", "b.example.test. svc.example.test.", false},
			// RFC 7673 §3.2: insecure addresses, so no TLSA lookup.
			{"192.0.2.9", "www.plain.test.", "www.plain.test. svc.example.test.", true},
		} {
			if got[w.host] != w {
				t.Errorf("endpoint %s: %+v, want %+v", w.host, got[w.host], w)
			}
		}
		if len(set.Skipped) != 1 || !strings.Contains(set.Skipped[0].Error(), "gone.example.test.") {
			t.Errorf("skipped %v, want the target without addresses", set.Skipped)
		}
		if !set.Expires.Equal(now.Add(300 * time.Second)) {
			t.Errorf("expires %v", set.Expires)
		}
	})

	t.Run("RFC7673-3.1/insecure SRV: the target is unproven, only the service domain is a reference name", func(t *testing.T) {
		set, err := a.ResolveSRV(context.Background(), "_https._tcp.svc.plain.test.", both, 0)
		if err != nil {
			t.Fatal(err)
		}
		id, err := set.Records[0].Endpoints[0].Identity()
		if err != nil {
			t.Fatal(err)
		}
		if set.Status != dnssec.Insecure || id.NoDANE == nil || strings.Join(id.Names, " ") != "svc.plain.test." || id.SNI != "svc.plain.test" {
			t.Errorf("status %s, identity %+v", set.Status, id)
		}
	})

	for _, tc := range []struct {
		name, owner string
		reason      Reason
	}{
		{"RFC7673-3.1/bogus SRV aborts", "_https._tcp.unsigned.example.test.", ReasonBogus},
		{"RFC2782/target \".\": no service", "_https._tcp.dot.example.test.", ReasonNoSRV},
		{"RFC7673-3.1/no SRV RRset", "_https._tcp.none.example.test.", ReasonNoSRV},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.ResolveSRV(context.Background(), tc.owner, both, 0)
			if r := RefusalOf(err); err == nil || r.Reason != tc.reason {
				t.Fatalf("got %v, want reason %q", err, tc.reason)
			}
		})
	}

	t.Run("versions ipv6 only", func(t *testing.T) {
		set, err := a.ResolveSRV(context.Background(), "_https._tcp.svc.example.test.", Families{IPv6: true}, 0)
		if err != nil {
			t.Fatal(err)
		}
		var hosts []string
		for _, r := range set.Records {
			for _, ep := range r.Endpoints {
				hosts = append(hosts, ep.Host)
			}
		}
		if strings.Join(hosts, " ") != "2001:db8::1" {
			t.Errorf("endpoints %v, want only a's AAAA", hosts)
		}
	})
}

// TestSRVAuthentication: an SRV endpoint is authenticated by its target's
// TLSA records; with no DANE (insecure SRV) PKIX may check only the
// service domain, never the unproven target name.
func TestSRVAuthentication(t *testing.T) {
	cert, spki := selfSigned(t, "a.example.test")
	svcCert, _ := selfSigned(t, "svc.plain.test")
	forged, _ := selfSigned(t, "a.example.test")
	a := srvTree(t, nil, []string{
		"_https._tcp.svc 300 IN SRV 10 0 8443 a.example.test.",
		"a 300 IN A 192.0.2.1",
		"_8443._tcp.a 300 IN TLSA 3 1 1 " + spki,
	}, []string{"_https._tcp.svc 300 IN SRV 10 0 8443 a.example.test."})
	endpoint := func(owner string) Target {
		set, err := a.ResolveSRV(context.Background(), owner, Families{IPv4: true}, 0)
		if err != nil {
			t.Fatal(err)
		}
		return set.Records[0].Endpoints[0]
	}
	secure := endpoint("_https._tcp.svc.example.test.")
	if v, err := a.Authenticate(context.Background(), secure, presenting(cert)); err != nil || v.Set.Owner != "_8443._tcp.a.example.test." {
		t.Fatalf("RFC7673-3.3 secure SRV, TLSA at the target: %+v %v", v, err)
	}
	if _, err := a.Authenticate(context.Background(), secure, presenting(forged)); RefusalOf(err).Reason != ReasonMismatch {
		t.Fatalf("another key at the target: %v, want a tlsa mismatch", err)
	}

	insecure := endpoint("_https._tcp.svc.plain.test.")
	if _, err := a.Authenticate(context.Background(), insecure, presenting(cert)); RefusalOf(err).Reason != ReasonInsecure {
		t.Fatalf("RFC7673-3.1 insecure SRV under refuse: %v, want refused insecure", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	roots.AddCert(svcCert)
	a.OnNoTLSA, a.Roots = NoTLSAPKIX, roots
	if v, err := a.Authenticate(context.Background(), insecure, presenting(svcCert)); err != nil || !v.Set.PKIX {
		t.Fatalf("insecure SRV under pkix, certificate for the service domain: %+v %v", v, err)
	}
	// The target name came from an unsigned answer: a certificate for it
	// (valid under the roots!) proves nothing about the service.
	if _, err := a.Authenticate(context.Background(), insecure, presenting(cert)); RefusalOf(err).Reason != ReasonPKIX {
		t.Fatalf("insecure SRV under pkix, certificate for the unproven target: %v, want refused", err)
	}
}

// TestSRVTargetCap: a hostile SRV RRset of many targets costs at most
// maxSRVTargets address lookups.
func TestSRVTargetCap(t *testing.T) {
	var recs []string
	for i := range maxSRVTargets + 8 {
		recs = append(recs, fmt.Sprintf("_https._tcp.many 300 IN SRV 10 0 443 t%d.example.test.", i), fmt.Sprintf("t%d 300 IN A 192.0.2.%d", i, i+1))
	}
	a := srvTree(t, nil, recs, nil)
	set, err := a.ResolveSRV(context.Background(), "_https._tcp.many.example.test.", Families{IPv4: true}, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range set.Records {
		n += len(r.Endpoints)
	}
	if n != maxSRVTargets || len(set.Skipped) != 8 {
		t.Errorf("%d endpoints, %d skipped; want %d and 8", n, len(set.Skipped), maxSRVTargets)
	}
}

// TestSRVOrder: RFC 2782's selection: priorities ascending; within one,
// weight-0 records first in the running sum, and a record picked with
// probability weight/sum.
func TestSRVOrder(t *testing.T) {
	ep := func(h string) []Target { return []Target{{Host: h, Port: 443}} }
	set := &SRVSet{Records: []SRVRecord{
		{Priority: 10, Weight: 1, Endpoints: ep("light")},
		{Priority: 10, Weight: 3, Endpoints: ep("heavy")},
		{Priority: 10, Weight: 0, Endpoints: ep("zero")},
		{Priority: 20, Weight: 0, Endpoints: ep("backup")},
	}}
	order := func(rnd func(int) int) string {
		var hs []string
		for _, t := range set.Order(rnd) {
			hs = append(hs, t.Host)
		}
		return strings.Join(hs, " ")
	}
	for _, tc := range []struct {
		name string
		draw []int // successive rnd results
		want string
	}{
		// Running sums in the order zero(0) light(1) heavy(4).
		{"RFC2782/draw 0 picks the weight-0 record", []int{0, 0, 0, 0}, "zero light heavy backup"},
		{"RFC2782/draw 1 picks light", []int{1, 0, 0, 0}, "light zero heavy backup"},
		{"RFC2782/draws 2..4 pick heavy", []int{3, 1, 0, 0}, "heavy light zero backup"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i := 0
			got := order(func(n int) int { v := tc.draw[i] % n; i++; return v })
			if got != tc.want {
				t.Errorf("order %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("RFC2782/weights are probabilities", func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		first := map[string]int{}
		const n = 20000
		for range n {
			first[strings.Fields(order(r.IntN))[0]]++
		}
		// Picked first: light 1/5, heavy 3/5, zero 1/5 (the draw of 0).
		for h, p := range map[string]float64{"light": 0.2, "heavy": 0.6, "zero": 0.2} {
			if got := float64(first[h]) / n; got < p-0.02 || got > p+0.02 {
				t.Errorf("%s first in %.3f of draws, want %.2f", h, got, p)
			}
		}
		if first["backup"] != 0 {
			t.Error("a priority-20 record came before priority 10")
		}
	})
}

func TestServiceOwner(t *testing.T) {
	for _, tc := range []struct{ service, proto, name, want, err string }{
		{"https", "tcp", "Example.COM", "_https._tcp.example.com.", ""},
		{"_https", "_tcp", "example.com.", "_https._tcp.example.com.", ""},
		{"https", "udp", "example.com", "", "need tcp"},
		{"a.b", "tcp", "example.com", "", "single label"},
		{"https", "tcp", "192.0.2.1", "", "IP address"},
	} {
		got, err := ServiceOwner(tc.service, tc.proto, tc.name)
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ServiceOwner(%q, %q, %q) = %q, %v; want %q, %q", tc.service, tc.proto, tc.name, got, err, tc.want, tc.err)
		}
	}
}

// TestUnauthenticatedHostName: a host name from a source DNSSEC did not
// authenticate is never a TLSA base domain; an IP address from it still
// takes the configured name.
func TestUnauthenticatedHostName(t *testing.T) {
	_, err := Target{Host: "evil.example", Port: 443, Name: "api.example", Unauthenticated: "dynamic srv"}.Identity()
	if r := RefusalOf(err); err == nil || r.Reason != ReasonNoName || !strings.Contains(err.Error(), "dynamic srv") {
		t.Fatalf("got %v", err)
	}
	id, err := Target{Host: "192.0.2.1", Port: 443, Name: "api.example", Unauthenticated: "dynamic a"}.Identity()
	if err != nil || id.Base != "api.example." {
		t.Fatalf("IP from a dynamic source with a configured name: %+v %v", id, err)
	}
}
