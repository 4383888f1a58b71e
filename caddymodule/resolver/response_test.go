package resolver

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestServerErrorResponse: an error RCODE comes back as a *ServerError
// whose Response is the answer (what dnssec.TrustResolver reads through
// an interface); a network error or a timeout carries none.
func TestServerErrorResponse(t *testing.T) {
	for _, tc := range []struct {
		name  string
		addr  func(t *testing.T) string
		rcode int // of the Response; -1: no Response
	}{
		{"RFC1035-4.1.1/REFUSED", func(t *testing.T) string { return startServer(t, rcode(dns.RcodeRefused), nil).Addr }, dns.RcodeRefused},
		{"RFC1035-4.1.1/NOTIMP", func(t *testing.T) string { return startServer(t, rcode(dns.RcodeNotImplemented), nil).Addr }, dns.RcodeNotImplemented},
		{"RFC1035-4.1.1/port unreachable", closedUDPPort, -1},
		{"RFC1035-4.2.1/no answer", func(t *testing.T) string { return startServer(t, drop, nil).Addr }, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Client{Servers: []string{tc.addr(t)}, Timeout: 100 * time.Millisecond, Attempts: 1}
			q := query()
			q.Question[0].Qclass = dns.ClassCHAOS
			_, err := c.Exchange(context.Background(), q)
			if err == nil {
				t.Fatal("no error")
			}
			var re interface{ Response() *dns.Msg }
			got := -1
			if errors.As(err, &re) && re.Response() != nil {
				m := re.Response()
				got = m.Rcode
				if m.Question[0].Qclass != dns.ClassCHAOS {
					t.Errorf("Response answers %v", m.Question[0])
				}
			}
			if got != tc.rcode {
				t.Fatalf("Response rcode %d, want %d (err %v)", got, tc.rcode, err)
			}
		})
	}
}
