package caddymodule

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/dane"
	"github.com/caddy-dane/caddy-dane/caddymodule/dnssec"
	"github.com/caddy-dane/caddy-dane/caddymodule/resolver"
)

// The values of Options.DNSSEC.
const (
	// dnssecValidate validates DNSSEC in process (the default).
	dnssecValidate = "validate"
	// dnssecTrustResolver takes the proof from the AD bit of loopback
	// validating resolvers.
	dnssecTrustResolver = "trust_resolver"
)

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

	// Turn off TLS session resumption to upstreams (transport only).
	// By default the transport keeps one session per upstream identity
	// (TLSA base domain, reference names, SNI, dial address) and resumes
	// it on the next connection of that identity only; every resumption
	// is re-checked against the current, validated TLSA RRset, so a
	// withdrawn record stops resumption as it stops full handshakes.
	// With this set, every upstream connection is a full handshake.
	DisableSessionResumption bool `json:"disable_session_resumption,omitempty"`
}

// newAuthenticator builds the dane.Authenticator the options describe,
// the one the transport, `caddy dane check` and dane_monitor authenticate
// with. roots are the PKIX roots (nil: the system roots).
func (o *Options) newAuthenticator(roots *x509.CertPool) (*dane.Authenticator, error) {
	eng, err := o.newEngine(nil)
	if err != nil {
		return nil, err
	}
	policy, err := dane.ParseNoTLSAPolicy(o.OnNoTLSA)
	if err != nil {
		return nil, fmt.Errorf("dane: %v", err)
	}
	return &dane.Authenticator{
		Prover:        eng.prover,
		Refresh:       eng.refresh,
		OnNoTLSA:      policy,
		FollowCNAME:   o.FollowCNAME,
		CheckEENames:  o.CheckNames,
		Roots:         roots,
		LookupTimeout: time.Duration(o.Timeout),
	}, nil
}

// engine is the DNSSEC side of the options: the Prover that proves TLSA
// RRsets, and a lookup that bypasses every cache, for prefetch.
type engine struct {
	prover  dnssec.Prover
	refresh func(ctx context.Context, owner string) *dnssec.Result
}

// newEngine checks the options, applies their defaults and builds the
// Prover they ask for. now is the validator's clock (nil: time.Now); only
// in-process validation can run on another clock. Every error names the
// offending option.
func (o *Options) newEngine(now func() time.Time) (*engine, error) {
	cfg, err := o.validatorConfig()
	if err != nil {
		return nil, err
	}
	cfg.Now = now
	timeout := time.Duration(o.Timeout)
	switch o.DNSSEC {
	case "", dnssecValidate:
		v, err := dnssec.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("dane: %v", err)
		}
		return &engine{prover: v, refresh: bounded(timeout, v.Refresh)}, nil
	case dnssecTrustResolver:
		if now != nil {
			return nil, fmt.Errorf("dane: dnssec %s takes the resolver's verdict as of now; validating as of another time needs dnssec %s", dnssecTrustResolver, dnssecValidate)
		}
		client := cfg.Exchanger.(*resolver.Client)
		if err := loopbackOnly(client.Servers, len(o.Resolvers) == 0); err != nil {
			return nil, err
		}
		// One client per resolver: each is probed, and trusted, on its own.
		// With a second resolver to fail over to, a silent one is asked
		// once, not twice: on loopback a lost datagram is not the likely
		// cause, and a retry would spend two query timeouts of the lookup
		// budget before the next resolver is asked.
		attempts := 0 // the client's default
		if len(client.Servers) > 1 {
			attempts = 1
		}
		var trusted []dnssec.Resolver
		for _, s := range client.Servers {
			trusted = append(trusted, dnssec.Resolver{Name: s, Exchanger: &resolver.Client{Servers: []string{s}, Timeout: client.Timeout, Attempts: attempts}})
		}
		rt, err := dnssec.NewTrustResolver(dnssec.TrustResolverConfig{Resolvers: trusted, Anchors: cfg.Anchors})
		if err != nil {
			return nil, fmt.Errorf("dane: %v", err)
		}
		// It keeps no cache: a lookup is already a fresh one.
		return &engine{prover: rt, refresh: bounded(timeout, rt.Lookup)}, nil
	}
	return nil, fmt.Errorf("dane: dnssec %q: want %s or %s", o.DNSSEC, dnssecValidate, dnssecTrustResolver)
}

