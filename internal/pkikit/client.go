package pkikit

import (
	"crypto/x509"
	"time"
)

// Client certificates, for DANE client authentication
// (draft-ietf-dance-client-auth): the same leaves as NewLeaf and
// SelfSigned, but for the clientAuth extended key usage, which a TLS
// server asks of a client's chain.

// NewClientLeaf makes a client certificate for names (the first is also
// the common name), issued by ca, with a new key, presented with ca.Chain.
func (ca *Issuer) NewClientLeaf(names ...string) (*Leaf, error) {
	l, err := issue(ca, nil, clientTemplate(names), 24*time.Hour)
	if err != nil {
		return nil, err
	}
	return &Leaf{Cert: l.Cert, Key: l.Key, Chain: ca.Chain}, nil
}

// SelfSignedClient makes a self-signed client certificate for names, with
// a new key: all a DANE-EE(3) record needs (RFC 7671 §5.1).
func SelfSignedClient(names ...string) (*Leaf, error) {
	l, err := issue(nil, nil, clientTemplate(names), 24*time.Hour)
	if err != nil {
		return nil, err
	}
	return &Leaf{Cert: l.Cert, Key: l.Key}, nil
}

func clientTemplate(names []string) *x509.Certificate {
	t := leafTemplate(names)
	t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return t
}
