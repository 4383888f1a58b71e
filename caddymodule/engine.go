package caddymodule

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/miekg/dns"

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
