package integration

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/caddy-dane/caddy-dane/internal/labconf"
	"github.com/caddy-dane/caddy-dane/internal/pkikit"
)

// Mutual DANE (issue 12, draft-ietf-dance-client-auth): client identities
// published in the lab zones, an upstream Caddy that verifies clients with
// the dane verifier, and a backend that counts what gets through.
//
//	front.clients.example.test    TLSA 3 1 1 of its key           → verified
//	wrong.clients.example.test    TLSA names a key never presented → tlsa mismatch
//	notlsa.clients.example.test   no TLSA RRset                     → no tlsa
//	front.outside.example.test    TLSA of its key, outside the allow-list → name not allowed
//	client.insecure.test          TLSA in the unsigned zone          → insecure
//	client.bogus.test             TLSA changed after signing         → bogus
//
// The upstream Caddy serves two names on one port: upstream.example.test
// (the lab resolver) and nodns.example.test (a resolver that is down);
// both have TLSA records for the upstream's own key, so that the front's
// `transport dane` authenticates it.
const (
	clientGood     = "front.clients.example.test"
	clientWrong    = "wrong.clients.example.test"
	clientNoTLSA   = "notlsa.clients.example.test"
	clientOutside  = "front.outside.example.test"
	clientInsecure = "client.insecure.test"
	clientBogus    = "client.bogus.test"

	clientUpstream      = "upstream.example.test"
	clientUpstreamNoDNS = "nodns.example.test"
)

// clientNames are the identities, in table order.
var clientNames = []string{clientGood, clientWrong, clientNoTLSA, clientOutside, clientInsecure, clientBogus}

// ClientLab is what the mutual DANE scenarios share.
type ClientLab struct {
	// Cert and Key are the PEM files of each client identity.
	Cert, Key map[string]string
	// UpstreamPort is the port of the client-verifying Caddy (its TLSA
	// owner names need it before it runs); UpstreamCert/Key its key pair.
	UpstreamPort              int
	UpstreamCert, UpstreamKey string
	// Backend counts the requests the upstream Caddy passes on, with the
	// X-Dane-Client header it set from the placeholder.
	Backend *ClientBackend
}

// ClientBackend is the handler behind the verifying Caddy.
type ClientBackend struct {
	Port int
	srv  *http.Server
	mu   sync.Mutex
	seen []string // X-Dane-Client of each request
}

// Seen returns the X-Dane-Client values of the requests so far.
func (b *ClientBackend) Seen() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.seen...)
}

