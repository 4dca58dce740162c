package jobs

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
)

// pastGrace runs the handlers' clock a minute ahead, so that work owed now
// is past the reconciler's grace period.
func pastGrace(o *options) {
	prev := o.deps
	o.deps = func(d *Deps) {
		if prev != nil {
			prev(d)
		}
		d.Now = func() time.Time { return time.Now().Add(time.Minute) }
	}
}

// withMetrics gives the handlers their metrics on a registry of their own.
func withMetrics(o *options) {
	prev := o.deps
	o.deps = func(d *Deps) {
		if prev != nil {
			prev(d)
		}
		d.Metrics = NewMetrics(prometheus.NewRegistry(), d.Store)
	}
}

// owedUpload saves a new programme version, marks its PDF pending and
// queues its upload, as an assignment does; it returns the version and its
// task id.
func (b *bundle) owedUpload(t *testing.T, title string) (pmsbridge.Programme, string) {
	t.Helper()
	p := b.programme(t, "", b.patient, b.pr, title)
	if err := b.st.SetPDFState(b.ctx, p.ID, p.Version, store.PDFState{State: pmsbridge.PDFPending}); err != nil {
		t.Fatal(err)
	}
	id, err := b.jc.EnqueueUpload(b.ctx, uploadPayload(p))
	if err != nil {
		t.Fatal(err)
	}
	return p, id
}

