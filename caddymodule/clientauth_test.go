package caddymodule

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-dane/caddy-dane/caddymodule/dane"
	"github.com/caddy-dane/caddy-dane/internal/pkikit"
)

// Tests of the DANE client verifier module and the dane_client handler
// (clientauth.go), with the dane transport as the client presenting its
// certificate (tls_client_auth): real TLS on loopback, DNS from zonekit.

// clientAuthUpstream is a TLS server that requires a client certificate
// and verifies it with v, as Caddy's client_auth does (crypto/tls
// RequireAnyClientCert, the verifier called from VerifyConnection), behind
// the dane_client handler. It counts the requests that reach its handler
// and records the placeholder they saw.
type clientAuthUpstream struct {
	addr    string
	port    int
	reached atomic.Int64
	name    atomic.Value // string: the last {http.request.tls.client.dane_name}
}

func startClientAuthUpstream(t *testing.T, port int, serverLeaf *pkikit.Leaf, v *ClientVerifier, h ClientName) *clientAuthUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	u := &clientAuthUpstream{addr: ln.Addr().String(), port: ln.Addr().(*net.TCPAddr).Port}
	final := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		u.reached.Add(1)
		repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		name, _ := repl.GetString(ClientNamePlaceholder)
		u.name.Store(name)
		fmt.Fprint(w, name)
		return nil
	})
	cert := serverLeaf.TLS()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			repl := caddy.NewReplacer()
			r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
			if err := h.ServeHTTP(w, r, final); err != nil {
				var he caddyhttp.HandlerError
				if ok := asHandlerError(err, &he); ok {
					w.WriteHeader(he.StatusCode)
					return
				}
				w.WriteHeader(500)
			}
		}),
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientAuth:   tls.RequireAnyClientCert,
			VerifyConnection: func(cs tls.ConnectionState) error {
				raw := make([][]byte, len(cs.PeerCertificates))
				for i, c := range cs.PeerCertificates {
					raw[i] = c.Raw
				}
				if len(raw) == 0 {
					return nil
				}
				return v.VerifyClientCertificate(raw, cs.VerifiedChains)
			},
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close() })
	return u
}

func asHandlerError(err error, he *caddyhttp.HandlerError) bool {
	e, ok := err.(caddyhttp.HandlerError)
	if ok {
		*he = e
	}
	return ok
}

func provisionVerifier(t *testing.T, v *ClientVerifier) *ClientVerifier {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := v.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	if err := v.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	t.Cleanup(func() { _ = v.Cleanup() })
	return v
}

func writeLeaf(t *testing.T, l *pkikit.Leaf) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	if err := pkikit.WritePEM(certFile, l.Cert); err != nil {
		t.Fatal(err)
	}
	key, err := pkikit.KeyPEM(l.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestTransportPresentsClientCertificate: `transport dane` with Caddy's
// tls_client_auth presents the certificate to an upstream that verifies
// clients by DANE (issue 12, client side), and the upstream's routes see
// the verified name in {http.request.tls.client.dane_name}. Without the
// certificate, or with a key the client's TLSA records do not name, the
// upstream refuses the handshake and no request reaches its handler.
func TestTransportPresentsClientCertificate(t *testing.T) {
	const upName, clientName = "up.example.test", "front.clients.example.test"
	upLeaf, err := pkikit.SelfSigned(nil, upName)
	if err != nil {
		t.Fatal(err)
	}
	client, err := pkikit.SelfSignedClient(clientName)
	if err != nil {
		t.Fatal(err)
	}
	impostor, err := pkikit.SelfSignedClient(clientName) // same name, another key
	if err != nil {
		t.Fatal(err)
	}

	// The upstream's port is only known once it listens; its verifier
	// needs the zone first, so listen on a port picked in advance.
	port := freePort(t)
	_, dnsAddr, anchors := signedZone(t,
		fmt.Sprintf("_%d._tcp.%s. 300 IN TLSA %s", port, upName, upLeaf.TLSA311()),
		clientName+". 300 IN TLSA "+client.TLSA311())

	v := provisionVerifier(t, &ClientVerifier{AllowSuffixes: []string{"clients.example.test"},
		Resolvers: []string{dnsAddr}, TrustAnchorFile: anchors})
	u := startClientAuthUpstream(t, port, upLeaf, v, ClientName{})

	send := func(t *testing.T, l *pkikit.Leaf) (int, string, error) {
		t.Helper()
		tr := &Transport{DANE: &Options{Resolvers: []string{dnsAddr}, TrustAnchorFile: anchors}}
		tr.TLS = &reverseproxy.TLSConfig{ServerName: upName}
		if l != nil {
			tr.TLS.ClientCertificateFile, tr.TLS.ClientCertificateKeyFile = writeLeaf(t, l)
		}
		tr = provisioned(t, tr)
		t.Cleanup(func() { _ = tr.Cleanup() })
		di := reverseproxy.DialInfo{Network: "tcp", Address: u.addr, Host: "127.0.0.1", Port: strconv.Itoa(u.port)}
		ctx := context.WithValue(context.Background(), caddy.CtxKey("reverse_proxy.dial_info"), di)
		ctx = context.WithValue(ctx, caddy.ReplacerCtxKey, caddy.NewReplacer())
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+u.addr+"/", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), nil
	}

	t.Run("draft-8.1/client certificate with a TLSA record: 200, name in the placeholder", func(t *testing.T) {
		before, counted := u.reached.Load(), clientCount(t, "verified", "")
		st, body, err := send(t, client)
		if err != nil || st != 200 || body != clientName {
			t.Fatalf("got %d %q %v; want 200 %q", st, body, err, clientName)
		}
		if u.reached.Load() != before+1 {
			t.Fatalf("%d requests reached the handler, want 1", u.reached.Load()-before)
		}
		if n := clientCount(t, "verified", "") - counted; n != 1 {
			t.Errorf("caddy_dane_client_verifications_total{result=verified} rose by %v, want 1", n)
		}
	})
	for _, tc := range []struct {
		name   string
		leaf   *pkikit.Leaf
		reason dane.Reason // counted refusal; "" = none (no certificate: crypto/tls refuses first)
	}{
		{"draft-8.2/no client certificate: handshake refused", nil, ""},
		{"draft-8.2/same name, key not in the TLSA records: handshake refused", impostor, dane.ReasonMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := u.reached.Load()
			var counted float64
			if tc.reason != "" {
				counted = clientCount(t, "refused", string(tc.reason))
			}
			st, _, err := send(t, tc.leaf)
			if err == nil {
				t.Fatalf("got %d: want the handshake refused", st)
			}
			if n := u.reached.Load() - before; n != 0 {
				t.Fatalf("%d requests reached the handler", n)
			}
			if tc.reason != "" {
				if n := clientCount(t, "refused", string(tc.reason)) - counted; n != 1 {
					t.Errorf("caddy_dane_client_verifications_total{result=refused,reason=%q} rose by %v, want 1", tc.reason, n)
				}
			}
		})
	}
}

