package dane

import (
	"crypto/x509"
	"fmt"

	"github.com/caddy-dane/caddy-dane/caddymodule/tlsa"
)

// Rollover advice (RFC 7671 §8.1 "current + next"): what a server that is
// authenticated by DANE must publish, and whether its records survive the
// next certificate. dane_monitor logs it; it needs no Caddy.

// NextCertificate says whether the published records will still match
// after the certificate is renewed. certmagic does not expose the next
// certificate before it is issued; what is known is whether its key will
// be the current one (reuse_private_keys) and whether a trust-anchor
// record (usage 2 or 0) covers the CA that issues it.
func NextCertificate(chain []*x509.Certificate, records []tlsa.Record, site string, reuse bool) (bool, string) {
	if reuse {
		leaf := chain[0]
		for _, r := range records {
			if r.Usage != tlsa.DANEEE || r.Selector != tlsa.SPKI {
				continue
			}
			if want, err := tlsa.NewRecord(r.Usage, r.Selector, r.MatchingType, leaf); err == nil && want.Equal(r) {
				return true, "the next certificate keeps this key (reuse_private_keys), so the " + shortParams(r) + " record stays valid"
			}
		}
	}
	var ta []tlsa.Record
	for _, r := range records {
		if r.Usage == tlsa.DANETA || r.Usage == tlsa.PKIXTA {
			ta = append(ta, r)
		}
	}
	if len(ta) > 0 {
		if mt, err := tlsa.Verify(tlsa.Options{Chain: chain, Records: ta, Names: []string{site}}); err == nil {
			return true, fmt.Sprintf("the next certificate matches the %s record (depth %d) if the CA issues it under the same key; CAs do switch intermediates", shortParams(mt.Record), mt.Depth)
		}
	}
	if reuse {
		return false, "reuse_private_keys keeps the key at renewal, but no DANE-EE SPKI (3 1 x) record matches it: publish the 3 1 1 record"
	}
	return false, "the next certificate's key is unknown until renewal: without reuse_private_keys Caddy makes a new key at each renewal (and a loaded certificate's successor is whatever is loaded next), so records for this certificate only go stale then"
}

func shortParams(r tlsa.Record) string {
	return fmt.Sprintf("%d %d %d", r.Usage, r.Selector, r.MatchingType)
}

// RecordsToPublish returns, as zone-file lines, the records that
// authenticate chain: 3 1 1 of the leaf's key, and 2 1 1 of its issuer's
// key when the chain includes the issuer.
func RecordsToPublish(owner string, chain []*x509.Certificate) []string {
	line := func(r tlsa.Record) string { return owner + " IN TLSA " + r.String() }
	var out []string
	if r, err := tlsa.NewRecord(tlsa.DANEEE, tlsa.SPKI, tlsa.SHA256, chain[0]); err == nil {
		out = append(out, line(r))
	}
	if len(chain) > 1 {
		if r, err := tlsa.NewRecord(tlsa.DANETA, tlsa.SPKI, tlsa.SHA256, chain[1]); err == nil {
			out = append(out, line(r))
		}
	}
	return out
}
