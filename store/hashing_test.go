package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge/store"
)

// TestPasswordChecksBounded: with every hash slot taken and the waiting
// places full, a login is refused at once with ErrBusy, unchecked and not
// counted; one that waits gets checked when a slot frees up.
func TestPasswordChecksBounded(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *store.Options) {
		o.PasswordChecks, o.PasswordCheckQueue, o.PasswordCheckWait = 2, 1, time.Hour
		o.LoginMaxFailures = 3
	})
	sub := b.subscription(t, "Clinic")
	b.practitioner(t, sub.ID, "a@example.com")
	free := store.HoldPasswordChecks(b.store, 2)

	waited := make(chan error, 1)
	go func() {
		_, err := b.store.Authenticate(b.ctx, "a@example.com", "wrong password", "192.0.2.1")
		waited <- err
	}()
	for store.PasswordCheckWaiters(b.store) < 1 {
		time.Sleep(time.Millisecond) // until the login above waits for a slot
	}
	for i := range 10 {
		if _, err := b.store.Authenticate(b.ctx, "a@example.com", testPassword, "192.0.2.1"); !errors.Is(err, store.ErrBusy) {
			t.Fatalf("login %d with every slot and waiting place taken: %v, want ErrBusy", i+1, err)
		}
	}
	select {
	case err := <-waited:
		t.Fatalf("the waiting login finished while every slot was taken: %v", err)
	default:
	}
	free()
	if err := <-waited; !errors.Is(err, store.ErrBadCredentials) {
		t.Errorf("the waiting login: %v, want it checked (ErrBadCredentials)", err)
	}
	// The ten busy answers were not counted: two failures more are allowed
	// before the account locks (limit 3).
	for i := range 2 {
		if _, err := b.store.Authenticate(b.ctx, "a@example.com", "wrong password", "192.0.2.1"); !errors.Is(err, store.ErrBadCredentials) {
			t.Fatalf("failure %d after the busy answers: %v", i+2, err)
		}
	}
	if _, err := b.store.Authenticate(b.ctx, "a@example.com", testPassword, "192.0.2.1"); !errors.Is(err, store.ErrLocked) {
		t.Errorf("after 3 failures: %v, want ErrLocked", err)
	}
}

// TestPasswordChecksNoQueue: with no waiting places a login is refused as
// soon as every slot is taken.
func TestPasswordChecksNoQueue(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *store.Options) { o.PasswordChecks, o.PasswordCheckQueue = 1, -1 })
	sub := b.subscription(t, "Clinic")
	b.practitioner(t, sub.ID, "a@example.com")
	free := store.HoldPasswordChecks(b.store, 1)
	if _, err := b.store.Authenticate(b.ctx, "a@example.com", testPassword, ""); !errors.Is(err, store.ErrBusy) {
		t.Errorf("every slot taken: %v, want ErrBusy", err)
	}
	free()
	if _, err := b.store.Authenticate(b.ctx, "a@example.com", testPassword, ""); err != nil {
		t.Errorf("a slot free: %v", err)
	}
}
