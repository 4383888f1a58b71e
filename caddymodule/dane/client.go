package dane

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/tlsa"
)

// DANE authentication of TLS clients, draft-ietf-dance-client-auth-13
// ("the draft" below; its section numbers).
//
// The draft's client conveys the full TLSA owner name of its identity in
// the DANE Client Identity extension of its Certificate message (§6, §7),
// and the server queries exactly that name (§8.2). Go's crypto/tls neither
// sends nor exposes that extension, so a server built on it never sees
// one: the identity here is taken from the only authenticated-by-key
// place left, the leaf certificate's dNSName SANs (§5), and the owner name
// is built from it by a configured rule (ClientPolicy: Format 3, the
// freeform identity of §2.3, or Format 1, _service.<name>, of §2.1). That
// is a local policy in the sense of §8.2 ("the server's general
// client-authentication policy"), and it is deliberately strict:
//
//   - a name is a client identity only when the operator's allow-list
//     admits it (§8.2: servers "may have their own allowlisting"); a name
//     that merely has TLSA records is not admitted, and a name outside
//     the list costs no DNS query at all;
//   - exactly one SAN may be admitted: with several, the extension is
//     what would say which one is the client's name (§6, §8.2), and
//     without it the certificate is ambiguous, so it is refused;
//   - the TLSA RRset must be DNSSEC-Secure and match (§8.2 steps 3-4),
//     with the usages of RFC 7671 and the clientAuth purpose: DANE-EE(3)
//     binds the key (the name came from the certificate anyway), DANE-TA(2)
//     and PKIX-TA(0)/PKIX-EE(1) need the name in the leaf (§5), PKIX ones
//     a valid chain to the PKIX roots for clientAuth (§4);
//   - every other outcome is a refusal: there is no fallback to PKIX
//     (on_no_tlsa does not apply to clients) and no "unauthenticated"
//     downgrade (§8.2 allows one "if TLS server policy allows"; ours does
//     not).
//
// A handshake triggers a DNS lookup chosen by the client's certificate,
// so the lookups are bounded (§12 of the draft warns of exactly this):
// at most ClientLookups run at once and at most ClientLookupRate start a
// second, a handshake that finds no slot or no token is refused rather
// than queued, and a refused identity is
// remembered for ClientNegativeTTL (bounded in number) so that repeating
// it costs no DNS.

// ClientPolicy decides which client names are admitted and where their
// TLSA records are. The zero value admits nothing.
type ClientPolicy struct {
	// Names are client names admitted exactly ("api.example.com").
	Names []string
	// Suffixes admit every name strictly below one of these domains:
	// "clients.example.com" admits "a.clients.example.com", not
	// "clients.example.com" itself (list it in Names for that).
	Suffixes []string
	// Service is the service label of the Format 1 owner name (draft
	// §2.1): TLSA records at "_<Service>.<client name>". "" is the
	// freeform identity of §2.3: TLSA records at the client name itself.
	Service string
}

// Bounds of client authentication: a TLS client chooses the name looked up.
const (
	// DefaultClientLookups is the number of client TLSA lookups that may
	// run at once when Authenticator.ClientLookups is 0.
	DefaultClientLookups = 32
	// DefaultClientNegativeTTL is how long a refused client identity is
	// remembered when Authenticator.ClientNegativeTTL is 0.
	DefaultClientNegativeTTL = 10 * time.Second
	// DefaultClientLookupRate is the sustained rate, per second, of cold
	// client lookups when Authenticator.ClientLookupRate is 0; bursts of
	// up to the number of lookup slots are allowed. With a fast resolver
	// the slots alone would let a flood of fresh names send thousands of
	// queries a second; the rate bounds what the resolver sees.
	DefaultClientLookupRate = 100
	// maxClientNegative caps the refused identities remembered: when it
	// is reached, expired entries go first, then arbitrary ones.
	maxClientNegative = 4096
)

