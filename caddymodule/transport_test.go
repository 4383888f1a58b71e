package caddymodule

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// provisioned returns a transport provisioned the way Caddy would.
func provisioned(t *testing.T, tr *Transport) *Transport {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := tr.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	if err := tr.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	return tr
}

// TestBackstopRefusesBypass: a TLS connection made with the transport's
// base TLS config, without going through the DANE dialer, must fail even
// against a server that PKIX would accept.
func TestBackstopRefusesBypass(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	tr := provisioned(t, &Transport{DANE: &Options{Resolvers: []string{"127.0.0.1:53"}}})
	cfg := tr.Transport.TLSClientConfig.Clone()
	cfg.RootCAs = srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	cfg.ServerName = "example.com" // httptest's certificate name
	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), cfg)
	if err == nil {
		conn.Close()
		t.Fatal("handshake with the base TLS config succeeded; the backstop must refuse it")
	}
	if !strings.Contains(err.Error(), "outside the DANE dialer") {
		t.Errorf("unexpected error %v", err)
	}
	if tr.Transport.DialTLSContext == nil {
		t.Error("DialTLSContext not set: TLS would bypass DANE")
	}
	if tr.Transport.Proxy != nil {
		t.Error("environment proxies must be ignored")
	}
}

// TestProvisionDefaults: the documented defaults are applied, and TLS is on.
func TestProvisionDefaults(t *testing.T) {
	tr := provisioned(t, &Transport{DANE: &Options{Resolvers: []string{"127.0.0.1"}}})
	if tr.TLS == nil {
		t.Fatal("TLS not enabled")
	}
	if got := tr.DANE.Timeout; got != caddy.Duration(defaultLookupTimeout) {
		t.Errorf("timeout default %v", got)
	}
	if got := tr.DANE.QueryTimeout; got != caddy.Duration(defaultTryTimeout) {
		t.Errorf("query_timeout default %v", got)
	}
	if tr.handshake != defaultHandshakeTimeout {
		t.Errorf("handshake timeout default %v", tr.handshake)
	}
}

// TestDialRefusesWithoutDialInfo: a dial that does not come from the
// reverse proxy (no upstream dial info) is refused before any DNS or TCP.
func TestDialRefusesWithoutDialInfo(t *testing.T) {
	tr := provisioned(t, &Transport{DANE: &Options{Resolvers: []string{"127.0.0.1"}}})
	_, err := tr.dialTLS(context.Background(), "tcp", "example.com:443")
	if err == nil || !strings.Contains(err.Error(), "no upstream dial info") {
		t.Fatalf("got %v, want a refusal naming the missing dial info", err)
	}
}
