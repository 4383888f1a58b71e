package publish

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libdns/libdns"
)

// memStorage is a Storage in memory whose locks exclude each other, as
// certmagic's do across instances.
type memStorage struct {
	mu    sync.Mutex
	data  map[string][]byte
	locks map[string]chan struct{}
	fail  error // when set, Store fails with it
}

func newMemStorage() *memStorage {
	return &memStorage{data: map[string][]byte{}, locks: map[string]chan struct{}{}}
}

func (s *memStorage) lockChan(name string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.locks[name]
	if !ok {
		c = make(chan struct{}, 1)
		s.locks[name] = c
	}
	return c
}

func (s *memStorage) Lock(ctx context.Context, name string) error {
	select {
	case s.lockChan(name) <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *memStorage) Unlock(_ context.Context, name string) error {
	select {
	case <-s.lockChan(name):
		return nil
	default:
		return errors.New("unlock of a lock not held: " + name)
	}
}

func (s *memStorage) Store(_ context.Context, key string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.data[key] = slices.Clone(v)
	return nil
}

func (s *memStorage) Load(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[key]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return slices.Clone(v), nil
}

func (s *memStorage) List(_ context.Context, prefix string, _ bool) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.data {
		if strings.HasPrefix(k, prefix+"/") {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil, fs.ErrNotExist
	}
	return out, nil
}

// memZone is a libdns provider over one zone in memory, recording every
// state the TLSA RRsets went through.
type memZone struct {
	mu      sync.Mutex
	recs    []libdns.RR
	fail    error // when set, every write fails with it
	failDel error // when set, deletes fail with it
	writes  int
	history [][]string // RRset at the watched owner after each write
	watch   string     // relative name whose history is kept
}

func (z *memZone) GetRecords(context.Context, string) ([]libdns.Record, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	out := make([]libdns.Record, 0, len(z.recs))
	for _, r := range z.recs {
		out = append(out, r)
	}
	return out, nil
}

func (z *memZone) snapshot() {
	z.writes++
	z.history = append(z.history, z.tlsaLocked(z.watch))
}

func (z *memZone) tlsaLocked(name string) []string {
	var out []string
	for _, r := range z.recs {
		if r.Type == "TLSA" && r.Name == name {
			out = append(out, r.Data)
		}
	}
	slices.Sort(out)
	return out
}

func (z *memZone) tlsa(name string) []string {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.tlsaLocked(name)
}

func (z *memZone) ttl(name string) time.Duration {
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, r := range z.recs {
		if r.Type == "TLSA" && r.Name == name {
			return r.TTL
		}
	}
	return 0
}

// setterZone adds SetRecords (libdns semantics: the input's (name, type)
// RRsets become exactly the input).
type setterZone struct{ *memZone }

func (z setterZone) SetRecords(_ context.Context, _ string, in []libdns.Record) ([]libdns.Record, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.fail != nil {
		return nil, z.fail
	}
	for _, r := range in {
		rr := r.RR()
		z.recs = slices.DeleteFunc(z.recs, func(o libdns.RR) bool { return o.Name == rr.Name && o.Type == rr.Type })
	}
	for _, r := range in {
		z.recs = append(z.recs, r.RR())
	}
	z.snapshot()
	return in, nil
}

func (z setterZone) DeleteRecords(ctx context.Context, zone string, in []libdns.Record) ([]libdns.Record, error) {
	return appendDeleteZone(z).DeleteRecords(ctx, zone, in)
}

// appendDeleteZone has AppendRecords and DeleteRecords only.
type appendDeleteZone struct{ *memZone }

func (z appendDeleteZone) AppendRecords(_ context.Context, _ string, in []libdns.Record) ([]libdns.Record, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.fail != nil {
		return nil, z.fail
	}
	for _, r := range in {
		z.recs = append(z.recs, r.RR())
	}
	z.snapshot()
	return in, nil
}

func (z appendDeleteZone) DeleteRecords(_ context.Context, _ string, in []libdns.Record) ([]libdns.Record, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.fail != nil {
		return nil, z.fail
	}
	if z.failDel != nil {
		return nil, z.failDel
	}
	for _, r := range in {
		rr := r.RR()
		z.recs = slices.DeleteFunc(z.recs, func(o libdns.RR) bool {
			return o.Name == rr.Name && o.Type == rr.Type && o.Data == rr.Data
		})
	}
	z.snapshot()
	return in, nil
}

// readOnlyZone can only read.
type readOnlyZone struct{ *memZone }

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