// ReasonNotAllowed and ReasonBusy are the refusals particular to clients.
const (
	ReasonNotAllowed Reason = "name not allowed" // the client name is outside the allow-list
	ReasonBusy       Reason = "lookups busy"     // every client lookup slot is in use
)

// Validate checks the policy: at least one admitted name or suffix, every
// one a DNS name, and a service label of letters, digits and hyphens.
func (p ClientPolicy) Validate() error {
	if len(p.Names) == 0 && len(p.Suffixes) == 0 {
		return errors.New("no client names or suffixes are allowed: a name is never admitted just because it has TLSA records")
	}
	for _, n := range p.Names {
		if err := validateClientName(n); err != nil {
			return err
		}
	}
	// A suffix may start with an underscore label: the draft's device
	// identities (§2.2) live below "_device.<org domain>".
	for _, s := range p.Suffixes {
		if err := ValidateName(s); err != nil {
			return fmt.Errorf("client name suffix: %v", err)
		}
	}
	if p.Service != "" {
		if err := validateServiceLabel(p.Service); err != nil {
			return err
		}
	}
	return nil
}

// validateServiceLabel: 1 to 62 letters, digits and hyphens, neither first
// nor last a hyphen (an IANA service name, RFC 6335 §5.1, or a custom
// string of the same alphabet: draft §2.1); the underscore is ours to add.
func validateServiceLabel(s string) error {
	s = strings.TrimPrefix(s, "_")
	if s == "" || len(s) > 62 || s[0] == '-' || s[len(s)-1] == '-' {
		return fmt.Errorf("client service label %q: want 1-62 letters, digits and hyphens, not starting or ending with a hyphen", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("client service label %q: byte %q at %d is not a letter, digit or hyphen", s, c, i)
		}
	}
	return nil
}

// validateClientName checks that name can be a client identity: a DNS
// name (ValidateName) whose first label is not an underscore label. Such
// labels are attribute leaves (RFC 8552), never a client's own name; the
// one that matters, "_443._tcp.api.example.com", would make a server's
// TLSA RRset answer for a client.
func validateClientName(name string) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("client name: %v", err)
	}
	if strings.HasPrefix(name, "_") {
		return fmt.Errorf("client name %q starts with an underscore label, which names an attribute (RFC 8552), not a client", name)
	}
	return nil
}

