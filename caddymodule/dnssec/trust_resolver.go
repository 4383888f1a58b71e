package dnssec

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"
)

// DefaultProbeInterval is how long a successful check that the trusted
// resolver validates is believed before it is made again.
const DefaultProbeInterval = 10 * time.Minute

// TrustResolverConfig configures a TrustResolver.
type TrustResolverConfig struct {
	// Resolvers are the trusted resolvers, asked in order. The AD bit
	// travels unprotected (RFC 4035 §4.9.3, RFC 6698 §4): the channel to
	// each must be one nobody else can write to, such as loopback.
	// Checking that is the caller's job; this package cannot see it.
	Resolvers []Resolver
	// Anchors are the trust anchors the resolver is expected to validate
	// with; nil means RootAnchors. They are not used to validate answers,
	// only to check that the resolver validates with them (see Probe).
	Anchors []dns.RR
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxCNAMEs caps the CNAME hops followed in an answer; 0 means
	// DefaultMaxCNAMEs.
	MaxCNAMEs int
	// ProbeInterval is how long a successful Probe is believed; 0 means
	// DefaultProbeInterval.
	ProbeInterval time.Duration
}

// Resolver is one resolver whose verdict TrustResolver takes.
type Resolver struct {
	Name      string    // for reasons and Result.ProvenBy, e.g. "127.0.0.1:53"
	Exchanger Exchanger // sends queries to this resolver only
}

// TrustResolver answers Lookup from a validating resolver's verdict
// instead of validating in process (the "dnssec trust_resolver" mode, as
// Postfix and Exim do DANE with a local Unbound): AD=1 on a NOERROR or
// NXDOMAIN answer is Secure, AD=0 is Insecure, and SERVFAIL with an
// RFC 8914 DNSSEC error code is Bogus.
//
// A resolver that does not validate would set AD on nothing and make every
// answer look Insecure, which an on_no_tlsa pkix policy would turn into a
// PKIX fallback, and a forwarder that copies AD from upstream would pass
// on whatever AD bit reached it over the network. So before the first
// lookup below each trust anchor, and again every ProbeInterval,
// TrustResolver asks each resolver for that anchor zone's DNSKEY RRset and
// requires AD=1 and a key matching the configured anchor, and asks it
// servers.bind CH TXT, which dnsmasq answers with its upstream servers (a
// forwarder is refused; see checkNotForwarder for what this can and cannot
// recognise); a resolver is asked nothing else until that holds, and when
// no resolver passes, every lookup is Indeterminate. Each resolver
// is probed on its own, so a failover never lands on an unchecked one, and
// a failover happens only when a resolver gives no verdict: its Bogus ends
// the lookup as its Secure and Insecure do (see Lookup).
//
// It keeps no cache of its own: the resolver caches, and dane.Authenticator
// keeps the Secure TLSA sets. It is safe for concurrent use.
type TrustResolver struct {
	resolvers []Resolver
	anchors   map[string]*anchorSet
	now       func() time.Time
	maxCNAMEs int
	interval  time.Duration

	mu     sync.Mutex
	probes map[probeKey]probeState
	flight singleflight.Group
}

type probeKey struct {
	resolver int // index in resolvers
	zone     string
}

// probeState is the outcome of the last probe of one resolver for one
// anchor zone.
type probeState struct {
	err   *IndeterminateError // nil when the resolver validates
	until time.Time
}

// NewTrustResolver returns a TrustResolver for c.
func NewTrustResolver(c TrustResolverConfig) (*TrustResolver, error) {
	if len(c.Resolvers) == 0 {
		return nil, errors.New("dnssec: no trusted resolver")
	}
	for i, r := range c.Resolvers {
		if r.Exchanger == nil {
			return nil, fmt.Errorf("dnssec: trusted resolver %d (%s) has no Exchanger", i, r.Name)
		}
		if r.Name == "" {
			c.Resolvers[i].Name = fmt.Sprintf("trusted resolver %d", i+1)
		}
	}
	rrs := c.Anchors
	if rrs == nil {
		rrs = RootAnchors()
	}
	anchors, err := anchorSets(rrs)
	if err != nil {
		return nil, err
	}
	t := &TrustResolver{
		resolvers: c.Resolvers,
		anchors:   anchors,
		now:       c.Now,
		maxCNAMEs: c.MaxCNAMEs,
		interval:  c.ProbeInterval,
		probes:    make(map[probeKey]probeState),
	}
	if t.now == nil {
		t.now = time.Now
	}
	if t.maxCNAMEs <= 0 {
		t.maxCNAMEs = DefaultMaxCNAMEs
	}
	if t.interval <= 0 {
		t.interval = DefaultProbeInterval
	}
	return t, nil
}

