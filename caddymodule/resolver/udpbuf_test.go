package resolver

import (
	"context"
	"runtime"
	"testing"

	"github.com/miekg/dns"
)

// TestExchangeUDPBuffer: the 64 KiB buffer a UDP try reads into (any
// datagram up to the 16-bit limit is accepted, RFC 1035 §4.2.1, even past
// the 1232 octets advertised, RFC 6891 §6.2.5) is reused across queries:
// a query whose answer is a few hundred octets does not allocate 64 KiB.
// What the in-process server allocates is counted too.
func TestExchangeUDPBuffer(t *testing.T) {
	ts := startServer(t, answerA, nil)
	c := &Client{Servers: []string{ts.Addr}}
	q := new(dns.Msg)
	q.SetQuestion("example.test.", dns.TypeA)
	exchange := func() {
		if _, err := c.Exchange(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	exchange()
	const n = 50
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		exchange()
	}
	runtime.ReadMemStats(&after)
	per := (after.TotalAlloc - before.TotalAlloc) / n
	// Without the race detector a query costs about 3 KiB. The bound is
	// looser because under it sync.Pool drops a quarter of what it is
	// given, on purpose, and a collection empties it.
	if per > 40<<10 {
		t.Fatalf("a UDP query allocates %d bytes, want at most 40 KiB (a fresh read buffer is 64 KiB)", per)
	}
	t.Logf("%d bytes allocated per UDP query, server included", per)
}
