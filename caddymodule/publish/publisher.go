package publish

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"
)

// Storage is the part of certmagic.Storage a Publisher uses.
type Storage interface {
	Lock(ctx context.Context, name string) error
	Unlock(ctx context.Context, name string) error
	Store(ctx context.Context, key string, value []byte) error
	Load(ctx context.Context, key string) ([]byte, error)
	List(ctx context.Context, path string, recursive bool) ([]string, error)
}

// Storage layout, under one prefix for everything this package writes.
const (
	storagePrefix = "dane_publish"
	lockPrefix    = "dane_publish_"
)

func stateKey(owner string) string  { return path.Join(storagePrefix, "state", safe(owner)+".json") }
func heartbeatKey(id string) string { return path.Join(storagePrefix, "instances", id+".json") }
func heartbeatDir() string          { return path.Join(storagePrefix, "instances") }
func lockName(owner string) string  { return lockPrefix + safe(owner) }
func safe(owner string) string      { return strings.TrimSuffix(strings.ToLower(owner), ".") }
func fqdn(name string) string       { return dns.CanonicalName(name) }
func newID() string                 { b := make([]byte, 8); _, _ = rand.Read(b); return hex.EncodeToString(b) }

// Publisher keeps the TLSA RRsets of a set of owners in one zone.
type Publisher struct {
	Provider libdns.RecordGetter // and libdns.RecordSetter, or RecordAppender and RecordDeleter
	Zone     string              // fully qualified
	TTL      time.Duration       // of the records published
	Storage  Storage
	Instance string        // this instance's heartbeat name (NewInstanceID)
	Interval time.Duration // reconcile and heartbeat period: a heartbeat older than 3× is dead

	// Needed returns the records this instance needs at owner now: those
	// of the certificates it serves and of those in storage.
	Needed func(ctx context.Context, owner string) ([]string, error)

	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// NewInstanceID returns a name for one running instance. It is random,
// not Caddy's instance ID: instances that share a storage directory on one
// machine share that file too.
func NewInstanceID() string { return newID() }

func (p *Publisher) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Check reports a provider that cannot change records.
func (p *Publisher) Check() error {
	if p.Provider == nil {
		return errors.New("no DNS provider")
	}
	if _, ok := p.Provider.(libdns.RecordSetter); ok {
		return nil
	}
	_, app := p.Provider.(libdns.RecordAppender)
	_, del := p.Provider.(libdns.RecordDeleter)
	if app && del {
		return nil
	}
	return fmt.Errorf("DNS provider %T can read records but can neither set an RRset (libdns.RecordSetter) nor append and delete records (libdns.RecordAppender, libdns.RecordDeleter)", p.Provider)
}

// Change is what one reconciliation did to an RRset.
type Change struct {
	Owner   string
	Added   []string
	Removed []string
	Records []string      // the RRset now
	TTL     time.Duration // its TTL now
}

// Changed reports whether the RRset was written.
func (c Change) Changed() bool { return len(c.Added) > 0 || len(c.Removed) > 0 }

// Reconcile brings the RRset at owner to what is needed now (this
// instance's records, the other live instances' and the held ones) plus
// what was needed less than 2×TTL ago, under the owner's storage lock.
// When the write fails, the state is still saved (when each record was
// last needed holds whatever the zone is) and the error says what was and
// was not changed.
func (p *Publisher) Reconcile(ctx context.Context, owner string) (Change, error) {
	ch := Change{Owner: fqdn(owner)}
	unlock, err := p.lock(ctx, owner)
	if err != nil {
		return ch, err
	}
	defer unlock()
	st, err := p.loadState(ctx, owner)
	if err != nil {
		return ch, err
	}
	desired, current, zoneTTL, err := p.plan(ctx, owner, st)
	if err != nil {
		return ch, err
	}
	ch.Records, ch.TTL = desired, p.TTL
	for _, r := range desired {
		if !slices.Contains(current, r) {
			ch.Added = append(ch.Added, r)
		}
	}
	for _, r := range current {
		if !slices.Contains(desired, r) {
			ch.Removed = append(ch.Removed, r)
		}
	}
	var applyErr error
	// A TTL-only difference is mended only by a provider that can set
	// an RRset: appending and deleting nothing changes no TTL.
	_, canSet := p.Provider.(libdns.RecordSetter)
	if ch.Changed() || (canSet && len(current) > 0 && zoneTTL != p.TTL) {
		applyErr = p.apply(ctx, owner, current, desired, ch)
	}
	if err := p.saveState(ctx, owner, st); err != nil && applyErr == nil {
		// The zone was written: report the change with the error.
		return ch, err
	}
	if applyErr != nil {
		// Nothing is reported as changed unless it was.
		var e *Error
		if errors.As(applyErr, &e) && e.Partial != nil {
			ch.Added, ch.Removed = e.Partial.Added, nil
		} else {
			ch.Added, ch.Removed = nil, nil
		}
		ch.Records = current
		return ch, applyErr
	}
	return ch, nil
}

// Preview returns what Reconcile would publish at owner, and what the zone
// holds now, without locking or writing anything. A provider that cannot
// be read yields the plan from storage alone, with the error.
func (p *Publisher) Preview(ctx context.Context, owner string) (desired, current []string, err error) {
	st, err := p.loadState(ctx, owner)
	if err != nil {
		return nil, nil, err
	}
	desired, current, _, err = p.plan(ctx, owner, st)
	return desired, current, err
}

// plan gathers what is needed and what is in the zone, and updates st.
func (p *Publisher) plan(ctx context.Context, owner string, st *State) (desired, current []string, zoneTTL time.Duration, err error) {
	var needed []string
	if p.Needed != nil {
		local, err := p.Needed(ctx, owner)
		if err != nil {
			return nil, nil, 0, &Error{Kind: ErrStorage, Owner: fqdn(owner), Err: err}
		}
		needed = append(needed, local...)
	}
	peers, err := p.peerRecords(ctx, owner)
	if err != nil {
		return nil, nil, 0, err
	}
	needed = append(needed, peers...)
	current, zoneTTL, err = p.current(ctx, owner)
	if err != nil {
		return nil, nil, 0, err
	}
	// A needed record is seen at every reconciliation, at most one
	// interval apart plus the time a round takes (bounded here by one
	// more interval): a certificate may have left service up to that long
	// after the last sighting.
	return st.plan(needed, current, zoneTTL, p.TTL, 2*p.Interval, p.now()), current, zoneTTL, nil
}

// current returns the TLSA records at owner in the zone and their TTL.
func (p *Publisher) current(ctx context.Context, owner string) ([]string, time.Duration, error) {
	recs, err := p.Provider.GetRecords(ctx, p.Zone)
	if err != nil {
		return nil, 0, &Error{Kind: classify(err), Owner: fqdn(owner), Op: "reading the zone", Err: err}
	}
	rel := libdns.RelativeName(fqdn(owner), p.Zone)
	var out []string
	var ttl time.Duration
	for _, rec := range recs {
		rr := rec.RR()
		if !strings.EqualFold(rr.Type, "TLSA") || !strings.EqualFold(rr.Name, rel) {
			continue
		}
		out = append(out, Canonical(rr.Data))
		ttl = max(ttl, rr.TTL)
	}
	slices.Sort(out)
	return slices.Compact(out), ttl, nil
}

// apply writes desired over current: one SetRecords when the provider has
// it (atomic for RFC 2136), else append first and delete second, so that
// at no moment is a needed record missing.
func (p *Publisher) apply(ctx context.Context, owner string, current, desired []string, ch Change) error {
	rel := libdns.RelativeName(fqdn(owner), p.Zone)
	rrs := func(data []string) []libdns.Record {
		out := make([]libdns.Record, 0, len(data))
		for _, d := range data {
			out = append(out, libdns.RR{Name: rel, Type: "TLSA", TTL: p.TTL, Data: d})
		}
		return out
	}
	fail := func(op string, err error, partial *Change) error {
		return &Error{Kind: classify(err), Owner: fqdn(owner), Op: op, Err: err, Partial: partial}
	}
	setter, canSet := p.Provider.(libdns.RecordSetter)
	if canSet && len(desired) > 0 {
		if _, err := setter.SetRecords(ctx, p.Zone, rrs(desired)); err != nil {
			return fail(fmt.Sprintf("setting %d record(s), nothing changed", len(desired)), err, nil)
		}
		return nil
	}
	if len(desired) > 0 {
		appender, _ := p.Provider.(libdns.RecordAppender)
		if _, err := appender.AppendRecords(ctx, p.Zone, rrs(ch.Added)); err != nil {
			return fail(fmt.Sprintf("adding %d record(s), nothing changed", len(ch.Added)), err, nil)
		}
	}
	if len(ch.Removed) > 0 {
		deleter, ok := p.Provider.(libdns.RecordDeleter)
		if !ok {
			return fail("removing records", errors.New("the provider cannot delete records"), &Change{Added: ch.Added})
		}
		if _, err := deleter.DeleteRecords(ctx, p.Zone, rrs(ch.Removed)); err != nil {
			op := fmt.Sprintf("removing %d record(s) after adding %d", len(ch.Removed), len(ch.Added))
			return fail(op, err, &Change{Added: ch.Added})
		}
	}
	return nil
}

func (p *Publisher) loadState(ctx context.Context, owner string) (*State, error) {
	st := &State{Records: map[string]Entry{}}
	b, err := p.Storage.Load(ctx, stateKey(owner))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, &Error{Kind: ErrStorage, Owner: fqdn(owner), Op: "loading state", Err: err}
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, &Error{Kind: ErrStorage, Owner: fqdn(owner), Op: "decoding state " + stateKey(owner), Err: err}
	}
	if st.Records == nil {
		st.Records = map[string]Entry{}
	}
	return st, nil
}

