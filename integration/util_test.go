package integration

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func itoa(i int) string { return strconv.Itoa(i) }

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}

// digTLSA returns the upstream's TLSA records as `dig +short` gives them
// through Unbound, normalised to "u s m <lower-case hex>" (PITFALLS 9).
func digTLSA(t *testing.T, e *Env, name string) []string {
	t.Helper()
	u := e.Up[name]
	owner := tlsaRR{Host: u.Host, Port: u.Port}.Owner()
	out, err := run(e.Dir, 15*time.Second, "dig", "+short", "+time=3", "+tries=1",
		"@127.0.0.1", "-p", itoa(e.Lab.UnboundPort), owner, "TLSA")
	if err != nil {
		t.Fatal(err)
	}
	var recs []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		recs = append(recs, strings.Join(f[:3], " ")+" "+strings.ToLower(strings.Join(f[3:], "")))
	}
	return recs
}
