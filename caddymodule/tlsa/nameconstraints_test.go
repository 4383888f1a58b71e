package tlsa

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net"
	"net/url"
	"testing"
)

// nameConstraintCases are the path cases of nameconstraints.go: DNS, IP
// address, email and URI constraints, and the constraints this package
// does not evaluate.
func nameConstraintCases() []pathCase {
	dns := func(names ...string) func(*x509.Certificate) {
		return func(c *x509.Certificate) { c.DNSNames = names }
	}
	cidr := func(s string) *net.IPNet {
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			panic(err)
		}
		return n
	}
	withIP := func(c *x509.Certificate) { c.IPAddresses = []net.IP{net.ParseIP("192.0.2.10").To4()} }
	rawNC := func(subtrees ...[]byte) func(*x509.Certificate) {
		return func(c *x509.Certificate) {
			c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: oidNameConstraints, Critical: true,
				Value: der(asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true,
					Bytes: der(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: bytes.Join(subtrees, nil)})})})
		}
	}
	leafSubject := der(pkix.Name{CommonName: testName}.ToRDNSequence())
	dirName := der(asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true,
		Bytes: der(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: gnDirectoryName, IsCompound: true, Bytes: leafSubject})})
	otherDirName := der(asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true,
		Bytes: der(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: gnDirectoryName, IsCompound: true,
			Bytes: der(pkix.Name{Organization: []string{"Elsewhere"}}.ToRDNSequence())})})
	dnsWithMax := der(asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true, Bytes: append(
		der(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: gnDNS, Bytes: []byte("example.com")}),
		der(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, Bytes: []byte{5}})...)})

	return []pathCase{
		// Name constraints: DNS.
		{name: "RFC 5280 §4.2.1.10 permitted example.com, leaf svc.example.com", inter: withPermittedDNS("example.com"), ok: true},
		{name: "RFC 5280 §4.2.1.10 permitted example.com, leaf svc.other.com", inter: withPermittedDNS("example.com"), leaf: dns("svc.other.com"), name0: "svc.other.com",
			reason: `depth 0 (CN=svc.example.com) has DNS name "svc.other.com", outside the permitted name constraints (example.com) of the CA certificate at depth 1 (CN=Path Issuer CA)`},
		{name: "RFC 5280 §4.2.1.10 permitted .example.com, leaf example.com", inter: withPermittedDNS(".example.com"), leaf: dns("example.com"), name0: "example.com", reason: "outside the permitted"},
		{name: "RFC 5280 §4.2.1.10 permitted .example.com, leaf svc.example.com", inter: withPermittedDNS(".example.com"), ok: true},
		{name: "RFC 5280 §4.2.1.10 permitted example.com, leaf notexample.com", inter: withPermittedDNS("example.com"), leaf: dns("notexample.com"), name0: "notexample.com", reason: "outside the permitted"},
		{name: "RFC 5280 §4.2.1.10 permitted EXAMPLE.com, leaf svc.example.COM", inter: withPermittedDNS("EXAMPLE.com"), leaf: dns("svc.example.COM"), ok: true},
		{name: "RFC 5280 §4.2.1.10 excluded bad.example.com, leaf x.bad.example.com", inter: withExcludedDNS("bad.example.com"), leaf: dns("x.bad.example.com"), name0: "x.bad.example.com",
			reason: `DNS name "x.bad.example.com", within the excluded name constraint "bad.example.com"`},
		{name: "RFC 5280 §4.2.1.10 excluded bad.example.com, leaf svc.example.com", inter: withExcludedDNS("bad.example.com"), ok: true},
		{name: "RFC 5280 §4.2.1.10 second SAN outside permitted", inter: withPermittedDNS("example.com"), leaf: dns(testName, "svc.other.com"), reason: `"svc.other.com", outside`},
		{name: "RFC 5280 §4.2.1.10 wildcard leaf under permitted", inter: withPermittedDNS("example.com"), leaf: dns("*.example.com"), ok: true},
		{name: "RFC 5280 §4.2.1.10 intermediate SAN outside the root's constraint", root: withPermittedDNS("example.com"), inter: dns("ca.other.com"),
			reason: `depth 1 (CN=Path Issuer CA) has DNS name "ca.other.com", outside the permitted name constraints (example.com) of the CA certificate at depth 2`},
		{name: "RFC 5280 §4.2.1.10 root permitted other.com, 2 1 1 presented", root: withPermittedDNS("other.com"), reason: "of the CA certificate at depth 2 (CN=Path Root CA)"},
		{name: "RFC 5280 §4.2.1.10 root permitted other.com, 2 0 0", root: withPermittedDNS("other.com"), anchor: "200", reason: "of the CA certificate at depth 2 (CN=Path Root CA)"},
		{name: "RFC 5280 §4.2.1.10 root permitted other.com, 2 1 0 bare key", root: withPermittedDNS("other.com"), anchor: "210", ok: true},
		{name: "RFC 5280 §4.2.1.10 root permitted other.com above an intermediate anchor", root: withPermittedDNS("other.com"), anchor: "inter", ok: true},

		// Name constraints: IP addresses.
		{name: "RFC 5280 §4.2.1.10 IP permitted 192.0.2.0/24", inter: func(c *x509.Certificate) { c.PermittedIPRanges = []*net.IPNet{cidr("192.0.2.0/24")} }, leaf: withIP, ok: true},
		{name: "RFC 5280 §4.2.1.10 IP permitted 198.51.100.0/24", inter: func(c *x509.Certificate) { c.PermittedIPRanges = []*net.IPNet{cidr("198.51.100.0/24")} }, leaf: withIP,
			reason: "IP address 192.0.2.10, outside the permitted name constraints (198.51.100.0/24)"},
		{name: "RFC 5280 §4.2.1.10 IP excluded 192.0.2.0/28", inter: func(c *x509.Certificate) { c.ExcludedIPRanges = []*net.IPNet{cidr("192.0.2.0/28")} }, leaf: withIP,
			reason: "IP address 192.0.2.10, within the excluded name constraint 192.0.2.0/28"},
		{name: "RFC 5280 §4.2.1.10 IPv4 name, only an IPv6 constraint", inter: func(c *x509.Certificate) { c.PermittedIPRanges = []*net.IPNet{cidr("2001:db8::/32")} }, leaf: withIP,
			reason: "outside the permitted name constraints (2001:db8::/32)"},
		{name: "RFC 5280 §4.2.1.10 IP name, only DNS constraints", inter: withPermittedDNS("example.com"), leaf: withIP, ok: true},

		// Name constraints: email and URI.
		{name: "RFC 5280 §4.2.1.10 email permitted example.com", inter: func(c *x509.Certificate) { c.PermittedEmailAddresses = []string{"example.com"} },
			leaf: func(c *x509.Certificate) { c.EmailAddresses = []string{"ops@example.com"} }, ok: true},
		{name: "RFC 5280 §4.2.1.10 email permitted other.com", inter: func(c *x509.Certificate) { c.PermittedEmailAddresses = []string{"other.com"} },
			leaf: func(c *x509.Certificate) { c.EmailAddresses = []string{"ops@example.com"} }, reason: `email address "ops@example.com", outside`},
		{name: "RFC 5280 §4.2.1.10 URI permitted .example.com", inter: func(c *x509.Certificate) { c.PermittedURIDomains = []string{".example.com"} },
			leaf: func(c *x509.Certificate) {
				c.URIs = []*url.URL{{Scheme: "https", Host: "svc.example.com:8443", Path: "/x"}}
			}, ok: true},
		{name: "RFC 5280 §4.2.1.10 URI permitted other.com", inter: func(c *x509.Certificate) { c.PermittedURIDomains = []string{"other.com"} },
			leaf: func(c *x509.Certificate) { c.URIs = []*url.URL{{Scheme: "https", Host: "svc.example.com", Path: "/x"}} }, reason: "outside the permitted"},

		// Constraints this package does not evaluate.
		{name: "RFC 5280 §4.2.1.10 directoryName constraint the leaf is outside", inter: rawNC(otherDirName), reason: "permitted directoryName name constraint, which this verifier does not evaluate"},
		{name: "RFC 5280 §4.2.1.10 directoryName constraint the leaf is within", inter: rawNC(dirName), reason: "directoryName", diverge: true},
		{name: "RFC 5280 §4.2.1.10 DNS subtree with a maximum", inter: rawNC(dnsWithMax), reason: "with a minimum or maximum"},
	}
}

