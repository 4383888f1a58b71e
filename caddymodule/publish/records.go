package publish

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"

	"github.com/caddy-dane/caddy-dane/caddymodule/tlsa"
)

// Params are the three parameters of a record to publish (RFC 6698 §2.1).
type Params struct {
	Usage    tlsa.Usage
	Selector tlsa.Selector
	Matching tlsa.MatchingType
}

// String returns "u s m".
func (p Params) String() string {
	return fmt.Sprintf("%d %d %d", p.Usage, p.Selector, p.Matching)
}

// ParseParams parses "3 1 1" (numbers or RFC 7218 mnemonics). Only the
// usages a server can publish for itself without a CA are allowed:
// DANE-EE (3), of the leaf, and DANE-TA (2), of the leaf's issuer. PKIX
// usages (0, 1) would make clients also require a public CA chain, which
// is not what a publisher of its own keys can promise.
func ParseParams(s string) (Params, error) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return Params{}, fmt.Errorf("record %q: want three parameters, <usage> <selector> <matching type> (e.g. 3 1 1)", s)
	}
	// The record parser knows the mnemonics and the ranges; the data is
	// a placeholder (its length is not checked here).
	r, err := tlsa.ParseRecord(strings.Join(f, " ") + " 00")
	if err != nil {
		return Params{}, fmt.Errorf("record %q: %v", s, err)
	}
	p := Params{Usage: r.Usage, Selector: r.Selector, Matching: r.MatchingType}
	switch p.Usage {
	case tlsa.DANEEE, tlsa.DANETA:
	default:
		return Params{}, fmt.Errorf("record %q: usage %d: only DANE-EE (3) and DANE-TA (2) records can be published for Caddy's own certificates", s, p.Usage)
	}
	if p.Selector != tlsa.Cert && p.Selector != tlsa.SPKI {
		return Params{}, fmt.Errorf("record %q: unknown selector %d", s, p.Selector)
	}
	switch p.Matching {
	case tlsa.Full, tlsa.SHA256, tlsa.SHA512:
	default:
		return Params{}, fmt.Errorf("record %q: unknown matching type %d", s, p.Matching)
	}
	return p, nil
}

// Records returns the presentation form ("3 1 1 <hex>") of the records
// that authenticate chain, sorted and without duplicates: for DANE-EE the
// leaf, for DANE-TA the leaf's issuer (chain[1]), which a DANE-TA client
// needs to see in the chain the server presents (RFC 7671 §5.2.2); a chain
// without its issuer yields no DANE-TA record.
func Records(chain []*x509.Certificate, params []Params) ([]string, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("empty certificate chain")
	}
	var out []string
	for _, p := range params {
		cert := chain[0]
		if p.Usage == tlsa.DANETA {
			if len(chain) < 2 {
				continue
			}
			cert = chain[1]
		}
		r, err := tlsa.NewRecord(p.Usage, p.Selector, p.Matching, cert)
		if err != nil {
			return nil, err
		}
		out = append(out, r.String())
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Canonical returns the presentation form of a TLSA record's data as this
// package writes it (numeric parameters, lower-case hex), or s unchanged
// when it does not parse, so that a record someone else wrote can still be
// compared and deleted by its exact text.
func Canonical(s string) string {
	r, err := tlsa.ParseRecord(s)
	if err != nil {
		return s
	}
	return r.String()
}
