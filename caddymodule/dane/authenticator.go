package dane

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
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
	// bypassing every cache. The lookup calls it in the background when a
	// cached set has less than a tenth of its lifetime left (prefetch, as
	// Unbound's prefetch: yes), so that a busy upstream never waits on DNS.
	// nil disables prefetch: a set is then looked up again once expired.
	Refresh func(ctx context.Context, owner string) *dnssec.Result

	// OnNoTLSA is what to do when the TLSA RRset is provably absent or
	// its zone provably Insecure; "" is NoTLSARefuse.
	OnNoTLSA NoTLSAPolicy

	// LookupTimeout bounds the TLSA lookup and validation of one
	// Authenticate (all queries and retries); 0 means only ctx bounds it.
	LookupTimeout time.Duration

	// Observe, when set, is told about every TLSA lookup Authenticate
	// makes: the set or the refusal, and how long it took (metrics).
	Observe func(set *TLSASet, err error, elapsed time.Duration)

	// FollowCNAME makes the lookup find the TLSA base domain as RFC 7671
	// §7 and RFC 7672 §2.2.2 say: when the host is a CNAME chain whose
	// every hop is DNSSEC-secure, TLSA records are looked up at the final
	// target first, then at the original name, and both names are accepted
	// in the certificate. An insecure hop leaves only the original name;
	// a chain that cannot be validated (bogus, indeterminate, timed out)
	// is refused, because it leaves the base domain undecided.
	FollowCNAME bool

	// ClientLookups bounds the client TLSA lookups (VerifyClient) that
	// may run at once; a handshake that finds every slot busy is refused
	// (ReasonBusy), not queued. 0 means DefaultClientLookups.
	ClientLookups int

	// ClientLookupRate bounds the cold client TLSA lookups started per
	// second (bursts up to ClientLookups); beyond it a handshake is
	// refused (ReasonBusy). 0 means DefaultClientLookupRate.
	ClientLookupRate float64

	// ClientNegativeTTL is how long a client identity whose lookup was
	// refused is refused again without DNS. 0 means
	// DefaultClientNegativeTTL.
	ClientNegativeTTL time.Duration

	sets   setCache    // parsed Secure sets by host and port (clients: owner, port 0)
	client clientState // client lookup slots and remembered refusals
	srvs   srvCache    // SRV resolutions by owner and address families
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

	// viaCNAME: Base is the target of the caller's secure CNAME chain
	// (RFC 7671 §7), so it is accepted besides the caller's names.
	viaCNAME bool
}

// Owner returns the TLSA owner name for a TCP service (RFC 6698 §3,
// RFC 7671 §3): "_<port>._tcp.<host>." in lower case.
func Owner(host string, port int) string {
	return "_" + strconv.Itoa(port) + "._tcp." + dns.CanonicalName(host)
}

// ValidateName checks that host can be a TLSA base domain: a host name of
// letters, digits, hyphens and underscores (RFC 952/1123 with RFC 8552's
// underscore labels; IDNs as A-labels), not an IP literal. Anything else
// (a Host header with raw bytes, say) is refused rather than mapped: case
// folding of non-ASCII bytes would let two different names share one
// TLSA base domain.
func ValidateName(host string) error {
	if host == "" {
		return fmt.Errorf("empty host name")
	}
	if net.ParseIP(strings.Trim(host, "[]")) != nil {
		return fmt.Errorf("%q is an IP address, not a DNS name", host)
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("%q is not a host name: byte %q at %d (IDNs must be written as A-labels)", host, c, i)
		}
	}
	if _, ok := dns.IsDomainName(host); !ok || strings.Contains(strings.TrimSuffix(host, "."), "..") || strings.HasPrefix(host, ".") {
		return fmt.Errorf("%q is not a valid DNS name", host)
	}
	// RFC 3696 §2 (RFC 1123 §2.1): a top-level label is never all
	// numeric, so "192.0.2.1." is an address written with a dot, not a
	// name; taking it as one would look TLSA records up for an address.
	labels := dns.SplitDomainName(host)
	if tld := labels[len(labels)-1]; strings.Trim(tld, "0123456789") == "" {
		return fmt.Errorf("%q is an IP address or has an all-numeric top-level label, not a host name", host)
	}
	return nil
}