// setupClients makes the client and upstream keys and the backend, and
// adds their records to the lab zones (children, by zone name).
func (e *Env) setupClients(children []zoneSpec) error {
	cl := &ClientLab{Cert: map[string]string{}, Key: map[string]string{}}
	write := func(base string, l *pkikit.Leaf) (string, string, error) {
		c, k := filepath.Join(e.Dir, base+".crt"), filepath.Join(e.Dir, base+".key")
		if err := pkikit.WritePEM(c, l.Cert); err != nil {
			return "", "", err
		}
		kp, err := pkikit.KeyPEM(l.Key)
		if err != nil {
			return "", "", err
		}
		return c, k, os.WriteFile(k, kp, 0o600)
	}
	records := map[string][]string{}
	add := func(zone, line string) { records[zone] = append(records[zone], line) }
	tamper := map[string]string{}
	for _, n := range clientNames {
		l, err := pkikit.SelfSignedClient(n)
		if err != nil {
			return err
		}
		if cl.Cert[n], cl.Key[n], err = write("client-"+n, l); err != nil {
			return err
		}
		data := l.TLSA311()
		switch n {
		case clientNoTLSA:
			continue
		case clientWrong:
			other, err := pkikit.SelfSignedClient(n)
			if err != nil {
				return err
			}
			data = other.TLSA311()
		case clientBogus:
			// After signing, the digest is changed: a server that does
			// not validate would still see "a" record, not this key's.
			tamper[pkikit.SPKISHA256(l.Cert)] = pkikit.SPKISHA256(l.Cert)[32:] + pkikit.SPKISHA256(l.Cert)[:32]
		}
		zone := zoneSecure
		switch n {
		case clientInsecure:
			zone = zoneInsecure
		case clientBogus:
			zone = zoneBogus
		}
		add(zone, fmt.Sprintf("%s. IN TLSA %s", n, data))
	}

	port, err := labconf.FreePort()
	if err != nil {
		return err
	}
	up, err := pkikit.SelfSigned(nil, clientUpstream, clientUpstreamNoDNS)
	if err != nil {
		return err
	}
	cl.UpstreamPort = port
	if cl.UpstreamCert, cl.UpstreamKey, err = write("client-upstream", up); err != nil {
		return err
	}
	for _, h := range []string{clientUpstream, clientUpstreamNoDNS} {
		add(zoneSecure, fmt.Sprintf("%s IN TLSA %s", tlsaRR{Host: h, Port: port}.Owner(), up.TLSA311()))
	}

	for i := range children {
		z := &children[i]
		z.Extra = append(z.Extra, records[z.Name]...)
		if z.Name == zoneBogus {
			if z.Tamper == nil {
				z.Tamper = map[string]string{}
			}
			for k, v := range tamper {
				z.Tamper[k] = v
			}
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	b := &ClientBackend{Port: ln.Addr().(*net.TCPAddr).Port}
	b.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b.mu.Lock()
			b.seen = append(b.seen, r.Header.Get("X-Dane-Client"))
			b.mu.Unlock()
			fmt.Fprintf(w, "client=%s\n", r.Header.Get("X-Dane-Client"))
		})}
	go b.srv.Serve(ln)
	cl.Backend = b
	e.Clients = cl
	return nil
}

// Close stops the backend.
func (cl *ClientLab) Close() {
	if cl != nil && cl.Backend != nil {
		cl.Backend.srv.Close()
	}
}

// clientUpstreamCaddyfile is the verifying Caddy: client_auth with the
// dane verifier (mode require), the dane_client handler, and the backend
// told the verified name. deadResolver is the resolver of nodns.example.test.
func (e *Env) clientUpstreamCaddyfile(deadResolver string) string {
	cl := e.Clients
	site := func(name, resolver string) string {
		return fmt.Sprintf(`https://%s:%d {
	tls %s %s {
		client_auth {
			mode require
			verifier dane {
				allow_suffixes clients.example.test insecure.test bogus.test
				resolvers %s
				trust_anchor_file %s
				timeout 2s
			}
		}
	}
	dane_client
	reverse_proxy 127.0.0.1:%d {
		header_up X-Dane-Client {http.request.tls.client.dane_name}
	}
}
`, name, cl.UpstreamPort, cl.UpstreamCert, cl.UpstreamKey, resolver, e.Lab.AnchorsFile, cl.Backend.Port)
	}
	return fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
}

%s
%s`, site(clientUpstream, e.Lab.Resolver()), site(clientUpstreamNoDNS, deadResolver))
}

// clientFrontCaddyfile is the front proxy: one site per client identity
// (ports[i] for clientNames[i], and the last port for the good client
// towards nodns.example.test), each a `transport dane` that presents the
// identity's certificate with tls_client_auth.
func (e *Env) clientFrontCaddyfile(ports []int) string {
	cl := e.Clients
	site := func(port int, upstream, client string) string {
		return fmt.Sprintf(`http://:%d {
	reverse_proxy https://127.0.0.1:%d {
		# Caddy enforces SNI = Host when client auth is configured.
		header_up Host %s
		transport dane {
			dane {
				resolvers %s
				trust_anchor_file %s
				timeout 2s
			}
			tls_server_name %s
			tls_client_auth %s %s
		}
	}
}
`, port, cl.UpstreamPort, upstream, e.Lab.Resolver(), e.Lab.AnchorsFile, upstream, cl.Cert[client], cl.Key[client])
	}
	out := "{\n\tadmin off\n\tauto_https off\n\tpersist_config off\n}\n\n"
	for i, n := range clientNames {
		out += site(ports[i], clientUpstream, n)
	}
	return out + site(ports[len(clientNames)], clientUpstreamNoDNS, clientGood)
}
