package store

import (
	"context"
	"time"
)

// hashGate bounds how many password hashes run at once in this process.
// Each argon2id check takes Argon2.MemoryKiB of memory and a CPU for tens
// of milliseconds, so without a bound a burst of logins costs gigabytes.
// A few attempts may wait for a slot (waiting costs no hash memory); the
// rest are refused at once with ErrBusy, so nothing queues without bound.
type hashGate struct {
	slots   chan struct{}
	waiters chan struct{} // a token per attempt allowed to wait
	wait    time.Duration
}

func newHashGate(slots, queue int, wait time.Duration) *hashGate {
	return &hashGate{slots: make(chan struct{}, slots), waiters: make(chan struct{}, max(queue, 0)), wait: wait}
}

// acquire takes a slot. With queue it may wait (if a waiting place is
// free, for at most g.wait), else it is ErrBusy when every slot is taken;
// without queue it waits until ctx is done (administrators setting
// passwords). The returned func gives the slot back.
func (g *hashGate) acquire(ctx context.Context, queue bool) (func(), error) {
	release := func() { <-g.slots }
	select {
	case g.slots <- struct{}{}:
		return release, nil
	default:
	}
	if queue {
		select {
		case g.waiters <- struct{}{}:
			defer func() { <-g.waiters }()
		default:
			return nil, ErrBusy
		}
		t := time.NewTimer(g.wait)
		defer t.Stop()
		select {
		case g.slots <- struct{}{}:
			return release, nil
		case <-t.C:
			return nil, ErrBusy
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	select {
	case g.slots <- struct{}{}:
		return release, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
