package caddymodule

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"net"
	"path"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"github.com/caddyserver/certmagic"
	"github.com/libdns/libdns"
	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/caddy-dane/caddy-dane/caddymodule/dane"
	"github.com/caddy-dane/caddy-dane/caddymodule/publish"
)

func init() {
	caddy.RegisterModule(Publish{})
}

// Defaults and bounds of dane_publish.
const (
	defaultPublishTTL      = 5 * time.Minute
	minPublishTTL          = time.Second
	defaultPublishInterval = time.Minute
	defaultMaxHold         = time.Hour
)

// publishInstance names this process in the heartbeats of instances that
// share a storage; it outlives config reloads, as the process does.
var publishInstance = publish.NewInstanceID()

// runningPublish is the dane_publish app of the running config, for the
// admin endpoint (nil when none runs).
var runningPublish atomic.Pointer[Publish]

// Publish is the `dane_publish` app: it publishes, through a DNS provider
// module (the `dns.providers` modules of ACME's DNS challenge), the TLSA
// records of the certificates Caddy serves, and rolls them over as RFC
// 7671 §8.1 "current + next" requires, so that DANE clients (the `dane`
// transport of another Caddy) never see a key that is not published.
//
// A certificate's key can only be held back before certmagic stores it:
// any instance sharing the storage may load a stored certificate at once.
// So key changes are held at the issuer: a certificate issued through the
// `dane_publish` issuer (which wraps the real one, e.g. `internal`) is
// returned to certmagic only after its records have been in the published
// RRset, next to the current ones, and proven visible by a validating
// resolver for twice the TTL. Records are removed twice the TTL after the
// last instance stopped serving them.
//
// Every change of an RRset is made under a storage lock named after its
// owner; instances sharing the storage learn what the others serve from
// heartbeats in it.
type Publish struct {
	// The DNS provider that updates the zone, a `dns.providers` module
	// (e.g. `dane_rfc2136`, or any libdns provider Caddy has). It must
	// read records and either set an RRset or append and delete records.
	DNSRaw json.RawMessage `json:"dns,omitempty" caddy:"namespace=dns.providers inline_key=name"`

	// Sites whose TLSA records to publish, as "name" or "name:port".
	// Default: every subject of a tls automation policy whose issuer is
	// `dane_publish`, and every name such an issuer issues for.
	Sites []string `json:"sites,omitempty"`

	// Ports for the sites given without one. Default: 443.
	Ports []int `json:"ports,omitempty"`

	// The records to publish for each certificate, as "usage selector
	// matching" (numbers or RFC 7218 names): usage 3 (DANE-EE) is of the
	// leaf, usage 2 (DANE-TA) of its issuer. Default: ["3 1 1"].
	Records []string `json:"records,omitempty"`

	// TTL of the published records. Every rollover waits twice this
	// long. Default: 5m; at least 1s.
	TTL caddy.Duration `json:"ttl,omitempty"`

	// The zone the records go into. Default: found for each owner through
	// the resolvers, as the closest enclosing name whose SOA RRset is
	// proven by DNSSEC; an owner in an unsigned zone is refused.
	Zone string `json:"zone,omitempty"`

	// Time between two reconciliations (and heartbeats). Default: 1m;
	// at least 100ms.
	Interval caddy.Duration `json:"interval,omitempty"`

	// Longest time a renewed certificate is held back waiting for its
	// records; then the renewal fails and certmagic retries it later,
	// while the current certificate stays in service. Default: 1h.
	MaxHold caddy.Duration `json:"max_hold,omitempty"`

	// Recursive resolvers through which visibility is proven, as for the
	// `dane` transport. Default: the nameservers in /etc/resolv.conf.
	Resolvers []string `json:"resolvers,omitempty"`

	// How TLSA records are proven: "validate" (default) or
	// "trust_resolver", as for the `dane` transport.
	DNSSEC string `json:"dnssec,omitempty"`

	// A file of trust anchors, as for the `dane` transport.
	TrustAnchorFile string `json:"trust_anchor_file,omitempty"`

	// Upper bound on one TLSA lookup and validation. Default: 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// Timeout of one query to one resolver. Default: 2s.
	QueryTimeout caddy.Duration `json:"query_timeout,omitempty"`

	provider libdns.RecordGetter
	params   []publish.Params
	zone     string // canonical, or "" to find per owner
	explicit []siteKey
	auth     *dane.Authenticator
	storage  certmagic.Storage
	metrics  *publishMetrics
	logger   *zap.Logger
	ctx      caddy.Context
	cancel   context.CancelFunc
	done     chan struct{}

	mu         *sync.Mutex
	owners     map[string]siteKey            // TLSA owner → site and port
	publishers map[string]*publish.Publisher // zone → publisher
	zones      map[string]string             // owner → zone found
	retry      map[string]ownerRetry         // owner → backoff after failures
}

