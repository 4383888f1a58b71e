// Package testenv decides what a test does when something it needs from
// the machine (a tool, a data file) is missing: locally it is skipped, in
// CI (CI=true, where .ci/run installs everything) it fails, so that a
// missing package can never turn a check into a silent skip.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Missing ends t because a prerequisite is missing: Fatal under CI=true,
// Skip elsewhere. msg says what is missing and how to get it.
func Missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (required under CI=true)")
	}
	t.Skip(msg)
}

// NeedTool returns the path of the program name, or ends t with Missing.
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name+" not installed")
	}
	return p
}
