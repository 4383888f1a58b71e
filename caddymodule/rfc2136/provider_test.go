package rfc2136

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"
)

const tlsaData = "3 1 1 0c72ac70b745ac19998811b131d662c9ac69dbdbe7cb23e5b514b56664c5d3d6"

func tlsa(name, data string, ttl time.Duration) libdns.RR {
	return libdns.RR{Name: name, Type: "TLSA", TTL: ttl, Data: data}
}

// has reports whether the zone text holds line (as miekg/dns prints it).
func has(zone []string, line string) bool {
	rr, err := dns.NewRR(line)
	if err != nil {
		panic(err)
	}
	return slices.Contains(zone, rr.String())
}

// TestProviderOperations: each libdns operation against the in-process
// server, and what the zone holds afterwards.
func TestProviderOperations(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		op      func(p *Provider) ([]libdns.Record, error)
		want    []string // lines the zone must hold
		notWant []string // lines it must not hold
		ret     int      // records returned
	}{
		{
			name: "RFC2136-2.5.1/append TLSA records",
			op: func(p *Provider) ([]libdns.Record, error) {
				return p.AppendRecords(ctx, testZone, []libdns.Record{
					tlsa("_443._tcp.www", tlsaData, 300*time.Second),
					tlsa("_443._tcp.www", "2 1 1 aa", 300*time.Second),
				})
			},
			want: []string{"_443._tcp.www.example.test. 300 IN TLSA " + tlsaData, "_443._tcp.www.example.test. 300 IN TLSA 2 1 1 aa"},
			ret:  2,
		},
		{
			name: "RFC2136-2.5.1/append leaves the existing RRset members",
			op: func(p *Provider) ([]libdns.Record, error) {
				return p.AppendRecords(ctx, testZone, []libdns.Record{libdns.Address{Name: "www", TTL: 300 * time.Second, IP: mustAddr("192.0.2.3")}})
			},
			want: []string{"www.example.test. 300 IN A 192.0.2.1", "www.example.test. 300 IN A 192.0.2.2", "www.example.test. 300 IN A 192.0.2.3"},
			ret:  1,
		},
		{
			name: "RFC2136-3.4/set replaces the RRset, other types at the name stay",
			op: func(p *Provider) ([]libdns.Record, error) {
				return p.SetRecords(ctx, testZone, []libdns.Record{libdns.Address{Name: "www", TTL: 60 * time.Second, IP: mustAddr("192.0.2.9")}})
			},
			want:    []string{"www.example.test. 60 IN A 192.0.2.9", `www.example.test. 300 IN TXT "hello world"`},
			notWant: []string{"www.example.test. 300 IN A 192.0.2.1", "www.example.test. 300 IN A 192.0.2.2"},
			ret:     1,
		},
		{
			name: "RFC2136-3.4/set of two RRsets in one update",
			op: func(p *Provider) ([]libdns.Record, error) {
				return p.SetRecords(ctx, testZone, []libdns.Record{
					libdns.TXT{Name: "www", TTL: 300 * time.Second, Text: `new "quoted" text`},
					tlsa("_443._tcp", tlsaData, 0),
				})
			},
			want:    []string{`www.example.test. 300 IN TXT "new \"quoted\" text"`, "_443._tcp.example.test. 0 IN TLSA " + tlsaData},
			notWant: []string{`www.example.test. 300 IN TXT "hello world"`},
			ret:     2,
		},
		{
			name: "RFC2136-2.5.4/delete exact record",
			op: func(p *Provider) ([]libdns.Record, error) {
				return p.DeleteRecords(ctx, testZone, []libdns.Record{libdns.Address{Name: "www", TTL: 300 * time.Second, IP: mustAddr("192.0.2.1")}})
			},
			want:    []string{"www.example.test. 300 IN A 192.0.2.2"},
			notWant: []string{"www.example.test. 300 IN A 192.0.2.1"},
			ret:     1,
		},
		{
			name: "libdns-DeleteRecords/TTL given and different: nothing deleted",
			op: func(p *Provider) ([]libdns.Record, error) {
				return p.DeleteRecords(ctx, testZone, []libdns.Record{libdns.Address{Name: "www", TTL: 299 * time.Second, IP: mustAddr("192.0.2.1")}})
			},
			want: []string{"www.example.test. 300 IN A 192.0.2.1"},
			ret:  0,
		},
		{
			name: "libdns-DeleteRecords/empty data deletes the RRset",
			op: func(p *Provider) ([]libdns.Record, error) {
				return p.DeleteRecords(ctx, testZone, []libdns.Record{libdns.RR{Name: "www", Type: "A"}})
			},
			want:    []string{`www.example.test. 300 IN TXT "hello world"`},
			notWant: []string{"www.example.test. 300 IN A 192.0.2.1", "www.example.test. 300 IN A 192.0.2.2"},
			ret:     2,
		},
		{
			name: "libdns-DeleteRecords/empty type deletes every type at the name",
			op: func(p *Provider) ([]libdns.Record, error) {
				return p.DeleteRecords(ctx, testZone, []libdns.Record{libdns.RR{Name: "www"}})
			},
			notWant: []string{"www.example.test. 300 IN A 192.0.2.1", `www.example.test. 300 IN TXT "hello world"`},
			want:    []string{"ns.example.test. 3600 IN A 192.0.2.53"},
			ret:     3,
		},
		{
			name: "RFC2136-3.4.2.4/delete at the apex never matches SOA or DNSSEC records",
			op: func(p *Provider) ([]libdns.Record, error) {
				return p.DeleteRecords(ctx, testZone, []libdns.Record{libdns.RR{Name: "@", Type: "SOA"}, libdns.RR{Name: "@", Type: "RRSIG"}})
			},
			want: []string{"example.test. 3600 IN SOA ns.example.test. h.example.test. 1 3600 600 86400 300"},
			ret:  0,
		},
		{
			name: "libdns-DeleteRecords/absent record is ignored",
			op: func(p *Provider) ([]libdns.Record, error) {
				return p.DeleteRecords(ctx, testZone, []libdns.Record{tlsa("_443._tcp.www", tlsaData, 0)})
			},
			ret: 0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t)
			got, err := tc.op(s.provider())
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if len(got) != tc.ret {
				t.Errorf("returned %d records %v, want %d", len(got), got, tc.ret)
			}
			z := s.zoneText()
			for _, w := range tc.want {
				if !has(z, w) {
					t.Errorf("zone lacks %q:\n%s", w, strings.Join(z, "\n"))
				}
			}
			for _, w := range tc.notWant {
				if has(z, w) {
					t.Errorf("zone still holds %q", w)
				}
			}
		})
	}
}

