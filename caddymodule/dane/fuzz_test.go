package dane

import (
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// FuzzIdentity: whatever host, name and SNI a request carries (they come
// from placeholders and dial info), Identity never panics, and what it
// accepts is a TLSA base domain that is a DNS name, never an IP literal;
// a host name from an unauthenticated source is never one; the key of an
// identity changes with its base domain.
func FuzzIdentity(f *testing.F) {
	for _, s := range [][4]string{
		{"api.example", "", "", ""}, {"192.0.2.1", "api.example", "", ""}, {"[2001:db8::1]", "", "sni.example", ""},
		{"evil.example", "api.example", "", "dynamic srv"}, {"192.0.2.1", "", "", ""}, {"", "x", "y", ""},
		{"a..b", "", "", ""}, {"192.0.2.1", "192.0.2.2", "", ""}, {"x.", "", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3], 443)
	}
	f.Fuzz(func(t *testing.T, host, name, sni, unauth string, port int) {
		tgt := Target{Host: host, Port: port, Name: name, SNI: sni, Unauthenticated: unauth}
		id, err := tgt.Identity()
		if err != nil {
			if RefusalOf(err).Reason != ReasonNoName {
				t.Fatalf("refusal %v is not %q", err, ReasonNoName)
			}
			return
		}
		if net.ParseIP(strings.Trim(id.Base, "[].")) != nil {
			t.Fatalf("IP literal %q accepted as TLSA base domain (%+v)", id.Base, tgt)
		}
		if _, ok := dns.IsDomainName(id.Base); !ok || id.Base != dns.CanonicalName(id.Base) {
			t.Fatalf("base %q is not a canonical DNS name (%+v)", id.Base, tgt)
		}
		if unauth != "" && net.ParseIP(strings.Trim(host, "[]")) == nil {
			t.Fatalf("host %q from %q became the base domain %q", host, unauth, id.Base)
		}
		if len(id.Names) == 0 || id.Names[0] != id.Base {
			t.Fatalf("names %v do not start with the base %q", id.Names, id.Base)
		}
		other := id
		other.Base += "x."
		if other.Key() == id.Key() {
			t.Fatal("the key does not depend on the base domain")
		}
	})
}
