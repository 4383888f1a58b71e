package tlsa

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-dane/caddy-dane/internal/testenv"
)

// A pathCase is a root → intermediate → leaf PKI with changes to the
// templates, a DANE-TA record and the verdict OpenSSL reaches on it.
type pathCase struct {
	name              string
	root, inter, leaf func(*x509.Certificate) // template changes, may be nil
	// anchor says which DANE-TA record authenticates the chain and what
	// the peer presents: "211" a "2 1 1" record for the root, which is
	// presented (the default); "200" the root in full in a "2 0 0" record,
	// not presented; "210" the root's key in a "2 1 0" record, root not
	// presented; "inter" a "2 1 1" record for the intermediate, root
	// presented.
	anchor string
	// selfIssued puts a self-issued CA (the root's name, another key)
	// between the root and the intermediate: a key rollover certificate.
	selfIssued bool
	name0      string // reference name; default testName
	ok         bool
	reason     string // substring of the *ChainError, when !ok
	// diverge marks a case where this package knowingly refuses what
	// OpenSSL accepts (a constraint type it does not evaluate).
	diverge bool
}

// pathCases are the DANE-TA paths checkPathConstraints is tested on, here
// against the expected reason and against OpenSSL: the purpose, path
// length and critical extension cases (purpose_test.go), then the name
// constraint cases (nameconstraints_test.go), then one that combines them.
func pathCases() []pathCase {
	cs := []pathCase{{name: "RFC 7671 §5.2 baseline", ok: true}}
	cs = append(cs, purposeCases()...)
	cs = append(cs, nameConstraintCases()...)
	return append(cs,
		pathCase{name: "all at once, satisfied", root: allOf(withPathLen(1), withPermittedDNS("example.com"), withEKU(x509.ExtKeyUsageServerAuth)),
			inter: allOf(withPathLen(0), withExcludedDNS("bad.example.com"), withEKU(x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)), anchor: "200", ok: true})
}

// Template changes shared by the path cases.

func withEKU(u ...x509.ExtKeyUsage) func(*x509.Certificate) {
	return func(c *x509.Certificate) { c.ExtKeyUsage = u }
}

func withPathLen(n int) func(*x509.Certificate) {
	return func(c *x509.Certificate) { c.MaxPathLen, c.MaxPathLenZero = n, n == 0 }
}

func withPermittedDNS(d ...string) func(*x509.Certificate) {
	return func(c *x509.Certificate) { c.PermittedDNSDomains = d }
}

func withExcludedDNS(d ...string) func(*x509.Certificate) {
	return func(c *x509.Certificate) { c.ExcludedDNSDomains = d }
}

func allOf(fs ...func(*x509.Certificate)) func(*x509.Certificate) {
	return func(c *x509.Certificate) {
		for _, f := range fs {
			f(c)
		}
	}
}

// unknownExt adds an extension no verifier knows (a private OID), critical
// or not.
func unknownExt(critical bool) func(*x509.Certificate) {
	return func(c *x509.Certificate) {
		c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 7}, Critical: critical, Value: der(asn1.NullRawValue)})
	}
}

func der(v any) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// pathKeys are the keys of the path cases, made once.
var pathKeys = sync.OnceValue(func() (k struct{ root, roll, inter, leaf *ecdsa.PrivateKey }) {
	gen := func() *ecdsa.PrivateKey {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return key
	}
	k.root, k.roll, k.inter, k.leaf = gen(), gen(), gen(), gen()
	return k
})

// builtCase is a pathCase made concrete: what the peer presents, the
// record, and the leaf's key for a TLS server.
type builtCase struct {
	chain   []*x509.Certificate
	record  Record
	leafKey *ecdsa.PrivateKey
	name    string
}

func (tc pathCase) build(tb testing.TB) builtCase {
	tb.Helper()
	k := pathKeys()
	mod := func(c *x509.Certificate, f func(*x509.Certificate)) *x509.Certificate {
		if f != nil {
			f(c)
		}
		return c
	}
	// Validity around the real clock: OpenSSL checks dates against now.
	from, until := time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	ca := func(serial int64, cn string) *x509.Certificate {
		c := caTemplate(serial, cn, until)
		c.NotBefore = from
		return c
	}
	root := mkCert(tb, mod(ca(1, "Path Root CA"), tc.root), nil, &k.root.PublicKey, k.root)
	parent, parentKey := root, k.root
	var roll *x509.Certificate
	if tc.selfIssued {
		// crypto/x509 leaves the authority key identifier out of a
		// self-issued certificate; without it OpenSSL takes the
		// certificate for self-signed and ends the path there.
		rt := ca(2, "Path Root CA")
		rt.AuthorityKeyId = root.SubjectKeyId
		roll = mkCert(tb, rt, root, &k.roll.PublicKey, k.root)
		parent, parentKey = roll, k.roll
	}
	inter := mkCert(tb, mod(ca(3, "Path Issuer CA"), tc.inter), parent, &k.inter.PublicKey, parentKey)
	lt := leafTemplate(4, testName, until)
	lt.NotBefore = from
	leaf := mkCert(tb, mod(lt, tc.leaf), inter, &k.leaf.PublicKey, k.inter)

	b := builtCase{leafKey: k.leaf, name: tc.name0, chain: []*x509.Certificate{leaf, inter}}
	if b.name == "" {
		b.name = testName
	}
	if roll != nil {
		b.chain = append(b.chain, roll)
	}
	switch tc.anchor {
	case "", "211":
		b.chain = append(b.chain, root)
		b.record = rec(DANETA, SPKI, SHA256, root)
	case "inter":
		b.chain = append(b.chain, root)
		b.record = rec(DANETA, SPKI, SHA256, inter)
	case "200":
		b.record = rec(DANETA, Cert, Full, root)
	case "210":
		b.record = rec(DANETA, SPKI, Full, root)
	default:
		tb.Fatalf("unknown anchor %q", tc.anchor)
	}
	return b
}

