package dnssec

import (
	"context"
	"time"

	"github.com/miekg/dns"
)

// Zone cuts for unsigned data. A signed RRset names its zone in the RRSIG
// signer field; unsigned data names nothing, so the validator walks down
// from the closest trust anchor towards the name, asking for the DS RRset
// at every name on the way (Unbound's processFindKey, RFC 4035 §5.2). The
// walk ends at the first cut the parent proves unsigned (NSEC/NSEC3 with
// the NS bit and no DS, or an opt-out span), or at an unsupported
// algorithm: below it everything is Insecure. If every cut on the way is
// signed, unsigned data at the name is Bogus.

// provenInsecure returns an *InsecureError when a zone cut between anchor
// and name is proven unsigned, nil when the chain of trust reaches name's
// zone securely (so its data must be signed), or the error that ended the
// walk. ttl is how long an Insecure proof holds. For qtype DS the walk
// stops above name: its DS RRset lives in the parent.
func (v *Validator) provenInsecure(ctx context.Context, w *work, name string, qtype uint16, anchor string) (chain []ZoneStep, ttl time.Duration, err error) {
	var path []string
	for n := name; n != anchor && isAncestorOrSelf(anchor, n); n = parentName(n) {
		if !(qtype == dns.TypeDS && n == name) {
			path = append(path, n)
		}
		if n == "." {
			break
		}
	}
	for i := len(path) - 1; i >= 0; i-- {
		z := path[i]
		dr := v.lookup(ctx, w, z, dns.TypeDS, false)
		switch {
		case dr.Status == Insecure:
			return dr.Chain, dr.TTL, dr.Err
		case dr.Status != Secure:
			return dr.Chain, 0, dr.Err
		case dr.alias != "" || len(dr.CNAME) > 0:
			return dr.Chain, 0, bogusf(rrsetName(name, qtype), dns.ExtendedErrorCodeDNSBogus, "%s is a CNAME, so %s cannot hold unsigned data", z, name)
		case dr.Rcode == dns.RcodeNameError:
			return dr.Chain, 0, bogusf(rrsetName(name, qtype), dns.ExtendedErrorCodeDNSBogus, "%s provably does not exist, yet %s was answered", z, rrsetName(name, qtype))
		case len(dr.RRset) == 0:
			continue // proven not a zone cut
		}
		ke := v.zoneKeys(ctx, w, z)
		switch ke.status {
		case Secure:
			chain = ke.chain
		case Insecure:
			return ke.chain, ke.expires.Sub(v.now()), &InsecureError{RRset: rrsetName(name, qtype), Zone: ke.insecureZone, EDE: edeOf(ke.err), Reason: ke.reason}
		default:
			return ke.chain, 0, ke.err
		}
	}
	return chain, 0, nil
}
