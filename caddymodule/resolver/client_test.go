package resolver

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testServer is a miekg/dns server on 127.0.0.1:0, UDP and TCP on the
// same port, with separate handlers so that tests can make them differ.
type testServer struct {
	Addr    string
	udpHits atomic.Int32
	tcpHits atomic.Int32
	mu      sync.Mutex
	ids     []uint16 // IDs of the UDP queries received
}

// startServer starts a server; a nil tcp handler means no TCP listener
// (connections are refused).
func startServer(t *testing.T, udp, tcp func(w dns.ResponseWriter, r *dns.Msg)) *testServer {
	t.Helper()
	ts := &testServer{}
	var (
		pc net.PacketConn
		l  net.Listener
	)
	for i := 0; ; i++ {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if tcp == nil {
			break
		}
		if l, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if i == 20 {
			t.Fatalf("no port free for both UDP and TCP: %v", err)
		}
	}
	ts.Addr = pc.LocalAddr().String()
	start := func(s *dns.Server) {
		ready := make(chan struct{})
		s.NotifyStartedFunc = func() { close(ready) }
		go s.ActivateAndServe()
		<-ready
		t.Cleanup(func() { s.Shutdown() })
	}
	start(&dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		ts.udpHits.Add(1)
		ts.mu.Lock()
		ts.ids = append(ts.ids, r.Id)
		ts.mu.Unlock()
		if udp != nil {
			udp(w, r)
		}
	})})
	if tcp != nil {
		start(&dns.Server{Listener: l, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
			ts.tcpHits.Add(1)
			tcp(w, r)
		})})
	}
	return ts
}

// closedUDPPort returns an address where nothing listens (ICMP port
// unreachable, seen as "connection refused").
func closedUDPPort(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

func answerA(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Answer = append(m.Answer, &dns.A{
		Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
		A:   net.IPv4(192, 0, 2, 1),
	})
	w.WriteMsg(m)
}

func rcode(code int) func(dns.ResponseWriter, *dns.Msg) {
	return func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, code)
		w.WriteMsg(m)
	}
}

func drop(dns.ResponseWriter, *dns.Msg) {}

func truncated(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Truncated = true
	w.WriteMsg(m)
}

// then writes the raw bytes of bad(r), then lets good answer.
func then(bad func(r *dns.Msg) []byte, good func(dns.ResponseWriter, *dns.Msg)) func(dns.ResponseWriter, *dns.Msg) {
	return func(w dns.ResponseWriter, r *dns.Msg) {
		w.Write(bad(r))
		if good != nil {
			good(w, r)
		}
	}
}

func packed(m *dns.Msg) []byte {
	b, err := m.Pack()
	if err != nil {
		panic(err)
	}
	return b
}

func wrongID(r *dns.Msg) []byte {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Id = r.Id + 1
	return packed(m)
}

func wrongQuestion(r *dns.Msg) []byte {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Question[0].Name = "attacker.example."
	return packed(m)
}

func wrongType(r *dns.Msg) []byte {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Question[0].Qtype = dns.TypeAAAA
	return packed(m)
}

func notResponse(r *dns.Msg) []byte {
	m := r.Copy()
	m.Response = false
	return packed(m)
}

func garbage(r *dns.Msg) []byte {
	b := packed(r)
	b[2] |= 0x80                      // QR
	return append(b[:14], 0xff, 0xff) // question cut short
}

func upperCaseQuestion(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Question[0].Name = strings.ToUpper(r.Question[0].Name)
	m.Answer = append(m.Answer, &dns.A{
		Hdr: dns.RR_Header{Name: m.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
		A:   net.IPv4(192, 0, 2, 1),
	})
	w.WriteMsg(m)
}

func query() *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion("www.example.test.", dns.TypeA)
	q.SetEdns0(1232, true)
	q.CheckingDisabled = true
	q.Id = 4242
	return q
}

