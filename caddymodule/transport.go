// Package caddymodule is the Caddy glue of caddy-dane: the reverse-proxy
// transport "dane" (module ID http.reverse_proxy.transport.dane), which
// authenticates upstream TLS servers with DNSSEC-secure TLSA records
// (RFC 6698, RFC 7671) instead of the CA system, and refuses every upstream
// it cannot authenticate.
//
// The DANE engine lives in plain Go packages beneath this one (tlsa, dnssec,
// resolver, dane); this package only wires them into Caddy.
package caddymodule

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/caddy-dane/caddy-dane/caddymodule/dane"
)

func init() {
	caddy.RegisterModule(Transport{})
}

// Defaults for the DANE options. Every wait on the DANE path is bounded.
const (
	defaultLookupTimeout    = 5 * time.Second
	defaultTryTimeout       = 2 * time.Second
	defaultHandshakeTimeout = 10 * time.Second
	defaultResolvConf       = "/etc/resolv.conf"
)

// Transport is Caddy's HTTP transport with upstream TLS authenticated by
// DANE: before dialing an upstream, the TLSA RRset at _<port>._tcp.<host>.
// is looked up and proven Secure by an in-process DNSSEC validator; after the
// TLS handshake, the upstream's certificate chain must match one of its
// usable records. Anything else refuses the connection (fail closed) and the
// load balancer treats it as a failed dial.
//
// Every option of the standard `http` transport keeps working, except those
// that would bypass DANE, which are rejected when the config is loaded:
// HTTP/3 (`versions 3`), h2c, `tls_insecure_skip_verify`,
// `tls_except_ports`, and forward proxies (`network_proxy`,
// `forward_proxy_url`). The HTTP_PROXY/HTTPS_PROXY/NO_PROXY environment
// variables are ignored by this transport: a proxy would see the TLS
// connection's peer instead of the upstream. Behind `dynamic srv`, whose
// SRV answers are not validated, it refuses to load: use `dynamic
// dane_srv`.
//
// TLS to the upstream is always on. The SNI sent is the TLSA base domain
// unless `tls_server_name` says otherwise.
//
// An upstream connection is verified for one identity: TLSA base domain,
// reference names, SNI and dial address. It is pooled under that identity
// only, so a request whose identity differs (another `name` or
// `tls_server_name` behind the same address, say) never rides on it; it
// gets a connection of its own, verified for it. Limits per host, such as
// `max_conns_per_host`, count per identity. TLS sessions are kept per
// identity as well, and every resumption is re-checked against the current
// TLSA RRset (sessions.go).
type Transport struct {
	reverseproxy.HTTPTransport

	// DANE configures TLSA lookup, DNSSEC validation and matching.
	// It is a nested object so that no DANE option can ever shadow an
	// option of the embedded HTTP transport.
	DANE *Options `json:"dane,omitempty"`

	auth      *dane.Authenticator
	tlsBase   *tls.Config
	handshake time.Duration
	logger    *zap.Logger
	keepAlive *keepAlive
	sessions  *sessionCache // nil: session resumption off
	singleUse bool          // keep-alive off and no per-host limit: one pool per connection
	bindings  *bindMemo
	upstreams upstreamOrigins // where the handler's upstream names come from
}

// CaddyModule returns the Caddy module information.
func (Transport) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.transport.dane",
		New: func() caddy.Module { return new(Transport) },
	}
}

