package jobs

import (
	"context"
	"time"

	"github.com/physitrack/pmsbridge/store"
)

// workLockTTL is the life of a work lock (an upload's, a message's)
// between two renewals. A worker that dies leaves its lock behind for at
// most this long: less than the 60 s or more after which asynq hands a
// crashed worker's task to another (its 30 s lease, plus the 30 s its
// recoverer waits), so the retry never waits for a dead worker's lock. A
// worker cut off from Redis cannot renew the lock, but neither can it renew
// its asynq lease, and asynq cancels the handler's context when the lease
// runs out (at most 30 s), so the first attempt has stopped before the lock
// can lapse and a second one start.
const workLockTTL = 40 * time.Second

// workLock is a lock a handler holds while it does one piece of work that
// must not run twice at once: renewed until released, and checked before
// the step that cannot be undone.
type workLock struct {
	h    *Handlers
	lock *store.Lock
	what string
	stop func()
}

// hold takes a lock with take (a store Lock… method) for the work named
// what; a lock another worker holds is a busyError, which snoozes the task
// for 10 s without using up an attempt.
func (h *Handlers) hold(ctx context.Context, what string, take func() (*store.Lock, bool, error)) (*workLock, error) {
	lock, ok, err := take()
	if err != nil {
		return nil, err
	}
	l := &workLock{h: h, lock: lock, what: what}
	if !ok {
		return nil, l.busy()
	}
	l.stop = h.renewLock(ctx, lock)
	return l, nil
}

func (l *workLock) busy() error {
	return &busyError{what: l.what, retryAt: l.h.Now().Add(10 * time.Second)}
}

// check says whether the lock is still ours: a Redis failover can lose it
// (and the task's dequeue) while the work runs, and hand the task to a
// worker on the new primary. A lost lock is a busyError.
func (l *workLock) check(ctx context.Context) error {
	if held, err := l.lock.Held(ctx); err != nil || !held {
		return l.busy()
	}
	return nil
}

// release stops the renewal and gives the lock up, even when ctx is done.
func (l *workLock) release(ctx context.Context) {
	l.stop()
	if err := l.lock.Release(context.WithoutCancel(ctx)); err != nil {
		l.h.Log.Warn("release lock", "work", l.what, "err", err)
	}
}

// renewLock keeps lock alive while the handler runs; the returned function
// stops the renewal.
func (h *Handlers) renewLock(ctx context.Context, lock *store.Lock) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(workLockTTL / 4)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := lock.Renew(ctx); err != nil && ctx.Err() == nil {
					h.Log.Warn("renew lock", "err", err)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}
