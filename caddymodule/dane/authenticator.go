package dane

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/dnssec"
	"github.com/caddy-dane/caddy-dane/caddymodule/tlsa"
)

// Authenticator looks up DNSSEC-secure TLSA records and checks TLS peers
// against them. It is safe for concurrent use.
type Authenticator struct {
	// Prover proves (or disproves) the TLSA RRset: a *dnssec.Validator
	// validates in process, a *dnssec.TrustResolver takes the proof from a
	// local validating resolver's AD bit. Required.
	Prover dnssec.Prover

	// Roots are the PKIX roots for usages PKIX-TA(0) and PKIX-EE(1);
	// nil means the system roots.
	Roots *x509.CertPool

	// CheckEENames makes DANE-EE(3) matches also check the certificate's
	// names. RFC 7671 §5.1 says DANE-EE ignores names; operators who pin
	// one key on many hosts may want the stricter check.
	CheckEENames bool

	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// Refresh, when set, validates the TLSA RRset at owner afresh,
	// bypassing every cache. Lookup calls it in the background when a
	// cached set has less than a tenth of its lifetime left (prefetch, as
	// Unbound's prefetch: yes), so that a busy upstream never waits on DNS.
	// nil disables prefetch: a set is then looked up again once expired.
	Refresh func(ctx context.Context, owner string) *dnssec.Result

	// OnNoTLSA is what to do when the TLSA RRset is provably absent or
	// its zone provably Insecure; "" is NoTLSARefuse.
	OnNoTLSA NoTLSAPolicy

	// FollowCNAME makes Lookup find the TLSA base domain as RFC 7671 §7
	// and RFC 7672 §2.2.2 say: when the host is a CNAME chain whose every
	// hop is DNSSEC-secure, TLSA records are looked up at the final target
	// first, then at the original name, and both names are accepted in
	// the certificate. An insecure hop leaves only the original name.
	FollowCNAME bool

	sets setCache // parsed Secure sets by host and port
}

// TLSASet is a TLSA RRset that DNSSEC proved Secure, ready for matching.
type TLSASet struct {
	Owner   string        // "_443._tcp.api.example."
	Base    string        // TLSA base domain, "api.example."
	Records []tlsa.Record // every record in the RRset, usable or not
	Result  *dnssec.Result

	// PKIX is set when the lookup proved there is no DANE for the host
	// and the OnNoTLSA policy lets ordinary PKIX authenticate it.
	PKIX bool

	// Names are more reference identifiers accepted in the certificate
	// besides the caller's (the other end of a secure CNAME chain).
	Names []string

	// Expires is when the proof behind this set stops being valid:
	// lookup time + Result.TTL (TTLs, original TTL, RRSIG expiry). It is
	// absolute because a cached set is handed out for the rest of its life.
	Expires time.Time
}

// Owner returns the TLSA owner name for a TCP service (RFC 6698 §3,
// RFC 7671 §3): "_<port>._tcp.<host>." in lower case.
func Owner(host string, port int) string {
	return "_" + strconv.Itoa(port) + "._tcp." + dns.CanonicalName(host)
}

// ValidateName checks that host can be a TLSA base domain: a syntactically
// valid DNS name, not an IP literal.
func ValidateName(host string) error {
	if host == "" {
		return fmt.Errorf("empty host name")
	}
	if net.ParseIP(strings.Trim(host, "[]")) != nil {
		return fmt.Errorf("%q is an IP address, not a DNS name", host)
	}
	if _, ok := dns.IsDomainName(host); !ok {
		return fmt.Errorf("%q is not a valid DNS name", host)
	}
	return nil
}

// Lookup finds the DNSSEC-secure TLSA RRset for host:port. Any outcome other
// than a Secure, non-empty RRset is returned as a *Refusal.
//
// Secure sets are kept, parsed, for as long as the validator may use the
// RRset (min of TTLs and signature expiry): a warm lookup does no DNS, no
// validation and no decoding. The returned set is shared between callers
// and must not be modified; on a cache hit its Result is the one that
// filled the cache, marked Cached.
func (a *Authenticator) Lookup(ctx context.Context, host string, port int) (*TLSASet, error) {
	now := a.now()
	if e := a.sets.get(host, port, now); e != nil {
		if a.Refresh != nil && !now.Before(e.prefetchAt) && e.refreshing.CompareAndSwap(false, true) {
			go a.prefetch(host, port)
		}
		return e.set, nil
	}
	if err := ValidateName(host); err != nil {
		return nil, &Refusal{Reason: ReasonNoName, Err: err}
	}
	if port <= 0 || port > 65535 {
		return nil, &Refusal{Reason: ReasonNoName, Err: fmt.Errorf("invalid port %d", port)}
	}
	owner := Owner(host, port)
	var alt string
	if a.FollowCNAME {
		if target := a.cnameTarget(ctx, host); target != "" && target != dns.CanonicalName(host) {
			towner := Owner(target, port)
			res := a.Prover.Lookup(ctx, towner, dns.TypeTLSA)
			set, err := a.newTLSASet(target, towner, res, now)
			if err == nil && !set.PKIX {
				set.Names = []string{dns.CanonicalName(host)}
				a.sets.put(host, port, set, now)
				return set, nil
			}
			if res.Status == dnssec.Bogus {
				return nil, err // a bogus target is an attack, not an absence
			}
			alt = target
		}
	}
	set, err := a.newTLSASet(host, owner, a.Prover.Lookup(ctx, owner, dns.TypeTLSA), now)
	if err == nil && alt != "" {
		set.Names = []string{alt}
	}
	if err == nil {
		a.sets.put(host, port, set, now)
	}
	return set, err
}

