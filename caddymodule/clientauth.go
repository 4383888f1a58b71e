package caddymodule

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"go.uber.org/zap"

	"github.com/caddy-dane/caddy-dane/caddymodule/dane"
)

func init() {
	caddy.RegisterModule(ClientVerifier{})
	caddy.RegisterModule(ClientName{})
}

// ClientVerifier authenticates TLS clients by DANE
// (draft-ietf-dance-client-auth): the client's certificate must match the
// DNSSEC-secure TLSA records of its name, and the name must be one the
// allow-list admits. It is a Caddy client certificate verifier:
//
//	tls connection policy → client_auth { mode require  verifier dane { ... } }
//
// The client's name is the one dNSName SAN of its leaf certificate that
// the allow-list admits (Go's crypto/tls cannot receive the draft's DANE
// Client Identity extension); its TLSA records are at that name, or at
// _<service>.<name> with `service`. Every other outcome refuses the
// handshake: no or several admitted names, no TLSA records, an unsigned
// or bogus zone, a lookup timeout, no match. There is no PKIX fallback.
//
// Caddy calls verifiers only for a client that sent a certificate: with
// `mode request` or `verify_if_given`, a client without one is let through
// without reaching this verifier. Use `mode require` (or
// `require_and_verify`), or put the `dane_client` handler in front of the
// routes: it refuses requests that carry no DANE-verified name.
type ClientVerifier struct {
	// Client names admitted exactly. A name is never admitted only
	// because it has TLSA records: list it here or under a suffix.
	AllowNames []string `json:"allow_names,omitempty"`

	// Admit every client name strictly below one of these domains.
	AllowSuffixes []string `json:"allow_suffixes,omitempty"`

	// The service label of the client TLSA owner name
	// (draft-ietf-dance-client-auth §2.1): records at
	// _<service>.<client name>. Default: none, records at the client name
	// itself (§2.3).
	Service string `json:"service,omitempty"`

	// Upper bound on the client TLSA lookups running at once; a handshake
	// that finds them all busy is refused, not queued. Default: 32.
	MaxLookups int `json:"max_lookups,omitempty"`

	// Upper bound on the client TLSA lookups started per second (bursts
	// up to max_lookups); beyond it a handshake with a name that is not
	// cached is refused. Default: 100.
	MaxLookupRate float64 `json:"max_lookup_rate,omitempty"`

	// How long a client name whose lookup was refused (no TLSA, insecure,
	// bogus, timeout) is refused again without DNS. Default: 10s.
	NegativeTTL caddy.Duration `json:"negative_ttl,omitempty"`

	// Recursive resolvers, DNSSEC mode, trust anchors, timeouts and cache,
	// exactly as in the dane transport's `dane` block.
	Resolvers       []string       `json:"resolvers,omitempty"`
	DNSSEC          string         `json:"dnssec,omitempty"`
	TrustAnchorFile string         `json:"trust_anchor_file,omitempty"`
	Timeout         caddy.Duration `json:"timeout,omitempty"`
	QueryTimeout    caddy.Duration `json:"query_timeout,omitempty"`
	CacheSize       int            `json:"cache_size,omitempty"`

	ctx     context.Context
	logger  *zap.Logger
	policy  dane.ClientPolicy
	auth    *dane.Authenticator
	timeout time.Duration
}

// CaddyModule returns the Caddy module information.
func (ClientVerifier) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tls.client_auth.verifier.dane",
		New: func() caddy.Module { return new(ClientVerifier) },
	}
}

