package integration

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/internal/labconf"
	"github.com/caddy-dane/caddy-dane/internal/pkikit"
	"github.com/caddy-dane/caddy-dane/internal/zonekit"
)

// ticketUpstream is an HTTPS upstream with session tickets on (the lab's
// other upstreams turn them off, to count every handshake): it presents
// the current key on full handshakes and records, per request, whether
// its connection was resumed.
type ticketUpstream struct {
	port int
	key  atomic.Pointer[tls.Certificate]
	srv  *http.Server

	mu      sync.Mutex
	resumed []bool
}

func startTicketUpstream(t *testing.T, cert tls.Certificate) *ticketUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &ticketUpstream{port: ln.Addr().(*net.TCPAddr).Port}
	u.key.Store(&cert)
	u.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u.mu.Lock()
			u.resumed = append(u.resumed, r.TLS.DidResume)
			u.mu.Unlock()
			fmt.Fprintln(w, "ok")
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // refused handshakes are expected
		TLSConfig: &tls.Config{
			NextProtos:     []string{"http/1.1"},
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return u.key.Load(), nil },
		},
	}
	go func() { _ = u.srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { u.srv.Close() })
	return u
}

// served returns how many requests reached the upstream, and how many of
// them on a resumed session.
func (u *ticketUpstream) served() (n, resumed int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, r := range u.resumed {
		if r {
			resumed++
		}
	}
	return len(u.resumed), resumed
}

// TestResumptionThroughCaddy (issue 14): a real Caddy with `transport
// dane` and `keepalive off` (a new upstream connection per request)
// resumes its upstream TLS sessions, and re-checks every resumption
// against the current TLSA RRset:
//
//  1. k1 published and served: after the first request, every
//     connection is a resumption;
//  2. the record of k1 withdrawn (k2 published instead) while the
//     upstream still holds k1: once the 1-second TTL has passed, every
//     request is refused and none reaches the upstream (the resumed
//     session and the full handshake that follows both present k1);
//  3. the upstream switches to k2: requests succeed again, resumed after
//     the first.
func TestResumptionThroughCaddy(t *testing.T) {
	e := needCaddy(t)
	const name = "svc.resume.test"
	ca, err := pkikit.NewRoot("resume CA")
	if err != nil {
		t.Fatal(err)
	}
	k1, err := ca.NewLeaf(name)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ca.NewLeaf(name)
	if err != nil {
		t.Fatal(err)
	}
	up := startTicketUpstream(t, k1.TLS())
	owner := fmt.Sprintf("_%d._tcp.%s.", up.port, name)
	zone := zonekit.NewZone("resume.test.")
	publish := func(l *pkikit.Leaf) {
		zone.Remove(owner, dns.TypeTLSA)
		zone.MustAdd(fmt.Sprintf("%s 1 IN TLSA %s", owner, l.TLSA311()))
		if err := zone.Sign(time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	publish(k1)
	dnsSrv := zonekit.NewServer(zone)
	dnsAddr, err := dnsSrv.ListenAndServe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dnsSrv.Close() })
	anchors := filepath.Join(e.Dir, "resume-anchors.ds")
	if err := os.WriteFile(anchors, []byte(zone.DS()[0].String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port, err := labconf.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.StartCaddy("resumption", Site{
		Port:      port,
		Upstreams: []string{fmt.Sprintf("https://127.0.0.1:%d", up.port)},
		Dane:      Dane{Resolvers: dnsAddr, TrustAnchor: anchors, Timeout: "2s"},
		Transport: []string{"tls_server_name " + name, "keepalive off"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()

	const each = 40
	run := func(want int) (statuses map[int]int) {
		statuses = map[int]int{}
		for range each {
			st, _, _ := request(t, "GET", c.URL()+"/", "")
			statuses[st]++
		}
		if statuses[want] != each {
			t.Errorf("statuses %v, want %d × %d", statuses, each, want)
		}
		return statuses
	}

	run(200)
	n, resumed := up.served()
	t.Logf("k1 published: %d requests served, %d on a resumed session", n, resumed)
	if n != each || resumed != each-1 {
		t.Fatalf("k1 published: %d requests, %d resumed; want %d, %d (all but the first)", n, resumed, each, each-1)
	}

	publish(k2) // k1's record withdrawn; the upstream still presents k1
	time.Sleep(1500 * time.Millisecond)
	refusedBefore := len(c.Entries(resumptionRefusedMsg))
	run(502)
	if n2, _ := up.served(); n2 != n {
		t.Fatalf("%d requests reached the upstream after its key's record was withdrawn", n2-n)
	}
	if got := len(c.Entries(resumptionRefusedMsg)) - refusedBefore; got == 0 {
		t.Errorf("no resumption was refused by the DANE re-check after the withdrawal")
	} else {
		t.Logf("k1 withdrawn: %d requests refused, %d resumptions refused by the re-check, 0 reached the upstream", each, got)
	}
	if refs := c.Entries("dane refused upstream"); len(refs) == 0 || refs[len(refs)-1].Str("reason") != "tlsa mismatch" {
		t.Errorf("refusals logged %q, want the last to be a tlsa mismatch", reasons(refs))
	}

	up.key.Store(ptr(k2.TLS()))
	run(200)
	n3, resumed3 := up.served()
	t.Logf("k2 served: %d requests, %d resumed", n3-n, resumed3-resumed)
	if n3-n != each || resumed3-resumed != each-1 {
		t.Errorf("after the switch to k2: %d requests, %d resumed; want %d, %d", n3-n, resumed3-resumed, each, each-1)
	}
}

// resumptionRefusedMsg is the transport's log message for a resumption
// that the DANE re-check refused.
const resumptionRefusedMsg = "dane: resumed upstream session refused, its certificate chain no longer matches the TLSA RRset; making a full handshake"

func ptr[T any](v T) *T { return &v }
