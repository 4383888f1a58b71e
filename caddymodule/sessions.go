package caddymodule

import (
	"crypto/tls"
)

// Upstream TLS session resumption.
//
// A resumed handshake (TLS 1.3 PSK, or a TLS 1.2 ticket) skips the
// server's certificate and its signature: the server proves instead that
// it holds the secret of an earlier handshake with us. crypto/tls still
// calls VerifyConnection on a resumption, with the certificates of that
// earlier handshake, and the transport's VerifyConnection is the
// authenticator's Verify against the TLSA RRset looked up (and proven) for
// this dial. So a resumption is accepted only while the chain the session
// was made with still matches the current, validated TLSA set: a record
// withdrawn from DNS stops every resumption that depended on it as soon as
// the cached RRset expires, exactly when it stops new full handshakes.
//
// A session belongs to everything its first verification depended on. It
// is stored under the pool key of the connection that made it (poolHost:
// TLSA base domain, reference names, SNI, the SRV RRset it came through,
// dial network and address, Caddy's URL host, and HTTP/1.1-only), never
// under crypto/tls's own key (the SNI, or the dial address), which several
// identities can share: a session made for one TLSA base domain is never
// offered to the server of another, even behind the same address and SNI.

// sessionCacheSize is how many sessions the transport keeps: one per pool
// identity (crypto/tls keeps one per key, the newest ticket), least
// recently used first out. A session holds the peer's certificate chain
// (the parsed certificates of the handshake, a few KB) and a ticket.
const sessionCacheSize = 512

// sessionCache is the transport's store of client sessions.
type sessionCache struct {
	lru tls.ClientSessionCache
}

func newSessionCache() *sessionCache {
	return &sessionCache{lru: tls.NewLRUClientSessionCache(sessionCacheSize)}
}

// forPool is the session cache of one connection of the pool: the
// sessions of that pool, and no other. nil when resumption is off.
func (s *sessionCache) forPool(pool string) *poolSessions {
	if s == nil {
		return nil
	}
	return &poolSessions{lru: s.lru, pool: pool}
}

// poolSessions scopes crypto/tls's cache key (the SNI, or the dial
// address without one) to one pool. One is made per connection.
type poolSessions struct {
	lru  tls.ClientSessionCache
	pool string
	used string // the key of the session offered, if one was
}

func (p *poolSessions) key(k string) string { return p.pool + "\x00" + k }

func (p *poolSessions) Get(k string) (*tls.ClientSessionState, bool) {
	cs, ok := p.lru.Get(p.key(k))
	if ok {
		p.used = k
	}
	return cs, ok
}

func (p *poolSessions) Put(k string, cs *tls.ClientSessionState) { p.lru.Put(p.key(k), cs) }

// forget drops the session this connection offered (its resumption was
// refused), so that the pool's next handshake is a full one.
func (p *poolSessions) forget() {
	if p.used != "" {
		p.lru.Put(p.key(p.used), nil)
	}
}
