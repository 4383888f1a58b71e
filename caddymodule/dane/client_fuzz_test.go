package dane

import (
	"crypto/x509"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/tlsa"
)

// FuzzClientNames: whatever dNSName SANs a client certificate carries (a
// client chooses them; crypto/x509 only checks they are IA5 strings),
// ClientNames never panics and returns only canonical DNS names that are
// neither wildcards, IP literals nor attribute leaves, each once; and
// Target admits at most one of them, always one the allow-list admits,
// with an owner that is that name or _service.<name>.
func FuzzClientNames(f *testing.F) {
	for _, s := range [][3]string{
		{"a.clients.example", "", "clients.example"}, {"*.clients.example", "A.Clients.Example.", "clients.example"},
		{"_443._tcp.a.clients.example", "192.0.2.1", "example"}, {"a..b", "x\x00.clients.example", "clients.example"},
		{"a.clients.example", "b.clients.example", "clients.example"}, {"clients.example", "", "clients.example"},
		{"1.2.3.4.", "a-b.c_d.clients.example", "clients.example"},
	} {
		f.Add(s[0], s[1], s[2], "smtp-client")
		f.Add(s[0], s[1], s[2], "")
	}
	f.Fuzz(func(t *testing.T, san1, san2, suffix, service string) {
		leaf := &x509.Certificate{DNSNames: []string{san1, san2}}
		names := ClientNames(leaf)
		seen := map[string]bool{}
		for _, n := range names {
			if seen[n] {
				t.Fatalf("%q returned twice", n)
			}
			seen[n] = true
			if n != dns.CanonicalName(n) || strings.ContainsAny(n, "*") || strings.HasPrefix(n, "_") || ValidateName(n) != nil {
				t.Fatalf("client name %q from SANs %q", n, leaf.DNSNames)
			}
		}
		p := ClientPolicy{Suffixes: []string{suffix}, Service: service}
		tgt, err := p.Target(leaf)
		if err != nil {
			if r := RefusalOf(err); r.Reason != ReasonNoName && r.Reason != ReasonNotAllowed {
				t.Fatalf("refusal %v before any DNS is neither %q nor %q", err, ReasonNoName, ReasonNotAllowed)
			}
			return
		}
		id, err := tgt.Identity()
		if err != nil {
			t.Fatal(err)
		}
		if !seen[id.Base] || !p.allows(id.Base) || !strings.HasSuffix(id.Base, "."+dns.CanonicalName(suffix)) {
			t.Fatalf("identity %q from SANs %q, suffix %q", id.Base, leaf.DNSNames, suffix)
		}
		want := id.Base
		if service != "" {
			want = "_" + strings.ToLower(strings.TrimPrefix(service, "_")) + "." + id.Base
		}
		if id.Owner != want || ValidateName(id.Owner) != nil {
			t.Fatalf("owner %q, want %q", id.Owner, want)
		}
		if id.purpose() != tlsa.PurposeClient {
			t.Fatal("a client identity is verified for the server purpose")
		}
	})
}

// FuzzClientOwner: ClientOwner never panics; an owner it builds is a
// valid DNS name of at most 255 octets that ends in the canonical client
// name and has exactly one label more when a service is given, and that
// label is the service's, underscore first.
func FuzzClientOwner(f *testing.F) {
	for _, s := range [][2]string{
		{"device1.example.com", "smtp-client"}, {"device1.example.com.", ""}, {"DEVICE1.Example.COM", "_SMTP-client"},
		{strings.Repeat("a.", 126) + "b", "x"}, {"a.b", "a.b"}, {"_x.example", ""}, {"a.b", "-x"}, {"a.b", "\\."},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, name, service string) {
		owner, err := ClientOwner(name, service)
		if err != nil {
			return
		}
		if l, ok := dns.IsDomainName(owner); !ok || l == 0 || len(owner) > 254 || owner != dns.CanonicalName(owner) {
			t.Fatalf("owner %q of (%q, %q) is not a canonical DNS name", owner, name, service)
		}
		base := dns.CanonicalName(name)
		if !strings.HasSuffix(owner, base) {
			t.Fatalf("owner %q does not end in %q", owner, base)
		}
		extra := dns.CountLabel(owner) - dns.CountLabel(base)
		switch {
		case service == "" && owner != base:
			t.Fatalf("owner %q without a service, want %q", owner, base)
		case service != "" && (extra != 1 || !strings.HasPrefix(owner, "_") || strings.Count(owner[:len(owner)-len(base)], ".") != 1):
			t.Fatalf("owner %q of service %q: want one underscore label before %q", owner, service, base)
		}
	})
}
