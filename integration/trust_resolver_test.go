package integration

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The tests of `dnssec trust_resolver`: the transport takes the DNSSEC
// verdict from the AD bit (and RFC 8914 extended errors) of a validating
// resolver on loopback, the lab's Unbound, instead of validating in
// process. Whatever the mode, an upstream must get the same HTTP outcome;
// a resolver that does not validate must never be trusted, even where
// `on_no_tlsa pkix` would turn "insecure" into a PKIX fallback; a resolver
// off loopback must not load.
//
//	DANE_INTEGRATION=1 go test ./integration/ -run TestTrustResolver -count=1 -v

const (
	modeValidate = "validate"
	modeTrust    = "trust_resolver"
)

var dnssecModes = []string{modeValidate, modeTrust}

// A refusal in trust_resolver mode says where its proof came from, in the
// field proofField: "AD bit of <resolver>".
const (
	proofField = "dnssec_proof"
	adProof    = "AD bit"
)

// modeSite is e.site (the lab's Unbound for TLSA and for dialing, the
// lab's anchor) with the dnssec option written out.
func (e *Env) modeSite(t *testing.T, mode string, ups ...*Upstream) Site {
	s := e.site(t, ups...)
	s.Dane.DNSSEC = mode
	return s
}

// withPKIX sets on_no_tlsa pkix, with the lab's root CA as the PKIX trust
// pool (every lab upstream but the impostors has a certificate from it).
func (e *Env) withPKIX(s *Site) {
	s.Dane.OnNoTLSA = "pkix"
	s.Transport = append(s.Transport, "tls_trust_pool file "+filepath.Join(e.Dir, "root.pem"))
}

// refusalWith returns the first refusal of hostport whose reason is reason,
// or fails t.
func refusalWith(t *testing.T, c *Caddy, hostport, reason string) LogEntry {
	t.Helper()
	refs := c.Refusals(hostport)
	for _, r := range refs {
		if r.Str("reason") == reason {
			t.Logf("refusal logged: reason=%q dnssec=%q ede=%v error=%q", r.Str("reason"), r.Str("dnssec"), r["ede"], r.Str("error"))
			return r
		}
	}
	if len(refs) == 0 {
		t.Fatalf("no \"dane refused upstream\" log entry for %s", hostport)
	}
	t.Fatalf("refusals of %s have reasons %q, want %q (first: %v)", hostport, reasons(refs), reason, refs[0])
	return nil
}

// checkProofStatement: a refusal in trust_resolver mode says that the proof
// came from the resolver's AD bit; one in validate mode does not.
func checkProofStatement(t *testing.T, mode string, r LogEntry) {
	t.Helper()
	proof, said := r[proofField]
	switch {
	case mode == modeTrust && !strings.Contains(r.Str(proofField), adProof):
		t.Errorf("trust_resolver refusal does not say the proof came from the resolver's %s (%s=%v): %v", adProof, proofField, proof, r)
	case mode == modeValidate && said:
		t.Errorf("validate-mode refusal has %s=%v", proofField, proof)
	}
}

