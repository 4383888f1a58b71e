package tlsa

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"slices"
	"strings"
)

// Netscape certificate type bits for an SSL server and an SSL client
// (OpenSSL's NS_SSL_SERVER, NS_SSL_CLIENT).
const (
	nsSSLServer = 0x40
	nsSSLClient = 0x80
)

// Purpose is the role of the peer whose chain is verified. RFC 7671 is
// about TLS servers; draft-ietf-dance-client-auth (§4, §8.2) matches a TLS
// client's certificate against its TLSA records "according to the rules
// specified in the DANE TLS protocol", which leaves the purpose a path
// must allow to the role: OpenSSL's "sslserver" or "sslclient".
type Purpose int

const (
	// PurposeServer (the zero value) verifies a TLS server: serverAuth.
	PurposeServer Purpose = iota
	// PurposeClient verifies a TLS client: clientAuth.
	PurposeClient
)

// checkPurpose is OpenSSL's check_purpose_ssl_server (or, for
// PurposeClient, check_purpose_ssl_client) for the certificate at depth
// i; CA-ness is left to the signature checks.
func checkPurpose(i int, c *x509.Certificate, ext *extensions, p Purpose) string {
	if p == PurposeClient {
		return checkClientPurpose(i, c, ext)
	}
	if ext.extKeyUsage && !allowsServerAuth(c) {
		return fmt.Sprintf("the certificate at depth %d (%s) has extended key usage %s, not serverAuth",
			i, subjectOf(c), describeEKU(c))
	}
	if i > 0 {
		return ""
	}
	if ext.nsCertType >= 0 && ext.nsCertType&nsSSLServer == 0 {
		return fmt.Sprintf("the certificate at depth 0 (%s) has a Netscape certificate type without SSL server", subjectOf(c))
	}
	const tls = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement
	if c.KeyUsage != 0 && c.KeyUsage&tls == 0 {
		return fmt.Sprintf("the certificate at depth 0 (%s) has a key usage that allows none of digitalSignature, keyEncipherment and keyAgreement",
			subjectOf(c))
	}
	return ""
}

// checkClientPurpose is OpenSSL's check_purpose_ssl_client: an extended
// key usage, on the leaf or a CA of the path, must list clientAuth
// (xku_reject with XKU_SSL_CLIENT: anyExtendedKeyUsage does not do); the
// leaf's key usage, when present, must allow digitalSignature or
// keyAgreement (a client signs CertificateVerify, it never decrypts), and
// its Netscape certificate type, when present, must include SSL client.
func checkClientPurpose(i int, c *x509.Certificate, ext *extensions) string {
	if ext.extKeyUsage && !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return fmt.Sprintf("the certificate at depth %d (%s) has extended key usage %s, not clientAuth",
			i, subjectOf(c), describeEKU(c))
	}
	if i > 0 {
		return ""
	}
	if ext.nsCertType >= 0 && ext.nsCertType&nsSSLClient == 0 {
		return fmt.Sprintf("the certificate at depth 0 (%s) has a Netscape certificate type without SSL client", subjectOf(c))
	}
	const tls = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement
	if c.KeyUsage != 0 && c.KeyUsage&tls == 0 {
		return fmt.Sprintf("the certificate at depth 0 (%s) has a key usage that allows neither digitalSignature nor keyAgreement",
			subjectOf(c))
	}
	return ""
}

// extKeyUsage is the extended key usage PKIX validation asks of a peer
// with purpose p.
func (p Purpose) extKeyUsage() x509.ExtKeyUsage {
	if p == PurposeClient {
		return x509.ExtKeyUsageClientAuth
	}
	return x509.ExtKeyUsageServerAuth
}

// allowsServerAuth: OpenSSL accepts serverAuth and the two Server Gated
// Crypto usages (XKU_SSL_SERVER | XKU_SGC), and nothing else, not even
// anyExtendedKeyUsage.
func allowsServerAuth(c *x509.Certificate) bool {
	for _, u := range c.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageNetscapeServerGatedCrypto, x509.ExtKeyUsageMicrosoftServerGatedCrypto:
			return true
		}
	}
	return false
}

var ekuNames = map[x509.ExtKeyUsage]string{
	x509.ExtKeyUsageAny:                            "anyExtendedKeyUsage",
	x509.ExtKeyUsageServerAuth:                     "serverAuth",
	x509.ExtKeyUsageClientAuth:                     "clientAuth",
	x509.ExtKeyUsageCodeSigning:                    "codeSigning",
	x509.ExtKeyUsageEmailProtection:                "emailProtection",
	x509.ExtKeyUsageIPSECEndSystem:                 "ipsecEndSystem",
	x509.ExtKeyUsageIPSECTunnel:                    "ipsecTunnel",
	x509.ExtKeyUsageIPSECUser:                      "ipsecUser",
	x509.ExtKeyUsageTimeStamping:                   "timeStamping",
	x509.ExtKeyUsageOCSPSigning:                    "OCSPSigning",
	x509.ExtKeyUsageMicrosoftServerGatedCrypto:     "msSGC",
	x509.ExtKeyUsageNetscapeServerGatedCrypto:      "nsSGC",
	x509.ExtKeyUsageMicrosoftCommercialCodeSigning: "msCodeCom",
	x509.ExtKeyUsageMicrosoftKernelCodeSigning:     "msKernelCode",
}

func describeEKU(c *x509.Certificate) string {
	var names []string
	for _, u := range c.ExtKeyUsage {
		n, ok := ekuNames[u]
		if !ok {
			n = fmt.Sprintf("#%d", int(u))
		}
		names = append(names, n)
	}
	for _, oid := range c.UnknownExtKeyUsage {
		names = append(names, oid.String())
	}
	switch len(names) {
	case 0:
		return "(empty)"
	case 1:
		return names[0] + " only"
	}
	return clip(strings.Join(names, ", "))
}

// unhandledCritical returns the first critical extension of c that
// neither crypto/x509 nor this package processes, or nil. RFC 5280 §4.2: a
// path with a critical extension the verifier does not recognise must be
// rejected (OpenSSL: X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION, for every
// certificate on the path, the anchor certificate included). Name
// constraints (nameconstraints.go) and the Netscape certificate type
// (checkPurpose) are evaluated by this package even when crypto/x509
// lists them as unhandled (a directoryName constraint, say), so they are
// not counted.
func unhandledCritical(c *x509.Certificate) asn1.ObjectIdentifier {
	for _, oid := range c.UnhandledCriticalExtensions {
		if oid.Equal(oidNameConstraints) || oid.Equal(oidNetscapeCertType) {
			continue
		}
		return oid
	}
	return nil
}

// checkPathLen is the basic constraints path length check (RFC 5280
// §4.2.1.9, x509_vfy.c check_extensions) of the certificate at depth i of
// path: a CA's pathLenConstraint bounds the number of intermediate CA
// certificates below it on the path that are not self-issued.
func checkPathLen(path []*x509.Certificate, i int) string {
	c := path[i]
	if i >= 2 && c.BasicConstraintsValid && (c.MaxPathLen > 0 || c.MaxPathLenZero) {
		below := 0 // intermediate CAs between the leaf and c, self-issued ones not counted
		for _, d := range path[1:i] {
			if !selfIssued(d) {
				below++
			}
		}
		if below > c.MaxPathLen {
			return fmt.Sprintf("the CA certificate at depth %d (%s) has path length constraint %d, but %d intermediate CA certificates are below it",
				i, subjectOf(c), c.MaxPathLen, below)
		}
	}
	return ""
}
