// Package tlsa implements TLSA records and the matching of a presented
// certificate chain against them, as DANE specifies it:
//
//   - RFC 6698 (the DANE protocol: the TLSA resource record, its four
//     certificate usages, two selectors and three matching types),
//   - RFC 7671 (DANE updates and operational guidance: which usages need
//     name checks and validity dates, how DANE-TA(2) trust anchors are found,
//     digest algorithm agility in §9),
//   - RFC 7218 (the acronyms used for the parameter values: "DANE-EE",
//     "SPKI", "SHA2-256", ...).
//
// Where the RFCs leave room, OpenSSL's DANE implementation (x509_vfy.c,
// ssl_lib.c) is the reference: its test vectors (test/danetest.in and
// test/dane-cross.in) pass unchanged, see conformance_test.go.
//
// A DANE-TA(2) match is checked the way OpenSSL's X509_verify_cert checks
// the same path for a TLS server (purpose "sslserver"): signatures and the
// CA flag of every issuer, validity dates of every certificate (the anchor
// certificate included), extended key usage (serverAuth or Server Gated
// Crypto on the leaf and on every CA that carries the extension; OpenSSL
// does not take anyExtendedKeyUsage for it), the leaf's key usage and
// Netscape certificate type, pathLenConstraint (RFC 5280 §4.2.1.9), and
// the DNS, IP address, email and URI name constraints (RFC 5280
// §4.2.1.10) of every CA on the path, applied to the names of the
// certificates below it. A CA with another type of name constraint
// (directoryName, ...) fails the path: this package does not evaluate
// them. A bare-key anchor ("2 1 0") has no extensions to apply. Then the
// leaf's DNS names must match a reference name. DANE-EE(3) skips all of
// this (RFC 7671 §5.1); PKIX-TA(0) and PKIX-EE(1) leave it to crypto/x509.
// The files follow OpenSSL's split: purpose.go holds the purpose, key
// usage, Netscape type, path length and critical extension checks
// (v3_purp.c), nameconstraints.go the name constraints (v3_ncons.c), and
// constraints.go the one function that runs both over a path.
//
// The package does no DNS and trusts nothing by itself: the caller proves
// the TLSA RRset with DNSSEC (RFC 6698 §4.1 requires it) and hands over the
// records, the chain the peer presented and the reference names. [Verify]
// then either returns the [Match] that authenticated the peer or a typed
// error naming the check that failed: [*NoUsableError], [*MismatchError],
// [*NameError], [*ChainError], [*PKIXError] or [ErrEmptyChain].
//
// The package imports no Caddy code; the Caddy transport in the parent
// package is glue on top of it.
package tlsa
