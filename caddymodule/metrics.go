package caddymodule

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-dane/caddy-dane/caddymodule/dane"
)

// daneMetrics are the transport's Prometheus collectors. As in Caddy's
// reverse proxy, they are made once per process and registered into the
// metrics registry of every config that provisions a dane transport;
// labels are closed sets (results, dane.Reason values, dnssec.Status
// names), never upstream names.
var daneMetrics = struct {
	once           sync.Once
	verifications  *prometheus.CounterVec
	lookups        *prometheus.CounterVec
	cacheLookups   *prometheus.CounterVec
	lookupDuration prometheus.Histogram
	verifyDuration prometheus.Histogram
	handshakes     *prometheus.CounterVec
}{}

func initDANEMetrics() {
	const ns, sub = "caddy", "dane"
	daneMetrics.once.Do(func() {
		daneMetrics.verifications = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "verifications_total",
			Help: "Upstream connections authenticated by DANE (result=verified) or refused, by refusal reason.",
		}, []string{"result", "reason"})
		daneMetrics.lookups = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "lookups_total",
			Help: "TLSA lookups by DNSSEC outcome (secure, insecure, bogus, indeterminate).",
		}, []string{"status"})
		daneMetrics.cacheLookups = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "cache_lookups_total",
			Help: "Secure TLSA lookups answered from the validator's cache (hit) or validated afresh (miss).",
		}, []string{"result"})
		daneMetrics.lookupDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "lookup_duration_seconds",
			Help:    "Time to look up and validate an upstream's TLSA RRset.",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		})
		daneMetrics.verifyDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "handshake_verify_duration_seconds",
			Help:    "Time of the TLS handshake with an upstream, DANE matching of its chain included.",
			Buckets: []float64{.0005, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		})
		daneMetrics.handshakes = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "upstream_handshakes_total",
			Help: "Upstream TLS handshakes that passed DANE verification, full or resumed, and resumed sessions refused because their chain no longer matched the TLSA RRset (kind=resumption_refused).",
		}, []string{"kind"})
	})
}

// registerDANEMetrics registers the collectors into a config's registry.
// A collector already registered there (several dane transports in one
// config) is not an error.
func registerDANEMetrics(registry *prometheus.Registry) error {
	initDANEMetrics()
	if registry == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{
		daneMetrics.verifications, daneMetrics.lookups, daneMetrics.cacheLookups,
		daneMetrics.lookupDuration, daneMetrics.verifyDuration, daneMetrics.handshakes,
	} {
		if err := registry.Register(c); err != nil {
			if are := (prometheus.AlreadyRegisteredError{}); !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// observeLookup counts one TLSA lookup: its DNSSEC outcome, whether a
// secure result came from the cache, and its duration. Refusals that
// happened before any DNS (no name) are not lookups.
func observeLookup(set *dane.TLSASet, err error, elapsed time.Duration) {
	initDANEMetrics()
	var status string
	var r *dane.Refusal
	switch {
	case set != nil:
		status = set.Result.Status.String()
		result := "miss"
		if set.Result.Cached {
			result = "hit"
		}
		daneMetrics.cacheLookups.WithLabelValues(result).Inc()
	case errors.As(err, &r) && r.Owner != "":
		status = r.Status.String()
	default:
		return
	}
	daneMetrics.lookups.WithLabelValues(status).Inc()
	daneMetrics.lookupDuration.Observe(elapsed.Seconds())
}

// observeHandshake records the duration of one upstream handshake.
func observeHandshake(elapsed time.Duration) {
	initDANEMetrics()
	daneMetrics.verifyDuration.Observe(elapsed.Seconds())
}

// Kinds of upstream handshake (the kind label).
const (
	handshakeFull              = "full"
	handshakeResumed           = "resumed"
	handshakeResumptionRefused = "resumption_refused"
)

// countHandshake counts one upstream handshake by kind.
func countHandshake(kind string) {
	initDANEMetrics()
	daneMetrics.handshakes.WithLabelValues(kind).Inc()
}

// countVerified counts an authenticated upstream connection.
func countVerified() {
	initDANEMetrics()
	daneMetrics.verifications.WithLabelValues("verified", "").Inc()
}

// countRefused counts a refused upstream connection by its reason.
func countRefused(reason dane.Reason) {
	initDANEMetrics()
	daneMetrics.verifications.WithLabelValues("refused", string(reason)).Inc()
}

// registerMonitorMetrics makes dane_monitor's gauge for one config and
// registers it there; when the registry already has one (two monitors in
// a config cannot exist, but a registry may outlive a config), that one is
// returned. A new config starts from an empty gauge, so sites no longer
// served leave no series behind.
func registerMonitorMetrics(registry *prometheus.Registry) (*prometheus.GaugeVec, error) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "dane_monitor", Name: "tlsa_match",
		Help: "Whether the DNSSEC-secure TLSA records of a site Caddy serves match its certificate: 1 match, 0 stale (mismatch), -1 no secure TLSA RRset.",
	}, []string{"site", "port"})
	if registry == nil {
		return g, nil
	}
	return registerOrReuse(registry, g)
}

