package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

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