func (b builtCase) verify() (*Match, error) {
	return Verify(Options{Chain: b.chain, Records: []Record{b.record}, Names: []string{b.name}})
}

func TestPathConstraints(t *testing.T) {
	for _, tc := range pathCases() {
		t.Run(tc.name, func(t *testing.T) {
			m, err := tc.build(t).verify()
			if tc.ok {
				if err != nil {
					t.Fatalf("want success, got %v", err)
				}
				if m.Record.Usage != DANETA {
					t.Errorf("matched %s, want a DANE-TA record", m.Record.short())
				}
				return
			}
			var ce *ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("want *ChainError, got %v", err)
			}
			if !strings.Contains(ce.Reason, tc.reason) {
				t.Errorf("reason %q\ndoes not contain %q", ce.Reason, tc.reason)
			}
		})
	}
}

// DANE-EE ignores everything but the key (RFC 7671 §5.1): a "3 1 1" for a
// leaf that every DANE-TA check above refuses still matches.
func TestPathConstraintsNotForDANEEE(t *testing.T) {
	tc := pathCase{
		root: func(c *x509.Certificate) {
			c.PermittedDNSDomains = []string{"other.com"}
			c.MaxPathLen, c.MaxPathLenZero = 0, true
		},
		leaf: func(c *x509.Certificate) {
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
			unknownExt(true)(c)
		},
	}
	b := tc.build(t)
	if _, err := b.verify(); err == nil {
		t.Fatal("DANE-TA accepted the path")
	}
	b.record = rec(DANEEE, SPKI, SHA256, b.chain[0])
	if m, err := b.verify(); err != nil || m.Record.Usage != DANEEE {
		t.Fatalf("DANE-EE: %v, %v", m, err)
	}
}

// TestPathConstraintsAgreeWithOpenSSL serves each case's chain over TLS
// and asks `openssl s_client -dane_tlsa_rrdata` for its verdict: it must
// be ours, except on the rows marked diverge, where OpenSSL must accept
// what we refuse.
func TestPathConstraintsAgreeWithOpenSSL(t *testing.T) {
	openssl := testenv.NeedTool(t, "openssl")
	var table strings.Builder
	table.WriteString("| case | ours | OpenSSL |\n|---|---|---|\n")
	for _, tc := range pathCases() {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.build(t)
			_, err := b.verify()
			ours := err == nil
			theirs, detail := opensslVerdict(t, openssl, b)
			verdict := func(ok bool) string {
				if ok {
					return "OK"
				}
				return "refused"
			}
			table.WriteString("| " + tc.name + " | " + verdict(ours) + " | " + verdict(theirs) + " " + detail + " |\n")
			switch {
			case tc.diverge && (ours || !theirs):
				t.Errorf("known divergence changed: ours ok=%v (%v), openssl ok=%v %s", ours, err, theirs, detail)
			case !tc.diverge && ours != theirs:
				t.Errorf("ours ok=%v (%v), openssl ok=%v %s", ours, err, theirs, detail)
			}
		})
	}
	t.Log("\n" + table.String())
}

// opensslVerdict runs s_client against a local TLS server presenting b's
// chain, with b's record. It returns whether OpenSSL verified the peer,
// and its verify error, if any.
func opensslVerdict(t *testing.T, openssl string, b builtCase) (bool, string) {
	t.Helper()
	cert := tls.Certificate{PrivateKey: b.leafKey}
	for _, c := range b.chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_ = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	}()
	defer func() { ln.Close(); wg.Wait() }()

	cmd := exec.Command(openssl, "s_client", "-connect", ln.Addr().String(), "-servername", b.name,
		"-dane_tlsa_domain", b.name, "-dane_tlsa_rrdata", b.record.String(), "-verify_return_error", "-brief")
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	ok := err == nil && strings.Contains(string(out), "Verification: OK")
	detail := ""
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "verify error:") {
			detail = "(" + strings.TrimSpace(l[strings.Index(l, "verify error:")+len("verify error:"):]) + ")"
			break
		}
	}
	if !ok && detail == "" {
		t.Logf("openssl output:\n%s", out)
	}
	return ok, detail
}

// BenchmarkVerifyDANETA211 is a DANE-TA match on a presented root: a
// "2 1 1" record, the path leaf → intermediate → root built and checked.
func BenchmarkVerifyDANETA211(b *testing.B) {
	p := newTestPKI(b)
	o := Options{
		Chain:   []*x509.Certificate{p.leaf, p.inter, p.root},
		Records: []Record{rec(DANETA, SPKI, SHA256, p.root)},
		Names:   []string{testName},
		Time:    testTime,
	}
	if _, err := Verify(o); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(o); err != nil {
			b.Fatal(err)
		}
	}
}
