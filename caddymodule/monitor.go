package caddymodule

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-dane/caddy-dane/caddymodule/dane"
	"github.com/caddy-dane/caddy-dane/caddymodule/dnssec"
	"github.com/caddy-dane/caddy-dane/caddymodule/tlsa"
)

func init() {
	caddy.RegisterModule(Monitor{})
}

// Defaults and bounds of the monitor.
const (
	defaultMonitorInterval = time.Hour
	// minMonitorInterval keeps a typo ("1ms") from turning the monitor
	// into a DNS flood; tests use it.
	minMonitorInterval = 100 * time.Millisecond
	// firstCheckDelay is how long after Start the first check runs (or
	// the interval, if shorter): certificates loaded from storage or
	// files are in the cache by then.
	firstCheckDelay = 5 * time.Second
	defaultTLSAPort = 443
)

// Monitor is the `dane_monitor` app: it checks, periodically, that the
// DNSSEC-secure TLSA records of the sites Caddy serves match the
// certificates Caddy serves for them, so that clients authenticating
// Caddy by DANE are not locked out by a certificate change.
//
// The sites are the names given in `names`, the host matchers of the
// `http` app's routes, and the subjects of the `tls` app's automation
// policies; a site is checked when the `tls` app has a certificate for it
// in its cache (managed or loaded). Wildcards, IP addresses and names with
// placeholders are skipped.
//
// For each site and port, the TLSA RRset at _<port>._tcp.<site> is looked
// up with the same in-process DNSSEC validator as the `dane` transport,
// and each certificate chain in the cache for the site is matched against
// it (RFC 6698, RFC 7671). The outcome is the gauge
// caddy_dane_monitor_tlsa_match{site,port}: 1 when every certificate
// matches, 0 when one does not (stale records), -1 when there is no
// DNSSEC-secure TLSA RRset. Each change of outcome is logged once: an
// error with the records to publish when there is no secure RRset, a
// warning with the records to publish when it is stale or will go stale at
// the next renewal, info when all is well.
type Monitor struct {
	// Names to check besides those found in the http and tls apps.
	// Each must be a DNS name Caddy has a certificate for.
	Names []string `json:"names,omitempty"`

	// TCP ports whose TLSA records are checked for every site
	// (_<port>._tcp.<site>). Default: 443.
	Ports []int `json:"ports,omitempty"`

	// Time between two checks. The first check runs shortly after the
	// config is loaded. Default: 1h; at least 100ms.
	Interval caddy.Duration `json:"interval,omitempty"`

	// Recursive resolvers to query, as for the `dane` transport.
	// Default: the nameservers in /etc/resolv.conf.
	Resolvers []string `json:"resolvers,omitempty"`

	// How TLSA records are proven, as for the `dane` transport:
	// "validate" (default) or "trust_resolver" (the AD bit of loopback
	// validating resolvers).
	DNSSEC string `json:"dnssec,omitempty"`

	// A file of trust anchors (DS or DNSKEY records), as for the `dane`
	// transport. Default: the IANA root zone KSKs.
	TrustAnchorFile string `json:"trust_anchor_file,omitempty"`

	// Upper bound on one site's TLSA lookup and validation. Default: 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// Timeout of one query to one resolver. Default: 2s, or half of
	// Timeout if that is smaller.
	QueryTimeout caddy.Duration `json:"query_timeout,omitempty"`

	// Maximum number of validated RRsets kept in the cache. Default: 10000.
	CacheSize int `json:"cache_size,omitempty"`

	opts    Options
	auth    *dane.Authenticator
	tlsApp  *caddytls.TLS
	httpApp *caddyhttp.App // nil when no http app is configured
	gauge   *prometheus.GaugeVec
	logger  *zap.Logger
	ctx     caddy.Context
	cancel  context.CancelFunc
	done    chan struct{}

	// Owned by the check loop.
	last map[siteKey]string // outcome fingerprint last logged
}

// siteKey is one TLSA owner the monitor watches.
type siteKey struct {
	site string // without trailing dot, lower case
	port int
}

// CaddyModule returns the Caddy module information.
func (Monitor) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "dane_monitor",
		New: func() caddy.Module { return new(Monitor) },
	}
}

