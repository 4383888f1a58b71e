package caddymodule

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"github.com/caddyserver/certmagic"
)

func init() {
	caddy.RegisterModule(PublishIssuer{})
}

// PublishIssuer is the `dane_publish` certificate issuer: it wraps another
// issuer (`internal`, `acme`, ...) and returns each certificate that one
// issues only once the `dane_publish` app has published its TLSA records
// next to the current ones and a validating resolver has shown them for
// twice the TTL (RFC 7671 §8.1). certmagic stores a certificate as soon as
// its issuer returns it, and every instance sharing the storage may then
// serve it; holding it inside the issuer is what keeps an unpublished key
// from ever being served. The renewal waits meanwhile, and the current
// certificate stays in service.
type PublishIssuer struct {
	// The issuer that issues the certificates, a `tls.issuance` module.
	IssuerRaw json.RawMessage `json:"issuer,omitempty" caddy:"namespace=tls.issuance inline_key=module"`

	inner certmagic.Issuer
	app   *Publish
}

// CaddyModule returns the Caddy module information.
func (PublishIssuer) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tls.issuance.dane_publish",
		New: func() caddy.Module { return new(PublishIssuer) },
	}
}

// Provision loads the inner issuer and the dane_publish app, which must be
// configured: without it nothing would publish what this issuer holds.
func (iss *PublishIssuer) Provision(ctx caddy.Context) error {
	if iss.IssuerRaw == nil {
		return errors.New("dane_publish issuer: an inner issuer is required (issuer internal, issuer acme, ...)")
	}
	mod, err := ctx.LoadModule(iss, "IssuerRaw")
	if err != nil {
		return fmt.Errorf("dane_publish issuer: loading inner issuer: %v", err)
	}
	inner, ok := mod.(certmagic.Issuer)
	if !ok {
		return fmt.Errorf("dane_publish issuer: %T is not a certificate issuer", mod)
	}
	if _, nested := inner.(*PublishIssuer); nested {
		return errors.New("dane_publish issuer: the inner issuer is dane_publish again")
	}
	iss.inner = inner
	app, err := ctx.AppIfConfigured("dane_publish")
	if err != nil {
		return fmt.Errorf("dane_publish issuer: the dane_publish app must be configured (global option dane_publish { dns ... }): %v", err)
	}
	iss.app = app.(*Publish)
	return nil
}

// IssuerKey is the inner issuer's: certificates are stored where they
// would be without the wrapper, so adding or removing it moves nothing.
func (iss *PublishIssuer) IssuerKey() string { return iss.inner.IssuerKey() }

// Issue gets the certificate from the inner issuer and holds it until its
// records are visible. A certificate that cannot be released is not
// returned: certmagic then keeps the current one and retries later.
func (iss *PublishIssuer) Issue(ctx context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	cert, err := iss.inner.Issue(ctx, csr)
	if err != nil {
		return nil, err
	}
	chain, err := pemChain(cert.Certificate)
	if err != nil {
		return nil, fmt.Errorf("dane_publish issuer: certificate from %s: %v", iss.inner.IssuerKey(), err)
	}
	if err := iss.app.hold(ctx, chain); err != nil {
		return nil, err
	}
	return cert, nil
}

// SetConfig passes certmagic's config on to an inner issuer that needs it
// (ACME solves challenges through it).
func (iss *PublishIssuer) SetConfig(cfg *certmagic.Config) {
	if cs, ok := iss.inner.(caddytls.ConfigSetter); ok {
		cs.SetConfig(cfg)
	}
}

// PreCheck passes certmagic's pre-check on to the inner issuer.
func (iss *PublishIssuer) PreCheck(ctx context.Context, names []string, interactive bool) error {
	if pc, ok := iss.inner.(certmagic.PreChecker); ok {
		return pc.PreCheck(ctx, names, interactive)
	}
	return nil
}

// Revoke passes a revocation on to the inner issuer.
func (iss *PublishIssuer) Revoke(ctx context.Context, cert certmagic.CertificateResource, reason int) error {
	if rv, ok := iss.inner.(certmagic.Revoker); ok {
		return rv.Revoke(ctx, cert, reason)
	}
	return fmt.Errorf("dane_publish issuer: %s cannot revoke certificates", iss.inner.IssuerKey())
}

// UnmarshalCaddyfile sets up the issuer from Caddyfile tokens. Syntax:
//
//	issuer dane_publish {
//	    issuer <module> [<args...>] {
//	        ...
//	    }
//	}
//
// The inner `issuer` takes what it takes in a `tls` block, e.g.
// `issuer internal { lifetime 24h }` or `issuer acme { ... }`.
func (iss *PublishIssuer) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume issuer name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "issuer":
			if iss.IssuerRaw != nil {
				return d.Err("dane_publish: only one inner issuer")
			}
			if !d.NextArg() {
				return d.ArgErr()
			}
			name := d.Val()
			unm, err := caddyfile.UnmarshalModule(d, "tls.issuance."+name)
			if err != nil {
				return err
			}
			if _, ok := unm.(certmagic.Issuer); !ok {
				return d.Errf("module %s is not a certificate issuer", name)
			}
			iss.IssuerRaw = caddyconfig.JSONModuleObject(unm, "module", name, nil)
		default:
			return d.Errf("unrecognized dane_publish issuer option %q", d.Val())
		}
	}
	if iss.IssuerRaw == nil {
		return d.Err("dane_publish: an inner issuer is required: issuer dane_publish { issuer internal }")
	}
	return nil
}

// Interface guards.
var (
	_ certmagic.Issuer      = (*PublishIssuer)(nil)
	_ certmagic.PreChecker  = (*PublishIssuer)(nil)
	_ certmagic.Revoker     = (*PublishIssuer)(nil)
	_ caddytls.ConfigSetter = (*PublishIssuer)(nil)
	_ caddy.Provisioner     = (*PublishIssuer)(nil)
	_ caddyfile.Unmarshaler = (*PublishIssuer)(nil)
)
