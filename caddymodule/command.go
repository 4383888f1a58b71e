package caddymodule

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/miekg/dns"
	"github.com/spf13/cobra"

	"github.com/caddy-dane/caddy-dane/caddymodule/dane"
	"github.com/caddy-dane/caddy-dane/caddymodule/dnssec"
	"github.com/caddy-dane/caddy-dane/caddymodule/tlsa"
)

// Exit statuses of the `caddy dane` subcommands.
const (
	exitOK      = 0 // verified, secure, or records printed
	exitRefused = 1 // refused (check) or not secure (lookup)
	exitUsage   = 2 // bad flag, argument or configuration
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "dane",
		Usage: "tlsa|check|lookup|publish ...",
		Short: "DANE tools: make TLSA records, check an upstream, validate DNS",
		Long: `
Operator tools of the dane reverse-proxy transport, running the transport's
own DNSSEC validator and TLSA matcher.

  caddy dane tlsa    print the TLSA record of a certificate, key or live server
  caddy dane check   authenticate host:port exactly as the transport would, and say why
  caddy dane lookup  validate any RRset with the in-process validator (like delv)
  caddy dane publish --dry-run  print the TLSA RRsets the running dane_publish app would publish

Exit status: 0 verified/secure, 1 refused/not secure, 2 usage or configuration error.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
				return usageError(c, err)
			})
			cmd.AddCommand(tlsaCommand(), checkCommand(), lookupCommand(), publishCommand())
		},
	})
}

// errRefusedExit makes caddycmd.Main exit with status 1 without printing
// anything more: the report already said why.
var errRefusedExit = errors.New("dane: refused")

// runE adapts f, which returns an exit status, to cobra: status 2 goes
// through Caddy's own exit-code path, status 1 is a silent error.
func runE(f func(cmd *cobra.Command, args []string) (int, error)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		code, err := f(cmd, args)
		switch code {
		case exitOK:
			return err
		case exitRefused:
			cmd.SilenceErrors = true
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
			}
			return errRefusedExit
		default:
			return usageError(cmd, err)
		}
	}
}

// usageError returns err so that caddycmd.Main exits with status 2.
func usageError(cmd *cobra.Command, err error) error {
	return caddycmd.WrapCommandFuncForCobra(func(caddycmd.Flags) (int, error) {
		return exitUsage, err
	})(cmd, nil)
}

// engineFlags are the options shared with the transport's `dane { }` block.
func engineFlags(cmd *cobra.Command) {
	cmd.Flags().StringArray("resolver", nil, "Recursive resolver, ip[:port] (repeatable; default: /etc/resolv.conf)")
	cmd.Flags().String("trust-anchor-file", "", "DS or DNSKEY trust anchors in zone-file syntax (default: IANA root KSKs)")
	cmd.Flags().Duration("timeout", defaultLookupTimeout, "Bound on the whole DNS lookup and validation")
	cmd.Flags().String("dnssec", dnssecValidate, "How records are proven: validate (in process) or trust_resolver (the AD bit of loopback resolvers)")
}

func engineOptions(cmd *cobra.Command) *Options {
	f := cmd.Flags()
	o := new(Options)
	o.Resolvers, _ = f.GetStringArray("resolver")
	o.TrustAnchorFile, _ = f.GetString("trust-anchor-file")
	o.DNSSEC, _ = f.GetString("dnssec")
	d, _ := f.GetDuration("timeout")
	o.Timeout = caddy.Duration(d)
	return o
}

// ---- caddy dane tlsa ----

func tlsaCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tlsa (--cert <pem> [--index N] | --key <pem> | --connect <host:port>) [--usage U] [--selector S] [--matching M] [--host <name>] [--port <port>]",
		Short: "Print the TLSA record of a certificate, a key or a live server",
		Long: `
Prints the TLSA record (RFC 6698) of a certificate from a PEM file (--cert;
in a chain, --index chooses the certificate: 0 the leaf, 1 its issuer, ...),
of a public or private key (--key, SPKI selector only), or of the chain a
live server presents (--connect host:port; nothing is verified).

The parameters default to 3 1 1 (DANE-EE, SPKI, SHA2-256); numbers and
RFC 7218 acronyms are accepted. With --host (and --port, default 443, or
the port of --connect) the record is printed as a zone-file line owned by
_<port>._tcp.<host>.; otherwise only its RDATA is printed, the form
'dane { }' tests and 'openssl s_client -dane_tlsa_rrdata' take.

The output is the same as 'ldns-dane -c <pem> create <host> <port> U S M'
and 'danetool --tlsa-rr --load-certificate <pem>'.
`,
		Args: cobra.ArbitraryArgs,
		RunE: runE(runTLSA),
	}
	f := cmd.Flags()
	f.String("cert", "", "PEM file with a certificate or a chain, leaf first")
	f.Int("index", 0, "Which certificate of the chain (0 = leaf)")
	f.String("key", "", "PEM file with a public key or a private key")
	f.String("connect", "", "Fetch the chain a server presents at host:port")
	f.String("sni", "", "Server name to send with --connect (default: --host, or the host of --connect)")
	f.String("usage", "3", "Certificate usage: 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE")
	f.String("selector", "1", "Selector: 0 Cert, 1 SPKI")
	f.String("matching", "1", "Matching type: 0 Full, 1 SHA2-256, 2 SHA2-512")
	f.String("host", "", "TLSA base domain: print the record owned by _<port>._tcp.<host>.")
	f.Int("port", 0, "TCP port of the owner name (default 443, or the port of --connect)")
	f.Int("ttl", 3600, "TTL of the printed record")
	return cmd
}

func runTLSA(cmd *cobra.Command, args []string) (int, error) {
	f := cmd.Flags()
	if len(args) > 0 {
		return exitUsage, fmt.Errorf("tlsa takes no arguments, got %q", args)
	}
	certFile, _ := f.GetString("cert")
	keyFile, _ := f.GetString("key")
	connect, _ := f.GetString("connect")
	index, _ := f.GetInt("index")
	host, _ := f.GetString("host")
	port, _ := f.GetInt("port")
	ttl, _ := f.GetInt("ttl")
	sni, _ := f.GetString("sni")
	u, _ := f.GetString("usage")
	s, _ := f.GetString("selector")
	m, _ := f.GetString("matching")
	params, err := tlsa.ParseRecord(u + " " + s + " " + m + " 00")
	if err != nil {
		return exitUsage, fmt.Errorf("--usage %s --selector %s --matching %s: %v", u, s, m, err)
	}
	sources := 0
	for _, v := range []string{certFile, keyFile, connect} {
		if v != "" {
			sources++
		}
	}
	if sources != 1 {
		return exitUsage, errors.New("give exactly one of --cert, --key, --connect")
	}

	var rec tlsa.Record
	switch {
	case keyFile != "":
		if params.Selector != tlsa.SPKI {
			return exitUsage, errors.New("--key gives a public key only: use --selector 1 (SPKI)")
		}
		spki, err := readPublicKey(keyFile)
		if err != nil {
			return exitUsage, err
		}
		rec, err = tlsa.NewKeyRecord(params.Usage, params.MatchingType, spki)
		if err != nil {
			return exitUsage, err
		}
	default:
		var chain []*x509.Certificate
		if certFile != "" {
			chain, err = readCertificates(certFile)
			if err != nil {
				return exitUsage, err
			}
		} else {
			h, p, err := net.SplitHostPort(connect)
			if err != nil {
				return exitUsage, fmt.Errorf("--connect %q: %v", connect, err)
			}
			if sni == "" {
				sni = host
			}
			if sni == "" && net.ParseIP(h) == nil {
				sni = h
			}
			if host == "" && net.ParseIP(h) == nil {
				host = h
			}
			if port == 0 && host != "" {
				port, _ = strconv.Atoi(p)
			}
			chain, err = fetchChain(cmd.Context(), connect, sni, defaultHandshakeTimeout)
			if err != nil {
				return exitRefused, fmt.Errorf("--connect %s: %v", connect, err)
			}
		}
		if index < 0 || index >= len(chain) {
			return exitUsage, fmt.Errorf("--index %d: the chain has %d certificate(s)", index, len(chain))
		}
		rec, err = tlsa.NewRecord(params.Usage, params.Selector, params.MatchingType, chain[index])
		if err != nil {
			return exitUsage, err
		}
	}

	out := cmd.OutOrStdout()
	if host == "" {
		if port != 0 {
			return exitUsage, errors.New("--port needs --host")
		}
		fmt.Fprintln(out, rec.String())
		return exitOK, nil
	}
	if port == 0 {
		port = 443
	}
	if err := dane.ValidateName(host); err != nil {
		return exitUsage, fmt.Errorf("--host: %v", err)
	}
	if port < 1 || port > 65535 {
		return exitUsage, fmt.Errorf("--port %d out of range", port)
	}
	fmt.Fprintf(out, "%s\t%d\tIN\tTLSA\t%s\n", dane.Owner(host, port), ttl, rec.String())
	return exitOK, nil
}

func readCertificates(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	chain, err := pemChain(data)
	if errors.Is(err, errNoPEMCertificate) {
		if c, err := x509.ParseCertificate(data); err == nil { // DER
			return []*x509.Certificate{c}, nil
		}
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return chain, nil
}

// readPublicKey returns the DER SubjectPublicKeyInfo of the first public or
// private key in a PEM file.
func readPublicKey(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("%s: no PEM public or private key", path)
		}
		switch b.Type {
		case "PUBLIC KEY":
			if _, err := x509.ParsePKIXPublicKey(b.Bytes); err != nil {
				return nil, fmt.Errorf("%s: %v", path, err)
			}
			return b.Bytes, nil
		case "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY":
			key, err := parsePrivateKey(b)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", path, err)
			}
			return x509.MarshalPKIXPublicKey(key)
		}
	}
}

func parsePrivateKey(b *pem.Block) (crypto.PublicKey, error) {
	var k any
	var err error
	switch b.Type {
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	}
	if err != nil {
		return nil, err
	}
	pk, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", k)
	}
	return pk.Public(), nil
}

// fetchChain connects to addr and returns the chain the server presents.
// Nothing is verified: the caller matches the chain itself.
func fetchChain(ctx context.Context, addr, sni string, timeout time.Duration) ([]*x509.Certificate, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := &tls.Dialer{Config: &tls.Config{
		ServerName: sni,
		// The chain is matched against DNSSEC-proven TLSA records by the
		// caller (check) or only printed (tlsa): PKIX plays no part.
		InsecureSkipVerify: true, //nolint:gosec
		NextProtos:         []string{"h2", "http/1.1"},
	}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	chain := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(chain) == 0 {
		return nil, tlsa.ErrEmptyChain
	}
	return chain, nil
}

// ---- caddy dane check ----

func checkCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check <host> [port] [--resolver ip[:port]]... [--trust-anchor-file <path>] [--dnssec validate|trust_resolver] [--timeout 5s] [--check-names] [--name <tlsa base>] [--sni <name>] [--on-no-tlsa refuse|pkix] [--follow-cname] [--connect <ip[:port]>] [--json]",
		Short: "Authenticate an upstream exactly as the dane transport would, and report why",
		Long: `
Looks up _<port>._tcp.<host>. TLSA (port 443 by default), proves it with the
transport's in-process DNSSEC validator, connects to the server and matches
the chain it presents, with the same engine and the same options as
'transport dane { dane { ... } }'. Prints the DNSSEC chain of trust, every
TLSA record and whether it is usable, the presented chain, which record
matched at which depth or why nothing did, and the verdict.

--name is the TLSA base domain when <host> is an IP address (the
transport's 'name'); --connect dials another address than <host>:<port>
(an IP, like ldns-dane -a), for names the system resolver cannot resolve.
--dnssec trust_resolver takes the proof from the AD bit of loopback
validating resolvers instead, as the transport's 'dnssec trust_resolver'.

Exit status: 0 verified, 1 refused, 2 usage or configuration error.
`,
		Args: cobra.ArbitraryArgs,
		RunE: runE(runCheck),
	}
	engineFlags(cmd)
	f := cmd.Flags()
	f.Bool("check-names", false, "Also check certificate names for DANE-EE(3) matches")
	f.String("name", "", "TLSA base domain for an IP-address host")
	f.String("connect", "", "Address to connect to instead of <host>:<port>")
	f.String("sni", "", "Server name to send (the transport's tls_server_name; default: the TLSA base domain)")
	f.String("on-no-tlsa", "", "refuse (default) or pkix, as the transport's on_no_tlsa")
	f.Bool("follow-cname", false, "Find the TLSA base domain through a secure CNAME chain, as the transport's follow_cname")
	f.Bool("json", false, "Print the report as JSON")
	return cmd
}

func runCheck(cmd *cobra.Command, args []string) (int, error) {
	if len(args) < 1 || len(args) > 2 {
		return exitUsage, errors.New("usage: caddy dane check <host> [port]")
	}
	host := strings.TrimSuffix(args[0], ".")
	port := 443
	if len(args) == 2 {
		p, err := strconv.Atoi(args[1])
		if err != nil || p < 1 || p > 65535 {
			return exitUsage, fmt.Errorf("port %q: want 1-65535", args[1])
		}
		port = p
	}
	f := cmd.Flags()
	o := engineOptions(cmd)
	o.CheckNames, _ = f.GetBool("check-names")
	o.Name, _ = f.GetString("name")
	o.OnNoTLSA, _ = f.GetString("on-no-tlsa")
	o.FollowCNAME, _ = f.GetBool("follow-cname")
	asJSON, _ := f.GetBool("json")
	connect, _ := f.GetString("connect")
	sni, _ := f.GetString("sni")

	if net.ParseIP(strings.Trim(host, "[]")) != nil && o.Name == "" {
		return exitUsage, fmt.Errorf("%s is an IP address: give the TLSA base domain with --name", host)
	}
	target := dane.Target{Host: host, Port: port, Name: strings.TrimSuffix(o.Name, "."), SNI: sni}
	if _, err := target.Identity(); err != nil {
		return exitUsage, dane.RefusalOf(err).Err
	}
	auth, err := o.newAuthenticator(nil)
	if err != nil {
		return exitUsage, err
	}
	addr := net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(port))
	if connect != "" {
		addr = connect
		if _, _, err := net.SplitHostPort(connect); err != nil {
			addr = net.JoinHostPort(strings.Trim(connect, "[]"), strconv.Itoa(port))
		}
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	rep := auth.Check(ctx, dane.CheckInput{
		Target: target,
		Fetch: func(ctx context.Context, sni string) ([]*x509.Certificate, error) {
			return fetchChain(ctx, addr, sni, defaultHandshakeTimeout)
		},
	})
	if err := writeReport(cmd.OutOrStdout(), asJSON, rep, func(w io.Writer) error { return rep.WriteText(w) }); err != nil {
		return exitUsage, err
	}
	if rep.Verdict != dane.Verified {
		return exitRefused, nil
	}
	return exitOK, nil
}

func writeReport(w io.Writer, asJSON bool, v any, text func(io.Writer) error) error {
	if !asJSON {
		return text(w)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ---- caddy dane lookup ----

func lookupCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lookup <name> [type] [--resolver ip[:port]]... [--trust-anchor-file <path>] [--dnssec validate|trust_resolver] [--time <RFC 3339>] [--trace] [--json]",
		Short: "Validate any RRset with the transport's DNSSEC validator (like delv)",
		Long: `
Queries <name> <type> (A by default) through the resolvers with DO and CD
set and validates the answer in process from the trust anchors, as the
transport does for TLSA. Prints the verdict (secure, insecure, bogus,
indeterminate), the reason and RFC 8914 Extended DNS Error code when not
secure, and the records; --trace adds the chain of trust zone by zone.
--time validates signatures as of another instant (RFC 3339).
--dnssec trust_resolver shows instead the verdict of loopback validating
resolvers (AD bit, or SERVFAIL with its extended error), as the transport's
'dnssec trust_resolver' sees it; it cannot be combined with --time.

Exit status: 0 secure, 1 insecure/bogus/indeterminate, 2 usage error.
`,
		Args: cobra.ArbitraryArgs,
		RunE: runE(runLookup),
	}
	engineFlags(cmd)
	f := cmd.Flags()
	f.String("time", "", "Validate as of this instant (RFC 3339), instead of now")
	f.Bool("trace", false, "Print every zone of the chain of trust")
	f.Bool("json", false, "Print the result as JSON")
	return cmd
}

func runLookup(cmd *cobra.Command, args []string) (int, error) {
	if len(args) < 1 || len(args) > 2 {
		return exitUsage, errors.New("usage: caddy dane lookup <name> [type]")
	}
	name := args[0]
	if _, ok := dns.IsDomainName(name); !ok {
		return exitUsage, fmt.Errorf("%q is not a domain name", name)
	}
	qtype := dns.TypeA
	if len(args) == 2 {
		t, ok := dns.StringToType[strings.ToUpper(args[1])]
		if !ok {
			return exitUsage, fmt.Errorf("unknown record type %q", args[1])
		}
		qtype = t
	}
	f := cmd.Flags()
	o := engineOptions(cmd)
	asJSON, _ := f.GetBool("json")
	trace, _ := f.GetBool("trace")
	var now func() time.Time
	if s, _ := f.GetString("time"); s != "" {
		at, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return exitUsage, fmt.Errorf("--time: %v", err)
		}
		now = func() time.Time { return at }
	}
	eng, err := o.newEngine(now)
	if err != nil {
		return exitUsage, err
	}
	v := eng.prover
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(o.Timeout))
	defer cancel()
	res := v.Lookup(ctx, dns.Fqdn(name), qtype)
	rep := dane.NewLookupReport(res)
	if err := writeReport(cmd.OutOrStdout(), asJSON, rep, func(w io.Writer) error { return rep.WriteText(w, trace) }); err != nil {
		return exitUsage, err
	}
	if res.Status != dnssec.Secure {
		return exitRefused, nil
	}
	return exitOK, nil
}