// TestTrustResolverParity runs every verdict of the lab in both modes:
// the HTTP outcome must be the same, and the refusal must name the same
// reason (where the modes can know the same thing) and, in trust_resolver
// mode, carry Unbound's extended error and say that the proof is its AD
// bit.
func TestTrustResolverParity(t *testing.T) {
	e := needCaddy(t)
	// good.example.test on a second port: the same PKIX-valid server, but
	// _<port>._tcp.good.example.test. does not exist (secure NXDOMAIN,
	// NSEC3), so there is provably no DANE for it.
	fwd, err := newTCPForwarder(e.Up["good"].Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fwd.Close)
	denied := e.Up["good"].Host + ":" + itoa(fwd.Port)

	tests := []struct {
		name     string
		upstream string // e.Up name
		hostport string // dial this instead of the upstream's own host:port
		anchors  string // trust_anchor_file; "" = the lab's
		pkix     bool   // on_no_tlsa pkix with the lab's root as trust pool
		want     int
		reason   string            // refusal reason in both modes...
		reasonIn map[string]string // ...unless the mode is here
		errorIn  map[string]string // mode → text of the refusal's error
	}{
		{name: "DANE-EE 3 1 1 matches", upstream: "good", want: 200},
		{name: "DANE-TA 2 1 1 of the intermediate", upstream: "ta", want: 200},
		{name: "impostor key: TLSA mismatch", upstream: "mismatch", want: 502, reason: "tlsa mismatch"},
		{name: "tampered TLSA RRset is bogus", upstream: "bogus", want: 502, reason: "bogus"},
		{name: "expired RRSIGs are bogus", upstream: "expired", want: 502, reason: "bogus"},
		{name: "unsigned zone under a DS is bogus", upstream: "unsigned", want: 502, reason: "bogus"},
		{name: "insecure zone is refused", upstream: "insecure", want: 502, reason: "insecure"},
		{name: "insecure zone, on_no_tlsa pkix", upstream: "insecure", pkix: true, want: 200},
		{name: "TLSA securely denied is refused", upstream: "good", hostport: denied, want: 502, reason: "no tlsa"},
		{name: "TLSA securely denied, on_no_tlsa pkix", upstream: "good", hostport: denied, pkix: true, want: 200},
		{name: "bogus stays refused with on_no_tlsa pkix", upstream: "expired", pkix: true, want: 502, reason: "bogus"},
		{name: "wrong trust anchor", upstream: "good", anchors: e.Lab.WrongAnchorsFile, want: 502,
			reasonIn: map[string]string{modeValidate: "bogus", modeTrust: "indeterminate"},
			errorIn:  map[string]string{modeTrust: "does not validate"}},
	}
	for _, tt := range tests {
		for _, mode := range dnssecModes {
			t.Run(mode+"/"+tt.name, func(t *testing.T) {
				u := e.Up[tt.upstream]
				hostport := u.HostPort()
				if tt.hostport != "" {
					hostport = tt.hostport
				}
				s := e.modeSite(t, mode)
				s.Upstreams = []string{"https://" + hostport}
				if tt.anchors != "" {
					s.Dane.TrustAnchor = tt.anchors
				}
				if tt.pkix {
					e.withPKIX(&s)
				}
				c := startCaddy(t, e, s)
				status, body, el := request(t, "GET", c.URL()+"/", "")
				t.Logf("%s %s → %d in %v: %q", mode, hostport, status, el.Round(time.Millisecond), strings.TrimSpace(body))
				if status != tt.want {
					t.Fatalf("status %d, want %d", status, tt.want)
				}
				if tt.want == 200 {
					if !strings.Contains(body, "upstream="+tt.upstream) {
						t.Errorf("body %q is not from upstream %s", body, tt.upstream)
					}
					if refs := c.Refusals(hostport); len(refs) > 0 {
						t.Errorf("unexpected refusal logged: %v", refs[0])
					}
					if used := len(c.Entries(pkixFallback)) > 0; used != tt.pkix {
						t.Errorf("PKIX fallback logged: %v, want %v", used, tt.pkix)
					}
					return
				}
				if n := u.Requests.Load(); n != 0 {
					t.Errorf("refused upstream received %d requests", n)
				}
				reason := tt.reason
				if r, ok := tt.reasonIn[mode]; ok {
					reason = r
				}
				r := refusalWith(t, c, hostport, reason)
				checkProofStatement(t, mode, r)
				if want := tt.errorIn[mode]; want != "" && !strings.Contains(r.Str("error"), want) {
					t.Errorf("refusal error %q does not contain %q", r.Str("error"), want)
				}
				if reason == "bogus" {
					if r.Str("dnssec") != "bogus" {
						t.Errorf("refusal has dnssec=%q, want bogus", r.Str("dnssec"))
					}
					if mode == modeTrust {
						// Which code depends on Unbound's cache (see
						// TestTrustResolverEDE); a DNSSEC one, named.
						checkEDE(t, r, 0, "")
					}
				}
				if reason == "insecure" && r.Str("dnssec") != "insecure" {
					t.Errorf("refusal has dnssec=%q, want insecure", r.Str("dnssec"))
				}
			})
		}
	}
}

// checkEDE: a trust_resolver bogus refusal carries the resolver's RFC 8914
// code, a DNSSEC one (6-12): want, unless 0; and its error says bogus,
// names the code, and quotes text, unless "".
func checkEDE(t *testing.T, r LogEntry, want uint16, text string) {
	t.Helper()
	f, _ := r["ede"].(float64)
	ede := uint16(f)
	switch {
	case ede < 6 || ede > 12:
		t.Errorf("refusal has ede=%v, want a DNSSEC code 6-12", r["ede"])
	case want != 0 && ede != want:
		t.Errorf("refusal has ede=%d, want %d (what Unbound answered)", ede, want)
	}
	msg := r.Str("error")
	if !strings.Contains(msg, "bogus") || !strings.Contains(msg, fmt.Sprintf("EDE %d", ede)) {
		t.Errorf("refusal error %q does not say bogus with EDE %d", msg, ede)
	}
	if text != "" && !strings.Contains(msg, text) {
		t.Errorf("refusal error %q does not quote the resolver's EDE text %q", msg, text)
	}
}

