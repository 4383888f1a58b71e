package rfc2136

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/miekg/dns"
)

// tsigFudge is the time skew allowed in our signatures and theirs (RFC
// 8945 §5.2.3 recommends 300 seconds).
const tsigFudge = 300

// maxAXFRRecords bounds what one GetRecords reads, so that a server (even
// an authenticated one) cannot make us hold an unbounded zone in memory.
const maxAXFRRecords = 1 << 20

// dial opens the TCP connection of one operation, bounded by ctx. UPDATEs
// go over TCP so that a large RRset is never truncated and answered in
// part; AXFR is TCP only (RFC 5936 §4.1).
func (c *config) dial(ctx context.Context) (*dns.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", c.server)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	// Abort blocked reads and writes when ctx is cancelled.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	return &dns.Conn{Conn: &stopConn{Conn: nc, stop: stop}}, nil
}

type stopConn struct {
	net.Conn
	stop func() bool
}

func (s *stopConn) Close() error { s.stop(); return s.Conn.Close() }

// netError names a transport failure: ErrTimeout when the deadline or
// the caller's context ran out, ErrNetwork otherwise.
func netError(ctx context.Context, e *Error, err error) *Error {
	e.Rcode, e.Err = -1, err
	e.Kind = ErrNetwork
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout()) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		e.Kind = ErrTimeout
		if e.Op == "update" {
			e.Detail = "no answer; whether the update was applied is unknown"
		}
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		e.Kind, e.Detail = ErrNetwork, "cancelled by the caller"
		if e.Op == "update" {
			e.Detail += "; whether the update was applied is unknown"
		}
	}
	if ctx.Err() != nil {
		e.Err = fmt.Errorf("%v (%w)", err, ctx.Err())
	}
	return e
}

// sign adds our TSIG RR to m and returns its wire form and MAC.
func (c *config) sign(m *dns.Msg) ([]byte, string, error) {
	m.SetTsig(c.key.name, c.key.alg, tsigFudge, c.now().Unix())
	return dns.TsigGenerateWithProvider(m, c.key, "", false)
}

// read reads one message from co and verifies its TSIG against
// requestMAC (RFC 8945 §5.3; timersOnly for the second and later
// messages of a transfer, §5.3.1). It returns the message, the MAC to
// chain the next verification to, and the verification error, which is
// not a transport error: the caller decides what an unverified message
// means.
func (c *config) read(co *dns.Conn, requestMAC string, timersOnly bool) (m *dns.Msg, mac string, verifyErr, err error) {
	buf, err := co.ReadMsgHeader(nil)
	if err != nil {
		return nil, "", nil, err
	}
	return c.verify(buf, requestMAC, timersOnly)
}

