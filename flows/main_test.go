package flows

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/cliniko/clinikotest"
	"github.com/physitrack/pmsbridge/internal/redistest"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// bundle is what a flows test needs (river's setup habit): a fresh Redis
// database, the store, the Cliniko sandbox and a client on it, the jobs
// client and handlers (to run a task without a worker), the flows on a fake
// clock, and a clinic whose practitioner has the sandbox's administrator
// key.
type bundle struct {
	ctx   context.Context
	rdb   *redis.Client
	st    *store.Store
	sb    *clinikotest.Sandbox
	jobs  *jobs.Client
	h     *jobs.Handlers
	clock *fakeClock
	f     *Flows
	sub   store.Subscription
	pr    store.Practitioner
}

func setup(t *testing.T) *bundle {
	t.Helper()
	b := &bundle{ctx: context.Background(), rdb: redistest.Client(t), clock: newFakeClock(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))}
	keys, err := store.NewKeyring(bytes.Repeat([]byte{7}, store.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	b.st, err = store.New(b.rdb, store.Options{Keys: keys, Argon2: store.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	b.sb = clinikotest.NewDemo(clinikotest.WithRateLimit(0))
	t.Cleanup(b.sb.Close)
	cl, err := cliniko.New(cliniko.Config{BaseURL: b.sb.BaseURL(), UserAgent: "pmsbridge flows tests (dev@pmsbridge.example)",
		RequestsPerMinute: 60000, RetryBackoff: time.Millisecond}, cliniko.Budget{Redis: b.rdb, Key: b.st.ClinikoBudgetKey})
	if err != nil {
		t.Fatal(err)
	}
	b.jobs = jobs.NewClient(b.rdb, b.st)
	b.h = jobs.NewHandlers(jobs.Deps{Store: b.st, Cliniko: cl, Client: b.jobs, AccessURL: "https://au.physitrack.test/access"})
	b.f = New(Deps{Store: b.st, Jobs: b.jobs, Cliniko: cl, AccessURL: "https://au.physitrack.test/access",
		Now: b.clock.Now, After: b.clock.After})
	if b.sub, err = b.st.CreateSubscription(b.ctx, "Demo Physio Clinic"); err != nil {
		t.Fatal(err)
	}
	b.pr = b.practitioner(t, "demo@clinic.example", "Dr Demo", clinikotest.DemoAdminKey)
	return b
}

// clinikoUsers are the demo seed's users by key, as GET /user reports them.
var clinikoUsers = map[string]store.ClinikoUser{
	clinikotest.DemoAdminKey:        {ID: "1", Name: "Demo Practitioner", Role: clinikotest.RoleAdministrator, Shard: "au1"},
	clinikotest.DemoPractitionerKey: {ID: "2", Name: "Priya Raman", Role: clinikotest.RolePractitioner, Shard: "au1"},
	clinikotest.DemoSchedulerKey:    {ID: "4", Name: "Sam Scheduler", Role: clinikotest.RoleScheduler, Shard: "au1"},
}

// practitioner adds a practitioner to the clinic, with one of the demo
// keys saved unless key is "".
func (b *bundle) practitioner(t *testing.T, email, name, key string) store.Practitioner {
	t.Helper()
	pr, err := b.st.CreatePractitioner(b.ctx, store.NewPractitioner{SubscriptionID: b.sub.ID, Email: email, Name: name, Password: "correct horse battery staple"})
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		if err := b.st.SetClinikoKey(b.ctx, pr.ID, key, clinikoUsers[key]); err != nil {
			t.Fatal(err)
		}
	}
	return pr
}

// click is a click of pr on Cliniko patient cid.
func (b *bundle) click(pr store.Practitioner, cid string) Click {
	cu := clinikoUsers[clinikotest.DemoAdminKey]
	return Click{Practitioner: pr, ClinikoUser: &cu, ClinikoPatientID: cid}
}

// importNow runs the import task of a click without a worker.
func (b *bundle) importNow(t *testing.T, c Click) string {
	t.Helper()
	p := importOf(c.Practitioner, c.ClinikoUser.Shard, c.ClinikoPatientID).payload()
	if err := b.h.Mux().ProcessTask(b.ctx, asynq.NewTask(jobs.TypeImportPatient, mustJSON(t, p))); err != nil {
		t.Fatalf("import %s: %v", c.ClinikoPatientID, err)
	}
	id, err := b.st.FindLink(b.ctx, c.Practitioner.SubscriptionID, c.ClinikoUser.Shard, c.ClinikoPatientID)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// startWorker runs a worker on the bundle's Redis until the test ends.
func (b *bundle) startWorker(t *testing.T) {
	t.Helper()
	w := jobs.NewWorker(b.rdb, jobs.WorkerConfig{Concurrency: 4, ImportPollInterval: 10 * time.Millisecond,
		PollInterval: 20 * time.Millisecond, ShutdownTimeout: 2 * time.Second}, b.h.Mux(), b.h, slog.New(slog.DiscardHandler))
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
}

// waitFor polls cond (real time) until it holds; it fails the test after
// a generous while. It waits for work done elsewhere (a worker), never
// asserts how long that takes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

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

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
