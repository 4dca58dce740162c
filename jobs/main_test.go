package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/internal/redistest"
	"github.com/physitrack/pmsbridge/store"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

const testUA = "pmsbridge jobs tests (dev@pmsbridge.example)"

// testAccessURL is printed on the PDFs the tests make.
const testAccessURL = "https://au.physitrack.test/access"

// bundle is what a jobs test needs: a fresh Redis database, a store, the
// demo Cliniko sandbox and a client on it, the jobs client and handlers,
// and a subscription whose practitioner has the sandbox's administrator key
// and has imported one patient (Zoë O'Brien) through the import task.
type bundle struct {
	ctx      context.Context
	rdb      *redis.Client
	keys     *store.Keyring
	st       *store.Store
	sb       *sandbox.Sandbox
	cl       *cliniko.Client
	jc       *Client
	h        *Handlers
	sub      store.Subscription
	pr       store.Practitioner
	patient  store.Patient // linked to sandbox.DemoPatientID
	adminKey cliniko.Auth

	mu     sync.Mutex
	onCall func(cliniko.Call) // runs after every Cliniko call, if set
}

// options adjust what setup builds.
type options struct {
	sandbox []sandbox.Option
	cliniko cliniko.Config
	deps    func(*Deps)
}

// setup builds a bundle. The sandbox has no rate limit and the client a
// large budget unless o says otherwise.
func setup(t *testing.T, o ...func(*options)) *bundle {
	t.Helper()
	var opts options
	opts.cliniko = cliniko.Config{RequestsPerMinute: 60000, RetryBackoff: time.Millisecond}
	for _, f := range o {
		f(&opts)
	}
	b := &bundle{ctx: context.Background(), rdb: redistest.Client(t)}
	var err error
	if b.keys, err = store.NewKeyring(bytes.Repeat([]byte{7}, store.KeySize)); err != nil {
		t.Fatal(err)
	}
	b.st = b.newStore(t, b.rdb)
	b.sb = sandbox.NewDemo(append([]sandbox.Option{sandbox.WithRateLimit(0)}, opts.sandbox...)...)
	t.Cleanup(b.sb.Close)
	cfg := opts.cliniko
	cfg.BaseURL, cfg.UserAgent = b.sb.BaseURL(), testUA
	b.cl, err = cliniko.New(cfg, cliniko.Budget{Redis: b.rdb, Key: b.st.ClinikoBudgetKey}, cliniko.WithObserver(func(_ context.Context, c cliniko.Call) {
		b.mu.Lock()
		f := b.onCall
		b.mu.Unlock()
		if f != nil {
			f(c)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	b.jc = NewClient(b.rdb, b.st)
	deps := Deps{Store: b.st, Cliniko: b.cl, Client: b.jc, AccessURL: testAccessURL, SyncInterval: time.Second}
	if opts.deps != nil {
		opts.deps(&deps)
	}
	b.h = NewHandlers(deps)
	b.adminKey = cliniko.Auth{Key: sandbox.DemoAdminKey, UserID: sandbox.DemoAdminUserID}

	if b.sub, err = b.st.CreateSubscription(b.ctx, "Demo Physio Clinic"); err != nil {
		t.Fatal(err)
	}
	b.pr = b.practitioner(t, "demo@clinic.example", "Dr Demo Practitioner", sandbox.DemoAdminKey)
	b.patient = b.importDirect(t, b.pr, sandbox.DemoPatientID)
	return b
}

// newStore returns a store on rdb with the bundle's keyring.
func (b *bundle) newStore(t *testing.T, rdb redis.UniversalClient) *store.Store {
	t.Helper()
	st, err := store.New(rdb, store.Options{Keys: b.keys, Argon2: store.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// clinikoUsers are the demo seed's users by key, as GET /user reports them.
var clinikoUsers = map[string]store.ClinikoUser{
	sandbox.DemoAdminKey:        {ID: "1", Name: "Demo Practitioner", Role: sandbox.RoleAdministrator, Shard: "au1"},
	sandbox.DemoPractitionerKey: {ID: "2", Name: "Priya Raman", Role: sandbox.RolePractitioner, Shard: "au1"},
	sandbox.DemoSchedulerKey:    {ID: "4", Name: "Sam Scheduler", Role: sandbox.RoleScheduler, Shard: "au1"},
}

// practitioner adds a practitioner to the bundle's subscription, with key
// saved unless it is "".
func (b *bundle) practitioner(t *testing.T, email, name, key string) store.Practitioner {
	t.Helper()
	pr, err := b.st.CreatePractitioner(b.ctx, store.NewPractitioner{SubscriptionID: b.sub.ID, Email: email, Name: name, Password: "correct horse battery staple"})
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		b.setKey(t, pr.ID, key)
	}
	return pr
}

// setKey saves one of the demo seed's keys for a practitioner.
func (b *bundle) setKey(t *testing.T, practitionerID, key string) {
	t.Helper()
	u, ok := clinikoUsers[key]
	if !ok {
		t.Fatalf("no demo user for the key")
	}
	if err := b.st.SetClinikoKey(b.ctx, practitionerID, key, u); err != nil {
		t.Fatal(err)
	}
}

// setOnCall sets the hook run after every Cliniko call.
func (b *bundle) setOnCall(f func(cliniko.Call)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onCall = f
}

// importDirect imports a Cliniko patient by running the import task's
// handler (without a worker) and returns our patient.
func (b *bundle) importDirect(t *testing.T, pr store.Practitioner, clinikoID string) store.Patient {
	t.Helper()
	p := ImportPayload{PractitionerID: pr.ID, SubscriptionID: pr.SubscriptionID, Shard: "au1", ClinikoPatientID: clinikoID}
	if err := b.h.Mux().ProcessTask(b.ctx, asynq.NewTask(TypeImportPatient, mustPayload(p))); err != nil {
		t.Fatalf("import %s: %v", clinikoID, err)
	}
	id, err := b.st.FindLink(b.ctx, pr.SubscriptionID, "au1", clinikoID)
	if err != nil {
		t.Fatalf("import %s: no link: %v", clinikoID, err)
	}
	return b.getPatient(t, id)
}

func (b *bundle) getPatient(t *testing.T, id string) store.Patient {
	t.Helper()
	p, err := b.st.GetPatient(b.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startWorker runs a worker on the bundle's Redis with short poll
// intervals, stopped when the test ends. handler defaults to the
// handlers' mux.
func (b *bundle) startWorker(t *testing.T, handler asynq.Handler, every ...time.Duration) *Worker {
	t.Helper()
	if handler == nil {
		handler = b.h.Mux()
	}
	w := NewWorker(b.rdb, WorkerConfig{
		Concurrency: 8, ImportPollInterval: 10 * time.Millisecond, PollInterval: 20 * time.Millisecond,
		ShutdownTimeout: 2 * time.Second,
	}, handler, b.h, slog.New(slog.DiscardHandler))
	for _, d := range every {
		w.Every(d, NewSyncTickTask())
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	return w
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitState waits until task id in queue reaches state and returns its info.
func (b *bundle) waitState(t *testing.T, queue, id string, want State) *asynq.TaskInfo {
	t.Helper()
	var info *asynq.TaskInfo
	var last State
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, i, err := b.jc.TaskState(b.ctx, queue, id)
		if err != nil {
			t.Fatal(err)
		}
		last, info = st, i
		if st == want {
			return info
		}
		if time.Now().After(deadline) {
			msg := ""
			if info != nil {
				msg = info.LastErr
			}
			t.Fatalf("task %s: state %q, want %q (last error %q)", id, last, want, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitDone waits until a task without retention (uploads, sync) has
// completed: asynq deletes it at once, so it is gone from the queue.
func (b *bundle) waitDone(t *testing.T, queue, id string) {
	t.Helper()
	waitFor(t, 15*time.Second, "task "+id+" to complete", func() bool {
		st, info, err := b.jc.TaskState(b.ctx, queue, id)
		if err != nil {
			t.Fatal(err)
		}
		if st == StateFailed {
			t.Fatalf("task %s failed: %s", id, info.LastErr)
		}
		return st == StateNone || st == StateDone
	})
}

// failure returns a task's ledger entry, failing the test when there is none.
func (b *bundle) failure(t *testing.T, taskID string) store.Failure {
	t.Helper()
	f, err := b.st.GetFailure(b.ctx, taskID)
	if err != nil {
		t.Fatalf("ledger entry of %s: %v", taskID, err)
	}
	return f
}

// noFailure checks that a task has no ledger entry.
func (b *bundle) noFailure(t *testing.T, taskID string) {
	t.Helper()
	if f, err := b.st.GetFailure(b.ctx, taskID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ledger entry of %s = %+v, %v; want none", taskID, f, err)
	}
}

// programme creates version 1 of a programme for patient by pr (or the
// next version of id when id is set).
func (b *bundle) programme(t *testing.T, id string, patient store.Patient, pr store.Practitioner, title string) pmsbridge.Programme {
	t.Helper()
	ex, _ := pmsbridge.CatalogueExercise(pmsbridge.Catalogue()[0].ID)
	p, _, err := b.st.CreateProgramme(b.ctx, pmsbridge.Programme{ID: id, PatientID: patient.ID, PractitionerID: pr.ID,
		Title: title, StartsOn: "2026-11-22", Notes: "Stop if pain rises above 5/10.", Exercises: []pmsbridge.Exercise{ex}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func uploadPayload(p pmsbridge.Programme) UploadPayload {
	return UploadPayload{ProgrammeID: p.ID, Version: p.Version, PatientID: p.PatientID, PractitionerID: p.PractitionerID}
}

// run runs a task's handler once, directly (no worker: asynq's task id is
// not in the context, so the ledger is not written), and returns what asynq
// would get.
func (b *bundle) run(t *testing.T, typ string, payload any) error {
	t.Helper()
	return b.h.Mux().ProcessTask(b.ctx, asynq.NewTask(typ, mustPayload(payload)))
}

// pdfState returns a programme version's PDF state.
func (b *bundle) pdfState(t *testing.T, p pmsbridge.Programme) store.PDFState {
	t.Helper()
	s, err := b.st.PDFStateOf(b.ctx, p.ID, p.Version)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return s
}

// payloadMap decodes a task payload as a JSON object.
func payloadMap(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if len(b) == 0 {
		return m
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("payload %s: %v", b, err)
	}
	return m
}

// newTask builds a task as the enqueue functions do.
func newTask(typ string, payload any) *asynq.Task { return asynq.NewTask(typ, mustPayload(payload)) }