// Provision builds the DANE authenticator and then the embedded HTTP
// transport, whose TLS dialing it replaces with a DANE-verifying one.
func (t *Transport) Provision(ctx caddy.Context) error {
	t.logger = ctx.Logger()
	if t.DANE == nil {
		t.DANE = new(Options)
	}
	// DANE authenticates TLS servers: TLS is not optional here.
	if t.TLS == nil {
		t.TLS = new(reverseproxy.TLSConfig)
	}
	// The bypasses are refused before the embedded transport provisions:
	// it consumes some of them (a loaded module's raw config is cleared),
	// and none of them may take effect even for a moment.
	if err := t.rejectBypasses(); err != nil {
		return err
	}
	t.upstreams = originsOf(ctx)
	if err := registerDANEMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("dane: registering metrics: %v", err)
	}
	if err := t.HTTPTransport.Provision(ctx); err != nil {
		return err
	}
	rt := t.Transport

	// A proxy would terminate nothing but would make the dialer connect to
	// it instead of the upstream; DialTLSContext is not used for proxied
	// requests. Environment proxies are therefore ignored.
	rt.Proxy = nil

	base := rt.TLSClientConfig
	if base == nil {
		base = new(tls.Config)
	}
	t.tlsBase = base.Clone()
	auth, err := t.DANE.newAuthenticator(t.tlsBase.RootCAs)
	if err != nil {
		return err
	}
	auth.Observe = observeLookup
	t.auth = auth
	t.handshake = time.Duration(t.TLS.HandshakeTimeout)
	if t.handshake <= 0 {
		t.handshake = defaultHandshakeTimeout
	}

	// Backstop: if any code path ever makes a TLS connection with the base
	// config instead of going through dialTLS, the handshake fails.
	backstop := base.Clone()
	backstop.InsecureSkipVerify = false
	backstop.VerifyConnection = func(tls.ConnectionState) error {
		return errors.New("dane: TLS connection made outside the DANE dialer; refused")
	}
	rt.TLSClientConfig = backstop
	rt.DialTLSContext = t.dialTLS
	t.keepAlive = &keepAlive{flush: rt.CloseIdleConnections}
	// max_conns_per_host counts per pool: with a pool per connection it
	// would count nothing, so a limit keeps the pools shared.
	t.singleUse = rt.DisableKeepAlives && rt.MaxConnsPerHost == 0
	t.bindings = new(bindMemo)
	if !t.DANE.DisableSessionResumption {
		t.sessions = newSessionCache()
	}
	return nil
}

// Validate refuses, when the config is loaded, a malformed `name` and every
// upstream whose TLSA base domain could not be known or would be chosen by
// data DNSSEC did not authenticate (Provision already refused the options
// that bypass DANE).
func (t *Transport) Validate() error {
	if t.auth == nil {
		return errors.New("dane: transport not provisioned")
	}
	if n := t.DANE.Name; n != "" && !strings.Contains(n, "{") {
		if err := dane.ValidateName(n); err != nil {
			return fmt.Errorf("dane: name: %v", err)
		}
	}
	return t.upstreams.check(t.DANE.Name != "" || t.TLS.ServerName != "")
}

// Cleanup closes idle upstream connections.
func (t *Transport) Cleanup() error {
	return t.HTTPTransport.Cleanup()
}

// RoundTrip sends req through the embedded HTTP transport on a connection
// verified for req's identity (bind), and not past the validity of its
// TLSA result (keepalive.go).
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	bound, err := t.bind(req)
	if err != nil {
		return nil, err
	}
	return t.HTTPTransport.RoundTrip(t.keepAlive.capRequest(bound))
}

// EnableH2C refuses h2c: a cleartext upstream cannot be authenticated.
func (t *Transport) EnableH2C() error {
	return errors.New("dane: h2c (cleartext HTTP/2) cannot be authenticated by DANE; use https:// upstreams")
}

// rejectBypasses refuses every option that would let a request reach an
// upstream without a DANE-verified TLS handshake.
func (t *Transport) rejectBypasses() error {
	if slices.Contains(t.Versions, "3") {
		return errors.New("dane: HTTP/3 (versions 3) is not supported: QUIC connections do not go through the DANE dialer")
	}
	if slices.Contains(t.Versions, "h2c") {
		return errors.New("dane: h2c is not supported: cleartext HTTP/2 cannot be authenticated")
	}
	if t.TLS.InsecureSkipVerify {
		return errors.New("dane: tls_insecure_skip_verify contradicts DANE authentication; remove it")
	}
	if len(t.TLS.ExceptPorts) > 0 {
		return fmt.Errorf("dane: tls_except_ports %v would send requests in cleartext; remove it", t.TLS.ExceptPorts)
	}
	if len(t.NetworkProxyRaw) > 0 || t.ForwardProxyURL != "" {
		return errors.New("dane: network_proxy/forward_proxy_url are not supported: the TLS connection must go to the upstream itself")
	}
	if t.TLS.ClientCertificateFile != "" && t.TLS.ClientCertificateKeyFile == "" {
		return errors.New("dane: tls_client_auth needs both a certificate and a key file")
	}
	return nil
}

// dialBinding is what one upstream connection is for: the target of the
// request that made the transport dial, and the pool key (a URL host
// derived from the target's identity) that keeps the connection to
// requests of that identity. http.Transport pools connections by URL host;
// giving every identity a host of its own is what stops a connection
// verified for one TLSA base domain from carrying a request for another.
type dialBinding struct {
	target dane.Target
	di     reverseproxy.DialInfo
	pool   string // the identity's key, "<key>.dane.invalid": its TLS sessions
	host   string // the URL host the request is sent to: pool, or one of its own (singleUse)
	h1Only bool   // Caddy wants HTTP/1.1 for this request (websockets)
}