// ClientNames returns the dNSName SANs of leaf that can be client
// identities (draft §5), canonical, without duplicates, in certificate
// order: wildcards ("*.example.com" names many clients, not one) and
// names that are not valid DNS host names are left out.
func ClientNames(leaf *x509.Certificate) []string {
	var out []string
	for _, n := range leaf.DNSNames {
		if strings.Contains(n, "*") || validateClientName(n) != nil {
			continue
		}
		c := dns.CanonicalName(n)
		if !contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// allows reports whether the canonical name is admitted.
func (p ClientPolicy) allows(name string) bool {
	for _, n := range p.Names {
		if dns.CanonicalName(n) == name {
			return true
		}
	}
	for _, s := range p.Suffixes {
		if strings.HasSuffix(name, "."+dns.CanonicalName(s)) {
			return true
		}
	}
	return false
}

// ClientOwner is the TLSA owner name of a client name under service: the
// name itself (draft §2.3), or "_<service>.<name>" (§2.1). The owner must
// fit a DNS name (255 octets).
func ClientOwner(name, service string) (string, error) {
	if err := validateClientName(name); err != nil {
		return "", err
	}
	owner := dns.CanonicalName(name)
	if service != "" {
		if err := validateServiceLabel(service); err != nil {
			return "", err
		}
		owner = "_" + strings.ToLower(strings.TrimPrefix(service, "_")) + "." + owner
	}
	if err := ValidateName(owner); err != nil {
		return "", fmt.Errorf("client TLSA owner: %v", err)
	}
	// RFC 1035 §2.3.4: 255 octets on the wire, which for a name of plain
	// labels (ValidateName allows no escapes) is its presentation length
	// with the trailing dot, plus one. dns.IsDomainName lets 256 through.
	if len(owner)+1 > 255 {
		return "", fmt.Errorf("client TLSA owner %s is %d octets long on the wire, more than 255 (RFC 1035 §2.3.4)", owner, len(owner)+1)
	}
	return owner, nil
}

// clientIdentity is what ClientPolicy.Target decided about a client.
type clientIdentity struct {
	name  string // the client's name, canonical: what a Verdict reports
	owner string // its TLSA owner name
}

// Target returns the Target that authenticates the client whose leaf
// certificate is leaf, or a *Refusal (ReasonNoName: no usable dNSName, or
// more than one admitted; ReasonNotAllowed: none admitted) before any DNS.
func (p ClientPolicy) Target(leaf *x509.Certificate) (Target, error) {
	names := ClientNames(leaf)
	if len(names) == 0 {
		return Target{}, NoName(fmt.Errorf("the client certificate has no dNSName that can be a client identity (draft-ietf-dance-client-auth §5; SANs %s)", clip(leaf.DNSNames)))
	}
	var admitted []string
	for _, n := range names {
		if p.allows(n) {
			admitted = append(admitted, n)
		}
	}
	switch len(admitted) {
	case 0:
		return Target{}, &Refusal{Reason: ReasonNotAllowed, Err: fmt.Errorf("client name %s is not in the allowed names or suffixes", clip(names))}
	case 1:
	default:
		return Target{}, NoName(fmt.Errorf("the client certificate names %d allowed client identities (%s); without the DANE Client Identity extension (draft-ietf-dance-client-auth §6, §8.2) none of them is the client's name", len(admitted), clip(admitted)))
	}
	owner, err := ClientOwner(admitted[0], p.Service)
	if err != nil {
		return Target{}, NoName(err)
	}
	return Target{client: &clientIdentity{name: admitted[0], owner: owner}}, nil
}

// clip lists names for an error message, at most four.
func clip(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	if len(names) > 4 {
		return strings.Join(names[:4], ", ") + fmt.Sprintf(" and %d more", len(names)-4)
	}
	return strings.Join(names, ", ")
}

// identity is the Identity of a client: no address to connect to, the
// client's name as the one reference identifier, and Owner set, which
// keeps its Key apart from every server Identity.
func (c *clientIdentity) identity() Identity {
	return Identity{Base: c.name, Names: []string{c.name}, Owner: c.owner}
}

// VerifyClient authenticates a TLS client by DANE: chain is what it
// presented, leaf first (crypto/tls has checked it holds the leaf's key).
// It goes through Authenticate, with a Handshake that presents chain; the
// Verdict's Identity.Base is the client's verified name.
func (a *Authenticator) VerifyClient(ctx context.Context, p ClientPolicy, chain []*x509.Certificate) (*Verdict, error) {
	if len(chain) == 0 || chain[0] == nil {
		return nil, NoName(errors.New("the client presented no certificate"))
	}
	t, err := p.Target(chain[0])
	if err != nil {
		return nil, err
	}
	return a.Authenticate(ctx, t, func(_ context.Context, peer Peer) error { return peer.Verify(chain) })
}

// clientState bounds the lookups that clients trigger.
type clientState struct {
	once   sync.Once
	sem    chan struct{}
	bucket tokenBucket
	mu     sync.Mutex
	neg    map[string]negEntry
}

// tokenBucket admits cold lookups at a sustained rate with bursts.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
}

// take spends a token if one is left at now.
func (b *tokenBucket) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	if now.After(b.last) || b.last.IsZero() {
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

type negEntry struct {
	refusal *Refusal
	expires time.Time
}

func (a *Authenticator) clientInit() *clientState {
	c := &a.client
	c.once.Do(func() {
		n := a.ClientLookups
		if n <= 0 {
			n = DefaultClientLookups
		}
		c.sem = make(chan struct{}, n)
		c.neg = make(map[string]negEntry)
		rate := a.ClientLookupRate
		if rate <= 0 {
			rate = DefaultClientLookupRate
		}
		c.bucket = tokenBucket{rate: rate, burst: float64(n), tokens: float64(n)}
	})
	return c
}

func (a *Authenticator) clientNegativeTTL() time.Duration {
	if a.ClientNegativeTTL > 0 {
		return a.ClientNegativeTTL
	}
	return DefaultClientNegativeTTL
}

// lookupClient finds the DNSSEC-secure TLSA RRset at a client's owner
// name. A Secure set is cached as a server's is (keyed by owner, port 0,
// which no server has) and prefetched; a refusal is remembered for the
// negative TTL. A cold lookup needs one of ClientLookups slots and a token
// of the ClientLookupRate bucket; without either the handshake is refused
// (ReasonBusy) rather than queued, so a flood of handshakes with fresh
// names cannot hold more than that many lookups, nor their memory, at
// once, nor send the resolver more than that rate. There is no PKIX fallback: a client
// without DANE is not authenticated (OnNoTLSA is for servers).
func (a *Authenticator) lookupClient(ctx context.Context, id Identity) (*TLSASet, error) {
	now := a.now()
	if e := a.sets.get(id.Owner, 0, now); e != nil {
		if a.Refresh != nil && !now.Before(e.prefetchAt) && e.refreshing.CompareAndSwap(false, true) {
			go a.prefetch(id.Owner, 0, e.set)
		}
		return e.set, nil
	}
	c := a.clientInit()
	c.mu.Lock()
	ne, ok := c.neg[id.Owner]
	c.mu.Unlock()
	if ok && now.Before(ne.expires) {
		return nil, ne.refusal
	}
	select {
	case c.sem <- struct{}{}:
		defer func() { <-c.sem }()
	default:
		return nil, &Refusal{Reason: ReasonBusy, Owner: id.Owner,
			Err: fmt.Errorf("all %d client TLSA lookups are in use; the handshake is refused rather than queued", cap(c.sem))}
	}
	if !c.bucket.take(now) {
		return nil, &Refusal{Reason: ReasonBusy, Owner: id.Owner,
			Err: fmt.Errorf("more than %g client TLSA lookups a second; the handshake is refused rather than queued", c.bucket.rate)}
	}
	res := a.Prover.Lookup(ctx, id.Owner, dns.TypeTLSA)
	set, err := newTLSASet(id.Base, id.Owner, res, now)
	if err != nil {
		a.rememberRefusal(c, id.Owner, err, now)
		return nil, err
	}
	a.sets.put(id.Owner, 0, set, now)
	return set, nil
}

// rememberRefusal keeps a trimmed copy of a lookup refusal (no proof
// chain, no records: bounded size) for the negative TTL.
func (a *Authenticator) rememberRefusal(c *clientState, owner string, err error, now time.Time) {
	var r *Refusal
	if !errors.As(err, &r) {
		return
	}
	ttl := a.clientNegativeTTL()
	kept := &Refusal{Reason: r.Reason, Owner: r.Owner, Status: r.Status, EDE: r.EDE,
		Err: fmt.Errorf("%s (refusal remembered for %s)", errText(r.Err), ttl)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.neg) >= maxClientNegative {
		for k, e := range c.neg {
			if !now.Before(e.expires) {
				delete(c.neg, k)
			}
		}
		for k := range c.neg {
			if len(c.neg) < maxClientNegative {
				break
			}
			delete(c.neg, k) // map order: an arbitrary victim
		}
	}
	c.neg[owner] = negEntry{refusal: kept, expires: now.Add(ttl)}
}

func errText(err error) string {
	if err == nil {
		return "refused"
	}
	return err.Error()
}

// purpose is the tlsa.Purpose a chain of id is verified for.
func (id Identity) purpose() tlsa.Purpose {
	if id.Owner != "" {
		return tlsa.PurposeClient
	}
	return tlsa.PurposeServer
}
