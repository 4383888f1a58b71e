package tlsa

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestClientPurpose: a TLS client's DANE-TA path (PurposeClient,
// draft-ietf-dance-client-auth §5) is checked as OpenSSL's
// check_purpose_ssl_client checks it: clientAuth where an extended key
// usage is present (leaf and CAs), a leaf key usage allowing
// digitalSignature or keyAgreement, a Netscape type with SSL client.
func TestClientPurpose(t *testing.T) {
	nsType := func(bits byte) func(*x509.Certificate) {
		return func(c *x509.Certificate) {
			v, _ := asn1.Marshal(asn1.BitString{Bytes: []byte{bits}, BitLength: 8})
			c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: oidNetscapeCertType, Value: v})
		}
	}
	for _, tc := range []pathCase{
		{name: "RFC 5280 §4.2.1.12 leaf EKU clientAuth only", leaf: withEKU(x509.ExtKeyUsageClientAuth), ok: true},
		{name: "RFC 5280 §4.2.1.12 leaf EKU serverAuth only", leaf: withEKU(x509.ExtKeyUsageServerAuth), reason: "depth 0 (CN=svc.example.com) has extended key usage serverAuth only, not clientAuth"},
		{name: "RFC 5280 §4.2.1.12 leaf EKU anyExtendedKeyUsage only", leaf: withEKU(x509.ExtKeyUsageAny), reason: "anyExtendedKeyUsage only, not clientAuth"},
		{name: "RFC 5280 §4.2.1.12 leaf no EKU", leaf: withEKU(), ok: true},
		{name: "RFC 5280 §4.2.1.3 leaf key usage keyEncipherment only (a client never decrypts)", leaf: func(c *x509.Certificate) {
			c.ExtKeyUsage, c.KeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, x509.KeyUsageKeyEncipherment
		}, reason: "neither digitalSignature nor keyAgreement"},
		{name: "leaf Netscape type SSL server only", leaf: allOf(withEKU(x509.ExtKeyUsageClientAuth), nsType(0x40)), reason: "Netscape certificate type without SSL client"},
		{name: "leaf Netscape type SSL client", leaf: allOf(withEKU(x509.ExtKeyUsageClientAuth), nsType(0x80)), ok: true},
		{name: "intermediate EKU serverAuth only", leaf: withEKU(x509.ExtKeyUsageClientAuth), inter: withEKU(x509.ExtKeyUsageServerAuth), reason: "depth 1 (CN=Path Issuer CA) has extended key usage serverAuth only, not clientAuth"},
		{name: "intermediate EKU clientAuth", leaf: withEKU(x509.ExtKeyUsageClientAuth), inter: withEKU(x509.ExtKeyUsageClientAuth), ok: true},
		{name: "root EKU serverAuth, 2 1 1 presented", leaf: withEKU(x509.ExtKeyUsageClientAuth), root: withEKU(x509.ExtKeyUsageServerAuth), reason: "depth 2 (CN=Path Root CA) has extended key usage serverAuth only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.build(t)
			_, err := Verify(Options{Chain: b.chain, Records: []Record{b.record}, Names: []string{b.name}, Purpose: PurposeClient})
			if tc.ok {
				if err != nil {
					t.Fatalf("want success, got %v", err)
				}
				return
			}
			var ce *ChainError
			if !errors.As(err, &ce) || !strings.Contains(ce.Reason, tc.reason) {
				t.Fatalf("got %v, want a *ChainError containing %q", err, tc.reason)
			}
		})
	}
}

// TestClientPurposePKIX: PKIX-EE(1) for a client validates the chain for
// clientAuth (crypto/x509 KeyUsages), not serverAuth.
func TestClientPurposePKIX(t *testing.T) {
	for _, tc := range []struct {
		name    string
		eku     x509.ExtKeyUsage
		purpose Purpose
		ok      bool
	}{
		{"RFC 6698 §2.1.1 PKIX-EE, clientAuth leaf, client purpose", x509.ExtKeyUsageClientAuth, PurposeClient, true},
		{"RFC 6698 §2.1.1 PKIX-EE, serverAuth leaf, client purpose", x509.ExtKeyUsageServerAuth, PurposeClient, false},
		{"RFC 6698 §2.1.1 PKIX-EE, clientAuth leaf, server purpose", x509.ExtKeyUsageClientAuth, PurposeServer, false},
		{"RFC 6698 §2.1.1 PKIX-EE, serverAuth leaf, server purpose", x509.ExtKeyUsageServerAuth, PurposeServer, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := pathCase{leaf: withEKU(tc.eku)}.build(t)
			roots := x509.NewCertPool()
			roots.AddCert(b.chain[len(b.chain)-1])
			r := rec(PKIXEE, SPKI, SHA256, b.chain[0])
			_, err := Verify(Options{Chain: b.chain, Records: []Record{r}, Names: []string{b.name}, Roots: roots, Purpose: tc.purpose, Time: time.Now()})
			if (err == nil) != tc.ok {
				t.Fatalf("Verify: %v, want ok=%v", err, tc.ok)
			}
			var pe *PKIXError
			if !tc.ok && !errors.As(err, &pe) {
				t.Fatalf("got %v, want a *PKIXError", err)
			}
		})
	}
}