type bindingKey struct{}

// clone copies a binding, to give the copy a pool of its own.
func (b *dialBinding) clone() *dialBinding {
	c := *b
	return &c
}

// bindKey is everything a binding is computed from, for a target that is
// not an SRV endpoint: Target.Identity is a function of the target's
// fields alone, and poolHost of the identity and the rest of the key. So a
// remembered binding is exactly the one bind would compute again.
type bindKey struct {
	target                                dane.Target
	network, address, host, port, urlHost string
	h1Only                                bool
}

// bindMemo remembers recent bindings, so that a request on a kept-alive
// connection does not recompute its identity and pool key. It is bounded:
// when full, it starts over (names from placeholders can be many).
type bindMemo struct {
	cur atomic.Pointer[bindTable]
}

type bindTable struct {
	m sync.Map // bindKey → *dialBinding
	n atomic.Int64
}

const bindMemoSize = 4096

func (m *bindMemo) get(k bindKey) (*dialBinding, bool) {
	if m == nil {
		return nil, false
	}
	t := m.cur.Load()
	if t == nil {
		return nil, false
	}
	v, ok := t.m.Load(k)
	if !ok {
		return nil, false
	}
	return v.(*dialBinding), true
}

func (m *bindMemo) put(k bindKey, b *dialBinding) {
	if m == nil {
		return
	}
	t := m.cur.Load()
	if t == nil || t.n.Load() >= bindMemoSize {
		t = new(bindTable)
		m.cur.Store(t)
	}
	if _, loaded := t.m.LoadOrStore(k, b); !loaded {
		t.n.Add(1)
	}
}

// singleUseDials names the pools of single-use connections.
var singleUseDials atomic.Uint64

// poolDomain is the suffix of the per-identity URL hosts; .invalid is
// reserved (RFC 6761 §6.4), so it never names a real host. Nothing
// resolves it: the dialer uses the upstream's dial info.
const poolDomain = ".dane.invalid"

// bind returns req sent to the pool of its identity, with the target the
// dialer must authenticate in its context. Refusals here (no name for an
// IP upstream, a host name from an unauthenticated source) are logged and
// returned as dial errors.
func (t *Transport) bind(req *http.Request) (*http.Request, error) {
	start := time.Now()
	ctx := req.Context()
	di, ok := reverseproxy.GetDialInfo(ctx)
	if !ok {
		return nil, t.refuse(req.URL.Host, dane.NoName(errors.New("no upstream dial info in request context")), start)
	}
	target, viaSRV := t.targetOf(ctx, di)
	h1Only := caddyhttp.GetVar(ctx, "reverse_proxy.tls_h1_only") == true
	key := bindKey{target: target, network: di.Network, address: di.Address, host: di.Host, port: di.Port, urlHost: req.URL.Host, h1Only: h1Only}
	b, ok := t.bindings.get(key)
	if !ok || viaSRV {
		id, err := target.Identity()
		if err != nil {
			return nil, t.refuse(di.String(), err, start)
		}
		b = &dialBinding{target: target, di: di, h1Only: h1Only}
		// The key covers the identity, the dial address and the URL host
		// Caddy chose (with PROXY protocol it carries the client's
		// address, which must keep its own pool too).
		b.pool = poolHost(id, di, req.URL.Host, h1Only)
		b.host = b.pool
		if !viaSRV {
			t.bindings.put(key, b)
		}
	}
	if t.singleUse {
		b = b.clone()
		// Keep-alive off: the connection carries this request only, so
		// it gets a pool of its own. Under a shared URL host, net/http's
		// HTTP/2 pool discards a connection whose upgrade overlaps
		// another one for the same host (http2clientConnPool.
		// addConnIfNeeded), and the request dials again: a handshake
		// wasted. Sessions stay shared by the identity (b.pool).
		b.host = "c" + strconv.FormatUint(singleUseDials.Add(1), 36) + "." + b.pool
	}
	out := req.WithContext(context.WithValue(ctx, bindingKey{}, b))
	u := *req.URL
	u.Host = b.host
	out.URL = &u
	if out.Host == "" {
		out.Host = req.URL.Host // the Host header must not become the pool key
	}
	return out, nil
}

