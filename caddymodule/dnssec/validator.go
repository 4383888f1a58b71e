package dnssec

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"
)

// Config configures a Validator.
type Config struct {
	// Exchanger sends the queries, normally to a recursive resolver.
	Exchanger Exchanger
	// Anchors are the trust anchors, DS or DNSKEY records for one or more
	// zones; nil means RootAnchors.
	Anchors []dns.RR
	// Now is the clock for signature validity and cache expiry; nil means
	// time.Now.
	Now func() time.Time
	// CacheSize is the maximum number of cached validated results and zone
	// keys; 0 means DefaultCacheSize. Bogus and Indeterminate outcomes are
	// kept apart, in a cache a tenth that size, for badTTL.
	CacheSize int
	// Limits caps the work of one lookup; zero fields take the defaults.
	Limits Limits
}

// Validator validates RRsets. It is safe for concurrent use; concurrent
// lookups of the same name and type share one validation.
type Validator struct {
	exchanger Exchanger
	now       func() time.Time
	limits    Limits
	anchors   map[string]*anchorSet

	good   *lru // Secure and Insecure results and zone keys
	bad    *lru // Bogus and Indeterminate ones, for badTTL
	flight singleflight.Group
}

// anchorSet holds the trust anchors configured for one zone.
type anchorSet struct {
	ds   []*dns.DS
	keys []*dns.DNSKEY
}

// New returns a Validator for c.
func New(c Config) (*Validator, error) {
	if c.Exchanger == nil {
		return nil, errors.New("dnssec: no Exchanger")
	}
	anchors := c.Anchors
	if anchors == nil {
		anchors = RootAnchors()
	}
	sets, err := anchorSets(anchors)
	if err != nil {
		return nil, err
	}
	v := &Validator{
		exchanger: c.Exchanger,
		now:       c.Now,
		limits:    c.Limits.withDefaults(),
		anchors:   sets,
	}
	if v.now == nil {
		v.now = time.Now
	}
	size := c.CacheSize
	if size <= 0 {
		size = DefaultCacheSize
	}
	v.good = newLRU(size)
	v.bad = newLRU(max(size/10, 1))
	return v, nil
}

// anchorFor returns the trust anchor that covers the question name/qtype
// (see anchorForIn: for DS, the parent's). Every RRset that answers the
// question, the CNAME or DNAME that redirects it included, is validated
// under it, so no record outside its reach can decide the status of a name
// it covers.
func (v *Validator) anchorFor(name string, qtype uint16) string {
	return anchorForIn(v.anchors, name, qtype)
}

// Lookup queries name/qtype and validates the answer. It follows CNAMEs
// whose every hop validates, up to Limits.MaxCNAMEs. It never returns nil;
// the Result's Status and Err say what was proven. ctx bounds the lookup.
func (v *Validator) Lookup(ctx context.Context, name string, qtype uint16) *Result {
	return v.lookupChain(ctx, name, qtype, false)
}

// Refresh is Lookup without the cached results for name/qtype and the
// CNAME hops from it: the answer is queried and validated afresh (and
// cached), while the zone keys and DS RRsets on the chain of trust come
// from the cache unless they are in the last tenth of their life, when
// they are renewed too. It is what a prefetch needs (Unbound's prefetch):
// usually one query, not the whole chain again.
func (v *Validator) Refresh(ctx context.Context, name string, qtype uint16) *Result {
	return v.lookupChain(ctx, name, qtype, true)
}

func (v *Validator) lookupChain(ctx context.Context, name string, qtype uint16, fresh bool) *Result {
	if _, ok := dns.IsDomainName(name); !ok || name == "" {
		return finish(&Result{Name: name, Type: qtype, Err: indeterminatef(rrsetName(name, qtype), nil, "invalid domain name %q", name)})
	}
	name = dns.CanonicalName(name)
	w := &work{renew: fresh}
	r := v.lookup(ctx, w, name, qtype, fresh)
	var cnames []*dns.CNAME
	seen := map[string]bool{name: true}
	for r.alias != "" {
		cnames = append(cnames, r.RRset[0].(*dns.CNAME))
		ttl, target := r.TTL, r.alias
		switch {
		case len(cnames) > v.limits.MaxCNAMEs:
			r = finish(&Result{Name: target, Type: qtype, Chain: r.Chain, Err: indeterminatef(rrsetName(name, qtype), ErrLimitExceeded, "more than %d CNAMEs from %s", v.limits.MaxCNAMEs, name)})
		case seen[target]:
			r = finish(&Result{Name: target, Type: qtype, Chain: r.Chain, Err: bogusf(rrsetName(target, dns.TypeCNAME), dns.ExtendedErrorCodeDNSBogus, "CNAME loop at %s from %s", target, name)})
		default:
			seen[target] = true
			r = v.lookup(ctx, w, target, qtype, fresh)
			r.TTL = min(r.TTL, ttl)
		}
	}
	if len(cnames) > 0 {
		r.Name, r.CNAME = name, cnames
	}
	return r
}

