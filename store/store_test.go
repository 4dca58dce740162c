package store_test

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/internal/redistest"
	"github.com/physitrack/pmsbridge/store"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// clock is an injectable clock that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// bundle is what most tests need.
type bundle struct {
	ctx   context.Context
	rdb   *redis.Client
	store *store.Store
	clock *clock
	keys  *store.Keyring
	opts  store.Options
}

// testKey returns a deterministic 32-byte key.
func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, store.KeySize) }

// cheapArgon2 keeps password hashing fast under the race detector.
var cheapArgon2 = store.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}

// setup returns a store on a fresh Redis database, with a fake clock. mods
// adjust the options before New.
func setup(t testing.TB, mods ...func(*store.Options)) *bundle {
	t.Helper()
	return setupOn(t, redistest.Client(t), mods...)
}

// setupOn is setup on a given Redis client.
func setupOn(t testing.TB, rdb *redis.Client, mods ...func(*store.Options)) *bundle {
	t.Helper()
	keys, err := store.NewKeyring(testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{
		ctx:   context.Background(),
		rdb:   rdb,
		clock: &clock{t: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)},
		keys:  keys,
	}
	b.opts = store.Options{Now: b.clock.Now, Keys: keys, Argon2: cheapArgon2}
	for _, m := range mods {
		m(&b.opts)
	}
	b.store, err = store.New(b.rdb, b.opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// reopen returns a second store on the same database with other options.
func (b *bundle) reopen(t testing.TB, mod func(*store.Options)) *store.Store {
	t.Helper()
	opts := b.opts
	mod(&opts)
	s, err := store.New(b.rdb, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const testPassword = "correct horse battery"

func (b *bundle) subscription(t testing.TB, name string) store.Subscription {
	t.Helper()
	sub, err := b.store.CreateSubscription(b.ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

func (b *bundle) practitioner(t testing.TB, subID, email string) store.Practitioner {
	t.Helper()
	return b.namedPractitioner(t, subID, email, "Dr "+email)
}

func (b *bundle) namedPractitioner(t testing.TB, subID, email, name string) store.Practitioner {
	t.Helper()
	p, err := b.store.CreatePractitioner(b.ctx, store.NewPractitioner{
		SubscriptionID: subID, Email: email, Name: name, Password: testPassword,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// patient imports a Cliniko patient for owner.
func (b *bundle) patient(t testing.TB, owner store.Practitioner, clinikoID, last string) store.Patient {
	t.Helper()
	p, _, err := b.store.ImportPatient(b.ctx, owner.SubscriptionID, "au1", clinikoID, owner.ID, store.Patient{
		FirstName: "Pat", LastName: last, YearOfBirth: 1985,
		BirthYearStatus: pmsbridge.BirthYearOK, BirthYearSource: pmsbridge.BirthYearFromCliniko,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// practitionerNow reloads a practitioner.
func (b *bundle) practitionerNow(t testing.TB, id string) store.Practitioner {
	t.Helper()
	p, err := b.store.GetPractitioner(b.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNewOptions(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	keys, _ := store.NewKeyring(testKey(1))
	tests := []struct {
		desc    string
		opts    store.Options
		wantErr bool
	}{
		{desc: "defaults with keys", opts: store.Options{Keys: keys}},
		{desc: "no keys (read-only tools)", opts: store.Options{}},
		{desc: "negative idle", opts: store.Options{Keys: keys, SessionIdle: -time.Second}, wantErr: true},
		{desc: "negative failures", opts: store.Options{Keys: keys, LoginMaxFailures: -1}, wantErr: true},
		{desc: "braces in prefix", opts: store.Options{Keys: keys, Prefix: "{x}:"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			_, err := store.New(rdb, tc.opts)
			if (err != nil) != tc.wantErr {
				t.Fatalf("New: err = %v, want error: %v", err, tc.wantErr)
			}
		})
	}
}

func TestPrefix(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *store.Options) { o.Prefix = "other:" })
	b.subscription(t, "Clinic")
	keys, err := b.rdb.Keys(b.ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatal("no keys written")
	}
	for _, k := range keys {
		if len(k) < 6 || k[:6] != "other:" {
			t.Errorf("key %q lacks the prefix", k)
		}
	}
}

func (b *bundle) practitionerByEmail(t testing.TB, email string) store.Practitioner {
	t.Helper()
	p, err := b.store.PractitionerByEmail(b.ctx, email)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }
