// Package zonekit builds DNSSEC-signed zones in process and serves them the
// way a validating-capable recursive resolver answers a query with the CD bit
// set: the answer together with its RRSIGs (RFC 4035 §3.1.1), and for
// NXDOMAIN and NODATA the SOA plus the NSEC records that prove the denial
// (RFC 4035 §3.1.3, RFC 4034 §4).
//
// Zones are signed with github.com/miekg/dns: a key-signing key (flags 257)
// signs the DNSKEY RRset and a zone-signing key (flags 256) signs every other
// authoritative RRset (RFC 4033 §2, RFC 6840 §5.11). ECDSA P-256 (algorithm
// 13) is the default; RSA/SHA-256 (8), RSA/SHA-512 (10), ECDSA P-384 (14) and
// Ed25519 (15) can be chosen with SetAlgorithm.
//
// The package exists for tests and the offline demo. It is not a name server:
// it holds every zone it serves in memory, picks the deepest zone that
// contains a name, and answers DS queries from the parent side of the cut.
package zonekit
