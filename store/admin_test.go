package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge/store"
)

func TestAdminSessions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tok, err := b.store.CreateAdminSession(b.ctx, "gen1", "192.0.2.1", 8*time.Hour)
	must(t, err)
	valid := func(tok, gen string) bool {
		t.Helper()
		ok, err := b.store.AdminSessionValid(b.ctx, tok, gen)
		must(t, err)
		return ok
	}
	if !valid(tok, "gen1") {
		t.Fatal("a new session is not valid")
	}
	if valid(tok, "gen2") {
		t.Error("a session of another admin token's generation is valid")
	}
	if valid("made-up", "gen1") || valid("", "gen1") {
		t.Error("a made-up token is valid")
	}
	if n := b.rdb.Exists(b.ctx, "pmsb:adminsess:"+tok).Val(); n != 0 {
		t.Error("the token is a key in clear")
	}
	b.clock.Advance(8*time.Hour - time.Second)
	if !valid(tok, "gen1") {
		t.Error("ended before 8 hours")
	}
	b.clock.Advance(time.Second)
	if valid(tok, "gen1") {
		t.Error("valid after 8 hours by the store's clock")
	}
	tok2, err := b.store.CreateAdminSession(b.ctx, "gen1", "192.0.2.1", time.Hour)
	must(t, err)
	must(t, b.store.DeleteAdminSession(b.ctx, tok2))
	if valid(tok2, "gen1") {
		t.Error("valid after logout")
	}
}

func TestCheckAdminLogin(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *store.Options) { o.LoginMaxFailures = 3 })
	checked := 0
	check := func(ok bool) func() bool { return func() bool { checked++; return ok } }
	for i := range 3 {
		if err := b.store.CheckAdminLogin(b.ctx, "192.0.2.1", check(false)); !errors.Is(err, store.ErrBadCredentials) {
			t.Fatalf("wrong token %d: %v", i+1, err)
		}
	}
	if err := b.store.CheckAdminLogin(b.ctx, "192.0.2.1", check(true)); !errors.Is(err, store.ErrLocked) || checked != 3 {
		t.Errorf("after 3 failures: %v (%d checks), want locked without a check", err, checked)
	}
	if err := b.store.CheckAdminLogin(b.ctx, "192.0.2.2", check(true)); err != nil {
		t.Errorf("another client: %v", err)
	}
	b.clock.Advance(15 * time.Minute)
	if err := b.store.CheckAdminLogin(b.ctx, "192.0.2.1", check(true)); err != nil {
		t.Errorf("after the window: %v", err)
	}
}
