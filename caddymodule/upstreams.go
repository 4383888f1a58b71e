package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"

	"github.com/caddy-dane/caddy-dane/caddymodule/dane"
)

func init() {
	caddy.RegisterModule(SRVUpstreams{})
}

// SRVUpstreams is the `dane_srv` dynamic upstream source: upstreams from
// an SRV RRset proven by DNSSEC, for `transport dane` (RFC 7673). It uses
// the DNSSEC engine of the `dane` transport beside it (its resolvers, trust
// anchors and mode), so it has no resolver options of its own.
//
// Unlike the standard `srv` source, which asks the system resolver and
// believes the answer, every SRV target it returns is a TLSA base domain
// that DNSSEC proved: the SRV RRset must be Secure, and so must the
// target's A/AAAA records, which it resolves itself and returns as IP
// addresses (RFC 7673 §3.2). Each endpoint is authenticated by the TLSA
// records of its target, _<port>._tcp.<target>, and its certificate may
// name the target or the service domain. An Insecure SRV RRset or
// Insecure address records give endpoints without DANE: refused, or
// authenticated by PKIX for the names DNSSEC did prove when the
// transport's `on_no_tlsa` is pkix. A Bogus or failed SRV lookup gives no
// upstreams at all (the handler then falls back to its static upstreams,
// if any); a target with bogus or failed address lookups is left out.
//
// Upstreams come in the order of RFC 2782: lowest priority first, then a
// weighted random order within a priority, drawn anew for each request.
// Use `lb_policy first` to honour it: the first available upstream is
// tried, and the next ones on failure.
//
// Results are cached no longer than the DNSSEC proofs hold (TTLs and
// signature expiry) and, if set, `refresh`. There is no grace period: an
// expired proof is never used.
type SRVUpstreams struct {
	// The service label, e.g. "https".
	Service string `json:"service,omitempty"`

	// The protocol label; only tcp (the default) is accepted.
	Proto string `json:"proto,omitempty"`

	// The name label; or, if service and proto are empty, the entire
	// owner name to look up ("_https._tcp.example.com"). Placeholders
	// are allowed.
	Name string `json:"name,omitempty"`

	// Upper bound on how long a resolution is reused. Default: as long
	// as its DNSSEC proofs hold.
	Refresh caddy.Duration `json:"refresh,omitempty"`

	// Which address records of the targets to use. Default: both.
	Versions *reverseproxy.IPVersions `json:"versions,omitempty"`

	transport *Transport
	families  dane.Families
	logger    *zap.Logger
	reported  *atomic.Pointer[dane.SRVSet] // the last set whose skipped targets were logged
}

// CaddyModule returns the Caddy module information.
func (SRVUpstreams) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.upstreams.dane_srv",
		New: func() caddy.Module { return new(SRVUpstreams) },
	}
}

// Provision finds the dane transport of the reverse_proxy handler that
// loads this source: the handler provisions its transport first.
func (su *SRVUpstreams) Provision(ctx caddy.Context) error {
	su.logger = ctx.Logger()
	su.reported = new(atomic.Pointer[dane.SRVSet])
	h := parentHandler(ctx)
	if h == nil {
		return errors.New("dane_srv: not loaded by a reverse_proxy handler")
	}
	t, ok := h.Transport.(*Transport)
	if !ok {
		return fmt.Errorf("dane_srv: the upstreams it finds are authenticated by `transport dane`; this reverse_proxy uses %T", h.Transport)
	}
	su.transport = t
	v := su.Versions
	su.families = dane.Families{IPv4: true, IPv6: true}
	if v != nil && (v.IPv4 != nil || v.IPv6 != nil) {
		su.families = dane.Families{IPv4: v.IPv4 != nil && *v.IPv4, IPv6: v.IPv6 != nil && *v.IPv6}
	}
	if lb := h.LoadBalancing; lb == nil || lb.SelectionPolicy == nil {
		su.logger.Warn("dane_srv: without `lb_policy first`, SRV priorities and weights are ignored (RFC 2782)")
	} else if _, first := lb.SelectionPolicy.(*reverseproxy.FirstSelection); !first {
		su.logger.Warn("dane_srv: SRV priorities and weights are only honoured with `lb_policy first` (RFC 2782)",
			zap.String("lb_policy", fmt.Sprintf("%T", lb.SelectionPolicy)))
	}
	return nil
}