func (b *bundle) reconcile(t *testing.T) ReconcileReport {
	t.Helper()
	rep, err := b.h.Reconcile(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func (b *bundle) taskInfo(t *testing.T, queue, id string) *asynq.TaskInfo {
	t.Helper()
	info, err := b.jc.Inspector().GetTaskInfo(queue, id)
	if err != nil {
		t.Fatalf("task %s: %v", id, err)
	}
	return info
}

// TestReconcileRequeuesLostUpload deletes an upload's task behind the
// jobs' back (as a failover that loses the last writes would): the
// reconciler queues it again once, leaves the new task alone on the next
// run, and the PDF is uploaded exactly once; then nothing is owed.
func TestReconcileRequeuesLostUpload(t *testing.T) {
	t.Parallel()
	b := setup(t, pastGrace)
	p, taskID := b.owedUpload(t, "Lost in a failover")
	b.loseAndRequeue(t, store.OwedPDF, TypeUploadPDF, taskID)
	b.startWorker(t, nil)
	b.waitDone(t, QueuePDF, taskID)
	if st := b.pdfState(t, p); st.State != pmsbridge.PDFUploaded {
		t.Fatalf("pdf state %+v", st)
	}
	if n := len(b.attachmentsWith(sandbox.DemoPatientID, AttachmentMarker(p.ID, p.Version))); n != 1 {
		t.Errorf("%d attachments, want 1", n)
	}
	if got := b.reconcile(t)[store.OwedPDF]; len(got) != 0 {
		t.Errorf("after the upload: %v, want nothing owed", got)
	}
}

// loseAndRequeue deletes the task of owed work behind the jobs' back (as
// a failover that loses the last writes would) and checks that the
// reconciler queues it again once, with its type's options, and leaves the
// new task alone on its next run.
func (b *bundle) loseAndRequeue(t *testing.T, kind store.OwedKind, typ, taskID string) {
	t.Helper()
	spec := taskSpecs[typ]
	if err := b.jc.Inspector().DeleteTask(spec.queue, taskID); err != nil {
		t.Fatal(err)
	}
	if got := b.reconcile(t)[kind]; got[SettledRequeued] != 1 {
		t.Fatalf("first run: %v, want 1 re-queued", got)
	}
	info := b.taskInfo(t, spec.queue, taskID)
	if info.State != asynq.TaskStatePending || info.Type != typ || info.MaxRetry != spec.maxRetry {
		t.Errorf("re-queued task: state %v, type %s, max retry %d", info.State, info.Type, info.MaxRetry)
	}
	if got := b.reconcile(t)[kind]; got[SettledRequeued] != 0 || got[SettledLive] != 1 {
		t.Errorf("second run: %v, want the task left alone", got)
	}
	if n := b.pendingCount(t, spec.queue); n != 1 {
		t.Errorf("%d tasks queued, want 1", n)
	}
}

func (b *bundle) pendingCount(t *testing.T, queue string) int {
	t.Helper()
	qi, err := b.jc.Inspector().GetQueueInfo(queue)
	if err != nil {
		t.Fatal(err)
	}
	return qi.Pending + qi.Scheduled + qi.Retry + qi.Active
}

// TestReconcileLeavesExistingTasks: whatever state an owed upload's task is
// in, the reconciler leaves it as it is — a retrying task keeps its backoff,
// a scheduled one its time, a failed one stays failed.
func TestReconcileLeavesExistingTasks(t *testing.T) {
	t.Parallel()
	cases := []struct {
		desc string
		// prepare puts the task in its state; it returns a function that
		// releases whatever holds it there.
		prepare func(t *testing.T, b *bundle, p pmsbridge.Programme, id string) func()
		want    asynq.TaskState
	}{
		{"pending", func(*testing.T, *bundle, pmsbridge.Programme, string) func() { return func() {} }, asynq.TaskStatePending},
		{"scheduled", func(t *testing.T, b *bundle, p pmsbridge.Programme, id string) func() {
			if err := b.jc.Inspector().DeleteTask(QueuePDF, id); err != nil {
				t.Fatal(err)
			}
			if _, err := b.jc.c.Enqueue(asynq.NewTask(TypeUploadPDF, mustPayload(uploadPayload(p))), asynq.Queue(QueuePDF), asynq.TaskID(id), asynq.ProcessIn(time.Hour)); err != nil {
				t.Fatal(err)
			}
			return func() {}
		}, asynq.TaskStateScheduled},
		{"retrying", func(t *testing.T, b *bundle, _ pmsbridge.Programme, id string) func() {
			mux := asynq.NewServeMux()
			mux.HandleFunc(TypeUploadPDF, func(context.Context, *asynq.Task) error {
				return pmsbridge.Errorf(pmsbridge.CauseClinikoUnavailable, "Cliniko answered 503")
			})
			w := b.startWorker(t, mux)
			b.waitState(t, QueuePDF, id, StateRetrying)
			w.Shutdown()
			return func() {}
		}, asynq.TaskStateRetry},
		{"active", func(t *testing.T, b *bundle, _ pmsbridge.Programme, id string) func() {
			release := make(chan struct{})
			mux := asynq.NewServeMux()
			mux.HandleFunc(TypeUploadPDF, func(ctx context.Context, _ *asynq.Task) error {
				select {
				case <-release:
				case <-ctx.Done():
				}
				return nil
			})
			b.startWorker(t, mux)
			waitFor(t, 15*time.Second, "the upload to run", func() bool {
				info, err := b.jc.Inspector().GetTaskInfo(QueuePDF, id)
				return err == nil && info.State == asynq.TaskStateActive
			})
			return sync.OnceFunc(func() { close(release) })
		}, asynq.TaskStateActive},
		{"failed (archived)", func(t *testing.T, b *bundle, _ pmsbridge.Programme, id string) func() {
			if err := b.jc.Inspector().ArchiveTask(QueuePDF, id); err != nil {
				t.Fatal(err)
			}
			return func() {}
		}, asynq.TaskStateArchived},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			b := setup(t, pastGrace)
			p, id := b.owedUpload(t, "Left alone")
			release := tc.prepare(t, b, p, id)
			defer release()
			before := b.taskInfo(t, QueuePDF, id)
			if got := b.reconcile(t)[store.OwedPDF]; got[SettledLive] != 1 || got[SettledRequeued] != 0 {
				t.Errorf("reconcile: %v, want the task live", got)
			}
			after := b.taskInfo(t, QueuePDF, id)
			if after.State != tc.want || before.State != tc.want {
				t.Errorf("state %v → %v, want %v throughout", before.State, after.State, tc.want)
			}
			if !after.NextProcessAt.Equal(before.NextProcessAt) || after.Retried != before.Retried {
				t.Errorf("next run %v (retried %d) → %v (retried %d): the reconciler moved it", before.NextProcessAt, before.Retried, after.NextProcessAt, after.Retried)
			}
		})
	}
}

