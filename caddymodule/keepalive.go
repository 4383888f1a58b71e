package caddymodule

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"
)

// Keep-alive policy: an upstream connection is trusted for as long as the
// TLSA RRset it was verified against, and no longer. Its lifetime is capped
// at the validity of that DNSSEC result (dnssec.Result.TTL when the
// connection was verified: the least of the records' TTLs, the RRSIG's
// original TTL and the time left before the RRSIG expires). Once the cap
// has passed, the connection carries no new request unless it has to:
//
//   - idle connections are closed at the cap (http.Transport's
//     CloseIdleConnections, which never touches a connection in use, for
//     HTTP/1.1 and HTTP/2 alike);
//   - a connection that is busy at the cap finishes what it carries; the
//     next request net/http gives it (at most one per connection, or the
//     streams already reserved on an HTTP/2 connection) is sent with
//     "Connection: close" (HTTP/1.1) or marks it not reusable (HTTP/2), so
//     it closes once idle;
//   - an HTTP/1.1 server that ignores "Connection: close" gets its
//     connection closed before the next request is written, which net/http
//     retries on a new connection when the request can be replayed.
//
// No request in flight is ever cut. The next dial goes through dialTLS,
// which looks the TLSA RRset up again (the cache entry expired at the same
// instant) and verifies the new handshake against it: after a TLSA change,
// no request starts on a connection verified against the old RRset later
// than the old RRset's TTL (plus the one-request allowance above for a
// connection busy at that instant).
//
// Tracing is attached to a request only while some connection of this
// transport is past its cap and still open, so the common path costs one
// atomic load.

// keepAlive is the transport's bookkeeping for capped connections.
type keepAlive struct {
	// pastCap counts connections past their cap and not yet closed.
	pastCap atomic.Int64
	// lastFlush is when idle connections were last closed (UnixNano):
	// connections verified against one cached RRset share a cap, and
	// one flush closes all of them.
	lastFlush atomic.Int64
	// flush closes idle connections (http.Transport.CloseIdleConnections).
	flush func()
}

// minFlushInterval coalesces the flushes of connections capped at nearly
// the same instant.
const minFlushInterval = 100 * time.Millisecond

// cappedConn is the TCP connection beneath a DANE-verified tls.Conn; it
// knows when its verification stops being valid.
type cappedConn struct {
	net.Conn
	k       *keepAlive
	expires time.Time
	timer   *time.Timer

	mu       sync.Mutex
	past     bool // the cap has passed (counted in k.pastCap)
	closed   bool
	reissued bool // an HTTP/1.1 request was already sent after the cap
}

// capConn wraps a freshly dialed connection whose TLSA result is valid
// until expires.
func (k *keepAlive) capConn(c net.Conn, expires time.Time) *cappedConn {
	cc := &cappedConn{Conn: c, k: k, expires: expires}
	cc.timer = time.AfterFunc(time.Until(expires), cc.reachCap)
	return cc
}

func (c *cappedConn) reachCap() {
	c.mu.Lock()
	if c.closed || c.past {
		c.mu.Unlock()
		return
	}
	c.past = true
	c.k.pastCap.Add(1)
	c.mu.Unlock()
	c.k.flushIdle()
}

// Close closes the connection and forgets it.
func (c *cappedConn) Close() error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		c.timer.Stop()
		if c.past {
			c.k.pastCap.Add(-1)
		}
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// flushIdle closes the transport's idle connections, at most once per
// minFlushInterval.
func (k *keepAlive) flushIdle() {
	now := time.Now().UnixNano()
	last := k.lastFlush.Load()
	if now-last < int64(minFlushInterval) || !k.lastFlush.CompareAndSwap(last, now) {
		return
	}
	if k.flush != nil {
		k.flush()
	}
}

// capRequest returns req, traced so that a connection past its cap that
// net/http hands to it is not reused after it, when such connections
// exist; otherwise req itself.
func (k *keepAlive) capRequest(req *http.Request) *http.Request {
	if k.pastCap.Load() == 0 {
		return req
	}
	var out *http.Request
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		tc, ok := info.Conn.(*tls.Conn)
		if !ok {
			return
		}
		c, ok := tc.NetConn().(*cappedConn)
		if !ok || time.Now().Before(c.expires) {
			return
		}
		// GotConn runs before net/http reads out.Close or writes
		// out.Header (HTTP/1.1: in RoundTrip's goroutine, before the
		// write loop gets the request; HTTP/2: before
		// ClientConn.RoundTrip). net/http may have copied out by now,
		// but its copies share out.Header.
		out.Close = true
		out.Header.Set("Connection", "close")
		if tc.ConnectionState().NegotiatedProtocol == "h2" {
			return // marked doNotReuse: closes when its streams are done
		}
		c.mu.Lock()
		again := c.reissued
		c.reissued = true
		c.mu.Unlock()
		if again {
			// The server ignored "Connection: close" last time. Nothing
			// of this request is written yet: net/http retries it on a
			// new connection if it can be replayed.
			_ = c.Close()
		}
	}}
	out = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	// The header map is shared with the caller's request: change a
	// private copy.
	if req.Header != nil {
		out.Header = req.Header.Clone()
	} else {
		out.Header = make(http.Header)
	}
	return out
}