// newTrustQuery asks for the resolver's verdict: the validator's query
// (RD=1, EDNS0 DO=1, so the resolver also hands over RRSIGs for the Signer
// shown in reports) with CD=0 (validate) and AD=1 (RFC 6840 §5.7: report
// it).
func newTrustQuery(name string, qtype uint16) *dns.Msg {
	q := newQuery(name, qtype)
	q.CheckingDisabled = false
	q.AuthenticatedData = true
	return q
}

// ask sends one query to resolver i and returns an answer to exactly that
// question, or why there is none.
func (t *TrustResolver) ask(ctx context.Context, i int, name string, qtype uint16) (*dns.Msg, *IndeterminateError) {
	res := t.resolvers[i]
	set := rrsetName(name, qtype)
	if err := ctx.Err(); err != nil {
		return nil, ctxIndeterminate(set, err)
	}
	q := newTrustQuery(name, qtype)
	m, err := res.Exchanger.Exchange(ctx, q)
	if err != nil {
		return nil, exchangeFailure(res.Name, set, err)
	}
	if why := mismatch(q, m); why != "" {
		return nil, indeterminatef(set, errNetwork, "response for %s from %s ignored: %s", set, res.Name, why)
	}
	return m, nil
}

// exchangeFailure is why resolver res gave no answer for set.
func exchangeFailure(res, set string, err error) *IndeterminateError {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return indeterminatef(set, context.DeadlineExceeded, "dns timeout asking %s", res)
	case errors.Is(err, context.Canceled):
		return ctxIndeterminate(set, err)
	}
	return indeterminatef(set, fmt.Errorf("%w: %w", errNetwork, err), "dns exchange for %s with %s: %v", set, res, err)
}

// Probe checks that every resolver validates with the trust anchor of
// zone: its answer for the zone's DNSKEY RRset must carry AD=1 and include
// a key matching the anchor; and that it is not a forwarder that gives
// itself away (see checkNotForwarder). It returns the first failure. The
// outcome is remembered per resolver (success for the probe interval,
// failure for badTTL) and concurrent callers share one probe: two queries
// per resolver and anchor zone every ProbeInterval.
func (t *TrustResolver) Probe(ctx context.Context, zone string) error {
	for i := range t.resolvers {
		if err := t.probe(ctx, i, dns.CanonicalName(zone)); err != nil {
			return err
		}
	}
	return nil
}

func (t *TrustResolver) probe(ctx context.Context, i int, zone string) *IndeterminateError {
	now := t.now()
	key := probeKey{i, zone}
	t.mu.Lock()
	st, ok := t.probes[key]
	t.mu.Unlock()
	if ok && now.Before(st.until) {
		return st.err
	}
	for attempt := 0; ; attempt++ {
		ch := t.flight.DoChan(strconv.Itoa(i)+"/"+zone, func() (any, error) {
			err := t.checkValidates(ctx, i, zone)
			if err == nil {
				err = t.checkNotForwarder(ctx, i)
			}
			if err == nil || !ctxFailure(err.Err) {
				ttl := t.interval
				if err != nil {
					ttl = badTTL
				}
				t.mu.Lock()
				t.probes[key] = probeState{err: err, until: t.now().Add(ttl)}
				t.mu.Unlock()
			}
			return err, nil
		})
		select {
		case res := <-ch:
			err := res.Val.(*IndeterminateError)
			if err != nil && res.Shared && attempt == 0 && ctx.Err() == nil && ctxFailure(err.Err) {
				continue // the caller that ran the probe gave up; try on our own context
			}
			return err
		case <-ctx.Done():
			err := ctxIndeterminate(rrsetName(zone, dns.TypeDNSKEY), ctx.Err())
			err.Reason = "cannot check that " + t.resolvers[i].Name + " validates: " + err.Reason
			return err
		}
	}
}

