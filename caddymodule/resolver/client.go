package resolver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Defaults for the zero values of Client's fields.
const (
	DefaultTimeout  = 2 * time.Second
	DefaultAttempts = 2
)

// maxMessage is the largest DNS message: the UDP payload limit and the
// TCP length prefix are both 16 bits.
const maxMessage = 65535

// Client sends DNS queries to recursive resolvers. Its zero value, with
// Servers set, is ready to use; it is safe for concurrent use and keeps no
// connection between queries.
type Client struct {
	// Servers are the resolvers, "host:port" with an IP literal host
	// (see ParseServer). They are tried in order.
	Servers []string

	// Timeout bounds each exchange: a UDP try, and the TCP retry after a
	// truncated UDP answer. Zero means DefaultTimeout.
	Timeout time.Duration

	// Attempts is the number of rounds over Servers. A resolver that
	// answered with an error RCODE is not asked again; one that timed out
	// or failed at the network level is. Zero means DefaultAttempts.
	Attempts int
}

// Exchange sends q, unchanged except for a fresh random ID per try (never
// q.Id, see withFreshID), and returns the first acceptable answer, with
// its ID set back to q.Id.
//
// Each try is a UDP exchange, retried over TCP when the answer is
// truncated (RFC 7766 §5). UDP datagrams that do not answer the question
// (ID, QR bit, question name, type and class compared as RFC 5452 §9.1 asks,
// names case-insensitively) are ignored, as Unbound and BIND do, so that a
// spoofed datagram cannot end the query. On a timeout, a network error or
// an answer with RCODE SERVFAIL, REFUSED, FORMERR or NOTIMP, the next
// resolver is tried.
//
// If every resolver answered SERVFAIL, the last SERVFAIL answer is
// returned with a nil error, so that the caller can read it (for example
// its RFC 8914 extended error). Otherwise a failed query returns a
// *TimeoutError (matches ErrTimeout), an *AllFailedError, a *ServerError
// wrapped in it, or a *CanceledError; the context bounds the whole query.
func (c *Client) Exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
	if len(c.Servers) == 0 {
		return nil, ErrNoServers
	}
	if q == nil || len(q.Question) != 1 {
		return nil, errors.New("dns: a query must have exactly one question")
	}
	wire, err := q.Pack()
	if err != nil {
		return nil, fmt.Errorf("dns: packing query %s: %w", questionString(q.Question[0]), err)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	attempts := c.Attempts
	if attempts <= 0 {
		attempts = DefaultAttempts
	}

	type outcome struct {
		tries    int   // exchanges started
		last     error // last error from this server
		timeouts int   // tries that timed out
		final    bool  // it answered with an error RCODE: do not ask again
	}
	outcomes := make([]outcome, len(c.Servers))
	var (
		tries int
		ign   ignored
	)
	tried := func() []string { // the servers asked so far
		var s []string
		for i, o := range outcomes {
			if o.tries > 0 {
				s = append(s, c.Servers[i])
			}
		}
		return s
	}
	for range attempts {
		for i, server := range c.Servers {
			if outcomes[i].final {
				continue
			}
			if ctxDone(ctx) {
				return nil, contextError(ctx, tried(), tries)
			}
			tries++
			outcomes[i].tries++
			resp, err := exchange(ctx, server, wire, q.Question[0], timeout, &ign)
			if err == nil {
				resp.Id = q.Id
				return resp, nil
			}
			if ctxDone(ctx) {
				return nil, contextError(ctx, tried(), tries)
			}
			o := &outcomes[i]
			o.last = err
			var se *ServerError
			switch {
			case errors.Is(err, errTryTimeout):
				o.timeouts++
			case errors.As(err, &se) && se.Rcode >= 0:
				o.final = true
			}
		}
	}

	// Every resolver failed: say how, as precisely as possible.
	var (
		allServfail, allTimeout = true, true
		servfail                *dns.Msg
		timeouts                int
		errs                    = make([]error, len(c.Servers))
	)
	for i, o := range outcomes {
		var se *ServerError
		if errors.As(o.last, &se) && se.Rcode == dns.RcodeServerFailure {
			servfail = se.Msg
		} else {
			allServfail = false
		}
		if errors.Is(o.last, errTryTimeout) {
			timeouts += o.timeouts
			errs[i] = &TimeoutError{Servers: []string{c.Servers[i]}, Tries: o.timeouts}
		} else {
			allTimeout = false
			errs[i] = o.last
		}
	}
	switch {
	case allServfail:
		servfail.Id = q.Id
		return servfail, nil
	case allTimeout:
		return nil, &TimeoutError{Servers: c.Servers, Tries: timeouts, Ignored: ign.n, IgnoredWhy: ign.why}
	case len(errs) == 1:
		return nil, errs[0]
	}
	return nil, &AllFailedError{Errors: errs}
}