func TestExchange(t *testing.T) {
	type srv struct {
		udp, tcp func(dns.ResponseWriter, *dns.Msg)
	}
	tests := []struct {
		name     string
		servers  []srv
		closed   bool // prepend a closed port to the servers
		timeout  time.Duration
		attempts int
		ctx      func() (context.Context, context.CancelFunc)

		wantRcode int    // when no error
		wantErr   string // substring of the error
		isTimeout bool
		check     func(t *testing.T, srvs []*testServer, err error, elapsed time.Duration)
	}{
		{
			name:    "answer",
			servers: []srv{{udp: answerA}},
			check: func(t *testing.T, s []*testServer, _ error, _ time.Duration) {
				if s[0].udpHits.Load() != 1 || s[0].tcpHits.Load() != 0 {
					t.Errorf("hits udp=%d tcp=%d, want 1/0", s[0].udpHits.Load(), s[0].tcpHits.Load())
				}
			},
		},
		{
			name:    "RFC 7766 §5 truncated answer retried over TCP",
			servers: []srv{{udp: truncated, tcp: answerA}},
			check: func(t *testing.T, s []*testServer, _ error, _ time.Duration) {
				if s[0].tcpHits.Load() != 1 {
					t.Errorf("tcp hits = %d, want 1", s[0].tcpHits.Load())
				}
			},
		},
		{
			name:    "RFC 7766 §5 truncated answer, TCP refused, next server",
			servers: []srv{{udp: truncated}, {udp: answerA}},
		},
		{
			name:     "dropped packets time out within Timeout×Attempts",
			servers:  []srv{{udp: drop}},
			timeout:  150 * time.Millisecond,
			attempts: 2,
			wantErr:  "dns timeout: 127.0.0.1:",
			check: func(t *testing.T, s []*testServer, err error, el time.Duration) {
				if !strings.HasSuffix(err.Error(), "(2 tries)") {
					t.Errorf("error %q does not end in (2 tries)", err)
				}
				if el < 290*time.Millisecond || el > 600*time.Millisecond {
					t.Errorf("took %v, want about 300ms", el)
				}
				if s[0].udpHits.Load() != 2 {
					t.Errorf("udp hits = %d, want 2", s[0].udpHits.Load())
				}
			},
			isTimeout: true,
		},
		{
			name:    "RFC 1035 §4.1.1 SERVFAIL, then the next server answers",
			servers: []srv{{udp: rcode(dns.RcodeServerFailure)}, {udp: answerA}},
		},
		{
			name:    "RFC 1035 §4.1.1 REFUSED, then the next server answers",
			servers: []srv{{udp: rcode(dns.RcodeRefused)}, {udp: answerA}},
		},
		{
			name:    "timeout, then the next server answers",
			servers: []srv{{udp: drop}, {udp: answerA}},
			timeout: 100 * time.Millisecond,
		},
		{
			name:    "network error (port closed), then the next server answers",
			closed:  true,
			servers: []srv{{udp: answerA}},
		},
		{
			name:      "every server SERVFAIL: the SERVFAIL answer, asked once each",
			servers:   []srv{{udp: rcode(dns.RcodeServerFailure)}, {udp: rcode(dns.RcodeServerFailure)}},
			wantRcode: dns.RcodeServerFailure,
			check: func(t *testing.T, s []*testServer, _ error, _ time.Duration) {
				for i := range s {
					if s[i].udpHits.Load() != 1 {
						t.Errorf("server %d asked %d times, want 1", i, s[i].udpHits.Load())
					}
				}
			},
		},
		{
			name:    "RFC 1035 §4.1.1 NXDOMAIN is an answer, not a failure",
			servers: []srv{{udp: rcode(dns.RcodeNameError)}, {udp: answerA}},
			check: func(t *testing.T, s []*testServer, _ error, _ time.Duration) {
				if s[1].udpHits.Load() != 0 {
					t.Error("second server asked after NXDOMAIN")
				}
			},
			wantRcode: dns.RcodeNameError,
		},
		{
			name:    "REFUSED and timeout: all failed, not a timeout",
			servers: []srv{{udp: rcode(dns.RcodeRefused)}, {udp: drop}},
			timeout: 50 * time.Millisecond,
			wantErr: "dns: all resolvers failed: dns: 127.0.0.1:",
			check: func(t *testing.T, _ []*testServer, err error, _ time.Duration) {
				var se *ServerError
				if !errors.As(err, &se) || se.Rcode != dns.RcodeRefused {
					t.Errorf("errors.As(*ServerError) = %v, want REFUSED", se)
				}
				var ae *AllFailedError
				if !errors.As(err, &ae) || len(ae.Errors) != 2 {
					t.Fatalf("want *AllFailedError with 2 errors, got %#v", err)
				}
				if !errors.Is(ae.Errors[1], ErrTimeout) {
					t.Errorf("second error %v is not a timeout", ae.Errors[1])
				}
				if !strings.Contains(err.Error(), "REFUSED") || !strings.Contains(err.Error(), "(2 tries)") {
					t.Errorf("error %q lacks REFUSED or (2 tries)", err)
				}
			},
		},
		{
			name:    "RFC 5452 §9.1 wrong ID ignored",
			servers: []srv{{udp: then(wrongID, answerA)}},
		},
		{
			name:    "RFC 5452 §9.1 wrong question name ignored",
			servers: []srv{{udp: then(wrongQuestion, answerA)}},
		},
		{
			name:    "RFC 5452 §9.1 wrong question type ignored",
			servers: []srv{{udp: then(wrongType, answerA)}},
		},
		{
			name:    "RFC 1035 §4.1.1 QR bit clear ignored",
			servers: []srv{{udp: then(notResponse, answerA)}},
		},
		{
			name:    "undecodable datagram ignored",
			servers: []srv{{udp: then(garbage, answerA)}},
		},
		{
			name:    "RFC 4343 §2 question name compared case-insensitively",
			servers: []srv{{udp: upperCaseQuestion}},
		},
		{
			name:      "RFC 5452 §9.1 only wrong IDs: timeout that says so",
			servers:   []srv{{udp: then(wrongID, nil)}},
			timeout:   50 * time.Millisecond,
			attempts:  1,
			isTimeout: true,
			wantErr:   "(1 try; ignored 1 response, last: wrong ID",
		},
		{
			name:      "RFC 5452 §9.1 wrong question over TCP is an error",
			servers:   []srv{{udp: truncated, tcp: func(w dns.ResponseWriter, r *dns.Msg) { w.Write(wrongQuestion(r)) }}},
			attempts:  1,
			wantErr:   "over tcp: answer does not match the query: wrong question attacker.example.",
			isTimeout: false,
		},
		{
			name:    "context canceled during a try",
			servers: []srv{{udp: drop}},
			timeout: 5 * time.Second,
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(100*time.Millisecond, cancel)
				return ctx, cancel
			},
			wantErr: "dns: query canceled after 1 try: context canceled",
			check: func(t *testing.T, _ []*testServer, err error, el time.Duration) {
				if !errors.Is(err, context.Canceled) {
					t.Errorf("errors.Is(err, context.Canceled) = false for %v", err)
				}
				if el > time.Second {
					t.Errorf("took %v after cancel at 100ms", el)
				}
			},
		},
		{
			name:    "context deadline before Timeout: a timeout",
			servers: []srv{{udp: drop}, {udp: drop}},
			timeout: 5 * time.Second,
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 150*time.Millisecond)
			},
			isTimeout: true,
			wantErr:   "context deadline exceeded",
			check: func(t *testing.T, s []*testServer, err error, el time.Duration) {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("errors.Is(err, DeadlineExceeded) = false for %v", err)
				}
				if el > 500*time.Millisecond {
					t.Errorf("took %v, want about 150ms", el)
				}
				if s[1].udpHits.Load() != 0 {
					t.Error("second server asked after the context deadline")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var (
				srvs  []*testServer
				addrs []string
			)
			if tt.closed {
				addrs = append(addrs, closedUDPPort(t))
			}
			for _, s := range tt.servers {
				ts := startServer(t, s.udp, s.tcp)
				srvs = append(srvs, ts)
				addrs = append(addrs, ts.Addr)
			}
			c := &Client{Servers: addrs, Timeout: tt.timeout, Attempts: tt.attempts}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if tt.ctx != nil {
				ctx, cancel = tt.ctx()
			}
			defer cancel()
			q := query()
			before := q.String()
			start := time.Now()
			resp, err := c.Exchange(ctx, q)
			elapsed := time.Since(start)
			t.Logf("%v: err=%v", elapsed.Round(time.Millisecond), err)
			if q.String() != before {
				t.Errorf("query modified:\n%s\nwant\n%s", q, before)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if resp.Id != q.Id {
					t.Errorf("answer ID %d, want the query's %d", resp.Id, q.Id)
				}
				if resp.Rcode != tt.wantRcode {
					t.Errorf("rcode %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tt.wantRcode])
				}
				if tt.wantRcode == dns.RcodeSuccess && len(resp.Answer) != 1 {
					t.Errorf("answer section %v, want one A", resp.Answer)
				}
			} else {
				if err == nil {
					t.Fatalf("no error, answer %v", resp)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not contain %q", err, tt.wantErr)
				}
				if got := errors.Is(err, ErrTimeout); got != tt.isTimeout {
					t.Errorf("errors.Is(err, ErrTimeout) = %v, want %v", got, tt.isTimeout)
				}
				var te *TimeoutError
				if got := errors.As(err, &te); got != tt.isTimeout {
					t.Errorf("errors.As(err, *TimeoutError) = %v, want %v", got, tt.isTimeout)
				}
			}
			if tt.check != nil {
				tt.check(t, srvs, err, elapsed)
			}
		})
	}
}