// lookup returns the validated result for name/qtype from the cache
// (unless fresh) or by resolving it once for all concurrent callers; a
// fresh lookup may join a resolution already in flight. A CNAME answer comes
// back with alias set; following it is the caller's job, outside this
// flight, so that flights only ever wait on flights for ancestor zones
// and cannot deadlock.
func (v *Validator) lookup(ctx context.Context, w *work, name string, qtype uint16, fresh bool) *Result {
	key := resultKey(name, qtype)
	for attempt := 0; ; attempt++ {
		if val, exp, ok := v.cached(key, w.renew); ok && !fresh {
			r := *val.(*Result)
			r.Cached, r.TTL = true, exp.Sub(v.now())
			return &r
		}
		ch := v.flight.DoChan(key, func() (any, error) {
			r := v.resolve(ctx, w, name, qtype)
			v.store(key, r, r.Status, r.Err, r.TTL)
			return r, nil
		})
		select {
		case res := <-ch:
			r := *res.Val.(*Result)
			if res.Shared && attempt == 0 && ctx.Err() == nil && ctxFailure(r.Err) {
				continue // the caller that ran the flight gave up; try on our own context
			}
			return &r
		case <-ctx.Done():
			return finish(&Result{Name: name, Type: qtype, Err: ctxIndeterminate(rrsetName(name, qtype), ctx.Err())})
		}
	}
}

// resultKey is the cache key of the validated result for name/qtype.
func resultKey(name string, qtype uint16) string {
	return "r/" + name + "/" + strconv.Itoa(int(qtype))
}

// keysKey is the cache key of zone's key entry.
func keysKey(zone string) string { return "k/" + zone }

