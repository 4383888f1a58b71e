package dnssec

import (
	"bytes"
	"fmt"

	"github.com/miekg/dns"
)

// NSEC proofs (RFC 4035 §5.4, RFC 4034 §4; Unbound's val_nsec.c). Every
// function here takes NSEC records that were already authenticated as
// RRsets of the zone zone; it only decides what they prove.

// hasType reports whether an NSEC or NSEC3 type bit map lists t.
func hasType(bitmap []uint16, t uint16) bool {
	for _, x := range bitmap {
		if x == t {
			return true
		}
	}
	return false
}

// delegationBits reports whether a type bit map describes the parent side
// of a zone cut: NS without SOA (RFC 4035 §2.3, RFC 5155 §8.3).
func delegationBits(bitmap []uint16) bool {
	return hasType(bitmap, dns.TypeNS) && !hasType(bitmap, dns.TypeSOA)
}

// nsecCovers reports whether n proves that name does not exist: owner <
// name < next in canonical order (RFC 4034 §6.1), the last NSEC of the zone
// covering every name after its owner. An NSEC at a delegation point or a
// DNAME does not speak for names below its owner (RFC 4035 §5.4, RFC 6672
// §5.3.2): those belong to another zone or are synthesized. An NSEC whose
// next name is below name shows that name exists, as an empty
// non-terminal (RFC 4592 §2.2.2; Unbound's val_nsec_proves_name_error).
func nsecCovers(n *dns.NSEC, name, zone string) bool {
	owner := dns.CanonicalName(n.Hdr.Name)
	next := dns.CanonicalName(n.NextDomain)
	if !dns.IsSubDomain(zone, name) || !dns.IsSubDomain(zone, next) {
		return false
	}
	if next != name && dns.IsSubDomain(name, next) {
		return false
	}
	if owner != name && dns.IsSubDomain(owner, name) && (delegationBits(n.TypeBitMap) || hasType(n.TypeBitMap, dns.TypeDNAME)) {
		return false
	}
	afterOwner := compareNames(owner, name) < 0
	if compareNames(owner, next) < 0 {
		return afterOwner && compareNames(name, next) < 0
	}
	// The last NSEC of the chain: its next name is the apex.
	return afterOwner || compareNames(name, next) < 0
}

// nsecEncloser returns the closest encloser of name that a covering NSEC n
// implies (RFC 4035 §5.4): the longest ancestor of name shared with the
// NSEC's owner or next name. Both exist, so that ancestor exists too, and
// nothing between it and name does.
func nsecEncloser(n *dns.NSEC, name string) string {
	a := commonAncestor(name, dns.CanonicalName(n.Hdr.Name))
	b := commonAncestor(name, dns.CanonicalName(n.NextDomain))
	if dns.CountLabel(b) > dns.CountLabel(a) {
		return b
	}
	return a
}

// nsecNameError checks an NSEC proof that qname does not exist (RFC 4035
// §5.4, §3.1.3.2): one NSEC covers qname and one covers the wildcard at
// its closest encloser.
func nsecNameError(nsecs []*dns.NSEC, qname, zone, set string) error {
	var cover *dns.NSEC
	for _, n := range nsecs {
		if equalNames(n.Hdr.Name, qname) {
			return bogusf(set, dns.ExtendedErrorCodeDNSBogus, "NXDOMAIN for %s, but an NSEC shows it exists", qname)
		}
		if cover == nil && nsecCovers(n, qname, zone) {
			cover = n
		}
	}
	if cover == nil {
		return bogusf(set, dns.ExtendedErrorCodeNSECMissing, "no NSEC covers %s", qname)
	}
	wc := wildcardAt(nsecEncloser(cover, qname))
	for _, n := range nsecs {
		if equalNames(n.Hdr.Name, wc) {
			return bogusf(set, dns.ExtendedErrorCodeDNSBogus, "NXDOMAIN for %s, but wildcard %s exists", qname, wc)
		}
	}
	for _, n := range nsecs {
		if nsecCovers(n, wc, zone) {
			return nil
		}
	}
	return bogusf(set, dns.ExtendedErrorCodeNSECMissing, "no NSEC proves that wildcard %s does not exist", wc)
}

// nsecNoData checks an NSEC proof that qname has no qtype RRset (RFC 4035
// §5.4, §3.1.3.1; wildcard NODATA §3.1.3.4; empty non-terminals as Unbound
// does). A DS denial at a delegation (NS bit, no DS, no SOA) proves an
// insecure delegation: it returns an *InsecureError for qname.
func nsecNoData(nsecs []*dns.NSEC, qname string, qtype uint16, zone, set string) error {
	for _, n := range nsecs {
		if !equalNames(n.Hdr.Name, qname) {
			continue
		}
		return bitmapNoData(n.TypeBitMap, "NSEC", qname, qtype, zone, set)
	}
	// qname is an empty non-terminal: an NSEC before it whose next name is
	// below it (RFC 4035 §3.1.3.2 does not apply: the name exists).
	for _, n := range nsecs {
		next := dns.CanonicalName(n.NextDomain)
		if next != qname && dns.IsSubDomain(qname, next) && compareNames(dns.CanonicalName(n.Hdr.Name), qname) < 0 && dns.IsSubDomain(zone, qname) {
			return nil
		}
	}
	// Wildcard NODATA (RFC 4035 §3.1.3.4): qname is covered, and the
	// wildcard at its closest encloser exists without qtype.
	for _, n := range nsecs {
		if !nsecCovers(n, qname, zone) {
			continue
		}
		wc := wildcardAt(nsecEncloser(n, qname))
		for _, w := range nsecs {
			if equalNames(w.Hdr.Name, wc) {
				if err := bitmapNoData(w.TypeBitMap, "NSEC", wc, qtype, zone, set); err != nil {
					if _, insecure := err.(*InsecureError); !insecure {
						return err
					}
					return bogusf(set, dns.ExtendedErrorCodeDNSBogus, "wildcard %s is a delegation", wc)
				}
				return nil
			}
		}
	}
	return bogusf(set, dns.ExtendedErrorCodeNSECMissing, "no NSEC proves that %s has no %s", qname, dns.TypeToString[qtype])
}