// clientCount reads caddy_dane_client_verifications_total{result,reason}.
func clientCount(t *testing.T, result, reason string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := registerClientMetrics(reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "caddy_dane_client_verifications_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["result"] == result && labels["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func leafs(l *pkikit.Leaf) []*x509.Certificate { return []*x509.Certificate{l.Cert} }

// TestClientNameHandler: the placeholder comes only from a verdict of a
// DANE verifier for the certificate the connection presented; without
// one, dane_client refuses (403) unless optional.
func TestClientNameHandler(t *testing.T) {
	leaf, err := pkikit.SelfSignedClient("a.clients.example.test")
	if err != nil {
		t.Fatal(err)
	}
	other, err := pkikit.SelfSignedClient("a.clients.example.test")
	if err != nil {
		t.Fatal(err)
	}
	v := &ClientVerifier{}
	set := &dane.TLSASet{Owner: "a.clients.example.test.", Expires: time.Now().Add(time.Minute)}
	verifiedClients.put(v, leaf.Cert, &dane.Verdict{Identity: dane.Identity{Base: "a.clients.example.test."}, Set: set})
	t.Cleanup(func() { verifiedClients.forget(v) })

	for _, tc := range []struct {
		name     string
		cs       *tls.ConnectionState
		optional bool
		status   int
		want     string
	}{
		{"verified certificate: its name", &tls.ConnectionState{PeerCertificates: leafs(leaf)}, false, 200, "a.clients.example.test"},
		{"same SAN, other certificate: no name, 403", &tls.ConnectionState{PeerCertificates: leafs(other)}, false, 403, ""},
		{"mode request, no certificate: 403", &tls.ConnectionState{}, false, 403, ""},
		{"plain HTTP: 403", nil, false, 403, ""},
		{"optional: through with an empty name", &tls.ConnectionState{}, true, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repl := caddy.NewReplacer()
			r, _ := http.NewRequest("GET", "https://x/", nil)
			r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
			r.TLS = tc.cs
			var got string
			reached := false
			err := ClientName{Optional: tc.optional}.ServeHTTP(nil, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
				reached = true
				got, _ = repl.GetString(ClientNamePlaceholder)
				return nil
			}))
			status := 200
			var he caddyhttp.HandlerError
			if err != nil && asHandlerError(err, &he) {
				status = he.StatusCode
			}
			if status != tc.status || got != tc.want || reached != (tc.status == 200) {
				t.Fatalf("status %d, name %q, reached %v; want %d %q", status, got, reached, tc.status, tc.want)
			}
		})
	}
}

