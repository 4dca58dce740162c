package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/store"
	"github.com/prometheus/client_golang/prometheus"
)

// TypeReconcile starts one run of the reconciler; the scheduler of every
// work process enqueues it each ReconcileInterval and only the first of a
// period runs. Never rename.
const TypeReconcile = "reconcile:tick"

// ReconcileInterval is the reconciler's period.
const ReconcileInterval = time.Minute

// reconcileGrace is how long work must have been owed before the reconciler
// looks for its task: the request that made it owed queues the task right
// after, and the reconciler should not race it.
const reconcileGrace = 30 * time.Second

// reconcileBatch bounds the entries one run looks at per kind (Deps.
// ReconcileBatch overrides it); the next run continues where this one
// stopped.
const reconcileBatch = 200

// ImportWaitTTL is how long a click waits for its import: within it, a lost
// import task is queued again.
const ImportWaitTTL = 10 * time.Minute

// NewReconcileTask is the scheduler's periodic task.
func NewReconcileTask() *asynq.Task { return asynq.NewTask(TypeReconcile, nil) }

// Settled is what the reconciler found for one owed entry.
type Settled int

const (
	// SettledDone: the record no longer says the work is owed; the entry
	// leaves the index.
	SettledDone Settled = iota
	// SettledLive: its task exists (queued, scheduled, retrying, running,
	// or kept after it finished or failed): left alone.
	SettledLive
	// SettledRequeued: owed and no task: queued again under its task id.
	SettledRequeued
	// SettledAbandoned: owed, no task, but the failure ledger says it
	// failed for good: not queued again (support replays it); the entry
	// leaves the index.
	SettledAbandoned
)

// OwedWork is one kind of owed work that the reconciler looks after: the
// store index it walks (kept where the owed state is written) and how to
// settle one entry of it. Settle must re-queue only when the record is still
// owed and no task with its deterministic id exists, and must leave a
// permanently failed one alone (the built-in kinds do so through settle).
//
// The built-in kinds are programme PDFs (store.OwedPDF), imports a
// practitioner waits for (store.OwedImport) and the messages that send
// patients their codes (store.OwedMessage, marked by the message record;
// settleMessage in send_code.go). Deps.Owed adds further kinds.
type OwedWork struct {
	Kind   store.OwedKind
	Settle func(ctx context.Context, id string) (Settled, error)
}

// ReconcileReport counts one run's outcomes by kind.
type ReconcileReport map[store.OwedKind]map[Settled]int

// reconcileMetrics are the reconciler's metrics on /metrics.
type reconcileMetrics struct {
	runs     prometheus.Counter
	checked  *prometheus.CounterVec
	found    *prometheus.CounterVec
	requeued *prometheus.CounterVec
	errors   prometheus.Counter
}

func newReconcileMetrics(reg prometheus.Registerer) *reconcileMetrics {
	m := &reconcileMetrics{
		runs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pmsbridge_reconciler_runs_total", Help: "Reconciler runs (one per period across all work processes).",
		}),
		checked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pmsbridge_reconciler_checked_total", Help: "Owed records the reconciler looked at, by kind.",
		}, []string{"kind"}),
		found: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pmsbridge_reconciler_found_total", Help: "Owed records with no task (lost, e.g. in a Redis failover), by kind.",
		}, []string{"kind"}),
		requeued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pmsbridge_reconciler_requeued_total", Help: "Tasks the reconciler queued again, by kind.",
		}, []string{"kind"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pmsbridge_reconciler_errors_total", Help: "Reconciler runs that stopped on an error (the next period tries again).",
		}),
	}
	reg.MustRegister(m.runs, m.checked, m.found, m.requeued, m.errors)
	return m
}

func (h *Handlers) reconcileTick(ctx context.Context, _ *asynq.Task) error {
	// Errors are logged and counted, not returned: the next period runs
	// again, and a failed tick (a new task id each time) would only add
	// entries to the failure ledger.
	fail := func(err error) error {
		h.Log.Warn("reconcile", "err", err)
		if m := h.reconcileMetrics(); m != nil {
			m.errors.Inc()
		}
		return nil
	}
	period := h.Now().UTC().Truncate(ReconcileInterval)
	first, err := h.Store.ClaimPeriod(ctx, "reconcile", period, 2*ReconcileInterval)
	if err != nil {
		return fail(err)
	}
	if !first {
		return nil // another work process runs this period
	}
	if _, err := h.Reconcile(ctx); err != nil {
		return fail(err)
	}
	return nil
}

func (h *Handlers) reconcileMetrics() *reconcileMetrics {
	if h.Metrics == nil {
		return nil
	}
	return h.Metrics.reconcile
}

// owedWork lists every kind the reconciler walks: the built-in ones, then
// Deps.Owed.
func (h *Handlers) owedWork() []OwedWork {
	return append([]OwedWork{
		{Kind: store.OwedPDF, Settle: h.settlePDF},
		{Kind: store.OwedImport, Settle: h.settleImport},
		{Kind: store.OwedMessage, Settle: h.settleMessage},
	}, h.Owed...)
}