// TestGetRecords: RFC 5936 AXFR over several TSIG-chained messages, typed
// libdns records out, DNSSEC records left out.
func TestGetRecords(t *testing.T) {
	s := newTestServer(t)
	p := s.provider()
	if _, err := p.AppendRecords(context.Background(), testZone, []libdns.Record{tlsa("_443._tcp.www", tlsaData, 300*time.Second)}); err != nil {
		t.Fatal(err)
	}
	recs, err := p.GetRecords(context.Background(), testZone)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		rr := r.RR()
		got = append(got, rr.Name+" "+rr.Type+" "+rr.Data)
		if rr.Type == "RRSIG" {
			t.Errorf("DNSSEC record returned: %v", rr)
		}
		if rr.Type == "A" {
			if _, ok := r.(libdns.Address); !ok {
				t.Errorf("A record returned as %T, want libdns.Address", r)
			}
		}
		if rr.Type == "TXT" && rr.Data != "hello world" {
			t.Errorf("TXT data %q, want unescaped %q", rr.Data, "hello world")
		}
	}
	for _, w := range []string{"@ SOA ns.example.test. h.example.test. 1 3600 600 86400 300", "www A 192.0.2.1", "_443._tcp.www TLSA " + tlsaData, "ns A 192.0.2.53"} {
		if !slices.Contains(got, w) {
			t.Errorf("GetRecords lacks %q; got %q", w, got)
		}
	}
	if len(got) != 7 { // SOA once, NS, ns A, 2 www A, TXT, TLSA
		t.Errorf("got %d records, want 7: %q", len(got), got)
	}
}

