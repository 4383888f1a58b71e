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
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	dto "github.com/prometheus/client_model/go"

	"github.com/caddy-dane/caddy-dane/internal/pkikit"
	"github.com/caddy-dane/caddy-dane/internal/zonekit"
)

// resumeUpstream is a TLS server whose key can be swapped, recording for
// each request whether the connection carrying it was resumed.
type resumeUpstream struct {
	addr string
	port int
	key  atomic.Pointer[pkikit.Leaf]

	mu      sync.Mutex
	resumed []bool
}

func startResumeUpstream(t *testing.T, maxVersion uint16, key *pkikit.Leaf) *resumeUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &resumeUpstream{addr: ln.Addr().String(), port: ln.Addr().(*net.TCPAddr).Port}
	u.key.Store(key)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u.mu.Lock()
			u.resumed = append(u.resumed, r.TLS.DidResume)
			u.mu.Unlock()
			fmt.Fprintln(w, "ok")
		}),
		TLSConfig: &tls.Config{
			MaxVersion: maxVersion,
			NextProtos: []string{"http/1.1"},
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				c := u.key.Load().TLS()
				return &c, nil
			},
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close() })
	return u
}

// requests returns, per request received so far, whether it was resumed.
func (u *resumeUpstream) requests() []bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]bool(nil), u.resumed...)
}

// resumeLab is a signed zone with a 1-second TLSA TTL that a test can
// re-publish, a transport with keep-alive off (every request a new
// connection) and the upstream.
type resumeLab struct {
	z   *zonekit.Zone
	up  *resumeUpstream
	tr  *Transport
	ttl time.Duration
}

const resumeName = "svc.resume.test"

func newResumeLab(t *testing.T, maxVersion uint16, key *pkikit.Leaf, opts func(*Options)) *resumeLab {
	t.Helper()
	up := startResumeUpstream(t, maxVersion, key)
	z, dnsAddr, anchors := serveZone(t, "resume.test.", tlsaLine(up.port, resumeName, key))
	o := &Options{Resolvers: []string{dnsAddr}, TrustAnchorFile: anchors}
	if opts != nil {
		opts(o)
	}
	off := false
	tr := provisioned(t, &Transport{
		HTTPTransport: reverseproxy.HTTPTransport{Versions: []string{"1.1"}, KeepAlive: &reverseproxy.KeepAlive{Enabled: &off}},
		DANE:          o,
	})
	t.Cleanup(func() { _ = tr.Cleanup() })
	return &resumeLab{z: z, up: up, tr: tr, ttl: time.Second}
}

func tlsaLine(port int, name string, key *pkikit.Leaf) string {
	return fmt.Sprintf("_%d._tcp.%s. 1 IN TLSA %s", port, name, key.TLSA311())
}