// checkValidates is one probe of resolver i for zone (see Probe).
func (t *TrustResolver) checkValidates(ctx context.Context, i int, zone string) *IndeterminateError {
	set := rrsetName(zone, dns.TypeDNSKEY)
	name := t.resolvers[i].Name
	a := t.anchors[zone]
	if a == nil {
		return indeterminatef(set, nil, "no trust anchor for %s", zone)
	}
	m, ierr := t.ask(ctx, i, zone, dns.TypeDNSKEY)
	if ierr != nil {
		ierr.Reason = "cannot check that " + name + " validates: " + ierr.Reason
		return ierr
	}
	notValidating := func(format string, args ...any) *IndeterminateError {
		return indeterminatef(set, nil, "%s does not validate DNSSEC with the configured trust anchor: %s; refusing to trust its AD bit", name, fmt.Sprintf(format, args...))
	}
	if m.Rcode != dns.RcodeSuccess {
		return notValidating("it answered %s for %s%s", dns.RcodeToString[m.Rcode], set, edeText(m))
	}
	if !m.AuthenticatedData {
		return notValidating("its answer for %s came without the AD bit", set)
	}
	var keys []*dns.DNSKEY
	for _, rr := range extract(m.Answer, zone, dns.TypeDNSKEY).rrset {
		keys = append(keys, rr.(*dns.DNSKEY))
	}
	for _, k := range keys {
		zk := newZoneKey(k)
		for _, d := range a.ds {
			if dsMatches(d, zk) {
				return nil
			}
		}
		for _, ak := range a.keys {
			if keyMatches(ak, k) {
				return nil
			}
		}
	}
	tags := make([]string, len(keys))
	for i, k := range keys {
		tags[i] = fmt.Sprint(k.KeyTag())
	}
	return notValidating("none of its %s keys (%s) matches the trust anchor", set, strings.Join(tags, ","))
}

// serversBind is the CHAOS TXT name under which dnsmasq lists the upstream
// servers it forwards to.
const serversBind = "servers.bind."

// rcodeError is an Exchanger's error for an answer whose RCODE is an error
// (resolver.ServerError for SERVFAIL, REFUSED, FORMERR, NOTIMP): Response
// is that answer, nil when none came.
type rcodeError interface {
	error
	Response() *dns.Msg
}

