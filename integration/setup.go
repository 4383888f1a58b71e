package integration

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddy-dane/caddy-dane/internal/labconf"
	"github.com/caddy-dane/caddy-dane/internal/pkikit"
)

// requiredTools are the programs the suite runs.
var requiredTools = []string{"nsd", "nsd-checkconf", "unbound", "unbound-checkconf",
	"ldns-keygen", "ldns-signzone", "openssl", "curl", "dig"}

// missingTools returns the required programs not in PATH.
func missingTools() []string {
	var missing []string
	for _, t := range requiredTools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	return missing
}

// Env is everything the scenarios share: the DNS lab, the upstreams and
// the Caddy binary.
type Env struct {
	Dir string
	Lab *Lab

	// Upstreams by name: good, ta, rollover, mismatch, bogus, expired,
	// unsigned, insecure.
	Up map[string]*Upstream

	// Rollover keys: A and B are in the TLSA RRset, C is not.
	RolloverA, RolloverB, RolloverC tls.Certificate

	// Tenants is one upstream address for several names (tenants.go).
	Tenants *TenantUpstream

	// Clients are the mutual DANE identities and their verifier's
	// backend (clientauth.go).
	Clients *ClientLab

	CaddyBin   string
	caddyBuilt chan struct{} // closed when the build has ended
	caddyErr   error
	stopBuild  context.CancelFunc
}

// WaitCaddy waits for the Caddy build and returns its error.
func (e *Env) WaitCaddy() error {
	select {
	case <-e.caddyBuilt:
	case <-time.After(15 * time.Minute):
		return errors.New("caddy build still running after 15 minutes")
	}
	return e.caddyErr
}

// repoRoot walks up from the working directory to the directory of go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// buildCaddy builds ./cmd/caddy into e.Dir in the background.
func (e *Env) buildCaddy() {
	e.caddyBuilt = make(chan struct{})
	e.CaddyBin = filepath.Join(e.Dir, "caddy")
	ctx, cancel := context.WithCancel(context.Background())
	e.stopBuild = cancel
	go func() {
		defer close(e.caddyBuilt)
		root, err := repoRoot()
		if err != nil {
			e.caddyErr = err
			return
		}
		start := time.Now()
		_, err = runCtx(ctx, root, 12*time.Minute, "go", "build", "-o", e.CaddyBin, "./cmd/caddy")
		if err != nil {
			e.caddyErr = fmt.Errorf("building caddy: %w", err)
			return
		}
		fmt.Fprintf(os.Stderr, "integration: caddy built in %v\n", time.Since(start).Round(100*time.Millisecond))
	}()
}

