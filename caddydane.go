// Package caddydane is the import path xcaddy uses for this plugin:
// `xcaddy build --with github.com/caddy-dane/caddy-dane` imports this
// package, which registers the Caddy modules of caddy-dane.
package caddydane

import (
	// The transport http.reverse_proxy.transport.dane and its engine.
	_ "github.com/caddy-dane/caddy-dane/caddymodule"
)
