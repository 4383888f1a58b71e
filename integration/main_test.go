package integration

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-dane/caddy-dane/internal/testenv"
)

// env is the shared test bed; nil when the suite is not enabled.
var (
	env      *Env
	setupErr error
	missing  []string
)

func enabled() bool { return os.Getenv("DANE_INTEGRATION") == "1" || os.Getenv("CI") == "true" }

// needEnabled skips t unless the integration suite is on. Under CI=true
// it always is, so nothing is skipped there: a missing tool fails
// (testenv.NeedTool, testenv.Missing).
func needEnabled(t *testing.T) {
	t.Helper()
	if !enabled() {
		t.Skip("integration suite: set DANE_INTEGRATION=1 (or CI=true) to run it")
	}
}

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	if !enabled() {
		return m.Run() // every test skips
	}
	if missing = missingTools(); len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "integration: missing tools: %s\n", strings.Join(missing, " "))
		return m.Run() // tests skip, or fail under CI=true
	}
	dir, err := os.MkdirTemp("", "caddy-dane-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env = &Env{Dir: dir}
	stop := func() {
		env.Close()
		if os.Getenv("DANE_KEEP") == "1" {
			fmt.Fprintf(os.Stderr, "integration: lab kept in %s\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}
	// Ctrl-C: stop the daemons before dying.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		stop()
		os.Exit(2)
	}()
	start := time.Now()
	setupErr = env.setup()
	if setupErr != nil {
		setupErr = fmt.Errorf("%w\n%s", setupErr, env.diagnostics())
	} else {
		fmt.Fprintf(os.Stderr, "integration: lab up in %v (%s, NSD :%d, Unbound :%d)\n",
			time.Since(start).Round(time.Millisecond), dir, env.Lab.NSDPort, env.Lab.UnboundPort)
	}
	code := m.Run()
	signal.Stop(sig)
	stop()
	return code
}

// needLab skips or fails t unless the lab is up.
func needLab(t *testing.T) *Env {
	t.Helper()
	needEnabled(t)
	if len(missing) > 0 {
		testenv.Missing(t, "missing tools: "+strings.Join(missing, " ")+
			" (apt-get install nsd unbound ldnsutils bind9-dnsutils openssl curl)")
	}
	if setupErr != nil {
		t.Fatalf("lab setup failed: %v", setupErr)
	}
	return env
}

// needCaddy is needLab plus a Caddy with the dane transport.
func needCaddy(t *testing.T) *Env {
	t.Helper()
	e := needLab(t)
	if err := e.WaitCaddy(); err != nil {
		t.Fatal(err)
	}
	if err := e.checkDaneModule(); err != nil {
		t.Fatal(err)
	}
	return e
}
