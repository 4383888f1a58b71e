package tlsa

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"net"
	"strings"
)

// checkPathNameConstraints applies the name constraints (RFC 5280
// §4.2.1.10, x509_vfy.c check_name_constraints) of every CA on path, the
// anchor certificate included, to every certificate below it that is not
// self-issued (the leaf always). A CA with a constraint this package does
// not evaluate (unsupportedConstraints) fails the path.
func checkPathNameConstraints(path []*x509.Certificate) string {
	for j := len(path) - 1; j > 0; j-- {
		ca := path[j]
		ext := scanExtensions(ca)
		if !ext.nameConstraints {
			continue
		}
		if ext.ncUnsupported != "" {
			return fmt.Sprintf("the CA certificate at depth %d (%s) has %s, which this verifier does not evaluate",
				j, subjectOf(ca), ext.ncUnsupported)
		}
		for i := j - 1; i >= 0; i-- {
			c := path[i]
			if i > 0 && selfIssued(c) {
				continue
			}
			if r := checkNameConstraints(c, ca); r != "" {
				return fmt.Sprintf("the certificate at depth %d (%s) has %s of the CA certificate at depth %d (%s)",
					i, subjectOf(c), r, j, subjectOf(ca))
			}
		}
	}
	return ""
}

// The emailAddress attribute of a subject name (PKCS #9): OpenSSL applies
// the email constraints to it as to rfc822Name SANs.
var oidEmailAddress = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}

// General name tags (RFC 5280 §4.2.1.6), context-specific.
const (
	gnOtherName     = 0
	gnRFC822        = 1
	gnDNS           = 2
	gnX400          = 3
	gnDirectoryName = 4
	gnEDIParty      = 5
	gnURI           = 6
	gnIP            = 7
	gnRegisteredID  = 8
)

var gnTypeNames = [...]string{"otherName", "rfc822Name", "dNSName", "x400Address", "directoryName",
	"ediPartyName", "uniformResourceIdentifier", "iPAddress", "registeredID"}

// unsupportedConstraints walks a NameConstraints extension (RFC 5280
// §4.2.1.10) for what crypto/x509 does not hand over: constraint types
// other than DNS, IP, email and URI, and subtrees with a minimum other
// than 0 or with a maximum (OpenSSL: X509_V_ERR_SUBTREE_MINMAX). It
// returns a description of the first one, or "".
func unsupportedConstraints(der []byte) string {
	var nc asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &nc); err != nil || len(rest) > 0 || nc.Tag != asn1.TagSequence {
		return "a name constraints extension that does not parse"
	}
	lists := nc.Bytes
	for len(lists) > 0 {
		var list asn1.RawValue // [0] permitted or [1] excluded GeneralSubtrees
		var err error
		if lists, err = asn1.Unmarshal(lists, &list); err != nil || list.Class != asn1.ClassContextSpecific || list.Tag > 1 {
			return "a name constraints extension that does not parse"
		}
		kind := [...]string{"permitted", "excluded"}[list.Tag]
		subtrees := list.Bytes
		for len(subtrees) > 0 {
			var st asn1.RawValue
			if subtrees, err = asn1.Unmarshal(subtrees, &st); err != nil || st.Tag != asn1.TagSequence {
				return "a name constraints extension that does not parse"
			}
			var base asn1.RawValue
			rest, err := asn1.Unmarshal(st.Bytes, &base)
			if err != nil || base.Class != asn1.ClassContextSpecific {
				return "a name constraints extension that does not parse"
			}
			switch base.Tag {
			case gnRFC822, gnDNS, gnURI, gnIP:
			default:
				name := fmt.Sprintf("[%d]", base.Tag)
				if base.Tag >= 0 && base.Tag < len(gnTypeNames) {
					name = gnTypeNames[base.Tag]
				}
				return "a " + kind + " " + name + " name constraint"
			}
			if !zeroMinimumOnly(rest) {
				return "a " + kind + " " + gnTypeNames[base.Tag] + " name constraint with a minimum or maximum"
			}
		}
	}
	return ""
}

// zeroMinimumOnly reports whether the fields after a GeneralSubtree's base
// are absent or just an explicit minimum of 0 (the DEFAULT; RFC 5280 says
// minimum MUST be 0 and maximum MUST be absent).
func zeroMinimumOnly(rest []byte) bool {
	if len(rest) == 0 {
		return true
	}
	var min asn1.RawValue
	rest, err := asn1.Unmarshal(rest, &min)
	return err == nil && len(rest) == 0 && min.Class == asn1.ClassContextSpecific && min.Tag == 0 &&
		bytes.Equal(min.Bytes, []byte{0})
}

