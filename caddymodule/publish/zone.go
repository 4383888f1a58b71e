package publish

import (
	"context"
	"fmt"
	"time"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/dnssec"
)

// FindZone returns the zone that holds name: the closest enclosing name
// (name itself included) whose SOA RRset the prover proves Secure. Every
// step is a DNSSEC proof, as any other answer this module acts on: an
// unvalidated SOA walk (what certmagic's FindZoneByFQDN does for ACME)
// would let a forged answer choose the zone that updates go to. It could
// not choose a key (clients accept only what the zone proves), but it
// could send records to a zone where no client looks, and every renewal
// would then wait for records that never become visible.
//
// A name in an insecure zone is refused: a DANE client refuses TLSA
// records it cannot prove, so publishing there is pointless, and the
// error says so. So is a name whose walk meets a bogus or indeterminate
// answer. perLookup bounds each proof (0: no bound beyond ctx).
func FindZone(ctx context.Context, p dnssec.Prover, name string, perLookup time.Duration) (string, error) {
	name = dns.CanonicalName(name)
	if _, ok := dns.IsDomainName(name); !ok {
		return "", fmt.Errorf("%q is not a domain name", name)
	}
	for n := name; ; {
		r := lookup(ctx, p, n, perLookup)
		switch {
		case r.Status == dnssec.Secure:
			if len(r.CNAME) == 0 && hasSOA(r.RRset, n) {
				return n, nil
			}
			// A proven absence of an SOA (or an alias): n is not an apex.
		case r.Status == dnssec.Insecure:
			return "", fmt.Errorf("%s is not in a DNSSEC-signed zone (DANE clients refuse records they cannot prove): SOA of %s: %w", name, n, r.Err)
		case r.Err != nil: // its text starts with the status ("bogus: ...")
			return "", fmt.Errorf("SOA of %s: %w", n, r.Err)
		default:
			return "", fmt.Errorf("SOA of %s: %s", n, r.Status)
		}
		if n == "." {
			return "", fmt.Errorf("no zone holds %s: no secure SOA at it or above it", name)
		}
		off, _ := dns.NextLabel(n, 0)
		n = n[off:]
		if n == "" {
			n = "."
		}
	}
}

func lookup(ctx context.Context, p dnssec.Prover, name string, bound time.Duration) *dnssec.Result {
	if bound > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, bound)
		defer cancel()
	}
	return p.Lookup(ctx, name, dns.TypeSOA)
}

func hasSOA(rrs []dns.RR, owner string) bool {
	for _, rr := range rrs {
		if soa, ok := rr.(*dns.SOA); ok && dns.CanonicalName(soa.Hdr.Name) == owner {
			return true
		}
	}
	return false
}