// TestReconcileRespectsFinishedAndFailed: a version whose record is
// uploaded is not touched even if its index entry was left behind, and one
// that failed for good (the ledger says so) is not resurrected after asynq
// dropped its archived task.
func TestReconcileRespectsFinishedAndFailed(t *testing.T) {
	t.Parallel()
	b := setup(t, pastGrace)
	done, doneID := b.owedUpload(t, "Uploaded already")
	if err := b.st.SetPDFState(b.ctx, done.ID, done.Version, store.PDFState{State: pmsbridge.PDFUploaded, AttachmentID: "42"}); err != nil {
		t.Fatal(err)
	}
	if err := b.jc.Inspector().DeleteTask(QueuePDF, doneID); err != nil {
		t.Fatal(err)
	}
	// A crash between the record and its index leaves the entry behind.
	if err := b.st.MarkOwed(b.ctx, store.OwedPDF, store.PDFOwedID(done.ID, done.Version)); err != nil {
		t.Fatal(err)
	}
	failed, failedID := b.owedUpload(t, "Failed for good")
	if err := b.jc.Inspector().DeleteTask(QueuePDF, failedID); err != nil {
		t.Fatal(err)
	}
	if err := b.st.RecordFailure(b.ctx, store.Failure{TaskID: failedID, Queue: QueuePDF, Type: TypeUploadPDF, Permanent: true,
		Cause: pmsbridge.CauseClinikoForbidden, ProgrammeID: failed.ID, Version: failed.Version}); err != nil {
		t.Fatal(err)
	}
	got := b.reconcile(t)[store.OwedPDF]
	if got[SettledDone] != 1 || got[SettledAbandoned] != 1 || got[SettledRequeued] != 0 {
		t.Errorf("reconcile: %v, want 1 done and 1 abandoned", got)
	}
	for _, id := range []string{doneID, failedID} {
		if st, _, err := b.jc.TaskState(b.ctx, QueuePDF, id); err != nil || st != StateNone {
			t.Errorf("task %s: %q, %v; want none", id, st, err)
		}
	}
	if st := b.pdfState(t, done); st.State != pmsbridge.PDFUploaded || st.AttachmentID != "42" {
		t.Errorf("finished record changed: %+v", st)
	}
	if n, _ := b.st.CountOwed(b.ctx, store.OwedPDF); n != 0 {
		t.Errorf("%d entries left in the index", n)
	}
}