// errTryTimeout marks one exchange that ran out of time.
var errTryTimeout = errors.New("timeout")

// ignored counts UDP datagrams that did not answer the query.
type ignored struct {
	n   int
	why string
}

func (ig *ignored) add(why string) { ig.n++; ig.why = why }

// exchange is one try at one server: UDP, then TCP if the answer was
// truncated. It returns an acceptable answer, errTryTimeout, or a
// *ServerError.
func exchange(ctx context.Context, server string, wire []byte, q dns.Question, timeout time.Duration, ign *ignored) (*dns.Msg, error) {
	resp, truncated, err := exchangeUDP(ctx, server, wire, q, timeout, ign)
	if err != nil {
		return nil, err
	}
	if truncated {
		if resp, err = exchangeTCP(ctx, server, wire, q, timeout); err != nil {
			return nil, err
		}
	}
	switch resp.Rcode {
	case dns.RcodeServerFailure, dns.RcodeRefused, dns.RcodeFormatError, dns.RcodeNotImplemented:
		netw := "udp"
		if truncated {
			netw = "tcp"
		}
		return nil, &ServerError{Server: server, Net: netw, Rcode: resp.Rcode, Msg: resp}
	}
	return resp, nil
}

// udpBuffers are the read buffers of UDP tries. A datagram of any size up
// to maxMessage is read whole (a server may answer beyond the 1232 octets
// advertised, RFC 6891 §6.2.5, and a shorter buffer would cut it), but
// answers are a few hundred octets: a fresh 64 KiB buffer per query would
// be almost all garbage, so the buffers are reused.
var udpBuffers = sync.Pool{New: func() any { return new([maxMessage]byte) }}

// exchangeUDP sends the query with a fresh ID over a connected UDP socket
// (the kernel then only delivers datagrams from server) and reads until an
// acceptable answer arrives or the try's deadline passes.
func exchangeUDP(ctx context.Context, server string, wire []byte, q dns.Question, timeout time.Duration, ign *ignored) (resp *dns.Msg, truncated bool, err error) {
	deadline := tryDeadline(ctx, timeout)
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "udp", server)
	if err != nil {
		return nil, false, netError(server, "udp", err)
	}
	defer conn.Close()
	// A cancelled context interrupts the read at once.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, false, netError(server, "udp", err)
	}

	msg, id := withFreshID(wire)
	if _, err := conn.Write(msg); err != nil {
		return nil, false, netError(server, "udp", err)
	}
	bp := udpBuffers.Get().(*[maxMessage]byte)
	defer udpBuffers.Put(bp)
	for {
		n, err := conn.Read(bp[:])
		if err != nil {
			return nil, false, netError(server, "udp", err)
		}
		// The answer is decoded from a copy of its n octets: the message
		// must not share memory with a buffer the next query reuses.
		resp, truncated, why := checkResponse(bytes.Clone(bp[:n]), id, q)
		if why != "" {
			ign.add(why)
			continue
		}
		return resp, truncated, nil
	}
}

