package integration

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-dane/caddy-dane/internal/labconf"
)

// tenantSite is a Caddy proxying every site name to the one tenant
// address, its TLSA base domain taken from the request's host by the
// given transport line ("dane { name }" or tls_server_name), as a
// multi-tenant front proxy is configured.
func (e *Env) tenantSite(t *testing.T, how string, h2 bool) *Caddy {
	t.Helper()
	port, err := labconf.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	name := ""
	transport := ""
	switch how {
	case "name":
		name = "\t\t\t\tname {http.request.host}\n"
	case "tls_server_name":
		transport = "\t\t\ttls_server_name {http.request.host}\n"
	}
	if !h2 {
		transport += "\t\t\tversions 1.1\n"
	}
	cf := fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
}

http://:%d {
	reverse_proxy https://%s {
		header_up X-Tenant {http.request.host}
		transport dane {
			dane {
				resolvers %s
				trust_anchor_file %s
				timeout 2s
%s			}
%s		}
	}
}
`, port, e.Tenants.Addr(), e.Lab.Resolver(), e.Lab.AnchorsFile, name, transport)
	path, err := e.writeCaddyfile(strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()), cf)
	if err != nil {
		t.Fatal(err)
	}
	e.Tenants.Reset()
	c, err := e.startCaddyConfig(path, port)
	if err != nil {
		t.Fatalf("%v\n%s", err, cf)
	}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("Caddyfile:\n%s\n--- caddy log (tail)\n%s", cf, c.Tail(25))
		}
	})
	return c
}

// asTenant sends one GET for tenant (its Host header) through Caddy.
func asTenant(client *http.Client, c *Caddy, tenant string) (int, error) {
	req, err := http.NewRequest("GET", c.URL()+"/", nil)
	if err != nil {
		return 0, err
	}
	req.Host = tenant
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// checkTenantBinding fails t if a request of tenant B reached the
// upstream, or a request arrived on a connection made for another name.
func checkTenantBinding(t *testing.T, seen []TenantRequest) {
	t.Helper()
	wrong, b := 0, 0
	for _, r := range seen {
		if r.Tenant == tenantB {
			b++
		}
		if r.SNI != r.Tenant {
			wrong++
		}
	}
	if b > 0 {
		t.Errorf("%d requests of %s reached the upstream: its TLSA RRset names a key the upstream never presents", b, tenantB)
	}
	if wrong > 0 {
		t.Errorf("%d of %d requests arrived on a connection made for another name", wrong, len(seen))
	}
}

// TestTenantsBehindOneAddress (issue 10 item 1): names behind one IP, the
// TLSA base domain from the request's host. A connection verified for one
// tenant never carries another's request; a tenant whose key is not the
// one presented is refused even after another tenant's request opened a
// connection to the same address.
func TestTenantsBehindOneAddress(t *testing.T) {
	e := needCaddy(t)
	for _, h2 := range []bool{false, true} {
		for _, how := range []string{"name", "tls_server_name"} {
			t.Run(fmt.Sprintf("%s/h2=%v", how, h2), func(t *testing.T) {
				c := e.tenantSite(t, how, h2)
				client := &http.Client{Timeout: 10 * time.Second}
				for _, step := range []struct {
					tenant string
					want   int
				}{{tenantA, 200}, {tenantB, 502}, {tenantC, 200}, {tenantA, 200}, {tenantB, 502}, {tenantC, 200}} {
					st, err := asTenant(client, c, step.tenant)
					if err != nil || st != step.want {
						t.Fatalf("%s: %d %v, want %d", step.tenant, st, err, step.want)
					}
				}
				checkTenantBinding(t, e.Tenants.Requests())
				var mismatch int
				for _, r := range c.Entries("dane refused upstream") {
					if r.Str("reason") == "tlsa mismatch" && strings.Contains(r.Str("tlsa_owner"), tenantB) {
						mismatch++
					}
				}
				if mismatch == 0 {
					t.Errorf("no tlsa mismatch refusal logged for %s", tenantB)
				}
			})
		}
	}
}

// TestFaultsTenants is the fault-suite row of issue 10 item 1 under load:
// 32 keep-alive clients, three tenants behind one address for 3 s; tenant
// B (whose published key is never presented) must get 0 requests to the
// upstream, and A and C none refused.
func TestFaultsTenants(t *testing.T) {
	e := needCaddy(t)
	c := e.tenantSite(t, "name", true)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	type count struct{ ok, refused, other int }
	var mu sync.Mutex
	counts := map[string]*count{tenantA: {}, tenantB: {}, tenantC: {}}
	deadline := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; time.Now().Before(deadline); i++ {
				tenant := []string{tenantA, tenantB, tenantC}[i%3]
				st, err := asTenant(client, c, tenant)
				mu.Lock()
				switch {
				case err == nil && st == 200:
					counts[tenant].ok++
				case err == nil && st == 502:
					counts[tenant].refused++
				default:
					counts[tenant].other++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	seen := e.Tenants.Requests()
	t.Logf("| two tenants + one refused behind one address, 32 clients, 3 s | A %d ok %d refused | B %d ok %d refused | C %d ok %d refused | reached the upstream: %d, of them B %d |",
		counts[tenantA].ok, counts[tenantA].refused, counts[tenantB].ok, counts[tenantB].refused,
		counts[tenantC].ok, counts[tenantC].refused, len(seen), countTenant(seen, tenantB))
	checkTenantBinding(t, seen)
	for _, tn := range []string{tenantA, tenantC} {
		if counts[tn].refused+counts[tn].other > 0 || counts[tn].ok == 0 {
			t.Errorf("%s: %+v, want every request 200", tn, *counts[tn])
		}
	}
	if counts[tenantB].ok+counts[tenantB].other > 0 || counts[tenantB].refused == 0 {
		t.Errorf("%s: %+v, want every request refused (502)", tenantB, *counts[tenantB])
	}
}

func countTenant(seen []TenantRequest, tenant string) int {
	n := 0
	for _, r := range seen {
		if r.Tenant == tenant {
			n++
		}
	}
	return n
}