// TestReconcileRequeuesLostImport: a click recorded its wait and queued
// the import, then the task was lost: the reconciler queues it again, the
// import links the patient and the wait ends; a wait past its TTL is
// dropped.
func TestReconcileRequeuesLostImport(t *testing.T) {
	t.Parallel()
	b := setup(t, pastGrace)
	p := ImportPayload{PractitionerID: b.pr.ID, SubscriptionID: b.sub.ID, Shard: "au1", ClinikoPatientID: "1002"}
	if err := b.st.AwaitImport(b.ctx, store.ImportWait{PractitionerID: p.PractitionerID, SubscriptionID: p.SubscriptionID, Shard: p.Shard, ClinikoPatientID: p.ClinikoPatientID}, ImportWaitTTL); err != nil {
		t.Fatal(err)
	}
	id, err := b.jc.EnqueueImport(b.ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.jc.Inspector().DeleteTask(QueueImport, id); err != nil {
		t.Fatal(err)
	}
	if got := b.reconcile(t)[store.OwedImport]; got[SettledRequeued] != 1 {
		t.Fatalf("reconcile: %v, want 1 re-queued", got)
	}
	if got := b.reconcile(t)[store.OwedImport]; got[SettledLive] != 1 {
		t.Fatalf("second run: %v, want the task left alone", got)
	}
	b.startWorker(t, nil)
	b.waitState(t, QueueImport, id, StateDone)
	if _, err := b.st.FindLink(b.ctx, b.sub.ID, "au1", "1002"); err != nil {
		t.Fatalf("not linked: %v", err)
	}
	if _, err := b.st.ImportWaitOf(b.ctx, store.ImportWaitID(b.sub.ID, "au1", "1002")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("wait after the import: %v, want ended", err)
	}
	if n, _ := b.st.CountOwed(b.ctx, store.OwedImport); n != 0 {
		t.Errorf("%d imports still owed", n)
	}

	// A wait that ended by its TTL (the practitioner is gone) is dropped.
	if err := b.st.AwaitImport(b.ctx, store.ImportWait{PractitionerID: b.pr.ID, SubscriptionID: b.sub.ID, Shard: "au1", ClinikoPatientID: "836447129235882001"}, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if got := b.reconcile(t)[store.OwedImport]; got[SettledDone] != 1 || got[SettledRequeued] != 0 {
		t.Errorf("expired wait: %v, want done", got)
	}
}

// TestReconcileBounded: five lost uploads, two per run: each run looks at
// two, and in three runs every one is queued again exactly once.
func TestReconcileBounded(t *testing.T) {
	t.Parallel()
	b := setup(t, pastGrace, func(o *options) {
		prev := o.deps
		o.deps = func(d *Deps) { prev(d); d.ReconcileBatch = 2 }
	})
	for range 5 {
		_, id := b.owedUpload(t, "One of five")
		if err := b.jc.Inspector().DeleteTask(QueuePDF, id); err != nil {
			t.Fatal(err)
		}
	}
	requeued := 0
	for run := 1; run <= 3; run++ {
		got := b.reconcile(t)[store.OwedPDF]
		if n := got[SettledRequeued] + got[SettledLive]; n != 2 {
			t.Errorf("run %d looked at %d entries (%v), want 2", run, n, got)
		}
		requeued += got[SettledRequeued]
	}
	if requeued != 5 || b.pendingCount(t, QueuePDF) != 5 {
		t.Errorf("re-queued %d, %d queued; want 5 and 5", requeued, b.pendingCount(t, QueuePDF))
	}
}

// TestReconcileOncePerPeriod: two work processes run the tick in the same
// period at the same moment: one run between them, and a lost upload is
// queued once.
func TestReconcileOncePerPeriod(t *testing.T) {
	t.Parallel()
	b := setup(t, pastGrace, withMetrics)
	_, id := b.owedUpload(t, "Two processes")
	if err := b.jc.Inspector().DeleteTask(QueuePDF, id); err != nil {
		t.Fatal(err)
	}
	other := redis.NewClient(b.rdb.Options())
	t.Cleanup(func() { other.Close() })
	d := b.h.Deps
	d.Store = b.newStore(t, other)
	d.Client = NewClient(other, d.Store)
	d.Metrics = NewMetrics(prometheus.NewRegistry(), d.Store)
	h2 := NewHandlers(d)
	var wg sync.WaitGroup
	for _, h := range []*Handlers{b.h, h2} {
		wg.Go(func() {
			if err := h.reconcileTick(b.ctx, NewReconcileTask()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	runs := testutil.ToFloat64(b.h.Metrics.reconcile.runs) + testutil.ToFloat64(h2.Metrics.reconcile.runs)
	requeued := testutil.ToFloat64(b.h.Metrics.reconcile.requeued.WithLabelValues("pdf")) + testutil.ToFloat64(h2.Metrics.reconcile.requeued.WithLabelValues("pdf"))
	if runs != 1 || requeued != 1 {
		t.Errorf("%v runs and %v re-queued, want 1 and 1", runs, requeued)
	}
	if n := b.pendingCount(t, QueuePDF); n != 1 {
		t.Errorf("%d tasks queued, want 1", n)
	}
}
