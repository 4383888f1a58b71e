package integration

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDaneSRV (issue 10 item 2, RFC 7673): `dynamic dane_srv` against the
// real lab. The SRV RRsets (lab.go, setup.go):
//
//	_https._tcp.srv.example.test.      10 → srv-a, 20 → srv-b           signed
//	_https._tcp.srvfail.example.test.  10 → srv-m (wrong key), 20 → srv-b signed
//	_https._tcp.svc.insecure.test.     10 → srv-a                        unsigned zone
//	_https._tcp.svc.bogus.test.        10 → srv-a, forged to srv-m after signing
func TestDaneSRV(t *testing.T) {
	e := needCaddy(t)
	srvSite := func(t *testing.T, owner string, extra ...string) *Caddy {
		s := e.site(t)
		s.Proxy = append([]string{"dynamic dane_srv " + owner, "lb_policy first", "lb_try_duration 3s", "fail_duration 30s"}, extra...)
		return startCaddy(t, e, s)
	}
	a, b, m := e.Up["srv-a"], e.Up["srv-b"], e.Up["srv-m"]

	t.Run("RFC2782 priorities: every request to the priority-10 target", func(t *testing.T) {
		c := srvSite(t, "_https._tcp.srv.example.test")
		for range 10 {
			if st, body, _ := request(t, "GET", c.URL()+"/", ""); st != 200 || !strings.Contains(body, "upstream=srv-a") {
				t.Fatalf("%d %q, want 200 from srv-a", st, body)
			}
		}
		if n := b.Requests.Load(); n != 0 {
			t.Errorf("the priority-20 target got %d requests", n)
		}
	})

	t.Run("RFC7673-3.3 the priority-10 target fails its TLSA check: failover, 0 requests to it", func(t *testing.T) {
		c := srvSite(t, "_https._tcp.srvfail.example.test")
		for range 5 {
			if st, body, _ := request(t, "GET", c.URL()+"/", ""); st != 200 || !strings.Contains(body, "upstream=srv-b") {
				t.Fatalf("%d %q, want 200 from srv-b", st, body)
			}
		}
		if n := m.Requests.Load(); n != 0 {
			t.Errorf("%d requests reached srv-m, whose key its TLSA record does not hold", n)
		}
		refused := false
		for _, r := range c.Entries("dane refused upstream") {
			refused = refused || r.Str("reason") == "tlsa mismatch" && strings.Contains(r.Str("tlsa_owner"), m.Host)
		}
		if !refused {
			t.Errorf("no tlsa mismatch refusal logged for %s", m.Host)
		}
	})

	for _, tc := range []struct {
		name, owner, reason string
	}{
		{"RFC7673-3.1 unsigned SRV RRset: no DANE, refused", "_https._tcp.svc.insecure.test", "insecure"},
		{"RFC7673-3.1 forged SRV answer (bogus): refused", "_https._tcp.svc.bogus.test", "bogus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := srvSite(t, tc.owner)
			st, body, _ := request(t, "GET", c.URL()+"/", "")
			if st == 200 {
				t.Fatalf("200 %q: want a refusal", body)
			}
			for _, u := range []*Upstream{a, b, m} {
				if n := u.Requests.Load(); n != 0 {
					t.Errorf("%s got %d requests", u.Name, n)
				}
			}
			var reasons []string
			for _, r := range c.Entries("dane refused upstream") {
				reasons = append(reasons, r.Str("reason"))
				if r.Str("reason") == tc.reason {
					return
				}
			}
			t.Errorf("refusal reasons %q, want %q", reasons, tc.reason)
		})
	}
}

// TestStockSRVRefusedAtLoad (issue 10 item 2b): behind the standard
// `dynamic srv`, whose answers nobody validates, `caddy validate` fails.
func TestStockSRVRefusedAtLoad(t *testing.T) {
	e := needCaddy(t)
	for _, dyn := range []string{
		"dynamic srv _https._tcp.srv.example.test",
		"dynamic multi {\n\t\t\tsrv _https._tcp.srv.example.test\n\t\t}",
	} {
		cf := "{\n\tadmin off\n}\n:0 {\n\treverse_proxy {\n\t\t" + dyn + "\n\t\ttransport dane {\n\t\t\tdane {\n\t\t\t\tresolvers " + e.Lab.Resolver() +
			"\n\t\t\t\ttrust_anchor_file " + e.Lab.AnchorsFile + "\n\t\t\t}\n\t\t}\n\t}\n}\n"
		path, err := e.writeCaddyfile("stock-srv", cf)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(e.CaddyBin, "validate", "--config", path, "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), e.caddyEnv()...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "use dynamic dane_srv") {
			t.Errorf("%s: caddy validate err=%v, want the dynamic srv refusal:\n%s", dyn, err, out)
		}
	}
}