func (p *Publisher) saveState(ctx context.Context, owner string, st *State) error {
	b, err := json.Marshal(st)
	if err == nil {
		err = p.Storage.Store(ctx, stateKey(owner), b)
	}
	if err != nil {
		return &Error{Kind: ErrStorage, Owner: fqdn(owner), Op: "saving state", Err: err}
	}
	return nil
}

// heartbeat is one instance's last word on what its certificates need.
type heartbeat struct {
	Time    time.Time           `json:"time"`
	Records map[string][]string `json:"records"` // owner (lower case, no final dot) → records
}

// Heartbeat records, for the other instances, what this one needs at
// each owner.
func (p *Publisher) Heartbeat(ctx context.Context, records map[string][]string) error {
	hb := heartbeat{Time: p.now().UTC(), Records: make(map[string][]string, len(records))}
	for o, rs := range records {
		hb.Records[safe(o)] = rs
	}
	b, err := json.Marshal(hb)
	if err == nil {
		err = p.Storage.Store(ctx, heartbeatKey(p.Instance), b)
	}
	if err != nil {
		return &Error{Kind: ErrStorage, Op: "writing heartbeat", Err: err}
	}
	return nil
}

// peerRecords returns what the other live instances need at owner.
func (p *Publisher) peerRecords(ctx context.Context, owner string) ([]string, error) {
	keys, err := p.Storage.List(ctx, heartbeatDir(), false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &Error{Kind: ErrStorage, Owner: fqdn(owner), Op: "listing heartbeats", Err: err}
	}
	dead := 3 * p.Interval
	var out []string
	for _, k := range keys {
		if path.Base(k) == p.Instance+".json" {
			continue
		}
		b, err := p.Storage.Load(ctx, k)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, &Error{Kind: ErrStorage, Owner: fqdn(owner), Op: "loading heartbeat " + k, Err: err}
		}
		var hb heartbeat
		if json.Unmarshal(b, &hb) != nil || p.now().Sub(hb.Time) > dead {
			continue // unreadable or dead: an instance that runs rewrites it every interval
		}
		out = append(out, hb.Records[safe(owner)]...)
	}
	return out, nil
}

// hold adds (add) or removes a hold at owner, under its lock.
func (p *Publisher) hold(ctx context.Context, owner string, h Hold, add bool) error {
	unlock, err := p.lock(ctx, owner)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := p.loadState(ctx, owner)
	if err != nil {
		return err
	}
	st.Holds = slices.DeleteFunc(st.Holds, func(o Hold) bool { return o.ID == h.ID })
	if add {
		st.Holds = append(st.Holds, h)
	} else {
		// The records stay needed for one more 2×TTL from now, as any
		// record last needed now: the released certificate is on its
		// way to storage, where Needed finds it from then on.
		now := p.now()
		for _, r := range h.Records {
			if e, ok := st.Records[r]; ok {
				e.LastNeeded = now
				st.Records[r] = e
			}
		}
	}
	return p.saveState(ctx, owner, st)
}

// WaitTTL is the TTL waits at owner must assume now.
func (p *Publisher) WaitTTL(ctx context.Context, owner string) time.Duration {
	st, err := p.loadState(ctx, owner)
	if err != nil {
		return p.TTL
	}
	return st.waitTTL(p.TTL, p.now())
}
