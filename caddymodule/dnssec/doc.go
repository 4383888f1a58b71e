// Package dnssec is an in-process DNSSEC validator: it proves an RRset
// Secure by building the chain of trust from configured trust anchors (the
// IANA root KSKs by default) down to the zone that signed it, and never
// trusts a resolver's AD bit.
//
// The terms and checks are those of RFC 4033 (§5: Secure, Insecure, Bogus,
// Indeterminate), RFC 4034 (record formats, key tags, canonical form, serial
// number arithmetic of signature times), RFC 4035 (§5: authentication of
// DNSKEY, DS and RRSIGs, wildcard label counts) and RFC 6840 (clarifications:
// any valid path suffices, unsupported algorithms make a zone insecure,
// §5.11 algorithm signalling). Failure reasons carry the RFC 8914 Extended
// DNS Error code that Unbound would give.
//
// Every query goes through an Exchanger, normally a recursive resolver asked
// with RD=1, CD=1 and EDNS0 DO=1 so that signatures and proofs come back even
// when the resolver would have rejected them. Every answer is treated as
// hostile until validated.
//
// The files follow Unbound's validator: sigcrypt.go checks signatures,
// keys.go authenticates a zone's DNSKEY RRset (the key cache entries),
// classify.go sorts responses into kinds, denial.go authenticates the
// proofs of non-existence and hands them to nsec.go (RFC 4035 §5.4) or
// nsec3.go (RFC 5155 §8, RFC 9276 limits), findkey.go walks down from the
// trust anchor to find the zone cut above unsigned data (Insecure only
// below a cut proven unsigned) and checks signers against the cuts
// already proven, cache.go bounds the work shared between
// lookups, and limits.go names the caps on one lookup (KeyTrap,
// CVE-2023-50387; NSEC3 hashing, CVE-2023-50868).
package dnssec