// TestClientVerifierCaddyfile: the verifier inside Caddy's client_auth,
// and the dane_client directive, adapt to the documented JSON; options
// that do not apply to clients are refused.
func TestClientVerifierCaddyfile(t *testing.T) {
	out, err := adapt(t, `example.com {
	tls {
		client_auth {
			mode require
			verifier dane {
				allow_names a.example.com
				allow_suffixes clients.example.com
				service smtp-client
				max_lookups 8
				max_lookup_rate 50
				negative_ttl 5s
				resolvers 127.0.0.1:5300
				timeout 2s
			}
		}
	}
	dane_client
	respond "{http.request.tls.client.dane_name}"
}`)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{`"verifier":"dane"`, `"allow_names":["a.example.com"]`, `"allow_suffixes":["clients.example.com"]`,
		`"service":"smtp-client"`, `"max_lookups":8`, `"max_lookup_rate":50`, `"negative_ttl":5000000000`, `"resolvers":["127.0.0.1:5300"]`,
		`"timeout":2000000000`, `"handler":"dane_client"`} {
		if !strings.Contains(s, want) {
			t.Errorf("adapted JSON lacks %s:\n%s", want, s)
		}
	}
	if strings.Index(s, `"handler":"dane_client"`) > strings.Index(s, `"handler":"static_response"`) {
		t.Errorf("dane_client must run before respond:\n%s", s)
	}

	for _, tc := range []struct{ name, block, want string }{
		{"transport-only option", "check_names", "unrecognized dane verifier option"},
		{"PKIX fallback is not for clients", "on_no_tlsa pkix", "unrecognized dane verifier option"},
		{"bad negative ttl", "negative_ttl -1s", "negative_ttl"},
		{"bad lookup rate", "max_lookup_rate NaN", "max_lookup_rate"},
		{"IP literal name", "allow_names 192.0.2.1", "IP address"},
		{"validator option checked by the transport's parser", "dnssec maybe", "dnssec"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adapt(t, "example.com {\n\ttls {\n\t\tclient_auth {\n\t\t\tverifier dane {\n\t\t\t\t"+tc.block+"\n\t\t\t}\n\t\t}\n\t}\n}")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestClientVerifierValidate: an allow-list that admits nobody is refused
// at load, whatever TLSA records exist.
func TestClientVerifierValidate(t *testing.T) {
	v := &ClientVerifier{Resolvers: []string{"127.0.0.1:1"}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := v.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(); err == nil || !strings.Contains(err.Error(), "never admitted") {
		t.Fatalf("Validate: %v; want the empty allow-list refused", err)
	}
	raw, _ := json.Marshal(v)
	if strings.Contains(string(raw), "on_no_tlsa") || strings.Contains(string(raw), "follow_cname") {
		t.Errorf("the verifier's JSON offers transport-only options: %s", raw)
	}
}

// TestClientNameReverifiesExpiredVerdict: a verdict past the lifetime of
// its TLSA result (a long-lived connection, or a resolver answer with TTL
// 0 at the end of its cache lifetime, which made the integration test
// flaky: the handshake verified, the request then got 403) is verified
// again against the TLSA RRset proven now: the name while the record
// still names the key, 403 once it is withdrawn.
func TestClientNameReverifiesExpiredVerdict(t *testing.T) {
	const name = "a.clients.example.test"
	client, err := pkikit.SelfSignedClient(name)
	if err != nil {
		t.Fatal(err)
	}
	other, err := pkikit.SelfSignedClient(name)
	if err != nil {
		t.Fatal(err)
	}
	z, dnsAddr, anchors := signedZone(t, name+". 1 IN TLSA "+client.TLSA311())
	v := provisionVerifier(t, &ClientVerifier{AllowSuffixes: []string{"clients.example.test"},
		Resolvers: []string{dnsAddr}, TrustAnchorFile: anchors})
	if err := v.VerifyClientCertificate([][]byte{client.Cert.Raw}, nil); err != nil {
		t.Fatal(err)
	}
	expire := func() {
		key := sha256.Sum256(client.Cert.Raw)
		verifiedClients.mu.Lock()
		e := verifiedClients.m[key]
		e.expires = time.Now().Add(-time.Second)
		verifiedClients.m[key] = e
		verifiedClients.mu.Unlock()
	}
	serve := func() (int, string) {
		repl := caddy.NewReplacer()
		r, _ := http.NewRequest("GET", "https://x/", nil)
		r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
		r.TLS = &tls.ConnectionState{PeerCertificates: leafs(client)}
		var got string
		err := ClientName{}.ServeHTTP(nil, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
			got, _ = repl.GetString(ClientNamePlaceholder)
			return nil
		}))
		var he caddyhttp.HandlerError
		if err != nil && asHandlerError(err, &he) {
			return he.StatusCode, got
		}
		return 200, got
	}
	expire()
	if st, got := serve(); st != 200 || got != name {
		t.Fatalf("expired verdict, record still published: %d %q, want 200 %q", st, got, name)
	}
	z.Remove(name+".", dns.TypeTLSA)
	z.MustAdd(name + ". 1 IN TLSA " + other.TLSA311())
	if err := z.Sign(time.Now().Add(-time.Hour), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1300 * time.Millisecond) // the cached RRset expires
	expire()
	if st, got := serve(); st != 403 || got != "" {
		t.Fatalf("expired verdict, record withdrawn: %d %q, want 403", st, got)
	}
}