// lookup finds the DNSSEC-secure TLSA RRset for host:port. Any outcome
// other than a Secure, non-empty RRset is returned as a *Refusal, unless
// OnNoTLSA lets PKIX stand in for a proven absence of DANE.
//
// Secure sets are kept, parsed, for as long as the validator may use the
// RRset (min of TTLs and signature expiry): a warm lookup does no DNS, no
// validation and no decoding. The returned set is shared between callers
// and must not be modified; on a cache hit its Result is the one that
// filled the cache, marked Cached.
func (a *Authenticator) lookup(ctx context.Context, host string, port int) (*TLSASet, error) {
	now := a.now()
	if e := a.sets.get(host, port, now); e != nil {
		if a.Refresh != nil && !now.Before(e.prefetchAt) && e.refreshing.CompareAndSwap(false, true) {
			go a.prefetch(host, port, e.set)
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
		target, err := a.cnameTarget(ctx, host, port)
		if err != nil {
			return nil, err
		}
		if target != "" && target != dns.CanonicalName(host) {
			towner := Owner(target, port)
			res := a.Prover.Lookup(ctx, towner, dns.TypeTLSA)
			set, err := a.newTLSASet(target, towner, res, now)
			if err == nil && !set.PKIX {
				set.Names, set.viaCNAME = []string{dns.CanonicalName(host)}, true
				a.sets.put(host, port, set, now)
				return set, nil
			}
			// RFC 7671 §7: the original name is the fallback only when
			// DNSSEC proves the target has no DANE. A bogus, indeterminate
			// or timed-out lookup there is no proof of anything: falling
			// back would let a dropped query decide (and, under
			// on_no_tlsa pkix, downgrade to PKIX).
			if !provablyNoDANE(res) {
				return nil, err
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

// prefetch renews the cached set of host:port by validating afresh the
// TLSA RRset it was made from (set.Owner: the CNAME target's owner when
// the chain moved the base domain), never another one. Only a set of the
// same kind replaces it: a DANE set by a DANE set, a PKIX stand-in by a
// PKIX stand-in. Anything else (a refusal, or DANE appearing or vanishing)
// leaves the cached set to expire, so that the next ordinary lookup
// decides again from the start, CNAME chain included, and says why.
func (a *Authenticator) prefetch(host string, port int, cached *TLSASet) {
	ctx, cancel := context.WithTimeout(context.Background(), prefetchTimeout)
	defer cancel()
	now := a.now()
	set, err := a.newTLSASet(strings.TrimSuffix(cached.Base, "."), cached.Owner, a.Refresh(ctx, cached.Owner), now)
	if err != nil || set.PKIX != cached.PKIX {
		return
	}
	set.Names, set.viaCNAME = cached.Names, cached.viaCNAME
	a.sets.put(host, port, set, now)
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

// refuse is the refusal of a connection verified against set.
func (set *TLSASet) refuse(reason Reason, err error) *Refusal {
	return &Refusal{Reason: reason, Owner: set.Owner, Status: set.Result.Status, Result: set.Result,
		EDE: set.Result.EDE, Records: set.Records, Err: err}
}

func (a *Authenticator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// verify matches a presented chain (leaf first) against set. names are the
// reference identifiers of the Identity; a set found through a secure
// CNAME chain adds the chain's other end (RFC 7671 §5.2.2, §7).
func (a *Authenticator) verify(set *TLSASet, chain []*x509.Certificate, names []string) (*tlsa.Match, error) {
	return a.verifyFor(set, chain, names, tlsa.PurposeServer)
}

// verifyFor is verify for a peer of purpose p: a server, or a client
// (draft-ietf-dance-client-auth), whose chain must allow clientAuth.
func (a *Authenticator) verifyFor(set *TLSASet, chain []*x509.Certificate, names []string, p tlsa.Purpose) (*tlsa.Match, error) {
	names = set.referenceNames(names)
	if set.PKIX {
		m, err := verifyPKIX(chain, a.Roots, names, a.now())
		if err != nil {
			return nil, set.refuse(ReasonPKIX, err)
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
		Purpose:      p,
	})
	if err != nil {
		return nil, set.refuse(reasonForMatch(err), err)
	}
	return m, nil
}

// referenceNames returns names plus the names the set adds, without
// duplicates; without a CNAME chain, names itself, so the per-connection
// path does not allocate.
func (set *TLSASet) referenceNames(names []string) []string {
	addBase := set.viaCNAME && !slices.Contains(names, set.Base)
	if !addBase && len(set.Names) == 0 {
		return names
	}
	out := append(make([]string, 0, len(names)+len(set.Names)+1), names...)
	if addBase {
		out = append(out, set.Base)
	}
	for _, n := range set.Names {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
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
