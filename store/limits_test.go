package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge/internal/loadgen"
	"github.com/physitrack/pmsbridge/store"
)

// together runs f(0..n-1) on n goroutines released at once and returns
// their errors.
func together(n int, f func(i int) error) []error {
	errs := make([]error, n)
	loadgen.Burst(n, func(i int) { errs[i] = f(i) })
	return errs
}

// outcomes counts errors as checked-and-wrong, locked and other.
func outcomes(t *testing.T, errs []error) (wrong, locked int) {
	t.Helper()
	for _, err := range errs {
		switch {
		case errors.Is(err, store.ErrBadCredentials):
			wrong++
		case errors.Is(err, store.ErrLocked):
			locked++
		default:
			t.Errorf("unexpected outcome %v", err)
		}
	}
	return wrong, locked
}

func TestLimitsHoldUnderConcurrency(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *store.Options) { o.LoginMaxFailures = 4; o.AccessMaxFailures = 3; o.AccessMaxIPFailures = 7 })
	sub := b.subscription(t, "Clinic")
	pat := b.patient(t, b.practitioner(t, sub.ID, "a@example.com"), "1", "P") // born 1985
	prg, _, err := b.store.CreateProgramme(b.ctx, programmeFor(pat, "T"))
	must(t, err)

	t.Run("logins to one account", func(t *testing.T) {
		errs := together(50, func(i int) error {
			_, err := b.store.Authenticate(b.ctx, "a@example.com", fmt.Sprintf("wrong %d", i), fmt.Sprintf("10.0.%d.1", i))
			return err
		})
		if wrong, locked := outcomes(t, errs); wrong != 4 || locked != 46 {
			t.Errorf("%d checked, %d locked; want exactly 4 checked", wrong, locked)
		}
	})
	t.Run("logins from one client", func(t *testing.T) {
		errs := together(50, func(i int) error {
			_, err := b.store.Authenticate(b.ctx, fmt.Sprintf("u%d@example.com", i), "wrong", "192.0.2.1")
			return err
		})
		if wrong, locked := outcomes(t, errs); wrong != 4 || locked != 46 {
			t.Errorf("%d checked, %d locked; want exactly 4 checked", wrong, locked)
		}
	})
	t.Run("years for one code", func(t *testing.T) {
		errs := together(50, func(i int) error {
			_, _, err := b.store.OpenProgramme(b.ctx, prg.Code, 1900+i, fmt.Sprintf("10.1.%d.1", i))
			return err
		})
		if wrong, locked := outcomes(t, errs); wrong != 3 || locked != 47 {
			t.Errorf("%d checked, %d locked; want exactly 3 checked", wrong, locked)
		}
	})
	t.Run("codes from one client", func(t *testing.T) {
		errs := together(50, func(i int) error {
			_, _, err := b.store.OpenProgramme(b.ctx, fmt.Sprintf("zzzzzz%c%c", 'a'+i/26, 'a'+i%26), 1985, "192.0.2.2")
			return err
		})
		if wrong, locked := outcomes(t, errs); wrong != 7 || locked != 43 {
			t.Errorf("%d checked, %d locked; want exactly 7 checked", wrong, locked)
		}
	})
}

// TestSuccessDoesNotCount: right answers give their slot back, so any
// number of them leaves room for the failures the limit allows. (While
// being checked they hold a slot: more simultaneous attempts than the
// limit are refused even when right.)
func TestSuccessDoesNotCount(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *store.Options) { o.LoginMaxFailures = 3; o.AccessMaxFailures = 3; o.AccessMaxIPFailures = 3 })
	sub := b.subscription(t, "Clinic")
	pat := b.patient(t, b.practitioner(t, sub.ID, "a@example.com"), "1", "P")
	prg, _, err := b.store.CreateProgramme(b.ctx, programmeFor(pat, "T"))
	must(t, err)
	for range 20 {
		_, err := b.store.Authenticate(b.ctx, "a@example.com", testPassword, "192.0.2.1")
		must(t, err)
		_, _, err = b.store.OpenProgramme(b.ctx, prg.Code, 1985, "192.0.2.1")
		must(t, err)
	}
	for i := range 3 {
		if _, err := b.store.Authenticate(b.ctx, "a@example.com", "wrong", "192.0.2.1"); !errors.Is(err, store.ErrBadCredentials) {
			t.Fatalf("login failure %d after 20 successes: %v", i+1, err)
		}
		if _, _, err := b.store.OpenProgramme(b.ctx, prg.Code, 1990, "192.0.2.1"); !errors.Is(err, store.ErrBadCredentials) {
			t.Fatalf("access failure %d after 20 successes: %v", i+1, err)
		}
	}
	b.clock.Advance(time.Second)
	var le *store.LockedError
	if _, err := b.store.Authenticate(b.ctx, "a@example.com", testPassword, "192.0.2.1"); !errors.As(err, &le) || le.Scope != "account" && le.Scope != "client" {
		t.Errorf("login after 3 failures: %v, want locked", err)
	}
	if _, _, err := b.store.OpenProgramme(b.ctx, prg.Code, 1985, "192.0.2.9"); !errors.As(err, &le) || le.Scope != "code" {
		t.Errorf("access after 3 failures: %v, want the code locked", err)
	}
}
