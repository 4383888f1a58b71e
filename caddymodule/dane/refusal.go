package dane

import (
	"context"
	"errors"
	"strings"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/dnssec"
	"github.com/caddy-dane/caddy-dane/caddymodule/resolver"
	"github.com/caddy-dane/caddy-dane/caddymodule/tlsa"
)

// Reason is the short, stable name of the check that refused a connection.
// It is meant for log fields and metric labels: a small, closed set.
type Reason string

// The reasons a connection can be refused.
const (
	ReasonNoName        Reason = "no name"              // IP-literal upstream without a configured TLSA base domain
	ReasonDNSTimeout    Reason = "dns timeout"          // the resolvers did not answer in time
	ReasonDNSError      Reason = "dns error"            // the lookup failed for another operational reason
	ReasonBogus         Reason = "bogus"                // DNSSEC validation failed (RFC 4033 §5)
	ReasonInsecure      Reason = "insecure"             // the TLSA RRset is provably unsigned
	ReasonIndeterminate Reason = "indeterminate"        // security status could not be established
	ReasonNoTLSA        Reason = "no tlsa"              // the owner has no TLSA RRset (NXDOMAIN/NODATA)
	ReasonNoSRV         Reason = "no srv"               // the SRV owner has no usable SRV records (RFC 2782, RFC 7673 §3.1)
	ReasonUnusable      Reason = "all records unusable" // RFC 7671 §4.1: treat as if no TLSA
	ReasonMismatch      Reason = "tlsa mismatch"        // no usable record matched the presented chain
	ReasonName          Reason = "name mismatch"        // a record matched but the certificate names do not
	ReasonChain         Reason = "chain invalid"        // DANE-TA: no valid path from the trust anchor to the leaf
	ReasonPKIX          Reason = "pkix invalid"         // PKIX-TA/PKIX-EE: ordinary validation failed
	ReasonHandshake     Reason = "handshake failed"     // TLS failed before a chain could be checked
)

// Refusal is the error returned for every connection that DANE does not
// authenticate. It carries what an operator needs to act on it.
type Refusal struct {
	Reason  Reason
	Owner   string        // TLSA owner name, e.g. "_443._tcp.api.example."
	Status  dnssec.Status // DNSSEC status of the TLSA lookup
	EDE     uint16        // RFC 8914 code for DNSSEC failures, 0 if none
	Records []tlsa.Record // the TLSA records seen (may be empty)
	Err     error         // the underlying typed error from tlsa, dnssec or resolver

	// Result is the DNSSEC lookup behind the refusal (chain of trust,
	// cache flag), or nil when the refusal came before any lookup.
	Result *dnssec.Result
}

func (r *Refusal) Error() string {
	var b strings.Builder
	b.WriteString("dane: refused ")
	if r.Owner != "" {
		b.WriteString(r.Owner)
		b.WriteString(": ")
	}
	b.WriteString(string(r.Reason))
	if r.Err != nil {
		msg := r.Err.Error()
		// Avoid "bogus: bogus: ..." when the underlying error already
		// starts with the reason.
		if len(msg) < len(r.Reason) || !strings.EqualFold(msg[:len(r.Reason)], string(r.Reason)) {
			b.WriteString(": ")
			b.WriteString(msg)
		} else {
			b.WriteString(msg[len(r.Reason):])
		}
	}
	return b.String()
}

func (r *Refusal) Unwrap() error { return r.Err }

// NoName is the refusal of an upstream that has no TLSA base domain a
// DANE check could start from; err says why (no dial information, an IP
// address without a configured name, an unauthenticated host name).
func NoName(err error) *Refusal { return &Refusal{Reason: ReasonNoName, Err: err} }

// RefusalOf returns the *Refusal in err. Every error of Authenticate and
// Target.Identity but a *ConnectError is one; anything else reaching a
// caller that expected a verdict is refused as a failed handshake rather
// than dropped.
func RefusalOf(err error) *Refusal {
	var r *Refusal
	if errors.As(err, &r) {
		return r
	}
	return &Refusal{Reason: ReasonHandshake, Err: err}
}

// reasonForLookup maps a failed DNSSEC lookup to a Reason. Operational
// failures (timeouts) come first: they say nothing about the data. A denial
// of existence that is not bogus is reported as "no tlsa", whatever its
// proof status, because that is what the operator has to fix.
func reasonForLookup(res *dnssec.Result) Reason {
	var (
		to  interface{ Timeout() bool }
		se  *resolver.ServerError
		afe *resolver.AllFailedError
	)
	switch {
	case errors.Is(res.Err, context.DeadlineExceeded), errors.Is(res.Err, resolver.ErrTimeout),
		errors.As(res.Err, &to) && to.Timeout():
		return ReasonDNSTimeout
	case errors.As(res.Err, &se), errors.As(res.Err, &afe), errors.Is(res.Err, resolver.ErrNoServers):
		return ReasonDNSError
	case res.Status == dnssec.Bogus:
		return ReasonBogus
	case res.Status != dnssec.Indeterminate && (res.Rcode == dns.RcodeNameError || res.Rcode == dns.RcodeSuccess && len(res.RRset) == 0):
		// An absence the resolver reported but nobody proved (a work
		// cap, an untrusted resolver) is indeterminate, not "no tlsa".
		return ReasonNoTLSA
	case res.Status == dnssec.Insecure:
		return ReasonInsecure
	case res.Rcode != dns.RcodeSuccess:
		return ReasonDNSError // SERVFAIL, REFUSED, ... from every resolver
	}
	return ReasonIndeterminate
}

// reasonForMatch maps a tlsa.Verify error to a Reason.
func reasonForMatch(err error) Reason {
	var (
		nu *tlsa.NoUsableError
		mm *tlsa.MismatchError
		ne *tlsa.NameError
		ce *tlsa.ChainError
		pe *tlsa.PKIXError
	)
	switch {
	case errors.As(err, &nu):
		return ReasonUnusable
	case errors.As(err, &ne):
		return ReasonName
	case errors.As(err, &ce):
		return ReasonChain
	case errors.As(err, &pe):
		return ReasonPKIX
	case errors.As(err, &mm):
		return ReasonMismatch
	}
	return ReasonMismatch
}