// Validate checks the SRV owner name, unless it has placeholders.
func (su *SRVUpstreams) Validate() error {
	if su.Refresh < 0 {
		return fmt.Errorf("dane_srv: refresh must not be negative: %s", time.Duration(su.Refresh))
	}
	if !su.families.IPv4 && !su.families.IPv6 {
		return errors.New("dane_srv: versions: at least one of ipv4 and ipv6 is needed")
	}
	if strings.Contains(su.Service+su.Proto+su.Name, "{") {
		return nil
	}
	_, err := su.owner(caddy.NewReplacer())
	return err
}

// owner is the SRV owner name to look up, placeholders expanded.
func (su *SRVUpstreams) owner(repl *caddy.Replacer) (string, error) {
	name := repl.ReplaceAll(su.Name, "")
	if su.Service == "" && su.Proto == "" {
		labels := strings.SplitN(strings.TrimSuffix(name, "."), ".", 3)
		if len(labels) < 3 || !strings.HasPrefix(labels[0], "_") || !strings.HasPrefix(labels[1], "_") {
			return "", fmt.Errorf("dane_srv: name %q: want _service._proto.name, or service and proto set", name)
		}
		owner, err := dane.ServiceOwner(labels[0], labels[1], labels[2])
		if err != nil {
			return "", fmt.Errorf("dane_srv: %v", err)
		}
		return owner, nil
	}
	proto := repl.ReplaceAll(su.Proto, "")
	if proto == "" {
		proto = "tcp"
	}
	owner, err := dane.ServiceOwner(repl.ReplaceAll(su.Service, ""), proto, name)
	if err != nil {
		return "", fmt.Errorf("dane_srv: %v", err)
	}
	return owner, nil
}

// GetUpstreams returns the endpoints of the SRV RRset in RFC 2782 order,
// and binds each to its proven target for the transport (srvTarget).
func (su *SRVUpstreams) GetUpstreams(r *http.Request) ([]*reverseproxy.Upstream, error) {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		repl = caddy.NewReplacer()
	}
	start := time.Now()
	owner, err := su.owner(repl)
	if err != nil {
		return nil, su.transport.refuse(su.Name, dane.NoName(err), start)
	}
	set, err := su.transport.auth.ResolveSRV(r.Context(), owner, su.families, time.Duration(su.Refresh))
	if err != nil {
		return nil, su.transport.refuse(owner, err, start)
	}
	if len(set.Skipped) > 0 && su.reported.Swap(set) != set {
		su.logger.Warn("dane_srv: SRV targets left out", zap.String("srv_owner", owner), zap.Errors("reasons", set.Skipped))
	}
	targets := set.Order(rand.IntN)
	if len(targets) == 0 {
		return nil, su.transport.refuse(owner, dane.NoName(fmt.Errorf("no SRV target of %s has a usable address", owner)), start)
	}
	// New Upstream values for every request, as Caddy's own sources do:
	// the handler writes to them.
	ups := make([]*reverseproxy.Upstream, len(targets))
	bound := make(map[*reverseproxy.Upstream]dane.Target, len(targets))
	if prev, ok := caddyhttp.GetVar(r.Context(), srvTargetsVar).(map[*reverseproxy.Upstream]dane.Target); ok {
		for u, t := range prev { // another dane_srv source of the same request (dynamic multi)
			bound[u] = t
		}
	}
	for i, t := range targets {
		ups[i] = &reverseproxy.Upstream{Dial: net.JoinHostPort(t.Host, fmt.Sprint(t.Port))}
		bound[ups[i]] = t
	}
	caddyhttp.SetVar(r.Context(), srvTargetsVar, bound)
	return ups, nil
}

// srvTargetsVar is the request variable that maps the upstreams dane_srv
// returned for this request to their proven targets. It lives and dies
// with the request; the Upstream pointers are unique to it, so no other
// source's upstream (nor an address that happens to be equal) can take a
// target's name.
const srvTargetsVar = "dane_srv.targets"

// srvTarget returns the proven target of an upstream dane_srv returned
// for this request.
func srvTarget(ctx context.Context, up *reverseproxy.Upstream) (dane.Target, bool) {
	if up == nil {
		return dane.Target{}, false
	}
	m, ok := caddyhttp.GetVar(ctx, srvTargetsVar).(map[*reverseproxy.Upstream]dane.Target)
	if !ok {
		return dane.Target{}, false
	}
	t, ok := m[up]
	return t, ok
}

