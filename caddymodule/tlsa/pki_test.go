package tlsa

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"sync"
	"testing"
	"time"
)

// Test certificates: ECDSA P-256 root CA → intermediate CA → leaf for
// testName, valid from 2020 to 2040, verified at testTime.
const testName = "svc.example.com"

var (
	testTime     = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	validFrom    = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	validUntil   = time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)
	expiredAfter = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
)

type testPKI struct {
	root, inter, leaf *x509.Certificate
	// badInter has the intermediate's name but another key: the leaf's
	// signature does not verify with it.
	badInter *x509.Certificate
	// expiredLeaf is issued by inter but expired before testTime;
	// expiredInter is an expired intermediate with inter's name and key.
	expiredLeaf, expiredInter *x509.Certificate
	// otherLeaf is issued by inter for another name.
	otherLeaf *x509.Certificate
	roots     *x509.CertPool
}

var (
	pkiOnce sync.Once
	pkiVal  *testPKI
)

// newTestPKI builds the test PKI once per process: key generation is the
// slow part of these tests.
func newTestPKI(tb testing.TB) *testPKI {
	tb.Helper()
	pkiOnce.Do(func() { pkiVal = buildTestPKI(tb) })
	if pkiVal == nil {
		tb.Fatal("test PKI could not be built")
	}
	return pkiVal
}

func buildTestPKI(tb testing.TB) *testPKI {
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		return k
	}
	rootKey, interKey, leafKey, badKey := key(), key(), key(), key()
	p := &testPKI{}
	p.root = mkCert(tb, caTemplate(1, "Test Root CA", validUntil), nil, &rootKey.PublicKey, rootKey)
	p.inter = mkCert(tb, caTemplate(2, "Test Issuer CA", validUntil), p.root, &interKey.PublicKey, rootKey)
	p.badInter = mkCert(tb, caTemplate(3, "Test Issuer CA", validUntil), p.root, &badKey.PublicKey, rootKey)
	p.expiredInter = mkCert(tb, caTemplate(4, "Test Issuer CA", expiredAfter), p.root, &interKey.PublicKey, rootKey)
	p.leaf = mkCert(tb, leafTemplate(5, testName, validUntil), p.inter, &leafKey.PublicKey, interKey)
	p.expiredLeaf = mkCert(tb, leafTemplate(6, testName, expiredAfter), p.inter, &leafKey.PublicKey, interKey)
	p.otherLeaf = mkCert(tb, leafTemplate(7, "other.example.net", validUntil), p.inter, &leafKey.PublicKey, interKey)
	p.roots = x509.NewCertPool()
	p.roots.AddCert(p.root)
	return p
}

func caTemplate(serial int64, cn string, notAfter time.Time) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             validFrom,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
}

func leafTemplate(serial int64, name string, notAfter time.Time) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             validFrom,
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
}

func mkCert(tb testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	tb.Helper()
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// assoc computes the certificate association data of c for a selector and
// matching type, independently of the code under test.
func assoc(c *x509.Certificate, s Selector, m MatchingType) []byte {
	content := c.Raw
	if s == SPKI {
		content = c.RawSubjectPublicKeyInfo
	}
	switch m {
	case SHA256:
		sum := sha256.Sum256(content)
		return sum[:]
	case SHA512:
		sum := sha512.Sum512(content)
		return sum[:]
	}
	return append([]byte(nil), content...)
}

// rec builds the record of usage u, selector s and matching type m for c.
func rec(u Usage, s Selector, m MatchingType, c *x509.Certificate) Record {
	return Record{Usage: u, Selector: s, MatchingType: m, Data: assoc(c, s, m)}
}