// TestProviderErrors: every way an operation fails, the precise kind it
// reports, and that the zone is unchanged.
func TestProviderErrors(t *testing.T) {
	append1 := func(p *Provider) error {
		_, err := p.AppendRecords(context.Background(), testZone, []libdns.Record{tlsa("_443._tcp.www", tlsaData, 300*time.Second)})
		return err
	}
	get := func(p *Provider) error {
		_, err := p.GetRecords(context.Background(), testZone)
		return err
	}
	tests := []struct {
		name      string
		fault     fault
		rcode     int
		setup     func(p *Provider)
		op        func(p *Provider) error
		kind      error
		tsigError uint16
		detail    string // substring of the message
		noSend    bool   // nothing may reach the server
	}{
		{name: "RFC8945-5.2.2/wrong secret: BADSIG", setup: func(p *Provider) { p.Secret = "d3Jvbmcgc2VjcmV0" },
			op: append1, kind: ErrTSIGRefused, tsigError: dns.RcodeBadSig, detail: "NOTAUTH with TSIG error BADSIG"},
		{name: "RFC8945-5.2.1/unknown key name: BADKEY", setup: func(p *Provider) { p.KeyName = "other-key" },
			op: append1, kind: ErrTSIGRefused, tsigError: dns.RcodeBadKey, detail: "BADKEY"},
		{name: "RFC8945-5.2.1/wrong algorithm: BADKEY", setup: func(p *Provider) { p.KeyAlg = "hmac-sha512" },
			op: append1, kind: ErrTSIGRefused, tsigError: dns.RcodeBadKey, detail: "BADKEY"},
		{name: "RFC8945-5.2.3/our clock an hour behind: BADTIME", setup: func(p *Provider) { p.Now = func() time.Time { return time.Now().Add(-time.Hour) } },
			op: append1, kind: ErrTSIGRefused, tsigError: dns.RcodeBadTime, detail: "BADTIME"},
		{name: "RFC8945-5.2.3/server says BADTIME", fault: faultBadTime,
			op: append1, kind: ErrTSIGRefused, tsigError: dns.RcodeBadTime, detail: "BADTIME"},
		{name: "RFC8945-5.2.2/AXFR with the wrong secret: BADSIG", setup: func(p *Provider) { p.Secret = "d3Jvbmcgc2VjcmV0" },
			op: get, kind: ErrTSIGRefused, tsigError: dns.RcodeBadSig},
		{name: "RFC2136-2.2/zone not served: NOTAUTH",
			op: func(p *Provider) error {
				_, err := p.AppendRecords(context.Background(), "other.test", []libdns.Record{tlsa("_443._tcp", tlsaData, 0)})
				return err
			}, kind: ErrZoneNotServed, detail: "NOTAUTH"},
		{name: "RFC5936-2.2/AXFR of a zone not served: NOTAUTH",
			op:   func(p *Provider) error { _, err := p.GetRecords(context.Background(), "other.test."); return err },
			kind: ErrZoneNotServed},
		{name: "RFC2136-2.2/NOTZONE", fault: faultRcode, rcode: dns.RcodeNotZone, op: append1, kind: ErrZoneNotServed, detail: "NOTZONE"},
		{name: "RFC2136-3.3/policy refuses: REFUSED", fault: faultRcode, rcode: dns.RcodeRefused, op: append1, kind: ErrRefused, detail: "REFUSED"},
		{name: "RFC2136-3.2/prerequisite: NXRRSET", fault: faultRcode, rcode: dns.RcodeNXRrset, op: append1, kind: ErrPrerequisite, detail: "NXRRSET"},
		{name: "RFC2136-3.2/prerequisite: YXDOMAIN", fault: faultRcode, rcode: dns.RcodeYXDomain, op: append1, kind: ErrPrerequisite, detail: "YXDOMAIN"},
		{name: "RFC2136-2.2/SERVFAIL", fault: faultRcode, rcode: dns.RcodeServerFailure, op: append1, kind: ErrServer, detail: "SERVFAIL"},
		{name: "RFC2136-2.2/FORMERR", fault: faultRcode, rcode: dns.RcodeFormatError, op: append1, kind: ErrServer, detail: "FORMERR"},
		{name: "RFC8945-5.3/unsigned NOERROR is not success", fault: faultUnsigned, op: append1, kind: ErrResponseTSIG, detail: "not signed"},
		{name: "RFC8945-5.3/NOERROR with a bad MAC is not success", fault: faultBadMAC, op: append1, kind: ErrResponseTSIG},
		{name: "RFC8945-5.3/NOERROR signed with another secret is not success", fault: faultOtherKey, op: append1, kind: ErrResponseTSIG},
		{name: "RFC8945-5.3/NOERROR signed with another algorithm is not success", fault: faultOtherAlg, op: append1, kind: ErrResponseTSIG, detail: "algorithm"},
		{name: "RFC8945-5.2.2.1/truncated MAC is not success", fault: faultAXFRTruncatedMAC, op: append1, kind: ErrResponseTSIG, detail: "truncated"},
		{name: "RFC1035-7.3/answer with another ID", fault: faultWrongID, op: append1, kind: ErrBadResponse},
		{name: "RFC8945-5.3.1/AXFR message without TSIG", fault: faultAXFRUnsigned, op: get, kind: ErrResponseTSIG, detail: "message 2"},
		{name: "RFC8945-5.3.1/AXFR message with a bad MAC", fault: faultAXFRBadMAC, op: get, kind: ErrResponseTSIG, detail: "message 2"},
		{name: "RFC8945-5.3.1/AXFR messages not chained", fault: faultAXFRNotChained, op: get, kind: ErrResponseTSIG, detail: "message 2"},
		{name: "RFC8945-5.3.1/delete reads the zone first: bad AXFR, no update", fault: faultAXFRBadMAC,
			op: func(p *Provider) error {
				_, err := p.DeleteRecords(context.Background(), testZone, []libdns.Record{libdns.RR{Name: "www"}})
				return err
			}, kind: ErrResponseTSIG},
		{name: "timeout/no answer", fault: faultSilent, setup: func(p *Provider) { p.Timeout = 300 * time.Millisecond },
			op: append1, kind: ErrTimeout, detail: "unknown"},
		{name: "outside zone/absolute name refused before sending",
			op: func(p *Provider) error {
				_, err := p.SetRecords(context.Background(), testZone, []libdns.Record{tlsa("_443._tcp.www.example.org.", tlsaData, 0)})
				return err
			}, kind: ErrOutsideZone, noSend: true},
		{name: "outside zone/one bad record stops the whole update",
			op: func(p *Provider) error {
				_, err := p.AppendRecords(context.Background(), testZone, []libdns.Record{
					tlsa("_443._tcp.www", tlsaData, 0), tlsa("wwwexample.test.", tlsaData, 0)})
				return err
			}, kind: ErrOutsideZone, noSend: true},
		{name: "outside zone/delete refused before sending",
			op: func(p *Provider) error {
				_, err := p.DeleteRecords(context.Background(), testZone, []libdns.Record{libdns.RR{Name: "example.org."}})
				return err
			}, kind: ErrOutsideZone, noSend: true},
		{name: "records/data that parses as another owner",
			op: func(p *Provider) error {
				_, err := p.AppendRecords(context.Background(), testZone, []libdns.Record{libdns.RR{Name: "www", Type: "A", Data: "192.0.2.1\nevil.example.org. 0 IN A 192.0.2.66"}})
				return err
			}, kind: ErrRecord, noSend: true},
		{name: "RFC2136-3.4.1.2/meta type refused", op: func(p *Provider) error {
			_, err := p.AppendRecords(context.Background(), testZone, []libdns.Record{libdns.RR{Name: "www", Type: "ANY", Data: "x"}})
			return err
		}, kind: ErrRecord, noSend: true},
		{name: "config/secret not base64", setup: func(p *Provider) { p.Secret = "not base64!" }, op: append1, kind: ErrConfig, noSend: true},
		{name: "config/unknown algorithm", setup: func(p *Provider) { p.KeyAlg = "hmac-md5" }, op: append1, kind: ErrConfig, noSend: true},
		{name: "config/timeout above the bound", setup: func(p *Provider) { p.Timeout = time.Hour }, op: append1, kind: ErrConfig, noSend: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t)
			s.fault, s.rcode = tc.fault, tc.rcode
			before := s.zoneText()
			p := s.provider()
			if tc.setup != nil {
				tc.setup(p)
			}
			err := tc.op(p)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, tc.kind) {
				t.Fatalf("error %q is not %v", err, tc.kind)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *Error", err)
			}
			if e.TSIGError != tc.tsigError {
				t.Errorf("TSIG error %d, want %d (%v)", e.TSIGError, tc.tsigError, err)
			}
			if !strings.Contains(err.Error(), tc.detail) {
				t.Errorf("error %q does not say %q", err, tc.detail)
			}
			if tc.noSend && s.received() != 0 {
				t.Errorf("%d messages reached the server", s.received())
			}
			if tc.fault != faultNone && tc.fault != faultRcode && tc.fault != faultBadTime && tc.fault != faultSilent {
				return // the fault is in the answer: the server may have applied it
			}
			if after := s.zoneText(); !slices.Equal(before, after) {
				t.Errorf("zone changed:\n%s", strings.Join(after, "\n"))
			}
		})
	}
}

