package publish

import (
	"context"
	"sync"
)

// Reconciliations and holds of one owner in one process queue on a
// channel before they take the storage lock: certmagic's file storage
// polls a lock file once a second, which would make every contended
// change in this process wait that long. Across processes the storage
// lock alone decides.
var localLocks sync.Map // lock name → chan struct{} (capacity 1)

func (p *Publisher) lock(ctx context.Context, owner string) (unlock func(), err error) {
	name := lockName(owner)
	v, _ := localLocks.LoadOrStore(name, make(chan struct{}, 1))
	sem := v.(chan struct{})
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, &Error{Kind: ErrLock, Owner: fqdn(owner), Err: ctx.Err()}
	}
	if err := p.Storage.Lock(ctx, name); err != nil {
		<-sem
		return nil, &Error{Kind: ErrLock, Owner: fqdn(owner), Err: err}
	}
	return func() {
		_ = p.Storage.Unlock(context.WithoutCancel(ctx), name)
		<-sem
	}, nil
}
