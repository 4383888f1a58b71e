package dane

import (
	"context"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/dnssec"
	"github.com/caddy-dane/caddy-dane/internal/zonekit"
)

// policyTree is test. (anchor) with the signed zone example.test. and the
// unsigned zone plain.test. below it.
func policyTree(t *testing.T, records ...string) (*Authenticator, *zonekit.Zone) {
	t.Helper()
	return zoneTree(t, nil, records, []string{"www IN A 192.0.2.9",
		"_443._tcp.www IN TLSA 3 1 1 0000000000000000000000000000000000000000000000000000000000000000"})
}

// zoneTree is test. (anchor) with example.test. signed (records) and
// plain.test. unsigned (unsigned) below it; tamper, when set, changes the
// server's answers.
func zoneTree(t *testing.T, tamper func(q, r *dns.Msg), records, unsigned []string) (*Authenticator, *zonekit.Zone) {
	t.Helper()
	tld := zonekit.NewZone("test.")
	z := zonekit.NewZone("example.test.")
	z.MustAdd(records...)
	plain := zonekit.NewZone("plain.test.")
	plain.SetUnsigned(true)
	plain.MustAdd(unsigned...)
	for _, c := range []*zonekit.Zone{z, plain} {
		if err := zonekit.Delegate(tld, c); err != nil {
			t.Fatal(err)
		}
	}
	for _, zz := range []*zonekit.Zone{tld, z, plain} {
		if err := zz.Sign(now.Add(-24*time.Hour), now.Add(24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	srv := zonekit.NewServer(tld, z, plain)
	srv.Tamper = tamper
	var anchors []dns.RR
	for _, ds := range tld.DS() {
		anchors = append(anchors, ds)
	}
	v, err := dnssec.New(dnssec.Config{Exchanger: srv, Anchors: anchors, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return &Authenticator{Prover: v, Now: func() time.Time { return now }}, z
}

func TestOnNoTLSA(t *testing.T) {
	cert, _ := selfSigned(t, "svc.example.test")
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	for _, tc := range []struct {
		host   string
		zone   string // extra record
		policy NoTLSAPolicy
		pkix   bool   // PKIX set handed out
		reason Reason // refusal otherwise
	}{
		{host: "svc.example.test", policy: NoTLSARefuse, reason: ReasonNoTLSA},
		{host: "svc.example.test", policy: NoTLSAPKIX, pkix: true},                           // NODATA at _443._tcp (NXDOMAIN, proven)
		{host: "www.plain.test", policy: NoTLSAPKIX, pkix: true},                             // insecure zone
		{host: "www.plain.test", policy: NoTLSARefuse, reason: ReasonInsecure},               // default
		{host: "bogus.example.test", policy: NoTLSAPKIX, reason: ReasonBogus, zone: "bogus"}, // tampered denial
	} {
		t.Run(string(tc.policy)+"/"+tc.host, func(t *testing.T) {
			a, z := policyTree(t, "svc IN A 192.0.2.1")
			a.OnNoTLSA, a.Roots = tc.policy, roots
			if tc.zone == "bogus" {
				// Strip the proof from the denial: a signed zone without
				// NSEC is Bogus, never "provably absent".
				srv := zonekit.NewServer(z)
				srv.Tamper = func(q, r *dns.Msg) {
					var keep []dns.RR
					for _, rr := range r.Ns {
						if rr.Header().Rrtype == dns.TypeSOA {
							keep = append(keep, rr)
						}
					}
					r.Ns = keep
				}
				var anchors []dns.RR
				for _, ds := range z.DS() {
					anchors = append(anchors, ds)
				}
				v, err := dnssec.New(dnssec.Config{Exchanger: srv, Anchors: anchors, Now: func() time.Time { return now }})
				if err != nil {
					t.Fatal(err)
				}
				a.Prover = v
			}
			set, err := a.lookup(context.Background(), tc.host, 443)
			if tc.pkix {
				if err != nil || !set.PKIX {
					t.Fatalf("want a PKIX set, got %+v %v", set, err)
				}
				if tc.host == "svc.example.test" {
					if _, err := a.verify(set, []*x509.Certificate{cert}, []string{tc.host}); err != nil {
						t.Errorf("PKIX verify: %v", err)
					}
					var r *Refusal
					if _, err := a.verify(set, []*x509.Certificate{cert}, []string{"other.example.test"}); !errors.As(err, &r) || r.Reason != ReasonPKIX {
						t.Errorf("PKIX verify for the wrong name: %v", err)
					}
				}
				return
			}
			var r *Refusal
			if !errors.As(err, &r) || r.Reason != tc.reason {
				t.Fatalf("want refusal %q, got %v", tc.reason, err)
			}
		})
	}
}

// TestFollowCNAME: RFC 7671 §7 — a secure CNAME chain moves the TLSA base
// domain to the target, with the original name as fallback; an insecure
// hop keeps the original name only.
func TestFollowCNAME(t *testing.T) {
	_, spki := selfSigned(t, "x")
	a, _ := policyTree(t,
		"target IN A 192.0.2.1",
		"_443._tcp.target IN TLSA 3 1 1 "+spki,
		"alias IN CNAME target",
		"_443._tcp.direct IN TLSA 3 1 1 "+spki,
		"direct IN CNAME notls",
		"notls IN A 192.0.2.2",
		"toplain IN CNAME www.plain.test.",
		"_443._tcp.toplain IN TLSA 3 1 1 "+spki,
	)
	a.FollowCNAME = true
	for _, tc := range []struct{ host, owner, alt string }{
		{"alias.example.test", "_443._tcp.target.example.test.", "alias.example.test."},
		{"direct.example.test", "_443._tcp.direct.example.test.", "notls.example.test."}, // no TLSA at the target: original name
		{"toplain.example.test", "_443._tcp.toplain.example.test.", "www.plain.test."},   // target insecure: original name
	} {
		set, err := a.lookup(context.Background(), tc.host, 443)
		if err != nil {
			t.Fatalf("%s: %v", tc.host, err)
		}
		if set.Owner != tc.owner || len(set.Names) != 1 || set.Names[0] != tc.alt {
			t.Errorf("%s: owner %s names %v, want %s %s", tc.host, set.Owner, set.Names, tc.owner, tc.alt)
		}
	}
	a.FollowCNAME = false
	a.sets = setCache{}
	if _, err := a.lookup(context.Background(), "alias.example.test", 443); err == nil {
		t.Error("without follow_cname the alias has no TLSA and must be refused")
	}
}
