package caddymodule

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
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
//	        session_resumption on|off
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
		case "session_resumption":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			switch v {
			case "on":
				o.DisableSessionResumption = false
			case "off":
				o.DisableSessionResumption = true
			default:
				return d.Errf("session_resumption %q: want on or off", v)
			}
		default:
			return d.Errf("unrecognized dane option %q", d.Val())
		}
	}
	return nil
}

// UnmarshalCaddyfile sets up the dane_srv upstream source from Caddyfile
// tokens. Syntax:
//
//	dynamic dane_srv [<_service._proto.name>] {
//	    service   <service>
//	    proto     tcp
//	    name      <name>
//	    refresh   <duration>
//	    versions  ipv4|ipv6
//	}
//
// It uses the DNSSEC engine of the reverse proxy's `transport dane`, so
// there are no resolver options. The options of the standard `srv` source
// that trust unvalidated DNS or stale data (resolvers, grace_period) are
// not accepted.
func (su *SRVUpstreams) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume source name
	if d.NextArg() {
		su.Name = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("dane_srv option %q specified more than once", opt)
		}
		seen[opt] = true
		switch opt {
		case "service", "proto", "name":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			switch opt {
			case "service":
				su.Service = v
			case "proto":
				su.Proto = v
			case "name":
				if su.Name != "" {
					return d.Err("dane_srv name given twice (argument and option)")
				}
				su.Name = v
			}
		case "refresh":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("invalid refresh %q: want a positive duration", v)
			}
			su.Refresh = caddy.Duration(dur)
		case "versions":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			su.Versions = new(reverseproxy.IPVersions)
			yes := true
			for _, a := range args {
				switch a {
				case "ipv4":
					su.Versions.IPv4 = &yes
				case "ipv6":
					su.Versions.IPv6 = &yes
				default:
					return d.Errf("unsupported version %q: want ipv4 or ipv6", a)
				}
			}
		case "resolvers", "grace_period", "dial_timeout", "dial_fallback_delay":
			return d.Errf("dane_srv has no %s option: it validates through the dane transport's own resolvers and never uses data past its DNSSEC proof", opt)
		default:
			return d.Errf("unrecognized dane_srv option %q", opt)
		}
	}
	if su.Name == "" {
		return d.Err("dane_srv needs a name: _service._proto.name, or name with service")
	}
	return nil
}

func init() {
	httpcaddyfile.RegisterGlobalOption("dane_monitor", parseMonitorOption)
}