// bitmapNoData decides what the NSEC or NSEC3 type bit map at name proves
// about qtype (RFC 4035 §5.4, RFC 5155 §8.5, §8.9): nothing if it lists
// qtype or CNAME; a delegation's NSEC says nothing about types other than
// DS (they are in the child); a child apex NSEC says nothing about DS; and
// no DS at a delegation is an insecure delegation.
func bitmapNoData(bitmap []uint16, kind, name string, qtype uint16, zone, set string) error {
	switch {
	case hasType(bitmap, qtype):
		return bogusf(set, dns.ExtendedErrorCodeDNSBogus, "%s at %s lists %s, the type denied", kind, name, dns.TypeToString[qtype])
	case hasType(bitmap, dns.TypeCNAME) && qtype != dns.TypeCNAME:
		return bogusf(set, dns.ExtendedErrorCodeDNSBogus, "%s at %s lists CNAME, which should have been the answer", kind, name)
	case qtype != dns.TypeDS && delegationBits(bitmap):
		return bogusf(set, dns.ExtendedErrorCodeDNSBogus, "%s at %s is from the parent side of a delegation, it cannot deny %s", kind, name, dns.TypeToString[qtype])
	case qtype == dns.TypeDS && hasType(bitmap, dns.TypeSOA) && name != ".":
		return bogusf(set, dns.ExtendedErrorCodeDNSBogus, "%s at %s is from the child apex, it cannot deny DS", kind, name)
	case qtype == dns.TypeDS && hasType(bitmap, dns.TypeNS):
		return &InsecureError{RRset: set, Zone: name,
			Reason: fmt.Sprintf("%s proves %s is an unsigned delegation from %s (NS, no DS)", kind, name, zone)}
	}
	return nil
}

// nsecWildcard checks that a wildcard expansion with rrsigLabels labels
// was legitimate (RFC 4035 §5.3.4): an NSEC covers qname, and the closest
// encloser it implies is the wildcard's parent, so that no closer name
// could have matched.
func nsecWildcard(nsecs []*dns.NSEC, qname string, rrsigLabels int, zone, set string) error {
	for _, n := range nsecs {
		if nsecCovers(n, qname, zone) && dns.CountLabel(nsecEncloser(n, qname)) == rrsigLabels {
			return nil
		}
	}
	return bogusf(set, dns.ExtendedErrorCodeNSECMissing, "no NSEC proves that %s does not exist next to its wildcard", qname)
}

// wildcardAt returns the wildcard name directly below name.
func wildcardAt(name string) string {
	if name == "." {
		return "*."
	}
	return "*." + name
}

// commonAncestor returns the longest common ancestor of two canonical names.
func commonAncestor(a, b string) string {
	n := dns.CompareDomainName(a, b)
	if n == 0 {
		return "."
	}
	idx := dns.Split(a)
	return a[idx[len(idx)-n]:]
}

// parentName returns name without its first label ("." for a TLD).
func parentName(name string) string {
	i, end := dns.NextLabel(name, 0)
	if end {
		return "."
	}
	return name[i:]
}

// childToward returns the name one label below ancestor on the way to
// name (the "next closer name" of RFC 5155 §1.3 when ancestor is the
// closest encloser).
func childToward(ancestor, name string) string {
	idx := dns.Split(name)
	n := len(idx) - dns.CountLabel(ancestor)
	if n <= 0 {
		return name
	}
	return name[idx[n-1]:]
}

// compareNames orders two domain names canonically (RFC 4034 §6.1): label
// by label from the right, each label compared as lower-cased octets.
func compareNames(a, b string) int {
	var ba, bb [256]byte
	la, lb := canonicalLabels(a, ba[:]), canonicalLabels(b, bb[:])
	for i := 1; i <= len(la) && i <= len(lb); i++ {
		if c := bytes.Compare(la[len(la)-i], lb[len(lb)-i]); c != 0 {
			return c
		}
	}
	switch {
	case len(la) < len(lb):
		return -1
	case len(la) > len(lb):
		return 1
	}
	return 0
}

// canonicalLabels returns the lower-cased wire labels of name, leftmost
// first, using buf for storage. A name that does not pack has no labels.
func canonicalLabels(name string, buf []byte) [][]byte {
	n, err := dns.PackDomainName(name, buf, 0, nil, false)
	if err != nil {
		return nil
	}
	buf = buf[:n]
	labels := make([][]byte, 0, 8)
	for off := 0; off < len(buf) && buf[off] != 0; {
		l := int(buf[off])
		if off+1+l > len(buf) {
			break
		}
		lab := buf[off+1 : off+1+l]
		for i, c := range lab {
			if 'A' <= c && c <= 'Z' {
				lab[i] = c + 'a' - 'A'
			}
		}
		labels = append(labels, lab)
		off += 1 + l
	}
	return labels
}
