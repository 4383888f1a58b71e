package dane

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/dnssec"
	"github.com/caddy-dane/caddy-dane/caddymodule/resolver"
	"github.com/caddy-dane/caddy-dane/internal/zonekit"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func selfSigned(t *testing.T, name string) (*x509.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return cert, hex.EncodeToString(sum[:])
}

// fixture is a signed zone example.test. anchored at its own DS.
type fixture struct {
	zone *zonekit.Zone
	srv  *zonekit.Server
	auth *Authenticator
}

func newFixture(t *testing.T, ex dnssec.Exchanger, records ...string) *fixture {
	t.Helper()
	z := zonekit.NewZone("example.test.")
	z.MustAdd(records...)
	if err := z.Sign(now.Add(-24*time.Hour), now.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	srv := zonekit.NewServer(z)
	if ex == nil {
		ex = srv
	}
	var anchors []dns.RR
	for _, ds := range z.DS() {
		anchors = append(anchors, ds)
	}
	v, err := dnssec.New(dnssec.Config{Exchanger: ex, Anchors: anchors, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{zone: z, srv: srv, auth: &Authenticator{Prover: v, Now: func() time.Time { return now }}}
}

func TestOwner(t *testing.T) {
	for _, tc := range []struct {
		host string
		port int
		want string
	}{
		{"API.Example.COM", 443, "_443._tcp.api.example.com."},
		{"svc.example.", 8443, "_8443._tcp.svc.example."},
	} {
		if got := Owner(tc.host, tc.port); got != tc.want {
			t.Errorf("Owner(%q, %d) = %q, want %q", tc.host, tc.port, got, tc.want)
		}
	}
}

// TestLookupAndVerify runs each refusal reason through the real validator
// and matcher: one row per outcome the transport can log.
func TestLookupAndVerify(t *testing.T) {
	good, goodDigest := selfSigned(t, "svc.example.test")
	other, _ := selfSigned(t, "svc.example.test")
	f := newFixture(t, nil,
		"_443._tcp.svc 300 IN TLSA 3 1 1 "+goodDigest,
		"_443._tcp.unusable 300 IN TLSA 4 1 1 "+goodDigest,
		"_443._tcp.unusable 300 IN TLSA 3 1 1 abcd",
		"notlsa 300 IN A 127.0.0.1",
	)
	for _, tc := range []struct {
		name   string
		host   string
		port   int
		chain  []*x509.Certificate
		reason Reason // "" = verified
	}{
		{"RFC 7671 §5.1 DANE-EE 3 1 1 matches", "svc.example.test", 443, []*x509.Certificate{good}, ""},
		{"RFC 6698 §2.1 host name is case-insensitive", "SVC.Example.Test", 443, []*x509.Certificate{good}, ""},
		{"other key: mismatch", "svc.example.test", 443, []*x509.Certificate{other}, ReasonMismatch},
		{"empty chain: mismatch", "svc.example.test", 443, nil, ReasonMismatch},
		{"RFC 7671 §4.1 all records unusable", "unusable.example.test", 443, []*x509.Certificate{good}, ReasonUnusable},
		{"no TLSA at this port", "svc.example.test", 8443, []*x509.Certificate{good}, ReasonNoTLSA},
		{"no TLSA at this name", "notlsa.example.test", 443, []*x509.Certificate{good}, ReasonNoTLSA},
		{"IP literal has no TLSA name", "127.0.0.1", 443, nil, ReasonNoName},
		{"bad port", "svc.example.test", 0, nil, ReasonNoName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := f.auth.lookup(context.Background(), tc.host, tc.port)
			if err == nil {
				_, err = f.auth.verify(set, tc.chain, []string{set.Base})
			}
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var r *Refusal
			if !errors.As(err, &r) {
				t.Fatalf("got %v, want a *Refusal with reason %q", err, tc.reason)
			}
			if r.Reason != tc.reason {
				t.Fatalf("reason %q, want %q (%v)", r.Reason, tc.reason, err)
			}
			if !strings.Contains(err.Error(), string(tc.reason)) {
				t.Errorf("error %q does not name the reason", err)
			}
		})
	}
}

func TestLookupRefusals(t *testing.T) {
	_, digest := selfSigned(t, "svc.example.test")
	records := []string{"_443._tcp.svc 300 IN TLSA 3 1 1 " + digest}

	t.Run("RFC 4035 §5.5 tampered rdata is bogus", func(t *testing.T) {
		f := newFixture(t, nil, records...)
		f.srv.Tamper = func(_, resp *dns.Msg) {
			for _, rr := range resp.Answer {
				if tl, ok := rr.(*dns.TLSA); ok {
					tl.Certificate = strings.Repeat("00", 32)
				}
			}
		}
		_, err := f.auth.lookup(context.Background(), "svc.example.test", 443)
		var r *Refusal
		if !errors.As(err, &r) || r.Reason != ReasonBogus || r.Status != dnssec.Bogus || r.EDE == 0 {
			t.Fatalf("got %+v (%v), want bogus with an EDE code", r, err)
		}
		if len(r.Records) != 1 {
			t.Errorf("refusal should carry the records seen, got %v", r.Records)
		}
	})

	t.Run("resolver timeout is a dns timeout, within the deadline", func(t *testing.T) {
		// A UDP socket that never answers.
		blackhole := &resolver.Client{Servers: []string{listenSilent(t)}, Timeout: 200 * time.Millisecond, Attempts: 1}
		f := newFixture(t, blackhole, records...)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		_, err := f.auth.lookup(ctx, "svc.example.test", 443)
		elapsed := time.Since(start)
		var r *Refusal
		if !errors.As(err, &r) || r.Reason != ReasonDNSTimeout {
			t.Fatalf("got %v, want reason %q", err, ReasonDNSTimeout)
		}
		if elapsed > 1500*time.Millisecond {
			t.Errorf("lookup took %v, want it bounded by the 1s deadline", elapsed)
		}
	})

	t.Run("SERVFAIL from the resolver is a dns error", func(t *testing.T) {
		servfail := dnssec.ExchangeFunc(func(_ context.Context, q *dns.Msg) (*dns.Msg, error) {
			m := new(dns.Msg)
			m.SetRcode(q, dns.RcodeServerFailure)
			return m, nil
		})
		f := newFixture(t, servfail, records...)
		_, err := f.auth.lookup(context.Background(), "svc.example.test", 443)
		var r *Refusal
		if !errors.As(err, &r) || r.Status == dnssec.Secure {
			t.Fatalf("got %v, want a refusal", err)
		}
		if r.Reason != ReasonDNSError && r.Reason != ReasonIndeterminate {
			t.Errorf("reason %q, want %q or %q", r.Reason, ReasonDNSError, ReasonIndeterminate)
		}
	})
}

func listenSilent(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}
