package caddymodule

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// TestBindMemo: a remembered binding is the one bind computes afresh, for
// every input it depends on, and the memo stays bounded however many
// names placeholders produce.
func TestBindMemo(t *testing.T) {
	tr := provisioned(t, &Transport{DANE: &Options{Resolvers: []string{"127.0.0.1:53"}, Name: "{tenant}"}})
	bindAs := func(tenant, addr, urlHost string) *dialBinding {
		t.Helper()
		repl := caddy.NewReplacer()
		repl.Set("tenant", tenant)
		host, port, _ := net.SplitHostPort(addr)
		di := reverseproxy.DialInfo{Network: "tcp", Address: addr, Host: host, Port: port}
		ctx := context.WithValue(context.Background(), caddy.CtxKey("reverse_proxy.dial_info"), di)
		ctx = context.WithValue(ctx, caddy.ReplacerCtxKey, repl)
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+urlHost+"/", nil)
		out, err := tr.bind(req)
		if err != nil {
			t.Fatal(err)
		}
		return out.Context().Value(bindingKey{}).(*dialBinding)
	}
	first := map[string]*dialBinding{}
	for _, in := range [][3]string{
		{"a.t.test", "127.0.0.1:8443", "127.0.0.1:8443"},
		{"b.t.test", "127.0.0.1:8443", "127.0.0.1:8443"}, // another name, same address
		{"a.t.test", "127.0.0.2:8443", "127.0.0.2:8443"}, // same name, another address
		{"a.t.test", "127.0.0.1:8443", "10.9.9.9:1234"},  // another URL host (PROXY protocol)
	} {
		b := bindAs(in[0], in[1], in[2])
		for k, other := range first {
			if other.pool == b.pool {
				t.Errorf("%v shares the pool of %s", in, k)
			}
		}
		first[in[0]+" "+in[1]+" "+in[2]] = b
		memo := tr.bindings
		tr.bindings = new(bindMemo) // afresh
		again := bindAs(in[0], in[1], in[2])
		tr.bindings = memo
		if again.pool != b.pool || again.target != b.target {
			t.Errorf("%v: remembered binding %s/%+v, computed afresh %s/%+v", in, b.pool, b.target, again.pool, again.target)
		}
	}
	for i := range bindMemoSize + 10 {
		bindAs("n"+strconv.Itoa(i)+".t.test", "127.0.0.1:8443", "127.0.0.1:8443")
	}
	if n := tr.bindings.cur.Load().n.Load(); n > bindMemoSize {
		t.Errorf("memo holds %d bindings, bound %d", n, bindMemoSize)
	}
}