// parseMonitorOption sets up the dane_monitor app from the global option.
// Syntax:
//
//	dane_monitor {
//	    names             <name...>
//	    ports             <port...>
//	    interval          <duration>
//	    # as in the dane transport's `dane` block:
//	    resolvers         <ip[:port]...>
//	    dnssec            validate|trust_resolver
//	    trust_anchor_file <path>
//	    timeout           <duration>
//	    query_timeout     <duration>
//	    cache_size        <entries>
//	}
//
// `dane_monitor` alone enables the monitor with every default. The
// validator options are parsed by the transport's parser, so they mean
// and check exactly the same.
func parseMonitorOption(d *caddyfile.Dispenser, existing any) (any, error) {
	d.Next() // consume option name
	if existing != nil {
		return nil, d.Err("dane_monitor specified more than once")
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	m := new(Monitor)
	var validatorSegs []caddyfile.Segment
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if opt != "names" && opt != "ports" && opt != "resolvers" {
			if seen[opt] {
				return nil, d.Errf("dane_monitor option %q specified more than once", opt)
			}
			seen[opt] = true
		}
		switch opt {
		case "names":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			m.Names = append(m.Names, args...)
		case "ports":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			for _, a := range args {
				p, err := strconv.Atoi(a)
				if err != nil || p <= 0 || p > 65535 {
					return nil, d.Errf("invalid port %q: must be 1-65535", a)
				}
				m.Ports = append(m.Ports, p)
			}
		case "interval":
			var s string
			if !d.AllArgs(&s) {
				return nil, d.ArgErr()
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil {
				return nil, d.Errf("invalid interval %q: %v", s, err)
			}
			if dur < minMonitorInterval {
				return nil, d.Errf("interval %q is shorter than the minimum %s", s, minMonitorInterval)
			}
			m.Interval = caddy.Duration(dur)
		case "resolvers", "dnssec", "trust_anchor_file", "timeout", "query_timeout", "cache_size":
			validatorSegs = append(validatorSegs, d.NextSegment())
		default:
			return nil, d.Errf("unrecognized dane_monitor option %q", opt)
		}
	}

	var o Options
	if err := o.unmarshalCaddyfile(caddyfile.NewDispenser(asDANEBlock(validatorSegs))); err != nil {
		return nil, err
	}
	m.Resolvers, m.DNSSEC, m.TrustAnchorFile = o.Resolvers, o.DNSSEC, o.TrustAnchorFile
	m.Timeout, m.QueryTimeout, m.CacheSize = o.Timeout, o.QueryTimeout, o.CacheSize

	var warnings []caddyconfig.Warning
	return httpcaddyfile.App{
		Name:  "dane_monitor",
		Value: caddyconfig.JSON(m, &warnings),
	}, nil
}

func init() {
	httpcaddyfile.RegisterGlobalOption("dane_publish", parsePublishOption)
}

// parsePublishOption sets up the dane_publish app from the global option.
// Syntax:
//
//	dane_publish {
//	    dns               <provider> [<args...>] { ... }
//	    sites             <name[:port]...>
//	    ports             <port...>
//	    record            <usage> <selector> <matching>
//	    ttl               <duration>
//	    zone              <zone>
//	    interval          <duration>
//	    max_hold          <duration>
//	    # as in the dane transport's `dane` block:
//	    resolvers         <ip[:port]...>
//	    dnssec            validate|trust_resolver
//	    trust_anchor_file <path>
//	    timeout           <duration>
//	    query_timeout     <duration>
//	}
//
// `dns` takes a `dns.providers` module as `acme_dns` does. `record` may
// be repeated (default: one, 3 1 1). The certificates whose key changes
// are held back until published are those issued through
// `issuer dane_publish { issuer ... }` in a site's `tls` block.
func parsePublishOption(d *caddyfile.Dispenser, existing any) (any, error) {
	d.Next() // consume option name
	if existing != nil {
		return nil, d.Err("dane_publish specified more than once")
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	p := new(Publish)
	var warnings []caddyconfig.Warning
	var validatorSegs []caddyfile.Segment
	seen := map[string]bool{}
	duration := func(opt string) (caddy.Duration, error) {
		var v string
		if !d.AllArgs(&v) {
			return 0, d.ArgErr()
		}
		dur, err := caddy.ParseDuration(v)
		if err != nil || dur <= 0 {
			return 0, d.Errf("invalid %s %q: want a positive duration", opt, v)
		}
		return caddy.Duration(dur), nil
	}
	for d.NextBlock(0) {
		opt := d.Val()
		if opt != "sites" && opt != "ports" && opt != "record" && opt != "resolvers" {
			if seen[opt] {
				return nil, d.Errf("dane_publish option %q specified more than once", opt)
			}
			seen[opt] = true
		}
		var err error
		switch opt {
		case "dns":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			name := d.Val()
			unm, err := caddyfile.UnmarshalModule(d, "dns.providers."+name)
			if err != nil {
				return nil, err
			}
			p.DNSRaw = caddyconfig.JSONModuleObject(unm, "name", name, &warnings)
		case "sites":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			p.Sites = append(p.Sites, args...)
		case "ports":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			for _, a := range args {
				port, err := strconv.Atoi(a)
				if err != nil || port <= 0 || port > 65535 {
					return nil, d.Errf("invalid port %q: must be 1-65535", a)
				}
				p.Ports = append(p.Ports, port)
			}
		case "record":
			args := d.RemainingArgs()
			if len(args) != 3 {
				return nil, d.Errf("record: want <usage> <selector> <matching>, e.g. record 3 1 1")
			}
			p.Records = append(p.Records, strings.Join(args, " "))
		case "ttl":
			p.TTL, err = duration(opt)
		case "interval":
			p.Interval, err = duration(opt)
		case "max_hold":
			p.MaxHold, err = duration(opt)
		case "zone":
			if !d.AllArgs(&p.Zone) {
				return nil, d.ArgErr()
			}
		case "resolvers", "dnssec", "trust_anchor_file", "timeout", "query_timeout":
			validatorSegs = append(validatorSegs, d.NextSegment())
		default:
			return nil, d.Errf("unrecognized dane_publish option %q", opt)
		}
		if err != nil {
			return nil, err
		}
	}
	if p.DNSRaw == nil {
		return nil, d.Err("dane_publish: a DNS provider is required: dns <provider> ...")
	}
	var o Options
	if err := o.unmarshalCaddyfile(caddyfile.NewDispenser(asDANEBlock(validatorSegs))); err != nil {
		return nil, err
	}
	p.Resolvers, p.DNSSEC, p.TrustAnchorFile = o.Resolvers, o.DNSSEC, o.TrustAnchorFile
	p.Timeout, p.QueryTimeout = o.Timeout, o.QueryTimeout
	return httpcaddyfile.App{
		Name:  "dane_publish",
		Value: caddyconfig.JSON(p, &warnings),
	}, nil
}

// asDANEBlock wraps option lines into the tokens of a `dane { ... }`
// block, for the transport's parser. The lines keep their file and line
// numbers, so its errors point into the Caddyfile.
func asDANEBlock(segs []caddyfile.Segment) []caddyfile.Token {
	open := caddyfile.Token{Text: "dane", Line: 0}
	if len(segs) > 0 {
		first := segs[0][0]
		open.File, open.Line = first.File, first.Line-1
	}
	toks := []caddyfile.Token{open, {File: open.File, Line: open.Line, Text: "{"}}
	last := open.Line
	for _, seg := range segs {
		toks = append(toks, seg...)
		last = seg[len(seg)-1].Line
	}
	return append(toks, caddyfile.Token{File: open.File, Line: last + 1, Text: "}"})
}

// UnmarshalCaddyfile sets up the DANE client verifier from Caddyfile
// tokens. Syntax:
//
//	client_auth {
//	    mode require
//	    verifier dane {
//	        allow_names       <name...>
//	        allow_suffixes    <domain...>
//	        service           <label>
//	        max_lookups       <n>
//	        max_lookup_rate   <per_second>
//	        negative_ttl      <duration>
//	        # as in the dane transport's `dane` block:
//	        resolvers         <ip[:port]...>
//	        dnssec            validate|trust_resolver
//	        trust_anchor_file <path>
//	        timeout           <duration>
//	        query_timeout     <duration>
//	        cache_size        <entries>
//	    }
//	}
//
// At least one of allow_names and allow_suffixes is required: a client
// name is admitted by the list, never by having TLSA records. The
// validator options are parsed by the transport's parser, so they mean
// and check exactly the same; the transport's name, on_no_tlsa,
// follow_cname and check_names do not apply to clients and are refused.
func (v *ClientVerifier) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume "dane"
	if d.NextArg() {
		return d.ArgErr()
	}
	var validatorSegs []caddyfile.Segment
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if opt != "allow_names" && opt != "allow_suffixes" && opt != "resolvers" {
			if seen[opt] {
				return d.Errf("dane verifier option %q specified more than once", opt)
			}
			seen[opt] = true
		}
		switch opt {
		case "allow_names", "allow_suffixes":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			for _, a := range args {
				if err := dane.ValidateName(a); err != nil {
					return d.Errf("%s: %v", opt, err)
				}
			}
			if opt == "allow_names" {
				v.AllowNames = append(v.AllowNames, args...)
			} else {
				v.AllowSuffixes = append(v.AllowSuffixes, args...)
			}
		case "service":
			if !d.AllArgs(&v.Service) {
				return d.ArgErr()
			}
		case "max_lookups":
			var s string
			if !d.AllArgs(&s) {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				return d.Errf("invalid max_lookups %q: must be a positive integer", s)
			}
			v.MaxLookups = n
		case "max_lookup_rate":
			var s string
			if !d.AllArgs(&s) {
				return d.ArgErr()
			}
			r, err := strconv.ParseFloat(s, 64)
			if err != nil || !(r > 0) || r > 1e9 {
				return d.Errf("invalid max_lookup_rate %q: must be a positive number of lookups per second", s)
			}
			v.MaxLookupRate = r
		case "negative_ttl":
			var s string
			if !d.AllArgs(&s) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil || dur <= 0 {
				return d.Errf("invalid negative_ttl %q: must be a positive duration", s)
			}
			v.NegativeTTL = caddy.Duration(dur)
		case "resolvers", "dnssec", "trust_anchor_file", "timeout", "query_timeout", "cache_size":
			validatorSegs = append(validatorSegs, d.NextSegment())
		default:
			return d.Errf("unrecognized dane verifier option %q", opt)
		}
	}
	var o Options
	if err := o.unmarshalCaddyfile(caddyfile.NewDispenser(asDANEBlock(validatorSegs))); err != nil {
		return err
	}
	v.Resolvers, v.DNSSEC, v.TrustAnchorFile = o.Resolvers, o.DNSSEC, o.TrustAnchorFile
	v.Timeout, v.QueryTimeout, v.CacheSize = o.Timeout, o.QueryTimeout, o.CacheSize
	return nil
}