// exchangeTCP sends the query with a fresh ID over a new TCP connection
// (RFC 1035 §4.2.2: two-byte length prefix) and reads one answer. On a
// stream a mismatching answer is an error, not something to skip.
func exchangeTCP(ctx context.Context, server string, wire []byte, q dns.Question, timeout time.Duration) (*dns.Msg, error) {
	deadline := tryDeadline(ctx, timeout)
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", server)
	if err != nil {
		return nil, netError(server, "tcp", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, netError(server, "tcp", err)
	}

	msg, id := withFreshID(wire)
	out := make([]byte, 2+len(wire))
	binary.BigEndian.PutUint16(out, uint16(len(wire)))
	copy(out[2:], msg)
	if _, err := conn.Write(out); err != nil {
		return nil, netError(server, "tcp", err)
	}
	var lenbuf [2]byte
	if _, err := io.ReadFull(conn, lenbuf[:]); err != nil {
		return nil, netError(server, "tcp", err)
	}
	buf := make([]byte, binary.BigEndian.Uint16(lenbuf[:]))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, netError(server, "tcp", err)
	}
	resp, _, why := checkResponse(buf, id, q)
	if why != "" {
		return nil, &ServerError{Server: server, Net: "tcp", Rcode: -1,
			Err: fmt.Errorf("answer does not match the query: %s", why)}
	}
	return resp, nil
}

// checkResponse decides whether b answers the query with this ID and
// question. It returns the decoded message and whether it is truncated, or
// why it is not an answer. A truncated answer that cannot be decoded in
// full is still recognised by its header, so that it leads to TCP.
func checkResponse(b []byte, id uint16, q dns.Question) (resp *dns.Msg, truncated bool, why string) {
	const (
		flagQR = 1 << 15
		flagTC = 1 << 9
	)
	if len(b) < 12 {
		return nil, false, fmt.Sprintf("short message (%d bytes)", len(b))
	}
	if got := binary.BigEndian.Uint16(b); got != id {
		return nil, false, fmt.Sprintf("wrong ID %d (want %d)", got, id)
	}
	flags := binary.BigEndian.Uint16(b[2:])
	if flags&flagQR == 0 {
		return nil, false, "not a response (QR bit clear)"
	}
	truncated = flags&flagTC != 0
	resp = new(dns.Msg)
	if err := resp.Unpack(b); err != nil {
		if truncated {
			return nil, true, ""
		}
		return nil, false, "undecodable: " + err.Error()
	}
	if len(resp.Question) == 0 && truncated {
		return resp, true, ""
	}
	if len(resp.Question) != 1 {
		return nil, false, fmt.Sprintf("%d questions", len(resp.Question))
	}
	got := resp.Question[0]
	if !strings.EqualFold(dns.Fqdn(got.Name), dns.Fqdn(q.Name)) || got.Qtype != q.Qtype || got.Qclass != q.Qclass {
		return nil, false, "wrong question " + questionString(got)
	}
	return resp, truncated, ""
}

// tryDeadline is now+timeout, or the context's deadline if sooner.
func tryDeadline(ctx context.Context, timeout time.Duration) time.Time {
	d := time.Now().Add(timeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		return cd
	}
	return d
}

// ctxDone reports whether the context is canceled or past its deadline
// (checked against the clock too: a connection deadline equal to the
// context's may fire a moment before the context's own timer).
func ctxDone(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// netError classifies a network error: timeouts become errTryTimeout,
// anything else a *ServerError.
func netError(server, netw string, err error) error {
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout()) {
		return errTryTimeout
	}
	return &ServerError{Server: server, Net: netw, Rcode: -1, Err: err}
}

// withFreshID returns a copy of the packed query under a new ID, and that
// ID. The ID comes from dns.Id (crypto/rand), as RFC 5452 §9.2 asks of
// every outgoing query, and is never the caller's, the one in wire: that
// one may be predictable (0 in a message built without SetQuestion, a
// counter), and a draw equal to it is drawn again, so that nothing on the
// wire is the caller's choice.
func withFreshID(wire []byte) ([]byte, uint16) {
	callers := binary.BigEndian.Uint16(wire)
	id := dns.Id()
	for id == callers {
		id = dns.Id()
	}
	out := append([]byte(nil), wire...)
	binary.BigEndian.PutUint16(out, id)
	return out, id
}

func questionString(q dns.Question) string {
	return q.Name + " " + dns.ClassToString[q.Qclass] + " " + dns.TypeToString[q.Qtype]
}
