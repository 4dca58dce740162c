package flows

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
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
	sb    *sandbox.Sandbox
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
	b.sb = sandbox.NewDemo(sandbox.WithRateLimit(0))
	t.Cleanup(b.sb.Close)
	cl, err := cliniko.New(cliniko.Config{BaseURL: b.sb.BaseURL(), UserAgent: "pmsbridge flows tests (dev@pmsbridge.example)",
		RequestsPerMinute: 60000, RetryBackoff: time.Millisecond}, cliniko.Budget{Redis: b.rdb, Key: b.st.ClinikoBudgetKey})
	if err != nil {
		t.Fatal(err)
	}
	b.jobs = jobs.NewClient(b.rdb, b.st)
	b.h = jobs.NewHandlers(jobs.Deps{Store: b.st, Cliniko: cl, Client: b.jobs, AccessURL: "https://au.physitrack.test/access"})
	b.f = New(Deps{Store: b.st, Jobs: b.jobs, Cliniko: cl, AccessURL: "https://au.physitrack.test/access",
		Now: b.clock.Now, After: b.clock.After, Region: "au", Regions: testRegions})
	if b.sub, err = b.st.CreateSubscription(b.ctx, "Demo Physio Clinic"); err != nil {
		t.Fatal(err)
	}
	b.pr = b.practitioner(t, "demo@clinic.example", "Dr Demo", sandbox.DemoAdminKey)
	return b
}

// testRegions are the deployments the flows' tests know.
var testRegions = []Region{{Code: "au", Name: "Australia", URL: "https://au.physitrack.test"},
	{Code: "nz", Name: "New Zealand", URL: "https://nz.physitrack.test"}, {Code: "uk", Name: "United Kingdom", URL: "https://uk.physitrack.test"}}

// practitioner adds a practitioner to the clinic, with one of the demo
// keys saved (through SaveKey, which asks the sandbox whose it is) unless
// key is "".
func (b *bundle) practitioner(t *testing.T, email, name, key string) store.Practitioner {
	t.Helper()
	np := store.NewPractitioner{SubscriptionID: b.sub.ID, Email: email, Name: name, Password: "correct horse battery staple"}
	pr, err := b.st.CreatePractitioner(b.ctx, np)
	if err == nil && key != "" {
		_, err = b.f.SaveKey(b.ctx, pr, key)
	}
	if err != nil {
		t.Fatal(err)
	}
	return pr
}

// clinikoUser is the Cliniko user of pr's saved key.
func (b *bundle) clinikoUser(t *testing.T, pr store.Practitioner) *store.ClinikoUser {
	t.Helper()
	cu, ok, err := b.st.ClinikoUserOf(b.ctx, pr.ID)
	if err != nil || !ok {
		t.Fatalf("no Cliniko user for %s: %v", pr.ID, err)
	}
	return &cu
}

// click is a click of pr (with a saved key) on Cliniko patient cid.
func (b *bundle) click(t *testing.T, pr store.Practitioner, cid string) Click {
	t.Helper()
	return Click{Practitioner: pr, ClinikoUser: b.clinikoUser(t, pr), ClinikoPatientID: cid}
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

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
