package store_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge/store"
)

// TestCodeLockAndUnlock: the tries left after each wrong year (the same
// count for a code nobody has: the counter is the code string's); the lock
// as the practitioner's page reads it, without counting a try; and the
// unlock, after which the right year opens at once.
func TestCodeLockAndUnlock(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *store.Options) { o.AccessMaxFailures = 5; o.AccessMaxIPFailures = 30 })
	sub := b.subscription(t, "Clinic")
	pat := b.patient(t, b.practitioner(t, sub.ID, "a@example.com"), "1", "P") // born 1985
	prg, _, err := b.store.CreateProgramme(b.ctx, programmeFor(pat, "T"))
	must(t, err)
	start := b.clock.Now()
	for i, code := range []string{prg.Code, "zzzzzzzz"} {
		for try := 1; try <= 5; try++ {
			_, att, err := b.store.OpenProgramme(b.ctx, code, 1990, "203.0.113.9")
			if !errors.Is(err, store.ErrBadCredentials) || att.TriesLeft != 5-try {
				t.Fatalf("code %d, wrong year %d: %v, %d tries left; want ErrBadCredentials, %d", i, try, err, att.TriesLeft, 5-try)
			}
			b.clock.Advance(time.Minute)
		}
	}
	lock, err := b.store.CodeLock(b.ctx, prg.Code)
	must(t, err)
	if want := start.Add(time.Hour); !lock.Locked() || !lock.Until.Equal(want) || lock.Failures != 5 || lock.Max != 5 {
		t.Errorf("lock %+v, want 5 of 5 failures, locked until %v", lock, want)
	}
	if again, _ := b.store.CodeLock(b.ctx, prg.Code); again.Failures != 5 {
		t.Errorf("reading the lock counted a try: %+v", again)
	}
	if _, _, err := b.store.OpenProgramme(b.ctx, prg.Code, 1985, "198.51.100.1"); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("locked code: %v", err)
	}
	must(t, b.store.UnlockCode(b.ctx, prg.Code))
	if lock, _ := b.store.CodeLock(b.ctx, prg.Code); lock.Locked() || lock.Failures != 0 {
		t.Errorf("after the unlock: %+v", lock)
	}
	if _, _, err := b.store.OpenProgramme(b.ctx, prg.Code, 1985, "198.51.100.1"); err != nil {
		t.Errorf("right year after the unlock: %v", err)
	}
	if lock, _ := b.store.CodeLock(b.ctx, "zzzzzzzz"); !lock.Locked() {
		t.Errorf("the unlock of one code unlocked another: %+v", lock)
	}
}

// TestTriesLeftUnderConcurrency: of 20 simultaneous wrong tries of one
// code, 5 are checked and say 4, 3, 2, 1, 0 tries left (each once); the
// rest are locked, unchecked.
func TestTriesLeftUnderConcurrency(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *store.Options) { o.AccessMaxFailures = 5; o.AccessMaxIPFailures = 100 })
	var mu sync.Mutex
	left := map[int]int{}
	locked := 0
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			_, att, err := b.store.OpenProgramme(b.ctx, "abcdefgh", 1985, "203.0.113.7")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, store.ErrBadCredentials):
				left[att.TriesLeft]++
			case errors.Is(err, store.ErrLocked):
				locked++
			default:
				t.Errorf("try: %v", err)
			}
		})
	}
	wg.Wait()
	for n := range 5 {
		if left[n] != 1 {
			t.Errorf("tries left %v, want 0..4 once each", left)
			break
		}
	}
	if locked != 15 {
		t.Errorf("%d locked, want 15", locked)
	}
}
