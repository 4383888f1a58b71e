package integration

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/internal/testenv"
)

// The tests of what `dnssec trust_resolver` believes beyond "it validates":
// a loopback forwarder that copies the AD bit of a validating resolver
// elsewhere (dnsmasq --proxy-dnssec in front of the lab's Unbound, which
// stands for a validator across a network) passes the DNSKEY check, so it
// must be recognised and refused some other way; and with several
// resolvers, a Bogus verdict must not be overruled by the next one.
//
//	DANE_INTEGRATION=1 go test ./integration/ -run 'TestTrustResolver(Forwarder|FailoverBogus)' -count=1 -v

// askAD asks server name/qtype as the transport does in trust_resolver
// mode (RD, AD and DO set, CD clear) and returns the answer.
func askAD(t *testing.T, server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.AuthenticatedData = true
	q.SetEdns0(1232, true)
	m, _, err := (&dns.Client{Timeout: 3 * time.Second}).Exchange(q, server)
	if err != nil {
		t.Fatalf("%s %s from %s: %v", name, dns.TypeToString[qtype], server, err)
	}
	return m
}

// daneLookup runs `caddy dane lookup <name> TLSA --dnssec trust_resolver`
// against resolver and returns its output and exit status.
func (e *Env) daneLookup(t *testing.T, name, resolver string) (string, int) {
	t.Helper()
	cmd := exec.Command(e.CaddyBin, "dane", "lookup", name, "TLSA", "--dnssec", "trust_resolver",
		"--resolver", resolver, "--trust-anchor-file", e.Lab.AnchorsFile, "--timeout", "3s")
	cmd.Env = append(cmd.Environ(), e.caddyEnv()...)
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		x, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatal(err)
		}
		code = x.ExitCode()
	}
	return string(out), code
}

// TestTrustResolverForwarder: dnsmasq with --proxy-dnssec on 127.0.0.2,
// forwarding to the lab's validating Unbound on 127.0.0.1, copies Unbound's
// AD bit, so it passes the DNSKEY check (checked on the wire first). It
// gives itself away by answering servers.bind CH TXT with its upstream,
// and is refused, by the transport and by `caddy dane lookup` alike, with
// that reason; the Unbound itself is still trusted. dnsmasq with
// --no-ident answers servers.bind NOTIMP and is not recognised: that row
// pins the limit the README states, so that the README changes with it.
func TestTrustResolverForwarder(t *testing.T) {
	e := needCaddy(t)
	testenv.NeedTool(t, "dnsmasq")
	unbound := e.Lab.Resolver()
	proxy, proxyAddr, err := e.Lab.StartDnsmasq("dnsmasq-proxy-dnssec", unbound, "--proxy-dnssec")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Stop(5 * time.Second) })
	hidden, hiddenAddr, err := e.Lab.StartDnsmasq("dnsmasq-no-ident", unbound, "--proxy-dnssec", "--no-ident")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hidden.Stop(5 * time.Second) })
	upstreamListed := `"` + strings.Replace(unbound, ":", "#", 1) + " " // servers.bind: "127.0.0.1#<port> <queries> <failed>"

	good := e.Up["good"]
	goodTLSA := tlsaRR{Host: good.Host, Port: good.Port}.Owner()
	t.Run("dnsmasq copies the AD bit", func(t *testing.T) {
		for _, q := range []struct {
			name  string
			qtype uint16
		}{{zoneParent + ".", dns.TypeDNSKEY}, {goodTLSA, dns.TypeTLSA}} {
			m := askAD(t, proxyAddr, q.name, q.qtype)
			if m.Rcode != dns.RcodeSuccess || !m.AuthenticatedData || len(m.Answer) == 0 {
				t.Fatalf("%s %s through dnsmasq: rcode %s AD=%v, %d answers; want NOERROR with AD, as Unbound gives",
					q.name, dns.TypeToString[q.qtype], dns.RcodeToString[m.Rcode], m.AuthenticatedData, len(m.Answer))
			}
		}
	})

	const forwarder = "is a forwarder, not a validator: it answered servers.bind. CH TXT with its upstream servers ("
	for _, tc := range []struct {
		name     string
		resolver string
		upstream string
		pkix     bool
		want     int
		errorIn  []string // in the refusal's error
	}{
		{"RFC4035-4.9.3/Unbound itself is trusted", unbound, "good", false, 200, nil},
		{"RFC4035-4.9.3/dnsmasq proxy-dnssec is refused", proxyAddr, "good", false, 502, []string{proxyAddr + " " + forwarder + upstreamListed, "as dnsmasq does"}},
		{"RFC4035-4.9.3/dnsmasq proxy-dnssec is refused, insecure zone with on_no_tlsa pkix", proxyAddr, "insecure", true, 502, []string{forwarder}},
		{"RFC4035-4.9.3/bogus through dnsmasq is refused before it is asked", proxyAddr, "expired", false, 502, []string{forwarder}},
		{"known limit: dnsmasq --no-ident is not recognised", hiddenAddr, "good", false, 200, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := e.Up[tc.upstream]
			s := e.modeSite(t, modeTrust, u)
			s.Dane.Resolvers = tc.resolver
			if tc.pkix {
				e.withPKIX(&s)
			}
			c := startCaddy(t, e, s)
			status, body, el := request(t, "GET", c.URL()+"/", "")
			t.Logf("resolver %s, %s → %d in %v: %q", tc.resolver, u.HostPort(), status, el.Round(time.Millisecond), strings.TrimSpace(body))
			if status != tc.want {
				t.Fatalf("status %d, want %d", status, tc.want)
			}
			if tc.want == 200 {
				return
			}
			if n := u.Requests.Load(); n != 0 {
				t.Errorf("refused upstream received %d requests", n)
			}
			if n := len(c.Entries(pkixFallback)); n != 0 {
				t.Errorf("%d PKIX fallbacks through a forwarder", n)
			}
			r := refusalWith(t, c, u.HostPort(), "indeterminate")
			for _, w := range tc.errorIn {
				if !strings.Contains(r.Str("error"), w) {
					t.Errorf("refusal error %q does not contain %q", r.Str("error"), w)
				}
			}
			checkProofStatement(t, modeTrust, r)
		})
	}

	t.Run("caddy dane lookup", func(t *testing.T) {
		for _, tc := range []struct {
			name, resolver string
			code           int
			want           []string
		}{
			{"RFC4035-4.9.3/Unbound itself: secure", unbound, 0, []string{"secure"}},
			{"RFC4035-4.9.3/dnsmasq proxy-dnssec: refused", proxyAddr, 1, []string{"indeterminate", proxyAddr + " " + forwarder + upstreamListed}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				out, code := e.daneLookup(t, goodTLSA, tc.resolver)
				t.Logf("caddy dane lookup %s --resolver %s → exit %d:\n%s", goodTLSA, tc.resolver, code, out)
				if code != tc.code {
					t.Fatalf("exit %d, want %d", code, tc.code)
				}
				for _, w := range tc.want {
					if !strings.Contains(out, w) {
						t.Errorf("output does not contain %q", w)
					}
				}
			})
		}
	})
}

