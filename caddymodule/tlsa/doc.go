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
