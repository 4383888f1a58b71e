package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// daneModule is the module ID of the transport under test.
const daneModule = "http.reverse_proxy.transport.dane"

var moduleCheck struct {
	sync.Once
	err error
}

// checkDaneModule reports whether the built Caddy has the dane transport.
func (e *Env) checkDaneModule() error {
	moduleCheck.Do(func() {
		out, err := run(e.Dir, time.Minute, e.CaddyBin, "list-modules")
		switch {
		case err != nil:
			moduleCheck.err = err
		case !strings.Contains(out, daneModule):
			moduleCheck.err = fmt.Errorf("%s is not in `caddy list-modules` (is caddymodule imported by cmd/caddy?)", daneModule)
		}
	})
	return moduleCheck.err
}

// Dane is the `dane { }` block of the transport.
type Dane struct {
	Resolvers   string // "127.0.0.1:5300"
	TrustAnchor string // path
	Timeout     string // "2s"
	DNSSEC      string // "validate" or "trust_resolver"; "" leaves the option out
	OnNoTLSA    string // "refuse" or "pkix"; "" leaves the option out
}

// Site is one Caddyfile site: http://127.0.0.1:<Port> proxying to
// Upstreams through transport dane.
type Site struct {
	Port      int
	Upstreams []string // "https://host:port"
	Dane      Dane
	// DialResolver is Unbound, for Caddy's own resolution of the upstream
	// names (the `resolvers` option of transport http, inherited).
	DialResolver string
	Proxy        []string // extra reverse_proxy subdirectives
	Transport    []string // extra transport subdirectives
}

// Caddyfile renders the site with the global options the suite needs.
func (s Site) Caddyfile() string {
	var b strings.Builder
	b.WriteString("{\n\tadmin off\n\tauto_https off\n\tpersist_config off\n}\n\n")
	fmt.Fprintf(&b, "http://127.0.0.1:%d {\n", s.Port)
	fmt.Fprintf(&b, "\treverse_proxy %s {\n", strings.Join(s.Upstreams, " "))
	for _, l := range s.Proxy {
		fmt.Fprintf(&b, "\t\t%s\n", l)
	}
	b.WriteString("\t\ttransport dane {\n\t\t\tdane {\n")
	fmt.Fprintf(&b, "\t\t\t\tresolvers %s\n", s.Dane.Resolvers)
	if s.Dane.TrustAnchor != "" {
		fmt.Fprintf(&b, "\t\t\t\ttrust_anchor_file %s\n", s.Dane.TrustAnchor)
	}
	if s.Dane.Timeout != "" {
		fmt.Fprintf(&b, "\t\t\t\ttimeout %s\n", s.Dane.Timeout)
	}
	if s.Dane.DNSSEC != "" {
		fmt.Fprintf(&b, "\t\t\t\tdnssec %s\n", s.Dane.DNSSEC)
	}
	if s.Dane.OnNoTLSA != "" {
		fmt.Fprintf(&b, "\t\t\t\ton_no_tlsa %s\n", s.Dane.OnNoTLSA)
	}
	b.WriteString("\t\t\t}\n")
	if s.DialResolver != "" {
		fmt.Fprintf(&b, "\t\t\tresolvers %s\n", s.DialResolver)
	}
	for _, l := range s.Transport {
		fmt.Fprintf(&b, "\t\t\t%s\n", l)
	}
	b.WriteString("\t\t}\n\t}\n}\n")
	return b.String()
}

// Caddy is a running `caddy run`.
type Caddy struct {
	p      *proc
	Port   int
	Config string // path of the Caddyfile
	Log    string // path of Caddy's stderr (JSON log lines)
}

// URL is the site's base URL.
func (c *Caddy) URL() string { return "http://127.0.0.1:" + strconv.Itoa(c.Port) }

// writeCaddyfile writes a config into the lab directory.
func (e *Env) writeCaddyfile(name, text string) (string, error) {
	path := filepath.Join(e.Dir, name+".Caddyfile")
	return path, os.WriteFile(path, []byte(text), 0o644)
}

// caddyEnv keeps Caddy's state (autosave, storage) inside the lab.
func (e *Env) caddyEnv() []string {
	return []string{"XDG_CONFIG_HOME=" + filepath.Join(e.Dir, "xdg-config"),
		"XDG_DATA_HOME=" + filepath.Join(e.Dir, "xdg-data"), "HOME=" + e.Dir}
}

// StartCaddy runs Caddy with the site and waits until it listens.
func (e *Env) StartCaddy(name string, s Site) (*Caddy, error) {
	cfg, err := e.writeCaddyfile(name, s.Caddyfile())
	if err != nil {
		return nil, err
	}
	return e.startCaddyConfig(cfg, s.Port)
}

// startCaddyConfig runs Caddy with the Caddyfile at cfg and waits until it
// listens on port (startCaddyAt on 127.0.0.1).
func (e *Env) startCaddyConfig(cfg string, port int) (*Caddy, error) {
	return e.startCaddyAt(cfg, fmt.Sprintf("127.0.0.1:%d", port))
}

// Stop ends Caddy.
func (c *Caddy) Stop() { c.p.Stop(5 * time.Second) }

// Tail is the end of Caddy's log.
func (c *Caddy) Tail(n int) string { return c.p.Tail(n) }

// LogEntry is one JSON line of Caddy's log.
type LogEntry map[string]any

// Str returns a string field.
func (l LogEntry) Str(k string) string { s, _ := l[k].(string); return s }

// Entries returns the log lines whose "msg" is msg.
func (c *Caddy) Entries(msg string) []LogEntry {
	f, err := os.Open(c.Log)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []LogEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var e LogEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Str("msg") == msg {
			out = append(out, e)
		}
	}
	return out
}

// Refusals returns the transport's "dane refused upstream" log entries
// for upstreams whose address contains hostport.
func (c *Caddy) Refusals(hostport string) []LogEntry {
	var out []LogEntry
	for _, e := range c.Entries("dane refused upstream") {
		if strings.Contains(e.Str("upstream"), hostport) {
			out = append(out, e)
		}
	}
	return out
}
