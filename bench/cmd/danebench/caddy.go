package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/caddy-dane/caddy-dane/internal/labconf"
)

// Every process the bench starts is registered here and stopped by
// cleanup, on any exit path.
var (
	procsMu sync.Mutex
	procs   = map[*exec.Cmd]chan struct{}{}
)

func startProcess(logPath string, env []string, name string, args ...string) (*exec.Cmd, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	done := make(chan struct{})
	procsMu.Lock()
	procs[cmd] = done
	procsMu.Unlock()
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	return cmd, nil
}

func stopProcess(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	procsMu.Lock()
	done := procs[cmd]
	procsMu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// exited reports whether a started process has ended.
func exited(cmd *exec.Cmd) bool {
	procsMu.Lock()
	done := procs[cmd]
	procsMu.Unlock()
	select {
	case <-done:
		return true
	default:
		return false
	}
}

var cleanupOnce sync.Once

func cleanup() {
	cleanupOnce.Do(func() {
		procsMu.Lock()
		defer procsMu.Unlock()
		cmds := make([]*exec.Cmd, 0, len(procs))
		for c := range procs {
			cmds = append(cmds, c)
		}
		procsMu.Unlock()
		for _, c := range cmds {
			stopProcess(c)
		}
		procsMu.Lock()
	})
}

// side is one Caddy instance under test: a keep-alive listener and a
// `keepalive off` listener, both proxying to the same upstream.
type side struct {
	name      string // "stock-1", "stock-2", "dane", "dane-full"
	dane      bool
	noResume  bool // dane with session resumption off: every handshake a full one
	kaPort    int
	hsPort    int
	h2Port    int // keep-alive off, HTTP/1.1 and HTTP/2 offered
	adminPort int // admin endpoint, with -pprof only
	cmd       *exec.Cmd
	vmHWMKA   int64 // kB, after the keep-alive phase
	logPath   string
}

type env struct {
	dir, caddy, dnsAddr, anchors, sni string
	up                                *upstream
	pki                               *pki
	pprof                             bool // admin endpoint on, for /debug/pprof
	curves                            []string
}

// transport returns the reverse_proxy transport of a side: stock Caddy
// (`transport http` + `tls_trust_pool file root.pem`) or `transport dane`,
// identical otherwise.
func (e *env) transport(s *side, keepalive, h2 bool) map[string]any {
	t := map[string]any{}
	tlsCfg := map[string]any{"server_name": e.sni}
	if len(e.curves) > 0 {
		tlsCfg["curves"] = e.curves
	}
	if s.dane {
		t["protocol"] = "dane"
		d := map[string]any{"resolvers": []string{e.dnsAddr}, "trust_anchor_file": e.anchors}
		if s.noResume {
			d["disable_session_resumption"] = true
		}
		t["dane"] = d
	} else {
		t["protocol"] = "http"
		tlsCfg["ca"] = map[string]any{"provider": "file", "pem_files": []string{e.pki.rootPEM}}
	}
	t["tls"] = tlsCfg
	if !keepalive {
		t["keep_alive"] = map[string]any{"enabled": false}
		// One TLS connection per request: HTTP/1.1 so that no multiplexing
		// hides handshakes; the h2 listener offers both, as Caddy does by
		// default.
		t["versions"] = []string{"1.1"}
		if h2 {
			t["versions"] = []string{"1.1", "2"}
		}
	}
	return t
}

func (e *env) config(s *side) ([]byte, error) {
	server := func(port int, keepalive, h2 bool) map[string]any {
		return map[string]any{
			"listen": []string{fmt.Sprintf("127.0.0.1:%d", port)},
			"routes": []any{map[string]any{"handle": []any{map[string]any{
				"handler":   "reverse_proxy",
				"upstreams": []any{map[string]any{"dial": fmt.Sprintf("127.0.0.1:%d", e.up.port)}},
				"transport": e.transport(s, keepalive, h2),
			}}}},
			"automatic_https": map[string]any{"disable": true},
		}
	}
	admin := map[string]any{"disabled": true}
	if e.pprof {
		admin = map[string]any{"listen": fmt.Sprintf("127.0.0.1:%d", s.adminPort)}
	}
	return json.Marshal(map[string]any{
		"admin": admin,
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{
			"writer": map[string]any{"output": "file", "filename": s.logPath},
			"level":  "WARN",
		}}},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{
			"ka": server(s.kaPort, true, false),
			"hs": server(s.hsPort, false, false),
			"h2": server(s.h2Port, false, true),
		}}},
	})
}

// start runs Caddy pinned to cpu with GOMAXPROCS=1 and waits until both
// listeners accept connections.
func (e *env) start(s *side, cpu string) error {
	var err error
	if s.kaPort, err = labconf.FreePort(); err != nil {
		return err
	}
	if s.hsPort, err = labconf.FreePort(); err != nil {
		return err
	}
	if s.h2Port, err = labconf.FreePort(); err != nil {
		return err
	}
	if s.adminPort, err = labconf.FreePort(); err != nil {
		return err
	}
	s.logPath = filepath.Join(e.dir, s.name+".log")
	cfg, err := e.config(s)
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(e.dir, s.name+".json")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		return err
	}
	s.cmd, err = startProcess(filepath.Join(e.dir, s.name+".out"), []string{"GOMAXPROCS=1"},
		"taskset", "-c", cpu, e.caddy, "run", "--config", cfgPath)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, p := range []int{s.kaPort, s.hsPort, s.h2Port} {
		for {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second)
			if err == nil {
				c.Close()
				break
			}
			if exited(s.cmd) || time.Now().After(deadline) {
				out, _ := os.ReadFile(filepath.Join(e.dir, s.name+".out"))
				return fmt.Errorf("caddy %s did not start: %v\n%s", s.name, err, tail(string(out), 20))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// vmHWM reads the peak resident set size (kB) of pid.
func vmHWM(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// wrkResult is one wrk run.
type wrkResult struct {
	RPS    float64
	P50    time.Duration
	P99    time.Duration
	Errors int64 // non-2xx/3xx responses and socket errors
}

var (
	reRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	rePct     = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	reNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	reSockErr = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// runWrk drives url for d with conns connections from cpu.
func runWrk(cpu, url string, conns int, d time.Duration) (wrkResult, error) {
	out, err := exec.Command("taskset", "-c", cpu, "wrk", "-t1", "-c"+strconv.Itoa(conns),
		"-d"+strconv.Itoa(int(d.Seconds()))+"s", "--latency", url).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	var r wrkResult
	m := reRPS.FindSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk output without Requests/sec:\n%s", out)
	}
	r.RPS, _ = strconv.ParseFloat(string(m[1]), 64)
	for _, p := range rePct.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(p[2]), 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[string(p[3])]
		dur := time.Duration(v * float64(unit))
		if string(p[1]) == "50" {
			r.P50 = dur
		} else {
			r.P99 = dur
		}
	}
	if m := reNon2xx.FindSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(string(m[1]), 10, 64)
		r.Errors += n
	}
	if m := reSockErr.FindSubmatch(out); m != nil {
		for _, g := range m[1:] {
			n, _ := strconv.ParseInt(string(g), 10, 64)
			r.Errors += n
		}
	}
	return r, nil
}