// checkNotForwarder refuses resolver i if it shows itself to be a
// forwarder. The DNSKEY check of checkValidates cannot tell a validator
// from a forwarder that copies the AD bit of a validating upstream (dnsmasq
// with proxy-dnssec, say, on loopback in front of a validator elsewhere):
// both answer with AD=1 and the anchor's key. But then the AD bit crossed
// the network between the forwarder and its upstream unprotected (RFC 4035
// §4.9.3, RFC 6698 §4), and sat in a cache that, dnsmasq's manual says,
// cannot keep it right in all cases; it proves nothing.
//
// On the wire a forwarder that copies AD looks like a validator, except
// where it answers a question itself. dnsmasq (2.80 and later) answers
// every CHAOS query under bind. and server. itself and never forwards one;
// for servers.bind TXT it lists its upstream servers ("192.0.2.1#53 7 0":
// address#port, queries, failures). That name is dnsmasq's own statistics,
// not a convention validators share: Unbound answers it REFUSED. So a
// NOERROR answer with CHAOS TXT records at servers.bind is taken as what it
// says, that the resolver forwards. Whether it then copies its upstream's
// AD bit (proxy-dnssec) or validates itself (dnssec) the wire does not
// tell apart, so it is refused either way.
//
// What this cannot see: dnsmasq with --no-ident (it answers NOTIMP, as a
// server that does not implement CHAOS may), and forwarders that pass the
// AD bit on but answer no such question (CoreDNS's forward and cache
// plugins, AdGuard's dnsproxy, ...): keeping those out of the resolvers is
// the operator's part, as the README says. An answer with an error RCODE,
// an empty answer or an NXDOMAIN is no evidence either way and passes; no
// answer at all (a timeout) fails the probe, as it does for the DNSKEY
// query.
func (t *TrustResolver) checkNotForwarder(ctx context.Context, i int) *IndeterminateError {
	res := t.resolvers[i]
	set := serversBind + " CH TXT"
	q := new(dns.Msg)
	q.SetQuestion(serversBind, dns.TypeTXT)
	q.Question[0].Qclass = dns.ClassCHAOS
	q.RecursionDesired = false // dnsmasq answers it from its own state
	q.SetEdns0(ednsUDPSize, false)
	m, err := res.Exchanger.Exchange(ctx, q)
	if err != nil {
		var re rcodeError
		if errors.As(err, &re) && re.Response() != nil {
			return nil // it answered, with an error: no list of servers
		}
		ierr := exchangeFailure(res.Name, set, err)
		ierr.Reason = "cannot check that " + res.Name + " is not a forwarder: " + ierr.Reason
		return ierr
	}
	if why := mismatch(q, m); why != "" {
		return indeterminatef(set, errNetwork, "cannot check that %s is not a forwarder: response for %s ignored: %s", res.Name, set, why)
	}
	if m.Rcode != dns.RcodeSuccess {
		return nil
	}
	found := false
	var servers []string
	for _, rr := range m.Answer {
		txt, ok := rr.(*dns.TXT)
		if !ok || txt.Hdr.Class != dns.ClassCHAOS || !equalNames(txt.Hdr.Name, serversBind) {
			continue
		}
		found = true
		servers = append(servers, txt.Txt...)
	}
	if !found {
		return nil
	}
	return indeterminatef(set, nil, "%s is a forwarder, not a validator: it answered %s with its upstream servers (%s), as dnsmasq does, and a forwarder's AD bit is its upstream's, carried over a link and through a cache this check cannot see (dnsmasq proxy-dnssec); refusing to trust its AD bit", res.Name, set, quoteList(servers, 4))
}

// quoteList quotes up to n of the resolver's strings for a reason, each
// cut short: they end up in our logs.
func quoteList(ss []string, n int) string {
	if len(ss) == 0 {
		return "none listed"
	}
	var out []string
	for i, s := range ss {
		if i == n {
			out = append(out, fmt.Sprintf("... %d in all", len(ss)))
			break
		}
		if len(s) > 100 {
			s = s[:100] + "..."
		}
		out = append(out, strconv.Quote(s))
	}
	return strings.Join(out, ", ")
}