// upstreamOrigins says where the upstreams of the reverse_proxy handler
// that loaded the transport come from, so that a host name nobody
// authenticated never becomes a TLSA base domain.
type upstreamOrigins struct {
	handler bool            // loaded by a reverse_proxy handler
	static  map[string]bool // dial addresses in the configuration, placeholders unexpanded
	ipDials []string        // static dial addresses that are IP literals
	sources []string        // dynamic upstream source modules, `multi` flattened
}

// originsOf reads the reverse_proxy handler that is provisioning the
// transport: the module provisioned just before it.
func originsOf(ctx caddy.Context) upstreamOrigins {
	h := parentHandler(ctx)
	if h == nil {
		return upstreamOrigins{}
	}
	o := upstreamOrigins{handler: true, static: map[string]bool{}}
	for _, u := range h.Upstreams {
		o.static[u.Dial] = true
		if strings.Contains(u.Dial, "{") {
			continue // resolved per request; checked when dialing
		}
		if addr, err := caddy.ParseNetworkAddress(u.Dial); err == nil && net.ParseIP(strings.Trim(addr.Host, "[]")) != nil {
			o.ipDials = append(o.ipDials, u.Dial)
		}
	}
	if hc := h.HealthChecks; hc != nil && hc.Active != nil && hc.Active.Upstream != "" {
		o.static[hc.Active.Upstream] = true
	}
	o.sources = sourceNames(h.DynamicUpstreamsRaw)
	return o
}

// sourceNames lists the dynamic upstream modules of a handler's raw
// config, looking into `multi`.
func sourceNames(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var m struct {
		Source  string            `json:"source"`
		Sources []json.RawMessage `json:"sources"`
	}
	if json.Unmarshal(raw, &m) != nil {
		return []string{"(unreadable)"}
	}
	if m.Source != "multi" {
		return []string{m.Source}
	}
	var out []string
	for _, s := range m.Sources {
		out = append(out, sourceNames(s)...)
	}
	return out
}

// check refuses, at config load, upstreams whose TLSA base domain would be
// unknown (IP addresses without `name` or `tls_server_name`) or chosen by
// unvalidated DNS (dynamic srv).
func (o upstreamOrigins) check(named bool) error {
	for _, s := range o.sources {
		switch s {
		case "srv":
			return errors.New("dane: dynamic srv takes SRV records from the system resolver without DNSSEC, so a forged answer would choose the TLSA base domain and with it the accepted key; use dynamic dane_srv, which validates the SRV RRset (RFC 7673)")
		case "a":
			if !named {
				return errors.New("dane: dynamic a gives IP addresses, which have no name to look up TLSA records for; set `dane { name <host> }` or `tls_server_name <host>`")
			}
		}
	}
	if !named && len(o.ipDials) > 0 {
		return fmt.Errorf("dane: upstream %s is an IP address, so it has no name to look up TLSA records for; set `dane { name <host> }` or `tls_server_name <host>`", o.ipDials[0])
	}
	return nil
}

// unauthenticated names the dynamic source an upstream comes from when
// neither the configuration nor DNSSEC (dane_srv) vouches for its host
// name, or "".
func (o upstreamOrigins) unauthenticated(up *reverseproxy.Upstream) string {
	if !o.handler || len(o.sources) == 0 || up != nil && o.static[up.Dial] {
		return ""
	}
	srcs := slices.DeleteFunc(slices.Clone(o.sources), func(s string) bool { return s == "dane_srv" })
	if len(srcs) == 0 {
		return "" // dane_srv gives IP addresses, bound to their targets
	}
	return "dynamic " + strings.Join(srcs, ", ")
}

// parentHandler is the reverse_proxy handler being provisioned: the last
// one among the modules provisioned so far.
func parentHandler(ctx caddy.Context) *reverseproxy.Handler {
	mods := ctx.Modules()
	for i := len(mods) - 1; i >= 0; i-- {
		if h, ok := mods[i].(*reverseproxy.Handler); ok {
			return h
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*SRVUpstreams)(nil)
	_ caddy.Validator             = (*SRVUpstreams)(nil)
	_ reverseproxy.UpstreamSource = (*SRVUpstreams)(nil)
)
