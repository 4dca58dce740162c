package flows

import (
	"context"
	"errors"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// Click is a press of "Open in pmsbridge" in Cliniko for one of its
// patients.
type Click struct {
	// Practitioner is who clicked (logged in, active).
	Practitioner store.Practitioner
	// ClinikoUser is the Cliniko user of their saved key; nil when they have
	// none.
	ClinikoUser *store.ClinikoUser
	// ClinikoPatientID is Cliniko's id of the patient, already checked to be
	// a Cliniko patient number (untrusted otherwise).
	ClinikoPatientID string
	// Check is the waiting page coming back to see how the import went: it
	// starts nothing, and answers ImportNone when no import is on record.
	Check bool
}

// Opened is where a click leads.
type Opened struct {
	// State is ImportDone (open PatientID), ImportPending (still importing:
	// the waiting page) or, only for a Check, ImportNone (nothing on record:
	// click again).
	State     pmsbridge.ImportState
	PatientID string
	// Imported says the patient was linked by this click's import (else it
	// was linked before).
	Imported bool
	// Cause is, while pending, why it takes long: an earlier attempt failed
	// with a cause that is retried by itself (Cliniko busy); "" otherwise.
	Cause pmsbridge.Cause
}

// Open is the Cliniko button: the patient's page if they are linked and the
// practitioner may open them (with a refresh of their details queued in the
// background); otherwise an import, waited for briefly. Errors: a cause
// error with pmsbridge.CauseNoClinikoKey when the practitioner has no key,
// the import's cause and reason when it failed for good (pmsbridge.Error),
// *NotSharedError for a colleague's patient.
func (f *Flows) Open(ctx context.Context, c Click) (Opened, error) {
	pr, cid := c.Practitioner, c.ClinikoPatientID
	if c.ClinikoUser == nil {
		return Opened{}, noKey()
	}
	shard := c.ClinikoUser.Shard
	patientID, err := f.Store.FindLink(ctx, pr.SubscriptionID, shard, cid)
	if err == nil {
		if err := f.mayOpen(ctx, pr, patientID); err != nil {
			return Opened{}, err
		}
		f.refreshInBackground(ctx, jobs.RefreshPayload{PractitionerID: pr.ID, PatientID: patientID})
		return Opened{State: pmsbridge.ImportDone, PatientID: patientID}, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return Opened{}, err
	}
	imp := importOf(pr, shard, cid)
	if !c.Check {
		// A real click: (re-)run the import. A repeat click joins the
		// running one; a click after a failure runs it again. The wait is
		// recorded first, so that the reconciler queues the import again if
		// a Redis failover loses its task.
		if err := f.Store.AwaitImport(ctx, store.ImportWait{PractitionerID: pr.ID, SubscriptionID: pr.SubscriptionID,
			Shard: shard, ClinikoPatientID: cid}, jobs.ImportWaitTTL); err != nil {
			f.logger(ctx).Warn("record import wait", "err", err)
		}
		if _, err := f.Jobs.EnqueueImport(ctx, imp.payload()); err != nil {
			return Opened{}, err
		}
	}
	st := f.waitForImport(ctx, imp)
	switch st.State {
	case pmsbridge.ImportDone:
		if err := f.mayOpen(ctx, pr, st.PatientID); err != nil {
			return Opened{}, err
		}
		return Opened{State: pmsbridge.ImportDone, PatientID: st.PatientID, Imported: true}, nil
	case pmsbridge.ImportFailed:
		return Opened{}, f.explainNotFound(ctx, pr.SubscriptionID, c.ClinikoUser, &pmsbridge.Error{Cause: st.Cause, Message: st.Message})
	}
	return Opened{State: st.State, Cause: st.Cause}, nil
}

// noKey is the error of work that needs the practitioner's Cliniko key when
// they have none saved.
func noKey() error { return &pmsbridge.Error{Cause: pmsbridge.CauseNoClinikoKey} }

// mayOpen checks the sharing rules for a linked patient.
func (f *Flows) mayOpen(ctx context.Context, pr store.Practitioner, patientID string) error {
	p, err := f.Store.GetPatient(ctx, patientID)
	if err != nil {
		return err
	}
	_, err = f.access(ctx, pr, p)
	return err
}

// OpenPatient loads our patient id for practitioner pr, who must be allowed
// to open them: *Error NotFound when there is no such patient,
// *NotSharedError when it is a colleague's.
func (f *Flows) OpenPatient(ctx context.Context, pr store.Practitioner, id string) (store.Patient, error) {
	p, err := f.Store.GetPatient(ctx, id)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return p, &Error{Code: NotFound, Message: "There is no such patient.", Err: err}
	}
	if err != nil {
		return p, err
	}
	return f.access(ctx, pr, p)
}