// Lookup asks the resolver for name/qtype and takes its verdict (see
// TrustResolver). CNAMEs (and CNAMEs synthesized from DNAMEs) in the
// answer are followed up to MaxCNAMEs; they are reported in Result.CNAME
// only when the resolver vouched for the whole answer. It never returns nil.
func (t *TrustResolver) Lookup(ctx context.Context, name string, qtype uint16) *Result {
	if _, ok := dns.IsDomainName(name); !ok || name == "" {
		return finish(&Result{Name: name, Type: qtype, Err: indeterminatef(rrsetName(name, qtype), nil, "invalid domain name %q", name)})
	}
	name = dns.CanonicalName(name)
	set := rrsetName(name, qtype)
	// The resolver must validate with the anchor that covers the answer:
	// for DS, the one above the parent (RFC 4035 §5.2).
	anchor := anchorForIn(t.anchors, name, qtype)
	if anchor == "" {
		return finish(&Result{Name: name, Type: qtype, Err: indeterminatef(set, nil, "no trust anchor at or above %s", name)})
	}
	// Ask the resolvers in order, as resolver.Client would, but each only
	// once it passed its own probe. The first DNSSEC verdict ends the
	// lookup, whatever it is: Secure or Insecure (a NOERROR or NXDOMAIN
	// answer) and Bogus (a SERVFAIL with a DNSSEC extended error) alike.
	// Asking on after a Bogus verdict would let a second resolver's
	// Insecure or Secure answer overrule a validator that found the data
	// forged (RFC 4035 §5.5: bogus data is not to be used), so a Bogus
	// verdict is as final as any other.
	//
	// Only an outcome that is no verdict moves on: a failed probe, a
	// timeout, REFUSED, or a SERVFAIL without a DNSSEC extended error.
	// The next resolver's verdict is then the result, even Insecure: that
	// resolver passed the same probe (it validates, with our anchors, on
	// loopback), and it reached its verdict on its own, from the chain of
	// trust. The first resolver said nothing about the data: a SERVFAIL
	// without a DNSSEC code is an unreachable server, a resource limit, or
	// a validator that does not say why (Unbound without ede: yes). And
	// Insecure from a validator is a proof it checked, a signed denial of
	// the DS on the way down (RFC 4035 §5.2), not the mere absence of one:
	// whoever cannot forge signatures cannot make it up. An operator who
	// wants a SERVFAIL without a code to end the lookup too turns on
	// extended errors in the resolver (it is then Bogus) or lists one.
	var last *Result
	for i := range t.resolvers {
		r, decided := t.ask1(ctx, i, anchor, name, qtype)
		if decided {
			return r
		}
		// Keep the most telling failure: anything over our context
		// ending.
		if last == nil || ctx.Err() == nil {
			last = r
		}
		if ctx.Err() != nil {
			break
		}
	}
	return last
}

// ask1 takes resolver i's verdict on name/qtype; decided reports whether
// the resolver gave one after a good probe: a NOERROR or NXDOMAIN answer,
// or a SERVFAIL that its RFC 8914 extended error says is a DNSSEC failure
// (Bogus). A NOERROR or NXDOMAIN answer decides even when verdict cannot
// read it (a CNAME chain longer than MaxCNAMEs): another resolver would
// hand over the same chain. Every other outcome is Indeterminate and does
// not decide.
func (t *TrustResolver) ask1(ctx context.Context, i int, anchor, name string, qtype uint16) (r *Result, decided bool) {
	res := t.resolvers[i].Name
	set := rrsetName(name, qtype)
	r = &Result{Name: name, Type: qtype, ProvenBy: res}
	if err := t.probe(ctx, i, anchor); err != nil {
		r.Err = err
		return finish(r), false
	}
	m, ierr := t.ask(ctx, i, name, qtype)
	if ierr != nil {
		r.Err = ierr
		return finish(r), false
	}
	r.Rcode = m.Rcode
	switch m.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
	case dns.RcodeServerFailure:
		r.Err = servfail(res, set, m)
		r = finish(r)
		return r, r.Status == Bogus
	default:
		r.Err = indeterminatef(set, errNetwork, "%s answered %s for %s", res, dns.RcodeToString[m.Rcode], set)
		return finish(r), false
	}
	return t.verdict(r, m, name, qtype), true
}

