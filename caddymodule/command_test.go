package caddymodule

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/caddy-dane/caddy-dane/caddymodule/dane"
	"github.com/caddy-dane/caddy-dane/caddymodule/tlsa"
	"github.com/caddy-dane/caddy-dane/internal/labconf"
	"github.com/caddy-dane/caddy-dane/internal/pkikit"
	"github.com/caddy-dane/caddy-dane/internal/testenv"
	"github.com/caddy-dane/caddy-dane/internal/zonekit"
)

// TestMain lets the test binary stand in for the caddy binary: with
// CADDY_DANE_AS_CADDY=1 it runs caddycmd.Main, so the subcommands are tested
// through Caddy's real command line, exit statuses included.
func TestMain(m *testing.M) {
	if os.Getenv("CADDY_DANE_AS_CADDY") == "1" {
		caddycmd.Main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// caddyRun runs `caddy <args>` and returns stdout, stderr and the exit status.
func caddyRun(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "CADDY_DANE_AS_CADDY=1")
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("running caddy %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// pki is a CA and a leaf it issued, both P-256.
type pki struct {
	ca, leaf       *x509.Certificate
	caKey, leafKey *ecdsa.PrivateKey
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	ca, err := pkikit.NewRoot("Test CA " + name)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.NewLeaf(name)
	if err != nil {
		t.Fatal(err)
	}
	return &pki{ca: ca.Cert, caKey: ca.Key, leaf: leaf.Cert, leafKey: leaf.Key}
}

// writeChain writes the leaf then the CA as PEM and returns the path.
func (p *pki) writeChain(t *testing.T, certs ...*x509.Certificate) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "chain.pem")
	if err := pkikit.WritePEM(path, certs...); err != nil {
		t.Fatal(err)
	}
	return path
}

// keyFile writes the leaf's key as PEM and returns the path.
func (p *pki) keyFile(t *testing.T) string {
	t.Helper()
	b, err := pkikit.KeyPEM(p.leafKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// serveTLS serves HTTPS on loopback with the leaf and CA of p and returns
// the port.
func serveTLS(t *testing.T, p *pki) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, "hello from", r.Host)
		}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{{
			Certificate: [][]byte{p.leaf.Raw, p.ca.Raw}, PrivateKey: p.leafKey,
		}}},
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// freePort returns a loopback port for a server that some other party
// (a Caddy config, a zone) must name before it listens; labconf keeps it
// outside the kernel's ephemeral range and reserved against other test
// processes until this one exits.
func freePort(t *testing.T) int {
	t.Helper()
	port, err := labconf.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// signedZone signs example.test. with records, serves it on loopback, and
// returns the server's address and a trust anchor file with the zone's DS.
func signedZone(t *testing.T, records ...string) (*zonekit.Zone, string, string) {
	t.Helper()
	return serveZone(t, "example.test.", records...)
}

// serveZone signs a zone of records at origin, serves it on loopback and
// writes its DS to a trust anchor file: the zone, the server's address and
// the anchor file's path.
func serveZone(t *testing.T, origin string, records ...string) (*zonekit.Zone, string, string) {
	t.Helper()
	z := zonekit.NewZone(origin)
	z.MustAdd(records...)
	now := time.Now()
	if err := z.Sign(now.Add(-time.Hour), now.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	srv := zonekit.NewServer(z)
	addr, err := srv.ListenAndServe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	var ds strings.Builder
	for _, d := range z.DS() {
		ds.WriteString(d.String() + "\n")
	}
	anchors := filepath.Join(t.TempDir(), "anchors.ds")
	if err := os.WriteFile(anchors, []byte(ds.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return z, addr, anchors
}

func rdataOf(t *testing.T, p *pki, c *x509.Certificate, u, s, m uint8) string {
	t.Helper()
	args := []string{"dane", "tlsa", "--cert", p.writeChain(t, p.leaf, p.ca),
		"--usage", strconv.Itoa(int(u)), "--selector", strconv.Itoa(int(s)), "--matching", strconv.Itoa(int(m))}
	if c == p.ca {
		args = append(args, "--index", "1")
	}
	out, errOut, code := caddyRun(t, args...)
	if code != 0 {
		t.Fatalf("caddy %v: status %d: %s", args, code, errOut)
	}
	return strings.TrimSpace(out)
}

var danetoolRR = regexp.MustCompile(`IN TLSA \( ([0-9a-f]{2}) ([0-9a-f]{2}) ([0-9a-f]{2}) ([0-9a-f]+) \)`)

// TestTLSAMatchesReferenceTools: `caddy dane tlsa` prints the same RDATA
// as ldns-dane and GnuTLS danetool for the same certificate, for every
// usage, selector and matching type each tool can make.
func TestTLSAMatchesReferenceTools(t *testing.T) {
	ldns := testenv.NeedTool(t, "ldns-dane")
	danetool := testenv.NeedTool(t, "danetool")
	p := newPKI(t, "svc.example.test")
	leafFile := p.writeChain(t, p.leaf)
	caFile := p.writeChain(t, p.ca)
	chainFile := p.writeChain(t, p.leaf, p.ca)

	for u := uint8(0); u <= 3; u++ {
		for s := uint8(0); s <= 1; s++ {
			for m := uint8(0); m <= 2; m++ {
				// ldns-dane makes CA records (0, 2) from the chain's last,
				// self-signed certificate and EE records from the leaf.
				cert, want := p.leaf, ""
				if u == 0 || u == 2 {
					cert = p.ca
				}
				name := fmt.Sprintf("RFC 6698 §2.1 %d %d %d", u, s, m)
				t.Run(name+" ldns-dane", func(t *testing.T) {
					out, err := exec.Command(ldns, "-s", "-c", chainFile, "create", "svc.example.test", "443",
						strconv.Itoa(int(u)), strconv.Itoa(int(s)), strconv.Itoa(int(m))).CombinedOutput()
					if err != nil {
						t.Fatalf("ldns-dane: %v: %s", err, out)
					}
					f := strings.Fields(string(out))
					if len(f) < 8 || f[3] != "TLSA" {
						t.Fatalf("unexpected ldns-dane output %q", out)
					}
					want = strings.Join(f[4:], " ")
					if got := rdataOf(t, p, cert, u, s, m); got != want {
						t.Errorf("caddy dane tlsa: %s\nldns-dane:       %s", got, want)
					}
				})
				if m == 0 {
					continue // danetool makes only SHA2-256 and SHA2-512 records
				}
				t.Run(name+" danetool", func(t *testing.T) {
					file := leafFile
					args := []string{"--tlsa-rr", "--host", "svc.example.test", "--hash", map[uint8]string{1: "sha256", 2: "sha512"}[m]}
					if u == 0 || u == 2 {
						file = caFile
						args = append(args, "--ca")
					}
					if u == 0 || u == 1 {
						args = append(args, "--no-domain")
					}
					if s == 0 {
						args = append(args, "--x509")
					}
					out, err := exec.Command(danetool, append(args, "--load-certificate", file)...).CombinedOutput()
					if err != nil {
						t.Fatalf("danetool: %v: %s", err, out)
					}
					sm := danetoolRR.FindStringSubmatch(string(out))
					if sm == nil {
						t.Fatalf("unexpected danetool output %q", out)
					}
					n := func(h string) int { v, _ := strconv.ParseInt(h, 16, 8); return int(v) }
					want := fmt.Sprintf("%d %d %d %s", n(sm[1]), n(sm[2]), n(sm[3]), sm[4])
					if got := rdataOf(t, p, cert, u, s, m); got != want {
						t.Errorf("caddy dane tlsa: %s\ndanetool:        %s", got, want)
					}
				})
			}
		}
	}
}

// TestTLSASources: the same record from the certificate, the key and the
// live server; the owner name and TTL with --host/--port.
func TestTLSASources(t *testing.T) {
	p := newPKI(t, "svc.example.test")
	port := serveTLS(t, p)
	want := rdataOf(t, p, p.leaf, 3, 1, 1)

	keyFile := p.keyFile(t)
	for _, tc := range []struct {
		name string
		args []string
		out  string
		code int
	}{
		{"private key", []string{"--key", keyFile}, want, 0},
		{"live server", []string{"--connect", fmt.Sprintf("127.0.0.1:%d", port)}, want, 0},
		{"live server, owner from flags", []string{"--connect", fmt.Sprintf("127.0.0.1:%d", port), "--host", "svc.example.test"},
			fmt.Sprintf("_%d._tcp.svc.example.test.\t3600\tIN\tTLSA\t%s", port, want), 0},
		{"owner and TTL", []string{"--cert", p.writeChain(t, p.leaf), "--host", "Svc.Example.Test.", "--port", "8443", "--ttl", "300"},
			"_8443._tcp.svc.example.test.\t300\tIN\tTLSA\t" + want, 0},
		{"RFC 7218 acronyms", []string{"--cert", p.writeChain(t, p.leaf), "--usage", "DANE-EE", "--selector", "SPKI", "--matching", "SHA2-256"}, want, 0},
		{"key has no Cert selector", []string{"--key", keyFile, "--selector", "0"}, "", 2},
		{"index beyond the chain", []string{"--cert", p.writeChain(t, p.leaf), "--index", "1"}, "", 2},
		{"no source", nil, "", 2},
		{"unknown flag", []string{"--nope"}, "", 2},
		{"unknown usage", []string{"--cert", p.writeChain(t, p.leaf), "--usage", "7"}, "", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := caddyRun(t, append([]string{"dane", "tlsa"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("status %d, want %d; stderr %s", code, tc.code, errOut)
			}
			if tc.out != "" && strings.TrimSpace(out) != tc.out {
				t.Errorf("got  %q\nwant %q", strings.TrimSpace(out), tc.out)
			}
		})
	}
}

// checkLab is a signed zone with TLSA records for two loopback TLS
// servers: svc (its key published, DANE-EE), ta (its CA published,
// DANE-TA) and impostor (svc's record, another key).
type checkLab struct {
	good, other          *pki
	svc, ta, impostor    int
	dnsAddr, anchorsFile string
	svcRR, taRR          string
}

func newCheckLab(t *testing.T) *checkLab {
	t.Helper()
	l := &checkLab{good: newPKI(t, "svc.example.test"), other: newPKI(t, "svc.example.test")}
	l.svc = serveTLS(t, l.good)
	l.ta = serveTLS(t, l.good)
	l.impostor = serveTLS(t, l.other)
	ee, err := tlsa.NewRecord(3, 1, 1, l.good.leaf)
	if err != nil {
		t.Fatal(err)
	}
	ta, err := tlsa.NewRecord(2, 0, 1, l.good.ca)
	if err != nil {
		t.Fatal(err)
	}
	l.svcRR, l.taRR = ee.String(), ta.String()
	_, l.dnsAddr, l.anchorsFile = signedZone(t,
		"svc 300 IN A 127.0.0.1",
		fmt.Sprintf("_%d._tcp.svc 300 IN TLSA %s", l.svc, l.svcRR),
		fmt.Sprintf("_%d._tcp.svc 300 IN TLSA %s", l.ta, l.taRR),
		fmt.Sprintf("_%d._tcp.svc 300 IN TLSA %s", l.impostor, l.svcRR),
	)
	return l
}

func (l *checkLab) check(t *testing.T, port int, extra ...string) (string, string, int) {
	t.Helper()
	args := append([]string{"dane", "check", "svc.example.test", strconv.Itoa(port),
		"--resolver", l.dnsAddr, "--trust-anchor-file", l.anchorsFile,
		"--connect", fmt.Sprintf("127.0.0.1:%d", port), "--timeout", "3s"}, extra...)
	return caddyRun(t, args...)
}

// TestCheckEndToEnd runs `caddy dane check` against a signed zone served
// in process and loopback TLS servers: verified (0), refused (1), usage (2).
func TestCheckEndToEnd(t *testing.T) {
	l := newCheckLab(t)
	for _, tc := range []struct {
		name   string
		port   int
		extra  []string
		code   int
		reason string
		depth  int
		text   []string
	}{
		{"RFC 7671 §5.1 DANE-EE match", l.svc, nil, 0, "", 0,
			[]string{"example.test. secure", "(usable, matched)", "at depth 0", "VERIFIED"}},
		{"RFC 7671 §5.2 DANE-TA match at depth 1", l.ta, nil, 0, "", 1, []string{"at depth 1", "VERIFIED"}},
		{"DANE-TA checks names: --name changes the reference identifier", l.ta, []string{"--name", "other.example.test"}, 0, "", 1, nil},
		{"impostor key: tlsa mismatch", l.impostor, nil, 1, "tlsa mismatch", 0,
			[]string{"REFUSED (tlsa mismatch)", "the server's key as a DANE-EE record"}},
		{"no TLSA at this port", 1, []string{"--connect", fmt.Sprintf("127.0.0.1:%d", l.svc)}, 1, "no tlsa", 0, []string{"REFUSED (no tlsa)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := tc.port
			out, errOut, code := l.check(t, port, tc.extra...)
			if code != tc.code {
				t.Fatalf("status %d, want %d\n%s%s", code, tc.code, out, errOut)
			}
			for _, want := range tc.text {
				if !strings.Contains(out, want) {
					t.Errorf("report lacks %q:\n%s", want, out)
				}
			}
			out, _, code = l.check(t, port, append(tc.extra, "--json")...)
			if code != tc.code {
				t.Fatalf("--json: status %d, want %d", code, tc.code)
			}
			var rep dane.Report
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("--json: %v\n%s", err, out)
			}
			if rep.Reason != tc.reason {
				t.Errorf("reason %q, want %q", rep.Reason, tc.reason)
			}
			if tc.code == 0 && (rep.Verdict != dane.Verified || rep.Match == nil || rep.Match.Depth != tc.depth) {
				t.Errorf("verdict %q match %+v, want verified at depth %d", rep.Verdict, rep.Match, tc.depth)
			}
			if tc.code == 1 && rep.Verdict != dane.Refused {
				t.Errorf("verdict %q, want refused", rep.Verdict)
			}
			if rep.DNSSEC == nil || len(rep.DNSSEC.Chain) == 0 || (tc.reason != "no tlsa" && rep.DNSSEC.Status != "secure") {
				t.Errorf("dnssec %+v, want a secure chain", rep.DNSSEC)
			}
			if len(rep.Chain) != 2 || rep.Chain[0].SPKISHA256 == "" {
				t.Errorf("presented chain %+v, want leaf and CA", rep.Chain)
			}
		})
	}

	t.Run("usage errors exit 2", func(t *testing.T) {
		for _, args := range [][]string{
			{"dane", "check"},
			{"dane", "check", "svc.example.test", "--bogus-flag"},
			{"dane", "check", "svc.example.test", "99999"},
			{"dane", "check", "127.0.0.1"},
			{"dane", "check", "svc.example.test", "--resolver", "not-an-ip"},
			{"dane", "check", "svc.example.test", "--trust-anchor-file", "/nonexistent"},
		} {
			if _, errOut, code := caddyRun(t, args...); code != 2 {
				t.Errorf("caddy %v: status %d, want 2 (%s)", args, code, errOut)
			}
		}
	})
}

// TestCheckAgreesWithOpenSSL: OpenSSL's DANE verifier, given the same
// records, reaches the same verdict as `caddy dane check`.
func TestCheckAgreesWithOpenSSL(t *testing.T) {
	openssl := testenv.NeedTool(t, "openssl")
	l := newCheckLab(t)
	for _, tc := range []struct {
		name  string
		port  int
		rdata string
	}{
		{"DANE-EE", l.svc, l.svcRR},
		{"DANE-TA", l.ta, l.taRR},
		{"impostor", l.impostor, l.svcRR},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, code := l.check(t, tc.port)
			cmd := exec.Command(openssl, "s_client", "-connect", fmt.Sprintf("127.0.0.1:%d", tc.port),
				"-servername", "svc.example.test", "-dane_tlsa_domain", "svc.example.test",
				"-dane_tlsa_rrdata", tc.rdata, "-verify_return_error", "-brief")
			cmd.Stdin = strings.NewReader("")
			out, err := cmd.CombinedOutput()
			opensslOK := err == nil && strings.Contains(string(out), "Verification: OK")
			if opensslOK != (code == 0) {
				t.Errorf("caddy dane check status %d, openssl verified=%v:\n%s", code, opensslOK, out)
			}
		})
	}
}

// TestLookup runs `caddy dane lookup` like delv: secure answers, the
// chain of trust, bogus as of a later time, and the JSON document.
func TestLookup(t *testing.T) {
	_, addr, anchors := signedZone(t, "www 300 IN A 192.0.2.1", "_443._tcp.www 300 IN TLSA 3 1 1 "+strings.Repeat("ab", 32))
	base := []string{"--resolver", addr, "--trust-anchor-file", anchors, "--timeout", "3s"}
	run := func(args ...string) (string, int) {
		out, errOut, code := caddyRun(t, append(append([]string{"dane", "lookup"}, args...), base...)...)
		return out + errOut, code
	}

	out, code := run("www.example.test", "--trace")
	if code != 0 || !strings.Contains(out, "www.example.test. A: secure") ||
		!strings.Contains(out, "192.0.2.1") || !strings.Contains(out, "zone example.test. secure") {
		t.Errorf("secure A: status %d\n%s", code, out)
	}

	out, code = run("_443._tcp.www.example.test", "TLSA", "--json")
	var lr dane.LookupReport
	if err := json.Unmarshal([]byte(out), &lr); err != nil || code != 0 {
		t.Fatalf("TLSA --json: status %d, %v\n%s", code, err, out)
	}
	if lr.Status != "secure" || lr.Rcode != "NOERROR" || len(lr.Records) != 1 || !strings.Contains(lr.Records[0], "TLSA\t3 1 1 abab") {
		t.Errorf("TLSA --json: %+v", lr)
	}

	out, code = run("nope.example.test", "--json")
	if err := json.Unmarshal([]byte(out), &lr); err != nil {
		t.Fatal(err)
	}
	// RFC 4035 §5.4: an NXDOMAIN proven by NSEC is a secure answer.
	if code != 0 || lr.Status != "secure" || lr.Rcode != "NXDOMAIN" || len(lr.Records) != 0 {
		t.Errorf("NXDOMAIN: status %d %+v", code, lr)
	}

	// RFC 4035 §5.3.1: a signature past its expiration is bogus.
	out, code = run("www.example.test", "--time", time.Now().Add(30*24*time.Hour).Format(time.RFC3339), "--json")
	if err := json.Unmarshal([]byte(out), &lr); err != nil {
		t.Fatal(err)
	}
	if code != 1 || lr.Status != "bogus" || lr.Reason == "" || lr.EDE == 0 {
		t.Errorf("--time after expiry: status %d %+v", code, lr)
	}

	for _, args := range [][]string{{}, {"www.example.test", "NOTATYPE"}, {"www.example.test", "--time", "yesterday"},
		{"www.example.test", "--dnssec", "trust_resolver", "--time", time.Now().Format(time.RFC3339)}, {"www.example.test", "--dnssec", "maybe"}} {
		if _, code := run(args...); code != 2 {
			t.Errorf("lookup %v: status %d, want 2", args, code)
		}
	}

	// dnssec trust_resolver: the verdict of a loopback validating resolver.
	front := startValidatingFront(t, addr, anchors)
	out, errOut, code := caddyRun(t, "dane", "lookup", "_443._tcp.www.example.test", "TLSA", "--dnssec", "trust_resolver",
		"--resolver", front.addr, "--trust-anchor-file", anchors, "--timeout", "3s")
	if code != 0 || !strings.Contains(out, "TLSA: secure") || !strings.Contains(out, "proof: the AD bit of "+front.addr) {
		t.Errorf("trust_resolver: status %d\n%s%s", code, out, errOut)
	}
	_, errOut, code = caddyRun(t, "dane", "lookup", "www.example.test", "--dnssec", "trust_resolver", "--resolver", "192.0.2.53")
	if code != 2 || !strings.Contains(errOut, "must be a loopback address") {
		t.Errorf("trust_resolver with a remote resolver: status %d\n%s", code, errOut)
	}
}
