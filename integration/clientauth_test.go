package integration

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/caddy-dane/caddy-dane/internal/labconf"
)

// startClientAuthCaddys runs the verifying upstream Caddy and the front
// Caddy (one site per client identity); it returns them and the front
// site ports, in clientNames order, then the nodns site.
func startClientAuthCaddys(t *testing.T, e *Env) (up, front *Caddy, ports []int) {
	t.Helper()
	dead, err := labconf.FreePort() // nothing listens there: the resolver is down
	if err != nil {
		t.Fatal(err)
	}
	path, err := e.writeCaddyfile("clientauth-upstream", e.clientUpstreamCaddyfile("127.0.0.1:"+itoa(dead)))
	if err != nil {
		t.Fatal(err)
	}
	up, err = e.startCaddyConfig(path, e.Clients.UpstreamPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		up.Stop()
		if t.Failed() {
			t.Logf("--- upstream caddy log (tail)\n%s", up.Tail(30))
		}
	})
	for range len(clientNames) + 1 {
		p, err := labconf.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, p)
	}
	path, err = e.writeCaddyfile("clientauth-front", e.clientFrontCaddyfile(ports))
	if err != nil {
		t.Fatal(err)
	}
	front, err = e.startCaddyConfig(path, ports[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		front.Stop()
		if t.Failed() {
			t.Logf("--- front caddy log (tail)\n%s", front.Tail(30))
		}
	})
	return up, front, ports
}

// TestMutualDANE (issue 12): a front Caddy whose `transport dane` presents
// a client certificate (tls_client_auth) to an upstream Caddy that verifies
// clients with the dane verifier. Only the client whose certificate
// matches the DNSSEC-secure TLSA records of an allowed name gets through,
// and the upstream's routes see that name; every other row is a refused
// handshake (502 at the front), the refusal logged with its reason, and
// no request reaches the backend.
func TestMutualDANE(t *testing.T) {
	e := needCaddy(t)
	up, _, ports := startClientAuthCaddys(t, e)
	client := &http.Client{Timeout: 15 * time.Second}

	for i, tc := range []struct {
		name   string
		client string
		status int
		reason []string // reasons accepted in the upstream's refusal log
	}{
		{"draft-8.2/verified client: 200, its name in the placeholder", clientGood, 200, nil},
		{"draft-8.2/TLSA names another key: refused", clientWrong, 502, []string{"tlsa mismatch"}},
		{"draft-8.2/no TLSA RRset: refused", clientNoTLSA, 502, []string{"no tlsa"}},
		{"draft-8.2/name outside the allow-list, TLSA present: refused before DNS", clientOutside, 502, []string{"name not allowed"}},
		{"draft-8.2/unsigned zone: insecure, refused", clientInsecure, 502, []string{"insecure"}},
		{"draft-8.2,RFC4035-5.5/TLSA changed after signing: bogus, refused", clientBogus, 502, []string{"bogus"}},
		{"draft-8.2/the verifier's resolver is down: refused", "", 502, []string{"dns error", "dns timeout"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.Clients.Backend.Seen())
			refusalsBefore := len(up.Entries("client refused by DANE"))
			resp, err := client.Get("http://127.0.0.1:" + itoa(ports[i]) + "/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tc.status)
			}
			seen := e.Clients.Backend.Seen()[before:]
			if tc.status == 200 {
				if len(seen) != 1 || seen[0] != clientGood || !strings.Contains(string(body), "client="+clientGood) {
					t.Fatalf("backend saw %q, body %q; want one request from %s", seen, body, clientGood)
				}
				return
			}
			if len(seen) != 0 {
				t.Fatalf("%d requests reached the backend (%q): the handshake must be refused", len(seen), seen)
			}
			// The refusal is logged by the verifier with its reason.
			var got []string
			deadline := time.Now().Add(3 * time.Second)
			for {
				for _, r := range up.Entries("client refused by DANE")[refusalsBefore:] {
					got = append(got, r.Str("reason"))
					for _, want := range tc.reason {
						if r.Str("reason") == want {
							return
						}
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("refusal reasons logged %q, want one of %q", got, tc.reason)
				}
				got = nil
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// TestMutualDANEOpenSSL cross-checks the verifier with an independent TLS
// client: openssl s_client presenting the good client's certificate gets
// the backend's answer with its name; presenting the wrong client's
// certificate it gets nothing, and nothing reaches the backend.
func TestMutualDANEOpenSSL(t *testing.T) {
	e := needCaddy(t)
	startClientAuthCaddys(t, e)
	for _, tc := range []struct {
		name   string
		client string
		ok     bool
	}{
		{"draft-8.2/openssl with the verified client's key", clientGood, true},
		{"draft-8.2/openssl with a key the TLSA records do not name", clientWrong, false},
		{"draft-8.2/openssl with a name outside the allow-list", clientOutside, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.Clients.Backend.Seen())
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "openssl", "s_client", "-quiet", "-connect", "127.0.0.1:"+itoa(e.Clients.UpstreamPort),
				"-servername", clientUpstream, "-cert", e.Clients.Cert[tc.client], "-key", e.Clients.Key[tc.client])
			cmd.Stdin = strings.NewReader("GET / HTTP/1.1\r\nHost: " + clientUpstream + "\r\nConnection: close\r\n\r\n")
			out, _ := cmd.CombinedOutput()
			got := strings.Contains(string(out), "HTTP/1.1 200") && strings.Contains(string(out), "client="+tc.client)
			if got != tc.ok {
				t.Fatalf("openssl got a 200 for %s: %v, want %v\n%s", tc.client, got, tc.ok, out)
			}
			if n := len(e.Clients.Backend.Seen()) - before; n != map[bool]int{true: 1, false: 0}[tc.ok] {
				t.Fatalf("%d requests reached the backend", n)
			}
		})
	}
}