// TestProviderContextCancel: the caller's cancellation ends a pending
// operation at once, as libdns requires.
func TestProviderContextCancel(t *testing.T) {
	s := newTestServer(t)
	s.fault = faultSilent
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := s.provider().GetRecords(ctx, testZone)
	if err == nil || !errors.Is(err, context.Canceled) || !errors.Is(err, ErrNetwork) || errors.Is(err, ErrTimeout) {
		t.Fatalf("error %v, want ErrNetwork wrapping context.Canceled (a cancel is not a timeout)", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v after cancel", d)
	}
}

// TestDeleteRecordsZoneChanged: the zone changes between DeleteRecords'
// AXFR and its UPDATE. The value-dependent prerequisite (RFC 2136 §2.4.2)
// makes the server refuse the stale update (NXRRSET, §3.2.5), the
// provider reads the zone again, and what it returns is exactly what was
// deleted.
func TestDeleteRecordsZoneChanged(t *testing.T) {
	s := newTestServer(t)
	s.fault = faultChangeAfterAXFR
	got, err := s.provider().DeleteRecords(context.Background(), testZone, []libdns.Record{libdns.RR{Name: "www", Type: "A"}})
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, r := range got {
		ips = append(ips, r.RR().Data)
	}
	slices.Sort(ips)
	if want := []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}; !slices.Equal(ips, want) {
		t.Errorf("returned %q, want %q", ips, want)
	}
	for _, line := range s.zoneText() {
		if strings.HasPrefix(line, "www.example.test.\t") && strings.Contains(line, "\tA\t") {
			t.Errorf("zone still holds %q", line)
		}
	}
}

