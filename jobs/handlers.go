package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/mail"
	"github.com/physitrack/pmsbridge/pdf"
	"github.com/physitrack/pmsbridge/sms"
	"github.com/physitrack/pmsbridge/store"
)

// Deps are what the task handlers use.
type Deps struct {
	Store   *store.Store
	Cliniko *cliniko.Client
	Client  *Client
	Log     *slog.Logger
	Metrics *Metrics
	// AccessURL is where patients open programmes (printed on PDFs, and in
	// the messages that send codes).
	AccessURL string
	// Mail sends code emails; nil when email is not configured (mail.
	// smtp_url empty): a message by email then fails for good with
	// delivery_rejected and a reason that says so.
	Mail *mail.Sender
	// SMS sends code texts; nil when SMS is not configured (likewise).
	SMS *sms.Client
	// Region is the deployment's region code: patients' local mobile
	// numbers are read in its numbering plan.
	Region string
	// SyncInterval is the period of the birth-year sync. Default
	// DefaultSyncInterval.
	SyncInterval time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Render renders a programme PDF. Default: the pdf package.
	Render func(doc PDFDocument) ([]byte, error)
	// Owed are further kinds of owed work for the reconciler (reconcile.go),
	// after the built-in PDFs and imports.
	Owed []OwedWork
	// ReconcileBatch bounds the entries of each kind one reconciler run
	// looks at. Default 200.
	ReconcileBatch int
}

// Handlers runs every task type. It is also the asynq ErrorHandler that
// keeps the failure ledger.
type Handlers struct {
	Deps
}

// NewHandlers returns the handlers for d.
func NewHandlers(d Deps) *Handlers {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.SyncInterval <= 0 {
		d.SyncInterval = DefaultSyncInterval
	}
	if d.Render == nil {
		d.Render = pdf.Render
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Handlers{Deps: d}
}

// Mux routes each task type to its handler, with metrics around each.
func (h *Handlers) Mux() *asynq.ServeMux {
	mux := asynq.NewServeMux()
	mux.HandleFunc(TypeImportPatient, h.wrap(h.importPatient))
	mux.HandleFunc(TypeRefreshPatient, h.wrap(h.refreshPatient))
	mux.HandleFunc(TypeUploadPDF, h.wrap(h.uploadPDF))
	mux.HandleFunc(TypeSendCode, h.wrap(h.sendCode))
	mux.HandleFunc(TypeSyncTick, h.wrap(h.syncTick))
	mux.HandleFunc(TypeSyncPractitioner, h.wrap(h.syncPractitioner))
	mux.HandleFunc(TypeReconcile, h.wrap(h.reconcileTick))
	return mux
}

// wrap adds what every handler needs: metrics, a log line on failure, the
// success side of the failure ledger, and the error → retry/skip mapping.
func (h *Handlers) wrap(fn func(context.Context, *asynq.Task) error) func(context.Context, *asynq.Task) error {
	return func(ctx context.Context, t *asynq.Task) error {
		start := time.Now()
		err := fn(ctx, t)
		outcome := "done"
		if err != nil {
			outcome = "retry"
			switch Decide(err) {
			case GiveUp:
				outcome = "failed"
			case Snooze:
				outcome = "snoozed"
			}
		}
		if h.Metrics != nil {
			h.Metrics.observe(t.Type(), outcome, pmsbridge.CauseOf(err), time.Since(start))
		}
		if err == nil {
			if q, ok := asynq.GetQueueName(ctx); ok {
				if cerr := h.Store.CountDone(context.WithoutCancel(ctx), q, t.Type()); cerr != nil {
					h.Log.Warn("count done task", "type", t.Type(), "err", cerr)
				}
			}
			if id, ok := asynq.GetTaskID(ctx); ok {
				if cerr := h.Store.ClearFailure(context.WithoutCancel(ctx), ledgerID(t, id)); cerr != nil {
					h.Log.Warn("clear failure record", "task_id", id, "err", cerr)
				}
			}
			return nil
		}
		return finish(err)
	}
}

// decode unmarshals a task payload; a payload that cannot be read can never
// succeed.
func decode(t *asynq.Task, v any) error {
	if err := json.Unmarshal(t.Payload(), v); err != nil {
		return &pmsbridge.Error{Cause: pmsbridge.CauseInvalidPayload, Message: "The task's payload cannot be read.", Err: err}
	}
	return nil
}

func mustPayload(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("jobs: marshal payload: %v", err)) // only ids and numbers: cannot fail
	}
	return b
}

// actorKey carries who a Cliniko call is made for, for the audit log.
type actorKey struct{}

type actor struct{ practitionerID, patientID string }

// WithActor records in ctx which practitioner (and our patient) a Cliniko
// call is made for, so the audit log can name them.
func WithActor(ctx context.Context, practitionerID, patientID string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor{practitionerID, patientID})
}

// AuditObserver returns a Cliniko observer that writes every Cliniko call to
// the audit log (who, when, which patient, operation, status).
func AuditObserver(st *store.Store, log *slog.Logger) func(context.Context, cliniko.Call) {
	return func(ctx context.Context, c cliniko.Call) {
		a, _ := ctx.Value(actorKey{}).(actor)
		detail := c.Method + " " + c.Path
		if c.PatientID != "" {
			detail += " cliniko_patient=" + c.PatientID
		}
		if err := st.Audit(context.WithoutCancel(ctx), store.AuditEntry{
			PractitionerID: a.practitionerID, PatientID: a.patientID,
			Op: "cliniko." + c.Op, Status: c.Status, Detail: detail,
		}); err != nil {
			pmsbridge.Logger(ctx, log).Warn("audit log", "err", err)
		}
	}
}