func init() {
	httpcaddyfile.RegisterHandlerDirective("dane_client", parseClientName)
	// Before map, so that every later directive can use the placeholder.
	httpcaddyfile.RegisterDirectiveOrder("dane_client", httpcaddyfile.Before, "map")
}

// parseClientName sets up the dane_client handler. Syntax:
//
//	dane_client [optional]
//
// It sets {http.request.tls.client.dane_name} to the name the DANE client
// verifier authenticated this connection's certificate as; without
// `optional`, a request with no such name is refused with 403 (a client
// without a certificate under `mode request` never reaches the verifier).
func parseClientName(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	h.Next() // consume directive name
	var c ClientName
	if h.NextArg() {
		if h.Val() != "optional" {
			return nil, h.Errf("dane_client: unknown argument %q (want optional)", h.Val())
		}
		c.Optional = true
	}
	if h.NextArg() || h.NextBlock(0) {
		return nil, h.ArgErr()
	}
	return c, nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*Transport)(nil)
	_ caddyfile.Unmarshaler = (*SRVUpstreams)(nil)
	_ caddyfile.Unmarshaler = (*ClientVerifier)(nil)
)

// UnmarshalCaddyfile sets up the dane_rfc2136 DNS provider from Caddyfile
// tokens. Syntax:
//
//	dane_rfc2136 [<server>] {
//	    server   <host:port>
//	    key_name <name>
//	    key_alg  hmac-sha256|hmac-sha512|hmac-sha384|hmac-sha224|hmac-sha1
//	    secret   <base64>
//	    timeout  <duration>
//	}
//
// as in `acme_dns dane_rfc2136 { ... }` (global) or `tls { dns
// dane_rfc2136 { ... } }` (site). The values are checked when the
// configuration is loaded (Validate); placeholders such as
// {env.TSIG_SECRET} are expanded first.
func (p *DNSProvider) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume the provider name
	if d.NextArg() {
		p.Server = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("dane_rfc2136 option %q specified more than once", opt)
		}
		seen[opt] = true
		var val string
		if !d.AllArgs(&val) {
			return d.ArgErr()
		}
		switch opt {
		case "server":
			if p.Server != "" {
				return d.Errf("dane_rfc2136 server given twice (argument and %q)", val)
			}
			p.Server = val
		case "key_name":
			p.KeyName = val
		case "key_alg":
			p.KeyAlg = val
		case "secret":
			p.Secret = val
		case "timeout":
			dur, err := caddy.ParseDuration(val)
			if err != nil {
				return d.Errf("invalid timeout %q: %v", val, err)
			}
			if dur <= 0 {
				return d.Errf("timeout %q must be positive", val)
			}
			p.Timeout = caddy.Duration(dur)
		default:
			return d.Errf("unrecognized dane_rfc2136 option %q", opt)
		}
	}
	return nil
}

var _ caddyfile.Unmarshaler = (*DNSProvider)(nil)