// setup builds the whole test bed in e.Dir. On error, Close still stops
// what was started.
func (e *Env) setup() error {
	e.buildCaddy() // in parallel with the rest

	// PKI: root → intermediate → leaves, and an unrelated attacker CA.
	root, err := pkikit.NewRoot("caddy-dane test root")
	if err != nil {
		return err
	}
	inter, err := root.NewIntermediate("caddy-dane test intermediate")
	if err != nil {
		return err
	}
	attackerCA, err := pkikit.NewRoot("attacker root")
	if err != nil {
		return err
	}
	mk := inter.NewLeaf
	attacker, err := attackerCA.NewLeaf("mismatch.example.test", "svc.bogus.test")
	if err != nil {
		return err
	}
	if err := pkikit.WritePEM(filepath.Join(e.Dir, "root.pem"), root.Cert); err != nil {
		return err
	}

	// Upstream ports first: they are part of the TLSA owner names.
	e.Up = map[string]*Upstream{}
	hosts := map[string]string{
		"good": "good.example.test", "ta": "ta.example.test", "rollover": "rollover.example.test",
		"mismatch": "mismatch.example.test", "bogus": "svc.bogus.test", "expired": "svc.expired.test",
		"unsigned": "svc.unsigned.test", "insecure": "svc.insecure.test",
		// SRV targets (srv_test.go): srv-m presents a key its TLSA
		// record does not hold.
		"srv-a": "srv-a.example.test", "srv-b": "srv-b.example.test", "srv-m": "srv-m.example.test",
	}
	for name, host := range hosts {
		u, err := listenUpstream(name, host)
		if err != nil {
			return err
		}
		e.Up[name] = u
	}
	leaves := map[string]*pkikit.Leaf{}
	for _, name := range []string{"good", "ta", "mismatch", "bogus", "expired", "unsigned", "insecure", "srv-a", "srv-b", "srv-m"} {
		if leaves[name], err = mk(hosts[name]); err != nil {
			return err
		}
	}
	var rollA, rollB, rollC *pkikit.Leaf
	for _, p := range []**pkikit.Leaf{&rollA, &rollB, &rollC} {
		if *p, err = mk(hosts["rollover"]); err != nil {
			return err
		}
	}
	e.RolloverA, e.RolloverB, e.RolloverC = rollA.TLS(), rollB.TLS(), rollC.TLS()

	ee := func(name string, l *pkikit.Leaf) tlsaRR {
		return tlsaRR{Host: hosts[name], Port: e.Up[name].Port, Data: l.TLSA311()}
	}
	tenantHosts, tenantTLSA, err := e.setupTenants(mk)
	if err != nil {
		return err
	}
	// SRV RRsets (RFC 2782 priority order), signed, unsigned and forged.
	srv := func(owner string, prio int, target string) string {
		return fmt.Sprintf("%s. IN SRV %d 0 %d %s.", owner, prio, e.Up[target].Port, hosts[target])
	}
	children := []zoneSpec{
		{
			Name: zoneSecure,
			Hosts: append([]string{hosts["good"], hosts["ta"], hosts["rollover"], hosts["mismatch"],
				hosts["srv-a"], hosts["srv-b"], hosts["srv-m"]}, tenantHosts...),
			TLSA: append([]tlsaRR{
				ee("good", leaves["good"]),
				{Host: hosts["ta"], Port: e.Up["ta"].Port, Data: "2 1 1 " + pkikit.SPKISHA256(inter.Cert)},
				ee("rollover", rollA), ee("rollover", rollB),
				ee("mismatch", leaves["mismatch"]), // the legitimate key, never served
				ee("srv-a", leaves["srv-a"]), ee("srv-b", leaves["srv-b"]),
				ee("srv-m", leaves["srv-m"]), // the legitimate key, never served
			}, tenantTLSA...),
			Extra: []string{
				srv("_https._tcp.srv.example.test", 10, "srv-a"), srv("_https._tcp.srv.example.test", 20, "srv-b"),
				srv("_https._tcp.srvfail.example.test", 10, "srv-m"), srv("_https._tcp.srvfail.example.test", 20, "srv-b"),
			},
			Sign: true, Args: append([]string{"-n", "-t", "0"}, validity()...),
		},
		{
			Name: zoneBogus, Hosts: []string{hosts["bogus"]},
			TLSA:  []tlsaRR{ee("bogus", leaves["bogus"])},
			Extra: []string{srv("_https._tcp.svc.bogus.test", 10, "srv-a")},
			Sign:  true, Args: validity(),
			// After signing, the record is changed to the attacker's key:
			// a client that does not validate would accept the attacker.
			// The SRV target is moved likewise: a forged SRV answer.
			Tamper: map[string]string{
				pkikit.SPKISHA256(leaves["bogus"].Cert):                   pkikit.SPKISHA256(attacker.Cert),
				fmt.Sprintf("%d %s.", e.Up["srv-a"].Port, hosts["srv-a"]): fmt.Sprintf("%d %s.", e.Up["srv-m"].Port, hosts["srv-m"]),
			},
		},
		{
			Name: zoneExpired, Hosts: []string{hosts["expired"]},
			TLSA: []tlsaRR{ee("expired", leaves["expired"])},
			Sign: true, Args: []string{"-i", "20200101000000", "-e", "20200201000000"},
		},
		{
			Name: zoneUnsigned, Hosts: []string{hosts["unsigned"]},
			TLSA:   []tlsaRR{ee("unsigned", leaves["unsigned"])},
			DSOnly: true,
		},
		{
			Name: zoneInsecure, Hosts: []string{hosts["insecure"]},
			TLSA:     []tlsaRR{ee("insecure", leaves["insecure"])},
			Extra:    []string{srv("_https._tcp.svc.insecure.test", 10, "srv-a")},
			Insecure: true,
		},
	}

	if err := e.setupClients(children); err != nil {
		return err
	}

	// Serve: the attacker key where the test needs an impostor.
	for name, u := range e.Up {
		switch name {
		case "rollover":
			u.Serve(e.RolloverA)
		case "mismatch", "bogus", "srv-m":
			u.Serve(attacker.TLS())
		default:
			u.Serve(leaves[name].TLS())
		}
	}

	// DNS.
	e.Lab = &Lab{Dir: e.Dir}
	if e.Lab.NSDPort, err = labconf.FreePort(); err != nil {
		return err
	}
	if e.Lab.UnboundPort, err = labconf.FreePort(); err != nil {
		return err
	}
	if err := e.Lab.BuildZones(children); err != nil {
		return err
	}
	names := zones(children)
	if err := e.Lab.StartNSD(names); err != nil {
		return err
	}
	return e.Lab.StartUnbound(names)
}

// Close stops the upstreams and the DNS servers.
func (e *Env) Close() {
	if e.stopBuild != nil {
		e.stopBuild()
		<-e.caddyBuilt
	}
	for _, u := range e.Up {
		u.Close()
	}
	if e.Tenants != nil {
		e.Tenants.Close()
	}
	e.Clients.Close()
	if e.Lab != nil {
		e.Lab.Close()
	}
}

// diagnostics returns the tails of the DNS servers' logs.
func (e *Env) diagnostics() string {
	if e.Lab == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "--- unbound.log (tail)\n%s\n", tailFile(e.Lab.UnboundLog, 30))
	fmt.Fprintf(&b, "--- nsd.log (tail)\n%s\n", tailFile(filepath.Join(e.Dir, "nsd.log"), 15))
	return b.String()
}
