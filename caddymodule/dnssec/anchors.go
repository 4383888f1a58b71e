package dnssec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/miekg/dns"
)

// rootAnchors are the IANA root zone key-signing keys as DS records
// (https://data.iana.org/root-anchors/root-anchors.xml): KSK-2017 (20326)
// and KSK-2024 (38696), RSA/SHA-256, SHA-256 digests. anchors_test.go checks
// them against the DNSKEYs of Debian's dns-root-data when installed.
var rootAnchors = []string{
	". 172800 IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D",
	". 172800 IN DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16",
}

// RootAnchors returns the built-in trust anchors: the IANA root KSKs as DS
// records. The slice and records are fresh copies.
func RootAnchors() []dns.RR {
	out := make([]dns.RR, len(rootAnchors))
	for i, s := range rootAnchors {
		rr, err := dns.NewRR(s)
		if err != nil {
			panic("dnssec: bad built-in root anchor: " + err.Error())
		}
		out[i] = rr
	}
	return out
}

// ParseAnchors reads trust anchors in zone-file syntax: DS and DNSKEY
// records, possibly for several zones, with $ORIGIN/$TTL, comments and
// parenthesised continuation lines (Unbound's root.key, BIND and
// ldns-keygen .ds/.key files). origin completes relative names ("" means
// the root). Any other record type, a DNSKEY without the Zone Key flag,
// with a protocol other than 3 (RFC 4034 §2.1) or with the REVOKE flag
// (RFC 5011 §2.1), or a class other than IN is an error naming its line,
// and so is a zone none of whose records has an algorithm and digest type
// this validator supports (it could prove nothing; see anchorProblem).
// $INCLUDE is refused.
func ParseAnchors(r io.Reader, origin string) ([]dns.RR, error) {
	text, err := io.ReadAll(io.LimitReader(r, maxAnchorFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading trust anchors: %w", err)
	}
	if len(text) > maxAnchorFile {
		return nil, fmt.Errorf("trust anchor file larger than %d bytes", maxAnchorFile)
	}
	if origin == "" {
		origin = "."
	}
	lines := recordLines(text)
	zp := dns.NewZoneParser(bytes.NewReader(text), dns.Fqdn(origin), "")
	var out []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		line := 0
		if len(out) < len(lines) {
			line = lines[len(out)]
		}
		h := rr.Header()
		if h.Class != dns.ClassINET {
			return nil, fmt.Errorf("trust anchors line %d: %s: class %s, want IN", line, h.Name, dns.ClassToString[h.Class])
		}
		switch a := rr.(type) {
		case *dns.DS:
		case *dns.DNSKEY:
			// The same rule New applies, so a file that parses is a file
			// New accepts: a revoked key (RFC 5011 §2.1) is refused here,
			// at configuration time, not at the first lookup.
			if why := zoneKeyUsable(a); why != "" {
				return nil, fmt.Errorf("trust anchors line %d: %s DNSKEY %d: unusable as a trust anchor: %s (flags %d, protocol %d)", line, h.Name, a.KeyTag(), why, a.Flags, a.Protocol)
			}
		default:
			return nil, fmt.Errorf("trust anchors line %d: %s %s record: only DS and DNSKEY records can be trust anchors", line, h.Name, dns.TypeToString[h.Rrtype])
		}
		h.Name = dns.CanonicalName(h.Name)
		out = append(out, rr)
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("trust anchors: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("trust anchors: no DS or DNSKEY records")
	}
	// The rule New applies to each zone's anchors, with the line of the
	// zone's first record.
	sets, order, err := groupAnchors(out)
	if err != nil {
		return nil, fmt.Errorf("trust anchors: %w", err)
	}
	for _, zone := range order {
		if why := anchorProblem(sets[zone]); why != "" {
			line := 0
			for i, rr := range out {
				if rr.Header().Name == zone && i < len(lines) {
					line = lines[i]
					break
				}
			}
			return nil, fmt.Errorf("trust anchors line %d: %s: %s", line, zone, why)
		}
	}
	return out, nil
}

// maxAnchorFile bounds the size of a trust anchor file.
const maxAnchorFile = 1 << 20

// recordLines returns the line number on which each record of a zone file
// starts: every logical line (parentheses joined, comments and quoted
// strings respected) that is neither blank nor a $ directive holds one
// record, the way dns.ZoneParser reads them.
func recordLines(text []byte) []int {
	var starts []int
	depth, quoted := 0, false
	for n, s := range strings.Split(string(text), "\n") {
		atStart := depth == 0 && !quoted
		content := false
	scan:
		for i := 0; i < len(s); i++ {
			switch c := s[i]; {
			case c == '\\':
				i++
				content = true
			case c == '"':
				quoted = !quoted
				content = true
			case quoted:
			case c == ';':
				break scan
			case c == '(':
				depth++
			case c == ')':
				depth = max(depth-1, 0)
			case c != ' ' && c != '\t' && c != '\r':
				content = true
			}
		}
		if atStart && content && !strings.HasPrefix(strings.TrimSpace(s), "$") {
			starts = append(starts, n+1)
		}
	}
	return starts
}

// anchorSets groups trust anchors by zone, checking each (shared with New
// and NewTrustResolver). A zone none of whose anchors has a supported
// algorithm and digest type is refused (see anchorProblem).
func anchorSets(rrs []dns.RR) (map[string]*anchorSet, error) {
	out, order, err := groupAnchors(rrs)
	if err != nil {
		return nil, err
	}
	for _, zone := range order {
		if why := anchorProblem(out[zone]); why != "" {
			return nil, fmt.Errorf("dnssec: trust anchor %s: %s", zone, why)
		}
	}
	return out, nil
}

// groupAnchors groups trust anchors by zone, in the order the zones first
// appear, checking each record on its own.
func groupAnchors(rrs []dns.RR) (map[string]*anchorSet, []string, error) {
	out := make(map[string]*anchorSet)
	var order []string
	for _, rr := range rrs {
		zone := dns.CanonicalName(rr.Header().Name)
		a := out[zone]
		if a == nil {
			a = new(anchorSet)
			out[zone] = a
			order = append(order, zone)
		}
		switch rr := dns.Copy(rr).(type) {
		case *dns.DS:
			rr.Hdr.Name = zone
			a.ds = append(a.ds, rr)
		case *dns.DNSKEY:
			if why := zoneKeyUsable(rr); why != "" {
				return nil, nil, fmt.Errorf("dnssec: trust anchor %s DNSKEY %d: %s", zone, rr.KeyTag(), why)
			}
			rr.Hdr.Name = zone
			a.keys = append(a.keys, rr)
		default:
			return nil, nil, fmt.Errorf("dnssec: trust anchor %s is a %s record, want DS or DNSKEY", zone, dns.TypeToString[rr.Header().Rrtype])
		}
	}
	if len(out) == 0 {
		return nil, nil, errors.New("dnssec: no trust anchors")
	}
	return out, order, nil
}

// anchorProblem says why a zone's trust anchors can prove nothing ("" when
// one of them can): none has an algorithm (and, for DS, a digest type)
// this validator implements. At run time such an anchor would make its
// zone Insecure (fetchKeys); a configured trust anchor that can never
// prove anything is a mistake the operator should hear about when the
// configuration is loaded (caddy validate), not a silent downgrade of
// everything below it. One usable record is enough: an anchor set may
// hold a new algorithm's key ahead of a rollover (RFC 6840 §5.11).
func anchorProblem(a *anchorSet) string {
	ds, keys, ede := usableAnchor(a)
	if len(ds) > 0 || len(keys) > 0 {
		return ""
	}
	return fmt.Sprintf("no trust anchor record of this zone has a supported algorithm and digest type (%s), so it can prove nothing (%s unsupported; supported are algorithms 8, 10, 13, 14, 15 and DS digest types 1, 2, 4)",
		anchorRecords(a), unsupportedWhat(ede))
}

// closestAnchorIn returns the deepest zone of anchors at or above name, or
// "" (RFC 4035 §4.3, RFC 6840 §5.10: the closest trust anchor decides).
func closestAnchorIn(anchors map[string]*anchorSet, name string) string {
	for n := name; ; {
		if anchors[n] != nil {
			return n
		}
		i, end := dns.NextLabel(n, 0)
		if end {
			if anchors["."] != nil {
				return "."
			}
			return ""
		}
		n = n[i:]
	}
}

// anchorForIn returns the trust anchor an RRset of type rrtype at name is
// validated under: the closest anchor to the zone that holds it. That is
// the closest anchor at or above name, except for DS: the DS RRset lives
// in, and is signed by, the parent zone (RFC 4035 §5.2), so it is the
// closest anchor at or above the parent, even when name itself is the
// owner of an anchor (whose keys say nothing about the parent's data;
// Unbound's val_qds_twoanc, val_qds_badanc). "" when there is none (the
// root's DS has no parent).
func anchorForIn(anchors map[string]*anchorSet, name string, rrtype uint16) string {
	if rrtype == dns.TypeDS {
		if name == "." {
			return ""
		}
		return closestAnchorIn(anchors, parentName(name))
	}
	return closestAnchorIn(anchors, name)
}