// Reconcile makes one bounded pass over the owed work: for each kind, up to
// a batch of entries owed for longer than the grace period, continuing where
// the previous pass stopped; what is owed and has no task is queued again.
// Tasks that exist are never touched (a retrying one keeps its backoff).
func (h *Handlers) Reconcile(ctx context.Context) (ReconcileReport, error) {
	m := h.reconcileMetrics()
	if m != nil {
		m.runs.Inc()
	}
	batch := h.ReconcileBatch
	if batch <= 0 {
		batch = reconcileBatch
	}
	rep := ReconcileReport{}
	before := h.Now().Add(-reconcileGrace)
	for _, w := range h.owedWork() {
		rep[w.Kind] = map[Settled]int{}
		entries, err := h.Store.NextOwed(ctx, w.Kind, before, batch)
		if err != nil {
			return rep, err
		}
		for _, e := range entries {
			res, err := w.Settle(ctx, e.ID)
			if err != nil {
				return rep, fmt.Errorf("reconcile %s %s: %w", w.Kind, e.ID, err)
			}
			rep[w.Kind][res]++
			if m != nil {
				m.checked.WithLabelValues(string(w.Kind)).Inc()
				if res == SettledRequeued || res == SettledAbandoned {
					m.found.WithLabelValues(string(w.Kind)).Inc()
				}
				if res == SettledRequeued {
					m.requeued.WithLabelValues(string(w.Kind)).Inc()
				}
			}
			switch res {
			case SettledRequeued:
				h.Log.Info("reconcile: queued lost work again", "kind", w.Kind, "id", e.ID)
			case SettledAbandoned:
				h.Log.Warn("reconcile: owed work failed for good; left for support", "kind", w.Kind, "id", e.ID)
			}
			if res == SettledDone || res == SettledAbandoned {
				if err := h.Store.ClearOwed(ctx, w.Kind, e.ID); err != nil {
					return rep, err
				}
			}
		}
	}
	return rep, nil
}

// settle is the reconciler's look at one owed entry whose task is taskID,
// of type taskType: record, task, record again (a task that finishes
// between the first two looks has written its outcome before it went
// away), and then the task again. owed reads the record; task makes the
// task to queue again (nil: the work is not owed after all).
func (h *Handlers) settle(ctx context.Context, taskType, taskID string, owed func() (bool, error), task func() (*asynq.Task, error)) (Settled, error) {
	if ok, err := owed(); err != nil || !ok {
		return SettledDone, err
	}
	if live, err := h.taskExists(ctx, taskSpecs[taskType].queue, taskID); err != nil || live {
		return SettledLive, err
	}
	if ok, err := owed(); err != nil || !ok {
		return SettledDone, err
	}
	t, err := task()
	if err != nil || t == nil {
		return SettledDone, err
	}
	return h.requeue(ctx, taskID, t)
}

// settlePDF settles a programme version whose PDF state was pending.
func (h *Handlers) settlePDF(ctx context.Context, id string) (Settled, error) {
	programmeID, version, ok := store.ParsePDFOwedID(id)
	if !ok {
		return SettledDone, nil // not ours to read: drop it
	}
	pending := func() (bool, error) {
		st, err := h.Store.PDFStateOf(ctx, programmeID, version)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return err == nil && st.State == pmsbridge.PDFPending, err
	}
	task := func() (*asynq.Task, error) {
		prog, err := h.Store.GetProgramme(ctx, programmeID, version)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
		return newUploadTask(UploadPayload{ProgrammeID: prog.ID, Version: prog.Version, PatientID: prog.PatientID, PractitionerID: prog.PractitionerID}), nil
	}
	return h.settle(ctx, TypeUploadPDF, UploadTaskID(programmeID, version), pending, task)
}

// settleImport settles a click waiting for an import.
func (h *Handlers) settleImport(ctx context.Context, id string) (Settled, error) {
	w, err := h.Store.ImportWaitOf(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return SettledDone, nil // the wait ended (expired or cleared)
	} else if err != nil {
		return SettledLive, err
	}
	clear := func() error { return h.Store.ClearImportWait(ctx, w.SubscriptionID, w.Shard, w.ClinikoPatientID) }
	// Still waiting while the patient has no link; once it has, the wait
	// ends.
	waiting := func() (bool, error) {
		_, err := h.Store.FindLink(ctx, w.SubscriptionID, w.Shard, w.ClinikoPatientID)
		if errors.Is(err, store.ErrNotFound) {
			return true, nil
		} else if err != nil {
			return false, err
		}
		return false, clear()
	}
	p := ImportPayload{PractitionerID: w.PractitionerID, SubscriptionID: w.SubscriptionID, Shard: w.Shard, ClinikoPatientID: w.ClinikoPatientID}
	res, err := h.settle(ctx, TypeImportPatient, ImportTaskID(w.SubscriptionID, w.Shard, w.ClinikoPatientID), waiting,
		func() (*asynq.Task, error) { return newImportTask(p), nil })
	if res == SettledAbandoned && err == nil {
		err = clear()
	}
	return res, err
}

// requeue queues task again under its id, with its type's options, unless
// the failure ledger says it failed for good (asynq may have dropped the
// archived task by now; support replays it) or a task with that id exists.
func (h *Handlers) requeue(ctx context.Context, taskID string, task *asynq.Task) (Settled, error) {
	if f, err := h.Store.GetFailure(ctx, taskID); err == nil && f.Permanent {
		return SettledAbandoned, nil
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return SettledLive, err
	}
	added, err := h.Client.enqueueIfAbsent(ctx, task, taskID)
	if err != nil || !added {
		return SettledLive, err
	}
	return SettledRequeued, nil
}

// taskExists reports whether asynq holds task id in queue, in any state.
func (h *Handlers) taskExists(ctx context.Context, queue, id string) (bool, error) {
	state, _, err := h.Client.TaskState(ctx, queue, id)
	return state != StateNone, err
}
