// Package pkikit builds throw-away X.509 PKIs for tests, benchmarks and the
// offline demo: ECDSA P-256 root and intermediate CAs, server certificates
// they issue or that sign themselves, their PEM encodings, and the SHA-256
// SubjectPublicKeyInfo digests that TLSA records with selector 1 and
// matching type 1 pin (RFC 6698 §2.1.2, §2.1.3).
//
// Every certificate is valid from an hour ago (clock skew) to 48 hours
// ahead for a root, 24 hours for the others, and has a random serial.
// Nothing here is fit for a real PKI: the keys never leave memory unless a
// caller writes them out.
//
// It is the certificate-side sibling of zonekit, which builds the signed
// DNS zones that publish such digests.
package pkikit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"time"
)

// Issuer is a CA: its certificate and key, and the intermediates a server
// presents after a leaf this CA issued.
type Issuer struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// Chain is Cert followed by its issuers' chains, roots excluded: empty
	// for a root, [intermediate] for an intermediate under a root.
	Chain []*x509.Certificate
}

// Leaf is a server certificate, its key, and the chain it is presented
// with (intermediates, root excluded).
type Leaf struct {
	Cert  *x509.Certificate
	Key   *ecdsa.PrivateKey
	Chain []*x509.Certificate
}

// NewKey makes an ECDSA P-256 key.
func NewKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

// NewRoot makes a self-signed root CA named cn.
func NewRoot(cn string) (*Issuer, error) {
	return issue(nil, nil, &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, 48*time.Hour)
}

// NewIntermediate makes a CA named cn, issued by ca, that may issue only
// leaves (path length 0).
func (ca *Issuer) NewIntermediate(cn string) (*Issuer, error) {
	in, err := issue(ca, nil, &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	in.Chain = append([]*x509.Certificate{in.Cert}, ca.Chain...)
	return in, nil
}

// NewLeaf makes a server certificate for names (the first is also the
// common name), issued by ca, with a new key, presented with ca.Chain.
func (ca *Issuer) NewLeaf(names ...string) (*Leaf, error) {
	l, err := issue(ca, nil, leafTemplate(names), 24*time.Hour)
	if err != nil {
		return nil, err
	}
	return &Leaf{Cert: l.Cert, Key: l.Key, Chain: ca.Chain}, nil
}

// SelfSigned makes a self-signed server certificate for names with key, or
// with a new key if key is nil: all a DANE-EE(3) record needs, since it
// ignores issuers, names and dates (RFC 7671 §5.1).
func SelfSigned(key *ecdsa.PrivateKey, names ...string) (*Leaf, error) {
	l, err := issue(nil, key, leafTemplate(names), 24*time.Hour)
	if err != nil {
		return nil, err
	}
	return &Leaf{Cert: l.Cert, Key: l.Key}, nil
}

func leafTemplate(names []string) *x509.Certificate {
	t := &x509.Certificate{
		DNSNames:              names,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if len(names) > 0 {
		t.Subject.CommonName = names[0]
	}
	return t
}

// issue signs tmpl with parent's key (self-signed if parent is nil) for
// key (a new one if nil), valid from an hour ago for life.
func issue(parent *Issuer, key *ecdsa.PrivateKey, tmpl *x509.Certificate, life time.Duration) (*Issuer, error) {
	if key == nil {
		var err error
		if key, err = NewKey(); err != nil {
			return nil, err
		}
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(life)
	signerCert, signerKey := tmpl, key
	if parent != nil {
		signerCert, signerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signerKey)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Issuer{Cert: cert, Key: key}, nil
}

// TLS returns the certificate for a tls.Config: the leaf, then its chain.
func (l *Leaf) TLS() tls.Certificate {
	c := tls.Certificate{PrivateKey: l.Key, Leaf: l.Cert, Certificate: [][]byte{l.Cert.Raw}}
	for _, ic := range l.Chain {
		c.Certificate = append(c.Certificate, ic.Raw)
	}
	return c
}

// TLSA311 is the RDATA of the DANE-EE record that pins the leaf's key:
// "3 1 1 <SHA-256 of its SubjectPublicKeyInfo, hex>".
func (l *Leaf) TLSA311() string { return "3 1 1 " + SPKISHA256(l.Cert) }

// SPKISHA256 is the association data of a TLSA record with selector 1
// (SPKI) and matching type 1 (SHA-256): the hex SHA-256 of the
// certificate's SubjectPublicKeyInfo (RFC 6698 §2.1.2, §2.1.3).
func SPKISHA256(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// PEM encodes certificates as consecutive CERTIFICATE blocks.
func PEM(certs ...*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}

// WritePEM writes PEM(certs...) to path (mode 0644), for OpenSSL, curl
// or a tls_trust_pool file.
func WritePEM(path string, certs ...*x509.Certificate) error {
	if err := os.WriteFile(path, PEM(certs...), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// KeyPEM encodes key as an "EC PRIVATE KEY" block (SEC 1, RFC 5915).
func KeyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}
