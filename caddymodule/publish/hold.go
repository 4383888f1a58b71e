package publish

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Backoff is the wait before retry n (1, 2, ...): base doubled each time,
// at most limit.
func Backoff(n int, base, limit time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// HoldOptions tell Hold what to wait for and whom to tell.
type HoldOptions struct {
	Owners  []string // the TLSA owners of the held certificate
	Records []string // its records (Records of its chain)

	// Visible returns nil once a validating DANE client, asking now,
	// accepts the held certificate at every owner.
	Visible func(ctx context.Context) error

	// Max bounds the whole wait.
	Max time.Duration

	// Poll is the time between two checks (default: TTL/4, within
	// 200ms-5s); RetryBase and RetryLimit bound the backoff after a
	// failed change (defaults 1s and 1m).
	Poll, RetryBase, RetryLimit time.Duration

	OnChange func(Change)
	OnError  func(owner string, err error, retryIn time.Duration)
}

// Hold keeps a renewed certificate back until its records have been
// published next to the current ones, seen by a validating client, and
// seen for 2×TTL since (RFC 7671 §8.1): only then may the server present
// it. It returns how long it held, or why it gave up (ctx, Max); the
// caller then must not use the certificate. While it waits, the records
// are needed at every owner (the hold is in each owner's state, so other
// instances keep them too).
func (p *Publisher) Hold(ctx context.Context, o HoldOptions) (time.Duration, error) {
	start := p.now()
	h := Hold{ID: newID(), Records: o.Records, Until: start.Add(o.Max)}
	ctx, cancel := context.WithDeadline(ctx, h.Until)
	defer cancel()
	poll := o.Poll
	if poll == 0 {
		poll = min(max(p.TTL/4, 200*time.Millisecond), 5*time.Second)
	}
	base, limit := o.RetryBase, o.RetryLimit
	if base == 0 {
		base = time.Second
	}
	if limit == 0 {
		limit = time.Minute
	}
	added := map[string]bool{}
	defer func() {
		for owner := range added {
			_ = p.hold(context.WithoutCancel(ctx), owner, h, false)
		}
	}()
	var (
		failures int
		visible  time.Time // first time every owner showed the records
		lastErr  error
	)
	for {
		wait := poll
		err := func() error {
			for _, owner := range o.Owners {
				if !added[owner] {
					if err := p.hold(ctx, owner, h, true); err != nil {
						return err
					}
					added[owner] = true
				}
				ch, err := p.Reconcile(ctx, owner)
				if ch.Changed() && o.OnChange != nil {
					o.OnChange(ch)
				}
				if err != nil {
					return err
				}
			}
			return nil
		}()
		if err != nil {
			failures++
			wait = Backoff(failures, base, limit)
			if o.OnError != nil && ctx.Err() == nil {
				o.OnError(ownerOf(err), err, wait)
			}
			lastErr = err
		} else {
			failures = 0
			if verr := o.Visible(ctx); verr != nil {
				// Not visible yet (or no longer): the 2×TTL count
				// starts from the first check that sees them.
				visible = time.Time{}
				lastErr = &Error{Kind: ErrNotVisible, Err: verr}
			} else {
				now := p.now()
				if visible.IsZero() {
					visible = now
				}
				need := time.Duration(0)
				for _, owner := range o.Owners {
					need = max(need, 2*p.WaitTTL(ctx, owner))
				}
				if now.Sub(visible) >= need {
					return now.Sub(start), nil
				}
				wait = min(wait, need-now.Sub(visible))
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			if lastErr == nil {
				lastErr = errors.New("records visible, but not yet for 2×TTL")
			}
			return p.now().Sub(start), fmt.Errorf("certificate held %s without release (%v): %w", p.now().Sub(start).Round(time.Millisecond), ctx.Err(), lastErr)
		case <-t.C:
		}
	}
}

func ownerOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Owner
	}
	return ""
}