// TestTrustResolverEDE: the resolver's own diagnosis reaches the log.
// Unbound gives the specific extended error, with its EXTRA-TEXT, only
// when it validates the RRset; from its cache it answers a bare "6 DNSSEC
// Bogus" (the lab's Unbound has seen these names in other tests, with CD).
// So this asks a validating Unbound of its own, with an empty cache, once
// per name.
func TestTrustResolverEDE(t *testing.T) {
	e := needCaddy(t)
	p, addr, err := e.Lab.StartExtraUnbound("unbound-ede", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(5 * time.Second) })
	for _, tc := range []struct {
		upstream string
		ede      uint16
		text     string // Unbound's EXTRA-TEXT, after "validation failure <owner TLSA IN>: "
	}{
		{"expired", 7, "signature expired"},
		{"unsigned", 9, "No DNSKEY record"},
		{"bogus", 6, "signature crypto failed"},
	} {
		t.Run(tc.upstream, func(t *testing.T) {
			u := e.Up[tc.upstream]
			s := e.modeSite(t, modeTrust, u)
			s.Dane.Resolvers = addr
			c := startCaddy(t, e, s)
			status, _, _ := request(t, "GET", c.URL()+"/", "")
			if status != 502 {
				t.Fatalf("status %d, want 502", status)
			}
			refs := c.Refusals(u.HostPort())
			if len(refs) == 0 {
				t.Fatalf("no refusal logged for %s", u.HostPort())
			}
			r := refs[0] // the first: later answers come from Unbound's cache
			t.Logf("refusal logged: reason=%q dnssec=%q ede=%v error=%q", r.Str("reason"), r.Str("dnssec"), r["ede"], r.Str("error"))
			if r.Str("reason") != "bogus" || r.Str("dnssec") != "bogus" {
				t.Errorf("refusal has reason=%q dnssec=%q, want bogus", r.Str("reason"), r.Str("dnssec"))
			}
			owner := tlsaRR{Host: u.Host, Port: u.Port}.Owner()
			checkEDE(t, r, tc.ede, "validation failure <"+owner+" TLSA IN>: "+tc.text)
			checkProofStatement(t, modeTrust, r)
		})
	}
}

// TestTrustResolverNotValidating: resolvers that do not validate DNSSEC
// never set AD. In validate mode that does not matter (the proof is checked
// in process from the RRSIGs they pass through: 200); in trust_resolver
// mode the transport must notice, before it trusts any answer, that the
// resolver does not validate, and refuse (502), even for an upstream that
// on_no_tlsa pkix would accept were the resolver's "insecure" believed.
func TestTrustResolverNotValidating(t *testing.T) {
	e := needCaddy(t)
	iter, iterAddr, err := e.Lab.StartExtraUnbound("unbound-iterator", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { iter.Stop(5 * time.Second) })

	for _, res := range []struct{ name, addr string }{
		{"NSD, authoritative (AA, no AD)", fmt.Sprintf("127.0.0.1:%d", e.Lab.NSDPort)},
		{"Unbound without the validator module", iterAddr},
	} {
		for _, tc := range []struct {
			mode     string
			upstream string
			pkix     bool
			want     int
		}{
			{modeValidate, "good", false, 200},
			{modeTrust, "good", false, 502},
			{modeTrust, "insecure", true, 502},
		} {
			name := fmt.Sprintf("%s/%s/%s", res.name, tc.mode, tc.upstream)
			if tc.pkix {
				name += " on_no_tlsa pkix"
			}
			t.Run(name, func(t *testing.T) {
				u := e.Up[tc.upstream]
				s := e.modeSite(t, tc.mode, u)
				s.Dane.Resolvers = res.addr
				if tc.pkix {
					e.withPKIX(&s)
				}
				c := startCaddy(t, e, s)
				status, body, el := request(t, "GET", c.URL()+"/", "")
				t.Logf("resolver %s, %s → %d in %v: %q", res.addr, tc.mode, status, el.Round(time.Millisecond), strings.TrimSpace(body))
				if status != tc.want {
					t.Fatalf("status %d, want %d", status, tc.want)
				}
				if tc.want == 200 {
					return
				}
				if n := u.Requests.Load(); n != 0 {
					t.Errorf("refused upstream received %d requests", n)
				}
				r := refusalWith(t, c, u.HostPort(), "indeterminate")
				if r.Str("dnssec") != "indeterminate" {
					t.Errorf("refusal has dnssec=%q, want indeterminate", r.Str("dnssec"))
				}
				if !strings.Contains(r.Str("error"), "does not validate") {
					t.Errorf("refusal error %q does not say the resolver does not validate", r.Str("error"))
				}
				checkProofStatement(t, tc.mode, r)
				if n := len(c.Entries("dane: no TLSA for upstream, authenticating with PKIX (on_no_tlsa pkix)")); n != 0 {
					t.Errorf("%d PKIX fallbacks logged on a resolver that does not validate", n)
				}
			})
		}
	}
}