// poolHost is the URL host of the pool of one identity: a hash of the
// identity, the dial address and the URL host Caddy chose, so that
// connections are shared exactly when all of them are equal.
func poolHost(id dane.Identity, di reverseproxy.DialInfo, urlHost string, h1Only bool) string {
	var buf [512]byte
	b := id.AppendFields(buf[:0])
	for _, f := range []string{di.Network, di.Address, urlHost, strconv.FormatBool(h1Only)} {
		b = strconv.AppendInt(b, int64(len(f)), 10)
		b = append(append(b, ':'), f...)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16]) + poolDomain
}

// targetOf is the DANE target of an upstream: an endpoint of a validated
// SRV RRset (dynamic dane_srv), or the upstream's host with the configured
// name and SNI, placeholders expanded.
func (t *Transport) targetOf(ctx context.Context, di reverseproxy.DialInfo) (dane.Target, bool) {
	repl, _ := ctx.Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	expand := func(s string) string {
		if repl == nil || !strings.Contains(s, "{") {
			return s
		}
		return repl.ReplaceAll(s, "")
	}
	sni := expand(t.TLS.ServerName)
	if target, ok := srvTarget(ctx, di.Upstream); ok {
		if sni != "" {
			target.SNI = sni
		}
		return target, true
	}
	port, err := strconv.Atoi(di.Port)
	if err != nil {
		port = 0 // refused by Identity as an invalid port
	}
	return dane.Target{
		Network:         di.Network,
		Host:            di.Host,
		Port:            port,
		Name:            expand(t.DANE.Name),
		SNI:             sni,
		Unauthenticated: t.upstreams.unauthenticated(di.Upstream),
	}, false
}

// dialTLS is the only way this transport makes TLS connections, for the
// target bound to the request (bind): dane.Authenticator.Authenticate
// decides the TLSA base domain, looks it up, and verifies the handshake
// made here. Any refusal is returned as a reverseproxy.DialError, because
// nothing has been sent upstream: the load balancer may then retry another
// upstream for any method, and passive health checks count the failure.
func (t *Transport) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	start := time.Now()
	b, ok := ctx.Value(bindingKey{}).(*dialBinding)
	if !ok {
		return nil, t.refuse(addr, dane.NoName(errors.New("no upstream dial info in request context: the dial did not come through this transport's RoundTrip")), start)
	}
	if host, _, err := net.SplitHostPort(addr); err != nil || host != b.host {
		// http.Transport dials for the pool of the URL host; a dial for
		// any other pool than the bound one would verify the wrong
		// identity for it.
		return nil, t.refuse(b.di.String(), dane.NoName(fmt.Errorf("dial for %s does not belong to the pool %s of the request's identity", addr, b.host)), start)
	}
	var conn *tls.Conn
	v, err := t.auth.Authenticate(ctx, b.target, t.handshaker(b, &conn))
	if err != nil {
		if conn != nil {
			_ = conn.Close()
		}
		var ce *dane.ConnectError
		if errors.As(err, &ce) {
			return nil, ce.Err // already a DialError from Caddy's dialer
		}
		return nil, t.refuse(b.di.String(), err, start)
	}
	set := v.Set
	if set.PKIX {
		t.logger.Info("dane: no TLSA for upstream, authenticating with PKIX (on_no_tlsa pkix)",
			zap.String("upstream", b.di.String()), zap.String("tlsa_owner", set.Owner), zap.Strings("names", v.Identity.Names),
			zap.String("dnssec", set.Result.Status.String()), zap.String("rcode", dns.RcodeToString[set.Result.Rcode]))
	}
	if ce := t.logger.Check(zap.DebugLevel, "dane verified upstream"); ce != nil {
		ce.Write(zap.String("upstream", b.di.String()), zap.String("tlsa_owner", set.Owner),
			zap.String("sni", v.Identity.SNI), zap.String("dnssec", set.Result.Status.String()),
			zap.String("record", v.Match.Record.String()), zap.Int("depth", v.Match.Depth), zap.Bool("cached", set.Result.Cached))
	}
	countVerified()
	return conn, nil
}