// prefetch replaces the cached set for host:port with a freshly validated
// one. If the refresh fails, the cached set stays until it expires; the
// next ordinary lookup then decides, and says why.
func (a *Authenticator) prefetch(host string, port int) {
	ctx, cancel := context.WithTimeout(context.Background(), prefetchTimeout)
	defer cancel()
	now := a.now()
	owner := Owner(host, port)
	if set, err := a.newTLSASet(host, owner, a.Refresh(ctx, owner), now); err == nil {
		a.sets.put(host, port, set, now)
	}
}

// newTLSASet turns the validator's result into a set, or a *Refusal for
// anything but a Secure, non-empty RRset, unless the OnNoTLSA policy lets
// PKIX stand in for a provable absence of DANE.
func (a *Authenticator) newTLSASet(host, owner string, res *dnssec.Result, now time.Time) (*TLSASet, error) {
	set, err := newTLSASet(host, owner, res, now)
	if err != nil && a.OnNoTLSA == NoTLSAPKIX && provablyNoDANE(res) {
		return pkixSet(host, owner, res, now), nil
	}
	return set, err
}

func newTLSASet(host, owner string, res *dnssec.Result, now time.Time) (*TLSASet, error) {
	set := &TLSASet{Owner: owner, Base: dns.CanonicalName(host), Result: res, Expires: now.Add(res.TTL)}
	for _, rr := range res.RRset {
		if t, ok := rr.(*dns.TLSA); ok {
			set.Records = append(set.Records, FromRR(t))
		}
	}
	if res.Status != dnssec.Secure || res.Err != nil {
		return nil, &Refusal{Reason: reasonForLookup(res), Owner: owner, Status: res.Status, Result: res,
			EDE: res.EDE, Records: set.Records, Err: res.Err}
	}
	if len(set.Records) == 0 {
		return nil, &Refusal{Reason: ReasonNoTLSA, Owner: owner, Status: res.Status, Result: res,
			Err: fmt.Errorf("no TLSA records at %s (rcode %s)", owner, dns.RcodeToString[res.Rcode])}
	}
	return set, nil
}

func (a *Authenticator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Verify matches a presented chain (leaf first) against set. names are the
// reference identifiers: the TLSA base domain and the name the upstream was
// configured with (RFC 7671 §5.2.2, §7).
func (a *Authenticator) Verify(set *TLSASet, chain []*x509.Certificate, names []string) (*tlsa.Match, error) {
	if len(set.Names) > 0 {
		names = append(append([]string(nil), names...), set.Names...)
	}
	if set.PKIX {
		m, err := verifyPKIX(chain, a.Roots, names, a.now())
		if err != nil {
			return nil, &Refusal{Reason: ReasonPKIX, Owner: set.Owner, Status: set.Result.Status, Result: set.Result, Err: err}
		}
		return m, nil
	}
	m, err := tlsa.Verify(tlsa.Options{
		Chain:        chain,
		Records:      set.Records,
		Names:        names,
		Roots:        a.Roots,
		Time:         a.now(),
		CheckEENames: a.CheckEENames,
	})
	if err != nil {
		return nil, &Refusal{Reason: reasonForMatch(err), Owner: set.Owner, Status: set.Result.Status, Result: set.Result,
			Records: set.Records, Err: err}
	}
	return m, nil
}

// FromRR converts a miekg/dns TLSA record to a tlsa.Record. Data that is
// not valid hex is dropped, which leaves the record unusable rather than an
// error (RFC 7671 §4.1: unusable records are ignored).
func FromRR(rr *dns.TLSA) tlsa.Record {
	data, err := hex.DecodeString(rr.Certificate)
	if err != nil {
		data = nil
	}
	return tlsa.Record{
		Usage:        tlsa.Usage(rr.Usage),
		Selector:     tlsa.Selector(rr.Selector),
		MatchingType: tlsa.MatchingType(rr.MatchingType),
		Data:         data,
	}
}
