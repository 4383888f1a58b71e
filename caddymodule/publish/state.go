package publish

import (
	"slices"
	"time"
)

// State is what the instances sharing a storage know about one TLSA
// owner. It is read and written only under the owner's lock.
type State struct {
	// Records maps each record in, or about to enter, the RRset
	// (presentation form) to when it was last needed.
	Records map[string]Entry `json:"records"`

	// Holds are renewed certificates held back until their records are
	// visible (Publisher.Hold). Their records are needed until the hold
	// ends or its deadline passes.
	Holds []Hold `json:"holds,omitempty"`

	// When the RRset was found with a TTL longer than ours, caches may
	// keep that copy for its TTL after we rewrite it: until
	// LongTTLUntil, waits use LongTTL.
	LongTTL      time.Duration `json:"long_ttl,omitempty"`
	LongTTLUntil time.Time     `json:"long_ttl_until,omitzero"`
}

// Entry is the life of one record.
type Entry struct {
	Added      time.Time `json:"added"`       // first seen needed, or first found in the zone
	LastNeeded time.Time `json:"last_needed"` // last time something needed it
}

// Hold is one renewed certificate waiting for its records.
type Hold struct {
	ID      string    `json:"id"`
	Records []string  `json:"records"`
	Until   time.Time `json:"until"`
}

// waitTTL is the TTL a wait must assume now: ours, or a longer one that
// caches may still hold.
func (st *State) waitTTL(ttl time.Duration, now time.Time) time.Duration {
	if st.LongTTL > ttl && now.Before(st.LongTTLUntil) {
		return st.LongTTL
	}
	return ttl
}

// plan updates st for the records needed now and the records found in the
// zone (with the RRset's TTL there), and returns the RRset to publish.
//
// The rules, RFC 7671 §8.1:
//   - a needed record is published, whatever else happens;
//   - a record stays published until 2×TTL after it was last needed, so
//     that every cache that may hold an RRset without its replacement has
//     expired before it goes; grace is added because "last needed" is
//     only seen once per reconcile and heartbeat period: the certificate
//     may have left service up to grace after the last sighting;
//   - a record found in the zone that this state does not know (written by
//     hand, or by a lost state) counts as needed when first seen: it too
//     may be what clients use, and leaves 2×TTL later.
func (st *State) plan(needed, inZone []string, zoneTTL, ttl, grace time.Duration, now time.Time) []string {
	if st.Records == nil {
		st.Records = make(map[string]Entry)
	}
	st.Holds = slices.DeleteFunc(st.Holds, func(h Hold) bool { return !now.Before(h.Until) })
	if zoneTTL > ttl && len(inZone) > 0 {
		st.LongTTL = zoneTTL
		st.LongTTLUntil = now.Add(zoneTTL)
	}
	touch := func(r string) {
		e, ok := st.Records[r]
		if !ok {
			e.Added = now
		}
		e.LastNeeded = now
		st.Records[r] = e
	}
	for _, r := range inZone {
		if _, ok := st.Records[r]; !ok {
			touch(r)
		}
	}
	for _, r := range needed {
		touch(r)
	}
	for _, h := range st.Holds {
		for _, r := range h.Records {
			touch(r)
		}
	}
	keep := 2*st.waitTTL(ttl, now) + grace
	var out []string
	for r, e := range st.Records {
		if now.Sub(e.LastNeeded) >= keep {
			delete(st.Records, r)
			continue
		}
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}
