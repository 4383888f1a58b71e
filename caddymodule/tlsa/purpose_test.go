package tlsa

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
)

// purposeCases are the path cases of purpose.go: the TLS server purpose
// (extended key usage, key usage, Netscape certificate type), critical
// extensions and path length.
func purposeCases() []pathCase {
	nsType := func(bits byte) func(*x509.Certificate) {
		return func(c *x509.Certificate) {
			v, _ := asn1.Marshal(asn1.BitString{Bytes: []byte{bits}, BitLength: 8})
			c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: oidNetscapeCertType, Value: v})
		}
	}

	return []pathCase{
		// Extended key usage, OpenSSL's check_purpose_ssl_server. The leaf
		// rows follow RFC 5280 §4.2.1.12 (an application may require that a
		// particular purpose be listed); the CA rows and the Netscape
		// certificate type are OpenSSL's rules, not an RFC's.
		{name: "RFC 5280 §4.2.1.12 leaf EKU clientAuth only", leaf: withEKU(x509.ExtKeyUsageClientAuth), reason: "depth 0 (CN=svc.example.com) has extended key usage clientAuth only, not serverAuth"},
		{name: "RFC 5280 §4.2.1.12 leaf EKU serverAuth and clientAuth", leaf: withEKU(x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth), ok: true},
		{name: "RFC 5280 §4.2.1.12 leaf no EKU", leaf: withEKU(), ok: true},
		{name: "RFC 5280 §4.2.1.12 leaf EKU anyExtendedKeyUsage only", leaf: withEKU(x509.ExtKeyUsageAny), reason: "anyExtendedKeyUsage only, not serverAuth"},
		{name: "RFC 5280 §4.2.1.12 leaf EKU nsSGC only", leaf: withEKU(x509.ExtKeyUsageNetscapeServerGatedCrypto), ok: true},
		{name: "RFC 5280 §4.2.1.12 leaf EKU unknown OID only", leaf: func(c *x509.Certificate) {
			c.ExtKeyUsage, c.UnknownExtKeyUsage = nil, []asn1.ObjectIdentifier{{1, 3, 6, 1, 4, 1, 99999, 1}}
		}, reason: "1.3.6.1.4.1.99999.1 only, not serverAuth"},
		{name: "RFC 5280 §4.2.1.3 leaf key usage keyCertSign only", leaf: func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageCertSign },
			reason: "none of digitalSignature, keyEncipherment and keyAgreement"},
		{name: "leaf Netscape type SSL client only", leaf: nsType(0x80), reason: "Netscape certificate type without SSL server"},
		{name: "leaf Netscape type SSL server", leaf: nsType(0x40), ok: true},
		{name: "intermediate EKU clientAuth only", inter: withEKU(x509.ExtKeyUsageClientAuth), reason: "depth 1 (CN=Path Issuer CA) has extended key usage clientAuth only"},
		{name: "intermediate EKU serverAuth", inter: withEKU(x509.ExtKeyUsageServerAuth), ok: true},
		{name: "intermediate EKU anyExtendedKeyUsage only", inter: withEKU(x509.ExtKeyUsageAny), reason: "depth 1 (CN=Path Issuer CA) has extended key usage anyExtendedKeyUsage only"},
		{name: "root EKU clientAuth, 2 1 1 presented", root: withEKU(x509.ExtKeyUsageClientAuth), reason: "depth 2 (CN=Path Root CA) has extended key usage clientAuth only"},
		{name: "root EKU clientAuth, 2 0 0", root: withEKU(x509.ExtKeyUsageClientAuth), anchor: "200", reason: "depth 2 (CN=Path Root CA)"},
		{name: "root EKU clientAuth, 2 1 0 bare key", root: withEKU(x509.ExtKeyUsageClientAuth), anchor: "210", ok: true},
		{name: "root EKU clientAuth above an intermediate anchor", root: withEKU(x509.ExtKeyUsageClientAuth), anchor: "inter", ok: true},

		// Critical extensions nobody here processes (RFC 5280 §4.2).
		{name: "RFC 5280 §4.2 leaf unknown critical extension", leaf: unknownExt(true), reason: "depth 0 (CN=svc.example.com) has a critical extension 1.3.6.1.4.1.99999.7 that this verifier does not process"},
		{name: "RFC 5280 §4.2 leaf unknown non-critical extension", leaf: unknownExt(false), ok: true},
		{name: "RFC 5280 §4.2 intermediate unknown critical extension", inter: unknownExt(true), reason: "depth 1 (CN=Path Issuer CA) has a critical extension 1.3.6.1.4.1.99999.7"},
		{name: "RFC 5280 §4.2 root unknown critical extension, 2 1 1 presented", root: unknownExt(true), reason: "depth 2 (CN=Path Root CA) has a critical extension"},
		{name: "RFC 5280 §4.2 root unknown critical extension, 2 0 0", root: unknownExt(true), anchor: "200", reason: "depth 2 (CN=Path Root CA) has a critical extension"},
		{name: "RFC 5280 §4.2 root unknown critical extension, 2 1 0 bare key", root: unknownExt(true), anchor: "210", ok: true},
		{name: "RFC 5280 §4.2 root unknown critical extension above an intermediate anchor", root: unknownExt(true), anchor: "inter", ok: true},
		{name: "RFC 5280 §4.2 leaf critical Netscape type SSL server", leaf: func(c *x509.Certificate) {
			nsType(0x40)(c)
			c.ExtraExtensions[len(c.ExtraExtensions)-1].Critical = true
		}, ok: true},

		// Path length.
		{name: "RFC 5280 §4.2.1.9 root pathlen 0, one intermediate", root: withPathLen(0), reason: "depth 2 (CN=Path Root CA) has path length constraint 0, but 1 intermediate CA certificates are below it"},
		{name: "RFC 5280 §4.2.1.9 root pathlen 1, one intermediate", root: withPathLen(1), ok: true},
		{name: "RFC 5280 §4.2.1.9 intermediate pathlen 0", inter: withPathLen(0), ok: true},
		{name: "RFC 5280 §4.2.1.9 root pathlen 0, 2 0 0", root: withPathLen(0), anchor: "200", reason: "path length constraint 0"},
		{name: "RFC 5280 §4.2.1.9 root pathlen 0, 2 1 0 bare key", root: withPathLen(0), anchor: "210", ok: true},
		{name: "RFC 5280 §4.2.1.9 root pathlen 1, self-issued CA and intermediate", root: withPathLen(1), selfIssued: true, ok: true},
		{name: "RFC 5280 §4.2.1.9 root pathlen 0, self-issued CA and intermediate", root: withPathLen(0), selfIssued: true, reason: "depth 3 (CN=Path Root CA) has path length constraint 0, but 1 intermediate"},
	}
}