// Each try carries a fresh random ID, never the caller's.
func TestExchangeFreshIDs(t *testing.T) {
	ts := startServer(t, drop, nil)
	c := &Client{Servers: []string{ts.Addr}, Timeout: 30 * time.Millisecond, Attempts: 4}
	q := query()
	if _, err := c.Exchange(context.Background(), q); !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	seen := map[uint16]bool{}
	for _, id := range ts.ids {
		seen[id] = true
	}
	if len(ts.ids) != 4 || len(seen) < 3 || seen[q.Id] && len(seen) == 1 {
		t.Errorf("IDs on the wire %v (query ID %d): want 4 tries with fresh IDs", ts.ids, q.Id)
	}
	// With the real source a draw equal to the caller's ID is rare: see
	// TestExchangeIDNeverTheCallers for a source that forces it.
	if seen[q.Id] {
		t.Errorf("IDs on the wire %v: a try carries the caller's ID %d", ts.ids, q.Id)
	}
}

// The DO and CD bits and the EDNS0 buffer size reach the server as built.
func TestExchangeSendsQueryAsIs(t *testing.T) {
	var got *dns.Msg
	var mu sync.Mutex
	ts := startServer(t, func(w dns.ResponseWriter, r *dns.Msg) {
		mu.Lock()
		got = r.Copy()
		mu.Unlock()
		answerA(w, r)
	}, nil)
	c := &Client{Servers: []string{ts.Addr}}
	if _, err := c.Exchange(context.Background(), query()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	opt := got.IsEdns0()
	if opt == nil || !opt.Do() || opt.UDPSize() != 1232 || !got.CheckingDisabled {
		t.Errorf("server got %v", got)
	}
}

func TestExchangeBadInput(t *testing.T) {
	if _, err := (&Client{}).Exchange(context.Background(), query()); !errors.Is(err, ErrNoServers) {
		t.Errorf("no servers: err = %v", err)
	}
	c := &Client{Servers: []string{"127.0.0.1:53"}}
	if _, err := c.Exchange(context.Background(), new(dns.Msg)); err == nil {
		t.Error("no question: no error")
	}
}

// The ID on the wire is drawn afresh for every try and is never the
// caller's (RFC 5452 §9.2: an unpredictable ID for every outgoing query;
// the caller's may be predictable, a fixed 0 or a counter). dns.Id is
// replaced by a source that hands out the caller's ID twice in every three
// draws, so that a draw which happens to equal it, a 1-in-65536 event with
// the real source, happens on every try, twice in a row.
func TestExchangeIDNeverTheCallers(t *testing.T) {
	tests := []struct {
		name     string
		udp, tcp func(dns.ResponseWriter, *dns.Msg)
		attempts int
		wantErr  error // nil: an answer
		wantTCP  int   // TCP queries the server must see
	}{
		{name: "RFC 5452 §9.2 every UDP try", udp: drop, attempts: 4, wantErr: ErrTimeout},
		{name: "RFC 5452 §9.2 the TCP retry after a truncated UDP answer (RFC 7766 §5)", udp: truncated, tcp: answerA, attempts: 1, wantTCP: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := query()
			var draws atomic.Int32
			saved := dns.Id
			dns.Id = func() uint16 {
				n := draws.Add(1)
				if n%3 != 0 {
					return q.Id
				}
				return uint16(1000 + n)
			}
			t.Cleanup(func() { dns.Id = saved })

			var tcpMu sync.Mutex
			var tcpIDs []uint16
			var tcp func(dns.ResponseWriter, *dns.Msg)
			if tt.tcp != nil {
				tcp = func(w dns.ResponseWriter, r *dns.Msg) {
					tcpMu.Lock()
					tcpIDs = append(tcpIDs, r.Id)
					tcpMu.Unlock()
					tt.tcp(w, r)
				}
			}
			ts := startServer(t, tt.udp, tcp)
			c := &Client{Servers: []string{ts.Addr}, Timeout: 50 * time.Millisecond, Attempts: tt.attempts}
			resp, err := c.Exchange(context.Background(), q)
			switch {
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			case tt.wantErr == nil && err != nil:
				t.Fatalf("err = %v, want an answer", err)
			case tt.wantErr == nil && resp.Id != q.Id:
				t.Errorf("answer ID %d, want the caller's %d back", resp.Id, q.Id)
			}
			ts.mu.Lock()
			udpIDs := append([]uint16(nil), ts.ids...)
			ts.mu.Unlock()
			tcpMu.Lock()
			defer tcpMu.Unlock()
			if len(udpIDs) != tt.attempts || len(tcpIDs) != tt.wantTCP {
				t.Fatalf("%d UDP and %d TCP queries on the wire, want %d and %d", len(udpIDs), len(tcpIDs), tt.attempts, tt.wantTCP)
			}
			for i, id := range append(udpIDs, tcpIDs...) {
				if id == q.Id {
					t.Errorf("query %d on the wire carries the caller's ID %d (UDP %v, TCP %v)", i+1, q.Id, udpIDs, tcpIDs)
				}
			}
		})
	}
}
