package rfc2136

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestOwnerName(t *testing.T) {
	tests := []struct {
		row, name, zone, want string
		err                   error
	}{
		{"RFC1035-5.1/@ is the apex", "@", "example.test.", "example.test.", nil},
		{"libdns/relative", "_443._tcp.www", "example.test.", "_443._tcp.www.example.test.", nil},
		{"libdns/absolute in zone", "www.Example.TEST.", "example.test.", "www.Example.TEST.", nil},
		{"libdns/absolute apex", "example.test.", "example.test.", "example.test.", nil},
		{"libdns/absolute outside", "www.example.org.", "example.test.", "", ErrOutsideZone},
		{"libdns/absolute suffix but not subdomain", "wwwexample.test.", "example.test.", "", ErrOutsideZone},
		{"libdns/relative that names another domain stays inside", "www.example.org", "example.test.", "www.example.org.example.test.", nil},
		{"libdns/empty name", "", "example.test.", "", ErrRecord},
		{"libdns/@ inside a name is refused", "_443._tcp.@", "example.test.", "", ErrRecord},
		{"RFC1035-2.3.4/label too long", string(make([]byte, 64)) + "a", "example.test.", "", ErrRecord},
	}
	for _, tc := range tests {
		t.Run(tc.row, func(t *testing.T) {
			got, err := ownerName(tc.name, tc.zone)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestRelativeName(t *testing.T) {
	for _, tc := range []struct{ fqdn, want string }{
		{"example.test.", "@"},
		{"EXAMPLE.test.", "@"},
		{"www.example.test.", "www"},
		{"_443._tcp.a.b.example.test.", "_443._tcp.a.b"},
	} {
		if got := relativeName(tc.fqdn, "example.test."); got != tc.want {
			t.Errorf("relativeName(%q) = %q, want %q", tc.fqdn, got, tc.want)
		}
	}
}

// TestTXTRoundTrip: libdns TXT text is unescaped and unsplit; on the wire
// it is character-strings of at most 255 octets (RFC 1035 §3.3.14).
func TestTXTRoundTrip(t *testing.T) {
	long := make([]byte, 600)
	for i := range long {
		long[i] = byte('a' + i%26)
	}
	for _, text := range []string{"", "hello world", `quotes " backslashes \000`, "del: \x7f tab:\t", string(long)} {
		rr, err := toDNS(libdns.TXT{Name: "t", TTL: time.Minute, Text: text}, "example.test.")
		if err != nil {
			t.Fatal(err)
		}
		// Through the wire and back.
		buf := make([]byte, 4096)
		off, err := dns.PackRR(rr, buf, 0, nil, false)
		if err != nil {
			t.Fatalf("%q: pack: %v", text, err)
		}
		back, _, err := dns.UnpackRR(buf[:off], 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range back.(*dns.TXT).Txt {
			if len(unescapeTXT(s)) > 255 {
				t.Errorf("character-string of %d octets", len(unescapeTXT(s)))
			}
		}
		rec, err := fromDNS(back, "example.test.")
		if err != nil {
			t.Fatal(err)
		}
		if got := rec.(libdns.TXT).Text; got != text {
			t.Errorf("round trip %q -> %q", text, got)
		}
	}
}

func TestParseAlgorithm(t *testing.T) {
	for in, want := range map[string]string{"": dns.HmacSHA256, "HMAC-SHA512": dns.HmacSHA512, "hmac-sha384.": dns.HmacSHA384,
		"hmac-sha224": dns.HmacSHA224, "hmac-sha1": dns.HmacSHA1} {
		if got, err := ParseAlgorithm(in); err != nil || got != want {
			t.Errorf("ParseAlgorithm(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"hmac-md5", "hmac-md5.sig-alg.reg.int.", "sha256", "gss-tsig"} {
		if _, err := ParseAlgorithm(in); err == nil {
			t.Errorf("ParseAlgorithm(%q) accepted", in)
		}
	}
}

// FuzzToDNS: whatever a caller passes, a record either is refused or
// becomes exactly one RR of the asked type, in the zone.
func FuzzToDNS(f *testing.F) {
	f.Add("_443._tcp.www", "TLSA", tlsaData)
	f.Add("www", "A", "192.0.2.1")
	f.Add("x.example.org.", "TXT", "a\"b")
	f.Add("www", "A", "192.0.2.1\nevil. 0 IN A 1.2.3.4")
	f.Add("@", "MX", "10 mail")
	f.Fuzz(func(t *testing.T, name, typ, data string) {
		rr, err := toDNS(libdns.RR{Name: name, Type: typ, Data: data, TTL: time.Minute}, "example.test.")
		if err != nil {
			return
		}
		h := rr.Header()
		if !dns.IsSubDomain("example.test.", h.Name) {
			t.Fatalf("%q built outside the zone: %v", name, rr)
		}
		if dns.TypeToString[h.Rrtype] != dns.TypeToString[dns.StringToType[toUpper(typ)]] || updateMetaTypes[h.Rrtype] {
			t.Fatalf("type %q built %v", typ, rr)
		}
	})
}

func toUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}
