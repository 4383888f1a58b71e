package dnssec

import (
	"context"
	"strings"

	"github.com/miekg/dns"
)

// DNAME redirection (RFC 6672). A resolver answers a name below a DNAME
// owner with the DNAME RRset, signed at its owner, and a CNAME it
// synthesized from it, unsigned (RFC 6672 §3.2, §5.3.1). Like Unbound, the
// validator authenticates the DNAME RRset as any positive answer at its
// owner, makes the CNAME itself from the validated DNAME and ignores the
// resolver's, then follows the synthesized target as a CNAME hop.

// dnameAbove returns the DNAME RRset, with its RRSIGs, of the deepest owner
// in rrs that is a proper ancestor of name (a DNAME does not redirect its
// own owner, RFC 6672 §2.3), or an empty section.
func dnameAbove(rrs []dns.RR, name string) section {
	best := ""
	for _, rr := range rrs {
		h := rr.Header()
		if h.Rrtype != dns.TypeDNAME || h.Class != dns.ClassINET || !wellTyped(rr) {
			continue
		}
		owner := dns.CanonicalName(h.Name)
		if owner == name || !dns.IsSubDomain(owner, name) {
			continue
		}
		if best == "" || dns.CountLabel(owner) > dns.CountLabel(best) {
			best = owner
		}
	}
	if best == "" {
		return section{}
	}
	return extract(rrs, best, dns.TypeDNAME)
}

// synthesizeDNAME replaces the owner suffix of name (a proper subdomain of
// owner; both canonical) with target (RFC 6672 §2.2). It reports false
// when the result exceeds 255 octets in wire format: the server's answer
// would be YXDOMAIN.
func synthesizeDNAME(name, owner, target string) (string, bool) {
	prefix := name
	if owner != "." {
		prefix = name[:len(name)-len(owner)]
	}
	target = dns.CanonicalName(target)
	out := prefix + target
	if target == "." {
		out = prefix
	}
	// miekg/dns accepts 256 octets; RFC 1035 §2.3.4 says 255.
	if n, err := dns.PackDomainName(out, make([]byte, 512), 0, nil, false); err != nil || n > 255 {
		return out, false
	}
	return out, true
}

// validateDNAME validates the DNAME RRset in sec, at a proper ancestor of
// name, and returns the result for name/qtype. The DNAME is validated
// under anchor, the trust anchor of the name asked (Validator.anchorFor),
// not under the closest anchor of its own owner: a DNAME above that anchor
// is Bogus, signed or not, for the anchor says the name asked is in a zone
// only its keys can speak for (RFC 4035 §4.3). When the DNAME is Secure the
// result is a validated CNAME hop: RRset holds the CNAME synthesized at
// name, alias its target. Otherwise it carries the DNAME's status and the
// reason naming the DNAME RRset, with the synthesized CNAME (when one can
// be made) left unfollowed in RRset.
func (v *Validator) validateDNAME(ctx context.Context, w *work, name string, qtype uint16, m *dns.Msg, sec section, anchor string) *Result {
	owner := sec.rrset[0].Header().Name
	set := rrsetName(owner, dns.TypeDNAME)
	d := v.validateAnswer(ctx, w, owner, dns.TypeDNAME, m, sec, anchor)
	r := &Result{Name: name, Type: qtype, Rcode: m.Rcode, Signer: d.Signer, Chain: d.Chain,
		TTL: d.TTL, Err: namingRRset(d.Err, set), Wildcard: d.Wildcard, RRset: d.RRset}
	if d.Status == Secure && len(d.RRset) != 1 {
		// RFC 6672 §2.4: at most one DNAME per owner.
		r.Err = bogusf(set, dns.ExtendedErrorCodeDNSBogus, "%d DNAME records at %s", len(d.RRset), owner)
		return finish(r)
	}
	if d.Status == Secure && d.Wildcard != "" {
		// RFC 4592 §4.4: a DNAME at a wildcard owner is not synthesized
		// below it (Unbound refuses it too, val_dnamewc): a redirection
		// valid for every name below *.X would move names that exist.
		r.Err = bogusf(set, dns.ExtendedErrorCodeDNSBogus, "DNAME at %s synthesized from the wildcard %s: a wildcard DNAME redirects nothing (RFC 4592 §4.4)", owner, d.Wildcard)
		return finish(r)
	}
	dname := d.RRset[0].(*dns.DNAME)
	target, ok := synthesizeDNAME(name, owner, dname.Target)
	if !ok {
		if d.Status == Secure {
			r.Err = indeterminatef(rrsetName(name, qtype), nil, "DNAME %s -> %s: substituting it in %s gives a name longer than 255 octets (YXDOMAIN, RFC 6672 §2.2)", owner, dns.CanonicalName(dname.Target), name)
		}
		return finish(r)
	}
	r.RRset = []dns.RR{&dns.CNAME{
		Hdr:    dns.RR_Header{Name: name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: dname.Hdr.Ttl},
		Target: target,
	}}
	if d.Status != Secure {
		return finish(r)
	}
	// The resolver's own synthesized CNAME, if any, is not looked at: the
	// signed DNAME decides where name leads.
	r.Status, r.alias = Secure, target
	return r
}

// namingRRset returns err with set prefixed to its reason when the reason
// does not name it already (a failure on the chain of trust names a zone
// only), so that every non-Secure DNAME outcome says which DNAME it was.
func namingRRset(err error, set string) error {
	if err == nil || strings.Contains(Reason(err), set) {
		return err
	}
	switch e := err.(type) {
	case *BogusError:
		c := *e
		c.Reason = set + ": " + c.Reason
		return &c
	case *InsecureError:
		c := *e
		c.Reason = set + ": " + c.Reason
		return &c
	case *IndeterminateError:
		c := *e
		c.Reason = set + ": " + c.Reason
		return &c
	}
	return err
}