// access applies the sharing rules. The owner needs no further look-up:
// pr was read (and found active) at the start of the request.
func (f *Flows) access(ctx context.Context, pr store.Practitioner, p store.Patient) (store.Patient, error) {
	if p.OwnerID == pr.ID {
		return p, nil
	}
	acc, err := f.Store.CanOpen(ctx, pr, p)
	if err != nil {
		return p, err
	}
	if !acc.Allowed {
		return p, &NotSharedError{Owner: acc.OwnerName}
	}
	return p, nil
}

// refreshWait bounds a background refresh's enqueue.
const refreshWait = 10 * time.Second

// refreshInBackground keeps a linked patient's details fresh: at most one
// refresh per patient per few minutes (jobs.RefreshDebounce), queued after
// the click is answered so that it does not wait. At most a few at once:
// when Redis is slow, skipping a refresh (the next click or the periodic
// sync catches up) beats piling up goroutines.
func (f *Flows) refreshInBackground(ctx context.Context, p jobs.RefreshPayload) {
	select {
	case f.refreshSlots <- struct{}{}:
	default:
		return
	}
	go func(ctx context.Context) {
		defer func() { <-f.refreshSlots }()
		ctx, cancel := context.WithTimeout(ctx, refreshWait)
		defer cancel()
		if _, err := f.Jobs.EnqueueRefresh(ctx, p, false); err != nil {
			f.logger(ctx).Warn("queue refresh", "err", err)
		}
	}(context.WithoutCancel(ctx))
}

// anImport names one patient's import for one subscription and Cliniko
// account (shard), by the practitioner whose key reads it.
type anImport struct {
	practitionerID, subscriptionID, shard, clinikoPatientID string
}

func importOf(pr store.Practitioner, shard, cid string) anImport {
	return anImport{practitionerID: pr.ID, subscriptionID: pr.SubscriptionID, shard: shard, clinikoPatientID: cid}
}

func (i anImport) payload() jobs.ImportPayload {
	return jobs.ImportPayload{PractitionerID: i.practitionerID, SubscriptionID: i.subscriptionID, Shard: i.shard, ClinikoPatientID: i.clinikoPatientID}
}

func (i anImport) taskID() string {
	return jobs.ImportTaskID(i.subscriptionID, i.shard, i.clinikoPatientID)
}

// ImportStatus is where an import stands, as GET /imports/status shows it.
type ImportStatus struct {
	// State is ImportDone, ImportPending or ImportFailed (never ImportNone:
	// no import on record is a failure, whose cure is a new click).
	State     pmsbridge.ImportState
	PatientID string // done: our patient
	// Visible says the practitioner may open PatientID; a colleague's
	// patient is not named to them (the receiver explains whose it is).
	Visible bool
	Cause   pmsbridge.Cause // failed: why; pending: why it takes long, or ""
	Message string          // the failure's reason, or ""
}

// ImportStatus tells the waiting page where the import of Cliniko patient
// cid for practitioner pr stands. cu is the Cliniko user of their saved key
// (nil: none, which is a failure: no_cliniko_key).
func (f *Flows) ImportStatus(ctx context.Context, pr store.Practitioner, cu *store.ClinikoUser, cid string) (ImportStatus, error) {
	if cu == nil {
		return failedWith(noKey()), nil
	}
	st, err := f.importState(ctx, importOf(pr, cu.Shard, cid))
	if err != nil {
		return st, err
	}
	switch st.State {
	case pmsbridge.ImportNone:
		// Nothing on record: the import was lost or never asked for; a new
		// click starts one.
		return failedWith(&pmsbridge.Error{Cause: pmsbridge.CauseInternal}), nil
	case pmsbridge.ImportDone:
		var ns *NotSharedError
		st.Visible = !errors.As(f.mayOpen(ctx, pr, st.PatientID), &ns)
	}
	return st, nil
}

