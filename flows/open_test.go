package flows

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// openAsync runs Open in the background; the result comes on the channel,
// and done is closed when it has.
func (b *bundle) openAsync(c Click) (<-chan openResult, <-chan struct{}) {
	res, done := make(chan openResult, 1), make(chan struct{})
	go func() {
		o, err := b.f.Open(b.ctx, c)
		res <- openResult{o, err}
		close(done)
	}()
	return res, done
}

type openResult struct {
	o   Opened
	err error
}

// TestOpenWaitsForTheImport: a click on a new patient queues the import,
// records the wait, and waits for the import by the flows' clock: once the
// task has linked the patient, the next look finds them.
func TestOpenWaitsForTheImport(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.click(t, b.pr, sandbox.DemoPatientID)
	res, done := b.openAsync(c)
	if !b.clock.BlockUntilWaiting(t, done) {
		t.Fatalf("Open returned without waiting: %+v", <-res)
	}
	if st, _, err := b.jobs.TaskState(b.ctx, jobs.QueueImport, importOf(b.pr, "au1", c.ClinikoPatientID).taskID()); err != nil || st != jobs.StatePending {
		t.Fatalf("import task %q, %v; want pending", st, err)
	}
	if _, err := b.st.ImportWaitOf(b.ctx, store.ImportWaitID(b.sub.ID, "au1", c.ClinikoPatientID)); err != nil {
		t.Errorf("the wait is not recorded for the reconciler: %v", err)
	}
	id := b.importNow(t, c) // the worker's part, done by the test
	b.clock.Advance(pollEvery)
	r := <-res
	if d := cmp.Diff(Opened{State: pmsbridge.ImportDone, PatientID: id, Imported: true}, r.o); r.err != nil || d != "" {
		t.Errorf("Open: %v; (-want +got):\n%s", r.err, d)
	}
}

// TestOpenAnswersPendingAtTheDeadline: with no worker, the click is
// answered "still importing" once ImportWait has passed by the clock, and
// not before.
func TestOpenAnswersPendingAtTheDeadline(t *testing.T) {
	t.Parallel()
	b := setup(t)
	res, done := b.openAsync(b.click(t, b.pr, sandbox.DemoPatientID))
	var waited int
	for b.clock.BlockUntilWaiting(t, done) {
		b.clock.Advance(pollEvery)
		waited++
	}
	r := <-res
	if r.err != nil || r.o.State != pmsbridge.ImportPending {
		t.Fatalf("Open = %+v, %v; want pending", r.o, r.err)
	}
	if want := int(b.f.ImportWait / pollEvery); waited != want {
		t.Errorf("answered after %d polls of %s, want %d (ImportWait %s)", waited, pollEvery, want, b.f.ImportWait)
	}
}

// TestOpenLinked: a linked patient opens at once, with no import queued
// and no wait; a colleague's patient that is not shared is refused naming
// the owner.
func TestOpenLinked(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.click(t, b.pr, sandbox.DemoPatientID)
	id := b.importNow(t, c)
	o, err := b.f.Open(b.ctx, c)
	if d := cmp.Diff(Opened{State: pmsbridge.ImportDone, PatientID: id}, o); err != nil || d != "" {
		t.Errorf("Open: %v; (-want +got):\n%s", err, d)
	}
	waitFor(t, "the background refresh", func() bool {
		st, _, err := b.jobs.TaskState(b.ctx, jobs.QueueImport, "refresh:"+id)
		return err == nil && st == jobs.StatePending
	})
	colleague := b.practitioner(t, "colleague@clinic.example", "Priya Raman", sandbox.DemoPractitionerKey)
	_, err = b.f.Open(b.ctx, b.click(t, colleague, sandbox.DemoPatientID))
	var ns *NotSharedError
	if !errors.As(err, &ns) || ns.Owner != "Dr Demo" {
		t.Errorf("a colleague's click: %v, want NotSharedError naming Dr Demo", err)
	}
}

// TestOpenRefused: without a key, no_cliniko_key; an import that failed
// for good answers its cause and the ledger's reason (the waiting page's
// check, which starts nothing).
func TestOpenRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.click(t, b.pr, "999999") // not in the sandbox's account: 404
	c.ClinikoUser = nil
	if _, err := b.f.Open(b.ctx, c); pmsbridge.CauseOf(err) != pmsbridge.CauseNoClinikoKey {
		t.Errorf("without a key: %v, want no_cliniko_key", err)
	}
	b.startWorker(t)
	c = b.click(t, b.pr, "999999")
	res, done := b.openAsync(c)
	for b.clock.BlockUntilWaiting(t, done) {
		b.clock.Advance(pollEvery)
	}
	if r := <-res; r.err == nil && r.o.State == pmsbridge.ImportDone {
		t.Fatalf("imported a patient Cliniko does not have: %+v", r.o)
	}
	taskID := importOf(b.pr, "au1", c.ClinikoPatientID).taskID()
	waitFor(t, "the import to fail for good", func() bool {
		st, _, _ := b.jobs.TaskState(b.ctx, jobs.QueueImport, taskID)
		f, err := b.st.GetFailure(b.ctx, taskID)
		return st == jobs.StateFailed && err == nil && f.Permanent
	})
	c.Check = true
	_, err := b.f.Open(b.ctx, c)
	var failed *pmsbridge.Error
	if !errors.As(err, &failed) || failed.Cause != pmsbridge.CauseClinikoNotFound || failed.Message == "" {
		t.Errorf("the check after a failed import: %v, want cliniko_not_found with the ledger's reason", err)
	}
}

// TestImportStatus: what the waiting page reads, in every state, with the
// cause table's words where nothing else says what happened.
func TestImportStatus(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cu := b.clinikoUser(t, b.pr)
	id := b.importNow(t, b.click(t, b.pr, sandbox.DemoPatientID))
	colleague := b.practitioner(t, "colleague@clinic.example", "Priya Raman", sandbox.DemoPractitionerKey)
	noKey := pmsbridge.CauseNoClinikoKey
	for _, tc := range []struct {
		desc string
		pr   store.Practitioner
		cu   *store.ClinikoUser
		cid  string
		want ImportStatus
	}{
		{"done", b.pr, cu, sandbox.DemoPatientID, ImportStatus{State: pmsbridge.ImportDone, PatientID: id, Visible: true}},
		{"done, a colleague's", colleague, cu, sandbox.DemoPatientID, ImportStatus{State: pmsbridge.ImportDone, PatientID: id}},
		{"no import on record", b.pr, cu, "987654", ImportStatus{State: pmsbridge.ImportFailed, Cause: pmsbridge.CauseInternal, Message: pmsbridge.CauseInternal.Info().Reason}},
		{"no key", b.pr, nil, sandbox.DemoPatientID, ImportStatus{State: pmsbridge.ImportFailed, Cause: noKey, Message: noKey.Info().Reason}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := b.f.ImportStatus(b.ctx, tc.pr, tc.cu, tc.cid)
			if d := cmp.Diff(tc.want, got); err != nil || d != "" {
				t.Errorf("ImportStatus: %v; (-want +got):\n%s", err, d)
			}
		})
	}
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