// bulk is n TLSA records at distinct owners.
func bulk(n int) []libdns.Record {
	var recs []libdns.Record
	for i := range n {
		recs = append(recs, tlsa(fmt.Sprintf("_%d._tcp.bulk", 1000+i), tlsaData, 300*time.Second))
	}
	return recs
}

// TestUpdateTooLarge: an Append or Set that cannot fit in one DNS message
// (RFC 1035 §4.2.2) is refused before sending, since splitting it would
// break its atomicity (RFC 2136 §3.4).
func TestUpdateTooLarge(t *testing.T) {
	s := newTestServer(t)
	_, err := s.provider().SetRecords(context.Background(), testZone, bulk(2000))
	if !errors.Is(err, ErrRecord) || !strings.Contains(err.Error(), "more than the 65535 of one DNS message") {
		t.Fatalf("error %v, want ErrRecord about the message size", err)
	}
	if s.received() != 0 {
		t.Errorf("%d messages reached the server", s.received())
	}
}

// TestDeleteRecordsBatches: deletions that do not fit in one UPDATE with
// their prerequisites go in several, whole RRsets each, and all are
// deleted.
func TestDeleteRecordsBatches(t *testing.T) {
	s := newTestServer(t)
	p := s.provider()
	ctx := context.Background()
	recs := bulk(1500)
	for i := 0; i < len(recs); i += 500 {
		if _, err := p.AppendRecords(ctx, testZone, recs[i:i+500]); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	s.ups = 0
	s.mu.Unlock()
	got, err := p.DeleteRecords(ctx, testZone, recs)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs) {
		t.Errorf("deleted %d records, want %d", len(got), len(recs))
	}
	if s.ups < 2 {
		t.Errorf("%d UPDATE(s); the deletions do not fit in one", s.ups)
	}
	for _, line := range s.zoneText() {
		if strings.Contains(line, "._tcp.bulk.") {
			t.Fatalf("zone still holds %q", line)
		}
	}
}
