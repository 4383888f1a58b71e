package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/caddy-dane/caddy-dane/caddymodule/dane"
)

// UnmarshalCaddyfile sets up the transport from Caddyfile tokens. Syntax:
//
//	transport dane {
//	    dane {
//	        resolvers         <ip[:port]...>
//	        dnssec            validate|trust_resolver
//	        trust_anchor_file <path>
//	        name              <tlsa_base_domain>
//	        timeout           <duration>
//	        query_timeout     <duration>
//	        check_names
//	        cache_size        <entries>
//	        on_no_tlsa        refuse|pkix
//	        follow_cname
//	    }
//	    # every subdirective of `transport http`, e.g.
//	    keepalive         <duration>
//	    tls_server_name   <sni>
//	    tls_trust_pool    <module> { ... }
//	    versions          1.1 2
//	}
//
// The DANE options live in their own `dane` block so that they can never be
// confused with, or shadow, an option of the standard HTTP transport. TLS is
// always enabled; `tls_insecure_skip_verify`, `tls_except_ports`, h2c,
// `versions 3`, `network_proxy` and `forward_proxy_url` are refused when the
// configuration is loaded.
func (t *Transport) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	// First pass: take the `dane` block out of the token stream, so that
	// the rest can be handed unchanged to the standard HTTP transport's
	// parser (which rejects subdirectives it does not know).
	d.Next() // consume transport name
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if d.Val() != "dane" || d.Nesting() != nesting+1 {
			d.NextSegment() // skip another subdirective, block included
			continue
		}
		if t.DANE != nil {
			return d.Err("dane block already specified")
		}
		seg := d.NextSegment()
		t.DANE = new(Options)
		if err := t.DANE.unmarshalCaddyfile(caddyfile.NewDispenser(seg)); err != nil {
			return err
		}
		d.DeleteN(len(seg))
	}
	d.Reset()
	if err := t.HTTPTransport.UnmarshalCaddyfile(d); err != nil {
		return err
	}
	// DANE authenticates TLS servers; make the handler's scheme checks see
	// a TLS transport even when the upstream address has no scheme.
	if t.TLS == nil {
		t.TLS = new(reverseproxy.TLSConfig)
	}
	return nil
}

func (o *Options) unmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume "dane"
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		// Each option but resolvers may be given once: a second line
		// would silently replace the first.
		if opt := d.Val(); opt != "resolvers" {
			if seen[opt] {
				return d.Errf("dane option %q specified more than once", opt)
			}
			seen[opt] = true
		}
		switch d.Val() {
		case "resolvers":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			o.Resolvers = append(o.Resolvers, args...)
		case "trust_anchor_file":
			if !d.AllArgs(&o.TrustAnchorFile) {
				return d.ArgErr()
			}
		case "name":
			if !d.AllArgs(&o.Name) {
				return d.ArgErr()
			}
		case "timeout", "query_timeout":
			opt := d.Val()
			var s string
			if !d.AllArgs(&s) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil {
				return d.Errf("invalid %s duration %q: %v", opt, s, err)
			}
			if dur <= 0 {
				return d.Errf("%s must be positive, got %q", opt, s)
			}
			if opt == "timeout" {
				o.Timeout = caddy.Duration(dur)
			} else {
				o.QueryTimeout = caddy.Duration(dur)
			}
		case "check_names":
			if d.NextArg() {
				return d.ArgErr()
			}
			o.CheckNames = true
		case "cache_size":
			var s string
			if !d.AllArgs(&s) {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				return d.Errf("invalid cache_size %q: must be a positive integer", s)
			}
			o.CacheSize = n
		case "on_no_tlsa":
			if !d.AllArgs(&o.OnNoTLSA) {
				return d.ArgErr()
			}
			if _, err := dane.ParseNoTLSAPolicy(o.OnNoTLSA); err != nil {
				return d.Err(err.Error())
			}
		case "dnssec":
			if !d.AllArgs(&o.DNSSEC) {
				return d.ArgErr()
			}
			if o.DNSSEC != dnssecValidate && o.DNSSEC != dnssecTrustResolver {
				return d.Errf("dnssec %q: want %s or %s", o.DNSSEC, dnssecValidate, dnssecTrustResolver)
			}
		case "follow_cname":
			if d.NextArg() {
				return d.ArgErr()
			}
			o.FollowCNAME = true
		default:
			return d.Errf("unrecognized dane option %q", d.Val())
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Transport)(nil)
