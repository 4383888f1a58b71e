package integration

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Upstream is a TLS server on 127.0.0.1 (HTTP/1.1 and HTTP/2) standing for
// one proxied service. Its counters tell what reached it.
type Upstream struct {
	Name string // short name, in every response body: "upstream=<Name>"
	Host string // DNS name, e.g. "good.example.test"
	Port int

	cert       atomic.Pointer[tls.Certificate] // what it presents; swapped for rollover
	ln         net.Listener
	srv        *http.Server
	Requests   atomic.Int64 // requests other than /health
	Health     atomic.Int64 // /health requests
	Handshakes atomic.Int64 // TLS handshakes started (ClientHellos)
	LastProto  atomic.Int64 // ProtoMajor of the last request
}

// Addr is "127.0.0.1:<port>".
func (u *Upstream) Addr() string { return "127.0.0.1:" + strconv.Itoa(u.Port) }

// HostPort is "<host>:<port>", the address Caddy proxies to.
func (u *Upstream) HostPort() string { return u.Host + ":" + strconv.Itoa(u.Port) }

// SetCert changes the certificate presented from the next handshake on.
func (u *Upstream) SetCert(c tls.Certificate) { u.cert.Store(&c) }

// Reset zeroes the counters.
func (u *Upstream) Reset() {
	u.Requests.Store(0)
	u.Health.Store(0)
	u.Handshakes.Store(0)
	u.LastProto.Store(0)
}

// listenUpstream reserves the upstream's port; the port must be known
// before the zones (TLSA owner names) are written.
func listenUpstream(name, host string) (*Upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &Upstream{Name: name, Host: host, Port: ln.Addr().(*net.TCPAddr).Port, ln: ln}, nil
}

// Serve starts serving TLS with cert. Session tickets are off so that
// every connection is a full handshake that shows the current certificate.
func (u *Upstream) Serve(cert tls.Certificate) {
	u.SetCert(cert)
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		u.Health.Add(1)
		fmt.Fprintf(w, "ok upstream=%s\n", u.Name)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		u.Requests.Add(1)
		u.LastProto.Store(int64(r.ProtoMajor))
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "upstream=%s proto=%s method=%s body=%d\n", u.Name, r.Proto, r.Method, n)
	})
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	u.srv = &http.Server{
		Handler:           mux,
		Protocols:         protos,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // handshake refusals are expected
		TLSConfig: &tls.Config{
			MinVersion:             tls.VersionTLS12,
			NextProtos:             []string{"h2", "http/1.1"},
			SessionTicketsDisabled: true,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				u.Handshakes.Add(1)
				return u.cert.Load(), nil
			},
		},
	}
	go u.srv.ServeTLS(u.ln, "", "")
}

// Close stops the server.
func (u *Upstream) Close() {
	if u.srv != nil {
		u.srv.Close()
	} else if u.ln != nil {
		u.ln.Close()
	}
}
