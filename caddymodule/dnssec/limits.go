package dnssec

import "sync/atomic"

// Work caps for one Lookup. They bound what a hostile resolver or zone can
// make the validator do (CVE-2023-50387 "KeyTrap", CVE-2023-50868); going
// over any of them ends the lookup Indeterminate with ErrLimitExceeded,
// never a hang.
const (
	// DefaultMaxQueries: queries sent for one lookup. A cold chain costs a
	// DS and a DNSKEY query per zone below the anchor, plus the answer and
	// one query per CNAME hop: 16 zones deep needs 33.
	DefaultMaxQueries = 40
	// DefaultMaxValidations: signature verifications (the expensive part)
	// per lookup; one per RRset on a well-formed chain.
	DefaultMaxValidations = 64
	// DefaultMaxChainDepth: zones on one chain of trust, anchor included.
	DefaultMaxChainDepth = 16
	// DefaultMaxKeysPerTag: DNSKEYs sharing one key tag and algorithm that
	// are tried for one RRSIG or DS (key tags collide, RFC 4034 App. B).
	DefaultMaxKeysPerTag = 4
	// DefaultMaxCNAMEs: CNAME hops followed from the queried name.
	DefaultMaxCNAMEs = 8
	// DefaultMaxNSEC3Iterations: NSEC3 records with more additional
	// iterations make a denial Insecure (RFC 9276 §3.2; Unbound and BIND
	// use 150, RFC 9276 recommends 0, and 100 is what
	// draft-ietf-dnsop-nsec3-guidance measured as the point where
	// validators diverge).
	DefaultMaxNSEC3Iterations = 100
	// DefaultMaxNSEC3SaltLength: NSEC3 salts longer than this (bytes)
	// are treated like excessive iterations (RFC 9276 §3.1 recommends
	// no salt).
	DefaultMaxNSEC3SaltLength = 64
	// DefaultMaxNSEC3Hashes: NSEC3 hash computations for one lookup
	// (CVE-2023-50868). A closest encloser proof costs one per label
	// between the name and its zone, plus the wildcard.
	DefaultMaxNSEC3Hashes = 64
	// DefaultMaxDenialRRsets: NSEC and NSEC3 RRsets authenticated for one
	// response. The largest proof (NSEC3 wildcard NODATA) needs 3.
	DefaultMaxDenialRRsets = 8
)

// maxRRSIGsPerRRset bounds the RRSIGs considered over one RRset.
const maxRRSIGsPerRRset = 8

// maxSignersPerRRset bounds the distinct signer zones tried for one RRset.
const maxSignersPerRRset = 2

// Limits caps the work done by one lookup. Zero fields take the defaults.
type Limits struct {
	MaxQueries     int
	MaxValidations int
	MaxChainDepth  int
	MaxKeysPerTag  int
	MaxCNAMEs      int

	// MaxNSEC3Iterations and MaxNSEC3SaltLength bound the NSEC3
	// parameters accepted; a zone over them is Insecure (RFC 9276 §3.2).
	MaxNSEC3Iterations int
	MaxNSEC3SaltLength int
	// MaxNSEC3Hashes caps NSEC3 hash computations per lookup.
	MaxNSEC3Hashes int
	// MaxDenialRRsets caps the NSEC/NSEC3 RRsets verified per response.
	MaxDenialRRsets int
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxQueries, DefaultMaxQueries)
	def(&l.MaxValidations, DefaultMaxValidations)
	def(&l.MaxChainDepth, DefaultMaxChainDepth)
	def(&l.MaxKeysPerTag, DefaultMaxKeysPerTag)
	def(&l.MaxCNAMEs, DefaultMaxCNAMEs)
	def(&l.MaxNSEC3Iterations, DefaultMaxNSEC3Iterations)
	def(&l.MaxNSEC3SaltLength, DefaultMaxNSEC3SaltLength)
	def(&l.MaxNSEC3Hashes, DefaultMaxNSEC3Hashes)
	def(&l.MaxDenialRRsets, DefaultMaxDenialRRsets)
	return l
}

// work counts what one lookup has spent. Its counters are atomic because a
// lookup's steps may run on a singleflight goroutine after the caller gave
// up.
type work struct {
	queries     atomic.Int32
	validations atomic.Int32
	depth       atomic.Int32
	hashes      atomic.Int32 // NSEC3 hash computations

	renew bool // a Refresh: renew cache entries near their end (see Refresh)
}