// Provision checks the options, applies defaults, builds the validator and
// registers the gauge.
func (m *Monitor) Provision(ctx caddy.Context) error {
	m.ctx = ctx
	m.logger = ctx.Logger()
	if m.Interval == 0 {
		m.Interval = caddy.Duration(defaultMonitorInterval)
	}
	if iv := time.Duration(m.Interval); iv < minMonitorInterval {
		return fmt.Errorf("dane_monitor: interval %s is shorter than the minimum %s", iv, minMonitorInterval)
	}
	if len(m.Ports) == 0 {
		m.Ports = []int{defaultTLSAPort}
	}
	for _, p := range m.Ports {
		if p <= 0 || p > 65535 {
			return fmt.Errorf("dane_monitor: ports: %d is not a TCP port (1-65535)", p)
		}
	}
	for i, n := range m.Names {
		if strings.Contains(n, "*") {
			return fmt.Errorf("dane_monitor: names: %q is a wildcard; name the hosts it serves", n)
		}
		if err := dane.ValidateName(n); err != nil {
			return fmt.Errorf("dane_monitor: names: %v", err)
		}
		m.Names[i] = canonicalSite(n)
	}

	m.opts = Options{
		Resolvers:       m.Resolvers,
		DNSSEC:          m.DNSSEC,
		TrustAnchorFile: m.TrustAnchorFile,
		Timeout:         m.Timeout,
		QueryTimeout:    m.QueryTimeout,
		CacheSize:       m.CacheSize,
	}
	// As a DANE client of this site would see it: no PKIX fallback, no
	// CNAME following, DANE-EE names not checked.
	auth, err := m.opts.newAuthenticator(nil)
	if err != nil {
		return fmt.Errorf("dane_monitor: %v", strings.TrimPrefix(err.Error(), "dane: "))
	}
	m.auth = auth
	m.Timeout, m.QueryTimeout = m.opts.Timeout, m.opts.QueryTimeout

	// The tls app owns the certificate cache; loading it guarantees
	// the cache exists while this app runs.
	tlsAppIface, err := ctx.App("tls")
	if err != nil {
		return fmt.Errorf("dane_monitor: getting tls app: %v", err)
	}
	m.tlsApp = tlsAppIface.(*caddytls.TLS)
	switch httpAppIface, err := ctx.AppIfConfigured("http"); {
	case err == nil:
		m.httpApp = httpAppIface.(*caddyhttp.App)
	case !errors.Is(err, caddy.ErrNotConfigured):
		return fmt.Errorf("dane_monitor: getting http app: %v", err)
	}

	m.gauge, err = registerMonitorMetrics(ctx.GetMetricsRegistry())
	if err != nil {
		return fmt.Errorf("dane_monitor: registering metrics: %v", err)
	}
	return nil
}

// Start runs the check loop in the background.
func (m *Monitor) Start() error {
	ctx, cancel := context.WithCancel(m.ctx)
	m.cancel = cancel
	m.done = make(chan struct{})
	m.last = make(map[siteKey]string)
	go m.loop(ctx)
	return nil
}

// Stop ends the check loop and waits for it, so that no check runs after
// the tls app has released its certificate cache.
func (m *Monitor) Stop() error {
	if m.cancel != nil {
		m.cancel()
		<-m.done
	}
	return nil
}

func (m *Monitor) loop(ctx context.Context) {
	defer close(m.done)
	interval := time.Duration(m.Interval)
	timer := time.NewTimer(min(firstCheckDelay, interval))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		m.checkAll(ctx)
		timer.Reset(interval)
	}
}

// checkAll checks every site on every port once.
func (m *Monitor) checkAll(ctx context.Context) {
	defer func() {
		if err := recover(); err != nil {
			log.Printf("[PANIC] dane_monitor: %v\n%s", err, debug.Stack())
		}
	}()
	explicit, found := m.sites()
	seen := make(map[siteKey]bool)
	for _, site := range append(explicit, found...) {
		for _, port := range m.Ports {
			if ctx.Err() != nil {
				return
			}
			k := siteKey{site, port}
			if seen[k] {
				continue
			}
			seen[k] = true
			chains := servedChains(site)
			if len(chains) == 0 {
				// A name found in the config may have no certificate
				// yet (being obtained) or be served without TLS: not
				// a DANE problem. A name listed explicitly is.
				m.gauge.DeleteLabelValues(site, strconv.Itoa(port))
				if slices.Contains(explicit, site) {
					m.report(k, &outcome{state: stateNoCertificate})
				} else {
					delete(m.last, k) // log afresh when it comes back
				}
				continue
			}
			out := m.check(ctx, k, chains)
			m.gauge.WithLabelValues(site, strconv.Itoa(port)).Set(out.gauge())
			m.report(k, out)
		}
	}
	// Sites no longer served lose their series.
	for k := range m.last {
		if !seen[k] {
			m.gauge.DeleteLabelValues(k.site, strconv.Itoa(k.port))
			delete(m.last, k)
		}
	}
}

