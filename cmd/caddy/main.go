// Command caddy is Caddy with its standard modules plus caddy-dane's
// http.reverse_proxy.transport.dane. It is what xcaddy would build with
// `--with github.com/caddy-dane/caddy-dane`, kept in the repository so that
// tests and the demo can build it with plain `go build`.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-dane/caddy-dane"
)

func main() { caddycmd.Main() }
