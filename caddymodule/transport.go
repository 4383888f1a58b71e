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
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
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
// connection's peer instead of the upstream.
//
// TLS to the upstream is always on. The SNI sent is the TLSA base domain
// unless `tls_server_name` says otherwise.
type Transport struct {
	reverseproxy.HTTPTransport

	// DANE configures TLSA lookup, DNSSEC validation and matching.
	// It is a nested object so that no DANE option can ever shadow an
	// option of the embedded HTTP transport.
	DANE *Options `json:"dane,omitempty"`

	auth       *dane.Authenticator
	tlsBase    *tls.Config
	handshake  time.Duration
	logger     *zap.Logger
	staticName string // DANE.Name when it has no placeholder
	keepAlive  *keepAlive
}

// Options are the DANE settings of the transport.
type Options struct {
	// Recursive resolvers to send DNS queries to, as IP or IP:port
	// (port 53 by default). The resolvers need not validate: every answer
	// is validated in process from the trust anchors (unless `dnssec` is
	// trust_resolver). Default: the nameservers in /etc/resolv.conf.
	Resolvers []string `json:"resolvers,omitempty"`

	// How TLSA records are proven authentic. "validate" (default): DNSSEC
	// is validated in process from the trust anchors; the resolvers are
	// only a source of data. "trust_resolver": the proof is the AD bit of
	// the resolvers, for operators who run a validating resolver such as
	// Unbound on the same host. Every resolver must then be a loopback
	// address (the AD bit is not protected on the wire), and before
	// trusting it the transport checks that it validates with the trust
	// anchors (AD set on the anchor zone's DNSKEY RRset, and a key that
	// matches the anchor). AD set: secure; AD clear: insecure; SERVFAIL
	// with a DNSSEC extended error: bogus. The resolver must not run in
	// permissive mode (Unbound's val-permissive-mode).
	DNSSEC string `json:"dnssec,omitempty"`

	// A file of trust anchors in zone-file syntax: DS or DNSKEY records,
	// for example Unbound's root.key, or the DS of a private zone. Default:
	// the IANA root zone KSKs (key tags 20326 and 38696) built in.
	TrustAnchorFile string `json:"trust_anchor_file,omitempty"`

	// The TLSA base domain for upstreams addressed by IP literal (static
	// upstreams, or dynamic `a`/`srv` results). Placeholders are allowed.
	// When empty, `tls_server_name` is used; with neither, an IP-literal
	// upstream is refused (at config load for static upstreams).
	Name string `json:"name,omitempty"`

	// Upper bound on the whole TLSA lookup and validation for one
	// connection, all queries and retries included. Default: 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// Timeout of one query to one resolver. Default: 2s, or half of
	// Timeout if that is smaller.
	QueryTimeout caddy.Duration `json:"query_timeout,omitempty"`

	// Also check the certificate's names for DANE-EE(3) matches. RFC 7671
	// §5.1 says DANE-EE ignores names and validity dates; names are always
	// checked for DANE-TA(2), PKIX-TA(0) and PKIX-EE(1).
	CheckNames bool `json:"check_names,omitempty"`

	// Maximum number of validated RRsets kept in the cache. Default: 10000.
	CacheSize int `json:"cache_size,omitempty"`

	// What to do when the upstream provably has no DANE: its TLSA RRset is
	// securely denied (NSEC/NSEC3 proof) or its zone is provably insecure.
	// "refuse" (default) refuses it; "pkix" authenticates it with ordinary
	// PKIX validation (system roots or tls_trust_pool, the host name).
	// Bogus or indeterminate DNSSEC is refused either way.
	OnNoTLSA string `json:"on_no_tlsa,omitempty"`

	// Find the TLSA base domain through the host's CNAME chain when every
	// hop is DNSSEC-secure (RFC 7671 §7, RFC 7672 §2.2.2): TLSA records at
	// the final target first, then at the host; both names are accepted
	// in the certificate.
	FollowCNAME bool `json:"follow_cname,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Transport) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.transport.dane",
		New: func() caddy.Module { return new(Transport) },
	}
}

// Provision builds the DANE engine and then the embedded HTTP transport,
// whose TLS dialing it replaces with a DANE-verifying one.
func (t *Transport) Provision(ctx caddy.Context) error {
	t.logger = ctx.Logger()
	if t.DANE == nil {
		t.DANE = new(Options)
	}
	// DANE authenticates TLS servers: TLS is not optional here.
	if t.TLS == nil {
		t.TLS = new(reverseproxy.TLSConfig)
	}
	if err := t.rejectBypasses(); err != nil {
		return err
	}
	if err := t.checkStaticUpstreams(ctx); err != nil {
		return err
	}

	eng, err := t.DANE.newEngine(nil)
	if err != nil {
		return err
	}
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
	onNoTLSA, err := dane.ParseNoTLSAPolicy(t.DANE.OnNoTLSA)
	if err != nil {
		return fmt.Errorf("dane: %v", err)
	}
	t.auth = &dane.Authenticator{
		OnNoTLSA:     onNoTLSA,
		FollowCNAME:  t.DANE.FollowCNAME,
		Prover:       eng.prover,
		Roots:        t.tlsBase.RootCAs,
		CheckEENames: t.DANE.CheckNames,
		Refresh:      eng.refresh,
	}
	t.handshake = time.Duration(t.TLS.HandshakeTimeout)
	if t.handshake <= 0 {
		t.handshake = defaultHandshakeTimeout
	}
	if !strings.Contains(t.DANE.Name, "{") {
		t.staticName = t.DANE.Name
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
	return nil
}

// Validate checks the options that Provision does not already refuse.
func (t *Transport) Validate() error {
	if t.auth == nil {
		return errors.New("dane: transport not provisioned")
	}
	return nil
}

// Cleanup closes idle upstream connections.
func (t *Transport) Cleanup() error {
	return t.HTTPTransport.Cleanup()
}

// RoundTrip sends req through the embedded HTTP transport; connections
// whose TLSA result has expired are not reused (keepalive.go).
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.HTTPTransport.RoundTrip(t.keepAlive.capRequest(req))
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

// checkStaticUpstreams refuses, at config load, static upstreams that are
// IP literals when no TLSA base domain is configured for them: they have
// no name to look up. The reverse_proxy handler that loads this transport
// is the module provisioned just before it.
func (t *Transport) checkStaticUpstreams(ctx caddy.Context) error {
	if t.DANE.Name != "" || t.TLS.ServerName != "" {
		if t.DANE.Name != "" && !strings.Contains(t.DANE.Name, "{") {
			if err := dane.ValidateName(t.DANE.Name); err != nil {
				return fmt.Errorf("dane: name: %v", err)
			}
		}
		return nil
	}
	mods := ctx.Modules()
	for i := len(mods) - 1; i >= 0; i-- {
		h, ok := mods[i].(*reverseproxy.Handler)
		if !ok {
			continue
		}
		for _, u := range h.Upstreams {
			if strings.Contains(u.Dial, "{") {
				continue // resolved per request; checked when dialing
			}
			addr, err := caddy.ParseNetworkAddress(u.Dial)
			if err != nil {
				continue // the handler reports malformed addresses itself
			}
			if net.ParseIP(strings.Trim(addr.Host, "[]")) != nil {
				return fmt.Errorf("dane: upstream %s is an IP address, so it has no name to look up TLSA records for; set `dane { name <host> }` or `tls_server_name <host>`", u.Dial)
			}
		}
		break
	}
	return nil
}

// tlsaName returns the TLSA base domain and SNI for an upstream host.
func (t *Transport) tlsaName(ctx context.Context, host string) (base, sni string, err error) {
	repl, _ := ctx.Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	expand := func(s string) string {
		if repl == nil || !strings.Contains(s, "{") {
			return s
		}
		return repl.ReplaceAll(s, "")
	}
	sni = expand(t.TLS.ServerName)
	base = host
	if net.ParseIP(strings.Trim(host, "[]")) != nil {
		switch {
		case t.staticName != "":
			base = t.staticName
		case t.DANE.Name != "":
			base = expand(t.DANE.Name)
		case sni != "":
			base = sni
		default:
			return "", "", fmt.Errorf("upstream %s is an IP address and neither `dane { name }` nor tls_server_name is set", host)
		}
	}
	base = strings.TrimSuffix(base, ".")
	if sni == "" {
		sni = base
	}
	return base, sni, nil
}

// dialTLS is the only way this transport makes TLS connections:
// name → TLSA lookup (DNSSEC) → TCP dial → handshake → match → allow/refuse.
// Any refusal is returned as a reverseproxy.DialError, because nothing has
// been sent upstream: the load balancer may then retry another upstream for
// any method, and passive health checks count the failure.
func (t *Transport) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	start := time.Now()
	// The upstream's real host and port: addr may have been rewritten
	// (PROXY protocol puts client info into the request's host).
	di, ok := reverseproxy.GetDialInfo(ctx)
	if !ok {
		return nil, t.refuse(addr, &dane.Refusal{Reason: dane.ReasonNoName,
			Err: errors.New("no upstream dial info in request context")}, start)
	}
	if !strings.HasPrefix(di.Network, "tcp") {
		return nil, t.refuse(di.String(), &dane.Refusal{Reason: dane.ReasonNoName,
			Err: fmt.Errorf("network %q has no TLSA owner name (TCP only)", di.Network)}, start)
	}
	port, err := strconv.Atoi(di.Port)
	if err != nil {
		return nil, t.refuse(di.String(), &dane.Refusal{Reason: dane.ReasonNoName,
			Err: fmt.Errorf("upstream port %q: %v", di.Port, err)}, start)
	}
	base, sni, err := t.tlsaName(ctx, di.Host)
	if err != nil {
		return nil, t.refuse(di.String(), &dane.Refusal{Reason: dane.ReasonNoName, Err: err}, start)
	}

	lookupCtx, cancel := context.WithTimeout(ctx, time.Duration(t.DANE.Timeout))
	lookupStart := time.Now()
	set, err := t.auth.Lookup(lookupCtx, base, port)
	cancel()
	observeLookup(set, err, time.Since(lookupStart))
	if err != nil {
		return nil, t.refuse(di.String(), err, start)
	}

	if set.PKIX {
		t.logger.Info("dane: no TLSA for upstream, authenticating with PKIX (on_no_tlsa pkix)",
			zap.String("upstream", di.String()), zap.String("tlsa_owner", set.Owner),
			zap.String("dnssec", set.Result.Status.String()), zap.String("rcode", dns.RcodeToString[set.Result.Rcode]))
	}

	// The connection is trusted as long as the TLSA result it is verified
	// against: its lifetime is capped there (keepalive.go).
	expires := set.Expires
	conn, err := t.Transport.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err // already a DialError from Caddy's dialer
	}
	conn = t.keepAlive.capConn(conn, expires)

	names := []string{base}
	if di.Host != base && net.ParseIP(strings.Trim(di.Host, "[]")) == nil {
		names = append(names, di.Host)
	}
	cfg := t.tlsBase.Clone()
	cfg.ServerName = sni
	// Go's PKIX verification is replaced by ours; VerifyConnection runs on
	// full handshakes and on resumptions alike.
	cfg.InsecureSkipVerify = true
	var verdict error
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		m, err := t.auth.Verify(set, cs.PeerCertificates, names)
		if err != nil {
			verdict = err
			return err
		}
		if ce := t.logger.Check(zap.DebugLevel, "dane verified upstream"); ce != nil {
			ce.Write(zap.String("upstream", di.String()), zap.String("tlsa_owner", set.Owner),
				zap.String("dnssec", set.Result.Status.String()), zap.String("record", m.Record.String()),
				zap.Int("depth", m.Depth), zap.Bool("cached", set.Result.Cached))
		}
		return nil
	}
	if caddyhttp.GetVar(ctx, "reverse_proxy.tls_h1_only") == true {
		cfg.NextProtos = nil // as net/http does for requests that need HTTP/1.1
	}

	tlsConn := tls.Client(conn, cfg)
	hctx, hcancel := context.WithTimeout(ctx, t.handshake)
	handshakeStart := time.Now()
	err = tlsConn.HandshakeContext(hctx)
	hcancel()
	observeHandshake(time.Since(handshakeStart))
	if err != nil {
		_ = tlsConn.Close()
		if verdict == nil {
			verdict = &dane.Refusal{Reason: dane.ReasonHandshake, Owner: set.Owner,
				Status: set.Result.Status, Records: set.Records, Err: err}
		}
		return nil, t.refuse(di.String(), verdict, start)
	}
	countVerified()
	return tlsConn, nil
}

// refuse logs a refusal once, with everything an operator needs, and wraps
// it as a dial error.
func (t *Transport) refuse(upstream string, err error, start time.Time) error {
	var r *dane.Refusal
	if !errors.As(err, &r) {
		r = &dane.Refusal{Reason: dane.ReasonDNSError, Err: err}
	}
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