// TestMatchDNSConstraint: the DNS and email name constraint matches of
// RFC 5280 §4.2.1.10, with OpenSSL's leading-dot forms (nc_dns, nc_email).
func TestMatchDNSConstraint(t *testing.T) {
	for _, tc := range []struct {
		name, base string
		want       bool
	}{
		{"example.com", "example.com", true},
		{"a.example.com", "example.com", true},
		{"a.b.example.com", "example.com", true},
		{"notexample.com", "example.com", false},
		{"example.com", ".example.com", false},
		{"a.example.com", ".example.com", true},
		{"A.Example.COM", "example.com", true},
		{"com", "example.com", false},
		{"anything", "", true},
		{"*.example.com", "example.com", true},
		{"*.example.com", "a.example.com", false},
		{"example.com.evil", "example.com", false},
	} {
		if got := matchDNS(tc.name, tc.base); got != tc.want {
			t.Errorf("matchDNS(%q, %q) = %v, want %v", tc.name, tc.base, got, tc.want)
		}
	}
	for _, tc := range []struct {
		addr, base string
		want       bool
	}{
		{"ops@example.com", "example.com", true},
		{"ops@a.example.com", "example.com", false},
		{"ops@a.example.com", ".example.com", true},
		{"ops@example.com", ".example.com", false},
		{"ops@example.com", "ops@EXAMPLE.com", true},
		{"Ops@example.com", "ops@example.com", false},
		{"ops@example.com", "@example.com", true},
		{"no-at-sign", "example.com", false},
	} {
		if got := matchEmail(tc.addr, tc.base); got != tc.want {
			t.Errorf("matchEmail(%q, %q) = %v, want %v", tc.addr, tc.base, got, tc.want)
		}
	}
}
