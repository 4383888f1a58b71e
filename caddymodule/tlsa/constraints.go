package tlsa

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
)

// checkPathConstraints applies to a DANE-TA path (leaf first, anchor
// certificate last when the anchor is one) the checks OpenSSL's
// X509_verify_cert makes on the same path when libssl verifies a server
// (purpose "sslserver"; "sslclient" for PurposeClient, a client verified
// by draft-ietf-dance-client-auth), beyond the signatures and dates
// finishTA checks.
// It is the one entry point; each check lives in the file of its concern,
// as OpenSSL splits v3_purp.c from v3_ncons.c:
//
//  1. the purpose (purpose.go, checkPurpose; v3_purp.c
//     check_purpose_ssl_server): a certificate with an extended key usage
//     extension must list serverAuth or one of the two Server Gated
//     Crypto usages. That holds for the CA certificates on the path as
//     well as for the leaf, and anyExtendedKeyUsage alone does not do:
//     OpenSSL's xku_reject only accepts those three bits. The leaf's key
//     usage, when present, must allow digitalSignature, keyEncipherment or
//     keyAgreement, and its legacy Netscape certificate type, when
//     present, must include SSL server. (That CAs can sign certificates,
//     basic constraints and keyCertSign, is checked with the signatures,
//     by crypto/x509's CheckSignatureFrom.)
//  2. basic constraints path length (purpose.go, checkPathLen; RFC 5280
//     §4.2.1.9, x509_vfy.c check_extensions): a CA's pathLenConstraint
//     bounds the number of intermediate CA certificates below it on the
//     path that are not self-issued.
//  3. name constraints (nameconstraints.go, checkPathNameConstraints;
//     RFC 5280 §4.2.1.10, x509_vfy.c check_name_constraints, v3_ncons.c):
//     the constraints of every CA on the path, the anchor certificate
//     included, apply to every certificate below it that is not
//     self-issued (the leaf always). DNS, IP address, email (SANs and
//     emailAddress attributes of the subject) and URI names are evaluated
//     with OpenSSL's matching rules. Other constraint types
//     (directoryName, otherName, ...) and subtrees with a minimum or
//     maximum are not evaluated: a CA carrying one fails the path, whether
//     the extension is critical or not.
//  4. critical extensions (purpose.go, unhandledCritical; RFC 5280 §4.2,
//     x509_vfy.c check_chain_extensions): a certificate on the path with a
//     critical extension that neither crypto/x509 nor this package
//     processes fails it.
//
// Per certificate, leaf first, an undecodable extension is refused first,
// then 4, 1 and 2; 3 runs over the whole path afterwards, the topmost CA
// first. The first failure is the reason returned.
//
// The subject Common Name is never matched against DNS constraints:
// OpenSSL does that only for a leaf without DNS names, and checkNames
// refuses such a leaf anyway (it only looks at DNS SANs).
//
// A bare-key anchor ("2 1 0") carries no extensions: only the presented
// certificates on the path are checked then. DANE-EE(3) does not come
// here (RFC 7671 §5.1).
func checkPathConstraints(path []*x509.Certificate, p Purpose) (reason string) {
	for i, c := range path {
		ext := scanExtensions(c)
		if ext.invalid != "" {
			return fmt.Sprintf("the certificate at depth %d (%s) has %s", i, subjectOf(c), ext.invalid)
		}
		if oid := unhandledCritical(c); oid != nil {
			return fmt.Sprintf("the certificate at depth %d (%s) has a critical extension %s that this verifier does not process",
				i, subjectOf(c), oid)
		}
		if r := checkPurpose(i, c, &ext, p); r != "" {
			return r
		}
		if r := checkPathLen(path, i); r != "" {
			return r
		}
	}
	return checkPathNameConstraints(path)
}

// selfIssued: subject and issuer names are the same (RFC 5280 §6.1;
// OpenSSL's EXFLAG_SI). The names are compared as DER. A self-issued CA
// counts neither for a path length nor against name constraints.
func selfIssued(c *x509.Certificate) bool {
	return bytes.Equal(c.RawSubject, c.RawIssuer)
}

var (
	oidExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidNameConstraints  = asn1.ObjectIdentifier{2, 5, 29, 30}
	oidNetscapeCertType = asn1.ObjectIdentifier{2, 16, 840, 1, 113730, 1, 1}
)

// extensions is what checkPathConstraints needs to know about a
// certificate's extensions beyond what crypto/x509 parses: one pass over
// them (scanExtensions) serves the purpose checks and the name
// constraints alike.
type extensions struct {
	extKeyUsage     bool   // an extended key usage extension is present (possibly empty)
	nsCertType      int    // first octet of the Netscape certificate type, -1 when absent
	nameConstraints bool   // a name constraints extension is present
	ncUnsupported   string // a constraint this package does not evaluate, described
	invalid         string // an extension OpenSSL would not decode, described
}

func scanExtensions(c *x509.Certificate) extensions {
	x := extensions{nsCertType: -1}
	for _, e := range c.Extensions {
		switch {
		case e.Id.Equal(oidExtKeyUsage):
			x.extKeyUsage = true
		case e.Id.Equal(oidNetscapeCertType):
			var bits asn1.BitString
			if rest, err := asn1.Unmarshal(e.Value, &bits); err != nil || len(rest) > 0 {
				x.invalid = "an undecodable Netscape certificate type extension"
				continue
			}
			x.nsCertType = 0
			if len(bits.Bytes) > 0 {
				x.nsCertType = int(bits.Bytes[0])
			}
		case e.Id.Equal(oidNameConstraints):
			x.nameConstraints = true
			x.ncUnsupported = unsupportedConstraints(e.Value)
		}
	}
	return x
}
