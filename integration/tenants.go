package integration

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/caddy-dane/caddy-dane/internal/pkikit"
)

// Tenant names behind the one address of TenantUpstream (issue 10 item 1:
// many names behind one IP, the TLSA base domain from the request).
//
//	tenant-a.example.test  TLSA = key A; the upstream presents A for any SNI but tenant-c's
//	tenant-b.example.test  TLSA = key B, which the upstream never presents
//	tenant-c.example.test  TLSA = key C; the upstream presents C for SNI tenant-c
const (
	tenantA = "tenant-a.example.test"
	tenantB = "tenant-b.example.test"
	tenantC = "tenant-c.example.test"
)

// TenantUpstream is one TLS server on one 127.0.0.1 port standing for
// several tenants. It records, per request, the SNI of the connection that
// carried it and the tenant the request was for (its X-Tenant header).
type TenantUpstream struct {
	Port int
	ln   net.Listener
	srv  *http.Server

	mu   sync.Mutex
	seen []TenantRequest
}

// TenantRequest is one request that reached the upstream.
type TenantRequest struct{ SNI, Tenant string }

// Addr is "127.0.0.1:<port>".
func (u *TenantUpstream) Addr() string { return "127.0.0.1:" + strconv.Itoa(u.Port) }

// Requests returns what reached the upstream so far.
func (u *TenantUpstream) Requests() []TenantRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]TenantRequest(nil), u.seen...)
}

// Reset forgets the requests seen.
func (u *TenantUpstream) Reset() {
	u.mu.Lock()
	u.seen = nil
	u.mu.Unlock()
}

// Close stops the server.
func (u *TenantUpstream) Close() {
	if u.srv != nil {
		u.srv.Close()
	}
}

// setupTenants starts the tenants' upstream with keys made by mk and
// returns the names and TLSA records to publish for them.
func (e *Env) setupTenants(mk func(names ...string) (*pkikit.Leaf, error)) ([]string, []tlsaRR, error) {
	keys := map[string]*pkikit.Leaf{}
	for _, n := range []string{tenantA, tenantB, tenantC} {
		l, err := mk(n)
		if err != nil {
			return nil, nil, err
		}
		keys[n] = l
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	u := &TenantUpstream{Port: ln.Addr().(*net.TCPAddr).Port, ln: ln}
	a, c := keys[tenantA].TLS(), keys[tenantC].TLS()
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	u.srv = &http.Server{
		Protocols:         protos,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u.mu.Lock()
			u.seen = append(u.seen, TenantRequest{SNI: r.TLS.ServerName, Tenant: r.Header.Get("X-Tenant")})
			u.mu.Unlock()
			fmt.Fprintf(w, "tenant=%s sni=%s\n", r.Header.Get("X-Tenant"), r.TLS.ServerName)
		}),
		TLSConfig: &tls.Config{
			NextProtos:             []string{"h2", "http/1.1"},
			SessionTicketsDisabled: true,
			GetCertificate: func(hi *tls.ClientHelloInfo) (*tls.Certificate, error) {
				if hi.ServerName == tenantC {
					return &c, nil
				}
				return &a, nil
			},
		},
	}
	go u.srv.ServeTLS(ln, "", "")
	e.Tenants = u
	var recs []tlsaRR
	for _, n := range []string{tenantA, tenantB, tenantC} {
		recs = append(recs, tlsaRR{Host: n, Port: u.Port, Data: keys[n].TLSA311()})
	}
	return []string{tenantA, tenantB, tenantC}, recs, nil
}