// sites returns the explicit names and, separately, the names found in
// the http app's host matchers and the tls app's automation policies that
// could have a certificate of their own.
func (m *Monitor) sites() (explicit, found []string) {
	explicit = m.Names
	add := func(name string) {
		if strings.ContainsAny(name, "*{") || certmagic.SubjectIsIP(name) {
			return
		}
		if dane.ValidateName(name) != nil {
			return
		}
		name = canonicalSite(name)
		if !slices.Contains(explicit, name) && !slices.Contains(found, name) {
			found = append(found, name)
		}
	}
	if m.httpApp != nil {
		for _, srv := range m.httpApp.Servers {
			for _, route := range srv.Routes {
				for _, set := range route.MatcherSets {
					for _, matcher := range set {
						if hm, ok := matcher.(*caddyhttp.MatchHost); ok {
							for _, h := range *hm {
								add(h)
							}
						}
					}
				}
			}
		}
	}
	if m.tlsApp.Automation != nil {
		for _, ap := range m.tlsApp.Automation.Policies {
			for _, s := range ap.SubjectsRaw {
				add(s)
			}
		}
	}
	slices.Sort(found)
	return explicit, found
}

// servedChain is a certificate chain in the tls app's cache.
type servedChain struct {
	hash  string
	chain []*x509.Certificate // leaf first, as served
}

// servedChains returns the chains in the certificate cache that Caddy
// may serve for site: one normally, two while a renewed or reloaded
// certificate replaces the previous one.
func servedChains(site string) []servedChain {
	var out []servedChain
	for _, c := range caddytls.AllMatchingCertificates(site) {
		sc := servedChain{hash: c.Hash()}
		for i, der := range c.Certificate.Certificate {
			if i == 0 && c.Leaf != nil {
				sc.chain = append(sc.chain, c.Leaf)
				continue
			}
			x, err := x509.ParseCertificate(der)
			if err != nil {
				break // the cache only holds parsed chains; keep what parsed
			}
			sc.chain = append(sc.chain, x)
		}
		if len(sc.chain) > 0 {
			out = append(out, sc)
		}
	}
	return out
}

// The outcomes of one check, as logged.
const (
	stateMatch         = "match"          // every served chain matches
	stateMatchNow      = "match_now_only" // matches, but the next certificate may not
	stateStale         = "stale"          // a served chain matches no record
	stateNotSecure     = "not_secure"     // no DNSSEC-secure TLSA RRset
	stateNoCertificate = "no_certificate" // explicit name without certificate
)

// outcome is the result of checking one site on one port.
type outcome struct {
	state   string
	owner   string
	status  dnssec.Status
	err     error         // why it is not a match
	records []tlsa.Record // published, when Secure
	publish []string      // zone-file lines for the served certificate(s)
	next    string        // what happens at the next renewal
	chains  []servedChain
}

func (o *outcome) gauge() float64 {
	switch o.state {
	case stateMatch, stateMatchNow:
		return 1
	case stateStale:
		return 0
	}
	return -1
}

// check authenticates each served chain for k exactly as a DANE client
// would (dane.Authenticator.Authenticate, the transport's entry point):
// the TLSA RRset at _<port>._tcp.<site>, proven by DNSSEC, must match it.
func (m *Monitor) check(ctx context.Context, k siteKey, chains []servedChain) *outcome {
	out := &outcome{owner: dane.Owner(k.site, k.port), chains: chains}
	for _, sc := range chains {
		out.publish = append(out.publish, dane.RecordsToPublish(out.owner, sc.chain)...)
	}
	reuse := m.reusesKeys(k.site)
	out.state = stateMatch
	var nexts []string
	for _, sc := range chains {
		v, err := m.auth.Authenticate(ctx, dane.Target{Host: k.site, Port: k.port}, presents(sc.chain))
		if err != nil {
			out.err = err
			var r *dane.Refusal
			if !errors.As(err, &r) {
				out.state = stateNotSecure
				return out
			}
			out.status, out.records = r.Status, r.Records
			// A Secure RRset with records that the chain does not match
			// is stale; anything else means there is no secure RRset.
			out.state = stateNotSecure
			if r.Status == dnssec.Secure && len(r.Records) > 0 {
				out.state = stateStale
			}
			return out
		}
		out.status, out.records = v.Set.Result.Status, v.Set.Records
		covered, why := dane.NextCertificate(sc.chain, out.records, k.site, reuse)
		if !covered && m.publishesKeys(k.site) {
			covered, why = true, "dane_publish publishes the next certificate's records and holds it back until they are visible for 2×TTL"
		}
		if !covered {
			out.state = stateMatchNow
		}
		if !slices.Contains(nexts, why) {
			nexts = append(nexts, why)
		}
	}
	out.next = strings.Join(nexts, "; ")
	return out
}

// presents is the Handshake of a chain Caddy serves: no connection, the
// chain is what a client would be presented.
func presents(chain []*x509.Certificate) dane.Handshake {
	return func(_ context.Context, p dane.Peer) error { return p.Verify(chain) }
}