type ownerRetry struct {
	failures int
	next     time.Time
}

// CaddyModule returns the Caddy module information.
func (Publish) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "dane_publish",
		New: func() caddy.Module { return new(Publish) },
	}
}

// Provision checks the options, loads the DNS provider and builds the
// validator. It does not load the tls app: the `dane_publish` issuer,
// which the tls app provisions, loads this app.
func (p *Publish) Provision(ctx caddy.Context) error {
	p.ctx = ctx
	p.logger = ctx.Logger()
	if p.TTL == 0 {
		p.TTL = caddy.Duration(defaultPublishTTL)
	}
	if time.Duration(p.TTL) < minPublishTTL || time.Duration(p.TTL)%time.Second != 0 {
		return fmt.Errorf("dane_publish: ttl %s: must be a whole number of seconds, at least %s", time.Duration(p.TTL), minPublishTTL)
	}
	if p.Interval == 0 {
		p.Interval = caddy.Duration(defaultPublishInterval)
	}
	if time.Duration(p.Interval) < minMonitorInterval {
		return fmt.Errorf("dane_publish: interval %s is shorter than the minimum %s", time.Duration(p.Interval), minMonitorInterval)
	}
	if p.MaxHold == 0 {
		p.MaxHold = caddy.Duration(defaultMaxHold)
	}
	if time.Duration(p.MaxHold) < 2*time.Duration(p.TTL) {
		return fmt.Errorf("dane_publish: max_hold %s is shorter than twice the ttl (%s): no renewed certificate could ever be released", time.Duration(p.MaxHold), 2*time.Duration(p.TTL))
	}
	if len(p.Ports) == 0 {
		p.Ports = []int{defaultTLSAPort}
	}
	for _, port := range p.Ports {
		if port <= 0 || port > 65535 {
			return fmt.Errorf("dane_publish: ports: %d is not a TCP port (1-65535)", port)
		}
	}
	if len(p.Records) == 0 {
		p.Records = []string{"3 1 1"}
	}
	p.params = nil
	for _, r := range p.Records {
		prm, err := publish.ParseParams(r)
		if err != nil {
			return fmt.Errorf("dane_publish: records: %v", err)
		}
		p.params = append(p.params, prm)
	}
	if p.Zone != "" {
		if _, ok := dns.IsDomainName(p.Zone); !ok {
			return fmt.Errorf("dane_publish: zone %q is not a domain name", p.Zone)
		}
		p.zone = dns.CanonicalName(p.Zone)
	}
	p.explicit = nil
	for _, s := range p.Sites {
		keys, err := p.parseSite(s)
		if err != nil {
			return fmt.Errorf("dane_publish: sites: %v", err)
		}
		p.explicit = append(p.explicit, keys...)
	}
	for _, k := range p.explicit {
		if err := p.inZone(k); err != nil {
			return fmt.Errorf("dane_publish: sites: %v", err)
		}
	}

	if p.DNSRaw == nil {
		return errors.New("dane_publish: a DNS provider is required (dns <provider> ...)")
	}
	mod, err := ctx.LoadModule(p, "DNSRaw")
	if err != nil {
		return fmt.Errorf("dane_publish: loading DNS provider: %v", err)
	}
	getter, ok := mod.(libdns.RecordGetter)
	if !ok {
		return fmt.Errorf("dane_publish: DNS provider %T cannot read records (libdns.RecordGetter), which publishing needs to know the RRset", mod)
	}
	p.provider = getter
	if err := (&publish.Publisher{Provider: getter}).Check(); err != nil {
		return fmt.Errorf("dane_publish: %v", err)
	}

	opts := Options{
		Resolvers: p.Resolvers, DNSSEC: p.DNSSEC, TrustAnchorFile: p.TrustAnchorFile,
		Timeout: p.Timeout, QueryTimeout: p.QueryTimeout,
	}
	auth, err := opts.newAuthenticator(nil)
	if err != nil {
		return fmt.Errorf("dane_publish: %v", strings.TrimPrefix(err.Error(), "dane: "))
	}
	p.auth = auth
	p.Timeout, p.QueryTimeout = opts.Timeout, opts.QueryTimeout
	p.storage = ctx.Storage()
	p.metrics, err = registerPublishMetrics(ctx.GetMetricsRegistry())
	if err != nil {
		return fmt.Errorf("dane_publish: registering metrics: %v", err)
	}
	p.mu = new(sync.Mutex)
	p.owners = map[string]siteKey{}
	p.publishers = map[string]*publish.Publisher{}
	p.zones = map[string]string{}
	p.retry = map[string]ownerRetry{}
	for _, k := range p.explicit {
		p.owners[dane.Owner(k.site, k.port)] = k
	}
	return nil
}