// publish replaces the TLSA RRset with records for keys, re-signs the zone
// and waits until the validated RRset cached by the transport has expired.
func (l *resumeLab) publish(t *testing.T, keys ...*pkikit.Leaf) {
	t.Helper()
	owner := fmt.Sprintf("_%d._tcp.%s.", l.up.port, resumeName)
	l.z.Remove(owner, 0x34) // TLSA
	for _, k := range keys {
		l.z.MustAdd(tlsaLine(l.up.port, resumeName, k))
	}
	now := time.Now()
	if err := l.z.Sign(now.Add(-time.Hour), now.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(l.ttl + 300*time.Millisecond)
}

// get sends one request through the transport, as the reverse proxy does.
func (l *resumeLab) get(t *testing.T, host string, repl *caddy.Replacer) error {
	t.Helper()
	di := reverseproxy.DialInfo{Network: "tcp", Address: l.up.addr, Host: host, Port: strconv.Itoa(l.up.port)}
	ctx := context.WithValue(context.Background(), caddy.CtxKey("reverse_proxy.dial_info"), di)
	if repl != nil {
		ctx = context.WithValue(ctx, caddy.ReplacerCtxKey, repl)
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+l.up.addr+"/", nil)
	resp, err := l.tr.RoundTrip(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func handshakes(kind string) float64 {
	initDANEMetrics()
	var m dto.Metric
	if err := daneMetrics.handshakes.WithLabelValues(kind).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func mustKey(t *testing.T, name string) *pkikit.Leaf {
	t.Helper()
	k, err := pkikit.SelfSigned(nil, name)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var tlsVersions = []struct {
	name string
	max  uint16
}{{"TLS1.3", tls.VersionTLS13}, {"TLS1.2", tls.VersionTLS12}}

// TestResumptionRechecksTLSA (issue 14): the second connection resumes
// the first one's session; once the TLSA record of the key is withdrawn
// (and the cached RRset expired), the next resumption is refused by the
// DANE re-check, and so is the full handshake that follows, since the
// upstream still presents the withdrawn key: no request reaches it.
func TestResumptionRechecksTLSA(t *testing.T) {
	for _, v := range tlsVersions {
		t.Run(v.name, func(t *testing.T) {
			key, other := mustKey(t, resumeName), mustKey(t, resumeName)
			l := newResumeLab(t, v.max, key, nil)
			for i := range 2 {
				if err := l.get(t, resumeName, nil); err != nil {
					t.Fatalf("request %d: %v", i+1, err)
				}
			}
			if got := l.up.requests(); len(got) != 2 || got[0] || !got[1] {
				t.Fatalf("resumed per request = %v, want [false true]: the second connection must resume the first one's session", got)
			}

			l.publish(t, other) // the upstream's key is withdrawn
			refusedBefore := handshakes(handshakeResumptionRefused)
			err := l.get(t, resumeName, nil)
			if err == nil || !strings.Contains(err.Error(), "tlsa mismatch") {
				t.Fatalf("after the record was withdrawn: %v, want a tlsa mismatch refusal", err)
			}
			if n := len(l.up.requests()); n != 2 {
				t.Errorf("the upstream received %d requests, want 2: a request went through after its key was withdrawn", n)
			}
			if d := handshakes(handshakeResumptionRefused) - refusedBefore; d != 1 {
				t.Errorf("%v resumptions refused by the DANE re-check, want 1", d)
			}
		})
	}
}

// TestResumptionAcrossKeyRollover: the upstream moves to a new key and the
// TLSA RRset names only the new key. The session made with the old key is
// refused by the re-check, forgotten, and a full handshake with the new
// key follows on the same dial: no request fails, and the next connection
// resumes the new session.
func TestResumptionAcrossKeyRollover(t *testing.T) {
	for _, v := range tlsVersions {
		t.Run(v.name, func(t *testing.T) {
			oldKey, newKey := mustKey(t, resumeName), mustKey(t, resumeName)
			l := newResumeLab(t, v.max, oldKey, nil)
			for i := range 2 {
				if err := l.get(t, resumeName, nil); err != nil {
					t.Fatalf("request %d: %v", i+1, err)
				}
			}
			l.up.key.Store(newKey)
			l.publish(t, newKey)
			refusedBefore := handshakes(handshakeResumptionRefused)
			for i := range 2 {
				if err := l.get(t, resumeName, nil); err != nil {
					t.Fatalf("request %d after the rollover: %v", i+1, err)
				}
			}
			if got := l.up.requests(); fmt.Sprint(got) != "[false true false true]" {
				t.Errorf("resumed per request = %v, want [false true false true]", got)
			}
			if d := handshakes(handshakeResumptionRefused) - refusedBefore; d != 1 {
				t.Errorf("%v resumptions refused, want 1 (the old key's session)", d)
			}
		})
	}
}

// TestResumptionBoundToIdentity: two TLSA base domains behind one address
// and one SNI, both naming the upstream's key. crypto/tls would key both
// sessions by the SNI alone; the transport keeps them apart, so the first
// connection of tenant B is a full handshake verified against B's RRset,
// never a resumption of A's session.
func TestResumptionBoundToIdentity(t *testing.T) {
	const a, b = "a.resume.test", "b.resume.test"
	key := mustKey(t, "shared.resume.test")
	up := startResumeUpstream(t, tls.VersionTLS13, key)
	_, dnsAddr, anchors := serveZone(t, "resume.test.", tlsaLine(up.port, a, key), tlsaLine(up.port, b, key))
	off := false
	tr := provisioned(t, &Transport{
		HTTPTransport: reverseproxy.HTTPTransport{
			Versions:  []string{"1.1"},
			KeepAlive: &reverseproxy.KeepAlive{Enabled: &off},
			TLS:       &reverseproxy.TLSConfig{ServerName: "shared.resume.test"},
		},
		DANE: &Options{Resolvers: []string{dnsAddr}, TrustAnchorFile: anchors, Name: "{tenant}"},
	})
	t.Cleanup(func() { _ = tr.Cleanup() })
	l := &resumeLab{up: up, tr: tr}
	for _, tenant := range []string{a, a, b, b} {
		repl := caddy.NewReplacer()
		repl.Set("tenant", tenant)
		if err := l.get(t, "127.0.0.1", repl); err != nil {
			t.Fatalf("tenant %s: %v", tenant, err)
		}
	}
	if got := up.requests(); fmt.Sprint(got) != "[false true false true]" {
		t.Errorf("resumed per request (A, A, B, B) = %v, want [false true false true]: B's first connection resumed A's session", got)
	}
}

// TestResumptionOff: with session_resumption off every connection is a
// full handshake.
func TestResumptionOff(t *testing.T) {
	key := mustKey(t, resumeName)
	l := newResumeLab(t, tls.VersionTLS13, key, func(o *Options) { o.DisableSessionResumption = true })
	for i := range 3 {
		if err := l.get(t, resumeName, nil); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
	}
	if got := l.up.requests(); fmt.Sprint(got) != "[false false false]" {
		t.Errorf("resumed per request = %v, want no resumption", got)
	}
}

// TestCaddyfileSessionResumption: `session_resumption off` adapts to the
// documented JSON field; on is the default and adds nothing.
func TestCaddyfileSessionResumption(t *testing.T) {
	for _, tc := range []struct{ arg, want, wantErr string }{
		{"off", `"disable_session_resumption":true`, ""},
		{"on", "", ""},
		{"maybe", "", `session_resumption "maybe": want on or off`},
		{"", "", "wrong argument count"},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			out, err := adapt(t, ":8080 {\n reverse_proxy https://a.example:443 {\n  transport dane {\n   dane {\n    session_resumption "+tc.arg+"\n   }\n  }\n }\n}")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := string(out)
			if tc.want != "" && !strings.Contains(got, tc.want) || tc.want == "" && strings.Contains(got, "session_resumption") {
				t.Errorf("adapted config %s, want %q", got, tc.want)
			}
		})
	}
}
