package tlsa

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"net"
	"net/url"
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

func pathCases() []pathCase {
	eku := func(u ...x509.ExtKeyUsage) func(*x509.Certificate) {
		return func(c *x509.Certificate) { c.ExtKeyUsage = u }
	}
	pathLen := func(n int) func(*x509.Certificate) {
		return func(c *x509.Certificate) { c.MaxPathLen, c.MaxPathLenZero = n, n == 0 }
	}
	dns := func(names ...string) func(*x509.Certificate) {
		return func(c *x509.Certificate) { c.DNSNames = names }
	}
	permitDNS := func(d ...string) func(*x509.Certificate) {
		return func(c *x509.Certificate) { c.PermittedDNSDomains = d }
	}
	excludeDNS := func(d ...string) func(*x509.Certificate) {
		return func(c *x509.Certificate) { c.ExcludedDNSDomains = d }
	}
	cidr := func(s string) *net.IPNet {
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			panic(err)
		}
		return n
	}
	withIP := func(c *x509.Certificate) { c.IPAddresses = []net.IP{net.ParseIP("192.0.2.10").To4()} }
	nsType := func(bits byte) func(*x509.Certificate) {
		return func(c *x509.Certificate) {
			v, _ := asn1.Marshal(asn1.BitString{Bytes: []byte{bits}, BitLength: 8})
			c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: oidNetscapeCertType, Value: v})
		}
	}
	rawNC := func(subtrees ...[]byte) func(*x509.Certificate) {
		return func(c *x509.Certificate) {
			c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: oidNameConstraints, Critical: true,
				Value: der(asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true,
					Bytes: der(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: bytes.Join(subtrees, nil)})})})
		}
	}
	leafSubject := der(pkix.Name{CommonName: testName}.ToRDNSequence())
	dirName := der(asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true,
		Bytes: der(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: gnDirectoryName, IsCompound: true, Bytes: leafSubject})})
	otherDirName := der(asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true,
		Bytes: der(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: gnDirectoryName, IsCompound: true,
			Bytes: der(pkix.Name{Organization: []string{"Elsewhere"}}.ToRDNSequence())})})
	dnsWithMax := der(asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true, Bytes: append(
		der(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: gnDNS, Bytes: []byte("example.com")}),
		der(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, Bytes: []byte{5}})...)})
	all := func(fs ...func(*x509.Certificate)) func(*x509.Certificate) {
		return func(c *x509.Certificate) {
			for _, f := range fs {
				f(c)
			}
		}
	}

	return []pathCase{
		{name: "baseline", ok: true},

		// Extended key usage, OpenSSL's check_purpose_ssl_server.
		{name: "leaf EKU clientAuth only", leaf: eku(x509.ExtKeyUsageClientAuth), reason: "depth 0 (CN=svc.example.com) has extended key usage clientAuth only, not serverAuth"},
		{name: "leaf EKU serverAuth and clientAuth", leaf: eku(x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth), ok: true},
		{name: "leaf no EKU", leaf: eku(), ok: true},
		{name: "leaf EKU anyExtendedKeyUsage only", leaf: eku(x509.ExtKeyUsageAny), reason: "anyExtendedKeyUsage only, not serverAuth"},
		{name: "leaf EKU nsSGC only", leaf: eku(x509.ExtKeyUsageNetscapeServerGatedCrypto), ok: true},
		{name: "leaf EKU unknown OID only", leaf: func(c *x509.Certificate) {
			c.ExtKeyUsage, c.UnknownExtKeyUsage = nil, []asn1.ObjectIdentifier{{1, 3, 6, 1, 4, 1, 99999, 1}}
		}, reason: "1.3.6.1.4.1.99999.1 only, not serverAuth"},
		{name: "leaf key usage keyCertSign only", leaf: func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageCertSign },
			reason: "none of digitalSignature, keyEncipherment and keyAgreement"},
		{name: "leaf Netscape type SSL client only", leaf: nsType(0x80), reason: "Netscape certificate type without SSL server"},
		{name: "leaf Netscape type SSL server", leaf: nsType(0x40), ok: true},
		{name: "intermediate EKU clientAuth only", inter: eku(x509.ExtKeyUsageClientAuth), reason: "depth 1 (CN=Path Issuer CA) has extended key usage clientAuth only"},
		{name: "intermediate EKU serverAuth", inter: eku(x509.ExtKeyUsageServerAuth), ok: true},
		{name: "intermediate EKU anyExtendedKeyUsage only", inter: eku(x509.ExtKeyUsageAny), reason: "depth 1 (CN=Path Issuer CA) has extended key usage anyExtendedKeyUsage only"},
		{name: "root EKU clientAuth, 2 1 1 presented", root: eku(x509.ExtKeyUsageClientAuth), reason: "depth 2 (CN=Path Root CA) has extended key usage clientAuth only"},
		{name: "root EKU clientAuth, 2 0 0", root: eku(x509.ExtKeyUsageClientAuth), anchor: "200", reason: "depth 2 (CN=Path Root CA)"},
		{name: "root EKU clientAuth, 2 1 0 bare key", root: eku(x509.ExtKeyUsageClientAuth), anchor: "210", ok: true},
		{name: "root EKU clientAuth above an intermediate anchor", root: eku(x509.ExtKeyUsageClientAuth), anchor: "inter", ok: true},

		// Critical extensions nobody here processes (RFC 5280 §4.2).
		{name: "leaf unknown critical extension", leaf: unknownExt(true), reason: "depth 0 (CN=svc.example.com) has a critical extension 1.3.6.1.4.1.99999.7 that this verifier does not process"},
		{name: "leaf unknown non-critical extension", leaf: unknownExt(false), ok: true},
		{name: "intermediate unknown critical extension", inter: unknownExt(true), reason: "depth 1 (CN=Path Issuer CA) has a critical extension 1.3.6.1.4.1.99999.7"},
		{name: "root unknown critical extension, 2 1 1 presented", root: unknownExt(true), reason: "depth 2 (CN=Path Root CA) has a critical extension"},
		{name: "root unknown critical extension, 2 0 0", root: unknownExt(true), anchor: "200", reason: "depth 2 (CN=Path Root CA) has a critical extension"},
		{name: "root unknown critical extension, 2 1 0 bare key", root: unknownExt(true), anchor: "210", ok: true},
		{name: "root unknown critical extension above an intermediate anchor", root: unknownExt(true), anchor: "inter", ok: true},
		{name: "leaf critical Netscape type SSL server", leaf: func(c *x509.Certificate) {
			nsType(0x40)(c)
			c.ExtraExtensions[len(c.ExtraExtensions)-1].Critical = true
		}, ok: true},

		// Path length.
		{name: "root pathlen 0, one intermediate", root: pathLen(0), reason: "depth 2 (CN=Path Root CA) has path length constraint 0, but 1 intermediate CA certificates are below it"},
		{name: "root pathlen 1, one intermediate", root: pathLen(1), ok: true},
		{name: "intermediate pathlen 0", inter: pathLen(0), ok: true},
		{name: "root pathlen 0, 2 0 0", root: pathLen(0), anchor: "200", reason: "path length constraint 0"},
		{name: "root pathlen 0, 2 1 0 bare key", root: pathLen(0), anchor: "210", ok: true},
		{name: "root pathlen 1, self-issued CA and intermediate", root: pathLen(1), selfIssued: true, ok: true},
		{name: "root pathlen 0, self-issued CA and intermediate", root: pathLen(0), selfIssued: true, reason: "depth 3 (CN=Path Root CA) has path length constraint 0, but 1 intermediate"},

		// Name constraints: DNS.
		{name: "permitted example.com, leaf svc.example.com", inter: permitDNS("example.com"), ok: true},
		{name: "permitted example.com, leaf svc.other.com", inter: permitDNS("example.com"), leaf: dns("svc.other.com"), name0: "svc.other.com",
			reason: `depth 0 (CN=svc.example.com) has DNS name "svc.other.com", outside the permitted name constraints (example.com) of the CA certificate at depth 1 (CN=Path Issuer CA)`},
		{name: "permitted .example.com, leaf example.com", inter: permitDNS(".example.com"), leaf: dns("example.com"), name0: "example.com", reason: "outside the permitted"},
		{name: "permitted .example.com, leaf svc.example.com", inter: permitDNS(".example.com"), ok: true},
		{name: "permitted example.com, leaf notexample.com", inter: permitDNS("example.com"), leaf: dns("notexample.com"), name0: "notexample.com", reason: "outside the permitted"},
		{name: "permitted EXAMPLE.com, leaf svc.example.COM", inter: permitDNS("EXAMPLE.com"), leaf: dns("svc.example.COM"), ok: true},
		{name: "excluded bad.example.com, leaf x.bad.example.com", inter: excludeDNS("bad.example.com"), leaf: dns("x.bad.example.com"), name0: "x.bad.example.com",
			reason: `DNS name "x.bad.example.com", within the excluded name constraint "bad.example.com"`},
		{name: "excluded bad.example.com, leaf svc.example.com", inter: excludeDNS("bad.example.com"), ok: true},
		{name: "second SAN outside permitted", inter: permitDNS("example.com"), leaf: dns(testName, "svc.other.com"), reason: `"svc.other.com", outside`},
		{name: "wildcard leaf under permitted", inter: permitDNS("example.com"), leaf: dns("*.example.com"), ok: true},
		{name: "intermediate SAN outside the root's constraint", root: permitDNS("example.com"), inter: dns("ca.other.com"),
			reason: `depth 1 (CN=Path Issuer CA) has DNS name "ca.other.com", outside the permitted name constraints (example.com) of the CA certificate at depth 2`},
		{name: "root permitted other.com, 2 1 1 presented", root: permitDNS("other.com"), reason: "of the CA certificate at depth 2 (CN=Path Root CA)"},
		{name: "root permitted other.com, 2 0 0", root: permitDNS("other.com"), anchor: "200", reason: "of the CA certificate at depth 2 (CN=Path Root CA)"},
		{name: "root permitted other.com, 2 1 0 bare key", root: permitDNS("other.com"), anchor: "210", ok: true},
		{name: "root permitted other.com above an intermediate anchor", root: permitDNS("other.com"), anchor: "inter", ok: true},

		// Name constraints: IP addresses.
		{name: "IP permitted 192.0.2.0/24", inter: func(c *x509.Certificate) { c.PermittedIPRanges = []*net.IPNet{cidr("192.0.2.0/24")} }, leaf: withIP, ok: true},
		{name: "IP permitted 198.51.100.0/24", inter: func(c *x509.Certificate) { c.PermittedIPRanges = []*net.IPNet{cidr("198.51.100.0/24")} }, leaf: withIP,
			reason: "IP address 192.0.2.10, outside the permitted name constraints (198.51.100.0/24)"},
		{name: "IP excluded 192.0.2.0/28", inter: func(c *x509.Certificate) { c.ExcludedIPRanges = []*net.IPNet{cidr("192.0.2.0/28")} }, leaf: withIP,
			reason: "IP address 192.0.2.10, within the excluded name constraint 192.0.2.0/28"},
		{name: "IPv4 name, only an IPv6 constraint", inter: func(c *x509.Certificate) { c.PermittedIPRanges = []*net.IPNet{cidr("2001:db8::/32")} }, leaf: withIP,
			reason: "outside the permitted name constraints (2001:db8::/32)"},
		{name: "IP name, only DNS constraints", inter: permitDNS("example.com"), leaf: withIP, ok: true},

		// Name constraints: email and URI.
		{name: "email permitted example.com", inter: func(c *x509.Certificate) { c.PermittedEmailAddresses = []string{"example.com"} },
			leaf: func(c *x509.Certificate) { c.EmailAddresses = []string{"ops@example.com"} }, ok: true},
		{name: "email permitted other.com", inter: func(c *x509.Certificate) { c.PermittedEmailAddresses = []string{"other.com"} },
			leaf: func(c *x509.Certificate) { c.EmailAddresses = []string{"ops@example.com"} }, reason: `email address "ops@example.com", outside`},
		{name: "URI permitted .example.com", inter: func(c *x509.Certificate) { c.PermittedURIDomains = []string{".example.com"} },
			leaf: func(c *x509.Certificate) {
				c.URIs = []*url.URL{{Scheme: "https", Host: "svc.example.com:8443", Path: "/x"}}
			}, ok: true},
		{name: "URI permitted other.com", inter: func(c *x509.Certificate) { c.PermittedURIDomains = []string{"other.com"} },
			leaf: func(c *x509.Certificate) { c.URIs = []*url.URL{{Scheme: "https", Host: "svc.example.com", Path: "/x"}} }, reason: "outside the permitted"},

		// Constraints this package does not evaluate.
		{name: "directoryName constraint the leaf is outside", inter: rawNC(otherDirName), reason: "permitted directoryName name constraint, which this verifier does not evaluate"},
		{name: "directoryName constraint the leaf is within", inter: rawNC(dirName), reason: "directoryName", diverge: true},
		{name: "DNS subtree with a maximum", inter: rawNC(dnsWithMax), reason: "with a minimum or maximum"},
		{name: "all at once, satisfied", root: all(pathLen(1), permitDNS("example.com"), eku(x509.ExtKeyUsageServerAuth)),
			inter: all(pathLen(0), excludeDNS("bad.example.com"), eku(x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)), anchor: "200", ok: true},
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