// TestTrustResolverFailoverBogus: the lab's Unbound finds the expired
// zone's TLSA bogus; a second validating Unbound, with a negative trust
// anchor for that zone (domain-insecure), calls it insecure, which
// on_no_tlsa pkix accepts (the control row). Listed after the first, the
// second must not be asked: the Bogus verdict ends the lookup (RFC 4035
// §5.5), so the upstream is refused as bogus, with Unbound's extended
// error, instead of reaching PKIX.
func TestTrustResolverFailoverBogus(t *testing.T) {
	e := needCaddy(t)
	nta, ntaAddr, err := e.Lab.StartInsecureUnbound("unbound-nta", zoneExpired)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nta.Stop(5 * time.Second) })
	for _, tc := range []struct {
		name      string
		resolvers string
		want      int
		reason    string
	}{
		{"control: the negative trust anchor makes it insecure, PKIX accepts", ntaAddr, 200, ""},
		{"RFC4035-5.5/bogus, then insecure from the next resolver, stays bogus", e.Lab.Resolver() + " " + ntaAddr, 502, "bogus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := e.Up["expired"]
			s := e.modeSite(t, modeTrust, u)
			s.Dane.Resolvers = tc.resolvers
			// The lab's Unbound finds the upstream's address records bogus
			// too: dial through the one that calls the zone insecure, so
			// that only the TLSA verdict decides.
			s.DialResolver = ntaAddr
			e.withPKIX(&s)
			c := startCaddy(t, e, s)
			status, body, el := request(t, "GET", c.URL()+"/", "")
			t.Logf("resolvers %s → %d in %v: %q", tc.resolvers, status, el.Round(time.Millisecond), strings.TrimSpace(body))
			if status != tc.want {
				t.Fatalf("status %d, want %d", status, tc.want)
			}
			if tc.want == 200 {
				if n := len(c.Entries(pkixFallback)); n == 0 {
					t.Errorf("accepted without the PKIX fallback")
				}
				return
			}
			if n := u.Requests.Load(); n != 0 {
				t.Errorf("refused upstream received %d requests", n)
			}
			r := refusalWith(t, c, u.HostPort(), tc.reason)
			checkEDE(t, r, 0, "")
			if !strings.Contains(r.Str("error"), fmt.Sprintf("%s answered SERVFAIL", e.Lab.Resolver())) {
				t.Errorf("refusal error %q is not the first resolver's verdict", r.Str("error"))
			}
			checkProofStatement(t, modeTrust, r)
		})
	}
}
