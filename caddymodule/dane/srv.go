package dane

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"

	"github.com/caddy-dane/caddy-dane/caddymodule/dnssec"
)

// SRV service location for DANE (RFC 7673). The SRV RRset is proven by the
// same Prover as TLSA records, and only a Secure one may name the TLSA
// base domains: an SRV target is the base domain of its endpoints, and the
// address records of the target are validated too before they are used
// (§3.2). What DNSSEC did not prove never chooses a key: an Insecure SRV
// RRset or Insecure address records leave their endpoints without DANE
// (refused, or PKIX for the names DNSSEC did prove, under NoTLSAPKIX), and
// a Bogus or indeterminate answer removes them altogether.

// Bounds of SRV resolution.
const (
	// maxSRVTargets caps the targets whose addresses one resolution looks
	// up (lowest priorities first): a hostile RRset of thousands of
	// records must not turn into thousands of lookups.
	maxSRVTargets = 32
	// maxSRVSets caps the cached SRV resolutions (placeholders in the
	// SRV name can make many).
	maxSRVSets = 1000
)

// Families chooses the address records looked up for SRV targets.
type Families struct{ IPv4, IPv6 bool }

// SRVSet is an SRV RRset resolved for DANE.
type SRVSet struct {
	Owner   string        // "_https._tcp.example.com."
	Status  dnssec.Status // of the SRV RRset: Secure or Insecure
	Records []SRVRecord   // lowest priority first
	// Skipped says which targets were left out and why (a bogus or
	// indeterminate address lookup, RFC 7673 §3.2; the target cap).
	Skipped []error
	// Expires is when the first proof behind the set (SRV or address
	// RRset: TTLs and signature expiry) stops holding.
	Expires time.Time
	Result  *dnssec.Result // the SRV lookup
}

// SRVRecord is one SRV record with the endpoints of its target.
type SRVRecord struct {
	Priority, Weight, Port uint16
	Target                 string   // canonical
	Endpoints              []Target // one per usable address
}

// ServiceOwner is the owner name of an SRV RRset, "_<service>._<proto>.<name>."
// (RFC 2782), checked: TLS runs over TCP here, so proto must be tcp.
func ServiceOwner(service, proto, name string) (string, error) {
	service, proto = strings.TrimPrefix(service, "_"), strings.TrimPrefix(proto, "_")
	if service == "" || strings.ContainsAny(service, ". ") {
		return "", fmt.Errorf("SRV service %q is not a single label", service)
	}
	if !strings.EqualFold(proto, "tcp") {
		return "", fmt.Errorf("SRV proto %q: TLS upstreams need tcp", proto)
	}
	if err := ValidateName(name); err != nil {
		return "", fmt.Errorf("SRV name: %v", err)
	}
	return dns.CanonicalName("_" + service + "._tcp." + name), nil
}

// serviceDomain is the name below the _service._proto labels of owner.
func serviceDomain(owner string) string {
	labels := dns.SplitDomainName(owner)
	if len(labels) < 3 {
		return "."
	}
	return dns.Fqdn(strings.Join(labels[2:], "."))
}

// ResolveSRV resolves the SRV RRset at owner for DANE (RFC 7673 §3.1,
// §3.2). A Bogus or indeterminate SRV lookup, or one that proves no
// service, is a *Refusal: the service must not be reached through it. The
// result is cached until it expires, and never longer than maxAge when
// maxAge is positive. fam chooses A and/or AAAA.
func (a *Authenticator) ResolveSRV(ctx context.Context, owner string, fam Families, maxAge time.Duration) (*SRVSet, error) {
	owner = dns.CanonicalName(owner)
	key := fmt.Sprintf("%s/%t/%t", owner, fam.IPv4, fam.IPv6)
	now := a.now()
	if s := a.srvs.get(key, now); s != nil {
		return s, nil
	}
	ch := a.srvs.flight.DoChan(key, func() (any, error) {
		lctx := context.WithoutCancel(ctx) // shared by every caller waiting
		if a.LookupTimeout > 0 {
			var cancel context.CancelFunc
			lctx, cancel = context.WithTimeout(lctx, a.LookupTimeout)
			defer cancel()
		}
		s, err := a.resolveSRV(lctx, owner, fam)
		if err == nil {
			a.srvs.put(key, s, maxAge, a.now())
		}
		return s, err
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*SRVSet), nil
	case <-ctx.Done():
		return nil, &Refusal{Reason: ReasonDNSTimeout, Owner: owner, Err: ctx.Err()}
	}
}