// caddyValidate runs `caddy validate` on a config file and returns its
// output and whether it accepted the config.
func (e *Env) caddyValidate(t *testing.T, path, adapter string) (string, bool) {
	t.Helper()
	args := []string{"validate", "--config", path}
	if adapter != "" {
		args = append(args, "--adapter", adapter)
	}
	cmd := exec.Command(e.CaddyBin, args...)
	cmd.Env = append(os.Environ(), e.caddyEnv()...)
	out, err := cmd.CombinedOutput()
	if _, exit := err.(*exec.ExitError); err != nil && !exit {
		t.Fatal(err)
	}
	return string(out), err == nil
}

// daneCaddyfile is a minimal config with the given dane { } block.
func daneCaddyfile(dane string) string {
	return "{\n\tadmin off\n}\n:0 {\n\treverse_proxy https://svc.example.test:8443 {\n\t\ttransport dane {\n\t\t\tdane {\n" +
		dane + "\n\t\t\t}\n\t\t}\n\t}\n}\n"
}

// resolvConfLoopback reports whether every nameserver of /etc/resolv.conf
// is a loopback address; ok is false if it cannot tell.
func resolvConfLoopback() (all, ok bool) {
	f, err := os.Open("/etc/resolv.conf")
	if err != nil {
		return false, false
	}
	defer f.Close()
	n := 0
	all = true
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 || fs[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(fs[1])
		if err != nil {
			continue
		}
		n++
		all = all && a.Unmap().IsLoopback()
	}
	return all, n > 0
}

