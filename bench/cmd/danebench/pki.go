package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// pki is a root CA, an intermediate and an ECDSA P-256 leaf for one name:
// the chain stock Caddy verifies with PKIX (tls_trust_pool file root.pem),
// and whose leaf key DANE-EE 3 1 1 pins.
type pki struct {
	rootPEM string // path of the root certificate, PEM
	chain   tls.Certificate
	leaf    *x509.Certificate
}

func (p *pki) tlsa311() string {
	sum := sha256.Sum256(p.leaf.RawSubjectPublicKeyInfo)
	return "3 1 1 " + hex.EncodeToString(sum[:])
}

func newPKI(dir, name string) (*pki, error) {
	now := time.Now()
	serial := int64(1)
	mk := func(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) (*x509.Certificate, error) {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(48*time.Hour)
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			return nil, err
		}
		return x509.ParseCertificate(der)
	}
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	interKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	root, err := mk(&x509.Certificate{Subject: pkix.Name{CommonName: "bench root"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: ca}, nil, &rootKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	inter, err := mk(&x509.Certificate{Subject: pkix.Name{CommonName: "bench intermediate"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: ca}, root, &interKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	leaf, err := mk(&x509.Certificate{Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		inter, &leafKey.PublicKey, interKey)
	if err != nil {
		return nil, err
	}
	p := &pki{rootPEM: dir + "/root.pem", leaf: leaf,
		chain: tls.Certificate{Certificate: [][]byte{leaf.Raw, inter.Raw}, PrivateKey: leafKey, Leaf: leaf}}
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw})
	return p, os.WriteFile(p.rootPEM, pemData, 0o644)
}

// upstream is the HTTPS server behind both proxies. It counts the TLS
// connections it accepts, so a run can prove that `keepalive off` really
// made one handshake per request.
type upstream struct {
	port  int
	conns atomic.Int64
	h2    atomic.Int64 // requests over HTTP/2
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
			if r.ProtoMajor == 2 {
				u.h2.Add(1)
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
