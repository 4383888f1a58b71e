package dnssec

import (
	"container/list"
	"sync"
	"time"
)

// DefaultCacheSize is the number of entries (results and zone keys) kept
// when Config.CacheSize is 0.
const DefaultCacheSize = 10000

// badTTL is how long Bogus and Indeterminate outcomes are remembered, so a
// broken or hostile zone is not re-queried and re-verified on every lookup
// (Unbound's val-bogus-ttl is 60 s; a short time keeps recovery quick).
const badTTL = 5 * time.Second

// maxTTL caps how long anything is cached (Unbound's cache-max-ttl).
const maxTTL = 24 * time.Hour

// lru is a size-bounded map whose entries expire; the least recently used
// entry goes first when full.
type lru struct {
	mu    sync.Mutex
	max   int
	order *list.List // front = most recently used
	items map[string]*list.Element
}

type lruEntry struct {
	key     string
	val     any
	stored  time.Time
	expires time.Time
}

// refreshTail: a refresh (Validator.Refresh) also renews every cached
// entry it uses that is in the last 1/refreshTail of its life, so that a
// refreshed answer is not cut short by zone keys about to expire, and the
// next ordinary lookup does not have to wait for them.
const refreshTail = 10

func newLRU(max int) *lru {
	return &lru{max: max, order: list.New(), items: make(map[string]*list.Element)}
}

// get returns the live value for key and when it expires. With renew, an
// entry in the last 1/refreshTail of its life counts as missing (it stays
// until replaced).
func (c *lru) get(key string, now time.Time, renew bool) (any, time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, time.Time{}, false
	}
	e := el.Value.(*lruEntry)
	if !now.Before(e.expires) {
		c.order.Remove(el)
		delete(c.items, key)
		return nil, time.Time{}, false
	}
	if renew && !now.Before(e.expires.Add(-e.expires.Sub(e.stored)/refreshTail)) {
		return nil, time.Time{}, false
	}
	c.order.MoveToFront(el)
	return e.val, e.expires, true
}

func (c *lru) put(key string, val any, now, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		e := el.Value.(*lruEntry)
		e.val, e.stored, e.expires = val, now, expires
		c.order.MoveToFront(el)
		return
	}
	c.items[key] = c.order.PushFront(&lruEntry{key: key, val: val, stored: now, expires: expires})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*lruEntry).key)
	}
}

func (c *lru) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