// failedWith is the status of an import that cannot go on because of err,
// in the cause table's words.
func failedWith(err error) ImportStatus {
	return ImportStatus{State: pmsbridge.ImportFailed, Cause: pmsbridge.CauseOf(err), Message: pmsbridge.MessageOf(err)}
}

// importState works out where an import stands from its three sources: the
// link (done), the failure ledger (failed for good, with the cause and
// reason; or the cause of the last failed attempt while it is retried) and
// the task's state (none, running, retrying, failed). A handler never needs
// to know the task states.
func (f *Flows) importState(ctx context.Context, i anImport) (ImportStatus, error) {
	if st, ok, err := f.linked(ctx, i); err != nil || ok {
		return st, err
	}
	taskID := i.taskID()
	state, info, err := f.Jobs.TaskState(ctx, jobs.QueueImport, taskID)
	if err != nil {
		return ImportStatus{}, err
	}
	failure := func() (store.Failure, bool) {
		x, err := f.Store.GetFailure(ctx, taskID)
		return x, err == nil
	}
	switch state {
	case jobs.StateNone:
		return ImportStatus{State: pmsbridge.ImportNone}, nil
	case jobs.StateFailed, jobs.StateRetrying:
		st := ImportStatus{State: pmsbridge.ImportPending}
		if state == jobs.StateFailed {
			st.State = pmsbridge.ImportFailed
		}
		if x, ok := failure(); ok {
			st.Cause, st.Message = x.Cause, x.Reason
		} else if state == jobs.StateFailed {
			st.Cause, st.Message = pmsbridge.CauseInternal, "The import failed."
			if info != nil {
				f.logger(ctx).Warn("import failed without a ledger entry", "task_id", taskID)
			}
		}
		return st, nil
	case jobs.StateDone:
		// Completed but no link: the link was removed since. Pending; a new
		// click imports again.
		return ImportStatus{State: pmsbridge.ImportPending}, nil
	default:
		// Queued or running. If an earlier attempt failed because Cliniko
		// was busy, say so while the retry runs, so that the waiting page
		// does not flip back to "opening" on every attempt.
		st := ImportStatus{State: pmsbridge.ImportPending}
		if x, ok := failure(); ok && x.Cause.Info().Clinician.Waiting != nil {
			st.Cause, st.Message = x.Cause, x.Reason
		}
		return st, nil
	}
}

// linked reports whether the import's patient is linked (the import is
// done), with our patient id.
func (f *Flows) linked(ctx context.Context, i anImport) (ImportStatus, bool, error) {
	id, err := f.Store.FindLink(ctx, i.subscriptionID, i.shard, i.clinikoPatientID)
	if errors.Is(err, store.ErrNotFound) {
		return ImportStatus{}, false, nil
	}
	if err != nil {
		return ImportStatus{}, false, err
	}
	return ImportStatus{State: pmsbridge.ImportDone, PatientID: id}, true, nil
}

// How the receiver waits for an import: a cheap look at the link every
// pollEvery, and the whole state (the task and the ledger too) every
// lookEvery.
const (
	pollEvery = 10 * time.Millisecond
	lookEvery = 150 * time.Millisecond
)

// waitForImport waits up to ImportWait, by the flows' clock, until the
// import is done, failed or not on record; after that, or when ctx ends, it
// answers where the import stands (pending, when that cannot be read).
func (f *Flows) waitForImport(ctx context.Context, i anImport) ImportStatus {
	deadline := f.Now().Add(f.ImportWait)
	var lastLook time.Time
	for {
		if st, ok, _ := f.linked(ctx, i); ok {
			return st
		}
		now := f.Now()
		if lastLook.IsZero() || now.Sub(lastLook) >= lookEvery || !now.Before(deadline) {
			lastLook = now
			st, err := f.importState(ctx, i)
			if err == nil && st.State != pmsbridge.ImportPending {
				return st
			}
			if !now.Before(deadline) {
				if err != nil {
					return ImportStatus{State: pmsbridge.ImportPending}
				}
				return st
			}
		}
		select {
		case <-ctx.Done():
			return ImportStatus{State: pmsbridge.ImportPending}
		case <-f.After(pollEvery):
		}
	}
}
