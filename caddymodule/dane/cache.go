package dane

import (
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of the cache of parsed TLSA sets.
const (
	// maxCachedSets caps the number of host:port entries; the validator's
	// own cache (cache_size) bounds the DNS data behind them.
	maxCachedSets = 10000

	// prefetchFraction: a set is refreshed in the background once less
	// than 1/prefetchFraction of its lifetime remains.
	prefetchFraction = 10

	// prefetchTimeout bounds one background refresh.
	prefetchTimeout = 10 * time.Second
)

// setCache keeps parsed, Secure TLSA sets in front of the validator, so
// that the per-connection path is one map read: no DNS, no validation, no
// hex decoding, no allocation. An entry lives exactly as long as the
// validator result it was made from (the result's TTL: min of the record
// TTLs, the RRSIG's original TTL and its expiry, and the keys' lifetimes);
// it is never served after that.
type setCache struct {
	mu sync.RWMutex
	m  map[setKey]*setEntry
}

type setKey struct {
	host string // as the caller gave it
	port int
}

type setEntry struct {
	set        *TLSASet // returned on hits; its Result is marked Cached
	expires    time.Time
	prefetchAt time.Time
	refreshing atomic.Bool // one background refresh per entry
}

// get returns the live entry for host:port, or nil.
func (c *setCache) get(host string, port int, now time.Time) *setEntry {
	c.mu.RLock()
	e := c.m[setKey{host, port}]
	c.mu.RUnlock()
	if e == nil || !now.Before(e.expires) {
		return nil
	}
	return e
}

// put caches set, validated at now, for its result's TTL.
func (c *setCache) put(host string, port int, set *TLSASet, now time.Time) {
	ttl := set.Result.TTL
	if ttl <= 0 {
		return
	}
	res := *set.Result
	res.Cached = true
	view := *set
	view.Result = &res
	e := &setEntry{set: &view, expires: now.Add(ttl), prefetchAt: now.Add(ttl - ttl/prefetchFraction)}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[setKey]*setEntry)
	}
	if len(c.m) >= maxCachedSets {
		for k, old := range c.m {
			if !now.Before(old.expires) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < maxCachedSets {
				break
			}
			delete(c.m, k) // map order: an arbitrary victim
		}
	}
	c.m[setKey{host, port}] = e
}