// checkNameConstraints checks the names of c against the DNS, IP, email
// and URI constraints of ca the way OpenSSL's nc_match does: for each name,
// if ca has permitted subtrees of the name's type one must match, and no
// excluded subtree of that type may match. It returns "" or the first
// violation, worded to fit "the certificate ... has <violation> of the CA
// certificate ...".
func checkNameConstraints(c, ca *x509.Certificate) string {
	for _, n := range c.DNSNames {
		if r := ncMatch("DNS name", n, ca.PermittedDNSDomains, ca.ExcludedDNSDomains, matchDNS); r != "" {
			return r
		}
	}
	for _, ip := range c.IPAddresses {
		if r := ncMatchIP(ip, ca.PermittedIPRanges, ca.ExcludedIPRanges); r != "" {
			return r
		}
	}
	emails := c.EmailAddresses
	for _, atv := range c.Subject.Names {
		if atv.Type.Equal(oidEmailAddress) {
			s, ok := atv.Value.(string)
			if !ok {
				return "an emailAddress in its subject that is no string, subject to the name constraints"
			}
			emails = append(emails[:len(emails):len(emails)], s)
		}
	}
	for _, e := range emails {
		if r := ncMatch("email address", e, ca.PermittedEmailAddresses, ca.ExcludedEmailAddresses, matchEmail); r != "" {
			return r
		}
	}
	for _, u := range c.URIs {
		if len(ca.PermittedURIDomains)+len(ca.ExcludedURIDomains) == 0 {
			break
		}
		host, _, _ := strings.Cut(u.Host, ":")
		if u.User != nil || host == "" {
			return fmt.Sprintf("URI %q, with no host this verifier can extract, subject to the URI name constraints", clip(u.String()))
		}
		if r := ncMatch("URI "+clip(u.String())+" with host", host, ca.PermittedURIDomains, ca.ExcludedURIDomains, matchURIHost); r != "" {
			return r
		}
	}
	return ""
}

// ncMatch applies one type's permitted and excluded subtrees to a name.
func ncMatch(kind, name string, permitted, excluded []string, match func(name, base string) bool) string {
	if len(permitted) > 0 {
		ok := false
		for _, b := range permitted {
			if match(name, b) {
				ok = true
				break
			}
		}
		if !ok {
			return fmt.Sprintf("%s %q, outside the permitted name constraints (%s)", kind, clip(name), clip(strings.Join(permitted, ", ")))
		}
	}
	for _, b := range excluded {
		if match(name, b) {
			return fmt.Sprintf("%s %q, within the excluded name constraint %q", kind, clip(name), clip(b))
		}
	}
	return ""
}

// matchDNS is RFC 5280's DNS name constraint match, as OpenSSL's nc_dns
// does it: "example.com" matches example.com and every name below it,
// ".example.com" only the names below it, "" everything. ASCII case is
// ignored; a wildcard label is compared as text.
func matchDNS(name, base string) bool {
	if base == "" {
		return true
	}
	if len(name) < len(base) {
		return false
	}
	if len(name) > len(base) && base[0] != '.' && name[len(name)-len(base)-1] != '.' {
		return false
	}
	return strings.EqualFold(name[len(name)-len(base):], base)
}

// matchEmail is OpenSSL's nc_email: a constraint with a local part names
// one mailbox (local part case-sensitive), one without names every
// mailbox at that host, one starting with "." every mailbox at hosts
// below it.
func matchEmail(addr, base string) bool {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return false // OpenSSL: unsupported name syntax, a failure either way
	}
	bat := strings.LastIndexByte(base, '@')
	if bat < 0 && strings.HasPrefix(base, ".") {
		return len(addr) > len(base) && strings.EqualFold(addr[len(addr)-len(base):], base)
	}
	host := base
	if bat >= 0 {
		if bat > 0 && base[:bat] != addr[:at] {
			return false
		}
		host = base[bat+1:]
	}
	return strings.EqualFold(addr[at+1:], host)
}

// matchURIHost is OpenSSL's nc_uri on the host part of a URI: a
// constraint starting with "." matches the hosts below it, any other only
// that host.
func matchURIHost(host, base string) bool {
	if strings.HasPrefix(base, ".") {
		return len(host) > len(base) && strings.EqualFold(host[len(host)-len(base):], base)
	}
	return strings.EqualFold(host, base)
}

// ncMatchIP is OpenSSL's nc_ip: the address must have the length of the
// constraint's address (an IPv4 name never matches an IPv6 constraint)
// and agree with it under its mask.
func ncMatchIP(ip net.IP, permitted, excluded []*net.IPNet) string {
	in := func(n *net.IPNet) bool {
		if len(ip) != len(n.IP) || len(n.Mask) != len(n.IP) {
			return false
		}
		for k := range ip {
			if ip[k]&n.Mask[k] != n.IP[k]&n.Mask[k] {
				return false
			}
		}
		return true
	}
	if len(permitted) > 0 {
		ok := false
		var list []string
		for _, n := range permitted {
			ok = ok || in(n)
			list = append(list, n.String())
		}
		if !ok {
			return fmt.Sprintf("IP address %s, outside the permitted name constraints (%s)", ip, clip(strings.Join(list, ", ")))
		}
	}
	for _, n := range excluded {
		if in(n) {
			return fmt.Sprintf("IP address %s, within the excluded name constraint %s", ip, n)
		}
	}
	return ""
}
