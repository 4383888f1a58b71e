package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/rfc2136"
	"github.com/caddy-dane/caddy-dane/internal/labconf"
)

// publishLab is the DNS side of the dane_publish tests: BIND 9 as the
// primary of example.test. (startBIND: dnssec-policy signs every update
// as it applies it), a validating Unbound in front of it whose only trust
// anchor is the zone's KSK as BIND serves it, and the update proxy the
// publisher's provider talks to, so that updates can be cut off while the
// zone stays readable.
type publishLab struct {
	*bindLab
	anchors  string // DNSKEY of the zone's KSK (zone-file line)
	resolver string // Unbound, 127.0.0.1:<port>
	unbound  *proc
	proxy    *updateProxy
}

// publishCacheTTL caps Unbound's cache (seconds): with the records' TTL
// of 2 s, a change is visible to a client at most 2×TTL after BIND
// applied it.
const publishCacheTTL = 2

func startPublishLab(t *testing.T) *publishLab {
	t.Helper()
	b := startBIND(t)
	l := &publishLab{bindLab: b}
	keys, _, err := b.query(bindZone, dns.TypeDNSKEY)
	if err != nil {
		t.Fatal(err)
	}
	var anchors strings.Builder
	for _, k := range keys {
		if k.(*dns.DNSKEY).Flags&dns.SEP != 0 {
			anchors.WriteString(k.String() + "\n")
		}
	}
	if anchors.Len() == 0 {
		t.Fatalf("BIND serves no KSK for %s: %v", bindZone, keys)
	}
	l.anchors = filepath.Join(b.dir, "anchors.key")
	if err := os.WriteFile(l.anchors, []byte(anchors.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if l.proxy, err = startUpdateProxy(b.server, "update-key.", b.secret); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.proxy.Close)
	_, port, _ := strings.Cut(b.server, ":")
	dir := t.TempDir()
	l.unbound, l.resolver, err = startZoneUnbound(dir, mustAtoi(t, port), bindZone, l.anchors, publishCacheTTL)
	if err != nil {
		t.Fatalf("unbound: %v\n%s", err, tailFile(filepath.Join(dir, "unbound.log"), 20))
	}
	t.Cleanup(func() { l.unbound.Stop(5 * time.Second) })
	return l
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("port %q: %v", s, err)
	}
	return n
}

// unboundTLSA asks the validating Unbound for the TLSA RRset at owner and
// returns its records ("u s m hex") and whether the answer was
// authenticated (AD).
func (l *publishLab) unboundTLSA(owner string) (recs []string, ad bool, rcode int, err error) {
	q := new(dns.Msg)
	q.SetQuestion(owner, dns.TypeTLSA)
	q.SetEdns0(1232, true)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(q, l.resolver)
	if err != nil {
		return nil, false, -1, err
	}
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TLSA); ok {
			recs = append(recs, fmt.Sprintf("%d %d %d %s", t.Usage, t.Selector, t.MatchingType, strings.ToLower(t.Certificate)))
		}
	}
	return recs, r.AuthenticatedData, r.Rcode, nil
}

// TestPublishLab checks the lab before the publisher runs in it: a TLSA
// RRset written through the update proxy is signed by BIND and proven
// Secure by Unbound (AD) with the KSK anchor; with the proxy in refused
// and drop mode the provider fails with the error kinds the publisher's
// reasons come from, and nothing reaches the zone.
func TestPublishLab(t *testing.T) {
	l := startPublishLab(t)
	ctx := context.Background()
	p := &rfc2136.Provider{Server: l.proxy.Addr, KeyName: "update-key.", Secret: l.secret, Timeout: 2 * time.Second}
	const rel = "_8443._tcp.lab"
	owner := rel + "." + bindZone
	rec := "3 1 1 " + strings.Repeat("ab", 32)
	tlsa := []libdns.Record{libdns.RR{Name: rel, Type: "TLSA", TTL: 2 * time.Second, Data: rec}}

	if _, err := p.SetRecords(ctx, bindZone, tlsa); err != nil {
		t.Fatalf("SetRecords through the proxy: %v", err)
	}
	if !pollUntil(ctxTimeout(t, 10*time.Second), func() bool {
		recs, ad, _, err := l.unboundTLSA(owner)
		return err == nil && ad && len(recs) == 1 && recs[0] == rec
	}) {
		recs, ad, rc, err := l.unboundTLSA(owner)
		t.Fatalf("Unbound: TLSA %q AD %v rcode %d err %v, want %q with AD\n%s", recs, ad, rc, err, rec,
			tailFile(filepath.Join(filepath.Dir(l.unbound.Log), "unbound.log"), 20))
	}
	provenTLSA(t, l.bindLab, owner, []string{rec})

	for _, tc := range []struct {
		name string
		mode proxyMode
		kind error
	}{
		{"RFC2136-3.3/primary refuses the update (signed REFUSED)", proxyRefused, rfc2136.ErrRefused},
		{"RFC2136-3.8/primary unreachable (no answer)", proxyDrop, rfc2136.ErrTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l.proxy.Set(tc.mode)
			defer l.proxy.Set(proxyForward)
			before := l.proxy.Count(tc.mode)
			_, err := p.SetRecords(ctx, bindZone, []libdns.Record{libdns.RR{Name: rel, Type: "TLSA", TTL: 2 * time.Second, Data: "3 1 1 " + strings.Repeat("cd", 32)}})
			t.Logf("error: %v", err)
			if !errors.Is(err, tc.kind) {
				t.Fatalf("error %v, want %v", err, tc.kind)
			}
			if strings.Contains(err.Error(), "not authenticated") {
				t.Errorf("the proxy's refusal is not signed: %v", err)
			}
			if l.proxy.Count(tc.mode) == before {
				t.Errorf("the proxy handled nothing in mode %v", tc.mode)
			}
			if s := tlsaSet(t, l.provider("update-key.", l.secret), rel); len(s) != 1 || s[0] != rec {
				t.Errorf("zone changed: TLSA %q", s)
			}
		})
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// freePorts returns n distinct free loopback ports.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	seen := map[int]bool{}
	var out []int
	for len(out) < n {
		p, err := labconf.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}