// TestTrustResolverConfig: in trust_resolver mode, every resolver must be
// on loopback (the AD bit is unprotected on the wire), whether listed or
// taken from /etc/resolv.conf; `caddy validate` refuses the config
// otherwise, for Caddyfile and JSON alike.
func TestTrustResolverConfig(t *testing.T) {
	e := needCaddy(t)
	type tc struct {
		name, dane string
		ok         bool
		want       []string // in the output of a refused config
	}
	loopbackErr := []string{"trust_resolver", "loopback"}
	cases := []tc{
		{"documentation address", "resolvers 192.0.2.1\ndnssec trust_resolver", false, loopbackErr},
		{"one of two resolvers off loopback", "resolvers 127.0.0.1:53 192.0.2.1:53\ndnssec trust_resolver", false, loopbackErr},
		{"IPv4-mapped address off loopback", "resolvers ::ffff:192.0.2.1\ndnssec trust_resolver", false, loopbackErr},
		{"IPv6 link-local", "resolvers fe80::1%lo\ndnssec trust_resolver", false, loopbackErr},
		{"127.0.0.0/8 and ::1", "resolvers 127.0.0.1 127.0.0.53:5353 ::1 [::1]:53\ndnssec trust_resolver", true, nil},
		{"lab Unbound", "resolvers " + e.Lab.Resolver() + "\ntrust_anchor_file " + e.Lab.AnchorsFile + "\ndnssec trust_resolver", true, nil},
		{"validate mode takes any resolver", "resolvers 192.0.2.1\ndnssec validate", true, nil},
		{"unknown mode", "resolvers 127.0.0.1\ndnssec maybe", false, []string{"dnssec", "trust_resolver"}},
		{"mode without value", "resolvers 127.0.0.1\ndnssec", false, []string{"dnssec"}},
	}
	if all, ok := resolvConfLoopback(); ok {
		var want []string
		if !all {
			want = loopbackErr
		}
		cases = append(cases, tc{"resolvers from /etc/resolv.conf (loopback: " + fmt.Sprint(all) + ")", "dnssec trust_resolver", all, want})
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path, err := e.writeCaddyfile(fmt.Sprintf("trust-validate-%d", i), daneCaddyfile(c.dane))
			if err != nil {
				t.Fatal(err)
			}
			out, ok := e.caddyValidate(t, path, "caddyfile")
			if ok != c.ok {
				t.Fatalf("caddy validate accepted=%v, want %v:\n%s", ok, c.ok, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("caddy validate failed without %q:\n%s", w, out)
				}
			}
		})
	}

	t.Run("JSON", func(t *testing.T) {
		path, err := e.writeCaddyfile("trust-adapt", daneCaddyfile("resolvers 127.0.0.1:53\ndnssec trust_resolver"))
		if err != nil {
			t.Fatal(err)
		}
		js, err := run(e.Dir, time.Minute, e.CaddyBin, "adapt", "--config", path, "--adapter", "caddyfile")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(js, `"dnssec":"trust_resolver"`) {
			t.Fatalf("adapted JSON lacks \"dnssec\":\"trust_resolver\":\n%s", js)
		}
		for _, tc := range []struct {
			name, resolver string
			ok             bool
		}{{"loopback", "127.0.0.1:53", true}, {"off loopback", "192.0.2.1:53", false}} {
			t.Run(tc.name, func(t *testing.T) {
				j := strings.Replace(js, `"resolvers":["127.0.0.1:53"]`, `"resolvers":["`+tc.resolver+`"]`, 1)
				if !strings.Contains(j, tc.resolver) {
					t.Fatalf("no resolvers list to rewrite in the adapted JSON:\n%s", js)
				}
				p := filepath.Join(e.Dir, "trust-"+strings.ReplaceAll(tc.name, " ", "-")+".json")
				if err := os.WriteFile(p, []byte(j), 0o644); err != nil {
					t.Fatal(err)
				}
				out, ok := e.caddyValidate(t, p, "")
				if ok != tc.ok {
					t.Fatalf("caddy validate of JSON with resolver %s accepted=%v, want %v:\n%s", tc.resolver, ok, tc.ok, out)
				}
				if !ok && (!strings.Contains(out, "trust_resolver") || !strings.Contains(out, "loopback")) {
					t.Errorf("caddy validate failed without naming trust_resolver and loopback:\n%s", out)
				}
			})
		}
	})
}

// pkixFallback is the INFO line of an upstream authenticated by PKIX under
// on_no_tlsa pkix.
const pkixFallback = "dane: no TLSA for upstream, authenticating with PKIX (on_no_tlsa pkix)"