// reusesKeys reports whether the automation policy Caddy would use for
// site keeps the private key at renewal (reuse_private_keys). Policies are
// matched as the tls app matches them: the first one without subjects or
// with a subject matching site.
func (m *Monitor) reusesKeys(site string) bool {
	ap := m.policyFor(site)
	return ap != nil && ap.ReusePrivateKeys // the default policies make a new key at each renewal
}

// publishesKeys reports whether site's certificates are issued through
// the dane_publish issuer, which holds each new key back until its records
// are published and visible (RFC 7671 §8.1).
func (m *Monitor) publishesKeys(site string) bool {
	ap := m.policyFor(site)
	return ap != nil && slices.ContainsFunc(ap.Issuers, func(i certmagic.Issuer) bool {
		_, ok := i.(*PublishIssuer)
		return ok
	})
}

// policyFor returns the automation policy the tls app would use for
// site: the first one without subjects or with a subject matching site.
func (m *Monitor) policyFor(site string) *caddytls.AutomationPolicy {
	if m.tlsApp.Automation == nil {
		return nil
	}
	for _, ap := range m.tlsApp.Automation.Policies {
		if len(ap.SubjectsRaw) == 0 || slices.ContainsFunc(ap.SubjectsRaw, func(s string) bool {
			return certmagic.MatchWildcard(site, s)
		}) {
			return ap
		}
	}
	return nil
}

// rolloverAdvice is logged with every warning and error.
const rolloverAdvice = `roll certificates over as RFC 7671 §8.1 "current + next": publish the records of the next certificate (or key) next to the current ones, wait at least twice the TLSA TTL before serving it, then remove the old records; Caddy's reuse_private_keys keeps the key across renewals, so a 3 1 1 record stays valid`

// report logs the outcome of k if it differs from the last one logged.
func (m *Monitor) report(k siteKey, o *outcome) {
	fp := o.fingerprint()
	if m.last[k] == fp {
		return
	}
	m.last[k] = fp

	fields := []zap.Field{
		zap.String("site", k.site),
		zap.Int("port", k.port),
		zap.String("state", o.state),
	}
	if o.owner != "" {
		fields = append(fields, zap.String("tlsa_owner", o.owner), zap.String("dnssec", o.status.String()))
	}
	var published []string
	for _, r := range o.records {
		published = append(published, r.String())
	}
	var level zapcore.Level
	var msg string
	switch o.state {
	case stateMatch:
		level, msg = zapcore.InfoLevel, "dane monitor: TLSA records match the served certificate"
		fields = append(fields, zap.Strings("records", published), zap.String("next_certificate", o.next))
	case stateMatchNow:
		level, msg = zapcore.WarnLevel, "dane monitor: TLSA records match the served certificate, but may not match the next one"
		fields = append(fields, zap.Strings("records", published), zap.String("next_certificate", o.next),
			zap.Strings("publish", o.publish), zap.String("advice", rolloverAdvice))
	case stateStale:
		level, msg = zapcore.WarnLevel, "dane monitor: TLSA records are stale: they do not match the served certificate"
		fields = append(fields, zap.Strings("records", published), zap.Strings("publish", o.publish),
			zap.String("advice", rolloverAdvice), zap.Error(o.err))
	case stateNotSecure:
		level, msg = zapcore.ErrorLevel, "dane monitor: no DNSSEC-secure TLSA records; DANE clients cannot authenticate this site"
		fields = append(fields, zap.Strings("records", published), zap.Strings("publish", o.publish),
			zap.String("advice", rolloverAdvice), zap.Error(o.err))
	case stateNoCertificate:
		level, msg = zapcore.WarnLevel, "dane monitor: no certificate in Caddy's cache for this name"
	}
	if ce := m.logger.Check(level, msg); ce != nil {
		ce.Write(fields...)
	}
}

// fingerprint identifies an outcome for change detection: its state, the
// certificates served and the records published.
func (o *outcome) fingerprint() string {
	h := sha256.New()
	h.Write([]byte(o.state))
	for _, sc := range o.chains {
		h.Write([]byte("\x00" + sc.hash))
	}
	for _, r := range o.records {
		h.Write([]byte("\x01" + r.String()))
	}
	if o.err != nil {
		// Not the message: a lookup error carries server addresses
		// and timings that change from tick to tick.
		h.Write([]byte("\x02" + o.status.String()))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// canonicalSite is a site name as labelled: lower case, no trailing dot.
func canonicalSite(name string) string {
	return strings.TrimSuffix(strings.ToLower(name), ".")
}

// Interface guards
var (
	_ caddy.App         = (*Monitor)(nil)
	_ caddy.Provisioner = (*Monitor)(nil)
)
