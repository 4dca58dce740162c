package flows

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is the flows' clock in tests: time moves only by Advance, and a
// test can wait until the flow waits (BlockUntilWaiting).
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	changed chan struct{} // closed and replaced when a waiter is added
}

type fakeWaiter struct {
	at time.Time
	c  chan time.Time
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, changed: make(chan struct{})}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := fakeWaiter{at: c.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		w.c <- c.now
		return w.c
	}
	c.waiters = append(c.waiters, w)
	close(c.changed)
	c.changed = make(chan struct{})
	return w.c
}

// Advance moves time on by d and fires every waiter that is due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.c <- c.now
	}
	c.waiters = kept
}

// BlockUntilWaiting returns once something waits on the clock, or when done
// is closed (the flow returned); it fails the test if neither happens.
func (c *fakeClock) BlockUntilWaiting(t *testing.T, done <-chan struct{}) bool {
	t.Helper()
	guard := time.After(20 * time.Second)
	for {
		c.mu.Lock()
		n, changed := len(c.waiters), c.changed
		c.mu.Unlock()
		if n > 0 {
			return true
		}
		select {
		case <-changed:
		case <-done:
			return false
		case <-guard:
			t.Fatal("the flow never waited on the clock")
		}
	}
}
