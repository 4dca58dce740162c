package jobs

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/store"
)

// ids is the union of the id fields that task payloads carry.
type ids struct {
	PractitionerID   string `json:"practitioner_id"`
	SubscriptionID   string `json:"subscription_id"`
	PatientID        string `json:"patient_id"`
	ProgrammeID      string `json:"programme_id"`
	Version          int    `json:"version"`
	ClinikoPatientID string `json:"cliniko_patient_id"`
	MessageID        string `json:"message_id"`
}

// ledgerID is the failure ledger's id for task t, which asynq runs as
// taskID: the task id itself, except for the periodic sync, whose task gets
// a new id each period. Its failures share one entry per Cliniko account
// (per practitioner for the old per-practitioner tasks), so an account
// whose keys stay broken leaves one entry rather than one per period for
// ever (replayed by the dozen once a key is fixed), and the next sync that
// succeeds clears it. A replay re-creates the task under the entry's id,
// so its runs map to the same entry. (The entries that say one key was
// refused while the sync went on with another, KeyLedgerID, are written
// and cleared by the sync itself.)
func ledgerID(t *asynq.Task, taskID string) string {
	if taskID == "" {
		return taskID
	}
	switch t.Type() {
	case TypeSyncAccount:
		var p AccountSyncPayload
		if json.Unmarshal(t.Payload(), &p) == nil && p.SubscriptionID != "" && p.Shard != "" {
			return accountLedgerID(p.SubscriptionID, p.Shard)
		}
	case TypeSyncPractitioner:
		var p SyncPayload
		if json.Unmarshal(t.Payload(), &p) == nil && p.PractitionerID != "" {
			return "sync:" + p.PractitionerID
		}
	}
	return taskID
}

// HandleError is asynq's error handler: it writes every failed attempt to
// the failure ledger, with its cause and a readable reason, so support sees
// failures even after asynq drops old archived tasks.
func (h *Handlers) HandleError(ctx context.Context, t *asynq.Task, err error) {
	id, _ := asynq.GetTaskID(ctx)
	id = ledgerID(t, id)
	queue, _ := asynq.GetQueueName(ctx)
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	var x ids
	_ = json.Unmarshal(t.Payload(), &x)
	cause := pmsbridge.CauseOf(err)
	d := Decide(err)
	// asynq archives the task when the handler skips retries or when its
	// retries are used up, whatever the error: it checks the retry count
	// before IsFailure, so a rate limit on the last attempt archives it too.
	archived := d == GiveUp || errors.Is(err, asynq.SkipRetry) || retried >= maxRetry
	f := store.Failure{
		TaskID: id, Queue: queue, Type: t.Type(),
		Permanent: archived,
		Cause:     cause, Reason: pmsbridge.MessageOf(err),
		PractitionerID: x.PractitionerID, SubscriptionID: x.SubscriptionID, PatientID: x.PatientID, ProgrammeID: x.ProgrammeID,
		Version: x.Version, ClinikoPatientID: x.ClinikoPatientID, KeyUser: keyUserOf(err),
		Attempts: retried + 1, Payload: t.Payload(),
	}
	if d == Snooze && !archived {
		// A rate-limit wait is not a failure; note it only when the task
		// already has an entry (so its page shows "waiting for Cliniko").
		if _, gerr := h.Store.GetFailure(ctx, id); gerr != nil {
			return
		}
	}
	if rerr := h.Store.RecordFailure(context.WithoutCancel(ctx), f); rerr != nil {
		h.Log.Error("record failure in the ledger", "task_id", id, "err", rerr)
	}
	level := h.Log.Warn
	if f.Permanent {
		level = h.Log.Error
	}
	level("job failed", "task_id", id, "type", t.Type(), "cause", cause, "attempt", f.Attempts, "permanent", f.Permanent, "err", err)
	if f.Permanent {
		if err := recordFailed(ctx, h.Store, t.Type(), x, cause, f.Reason); err != nil {
			h.Log.Error("record the failure on the job's record", "task_id", id, "type", t.Type(), "err", err)
		}
	}
}

// The records that pages show of two task types' work: a programme
// version's PDF state (TypeUploadPDF) and a message request
// (TypeSendCode). A permanent failure is written on them (HandleError); a
// replay puts them back to pending, and to failed again when it cannot
// queue the task (Client.Replay). Other types have none.

// recordFailed writes a permanent failure on the record of the work of a
// task of taskType with ids x, even when ctx is done.
func recordFailed(ctx context.Context, st *store.Store, taskType string, x ids, cause pmsbridge.Cause, reason string) error {
	ctx = context.WithoutCancel(ctx)
	switch {
	case taskType == TypeUploadPDF && x.ProgrammeID != "":
		return st.SetPDFState(ctx, x.ProgrammeID, x.Version, store.PDFState{State: pmsbridge.PDFFailed, Cause: cause, Reason: reason})
	case taskType == TypeSendCode && x.MessageID != "":
		if _, err := st.MessageFailed(ctx, x.MessageID, cause, reason); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

// recordPending puts the record of the work of a task of taskType with ids
// x back to pending, for a replay. A message that was sent meanwhile stays
// sent (sent is final; the task then finds nothing to do).
func recordPending(ctx context.Context, st *store.Store, taskType string, x ids) error {
	switch {
	case taskType == TypeUploadPDF && x.ProgrammeID != "":
		return st.SetPDFState(ctx, x.ProgrammeID, x.Version, store.PDFState{State: pmsbridge.PDFPending})
	case taskType == TypeSendCode && x.MessageID != "":
		if _, err := st.ResetMessage(ctx, x.MessageID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

// keyUsedError notes on an attempt's error whose Cliniko key the attempt
// used (the assigning practitioner's, or the owner's it fell back to), so
// the ledger can name the Cliniko user: "it was the Scheduler's". It
// carries names and ids only, never the key; its message, cause and
// everything else are those of the error it wraps.
type keyUsedError struct {
	err  error
	user store.KeyUser
}

func (e *keyUsedError) Error() string { return e.err.Error() }
func (e *keyUsedError) Unwrap() error { return e.err }

// withKeyUsed wraps a handler's error (nil stays nil) with whose key its
// attempt used.
func withKeyUsed(err error, pr store.Practitioner, cu store.ClinikoUser) error {
	if err == nil {
		return nil
	}
	return &keyUsedError{err: err, user: store.KeyUser{PractitionerID: pr.ID, ClinikoUserID: cu.ID, Name: cu.Name, Role: cu.Role}}
}

// keyUserOf returns whose key the failed attempt used, nil when it used
// none.
func keyUserOf(err error) *store.KeyUser {
	var k *keyUsedError
	if errors.As(err, &k) {
		u := k.user
		return &u
	}
	return nil
}
