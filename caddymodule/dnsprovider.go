package caddymodule

import (
	"context"
	"errors"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/libdns/libdns"

	"github.com/caddy-dane/caddy-dane/caddymodule/rfc2136"
)

func init() {
	caddy.RegisterModule(DNSProvider{})
}

// DNSProvider is the `dns.providers.dane_rfc2136` module: a libdns
// provider for DNS servers that take RFC 2136 dynamic updates signed with
// TSIG (BIND, Knot, PowerDNS), usable wherever Caddy takes a DNS provider
// (`acme_dns`, `tls { dns ... }`, ECH publication). It is the Caddy glue
// of package rfc2136, which does the work; it is named so as not to
// collide with the community `dns.providers.rfc2136`.
//
// Each change is one TSIG-signed UPDATE, applied by the server entirely
// or not at all; reading the zone (and DeleteRecords, which must know
// what it deletes) uses a TSIG-signed AXFR, so the key needs transfer
// rights too. An operation succeeds only on a NOERROR answer whose TSIG
// verifies under the configured key.
type DNSProvider struct {
	// Server is the host:port of the primary server, e.g. 127.0.0.1:53.
	Server string `json:"server,omitempty"`
	// KeyName is the TSIG key's name, as in the server's `key` statement.
	KeyName string `json:"key_name,omitempty"`
	// KeyAlg is the TSIG algorithm: hmac-sha256 (the default),
	// hmac-sha512, hmac-sha384, hmac-sha224 or hmac-sha1.
	KeyAlg string `json:"key_alg,omitempty"`
	// Secret is the key's base64 secret. Use a placeholder such as
	// {env.TSIG_SECRET} to keep it out of the configuration.
	Secret string `json:"secret,omitempty"`
	// Timeout bounds each operation (default 5s, at most 2m).
	Timeout caddy.Duration `json:"timeout,omitempty"`

	provider *rfc2136.Provider
}

// CaddyModule returns the Caddy module information.
func (DNSProvider) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "dns.providers.dane_rfc2136",
		New: func() caddy.Module { return new(DNSProvider) },
	}
}

// Provision expands placeholders ({env.*}, {file.*}) in every field, as
// the other DNS provider modules do, and builds the engine's provider.
func (p *DNSProvider) Provision(caddy.Context) error {
	repl := caddy.NewReplacer()
	p.provider = &rfc2136.Provider{
		Server:  repl.ReplaceAll(p.Server, ""),
		KeyName: repl.ReplaceAll(p.KeyName, ""),
		KeyAlg:  repl.ReplaceAll(p.KeyAlg, ""),
		Secret:  repl.ReplaceAll(p.Secret, ""),
		Timeout: time.Duration(p.Timeout),
	}
	return nil
}

// Validate refuses a server that is not host:port, a missing key name, an
// unknown algorithm, a secret that is not base64 and a timeout out of
// range, so that they fail when the configuration loads and not at the
// first certificate or record change.
func (p *DNSProvider) Validate() error {
	if p.provider == nil {
		return errors.New("dane_rfc2136: not provisioned")
	}
	return p.provider.Check()
}

// engine is the provisioned provider, or one built from the fields as
// they are (no placeholders) for a DNSProvider used without Provision.
func (p *DNSProvider) engine() *rfc2136.Provider {
	if p.provider != nil {
		return p.provider
	}
	return &rfc2136.Provider{Server: p.Server, KeyName: p.KeyName, KeyAlg: p.KeyAlg,
		Secret: p.Secret, Timeout: time.Duration(p.Timeout)}
}

// GetRecords implements libdns.RecordGetter (see rfc2136.Provider).
func (p *DNSProvider) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	return p.engine().GetRecords(ctx, zone)
}

// AppendRecords implements libdns.RecordAppender (see rfc2136.Provider).
func (p *DNSProvider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return p.engine().AppendRecords(ctx, zone, recs)
}

// SetRecords implements libdns.RecordSetter (see rfc2136.Provider).
func (p *DNSProvider) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return p.engine().SetRecords(ctx, zone, recs)
}

// DeleteRecords implements libdns.RecordDeleter (see rfc2136.Provider).
func (p *DNSProvider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return p.engine().DeleteRecords(ctx, zone, recs)
}

// Interface guards
var (
	_ caddy.Module          = (*DNSProvider)(nil)
	_ caddy.Provisioner     = (*DNSProvider)(nil)
	_ caddy.Validator       = (*DNSProvider)(nil)
	_ libdns.RecordGetter   = (*DNSProvider)(nil)
	_ libdns.RecordAppender = (*DNSProvider)(nil)
	_ libdns.RecordSetter   = (*DNSProvider)(nil)
	_ libdns.RecordDeleter  = (*DNSProvider)(nil)
)