// ctxFailure reports whether err comes from a context ending: it says
// nothing about the data and is neither cached nor shared.
func ctxFailure(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// cached returns a live cache entry; with renew, not one in the last
// 1/refreshTail of its life (see Refresh).
func (v *Validator) cached(key string, renew bool) (any, time.Time, bool) {
	now := v.now()
	if val, exp, ok := v.good.get(key, now, renew); ok {
		return val, exp, true
	}
	return v.bad.get(key, now, renew)
}

// store caches a result or key entry: Secure and Insecure ones for their
// TTL, Bogus and Indeterminate ones for badTTL, except when the caller's
// context ended the work (that says nothing about the data).
func (v *Validator) store(key string, val any, s Status, err error, ttl time.Duration) {
	now := v.now()
	switch {
	case ctxFailure(err):
	case s == Secure || s == Insecure:
		if ttl > 0 {
			v.good.put(key, val, now, now.Add(ttl))
		}
	default:
		v.bad.put(key, val, now, now.Add(badTTL))
	}
}

// resolve sends the query and validates the response by its kind.
func (v *Validator) resolve(ctx context.Context, w *work, name string, qtype uint16) *Result {
	m, ierr := v.exchange(ctx, w, name, qtype)
	if ierr != nil {
		return finish(&Result{Name: name, Type: qtype, Err: ierr})
	}
	kind, sec := classify(m, name, qtype)
	anchor := v.anchorFor(name, qtype)
	switch kind {
	case kindPositive:
		return v.validateAnswer(ctx, w, name, qtype, m, sec, anchor)
	case kindCNAME:
		r := v.validateAnswer(ctx, w, name, dns.TypeCNAME, m, sec, anchor)
		r.Type = qtype
		if r.Status == Secure {
			if len(r.RRset) != 1 {
				r.Status, r.Err = Bogus, bogusf(rrsetName(name, dns.TypeCNAME), dns.ExtendedErrorCodeDNSBogus, "%d CNAME records at %s", len(r.RRset), name)
				return finish(r)
			}
			r.alias = dns.CanonicalName(r.RRset[0].(*dns.CNAME).Target)
		}
		return r
	case kindDNAME:
		return v.validateDNAME(ctx, w, name, qtype, m, sec, anchor)
	case kindNXDOMAIN, kindNODATA:
		return v.validateDenial(ctx, w, name, qtype, kind, m)
	}
	set := rrsetName(name, qtype)
	return finish(&Result{Name: name, Type: qtype, Rcode: m.Rcode,
		Err: indeterminatef(set, errNetwork, "resolver answered %s for %s", dns.RcodeToString[m.Rcode], set)})
}

// validateAnswer authenticates the RRset of a positive answer (RFC 4035
// §5.3): an RRSIG by a zone at or above the owner, at or below anchor,
// verified with that zone's authenticated DNSKEYs. anchor is the trust
// anchor of the question the RRset answers (Validator.anchorFor), "" for
// none; an RRset above it (a DNAME above the anchor of the name asked)
// cannot be proven under it and is Bogus, whatever anchor covers the
// RRset's own owner: a name below a configured anchor never takes its
// status from a record above that anchor.
func (v *Validator) validateAnswer(ctx context.Context, w *work, name string, qtype uint16, m *dns.Msg, sec section, anchor string) *Result {
	set := rrsetName(name, qtype)
	r := &Result{Name: name, Type: qtype, Rcode: m.Rcode, RRset: sec.rrset}
	switch {
	case anchor == "" && qtype == dns.TypeDS && name != ".":
		r.Err = indeterminatef(set, nil, "no trust anchor at or above %s, the parent zone that holds %s (RFC 4035 §5.2)", parentName(name), set)
		return finish(r)
	case anchor == "":
		r.Err = indeterminatef(set, nil, "no trust anchor at or above %s", name)
		return finish(r)
	case !isAncestorOrSelf(anchor, name):
		r.Err = bogusf(set, dns.ExtendedErrorCodeDNSBogus, "%s is above the trust anchor %s of the name asked: only that anchor's keys prove anything below it (RFC 4035 §4.3)", set, anchor)
		return finish(r)
	}
	if len(sec.sigs) == 0 {
		// Unsigned data is Insecure only below a cut proven unsigned.
		chain, ttl, err := v.provenInsecure(ctx, w, name, qtype, anchor)
		r.Chain = chain
		switch e := err.(type) {
		case nil:
			r.Err = bogusf(set, dns.ExtendedErrorCodeRRSIGsMissing, "no RRSIG over %s", set)
		case *InsecureError:
			ie := *e
			ie.RRset = set
			r.Err, r.Signer = &ie, ie.Zone
			r.TTL = ttl
			for _, rr := range sec.rrset {
				r.TTL = min(r.TTL, time.Duration(rr.Header().Ttl)*time.Second)
			}
		default:
			r.Err = err
		}
		return finish(r)
	}
	var signers []string
	for _, sig := range sec.sigs {
		if len(signers) < maxSignersPerRRset && !contains(signers, sig.SignerName) {
			signers = append(signers, sig.SignerName)
		}
	}
	var first *Result
	for _, signer := range signers {
		c := *r
		got := v.validateWithSigner(ctx, w, &c, m, sec, signer, anchor)
		if got.Status == Secure {
			return got
		}
		if first == nil {
			first = got
		}
	}
	return first
}

func (v *Validator) validateWithSigner(ctx context.Context, w *work, r *Result, m *dns.Msg, sec section, signer, anchor string) *Result {
	set := rrsetName(r.Name, r.Type)
	switch {
	case !isAncestorOrSelf(signer, r.Name):
		r.Err = bogusf(set, dns.ExtendedErrorCodeDNSBogus, "RRSIG %s signer %s is neither the owner nor an ancestor", set, signer)
		return finish(r)
	case r.Type == dns.TypeDS && signer == r.Name:
		// RFC 4035 §5.2: the DS RRset is authoritative in, and signed by,
		// the parent zone.
		r.Err = bogusf(set, dns.ExtendedErrorCodeDNSBogus, "RRSIG %s signed by the child zone %s, not the parent", set, signer)
		return finish(r)
	case !isAncestorOrSelf(anchor, signer):
		r.Err = bogusf(set, dns.ExtendedErrorCodeDNSBogus, "RRSIG %s signer %s is above the trust anchor %s", set, signer, anchor)
		return finish(r)
	}
	// RFC 4035 §5.3.1: the signer is the zone that contains the RRset. An
	// ancestor is only that zone when no zone cut lies between them; the
	// cuts already proven (cached) are checked, which costs no query.
	if cut := v.knownCut(signer, r.Name, r.Type); cut != nil {
		r.Chain = cut.chain
		if cut.status == Insecure {
			r.Signer, r.TTL = cut.zone, cut.expires.Sub(v.now())
			for _, rr := range sec.rrset {
				r.TTL = min(r.TTL, time.Duration(rr.Header().Ttl)*time.Second)
			}
			r.Err = &InsecureError{RRset: set, Zone: cut.zone, EDE: cut.ede,
				Reason: fmt.Sprintf("%s is below %s, proven insecure (%s); its RRSIG by %s, above that cut, proves nothing (RFC 4035 §5.3.1)", set, cut.zone, cut.reason, signer)}
			return finish(r)
		}
		r.Err = bogusf(set, dns.ExtendedErrorCodeDNSBogus, "RRSIG %s signer %s is not the zone that contains it: %s is a zone cut between them (%s) (RFC 4035 §5.3.1)", set, signer, cut.zone, cut.reason)
		return finish(r)
	}
	ke := v.zoneKeys(ctx, w, signer)
	r.Chain = ke.chain
	now := v.now()
	switch ke.status {
	case Secure:
	case Insecure:
		r.Signer = signer
		r.TTL = ke.expires.Sub(now)
		r.Err = &InsecureError{RRset: set, Zone: ke.insecureZone, Reason: fmt.Sprintf("%s is in insecure zone %s: %s", set, ke.insecureZone, ke.reason), EDE: edeOf(ke.err)}
		return finish(r)
	default:
		r.Err = ke.err
		return finish(r)
	}
	sig, _, err := v.verifyRRset(w, set, sec.rrset, sec.sigs, ke.keys, signer, now)
	if err != nil {
		r.Err = err
		return finish(r)
	}
	r.Signer = signer
	r.TTL = min(rrsetTTL(sec.rrset, sig, now), ke.expires.Sub(now))
	r.RRset = capTTL(sec.rrset, sig.OrigTtl)
	// RFC 4035 §5.3.4: fewer labels in the RRSIG than in the owner name
	// means the RRset was synthesized from a wildcard.
	if int(sig.Labels) < dns.CountLabel(r.Name) {
		return v.validateWildcard(w, r, sig, m, ke)
	}
	r.Status = Secure
	return r
}

// rrsetTTL is how long a validated RRset may be used: the least of its
// TTLs, the RRSIG's original TTL (RFC 4035 §5.3.3) and the time left until
// the RRSIG expires, capped at maxTTL.
func rrsetTTL(rrset []dns.RR, sig *dns.RRSIG, now time.Time) time.Duration {
	ttl := min(time.Duration(sig.OrigTtl)*time.Second, sigTime(sig.Expiration, now).Sub(now), maxTTL)
	for _, rr := range rrset {
		ttl = min(ttl, time.Duration(rr.Header().Ttl)*time.Second)
	}
	return ttl
}

// capTTL returns copies of rrset with TTLs no larger than the RRSIG's
// original TTL (RFC 4035 §5.3.3).
func capTTL(rrset []dns.RR, orig uint32) []dns.RR {
	out := make([]dns.RR, len(rrset))
	for i, rr := range rrset {
		out[i] = rr
		if rr.Header().Ttl > orig {
			out[i] = dns.Copy(rr)
			out[i].Header().Ttl = orig
		}
	}
	return out
}

// finish fills Status and EDE from Err and gives unproven outcomes the
// short cache lifetime.
func finish(r *Result) *Result {
	r.Status = statusOf(r.Err)
	r.EDE = edeOf(r.Err)
	if r.Status == Bogus || r.Status == Indeterminate {
		r.TTL = badTTL
	}
	return r
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