// Client verification (clientauth.go): caddy_dane_client_verifications_total
// {result,reason} and the time VerifyClientCertificate takes.
var clientMetrics = struct {
	once          sync.Once
	verifications *prometheus.CounterVec
	duration      prometheus.Histogram
}{}

func initClientMetrics() {
	clientMetrics.once.Do(func() {
		clientMetrics.verifications = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy", Subsystem: "dane", Name: "client_verifications_total",
			Help: "TLS clients authenticated by DANE (result=verified) or refused, by refusal reason.",
		}, []string{"result", "reason"})
		clientMetrics.duration = prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "caddy", Subsystem: "dane", Name: "client_verify_duration_seconds",
			Help:    "Time to authenticate a TLS client by DANE during its handshake, TLSA lookup included.",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		})
	})
}

// registerClientMetrics registers the client collectors into a config's
// registry; already registered is not an error.
func registerClientMetrics(registry *prometheus.Registry) error {
	initClientMetrics()
	if registry == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{clientMetrics.verifications, clientMetrics.duration} {
		if err := registry.Register(c); err != nil {
			if are := (prometheus.AlreadyRegisteredError{}); !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

func countClientVerified() {
	initClientMetrics()
	clientMetrics.verifications.WithLabelValues("verified", "").Inc()
}

func countClientRefused(reason dane.Reason) {
	initClientMetrics()
	clientMetrics.verifications.WithLabelValues("refused", string(reason)).Inc()
}

func observeClientVerify(elapsed time.Duration) {
	initClientMetrics()
	clientMetrics.duration.Observe(elapsed.Seconds())
}

// dane_publish (publishapp.go): caddy_dane_publish_*.
type publishMetrics struct {
	records     *prometheus.GaugeVec   // {owner}
	lastSuccess *prometheus.GaugeVec   // {owner}
	errors      *prometheus.CounterVec // {reason}
	changes     *prometheus.CounterVec // {change}
	held        prometheus.Histogram
}

// registerPublishMetrics makes dane_publish's collectors for one config,
// reusing those a previous config registered in the same registry.
func registerPublishMetrics(registry *prometheus.Registry) (*publishMetrics, error) {
	m := &publishMetrics{
		records: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "caddy", Subsystem: "dane_publish", Name: "records",
			Help: "Records in the TLSA RRset dane_publish last published at an owner.",
		}, []string{"owner"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "caddy", Subsystem: "dane_publish", Name: "last_success_timestamp_seconds",
			Help: "When the TLSA RRset at an owner was last reconciled without error (Unix time).",
		}, []string{"owner"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy", Subsystem: "dane_publish", Name: "errors_total",
			Help: "Failed TLSA publications, by reason (tsig_refused, zone_not_served, refused, timeout, network, zone_not_found, not_visible, lock, storage, ...).",
		}, []string{"reason"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy", Subsystem: "dane_publish", Name: "changes_total",
			Help: "TLSA records added to or removed from the published RRsets.",
		}, []string{"change"}),
		held: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "caddy", Subsystem: "dane_publish", Name: "held_seconds",
			Help:    "How long a renewed certificate was held back until its TLSA records were visible for twice the TTL.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 16),
		}),
	}
	if registry == nil {
		return m, nil
	}
	var err error
	if m.records, err = registerOrReuse(registry, m.records); err != nil {
		return nil, err
	}
	if m.lastSuccess, err = registerOrReuse(registry, m.lastSuccess); err != nil {
		return nil, err
	}
	if m.errors, err = registerOrReuse(registry, m.errors); err != nil {
		return nil, err
	}
	if m.changes, err = registerOrReuse(registry, m.changes); err != nil {
		return nil, err
	}
	if m.held, err = registerOrReuse(registry, m.held); err != nil {
		return nil, err
	}
	return m, nil
}

// registerOrReuse registers c, or returns the collector of the same
// description a previous config registered.
func registerOrReuse[T prometheus.Collector](registry *prometheus.Registry, c T) (T, error) {
	if err := registry.Register(c); err != nil {
		are := prometheus.AlreadyRegisteredError{}
		if !errors.As(err, &are) {
			return c, err
		}
		if existing, ok := are.ExistingCollector.(T); ok {
			return existing, nil
		}
	}
	return c, nil
}