// parseSite parses "name" or "name:port".
func (p *Publish) parseSite(s string) ([]siteKey, error) {
	name, ports := s, p.Ports
	if h, portStr, err := net.SplitHostPort(s); err == nil {
		port, perr := strconv.Atoi(portStr)
		if perr != nil || port <= 0 || port > 65535 {
			return nil, fmt.Errorf("%q: port must be 1-65535", s)
		}
		name, ports = h, []int{port}
	}
	if strings.ContainsAny(name, "*{") {
		return nil, fmt.Errorf("%q: wildcards and placeholders have no TLSA owner of their own; name the hosts", s)
	}
	if err := dane.ValidateName(name); err != nil {
		return nil, fmt.Errorf("%q: %v", s, err)
	}
	var out []siteKey
	for _, port := range ports {
		out = append(out, siteKey{site: canonicalSite(name), port: port})
	}
	return out, nil
}

// inZone reports a site whose owner is not in the configured zone.
func (p *Publish) inZone(k siteKey) error {
	if p.zone == "" {
		return nil
	}
	if owner := dane.Owner(k.site, k.port); !dns.IsSubDomain(p.zone, owner) {
		return fmt.Errorf("%s (owner %s) is outside the zone %s", k.site, owner, p.zone)
	}
	return nil
}

// Start finds the default sites and runs the reconcile loop.
func (p *Publish) Start() error {
	if len(p.explicit) == 0 {
		tlsAppIface, err := p.ctx.App("tls")
		if err != nil {
			return fmt.Errorf("dane_publish: getting tls app: %v", err)
		}
		for _, name := range publishedSubjects(tlsAppIface.(*caddytls.TLS)) {
			for _, port := range p.Ports {
				k := siteKey{site: name, port: port}
				if err := p.inZone(k); err != nil {
					return fmt.Errorf("dane_publish: %v", err)
				}
				p.addOwner(k)
			}
		}
	}
	p.warnUnservedPorts()
	ctx, cancel := context.WithCancel(p.ctx)
	p.cancel = cancel
	p.done = make(chan struct{})
	runningPublish.Store(p)
	p.logger.Info("publishing TLSA records", zap.Strings("owners", p.ownerList()),
		zap.Strings("records", p.Records), zap.Duration("ttl", time.Duration(p.TTL)), zap.String("zone", p.Zone))
	go p.loop(ctx)
	return nil
}

// warnUnservedPorts logs each owner whose port no http server listens on:
// a site served on :8443 with the default ports publishes at _443._tcp,
// where its clients do not look. (A port forwarded by something in front
// of Caddy is legitimate, hence a warning.)
func (p *Publish) warnUnservedPorts() {
	httpAppIface, err := p.ctx.AppIfConfigured("http")
	if err != nil {
		return
	}
	listening := map[int]bool{}
	for _, srv := range httpAppIface.(*caddyhttp.App).Servers {
		for _, l := range srv.Listen {
			na, err := caddy.ParseNetworkAddress(l)
			if err != nil {
				continue
			}
			for port := na.StartPort; port <= na.EndPort && port-na.StartPort < 65536; port++ {
				listening[int(port)] = true
			}
		}
	}
	for _, owner := range p.ownerList() {
		if k, _ := p.siteOf(owner); !listening[k.port] {
			p.logger.Warn("no http server listens on the port whose TLSA records are published; set ports (or sites name:port) to the port clients connect to",
				zap.String("owner", owner), zap.Int("port", k.port))
		}
	}
}

// Stop ends the loop and waits for it.
func (p *Publish) Stop() error {
	runningPublish.CompareAndSwap(p, nil)
	if p.cancel != nil {
		p.cancel()
		<-p.done
	}
	return nil
}