// handshaker dials the bound upstream and runs the TLS handshake whose
// VerifyConnection is the authenticator's Verify. crypto/tls calls it on
// full handshakes and resumptions alike (sessions.go): a resumed session
// is accepted only if the chain it was made with matches the TLSA RRset
// proven for this dial. When that check refuses a resumption, the session
// is forgotten and one full handshake follows on a new connection, so a
// key rollover on the upstream (old key withdrawn, new key published)
// costs no failed request; the full handshake is verified against the
// same TLSA RRset, and refused in turn if its chain does not match.
func (t *Transport) handshaker(b *dialBinding, out **tls.Conn) dane.Handshake {
	return func(ctx context.Context, p dane.Peer) error {
		sessions := t.sessions.forPool(b.pool)
		tc, refusedResumption, err := t.handshakeOnce(ctx, b, p, sessions)
		if refusedResumption {
			countHandshake(handshakeResumptionRefused)
			t.logger.Info("dane: resumed upstream session refused, its certificate chain no longer matches the TLSA RRset; making a full handshake",
				zap.String("upstream", b.di.String()), zap.String("sni", p.Identity.SNI), zap.Error(err))
			sessions.forget()
			tc, _, err = t.handshakeOnce(ctx, b, p, sessions)
		}
		if err != nil {
			return err
		}
		*out = tc
		return nil
	}
}

// handshakeOnce makes one connection to the bound upstream and one TLS
// handshake on it, offering the pool's session if there is one. It
// reports whether the handshake failed because Verify refused a resumed
// session.
func (t *Transport) handshakeOnce(ctx context.Context, b *dialBinding, p dane.Peer, sessions *poolSessions) (*tls.Conn, bool, error) {
	raw, err := t.Transport.DialContext(ctx, b.di.Network, b.di.Address)
	if err != nil {
		return nil, false, &dane.ConnectError{Err: err}
	}
	// The connection is trusted as long as the TLSA result it is
	// verified against: its lifetime is capped there (keepalive.go).
	raw = t.keepAlive.capConn(raw, p.Expires)
	cfg := t.tlsBase.Clone()
	cfg.ServerName = p.Identity.SNI
	// Go's PKIX verification is replaced by ours.
	cfg.InsecureSkipVerify = true
	cfg.ClientSessionCache = nil
	if sessions != nil {
		cfg.ClientSessionCache = sessions
	}
	var refusedResumption bool
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		err := p.Verify(cs.PeerCertificates)
		refusedResumption = err != nil && cs.DidResume
		return err
	}
	if b.h1Only {
		cfg.NextProtos = nil // as net/http does for requests that need HTTP/1.1
	}
	tc := tls.Client(raw, cfg)
	hctx, cancel := context.WithTimeout(ctx, t.handshake)
	defer cancel()
	started := time.Now()
	err = tc.HandshakeContext(hctx)
	observeHandshake(time.Since(started))
	if err != nil {
		_ = tc.Close()
		return nil, refusedResumption, err
	}
	if tc.ConnectionState().DidResume {
		countHandshake(handshakeResumed)
	} else {
		countHandshake(handshakeFull)
	}
	return tc, false, nil
}

// refuse logs a refusal once, with everything an operator needs, and wraps
// it as a dial error. err comes from dane (Target.Identity, Authenticate),
// which returns only *dane.Refusal for a refusal.
func (t *Transport) refuse(upstream string, err error, start time.Time) error {
	r := dane.RefusalOf(err)
	records := make([]string, 0, len(r.Records))
	for _, rec := range r.Records {
		records = append(records, rec.String())
	}
	fields := []zap.Field{
		zap.String("upstream", upstream),
		zap.String("tlsa_owner", r.Owner),
		zap.String("dnssec", r.Status.String()),
		zap.String("reason", string(r.Reason)),
		zap.Strings("records", records),
		zap.Duration("elapsed", time.Since(start)),
		zap.Error(r),
	}
	if r.EDE != 0 {
		fields = append(fields, zap.Uint16("ede", r.EDE))
	}
	if r.Result != nil && r.Result.ProvenBy != "" {
		// dnssec trust_resolver: the verdict is the resolver's AD bit.
		fields = append(fields, zap.String("dnssec_proof", "AD bit of "+r.Result.ProvenBy))
	}
	t.logger.Error("dane refused upstream", fields...)
	countRefused(r.Reason)
	return reverseproxy.NewDialError(r)
}

// Interface guards
var (
	_ caddy.Provisioner         = (*Transport)(nil)
	_ caddy.Validator           = (*Transport)(nil)
	_ caddy.CleanerUpper        = (*Transport)(nil)
	_ reverseproxy.TLSTransport = (*Transport)(nil)
	_ reverseproxy.H2CTransport = (*Transport)(nil)
)
