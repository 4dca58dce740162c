package store_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge/store"
)

func TestCreatePractitionerValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	good := store.NewPractitioner{SubscriptionID: sub.ID, Email: "a@example.com", Name: "A", Password: "0123456789"}
	tests := []struct {
		desc         string
		mod          func(*store.NewPractitioner)
		wantProblems []string
	}{
		{desc: "unknown subscription", mod: func(n *store.NewPractitioner) { n.SubscriptionID = "sub_nope" },
			wantProblems: []string{"subscription does not exist"}},
		{desc: "bad email", mod: func(n *store.NewPractitioner) { n.Email = "not-an-email" },
			wantProblems: []string{"email does not look valid"}},
		{desc: "email without domain dot", mod: func(n *store.NewPractitioner) { n.Email = "a@localhost" },
			wantProblems: []string{"email does not look valid"}},
		{desc: "display-name email", mod: func(n *store.NewPractitioner) { n.Email = "A <a@example.com>" },
			wantProblems: []string{"email does not look valid"}},
		{desc: "blank name", mod: func(n *store.NewPractitioner) { n.Name = "  " },
			wantProblems: []string{"name must be 1 to 200 characters"}},
		{desc: "short password", mod: func(n *store.NewPractitioner) { n.Password = "012345678" },
			wantProblems: []string{"password must be at least 10 characters"}},
		{desc: "everything wrong", mod: func(n *store.NewPractitioner) { *n = store.NewPractitioner{} },
			wantProblems: []string{"subscription does not exist", "email does not look valid",
				"name must be 1 to 200 characters", "password must be at least 10 characters"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			in := good
			tc.mod(&in)
			_, err := b.store.CreatePractitioner(b.ctx, in)
			var ve *store.ValidationError
			if !errors.Is(err, store.ErrInvalid) || !errors.As(err, &ve) {
				t.Fatalf("CreatePractitioner: err = %v, want a ValidationError", err)
			}
			if diff := cmp.Diff(tc.wantProblems, ve.Problems); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCreatePractitionerEmailUnique(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub1, sub2 := b.subscription(t, "One"), b.subscription(t, "Two")
	p, err := b.store.CreatePractitioner(b.ctx, store.NewPractitioner{
		SubscriptionID: sub1.ID, Email: "  Ann@Example.COM ", Name: " Ann ", Password: testPassword,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := store.Practitioner{ID: p.ID, SubscriptionID: sub1.ID, Email: "ann@example.com", Name: "Ann",
		Active: true, CreatedAt: b.clock.Now()}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("created (-want +got):\n%s", diff)
	}
	got, err := b.store.PractitionerByEmail(b.ctx, "ANN@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("PractitionerByEmail (-want +got):\n%s", diff)
	}
	for _, email := range []string{"ann@example.com", "ANN@EXAMPLE.COM"} {
		for _, subID := range []string{sub1.ID, sub2.ID} {
			_, err := b.store.CreatePractitioner(b.ctx, store.NewPractitioner{
				SubscriptionID: subID, Email: email, Name: "Other", Password: testPassword,
			})
			if !errors.Is(err, store.ErrConflict) {
				t.Errorf("second %s in %s: err = %v, want ErrConflict", email, subID, err)
			}
		}
	}
	if _, err := b.store.PractitionerByEmail(b.ctx, "nobody@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown email: err = %v, want ErrNotFound", err)
	}
}

func TestCreatePractitionerConcurrentSameEmail(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, conflicts := 0, 0
	for range 10 {
		wg.Go(func() {
			_, err := b.store.CreatePractitioner(b.ctx, store.NewPractitioner{
				SubscriptionID: sub.ID, Email: "race@example.com", Name: "R", Password: testPassword,
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, store.ErrConflict):
				conflicts++
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins != 1 || conflicts != 9 {
		t.Errorf("wins = %d, conflicts = %d; want 1 and 9", wins, conflicts)
	}
	list, err := b.store.ListPractitioners(b.ctx, sub.ID)
	if err != nil || len(list) != 1 {
		t.Errorf("ListPractitioners = %d practitioners, %v; want 1", len(list), err)
	}
	// Losers leave no record behind.
	if n := len(b.rdb.Keys(b.ctx, "pmsb:prac:*").Val()); n != 1 {
		t.Errorf("%d practitioner keys, want 1", n)
	}
}

func TestListPractitionersAndActivation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub, other := b.subscription(t, "Clinic"), b.subscription(t, "Other")
	mk := func(subID, email, name string) store.Practitioner {
		p, err := b.store.CreatePractitioner(b.ctx, store.NewPractitioner{SubscriptionID: subID, Email: email, Name: name, Password: testPassword})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	zed := mk(sub.ID, "z@example.com", "Zed")
	amy := mk(sub.ID, "a@example.com", "amy")
	mk(other.ID, "o@example.com", "Other")
	if err := b.store.Deactivate(b.ctx, zed.ID); err != nil {
		t.Fatal(err)
	}
	zed.Active = false
	got, err := b.store.ListPractitioners(b.ctx, sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]store.Practitioner{amy, zed}, got); diff != "" {
		t.Errorf("ListPractitioners (-want +got):\n%s", diff)
	}
	if err := b.store.Reactivate(b.ctx, zed.ID); err != nil {
		t.Fatal(err)
	}
	if !b.practitionerNow(t, zed.ID).Active {
		t.Error("Reactivate left the practitioner inactive")
	}
	if err := b.store.Deactivate(b.ctx, "prac_missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Deactivate(missing): err = %v, want ErrNotFound", err)
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	active := b.practitioner(t, sub.ID, "active@example.com")
	inactive := b.practitioner(t, sub.ID, "inactive@example.com")
	if err := b.store.Deactivate(b.ctx, inactive.ID); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		desc     string
		email    string
		password string
		wantID   string
		wantErr  error
	}{
		{desc: "right", email: "active@example.com", password: testPassword, wantID: active.ID},
		{desc: "email case and space", email: " Active@Example.com ", password: testPassword, wantID: active.ID},
		{desc: "wrong password", email: "active@example.com", password: testPassword + "!", wantErr: store.ErrBadCredentials},
		{desc: "unknown email", email: "nobody@example.com", password: testPassword, wantErr: store.ErrBadCredentials},
		{desc: "inactive", email: "inactive@example.com", password: testPassword, wantErr: store.ErrBadCredentials},
		{desc: "empty", email: "", password: "", wantErr: store.ErrBadCredentials},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			got, err := b.store.Authenticate(b.ctx, tc.email, tc.password, "")
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Authenticate: err = %v, want %v", err, tc.wantErr)
			}
			if got.ID != tc.wantID {
				t.Errorf("Authenticate = %q, want %q", got.ID, tc.wantID)
			}
		})
	}
}

func TestSetPassword(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	p := b.practitioner(t, sub.ID, "a@example.com")
	token, _, err := b.store.CreateSession(b.ctx, p.ID, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.store.SetPassword(b.ctx, p.ID, "short"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("SetPassword(short): err = %v, want ErrInvalid", err)
	}
	if err := b.store.SetPassword(b.ctx, p.ID, "a brand new password"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.Authenticate(b.ctx, "a@example.com", testPassword, ""); !errors.Is(err, store.ErrBadCredentials) {
		t.Errorf("old password: err = %v, want ErrBadCredentials", err)
	}
	if _, err := b.store.Authenticate(b.ctx, "a@example.com", "a brand new password", ""); err != nil {
		t.Errorf("new password: %v", err)
	}
	if _, err := b.store.GetSession(b.ctx, token); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("session after SetPassword: err = %v, want ErrNotFound", err)
	}
}

// lockedUntil returns the unlock time of a *LockedError, failing otherwise.
func lockedUntil(t *testing.T, err error) time.Time {
	t.Helper()
	var le *store.LockedError
	if !errors.Is(err, store.ErrLocked) || !errors.As(err, &le) {
		t.Fatalf("err = %v, want a LockedError", err)
	}
	return le.Until
}

func TestAuthenticateLocksAccount(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *store.Options) { o.LoginMaxFailures = 3; o.LoginWindow = 15 * time.Minute })
	sub := b.subscription(t, "Clinic")
	b.practitioner(t, sub.ID, "a@example.com")
	start := b.clock.Now()
	for i := range 3 {
		// Each attempt from another address: the account lock alone counts.
		ip := "10.0.0." + string(rune('1'+i))
		if _, err := b.store.Authenticate(b.ctx, "a@example.com", "wrong password", ip); !errors.Is(err, store.ErrBadCredentials) {
			t.Fatalf("failure %d: err = %v, want ErrBadCredentials", i+1, err)
		}
		b.clock.Advance(time.Minute)
	}
	_, err := b.store.Authenticate(b.ctx, "a@example.com", testPassword, "10.9.9.9")
	if got, want := lockedUntil(t, err), start.Add(15*time.Minute); !got.Equal(want) {
		t.Errorf("locked until %v, want %v (first failure + window)", got, want)
	}
	// Another account is not affected.
	b.practitioner(t, sub.ID, "b@example.com")
	if _, err := b.store.Authenticate(b.ctx, "b@example.com", testPassword, "10.9.9.9"); err != nil {
		t.Errorf("other account: %v", err)
	}
	b.clock.Advance(15*time.Minute - 3*time.Minute - time.Second)
	if _, err := b.store.Authenticate(b.ctx, "a@example.com", testPassword, ""); !errors.Is(err, store.ErrLocked) {
		t.Errorf("just before the window passes: err = %v, want ErrLocked", err)
	}
	b.clock.Advance(time.Second)
	if _, err := b.store.Authenticate(b.ctx, "a@example.com", testPassword, ""); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	// Success cleared the account's failures: three more are allowed.
	for i := range 3 {
		if _, err := b.store.Authenticate(b.ctx, "a@example.com", "wrong password", ""); !errors.Is(err, store.ErrBadCredentials) {
			t.Fatalf("failure %d after success: err = %v, want ErrBadCredentials", i+1, err)
		}
	}
	if _, err := b.store.Authenticate(b.ctx, "a@example.com", testPassword, ""); !errors.Is(err, store.ErrLocked) {
		t.Errorf("after three more failures: err = %v, want ErrLocked", err)
	}
}

func TestAuthenticateLocksIP(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *store.Options) { o.LoginMaxFailures = 3 })
	sub := b.subscription(t, "Clinic")
	b.practitioner(t, sub.ID, "victim@example.com")
	start := b.clock.Now()
	for _, email := range []string{"x@example.com", "y@example.com", "z@example.com"} {
		if _, err := b.store.Authenticate(b.ctx, email, "guess guess", "192.0.2.7"); !errors.Is(err, store.ErrBadCredentials) {
			t.Fatalf("%s: err = %v, want ErrBadCredentials", email, err)
		}
	}
	_, err := b.store.Authenticate(b.ctx, "victim@example.com", testPassword, "192.0.2.7")
	if got, want := lockedUntil(t, err), start.Add(15*time.Minute); !got.Equal(want) {
		t.Errorf("locked until %v, want %v", got, want)
	}
	if _, err := b.store.Authenticate(b.ctx, "victim@example.com", testPassword, "192.0.2.8"); err != nil {
		t.Errorf("from another address: %v", err)
	}
	b.clock.Advance(15 * time.Minute)
	if _, err := b.store.Authenticate(b.ctx, "victim@example.com", testPassword, "192.0.2.7"); err != nil {
		t.Errorf("after the window: %v", err)
	}
}
