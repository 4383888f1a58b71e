package caddymodule

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/caddy-dane/caddy-dane/internal/pkikit"
)

// tenantUpstream is one TLS server on one IP:port standing for several
// tenants (many names behind one address). It presents, per SNI, the key
// given for that name (or the default key), and records which SNI the
// connection carrying each request was made with.
type tenantUpstream struct {
	addr string
	port int

	mu   sync.Mutex
	seen []tenantRequest
}

type tenantRequest struct{ sni, tenant string }

func startTenantUpstream(t *testing.T, h2 bool, def *pkikit.Leaf, bySNI map[string]*pkikit.Leaf) *tenantUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &tenantUpstream{addr: ln.Addr().String(), port: ln.Addr().(*net.TCPAddr).Port}
	protos := []string{"http/1.1"}
	if h2 {
		protos = []string{"h2", "http/1.1"}
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u.mu.Lock()
			u.seen = append(u.seen, tenantRequest{sni: r.TLS.ServerName, tenant: r.Header.Get("X-Tenant")})
			u.mu.Unlock()
			fmt.Fprintln(w, "ok", r.Proto)
		}),
		TLSConfig: &tls.Config{
			NextProtos: protos,
			GetCertificate: func(hi *tls.ClientHelloInfo) (*tls.Certificate, error) {
				l := def
				if k, ok := bySNI[hi.ServerName]; ok {
					l = k
				}
				c := l.TLS()
				return &c, nil
			},
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close() })
	return u
}

func (u *tenantUpstream) requests() []tenantRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]tenantRequest(nil), u.seen...)
}

// tenantZone signs t.test. with a 3 1 1 record per tenant at port.
func tenantZone(t *testing.T, port int, keys map[string]*pkikit.Leaf) (string, string) {
	t.Helper()
	var recs []string
	for name, l := range keys {
		recs = append(recs, fmt.Sprintf("_%d._tcp.%s. 300 IN TLSA %s", port, name, l.TLSA311()))
	}
	_, addr, anchors := serveZone(t, "t.test.", recs...)
	return addr, anchors
}

// sendAs sends one request for tenant through tr to the upstream
// at u's IP address, as the reverse proxy does: dial info in the context,
// and the replacer that the placeholders read.
func sendAs(t *testing.T, tr *Transport, u *tenantUpstream, tenant string) (int, error) {
	t.Helper()
	repl := caddy.NewReplacer()
	repl.Set("tenant", tenant)
	di := reverseproxy.DialInfo{Network: "tcp", Address: u.addr, Host: "127.0.0.1", Port: strconv.Itoa(u.port)}
	ctx := context.WithValue(context.Background(), caddy.CtxKey("reverse_proxy.dial_info"), di)
	ctx = context.WithValue(ctx, caddy.ReplacerCtxKey, repl)
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+u.addr+"/", nil)
	req.Header.Set("X-Tenant", tenant)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestConnectionBoundToIdentity (issue 10 item 1): an upstream addressed
// by IP, its TLSA base domain from a per-request placeholder. A connection
// verified for tenant A must never carry tenant B's request: B gets a
// connection of its own, verified against B's TLSA RRset. http.Transport
// pools by dial address, so without the binding B rode on A's connection.
func TestConnectionBoundToIdentity(t *testing.T) {
	const a, b = "a.t.test", "b.t.test"
	keyA, err := pkikit.SelfSigned(nil, a)
	if err != nil {
		t.Fatal(err)
	}
	keyB, err := pkikit.SelfSigned(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, h2 := range []bool{false, true} {
		for _, how := range []string{"name", "tls_server_name"} {
			proto := map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2]
			newTransport := func(t *testing.T, dnsAddr, anchors string) *Transport {
				tr := &Transport{DANE: &Options{Resolvers: []string{dnsAddr}, TrustAnchorFile: anchors}}
				if h2 {
					tr.Versions = []string{"1.1", "2"}
				} else {
					tr.Versions = []string{"1.1"}
				}
				if how == "name" {
					tr.DANE.Name = "{tenant}"
				} else {
					tr.TLS = &reverseproxy.TLSConfig{ServerName: "{tenant}"}
				}
				tr = provisioned(t, tr)
				t.Cleanup(func() { _ = tr.Cleanup() })
				return tr
			}

			t.Run(proto+"/"+how+"/B's key is never served: B refused after A", func(t *testing.T) {
				// One key, A's, whatever the SNI: B's TLSA names B's key.
				u := startTenantUpstream(t, h2, keyA, nil)
				dnsAddr, anchors := tenantZone(t, u.port, map[string]*pkikit.Leaf{a: keyA, b: keyB})
				tr := newTransport(t, dnsAddr, anchors)
				if st, err := sendAs(t, tr, u, a); err != nil || st != 200 {
					t.Fatalf("tenant A: %d %v", st, err)
				}
				st, err := sendAs(t, tr, u, b)
				if err == nil {
					t.Fatalf("tenant B got %d on a connection verified for A; B's TLSA was never consulted", st)
				}
				if !strings.Contains(err.Error(), "tlsa mismatch") {
					t.Errorf("tenant B refused with %v, want a tlsa mismatch", err)
				}
				for _, r := range u.requests() {
					if r.tenant == b {
						t.Errorf("a request of tenant B reached the upstream (on a connection with SNI %q)", r.sni)
					}
				}
			})

			t.Run(proto+"/"+how+"/both verified: each on its own connection", func(t *testing.T) {
				u := startTenantUpstream(t, h2, keyA, map[string]*pkikit.Leaf{b: keyB})
				dnsAddr, anchors := tenantZone(t, u.port, map[string]*pkikit.Leaf{a: keyA, b: keyB})
				tr := newTransport(t, dnsAddr, anchors)
				for i := range 6 {
					tenant := []string{a, b}[i%2]
					if st, err := sendAs(t, tr, u, tenant); err != nil || st != 200 {
						t.Fatalf("request %d for %s: %d %v", i, tenant, st, err)
					}
				}
				got := u.requests()
				if len(got) != 6 {
					t.Fatalf("%d requests reached the upstream, want 6", len(got))
				}
				for _, r := range got {
					if r.sni != r.tenant {
						t.Errorf("a request of %s arrived on a connection made for SNI %q", r.tenant, r.sni)
					}
				}
			})
		}
	}
}
