package publish

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/dnssec"
	"github.com/caddy-dane/caddy-dane/internal/zonekit"
)

// zoneTree is test. (the trust anchor) delegating to the signed
// example.test. and the unsigned plain.test.; example.test. delegates to
// the signed sub.example.test. tamper, if set, may change any response.
func zoneTree(t *testing.T, tamper func(q, resp *dns.Msg)) dnssec.Prover {
	t.Helper()
	now := time.Now()
	tld := zonekit.NewZone("test.")
	ex := zonekit.NewZone("example.test.")
	ex.MustAdd("up.example.test. 300 IN A 192.0.2.1",
		"alias.example.test. 300 IN CNAME target.example.test.",
		"target.example.test. 300 IN A 192.0.2.2",
		"_443._tcp.live.example.test. 300 IN TLSA 3 1 1 "+strings.Repeat("ab", 32))
	sub := zonekit.NewZone("sub.example.test.")
	sub.MustAdd("x.sub.example.test. 300 IN A 192.0.2.3")
	plain := zonekit.NewZone("plain.test.")
	plain.SetUnsigned(true)
	plain.MustAdd("www.plain.test. 300 IN A 192.0.2.4")
	for _, d := range [][2]*zonekit.Zone{{ex, sub}, {tld, ex}, {tld, plain}} {
		if err := zonekit.Delegate(d[0], d[1]); err != nil {
			t.Fatal(err)
		}
	}
	for _, z := range []*zonekit.Zone{tld, ex, sub, plain} {
		if err := z.Sign(now.Add(-time.Hour), now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	srv := zonekit.NewServer(tld, ex, sub, plain)
	srv.Tamper = tamper
	var anchors []dns.RR
	for _, ds := range tld.DS() {
		anchors = append(anchors, ds)
	}
	v, err := dnssec.New(dnssec.Config{Exchanger: srv, Anchors: anchors})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestFindZone(t *testing.T) {
	// forgeApex answers an SOA query for up.example.test. with an SOA at
	// that name, as an attacker on the path would to claim that
	// up.example.test. is a zone of its own. An unvalidated SOA walk
	// (certmagic.FindZoneByFQDN's) takes it.
	forgeApex := func(q, resp *dns.Msg) {
		if dns.CanonicalName(q.Question[0].Name) == "up.example.test." && q.Question[0].Qtype == dns.TypeSOA {
			soa, _ := dns.NewRR("up.example.test. 300 IN SOA ns.evil.test. h.evil.test. 1 3600 900 604800 300")
			resp.Rcode, resp.Answer, resp.Ns = dns.RcodeSuccess, []dns.RR{soa}, nil
		}
	}
	down := func(q, resp *dns.Msg) {
		resp.Rcode, resp.Answer, resp.Ns, resp.Extra = dns.RcodeServerFailure, nil, nil, nil
	}
	for _, c := range []struct {
		name, owner string
		tamper      func(q, resp *dns.Msg)
		zone        string // want, or "" for an error
		err         string // in the error
	}{
		{name: "name absent (NXDOMAIN proofs up to the apex)", owner: "_443._tcp.up.example.test.", zone: "example.test."},
		{name: "records already published", owner: "_443._tcp.live.example.test.", zone: "example.test."},
		{name: "the apex itself", owner: "example.test.", zone: "example.test."},
		{name: "case and final dot", owner: "_443._TCP.Up.Example.Test", zone: "example.test."},
		{name: "below a signed delegation", owner: "_443._tcp.x.sub.example.test.", zone: "sub.example.test."},
		{name: "a CNAME on the way is no apex", owner: "_443._tcp.alias.example.test.", zone: "example.test."},
		{name: "unsigned zone (RFC 4035 §5.2: proven insecure)", owner: "_443._tcp.www.plain.test.", err: "is not in a DNSSEC-signed zone"},
		{name: "forged SOA claims a zone apex", owner: "_443._tcp.up.example.test.", tamper: forgeApex, err: "SOA of up.example.test.: bogus"},
		{name: "resolver failing", owner: "_443._tcp.up.example.test.", tamper: down, err: "SOA of _443._tcp.up.example.test.:"},
		{name: "not a name", owner: "a..b", err: "not a domain name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			zone, err := FindZone(context.Background(), zoneTree(t, c.tamper), c.owner, 2*time.Second)
			if err != nil {
				t.Log(err)
			}
			switch {
			case c.zone != "" && (err != nil || zone != c.zone):
				t.Errorf("FindZone(%s) = %q, %v; want %s", c.owner, zone, err, c.zone)
			case c.zone == "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Errorf("FindZone(%s) = %q, %v; want an error with %q", c.owner, zone, err, c.err)
			}
		})
	}
}

// TestFindZoneBounded: a prover that never answers is bounded per lookup.
func TestFindZoneBounded(t *testing.T) {
	stuck := proverFunc(func(ctx context.Context, name string, qtype uint16) *dnssec.Result {
		<-ctx.Done()
		return &dnssec.Result{Name: name, Type: qtype, Status: dnssec.Indeterminate, Err: ctx.Err()}
	})
	start := time.Now()
	_, err := FindZone(context.Background(), stuck, "_443._tcp.up.example.test.", 50*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Errorf("FindZone with a stuck prover = %v after %v; want the deadline within 50ms", err, time.Since(start))
	}
}

type proverFunc func(ctx context.Context, name string, qtype uint16) *dnssec.Result

func (f proverFunc) Lookup(ctx context.Context, name string, qtype uint16) *dnssec.Result {
	return f(ctx, name, qtype)
}