func (a *Authenticator) resolveSRV(ctx context.Context, owner string, fam Families) (*SRVSet, error) {
	if !fam.IPv4 && !fam.IPv6 {
		return nil, NoName(errors.New("neither IPv4 nor IPv6 addresses wanted"))
	}
	now := a.now()
	res := a.Prover.Lookup(ctx, owner, dns.TypeSRV)
	refuse := func(reason Reason, err error) *Refusal {
		return &Refusal{Reason: reason, Owner: owner, Status: res.Status, EDE: res.EDE, Result: res, Err: err}
	}
	if res.Status != dnssec.Secure && res.Status != dnssec.Insecure {
		// RFC 7673 §3.1: a bogus (or failed) SRV lookup aborts.
		return nil, refuse(reasonForLookup(res), res.Err)
	}
	var srvs []*dns.SRV
	for _, rr := range res.RRset {
		if s, ok := rr.(*dns.SRV); ok {
			srvs = append(srvs, s)
		}
	}
	if len(srvs) == 0 {
		return nil, refuse(ReasonNoSRV, fmt.Errorf("no SRV records at %s (rcode %s, %s)", owner, dns.RcodeToString[res.Rcode], res.Status))
	}
	if len(srvs) == 1 && srvs[0].Target == "." {
		return nil, refuse(ReasonNoSRV, fmt.Errorf("%s says the service is not available here (SRV target \".\", RFC 2782)", owner))
	}
	set := &SRVSet{Owner: owner, Status: res.Status, Result: res, Expires: now.Add(res.TTL)}
	slices.SortStableFunc(srvs, func(x, y *dns.SRV) int { return int(x.Priority) - int(y.Priority) })
	service := serviceDomain(owner)
	addrs := map[string][]addrSet{}
	for _, s := range srvs {
		target := dns.CanonicalName(s.Target)
		if target == "." {
			continue
		}
		rec := SRVRecord{Priority: s.Priority, Weight: s.Weight, Port: s.Port, Target: target}
		as, seen := addrs[target]
		if !seen {
			if len(addrs) >= maxSRVTargets {
				set.Skipped = append(set.Skipped, fmt.Errorf("SRV target %s: more than %d targets, not looked up", target, maxSRVTargets))
				continue
			}
			var err error
			as, err = a.targetAddrs(ctx, target, res.Status, fam)
			addrs[target] = as
			if err != nil {
				set.Skipped = append(set.Skipped, err)
			}
		}
		for _, ar := range as {
			set.Expires = minTime(set.Expires, now.Add(ar.res.TTL))
			for _, ip := range ar.ips {
				rec.Endpoints = append(rec.Endpoints, Target{Network: "tcp", Host: ip, Port: int(s.Port),
					srv: &srvProof{owner: owner, service: service, target: target, srvRes: res, addrRes: ar.res}})
			}
		}
		set.Records = append(set.Records, rec)
	}
	return set, nil
}

// addrSet is one address RRset of a target.
type addrSet struct {
	res *dnssec.Result
	ips []string
}

