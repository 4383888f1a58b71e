package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// spawner starts every long-running child from one goroutine locked to its
// OS thread, which never exits: Pdeathsig (sent when the creating thread
// dies) then means "when the test binary dies", so a panic or a -timeout
// kill leaves no NSD, Unbound or Caddy behind.
var spawner = sync.OnceValue(func() chan func() {
	jobs := make(chan func())
	go func() {
		runtime.LockOSThread()
		for job := range jobs {
			job()
		}
	}()
	return jobs
})

// proc is a child process with its output in a log file.
type proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  string // path of the combined stdout/stderr
	done chan struct{}
	err  error // Wait's result, once done is closed
}

// startProc starts name with args, output appended to logPath.
func startProc(name, logPath string, args ...string) (*proc, error) {
	return startProcEnv(nil, name, logPath, args...)
}

// startProcEnv is startProc with extra environment variables.
func startProcEnv(env []string, name, logPath string, args ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{Name: name, Cmd: cmd, Log: logPath, done: make(chan struct{})}
	errc := make(chan error)
	spawner() <- func() { errc <- cmd.Start() }
	if err := <-errc; err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Exited reports whether the process has ended.
func (p *proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM to the process, then SIGKILL to its process group
// (NSD forks workers) if it has not ended within grace.
func (p *proc) Stop(grace time.Duration) {
	if p == nil || p.Exited() {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	// Workers that outlived a parent stopped by SIGTERM.
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
}

// Tail returns the last n lines of the process's log.
func (p *proc) Tail(n int) string { return tailFile(p.Log, n) }

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// run runs a short command in dir and returns its stdout; the error
// includes stderr.
func run(dir string, timeout time.Duration, name string, args ...string) (string, error) {
	return runCtx(context.Background(), dir, timeout, name, args...)
}

// runCtx is run, also ended (killed) when ctx is done.
func runCtx(ctx context.Context, dir string, timeout time.Duration, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return stdout.String(), nil
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return stdout.String(), fmt.Errorf("%s %s: timed out after %v", name, strings.Join(args, " "), timeout)
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return stdout.String(), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), ctx.Err())
	}
}
