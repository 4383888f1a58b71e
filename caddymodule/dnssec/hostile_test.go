package dnssec

import (
	"context"
	"encoding/base64"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-dane/caddy-dane/internal/zonekit"
	"github.com/miekg/dns"
)

// cpuTime returns the process's user+system CPU time.
func cpuTime(t testing.TB) time.Duration {
	var ru syscall.Rusage
	must(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// collidingKeys returns n distinct P-256 DNSKEYs (garbage public keys)
// whose key tag is tag (RFC 4034 Appendix B: the last two octets of the
// key are chosen to land on it).
func collidingKeys(t testing.TB, tag uint16, n int) []*dns.DNSKEY {
	var out []*dns.DNSKEY
	for i := 0; len(out) < n; i++ {
		pub := make([]byte, 64)
		pub[0], pub[1], pub[2] = byte(i), byte(i>>8), 0x5a
		k := &dns.DNSKEY{Hdr: dns.RR_Header{Name: "example.test.", Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
			Flags: dns.ZONE, Protocol: 3, Algorithm: dns.ECDSAP256SHA256}
		for x := 0; x < 1<<16; x++ {
			pub[62], pub[63] = byte(x>>8), byte(x)
			k.PublicKey = base64.StdEncoding.EncodeToString(pub)
			if k.KeyTag() == tag {
				out = append(out, k)
				break
			}
			if x > 4 { // the tag is linear in the last two octets: jump there
				k2 := *k
				pub[62], pub[63] = 0, 0
				k2.PublicKey = base64.StdEncoding.EncodeToString(pub)
				base := uint32(k2.KeyTag())
				d := (uint32(tag) + 0x10000 - base) & 0xffff
				pub[62], pub[63] = byte(d>>8), byte(d)
				k2.PublicKey = base64.StdEncoding.EncodeToString(pub)
				if k2.KeyTag() == tag {
					out = append(out, &k2)
				}
				break
			}
		}
	}
	return out
}

// TestPathologicalZones: KeyTrap (CVE-2023-50387: many keys sharing a key
// tag × many signatures) and NSEC3 hash exhaustion (CVE-2023-50868: long
// names and many NSEC3 records at the iteration limit) end quickly and
// never Secure. The CPU time spent is logged.
func TestPathologicalZones(t *testing.T) {
	t.Run("KeyTrap", func(t *testing.T) {
		tr := newTree(t, hooks{
			beforeSign: func(tr *tree) {
				_, zsk := tr.zone.Keys()
				tr.zone.PublishDNSKEY(collidingKeys(t, zsk.DNSKEY.KeyTag(), 64)...)
			},
			afterSign: func(tr *tree) {
				_, zsk := tr.zone.Keys()
				tr.srv.Tamper = func(q, resp *dns.Msg) {
					var sig *dns.RRSIG
					for _, rr := range resp.Answer {
						if s, ok := rr.(*dns.RRSIG); ok && s.TypeCovered == dns.TypeTLSA {
							sig = s
						}
					}
					if sig == nil {
						return
					}
					// 200 signatures by "the" ZSK tag, none valid.
					var out []dns.RR
					for _, rr := range resp.Answer {
						if rr.Header().Rrtype != dns.TypeRRSIG {
							out = append(out, rr)
						}
					}
					for i := 0; i < 200; i++ {
						s := dns.Copy(sig).(*dns.RRSIG)
						s.KeyTag = zsk.DNSKEY.KeyTag()
						b, _ := base64.StdEncoding.DecodeString(s.Signature)
						b[i%len(b)] ^= byte(i + 1)
						s.Signature = base64.StdEncoding.EncodeToString(b)
						out = append(out, s)
					}
					resp.Answer = out
				}
			},
		})
		v := newValidator(t, tr.srv, dsAnchors(tr.root), newClock())
		start, wall := cpuTime(t), time.Now()
		r := v.Lookup(context.Background(), tlsaName, dns.TypeTLSA)
		cpu := cpuTime(t) - start
		t.Logf("%s\nKeyTrap: 65 keys with one tag × 200 RRSIGs: %s CPU, %s wall", r, cpu, time.Since(wall))
		if r.Status == Secure || cpu > 2*time.Second {
			t.Fatalf("status %s after %s CPU", r.Status, cpu)
		}
	})
	t.Run("NSEC3 hash exhaustion", func(t *testing.T) {
		tr := newTree(t, hooks{beforeSign: func(tr *tree) {
			tr.zone.SetNSEC3(&zonekit.NSEC3Params{Iterations: 100, Salt: strings.Repeat("ab", 64)})
			for i := 0; i < 200; i++ {
				tr.zone.MustAdd("n" + strings.Repeat("x", i%50) + string(rune('a'+i%26)) + ".pad IN A 192.0.2.1")
			}
		}})
		// 120 labels: a closest encloser proof needs a hash per label.
		qname := strings.Repeat("a.", 120) + "example.test."
		v := newValidator(t, tr.srv, dsAnchors(tr.root), newClock())
		start, wall := cpuTime(t), time.Now()
		r := v.Lookup(context.Background(), qname, dns.TypeTLSA)
		cpu := cpuTime(t) - start
		t.Logf("%s\nNSEC3 100 iterations, 64-byte salt, 120-label name: %s CPU, %s wall", r, cpu, time.Since(wall))
		if r.Status == Secure || !errorsIs(r.Err, ErrLimitExceeded) || cpu > 2*time.Second {
			t.Fatalf("status %s (%v) after %s CPU", r.Status, r.Err, cpu)
		}
	})
	t.Run("many NSEC3 records", func(t *testing.T) {
		tr := newTree(t, hooks{beforeSign: func(tr *tree) {
			tr.zone.SetNSEC3(&zonekit.NSEC3Params{Iterations: 100})
		}, afterSign: func(tr *tree) {
			all := tr.zone.Records()
			tr.srv.Tamper = func(q, resp *dns.Msg) {
				if resp.Rcode == dns.RcodeNameError {
					for _, rr := range all { // every NSEC3 of the zone, signed
						if t := rr.Header().Rrtype; t == dns.TypeNSEC3 || (t == dns.TypeRRSIG && rr.(*dns.RRSIG).TypeCovered == dns.TypeNSEC3) {
							resp.Ns = append(resp.Ns, rr)
						}
					}
				}
			}
		}})
		v := newValidator(t, tr.srv, dsAnchors(tr.root), newClock())
		start := cpuTime(t)
		r := v.Lookup(context.Background(), "_443._tcp.nope.example.test.", dns.TypeTLSA)
		cpu := cpuTime(t) - start
		t.Logf("%s\nwhole NSEC3 chain in one response: %s CPU", r, cpu)
		if r.Status == Secure || cpu > 2*time.Second {
			t.Fatalf("status %s after %s", r.Status, cpu)
		}
	})
}
