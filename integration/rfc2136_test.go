package integration

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/dnssec"
	"github.com/caddy-dane/caddy-dane/caddymodule/resolver"
	"github.com/caddy-dane/caddy-dane/caddymodule/rfc2136"
	"github.com/caddy-dane/caddy-dane/internal/testenv"
)

// bindLab is a BIND 9 primary on loopback for one zone, example.test.,
// signed by BIND itself (dnssec-policy, NSEC3 with 0 iterations, RFC
// 9276) and open to RFC 2136 updates signed with one TSIG key
// (update-policy zonesub). A second key may transfer the zone but not
// update it.
type bindLab struct {
	dir      string
	server   string // 127.0.0.1:<port>
	secret   string // base64 of update-key.
	roSecret string // base64 of readonly-key.
	named    *proc
}

const bindZone = "example.test."

func newSecret(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// startBIND writes the configuration and zone into a directory of its
// own and starts named in the foreground (-g: no daemon, log to stderr,
// no PID file, no user switch), with no control channel (no rndc).
func startBIND(t *testing.T) *bindLab {
	t.Helper()
	needEnabled(t)
	named := testenv.NeedTool(t, "named") // Debian package bind9
	l := &bindLab{dir: t.TempDir(), secret: newSecret(t), roSecret: newSecret(t)}
	if err := os.Mkdir(filepath.Join(l.dir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	zone := "$TTL 300\n@ IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 300\n" +
		"@ IN NS ns.example.test.\nns IN A 127.0.0.1\n"
	if err := os.WriteFile(filepath.Join(l.dir, "example.test.db"), []byte(zone), 0o644); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // the free port can be taken before named binds it
		port, err := freeUDPPort()
		if err != nil {
			t.Fatal(err)
		}
		l.server = fmt.Sprintf("127.0.0.1:%d", port)
		conf := fmt.Sprintf(`options {
	directory "%[1]s";
	pid-file none;
	session-keyfile none;
	listen-on port %[2]d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	notify no;
	dnssec-validation no;
};
controls { };
key "update-key." { algorithm hmac-sha256; secret "%[3]s"; };
key "readonly-key." { algorithm hmac-sha256; secret "%[4]s"; };
dnssec-policy "lab" {
	keys { csk lifetime unlimited algorithm ecdsap256sha256; };
	nsec3param iterations 0 optout no salt-length 0;
};
zone "example.test" {
	type primary;
	file "example.test.db";
	dnssec-policy "lab";
	inline-signing no;
	key-directory "%[1]s/keys";
	update-policy { grant "update-key." zonesub ANY; };
	allow-transfer { key "update-key."; key "readonly-key."; };
};
`, l.dir, port, l.secret, l.roSecret)
		confPath := filepath.Join(l.dir, "named.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		l.named, err = startProc(named, filepath.Join(l.dir, "named.log"), "-g", "-n", "1", "-c", confPath)
		if err != nil {
			t.Fatal(err)
		}
		if lastErr = l.waitSigned(15 * time.Second); lastErr == nil {
			t.Cleanup(func() { l.named.Stop(5 * time.Second) })
			return l
		}
		l.named.Stop(2 * time.Second)
	}
	t.Fatalf("named did not come up: %v\n%s", lastErr, l.named.Tail(30))
	return nil
}

// waitSigned polls until named answers the zone's DNSKEY with its RRSIG:
// the zone is loaded and signed.
func (l *bindLab) waitSigned(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if l.named.Exited() {
			return fmt.Errorf("named exited: %v", l.named.err)
		}
		if keys, sigs, err := l.query(bindZone, dns.TypeDNSKEY); err == nil && len(keys) > 0 && len(sigs) > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("zone not signed after %v", limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// query asks named for name/qtype with DO=1 and returns the records of
// qtype and the RRSIGs covering them.
func (l *bindLab) query(name string, qtype uint16) (rrs []dns.RR, sigs []*dns.RRSIG, err error) {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.SetEdns0(1232, true)
	c := &dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(q, l.server)
	if err != nil {
		return nil, nil, err
	}
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *dns.RRSIG:
			if v.TypeCovered == qtype {
				sigs = append(sigs, v)
			}
		default:
			if rr.Header().Rrtype == qtype {
				rrs = append(rrs, rr)
			}
		}
	}
	return rrs, sigs, nil
}

func (l *bindLab) provider(keyName, secret string) *rfc2136.Provider {
	return &rfc2136.Provider{Server: l.server, KeyName: keyName, Secret: secret, Timeout: 5 * time.Second}
}

// validator is our own DNSSEC validator, asking named directly, with the
// zone's DNSKEY RRset as trust anchor: a Secure TLSA RRset is proven
// signed by the key BIND maintains.
func (l *bindLab) validator(t *testing.T) *dnssec.Validator {
	t.Helper()
	keys, _, err := l.query(bindZone, dns.TypeDNSKEY)
	if err != nil || len(keys) == 0 {
		t.Fatalf("DNSKEY of %s: %v", bindZone, err)
	}
	var anchors []dns.RR
	for _, k := range keys {
		if k.(*dns.DNSKEY).Flags&dns.SEP != 0 {
			anchors = append(anchors, k)
		}
	}
	v, err := dnssec.New(dnssec.Config{
		Exchanger: &resolver.Client{Servers: []string{l.server}, Timeout: 2 * time.Second},
		Anchors:   anchors,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// tlsaSet is the TLSA RDATA of the zone at owner, as GetRecords (AXFR)
// returns it, sorted.
func tlsaSet(t *testing.T, p *rfc2136.Provider, relName string) []string {
	t.Helper()
	recs, err := p.GetRecords(context.Background(), bindZone)
	if err != nil {
		t.Fatalf("GetRecords: %v", err)
	}
	var out []string
	for _, r := range recs {
		rr := r.RR()
		switch rr.Type {
		case "RRSIG", "NSEC", "NSEC3", "NSEC3PARAM", "DNSKEY", "TYPE65534":
			t.Errorf("GetRecords returned a DNSSEC record: %v", rr)
		}
		if rr.Type == "TLSA" && rr.Name == relName {
			out = append(out, rr.Data)
		}
	}
	slices.Sort(out)
	return out
}

// provenTLSA polls (bounded: BIND signs an update as it applies it, but
// give it a moment) until our validator proves the TLSA RRset at owner
// Secure with exactly want (nil: proven absent).
func provenTLSA(t *testing.T, l *bindLab, owner string, want []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last string
	for {
		v := l.validator(t) // fresh: no cached answers
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r := v.Lookup(ctx, owner, dns.TypeTLSA)
		cancel()
		var got []string
		for _, rr := range r.RRset {
			got = append(got, strings.TrimPrefix(rr.String(), rr.Header().String()))
		}
		slices.Sort(got)
		_, sigs, _ := l.query(owner, dns.TypeTLSA)
		if r.Status == dnssec.Secure && slices.Equal(got, want) && (len(want) == 0 || len(sigs) > 0) {
			t.Logf("%s TLSA: %v, rcode %s, %d RRSIG(s), signer %s", owner, r.Status, dns.RcodeToString[r.Rcode], len(sigs), r.Signer)
			return
		}
		last = fmt.Sprintf("status %v, RRset %q, %d RRSIG(s), err %v", r.Status, got, len(sigs), r.Err)
		if time.Now().After(deadline) {
			t.Fatalf("TLSA at %s not proven Secure with %q: %s", owner, want, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestRFC2136BIND: the rfc2136 provider against a real BIND 9 primary
// that signs the zone: what it publishes is visible by AXFR and proven
// Secure by our validator, and every refusal comes back as the precise
// error.
func TestRFC2136BIND(t *testing.T) {
	l := startBIND(t)
	ctx := context.Background()
	p := l.provider("update-key.", l.secret)
	const rel = "_443._tcp.www"
	owner := rel + "." + bindZone
	a := "3 1 1 " + strings.Repeat("ab", 32)
	b := "3 1 1 " + strings.Repeat("cd", 32)
	c := "2 1 1 " + strings.Repeat("ef", 32)
	tlsa := func(data string) libdns.Record {
		return libdns.RR{Name: rel, Type: "TLSA", TTL: 300 * time.Second, Data: data}
	}

	t.Run("RFC2136-2.5.1/append TLSA: visible by AXFR, signed, proven Secure", func(t *testing.T) {
		got, err := p.AppendRecords(ctx, bindZone, []libdns.Record{tlsa(a), tlsa(b)})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Errorf("AppendRecords returned %d records", len(got))
		}
		if s := tlsaSet(t, p, rel); !slices.Equal(s, []string{a, b}) {
			t.Fatalf("AXFR TLSA %q, want %q", s, []string{a, b})
		}
		provenTLSA(t, l, owner, []string{a, b})
	})
	t.Run("RFC2136-3.4/set replaces the RRset in one update", func(t *testing.T) {
		if _, err := p.SetRecords(ctx, bindZone, []libdns.Record{tlsa(c)}); err != nil {
			t.Fatal(err)
		}
		if s := tlsaSet(t, p, rel); !slices.Equal(s, []string{c}) {
			t.Fatalf("AXFR TLSA %q, want %q", s, []string{c})
		}
		provenTLSA(t, l, owner, []string{c})
	})
	t.Run("RFC2136-2.5.2/delete removes the RRset, proven absent", func(t *testing.T) {
		got, err := p.DeleteRecords(ctx, bindZone, []libdns.Record{libdns.RR{Name: rel, Type: "TLSA"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].RR().Data != c {
			t.Errorf("DeleteRecords returned %v, want the one record %q", got, c)
		}
		if s := tlsaSet(t, p, rel); len(s) != 0 {
			t.Fatalf("AXFR TLSA %q after delete", s)
		}
		provenTLSA(t, l, owner, nil)
	})

	t.Run("RFC8945-5.3.1/AXFR over several messages, each TSIG verified", func(t *testing.T) {
		var bulk []libdns.Record
		for i := range 600 {
			bulk = append(bulk, libdns.RR{Name: fmt.Sprintf("_%d._tcp.bulk", 1000+i), Type: "TLSA", TTL: 300 * time.Second, Data: a})
		}
		if _, err := p.AppendRecords(ctx, bindZone, bulk); err != nil {
			t.Fatal(err)
		}
		// dig reports how many messages the transfer took: the row is
		// only meaningful if there are several (chained MACs, timers-only
		// digests after the first).
		dig := testenv.NeedTool(t, "dig")
		out, err := run(l.dir, 10*time.Second, dig, "-p", strings.Split(l.server, ":")[1], "-y", "hmac-sha256:update-key.:"+l.secret,
			"@127.0.0.1", bindZone, "AXFR")
		if err != nil {
			t.Fatal(err)
		}
		var recs, msgs int
		if i := strings.Index(out, ";; XFR size:"); i < 0 {
			t.Fatalf("no XFR size in dig output:\n%s", out)
		} else if _, err := fmt.Sscanf(out[i:], ";; XFR size: %d records (messages %d", &recs, &msgs); err != nil {
			t.Fatalf("dig XFR size: %v", err)
		}
		if msgs < 2 {
			t.Fatalf("transfer took %d message(s); the row needs several", msgs)
		}
		got, err := p.GetRecords(ctx, bindZone)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range got {
			if strings.HasSuffix(r.RR().Name, "._tcp.bulk") {
				n++
			}
		}
		t.Logf("AXFR: %d records in %d messages (dig); GetRecords: %d records, %d bulk TLSA", recs, msgs, len(got), n)
		if n != len(bulk) {
			t.Fatalf("GetRecords returned %d of the %d bulk TLSA records", n, len(bulk))
		}
		// With their prerequisites the 600 deletions exceed one message:
		// several guarded UPDATEs (the first run of this row, before
		// batching, failed with "dns: message too large").
		deleted, err := p.DeleteRecords(ctx, bindZone, bulk)
		if err != nil {
			t.Fatal(err)
		}
		if len(deleted) != len(bulk) {
			t.Errorf("DeleteRecords returned %d records, want %d", len(deleted), len(bulk))
		}
		got, err = p.GetRecords(ctx, bindZone)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range got {
			if strings.HasSuffix(r.RR().Name, "._tcp.bulk") {
				t.Fatalf("%v still in the zone", r.RR())
			}
		}
	})

	before := tlsaSet(t, p, rel)
	for _, tc := range []struct {
		name      string
		op        func() error
		kind      error
		tsigError uint16
		detail    string
	}{
		{name: "RFC8945-5.2.2/wrong secret: BADSIG",
			op: func() error {
				_, err := l.provider("update-key.", newSecret(t)).AppendRecords(ctx, bindZone, []libdns.Record{tlsa(a)})
				return err
			}, kind: rfc2136.ErrTSIGRefused, tsigError: dns.RcodeBadSig, detail: "BADSIG"},
		{name: "RFC8945-5.2.1/unknown key: BADKEY",
			op: func() error {
				_, err := l.provider("no-such-key.", l.secret).AppendRecords(ctx, bindZone, []libdns.Record{tlsa(a)})
				return err
			}, kind: rfc2136.ErrTSIGRefused, tsigError: dns.RcodeBadKey, detail: "BADKEY"},
		{name: "RFC8945-5.2.2/AXFR with the wrong secret: BADSIG",
			op: func() error {
				_, err := l.provider("update-key.", newSecret(t)).GetRecords(ctx, bindZone)
				return err
			}, kind: rfc2136.ErrTSIGRefused, tsigError: dns.RcodeBadSig, detail: "BADSIG"},
		{name: "RFC8945-5.2.3/our clock an hour behind: BADTIME",
			op: func() error {
				q := l.provider("update-key.", l.secret)
				q.Now = func() time.Time { return time.Now().Add(-time.Hour) }
				_, err := q.AppendRecords(ctx, bindZone, []libdns.Record{tlsa(a)})
				return err
			}, kind: rfc2136.ErrTSIGRefused, tsigError: dns.RcodeBadTime, detail: "BADTIME"},
		{name: "RFC8945-5.2.1/wrong algorithm for the key: BADKEY",
			op: func() error {
				q := l.provider("update-key.", l.secret)
				q.KeyAlg = "hmac-sha512"
				_, err := q.AppendRecords(ctx, bindZone, []libdns.Record{tlsa(a)})
				return err
			}, kind: rfc2136.ErrTSIGRefused, tsigError: dns.RcodeBadKey, detail: "BADKEY"},
		{name: "RFC5936-2.2.1/AXFR of an unknown zone",
			op: func() error {
				_, err := p.GetRecords(ctx, "nothere.test.")
				return err
			}, kind: rfc2136.ErrZoneNotServed, detail: "NOTAUTH"},
		{name: "RFC2136-3.1.1/unknown zone",
			op: func() error {
				_, err := p.AppendRecords(ctx, "nothere.test.", []libdns.Record{libdns.RR{Name: "_443._tcp", Type: "TLSA", Data: a}})
				return err
			}, kind: rfc2136.ErrZoneNotServed, detail: "NOTAUTH"},
		{name: "RFC2136-3.3/update-policy does not grant the key: REFUSED",
			op: func() error {
				_, err := l.provider("readonly-key.", l.roSecret).AppendRecords(ctx, bindZone, []libdns.Record{tlsa(a)})
				return err
			}, kind: rfc2136.ErrRefused, detail: "REFUSED"},
		{name: "RFC2136-3.4.1.3/record outside the zone refused before sending",
			op: func() error {
				_, err := p.SetRecords(ctx, bindZone, []libdns.Record{libdns.RR{Name: "_443._tcp.www.example.org.", Type: "TLSA", Data: a}})
				return err
			}, kind: rfc2136.ErrOutsideZone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.op()
			t.Logf("error: %v", err)
			if !errors.Is(err, tc.kind) {
				t.Fatalf("error %v, want %v", err, tc.kind)
			}
			var e *rfc2136.Error
			if !errors.As(err, &e) || e.TSIGError != tc.tsigError {
				t.Errorf("TSIG error of %v: %v, want %d", err, e, tc.tsigError)
			}
			if !strings.Contains(err.Error(), tc.detail) {
				t.Errorf("error %q does not say %q", err, tc.detail)
			}
			if s := tlsaSet(t, p, rel); !slices.Equal(s, before) {
				t.Errorf("zone changed: TLSA %q, was %q", s, before)
			}
		})
	}
}