// loopbackOnly refuses trust_resolver with a resolver that is not on this
// host: the AD bit travels without protection (RFC 4035 §4.9.3, RFC 6698
// §4), so anyone on the path could set it; only loopback is a channel
// nobody else can write to.
func loopbackOnly(servers []string, fromResolvConf bool) error {
	for _, s := range servers {
		ap, err := netip.ParseAddrPort(s)
		if err == nil && ap.Addr().Unmap().IsLoopback() {
			continue
		}
		where := "resolvers"
		if fromResolvConf {
			where = defaultResolvConf
		}
		return fmt.Errorf("dane: dnssec %s trusts the resolver's AD bit, which is not protected on the wire, so every resolver must be a loopback address (127.0.0.0/8 or ::1); %s lists %s", dnssecTrustResolver, where, s)
	}
	return nil
}

// bounded makes lookup a TLSA refresh for the authenticator's prefetch,
// bounded by the lookup timeout. For the in-process validator, lookup is
// Validator.Refresh: the TLSA RRset is queried and validated afresh, the
// zone keys come from the cache while valid.
func bounded(timeout time.Duration, lookup func(context.Context, string, uint16) *dnssec.Result) func(context.Context, string) *dnssec.Result {
	return func(ctx context.Context, owner string) *dnssec.Result {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return lookup(ctx, owner, dns.TypeTLSA)
	}
}

// validatorConfig checks the options, applies their defaults and returns
// the validator's configuration.
func (o *Options) validatorConfig() (dnssec.Config, error) {
	servers, err := o.servers()
	if err != nil {
		return dnssec.Config{}, err
	}
	timeout := time.Duration(o.Timeout)
	if timeout < 0 {
		return dnssec.Config{}, fmt.Errorf("dane: timeout must not be negative: %s", timeout)
	}
	if timeout == 0 {
		timeout = defaultLookupTimeout
		o.Timeout = caddy.Duration(timeout)
	}
	try := time.Duration(o.QueryTimeout)
	if try < 0 {
		return dnssec.Config{}, fmt.Errorf("dane: query_timeout must not be negative: %s", try)
	}
	if try == 0 {
		// Half the overall budget at most, so that a silent resolver
		// leaves time to ask the next one, and the error names it.
		try = min(defaultTryTimeout, timeout/2)
		o.QueryTimeout = caddy.Duration(try)
	}
	if try > timeout {
		return dnssec.Config{}, fmt.Errorf("dane: query_timeout %s is longer than timeout %s: one silent resolver would use the whole lookup budget, leaving none to ask the next", try, timeout)
	}
	if o.CacheSize < 0 {
		return dnssec.Config{}, fmt.Errorf("dane: cache_size must not be negative: %d", o.CacheSize)
	}
	var anchors []dns.RR
	if o.TrustAnchorFile != "" {
		f, err := os.Open(o.TrustAnchorFile)
		if err != nil {
			return dnssec.Config{}, fmt.Errorf("dane: trust_anchor_file: %v", err)
		}
		anchors, err = dnssec.ParseAnchors(f, ".")
		f.Close()
		if err != nil {
			return dnssec.Config{}, fmt.Errorf("dane: trust_anchor_file %s: %v", o.TrustAnchorFile, err)
		}
		if len(anchors) == 0 {
			return dnssec.Config{}, fmt.Errorf("dane: trust_anchor_file %s holds no DS or DNSKEY records", o.TrustAnchorFile)
		}
	}
	return dnssec.Config{
		Exchanger: &resolver.Client{Servers: servers, Timeout: try},
		Anchors:   anchors,
		CacheSize: o.CacheSize,
	}, nil
}

func (o *Options) servers() ([]string, error) {
	if len(o.Resolvers) == 0 {
		s, err := resolver.ServersFromResolvConf(defaultResolvConf)
		if err != nil {
			return nil, fmt.Errorf("dane: no resolvers configured and %s unusable: %v", defaultResolvConf, err)
		}
		if len(s) == 0 {
			return nil, fmt.Errorf("dane: no resolvers configured and %s lists no nameserver", defaultResolvConf)
		}
		return s, nil
	}
	out := make([]string, 0, len(o.Resolvers))
	for _, r := range o.Resolvers {
		s, err := resolver.ParseServer(r)
		if err != nil {
			return nil, fmt.Errorf("dane: resolvers: %v", err)
		}
		out = append(out, s)
	}
	return out, nil
}