func TestMatchDNSConstraint(t *testing.T) {
	for _, tc := range []struct {
		name, base string
		want       bool
	}{
		{"example.com", "example.com", true},
		{"a.example.com", "example.com", true},
		{"a.b.example.com", "example.com", true},
		{"notexample.com", "example.com", false},
		{"example.com", ".example.com", false},
		{"a.example.com", ".example.com", true},
		{"A.Example.COM", "example.com", true},
		{"com", "example.com", false},
		{"anything", "", true},
		{"*.example.com", "example.com", true},
		{"*.example.com", "a.example.com", false},
		{"example.com.evil", "example.com", false},
	} {
		if got := matchDNS(tc.name, tc.base); got != tc.want {
			t.Errorf("matchDNS(%q, %q) = %v, want %v", tc.name, tc.base, got, tc.want)
		}
	}
	for _, tc := range []struct {
		addr, base string
		want       bool
	}{
		{"ops@example.com", "example.com", true},
		{"ops@a.example.com", "example.com", false},
		{"ops@a.example.com", ".example.com", true},
		{"ops@example.com", ".example.com", false},
		{"ops@example.com", "ops@EXAMPLE.com", true},
		{"Ops@example.com", "ops@example.com", false},
		{"ops@example.com", "@example.com", true},
		{"no-at-sign", "example.com", false},
	} {
		if got := matchEmail(tc.addr, tc.base); got != tc.want {
			t.Errorf("matchEmail(%q, %q) = %v, want %v", tc.addr, tc.base, got, tc.want)
		}
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
