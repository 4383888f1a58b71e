package dnssec

import (
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Status is the security status of an RRset (RFC 4033 §5, RFC 4035 §4.3).
type Status uint8

const (
	// Indeterminate: no proof either way was obtained (no trust anchor,
	// timeouts, a proof this package does not yet build, a work cap).
	Indeterminate Status = iota
	// Secure: an unbroken chain of signed DNSKEY and DS RRsets leads from a
	// trust anchor to the RRset.
	Secure
	// Insecure: the chain of trust proves the zone unsigned, or it is
	// signed only with algorithms or digests this validator does not
	// support (RFC 4035 §5.2, RFC 6840 §5.2).
	Insecure
	// Bogus: a trust anchor says the data should be signed, and it is not
	// signed correctly.
	Bogus
)

func (s Status) String() string {
	switch s {
	case Indeterminate:
		return "indeterminate"
	case Secure:
		return "secure"
	case Insecure:
		return "insecure"
	case Bogus:
		return "bogus"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// ZoneStep is one zone on the chain of trust, as the trace of a Result.
type ZoneStep struct {
	Zone   string // zone apex
	Status Status // of the zone's DNSKEY RRset
	// KeyTags are the DNSKEYs that matched a DS record (or a trust anchor)
	// and signed the zone's DNSKEY RRset.
	KeyTags []uint16
	// DS are the DS records (or anchors) the keys were matched against, as
	// "keytag/algorithm/digesttype".
	DS []string
	// Anchor is set when the zone's keys were matched against a configured
	// trust anchor rather than a DS RRset from the parent.
	Anchor bool
	// Reason is why the zone is not Secure.
	Reason string
}

func (z ZoneStep) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", z.Zone, z.Status)
	if len(z.KeyTags) > 0 {
		fmt.Fprintf(&b, " key %s", joinTags(z.KeyTags))
	}
	if len(z.DS) > 0 {
		via := "DS"
		if z.Anchor {
			via = "anchor"
		}
		fmt.Fprintf(&b, " via %s %s", via, strings.Join(z.DS, ","))
	}
	if z.Reason != "" {
		fmt.Fprintf(&b, ": %s", z.Reason)
	}
	return b.String()
}

func joinTags(tags []uint16) string {
	s := make([]string, len(tags))
	for i, t := range tags {
		s[i] = fmt.Sprint(t)
	}
	return strings.Join(s, ",")
}

// Result is the outcome of one Lookup. Its slices and records may be
// shared with the cache and other callers: treat them as read-only.
type Result struct {
	Name   string // queried name, canonical (lower case, fully qualified)
	Type   uint16
	Status Status
	Rcode  int      // of the final response
	RRset  []dns.RR // the records of Type (validated when Secure), TTLs capped at the RRSIG original TTL
	Signer string   // zone that signed RRset
	// Err is nil when Secure; otherwise a *BogusError, *IndeterminateError
	// or *InsecureError saying which check failed on which RRset.
	Err error
	// EDE is the RFC 8914 Extended DNS Error code Unbound would attach
	// (0 when Secure).
	EDE uint16
	// TTL is how long this result may be cached: the minimum of the
	// records' TTLs, the RRSIG original TTL, the time left until RRSIG
	// expiration, and the same for every DNSKEY and DS on the chain.
	TTL time.Duration
	// Chain is the chain of trust, zone by zone from the trust anchor down
	// to Signer (or as far as it got).
	Chain []ZoneStep
	// CNAME holds the validated CNAME records followed from Name to the
	// owner of RRset, in order.
	CNAME []*dns.CNAME
	// Wildcard is the wildcard owner ("*.example.") when RRSIG labels show
	// that RRset was synthesized from a wildcard (RFC 4035 §5.3.4).
	Wildcard string
	Cached   bool // served from the cache
	// ProvenBy names the resolver whose AD bit (or SERVFAIL) gave
	// Status, when the proof was taken from it rather than validated in
	// process (TrustResolver); Chain is then empty.
	ProvenBy string

	alias string // CNAME target still to follow (internal; see Lookup)
}

// String returns a one-line summary: name, type, status and reason.
func (r *Result) String() string {
	s := rrsetName(r.Name, r.Type)
	if r.Err != nil {
		return s + ": " + r.Err.Error()
	}
	return fmt.Sprintf("%s: %s (signer %s, ttl %s)", s, r.Status, r.Signer, r.TTL)
}

func rrsetName(name string, qtype uint16) string {
	return name + " " + dns.TypeToString[qtype]
}