// Provision builds the authenticator (the transport's engine) and
// registers the metrics.
func (v *ClientVerifier) Provision(ctx caddy.Context) error {
	v.ctx = ctx
	v.logger = ctx.Logger()
	v.policy = dane.ClientPolicy{Names: v.AllowNames, Suffixes: v.AllowSuffixes, Service: v.Service}
	if v.MaxLookups < 0 {
		return fmt.Errorf("dane client verifier: max_lookups must not be negative: %d", v.MaxLookups)
	}
	if v.MaxLookupRate < 0 {
		return fmt.Errorf("dane client verifier: max_lookup_rate must not be negative: %g", v.MaxLookupRate)
	}
	if v.NegativeTTL < 0 {
		return fmt.Errorf("dane client verifier: negative_ttl must not be negative: %s", time.Duration(v.NegativeTTL))
	}
	opts := Options{Resolvers: v.Resolvers, DNSSEC: v.DNSSEC, TrustAnchorFile: v.TrustAnchorFile,
		Timeout: v.Timeout, QueryTimeout: v.QueryTimeout, CacheSize: v.CacheSize}
	// As for every DANE peer here: PKIX-TA(0)/PKIX-EE(1) against the
	// system roots; no PKIX fallback and no CNAME following (neither
	// applies to a client's name).
	auth, err := opts.newAuthenticator(nil)
	if err != nil {
		return fmt.Errorf("dane client verifier: %v", strings.TrimPrefix(err.Error(), "dane: "))
	}
	auth.ClientLookups = v.MaxLookups
	auth.ClientLookupRate = v.MaxLookupRate
	auth.ClientNegativeTTL = time.Duration(v.NegativeTTL)
	auth.Observe = observeLookup
	v.auth = auth
	v.Timeout, v.QueryTimeout = opts.Timeout, opts.QueryTimeout
	v.timeout = time.Duration(opts.Timeout)
	if err := registerDANEMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("dane client verifier: registering metrics: %v", err)
	}
	if err := registerClientMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("dane client verifier: registering metrics: %v", err)
	}
	return nil
}

// Validate refuses an allow-list that admits nobody and malformed names.
func (v *ClientVerifier) Validate() error {
	if err := v.policy.Validate(); err != nil {
		return fmt.Errorf("dane client verifier: %v", err)
	}
	return nil
}

// Cleanup drops the verdicts this verifier recorded: a config that no
// longer verifies clients must not keep naming them.
func (v *ClientVerifier) Cleanup() error {
	verifiedClients.forget(v)
	return nil
}

// VerifyClientCertificate authenticates the client that presented
// rawCerts (leaf first; crypto/tls has checked the client holds the
// leaf's key) through dane.Authenticator.VerifyClient, the one entry point.
// Caddy calls it from tls.Config.VerifyConnection, on resumed sessions too.
// The lookup is bounded by `timeout`, and refused at once when every
// lookup slot is busy.
func (v *ClientVerifier) VerifyClientCertificate(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	start := time.Now()
	chain := make([]*x509.Certificate, 0, len(rawCerts))
	for i, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return v.refused(nil, dane.NoName(fmt.Errorf("client certificate %d: %v", i, err)))
		}
		chain = append(chain, c)
	}
	parent := v.ctx
	if parent == nil {
		parent = context.Background()
	}
	_, err := v.verifyChain(parent, chain, start)
	return err
}

// verifyChain authenticates a client chain, bounded by `timeout`, and
// records the verdict for the placeholder (or logs and counts the
// refusal).
func (v *ClientVerifier) verifyChain(parent context.Context, chain []*x509.Certificate, start time.Time) (*dane.Verdict, error) {
	ctx, cancel := context.WithTimeout(parent, v.timeout)
	defer cancel()
	verdict, err := v.auth.VerifyClient(ctx, v.policy, chain)
	observeClientVerify(time.Since(start))
	if err != nil {
		return nil, v.refused(chain, err)
	}
	verifiedClients.put(v, chain[0], verdict)
	countClientVerified()
	if ce := v.logger.Check(zap.DebugLevel, "client authenticated by DANE"); ce != nil {
		ce.Write(zap.String("client", strings.TrimSuffix(verdict.Identity.Base, ".")),
			zap.String("tlsa_owner", verdict.Set.Owner), zap.String("match", verdict.Match.Record.String()))
	}
	return verdict, nil
}

// refused logs and counts a refusal and returns it, failing the handshake.
func (v *ClientVerifier) refused(chain []*x509.Certificate, err error) error {
	r := dane.RefusalOf(err)
	countClientRefused(r.Reason)
	var sans []string
	if len(chain) > 0 {
		sans = chain[0].DNSNames
	}
	v.logger.Warn("client refused by DANE",
		zap.String("reason", string(r.Reason)),
		zap.Strings("client_names", sans),
		zap.String("tlsa_owner", r.Owner),
		zap.String("dnssec", r.Status.String()),
		zap.Uint16("ede", r.EDE),
		zap.Error(err))
	return r
}

