package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/caddy-dane/caddy-dane/internal/pkikit"
)

// pki is a root CA, an intermediate and an ECDSA P-256 leaf for one name:
// the chain stock Caddy verifies with PKIX (tls_trust_pool file root.pem),
// and whose leaf key DANE-EE 3 1 1 pins.
type pki struct {
	rootPEM string // path of the root certificate, PEM
	chain   tls.Certificate
	leaf    *pkikit.Leaf
}

func (p *pki) tlsa311() string { return p.leaf.TLSA311() }

func newPKI(dir, name string) (*pki, error) {
	root, err := pkikit.NewRoot("bench root")
	if err != nil {
		return nil, err
	}
	inter, err := root.NewIntermediate("bench intermediate")
	if err != nil {
		return nil, err
	}
	leaf, err := inter.NewLeaf(name)
	if err != nil {
		return nil, err
	}
	p := &pki{rootPEM: dir + "/root.pem", leaf: leaf, chain: leaf.TLS()}
	return p, pkikit.WritePEM(p.rootPEM, root.Cert)
}

// upstream is the HTTPS server behind both proxies. It counts the TLS
// connections it accepts, so a run can prove that `keepalive off` really
// made one handshake per request.
type upstream struct {
	port  int
	conns atomic.Int64
	h2    atomic.Int64 // requests over HTTP/2
	reqs  atomic.Int64 // requests
	resum atomic.Int64 // requests on a resumed TLS session
	srv   *http.Server
}

func startUpstream(p *pki) (*upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u := &upstream{port: ln.Addr().(*net.TCPAddr).Port}
	body := []byte("hello from the upstream\n")
	u.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u.reqs.Add(1)
			if r.ProtoMajor == 2 {
				u.h2.Add(1)
			}
			if r.TLS != nil && r.TLS.DidResume {
				u.resum.Add(1)
			}
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write(body)
		}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{p.chain}},
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				u.conns.Add(1)
			}
		},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() { _ = u.srv.ServeTLS(ln, "", "") }()
	return u, nil
}

func must(err error, what string) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "danebench: %s: %v\n", what, err)
		cleanup()
		os.Exit(1)
	}
}