// verdict reads resolver r.ProvenBy's NOERROR or NXDOMAIN answer m.
func (t *TrustResolver) verdict(r *Result, m *dns.Msg, name string, qtype uint16) *Result {
	res, set := r.ProvenBy, rrsetName(name, qtype)

	// Walk the answer from name along its CNAMEs to the RRset of qtype.
	owner := name
	var cnames []*dns.CNAME
	ttl := maxTTL
	var sec section
	for {
		sec = extract(m.Answer, owner, qtype)
		if len(sec.rrset) > 0 || qtype == dns.TypeCNAME {
			break
		}
		c := extract(m.Answer, owner, dns.TypeCNAME)
		if len(c.rrset) == 0 {
			break
		}
		if len(c.rrset) != 1 {
			r.Err = bogusf(rrsetName(owner, dns.TypeCNAME), dns.ExtendedErrorCodeDNSBogus, "%d CNAME records at %s in the answer from %s", len(c.rrset), owner, res)
			return finish(r)
		}
		if len(cnames) == t.maxCNAMEs {
			r.Err = indeterminatef(set, ErrLimitExceeded, "more than %d CNAMEs from %s", t.maxCNAMEs, name)
			return finish(r)
		}
		cn := c.rrset[0].(*dns.CNAME)
		target := dns.CanonicalName(cn.Target)
		for _, prev := range cnames {
			if prev.Hdr.Name == target {
				r.Err = bogusf(rrsetName(target, dns.TypeCNAME), dns.ExtendedErrorCodeDNSBogus, "CNAME loop at %s from %s", target, name)
				return finish(r)
			}
		}
		if target == name {
			r.Err = bogusf(rrsetName(target, dns.TypeCNAME), dns.ExtendedErrorCodeDNSBogus, "CNAME loop at %s from %s", target, name)
			return finish(r)
		}
		cnames = append(cnames, cn)
		ttl = min(ttl, time.Duration(cn.Hdr.Ttl)*time.Second)
		owner = target
	}
	r.RRset = sec.rrset
	for _, rr := range sec.rrset {
		ttl = min(ttl, time.Duration(rr.Header().Ttl)*time.Second)
	}
	if len(sec.rrset) == 0 {
		ttl = min(ttl, negativeTTL(m))
	}
	for _, sig := range sec.sigs {
		r.Signer = sig.SignerName
		break
	}
	r.TTL = ttl
	if !m.AuthenticatedData {
		// A validating resolver clears AD on data it proved insecure
		// (RFC 4035 §3.2.3); bogus data it answers with SERVFAIL. Which
		// hop of a CNAME chain was insecure it does not say, so no
		// CNAME is reported as secure.
		r.Signer = ""
		r.Err = &InsecureError{RRset: set, Reason: fmt.Sprintf("%s did not set the AD bit on its %s answer for %s: the trusted resolver found it not secure", res, dns.RcodeToString[m.Rcode], set)}
		return finish(r)
	}
	if len(cnames) > 0 {
		r.CNAME = cnames
	}
	r.Status = Secure
	return r
}

// negativeTTL is how long a negative answer may be used (RFC 2308 §5):
// the lesser of the SOA's TTL and its MINIMUM field; 0 without an SOA.
func negativeTTL(m *dns.Msg) time.Duration {
	for _, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return time.Duration(min(soa.Hdr.Ttl, soa.Minttl)) * time.Second
		}
	}
	return 0
}

// servfail turns the resolver's SERVFAIL into Bogus when its RFC 8914
// extended error says DNSSEC validation failed, Indeterminate otherwise.
func servfail(res, set string, m *dns.Msg) error {
	ede := edeOption(m)
	if ede != nil && ede.InfoCode >= dns.ExtendedErrorCodeDNSBogus && ede.InfoCode <= dns.ExtendedErrorCodeNSECMissing {
		return bogusf(set, ede.InfoCode, "%s answered SERVFAIL for %s%s", res, set, edeText(m))
	}
	err := indeterminatef(set, nil, "%s answered SERVFAIL for %s%s", res, set, edeText(m))
	if ede != nil {
		err.EDE = ede.InfoCode
	}
	return err
}

// edeOption returns the first RFC 8914 extended error in m, or nil.
func edeOption(m *dns.Msg) *dns.EDNS0_EDE {
	opt := m.IsEdns0()
	if opt == nil {
		return nil
	}
	for _, o := range opt.Option {
		if e, ok := o.(*dns.EDNS0_EDE); ok {
			return e
		}
	}
	return nil
}

// edeText describes m's extended error for a reason: " (EDE 7 Signature
// Expired: text)", or "" without one. The resolver's text is quoted and
// cut short: it ends up in our logs.
func edeText(m *dns.Msg) string {
	e := edeOption(m)
	if e == nil {
		return ""
	}
	s := fmt.Sprintf(" (EDE %d %s", e.InfoCode, dns.ExtendedErrorCodeToString[e.InfoCode])
	if txt := e.ExtraText; txt != "" {
		if len(txt) > 200 {
			txt = txt[:200] + "..."
		}
		s += fmt.Sprintf(": %q", txt)
	}
	return s + ")"
}