// TestTrustResolverVerdicts: the verdicts a validating resolver gives that
// the lab's zones do not produce, from a forwarder in front of the lab's
// Unbound that rewrites its TLSA answers (the probe of test. DNSKEY goes
// through untouched, so the resolver is believed to validate). SERVFAIL
// that is not a DNSSEC failure is neither bogus nor insecure: refused even
// where on_no_tlsa pkix would accept an insecure upstream. AD=0 on a
// signed TLSA answer is insecure: refused, or PKIX with on_no_tlsa pkix;
// the in-process validator, which ignores AD, still matches the TLSA.
// A resolver that never answers: dns timeout, within the timeout.
func TestTrustResolverVerdicts(t *testing.T) {
	e := needCaddy(t)
	onTLSA := func(f func(q, r *dns.Msg) *dns.Msg) func(q, r *dns.Msg) *dns.Msg {
		return func(q, r *dns.Msg) *dns.Msg {
			if q.Question[0].Qtype != dns.TypeTLSA {
				return r
			}
			return f(q, r)
		}
	}
	sf := func(code uint16, text string) func(q, r *dns.Msg) *dns.Msg {
		return onTLSA(func(q, _ *dns.Msg) *dns.Msg { return servfail(q, code, text) })
	}
	clearAD := onTLSA(func(_, r *dns.Msg) *dns.Msg { r.AuthenticatedData = false; return r })

	for _, tc := range []struct {
		name     string
		rewrite  func(q, r *dns.Msg) *dns.Msg
		mode     string
		upstream string
		pkix     bool
		want     int
		reason   string
		status   string // the refusal's dnssec field
	}{
		{"SERVFAIL without EDE, on_no_tlsa pkix", sf(0, ""), modeTrust, "insecure", true, 502, "dns error", "indeterminate"},
		{"SERVFAIL with EDE 22 No Reachable Authority, on_no_tlsa pkix", sf(22, "upstream down"), modeTrust, "insecure", true, 502, "dns error", "indeterminate"},
		{"AD cleared on the TLSA answer", clearAD, modeTrust, "good", false, 502, "insecure", "insecure"},
		{"AD cleared on the TLSA answer, on_no_tlsa pkix", clearAD, modeTrust, "good", true, 200, "", ""},
		{"AD cleared on the TLSA answer, validate mode", clearAD, modeValidate, "good", false, 200, "", ""},
	} {
		t.Run(tc.mode+"/"+tc.name, func(t *testing.T) {
			fwd, err := startDNSRewriter(e.Lab.Resolver(), tc.rewrite)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(fwd.Close)
			u := e.Up[tc.upstream]
			s := e.modeSite(t, tc.mode, u)
			s.Dane.Resolvers = fwd.Addr
			if tc.pkix {
				e.withPKIX(&s)
			}
			c := startCaddy(t, e, s)
			status, body, el := request(t, "GET", c.URL()+"/", "")
			t.Logf("%s via rewriter → %d in %v: %q", u.HostPort(), status, el.Round(time.Millisecond), strings.TrimSpace(body))
			if status != tc.want {
				t.Fatalf("status %d, want %d", status, tc.want)
			}
			pkixUsed := len(c.Entries(pkixFallback)) > 0
			if tc.want == 200 {
				if !strings.Contains(body, "upstream="+tc.upstream) {
					t.Errorf("body %q is not from upstream %s", body, tc.upstream)
				}
				if pkixUsed != tc.pkix {
					t.Errorf("PKIX fallback logged: %v, want %v", pkixUsed, tc.pkix)
				}
				return
			}
			if pkixUsed {
				t.Errorf("PKIX fallback logged for a lookup that was not proven insecure")
			}
			if n := u.Requests.Load(); n != 0 {
				t.Errorf("refused upstream received %d requests", n)
			}
			r := refusalWith(t, c, u.HostPort(), tc.reason)
			if r.Str("dnssec") != tc.status {
				t.Errorf("refusal has dnssec=%q, want %q", r.Str("dnssec"), tc.status)
			}
			checkProofStatement(t, tc.mode, r)
		})
	}

	t.Run("resolver never answers", func(t *testing.T) {
		s := e.modeSite(t, modeTrust, e.Up["good"])
		s.Dane.Resolvers = blackhole(t)
		s.Dane.Timeout = "1s"
		c := startCaddy(t, e, s)
		status, _, el := request(t, "GET", c.URL()+"/", "")
		t.Logf("→ %d in %v", status, el.Round(time.Millisecond))
		if status != 502 {
			t.Fatalf("status %d, want 502", status)
		}
		if el > 2*time.Second {
			t.Errorf("refusal took %v, want ≤ timeout 1s + 1s", el)
		}
		r := refusalWith(t, c, e.Up["good"].HostPort(), "dns timeout")
		if r.Str("dnssec") != "indeterminate" {
			t.Errorf("refusal has dnssec=%q, want indeterminate", r.Str("dnssec"))
		}
		checkProofStatement(t, modeTrust, r)
	})
}

// TestTrustResolverFailover: with several resolvers, each is checked and
// trusted on its own: one that does not validate (NSD) is skipped, in
// either order, and the verdict is the validating one's (Unbound): a
// match is accepted, a bogus RRset stays bogus.
func TestTrustResolverFailover(t *testing.T) {
	e := needCaddy(t)
	nsd := fmt.Sprintf("127.0.0.1:%d", e.Lab.NSDPort)
	for _, tc := range []struct {
		name      string
		resolvers string
		upstream  string
		want      int
	}{
		{"NSD first, good", nsd + " " + e.Lab.Resolver(), "good", 200},
		{"NSD first, bogus", nsd + " " + e.Lab.Resolver(), "expired", 502},
		{"Unbound first, bogus", e.Lab.Resolver() + " " + nsd, "expired", 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := e.Up[tc.upstream]
			s := e.modeSite(t, modeTrust, u)
			s.Dane.Resolvers = tc.resolvers
			c := startCaddy(t, e, s)
			status, body, el := request(t, "GET", c.URL()+"/", "")
			t.Logf("resolvers %s → %d in %v: %q", tc.resolvers, status, el.Round(time.Millisecond), strings.TrimSpace(body))
			if status != tc.want {
				t.Fatalf("status %d, want %d", status, tc.want)
			}
			if tc.want == 200 {
				return
			}
			r := refusalWith(t, c, u.HostPort(), "bogus")
			checkEDE(t, r, 0, "")
			checkProofStatement(t, modeTrust, r)
		})
	}
}
