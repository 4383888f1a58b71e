package dane

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/dnssec"
	"github.com/caddy-dane/caddy-dane/caddymodule/tlsa"
)

// NoTLSAPolicy says what to do when an upstream provably has no usable
// DANE: its TLSA RRset is securely denied (NXDOMAIN/NODATA proven by
// NSEC/NSEC3), or its zone is provably Insecure (RFC 4033 §5).
type NoTLSAPolicy string

const (
	// NoTLSARefuse refuses the connection (the default).
	NoTLSARefuse NoTLSAPolicy = "refuse"
	// NoTLSAPKIX authenticates the upstream with ordinary PKIX validation
	// (RFC 7671 §4: DANE is opportunistic for a server that publishes no
	// TLSA), with the configured or system roots and the host name.
	// Bogus and indeterminate lookups are still refused.
	NoTLSAPKIX NoTLSAPolicy = "pkix"
)

// ParseNoTLSAPolicy checks a policy name; "" means NoTLSARefuse.
func ParseNoTLSAPolicy(s string) (NoTLSAPolicy, error) {
	switch p := NoTLSAPolicy(s); p {
	case "", NoTLSARefuse:
		return NoTLSARefuse, nil
	case NoTLSAPKIX:
		return p, nil
	}
	return "", fmt.Errorf("on_no_tlsa %q: want refuse or pkix", s)
}

// provablyNoDANE reports whether res proves that owner has no DANE: a
// Secure denial of the TLSA RRset, or an Insecure zone. Nothing else
// (Bogus, Indeterminate, timeouts) qualifies.
func provablyNoDANE(res *dnssec.Result) bool {
	switch res.Status {
	case dnssec.Secure:
		return len(res.RRset) == 0 && (res.Rcode == dns.RcodeNameError || res.Rcode == dns.RcodeSuccess)
	case dnssec.Insecure:
		return true
	}
	return false
}

// pkixSet is the set used when the policy lets PKIX stand in for DANE.
func pkixSet(host, owner string, res *dnssec.Result, now time.Time) *TLSASet {
	return &TLSASet{Owner: owner, Base: dns.CanonicalName(host), Result: res, Expires: now.Add(res.TTL), PKIX: true}
}

// verifyPKIX validates chain (leaf first) against roots (nil: the system
// roots) for one of names (RFC 6125 via crypto/x509).
func verifyPKIX(chain []*x509.Certificate, roots *x509.CertPool, names []string, now time.Time) (*tlsa.Match, error) {
	if len(chain) == 0 {
		return nil, &tlsa.PKIXError{Err: tlsa.ErrEmptyChain}
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	var last error
	for _, name := range names {
		chains, err := chain[0].Verify(x509.VerifyOptions{DNSName: trimDot(name), Roots: roots, Intermediates: inter, CurrentTime: now})
		if err == nil {
			return &tlsa.Match{Chain: chains[0]}, nil
		}
		last = err
	}
	return nil, &tlsa.PKIXError{Err: last}
}

func trimDot(s string) string {
	if len(s) > 1 && s[len(s)-1] == '.' {
		return s[:len(s)-1]
	}
	return s
}

// cnameTarget returns the final target of host's CNAME chain when every
// hop is DNSSEC-secure (RFC 7671 §7, RFC 7672 §2.2.2), or "" when host is
// no CNAME or a hop is provably Insecure (then only the original name is
// used). A chain whose hops are all secure names its target even when the
// target's own zone is insecure: the TLSA lookup there then proves the
// absence, and the original name is the fallback.
//
// Every other outcome is a *Refusal: a chain that stopped at a bogus or
// indeterminate hop (a forged answer, a dropped query) says nothing about
// where it leads, so neither an intermediate name nor the original one may
// be taken as the TLSA base domain from it.
func (a *Authenticator) cnameTarget(ctx context.Context, host string, port int) (string, error) {
	res := a.Prover.Lookup(ctx, dns.CanonicalName(host), dns.TypeA)
	if res.Status != dnssec.Secure && res.Status != dnssec.Insecure {
		return "", &Refusal{Reason: reasonForLookup(res), Owner: Owner(host, port), Status: res.Status, EDE: res.EDE, Result: res,
			Err: fmt.Errorf("follow_cname: the address lookup of %s, which decides the TLSA base domain, is %s: %w", dns.CanonicalName(host), res.Status, res.Err)}
	}
	if len(res.CNAME) == 0 {
		return "", nil
	}
	// An unfollowed CNAME left in the final RRset is a hop that is not
	// secure: the chain does not authenticate where it leads.
	for _, rr := range res.RRset {
		if rr.Header().Rrtype == dns.TypeCNAME {
			return "", nil
		}
	}
	return dns.CanonicalName(res.CNAME[len(res.CNAME)-1].Target), nil
}