// clientVerdicts records which leaf certificates a DANE client verifier
// authenticated, as which name, until when: the source of the
// {http.request.tls.client.dane_name} placeholder. A Caddy verifier sees
// only the certificates, not the connection, so the record is keyed by
// the leaf's SHA-256: a request's connection presented that exact
// certificate and proved its key in the handshake, and the verifier ran
// on that handshake (Caddy calls it from VerifyConnection, for resumed
// sessions too). An entry is trusted as it stands only as long as the
// TLSA result that verified it (Set.Expires); after that, name verifies
// the chain again. It goes when its verifier is cleaned up.
type clientVerdicts struct {
	mu sync.Mutex
	m  map[[32]byte]clientVerdict
}

type clientVerdict struct {
	name     string // without trailing dot
	expires  time.Time
	verifier *ClientVerifier
}

// maxClientVerdicts bounds the record; expired entries go first, then
// arbitrary ones (such a client is verified again by its next handshake).
const maxClientVerdicts = 10000

var verifiedClients clientVerdicts

func (c *clientVerdicts) put(v *ClientVerifier, leaf *x509.Certificate, verdict *dane.Verdict) {
	key := sha256.Sum256(leaf.Raw)
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[[32]byte]clientVerdict)
	}
	if len(c.m) >= maxClientVerdicts {
		for k, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < maxClientVerdicts {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = clientVerdict{name: strings.TrimSuffix(verdict.Identity.Base, "."), expires: verdict.Set.Expires, verifier: v}
}

// name is the DANE-verified client name of the connection state cs, or "".
// A verdict past the lifetime of its TLSA result (a connection that
// outlived its TTL, or a TTL of 0, as a resolver at the end of its cache
// lifetime may give) is not trusted as it stands: the connection's chain,
// whose key its handshake proved, is verified again by the same verifier
// against the TLSA RRset proven now, as a resumed session would be.
func (c *clientVerdicts) name(ctx context.Context, cs *tls.ConnectionState) string {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return ""
	}
	key := sha256.Sum256(cs.PeerCertificates[0].Raw)
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if !ok {
		return ""
	}
	if time.Now().Before(e.expires) {
		return e.name
	}
	verdict, err := e.verifier.verifyChain(ctx, cs.PeerCertificates, time.Now())
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(verdict.Identity.Base, ".")
}

func (c *clientVerdicts) forget(v *ClientVerifier) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if e.verifier == v {
			delete(c.m, k)
		}
	}
}

// ClientNamePlaceholder is set by the dane_client handler to the client's
// DANE-verified name, "" when there is none.
const ClientNamePlaceholder = "http.request.tls.client.dane_name"

// ClientName is the http.handlers.dane_client middleware: it sets
// {http.request.tls.client.dane_name} to the name a DANE client verifier
// authenticated this connection's client certificate as, and by default
// refuses (403) a request that has none: a client that sent no
// certificate under `mode request`, a connection whose policy has no dane
// verifier, or a verdict past the lifetime of its TLSA records that no
// longer verifies against the TLSA RRset proven now. The name
// comes from the verification of the certificate the connection
// presented, never from anything else the client sends.
type ClientName struct {
	// Let requests without a DANE-verified client name through, with the
	// placeholder empty, instead of refusing them with 403.
	Optional bool `json:"optional,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (ClientName) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.dane_client",
		New: func() caddy.Module { return new(ClientName) },
	}
}

// ServeHTTP sets the placeholder, or refuses the request.
func (h ClientName) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	name := verifiedClients.name(r.Context(), r.TLS)
	if name == "" && !h.Optional {
		return caddyhttp.Error(http.StatusForbidden, errors.New("dane: no DANE-verified client certificate on this connection"))
	}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set(ClientNamePlaceholder, name)
	}
	return next.ServeHTTP(w, r)
}

// Interface guards
var (
	_ caddy.Provisioner                  = (*ClientVerifier)(nil)
	_ caddy.Validator                    = (*ClientVerifier)(nil)
	_ caddy.CleanerUpper                 = (*ClientVerifier)(nil)
	_ caddytls.ClientCertificateVerifier = (*ClientVerifier)(nil)
	_ caddyhttp.MiddlewareHandler        = ClientName{}
)