// verify parses one raw message and checks its TSIG (see read).
func (c *config) verify(buf []byte, requestMAC string, timersOnly bool) (m *dns.Msg, mac string, verifyErr, err error) {
	m = new(dns.Msg)
	if err := m.Unpack(buf); err != nil {
		return nil, "", nil, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	t := m.IsTsig()
	if t == nil {
		return m, "", errors.New("answer is not signed"), nil
	}
	// The verification rewrites the ID bytes of buf; m is already parsed.
	if verifyErr = dns.TsigVerifyWithProvider(buf, c.key, requestMAC, timersOnly); verifyErr != nil {
		return m, "", verifyErr, nil
	}
	return m, t.MAC, nil, nil
}

// update sends one signed UPDATE and succeeds only on a NOERROR answer
// to it whose TSIG verifies.
func (c *config) update(ctx context.Context, zone string, m *dns.Msg) error {
	e := &Error{Op: "update", Zone: zone, Server: c.server}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	out, mac, err := c.sign(m)
	if err != nil {
		e.Kind, e.Rcode, e.Err = ErrConfig, -1, err
		return e
	}
	if len(out) > dns.MaxMsgSize {
		// Refused before sending: one UPDATE is one message (RFC 2136
		// §3.4 atomicity), and a TCP message is at most 65535 octets
		// (RFC 1035 §4.2.2).
		e.Kind, e.Rcode = ErrRecord, -1
		e.Detail = fmt.Sprintf("the UPDATE would be %d octets, more than the %d of one DNS message (RFC 1035 §4.2.2): pass fewer records per call",
			len(out), dns.MaxMsgSize)
		return e
	}
	co, err := c.dial(ctx)
	if err != nil {
		return netError(ctx, e, err)
	}
	defer co.Close()
	if _, err := co.Write(out); err != nil {
		return netError(ctx, e, err)
	}
	buf, err := co.ReadMsgHeader(nil)
	if err != nil {
		return netError(ctx, e, err)
	}
	return c.judgeUpdate(e, m, buf, mac)
}

// judgeUpdate decides what the raw answer buf to the UPDATE m (signed
// with MAC mac) means: nil only for a NOERROR response to m whose TSIG
// verifies under our key.
func (c *config) judgeUpdate(e *Error, m *dns.Msg, buf []byte, mac string) error {
	r, _, verifyErr, err := c.verify(buf, mac, false)
	if err != nil {
		e.Kind, e.Rcode, e.Err = ErrBadResponse, -1, err
		return e
	}
	if r.Id != m.Id || !r.Response || r.Opcode != dns.OpcodeUpdate {
		e.Kind, e.Rcode = ErrBadResponse, r.Rcode
		e.Detail = fmt.Sprintf("answer (id %d, opcode %s) is not the response to our UPDATE (id %d)",
			r.Id, dns.OpcodeToString[r.Opcode], m.Id)
		return e
	}
	if r.Rcode != dns.RcodeSuccess || verifyErr != nil || r.IsTsig().Error != 0 {
		return classify(e, r, verifyErr)
	}
	return nil
}

// axfr reads the whole zone (RFC 5936) over one TCP connection. Every
// message must carry a TSIG that verifies, chained to the previous one
// (RFC 8945 §5.3.1). RFC 8945 allows a server to leave up to 99
// messages in a row unsigned; BIND 9.18 signs every one (the integration
// test reads a 14-message transfer), and an
// unsigned message here is refused rather than taken on trust.
func (c *config) axfr(ctx context.Context, zone string) ([]dns.RR, error) {
	e := &Error{Op: "AXFR", Zone: zone, Server: c.server}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	q := new(dns.Msg)
	q.SetAxfr(zone)
	out, mac, err := c.sign(q)
	if err != nil {
		e.Kind, e.Rcode, e.Err = ErrConfig, -1, err
		return nil, e
	}
	co, err := c.dial(ctx)
	if err != nil {
		return nil, netError(ctx, e, err)
	}
	defer co.Close()
	if _, err := co.Write(out); err != nil {
		return nil, netError(ctx, e, err)
	}
	var rrs []dns.RR
	var soa *dns.SOA
	for n := 0; ; n++ {
		r, next, verifyErr, err := c.read(co, mac, n > 0)
		if err != nil {
			if errors.Is(err, ErrBadResponse) {
				e.Kind, e.Rcode, e.Err = ErrBadResponse, -1, err
				return nil, e
			}
			return nil, netError(ctx, e, err)
		}
		if r.Id != q.Id || !r.Response || r.Opcode != dns.OpcodeQuery {
			e.Kind, e.Rcode = ErrBadResponse, r.Rcode
			e.Detail = fmt.Sprintf("message %d (id %d) is not part of our transfer (id %d)", n+1, r.Id, q.Id)
			return nil, e
		}
		if r.Rcode != dns.RcodeSuccess || verifyErr != nil || r.IsTsig().Error != 0 {
			e = classify(e, r, verifyErr)
			if e.Kind == ErrResponseTSIG {
				e.Detail = fmt.Sprintf("message %d of the transfer", n+1)
			}
			return nil, e
		}
		mac = next
		for _, rr := range r.Answer {
			h := rr.Header()
			if !dns.IsSubDomain(zone, h.Name) || h.Class != dns.ClassINET {
				e.Kind, e.Rcode = ErrBadResponse, r.Rcode
				e.Detail = fmt.Sprintf("record %s is not in zone %s", h.String(), zone)
				return nil, e
			}
			if s, ok := rr.(*dns.SOA); ok && dns.CanonicalName(h.Name) == dns.CanonicalName(zone) {
				if soa == nil {
					soa = s
					rrs = append(rrs, rr)
					continue
				}
				// RFC 5936 §2.2: the transfer ends with the SOA again.
				return rrs, nil
			}
			if soa == nil {
				e.Kind, e.Rcode = ErrBadResponse, r.Rcode
				e.Detail = "transfer does not begin with the zone's SOA (RFC 5936 §2.2)"
				return nil, e
			}
			if len(rrs) >= maxAXFRRecords {
				e.Kind, e.Rcode = ErrBadResponse, r.Rcode
				e.Detail = fmt.Sprintf("zone has more than %d records", maxAXFRRecords)
				return nil, e
			}
			rrs = append(rrs, rr)
		}
	}
}