// publishedSubjects returns the subjects of the automation policies whose
// issuers include a dane_publish issuer.
func publishedSubjects(tlsApp *caddytls.TLS) []string {
	if tlsApp.Automation == nil {
		return nil
	}
	var out []string
	for _, ap := range tlsApp.Automation.Policies {
		if !slices.ContainsFunc(ap.Issuers, func(i certmagic.Issuer) bool { _, ok := i.(*PublishIssuer); return ok }) {
			continue
		}
		for _, s := range ap.SubjectsRaw {
			if strings.ContainsAny(s, "*{") || certmagic.SubjectIsIP(s) || dane.ValidateName(s) != nil {
				continue
			}
			if s = canonicalSite(s); !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

func (p *Publish) addOwner(k siteKey) string {
	owner := dane.Owner(k.site, k.port)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.owners[owner] = k
	return owner
}

func (p *Publish) ownerList() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.owners))
	for o := range p.owners {
		out = append(out, o)
	}
	slices.Sort(out)
	return out
}

func (p *Publish) siteOf(owner string) (siteKey, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k, ok := p.owners[owner]
	return k, ok
}

// publisher returns the engine for owner's zone, finding the zone by a
// validated SOA lookup when none is configured.
func (p *Publish) publisher(ctx context.Context, owner string) (*publish.Publisher, error) {
	p.mu.Lock()
	zone := p.zone
	if zone == "" {
		zone = p.zones[owner]
	}
	p.mu.Unlock()
	if zone == "" {
		// Proven, like every answer acted on: see publish.FindZone.
		z, err := publish.FindZone(ctx, p.auth.Prover, owner, time.Duration(p.Timeout))
		if err != nil {
			return nil, &publish.Error{Kind: publish.ErrZoneNotFound, Owner: owner, Op: "finding the zone (DNSSEC-validated SOA lookup)", Err: err}
		}
		zone = z
		p.mu.Lock()
		p.zones[owner] = zone
		p.mu.Unlock()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if pub, ok := p.publishers[zone]; ok {
		return pub, nil
	}
	pub := &publish.Publisher{
		Provider: p.provider, Zone: zone, TTL: time.Duration(p.TTL),
		Storage: p.storage, Instance: publishInstance, Interval: time.Duration(p.Interval),
		Needed: p.needed,
	}
	p.publishers[zone] = pub
	return pub, nil
}

// needed returns the records that this instance's certificates for
// owner's site need: those it serves and those in storage (which any
// instance may load at any time).
func (p *Publish) needed(ctx context.Context, owner string) ([]string, error) {
	k, ok := p.siteOf(owner)
	if !ok {
		return nil, nil
	}
	var out []string
	for _, sc := range servedChains(k.site) {
		recs, err := publish.Records(sc.chain, p.params)
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	stored, err := storedChains(ctx, p.storage, k.site)
	if err != nil {
		return nil, err
	}
	for _, chain := range stored {
		recs, err := publish.Records(chain, p.params)
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// storedChains returns the certificate chains certmagic keeps in storage
// for site, under any issuer.
func storedChains(ctx context.Context, st certmagic.Storage, site string) ([][]*x509.Certificate, error) {
	dirs, err := st.List(ctx, "certificates", false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing certificates in storage: %v", err)
	}
	name := certmagic.StorageKeys.Safe(site)
	var out [][]*x509.Certificate
	for _, dir := range dirs {
		key := path.Join(dir, name, name+".crt")
		b, err := st.Load(ctx, key)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("loading %s: %v", key, err)
		}
		chain, err := pemChain(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", key, err)
		}
		// An expired certificate left under another issuer's directory
		// (a change of issuer) is not what any instance will load next;
		// one still served is counted by servedChains anyway.
		if time.Now().After(chain[0].NotAfter) {
			continue
		}
		out = append(out, chain)
	}
	return out, nil
}

var errNoPEMCertificate = errors.New("no certificate in PEM data")

// pemChain parses the CERTIFICATE blocks of PEM data, in order.
func pemChain(b []byte) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %v", len(chain), err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, errNoPEMCertificate
	}
	return chain, nil
}

// loop reconciles at once and then on a fixed cadence (a ticker, not a
// timer reset after each round): the removal rule's grace assumes that
// two sightings of a needed record are at most one interval apart, plus
// the time one round takes.
func (p *Publish) loop(ctx context.Context) {
	defer close(p.done)
	ticker := time.NewTicker(time.Duration(p.Interval))
	defer ticker.Stop()
	for {
		p.reconcileAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// reconcileAll writes this instance's heartbeat and reconciles every
// owner not waiting out a backoff.
func (p *Publish) reconcileAll(ctx context.Context) {
	defer func() {
		if err := recover(); err != nil {
			log.Printf("[PANIC] dane_publish: %v\n%s", err, debug.Stack())
		}
	}()
	owners := p.ownerList()
	served := map[string][]string{}
	for _, owner := range owners {
		k, _ := p.siteOf(owner)
		for _, sc := range servedChains(k.site) {
			if recs, err := publish.Records(sc.chain, p.params); err == nil {
				served[owner] = append(served[owner], recs...)
			}
		}
	}
	// The heartbeat goes first and does not depend on any zone: other
	// instances must not take this one for dead while its zones fail.
	hb := &publish.Publisher{Storage: p.storage, Instance: publishInstance}
	if err := hb.Heartbeat(ctx, served); err != nil {
		p.metrics.errors.WithLabelValues(publish.Reason(err)).Inc()
		p.logger.Error("writing dane_publish heartbeat failed", zap.String("reason", publish.Reason(err)), zap.Error(err))
	}
	for _, owner := range owners {
		p.mu.Lock()
		r := p.retry[owner]
		p.mu.Unlock()
		if time.Now().Before(r.next) {
			continue
		}
		pub, err := p.publisher(ctx, owner)
		var ch publish.Change
		if err == nil {
			ch, err = pub.Reconcile(ctx, owner)
		}
		if ctx.Err() != nil {
			return
		}
		p.observe(pub, ch, err)
		p.mu.Lock()
		if err != nil {
			r.failures++
			r.next = time.Now().Add(p.backoff(r.failures))
			p.retry[owner] = r
		} else {
			delete(p.retry, owner)
		}
		p.mu.Unlock()
		if err != nil {
			p.logFailure(owner, err, p.backoff(r.failures))
		}
	}
}

// backoff after n failures: from the interval (at most 5s) doubling up to
// 5 intervals, at least a minute: a long outage is retried at least every
// 5 minutes with the default interval.
func (p *Publish) backoff(n int) time.Duration {
	iv := time.Duration(p.Interval)
	return publish.Backoff(n, min(iv, 5*time.Second), max(5*iv, time.Minute))
}

// observe turns one reconciliation into metrics and the change log line.
func (p *Publish) observe(pub *publish.Publisher, ch publish.Change, err error) {
	if ch.Changed() {
		p.metrics.changes.WithLabelValues("added").Add(float64(len(ch.Added)))
		p.metrics.changes.WithLabelValues("removed").Add(float64(len(ch.Removed)))
		zone := ""
		if pub != nil {
			zone = pub.Zone
		}
		p.logger.Info("TLSA RRset updated", zap.String("owner", ch.Owner), zap.String("zone", zone),
			zap.Duration("ttl", ch.TTL), zap.Strings("added", ch.Added), zap.Strings("removed", ch.Removed),
			zap.Strings("records", ch.Records))
	}
	if err != nil {
		p.metrics.errors.WithLabelValues(publish.Reason(err)).Inc()
		return
	}
	p.metrics.records.WithLabelValues(ch.Owner).Set(float64(len(ch.Records)))
	p.metrics.lastSuccess.WithLabelValues(ch.Owner).SetToCurrentTime()
}

func (p *Publish) logFailure(owner string, err error, retryIn time.Duration) {
	p.logger.Error("publishing TLSA RRset failed", zap.String("owner", owner),
		zap.String("reason", publish.Reason(err)), zap.Error(err), zap.Duration("retry_in", retryIn))
}

// hold keeps a certificate the dane_publish issuer got back until its
// records are published and visible for 2×TTL at every owner of its
// names (publish.Publisher.Hold). An error means the certificate must not
// be used.
func (p *Publish) hold(ctx context.Context, chain []*x509.Certificate) error {
	recs, err := publish.Records(chain, p.params)
	if err != nil {
		return fmt.Errorf("dane_publish: records of the new certificate: %v", err)
	}
	// Group the owners by zone: one Hold per zone.
	byZone := map[*publish.Publisher][]string{}
	var order []*publish.Publisher
	var keys []siteKey
	for _, name := range chain[0].DNSNames {
		if strings.Contains(name, "*") || dane.ValidateName(name) != nil {
			continue
		}
		site := canonicalSite(name)
		if len(p.explicit) > 0 {
			for _, k := range p.explicit {
				if k.site == site {
					keys = append(keys, k)
				}
			}
			continue
		}
		for _, port := range p.Ports {
			keys = append(keys, siteKey{site: site, port: port})
		}
	}
	if len(keys) == 0 {
		p.logger.Warn("renewed certificate has no name to publish; released at once", zap.Strings("names", chain[0].DNSNames))
		return nil
	}
	for _, k := range keys {
		if err := p.inZone(k); err != nil {
			return fmt.Errorf("dane_publish: %v", err)
		}
		owner := p.addOwner(k)
		pub, err := p.publisher(ctx, owner)
		if err != nil {
			p.metrics.errors.WithLabelValues(publish.Reason(err)).Inc()
			return fmt.Errorf("dane_publish: %v", err)
		}
		if _, ok := byZone[pub]; !ok {
			order = append(order, pub)
		}
		byZone[pub] = append(byZone[pub], owner)
	}
	// The hold ends with the app too: a replaced config's issuer must not
	// keep a renewal waiting on a loop that no longer runs.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(p.ctx, cancel)
	defer stop()

	start := time.Now()
	owners := []string{}
	for _, pub := range order {
		owners = append(owners, byZone[pub]...)
	}
	p.logger.Info("holding renewed certificate until its TLSA records are visible",
		zap.Strings("owners", owners), zap.Strings("records", recs), zap.Duration("ttl", time.Duration(p.TTL)))
	for _, pub := range order {
		zoneOwners := byZone[pub]
		_, err := pub.Hold(ctx, publish.HoldOptions{
			Owners: zoneOwners, Records: recs, Max: time.Duration(p.MaxHold) - time.Since(start),
			RetryBase: min(time.Duration(p.Interval), 5*time.Second), RetryLimit: max(time.Duration(p.Interval), time.Minute),
			Visible: func(ctx context.Context) error {
				for _, owner := range zoneOwners {
					k, _ := p.siteOf(owner)
					if _, err := p.auth.Authenticate(ctx, dane.Target{Host: k.site, Port: k.port}, presents(chain)); err != nil {
						return err
					}
				}
				return nil
			},
			OnChange: func(ch publish.Change) { p.observe(pub, ch, nil) },
			OnError: func(owner string, err error, retryIn time.Duration) {
				p.observe(pub, publish.Change{}, err)
				p.logFailure(owner, err, retryIn)
			},
		})
		if err != nil {
			p.metrics.errors.WithLabelValues(publish.Reason(err)).Inc()
			p.logger.Error("renewed certificate not released: its records could not be published and seen; the current certificate stays in service and certmagic retries the renewal",
				zap.Strings("owners", zoneOwners), zap.Strings("records", recs), zap.Error(err))
			return fmt.Errorf("dane_publish: %v", err)
		}
	}
	held := time.Since(start)
	p.metrics.held.Observe(held.Seconds())
	p.logger.Info("releasing renewed certificate", zap.Strings("owners", owners),
		zap.Strings("records", recs), zap.Duration("held", held))
	return nil
}

// Preview is one owner's dry run.
type Preview struct {
	Owner   string   `json:"owner"`
	Zone    string   `json:"zone,omitempty"`
	TTL     int      `json:"ttl"`
	Publish []string `json:"publish"`         // the RRset the next reconciliation writes
	InZone  []string `json:"in_zone"`         // what the zone holds now
	Error   string   `json:"error,omitempty"` // why the zone could not be read
}

// preview computes, for every owner, what the next reconciliation would
// publish, without writing anything.
func (p *Publish) preview(ctx context.Context) []Preview {
	var out []Preview
	for _, owner := range p.ownerList() {
		pv := Preview{Owner: owner, TTL: int(time.Duration(p.TTL) / time.Second)}
		pub, err := p.publisher(ctx, owner)
		if err == nil {
			pv.Zone = pub.Zone
			pv.Publish, pv.InZone, err = pub.Preview(ctx, owner)
		}
		if err != nil {
			pv.Error = err.Error()
		}
		out = append(out, pv)
	}
	return out
}

// Interface guards.
var (
	_ caddy.App         = (*Publish)(nil)
	_ caddy.Provisioner = (*Publish)(nil)
)