// targetAddrs looks up and validates the address records of an SRV target
// (RFC 7673 §3.2). Under a Secure SRV RRset, only Secure address RRsets are
// used when there is one (their endpoints get DANE); otherwise the Insecure
// ones (their endpoints get no DANE). A Bogus or indeterminate RRset is
// never used. The error says why nothing was usable.
func (a *Authenticator) targetAddrs(ctx context.Context, target string, srvStatus dnssec.Status, fam Families) ([]addrSet, error) {
	var secure, insecure []addrSet
	var failed []string
	for _, q := range []struct {
		want  bool
		qtype uint16
	}{{fam.IPv4, dns.TypeA}, {fam.IPv6, dns.TypeAAAA}} {
		if !q.want {
			continue
		}
		res := a.Prover.Lookup(ctx, target, q.qtype)
		if res.Status != dnssec.Secure && res.Status != dnssec.Insecure {
			failed = append(failed, fmt.Sprintf("%s %s %s: %v", target, dns.TypeToString[q.qtype], res.Status, res.Err))
			continue
		}
		as := addrSet{res: res}
		for _, rr := range res.RRset {
			switch r := rr.(type) {
			case *dns.A:
				as.ips = append(as.ips, r.A.String())
			case *dns.AAAA:
				as.ips = append(as.ips, r.AAAA.String())
			}
		}
		if len(as.ips) == 0 {
			continue
		}
		if res.Status == dnssec.Secure {
			secure = append(secure, as)
		} else {
			insecure = append(insecure, as)
		}
	}
	var out []addrSet
	switch {
	case srvStatus != dnssec.Secure:
		out = append(secure, insecure...) // no DANE for any of them
	case len(secure) > 0:
		out = secure
	default:
		out = insecure
	}
	if len(out) == 0 {
		if len(failed) > 0 {
			return nil, fmt.Errorf("SRV target %s left out (RFC 7673 §3.2): %s", target, strings.Join(failed, "; "))
		}
		return nil, fmt.Errorf("SRV target %s has no address records", target)
	}
	return out, nil
}

// Order returns the endpoints of s in the order RFC 2782 says to try them:
// lowest priority first; within a priority, a weighted random order (a
// record of weight w is picked first with probability w over the sum).
// rnd(n) returns a uniform integer in [0, n).
func (s *SRVSet) Order(rnd func(n int) int) []Target {
	var out []Target
	recs := s.Records
	for len(recs) > 0 {
		n := 1
		for n < len(recs) && recs[n].Priority == recs[0].Priority {
			n++
		}
		group := slices.Clone(recs[:n])
		recs = recs[n:]
		// Weight-0 records first, as RFC 2782 says, so that they get a
		// small chance of being picked first.
		slices.SortStableFunc(group, func(x, y SRVRecord) int {
			return boolInt(x.Weight != 0) - boolInt(y.Weight != 0)
		})
		for len(group) > 0 {
			sum := 0
			for _, r := range group {
				sum += int(r.Weight)
			}
			pick, at := 0, rnd(sum+1)
			for run := 0; pick < len(group); pick++ {
				if run += int(group[pick].Weight); run >= at {
					break
				}
			}
			out = append(out, group[pick].Endpoints...)
			group = slices.Delete(group, pick, pick+1)
		}
	}
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// srvCache keeps SRV resolutions until their proofs expire.
type srvCache struct {
	mu     sync.Mutex
	m      map[string]srvEntry
	flight singleflight.Group
}

type srvEntry struct {
	set     *SRVSet
	expires time.Time
}

func (c *srvCache) get(key string, now time.Time) *SRVSet {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || !now.Before(e.expires) {
		return nil
	}
	return e.set
}

func (c *srvCache) put(key string, s *SRVSet, maxAge time.Duration, now time.Time) {
	exp := s.Expires
	if maxAge > 0 {
		exp = minTime(exp, now.Add(maxAge))
	}
	if !now.Before(exp) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]srvEntry)
	}
	if len(c.m) >= maxSRVSets {
		for k, e := range c.m {
			if !now.Before(e.expires) || len(c.m) >= maxSRVSets {
				delete(c.m, k)
			}
		}
	}
	c.m[key] = srvEntry{set: s, expires: exp}
}
