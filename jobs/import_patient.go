package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/store"
)

// TypeImportPatient imports a Cliniko patient after a click on "Open in".
// Never rename: the type name is part of the queue's wire format.
const TypeImportPatient = "cliniko:import_patient"

// ImportPayload identifies the patient to import and the practitioner
// whose Cliniko key reads it (so a crafted patient_id reaches only patients
// that practitioner can already see in Cliniko).
type ImportPayload struct {
	PractitionerID   string `json:"practitioner_id"`
	SubscriptionID   string `json:"subscription_id"`
	Shard            string `json:"shard"`
	ClinikoPatientID string `json:"cliniko_patient_id"`
}

// ImportTaskID is the import's deterministic task id: one import per
// Cliniko patient per subscription at a time.
func ImportTaskID(subscriptionID, shard, clinikoPatientID string) string {
	return "import:" + subscriptionID + ":" + shard + ":" + clinikoPatientID
}

// EnqueueImport queues an import, joining one that is already queued or
// running and replacing one that failed. It reports the task id.
func (c *Client) EnqueueImport(ctx context.Context, p ImportPayload) (string, error) {
	id := ImportTaskID(p.SubscriptionID, p.Shard, p.ClinikoPatientID)
	_, err := c.enqueue(ctx, newImportTask(p), id)
	return id, err
}

func newImportTask(p ImportPayload) *asynq.Task {
	return asynq.NewTask(TypeImportPatient, mustPayload(p))
}

func (h *Handlers) importPatient(ctx context.Context, t *asynq.Task) (err error) {
	var p ImportPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	pr, key, cu, err := h.practitionerKey(ctx, p.PractitionerID)
	if err != nil {
		return err
	}
	defer func() { err = withKeyUsed(err, pr, cu) }()
	if pr.SubscriptionID != p.SubscriptionID {
		return pmsbridge.Errorf(pmsbridge.CauseInvalidPayload, "The practitioner is not in the subscription of this import.")
	}
	if cu.Shard != p.Shard {
		return pmsbridge.Errorf(pmsbridge.CauseClinikoUnauthorized, "The saved Cliniko key belongs to another Cliniko region (%s) than this import (%s).", cu.Shard, p.Shard)
	}
	if id, err := h.Store.FindLink(ctx, p.SubscriptionID, p.Shard, p.ClinikoPatientID); err == nil {
		h.clearImportWait(ctx, p)
		writeResult(t, id) // already imported (e.g. a retry after a lost acknowledgement)
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	cctx := cliniko.ForJob(WithActor(ctx, pr.ID, ""), limiterMaxWait)
	cp, err := h.Cliniko.GetPatient(cctx, cliniko.Auth{Key: key, UserID: cu.ID}, p.ClinikoPatientID)
	if err != nil {
		return fmt.Errorf("import cliniko patient: %w", err)
	}
	patient := store.Patient{}
	applyClinikoPatient(&patient, cp, h.Now())
	got, created, err := h.Store.ImportPatient(ctx, p.SubscriptionID, p.Shard, p.ClinikoPatientID, pr.ID, patient)
	if err != nil {
		return fmt.Errorf("save imported patient: %w", err)
	}
	if created {
		_ = h.Store.MarkLinkSynced(ctx, got.ID, h.Now())
		_ = h.Store.Audit(ctx, store.AuditEntry{PractitionerID: pr.ID, PatientID: got.ID, Op: "patient.imported"})
		// The key read this patient: its account is the one the clinic's
		// patients come from (claimed when none is recorded yet; another
		// recorded account is left as it is).
		if _, err := h.Store.AdoptClinikoAccount(ctx, p.SubscriptionID, cu.Account); err != nil {
			h.Log.Warn("record the clinic's cliniko account", "err", err)
		}
	}
	h.clearImportWait(ctx, p)
	writeResult(t, got.ID)
	return nil
}

// clearImportWait ends the click's wait once the link exists (a failure
// here leaves it to the reconciler, which finds the link).
func (h *Handlers) clearImportWait(ctx context.Context, p ImportPayload) {
	if err := h.Store.ClearImportWait(ctx, p.SubscriptionID, p.Shard, p.ClinikoPatientID); err != nil {
		h.Log.Warn("clear import wait", "err", err)
	}
}

func writeResult(t *asynq.Task, patientID string) {
	if w := t.ResultWriter(); w != nil {
		_, _ = w.Write([]byte(patientID))
	}
}

// practitionerKey loads an active practitioner and their Cliniko key.
func (h *Handlers) practitionerKey(ctx context.Context, id string) (store.Practitioner, string, store.ClinikoUser, error) {
	pr, err := h.Store.GetPractitioner(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return pr, "", store.ClinikoUser{}, pmsbridge.Errorf(pmsbridge.CauseInvalidPayload, "The practitioner of this job no longer exists.")
	}
	if err != nil {
		return pr, "", store.ClinikoUser{}, err
	}
	if !pr.Active {
		return pr, "", store.ClinikoUser{}, pmsbridge.Errorf(pmsbridge.CauseNoClinikoKey, "The practitioner's account is deactivated, so their Cliniko key is not used.")
	}
	key, cu, err := h.Store.ClinikoKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return pr, "", cu, pmsbridge.Errorf(pmsbridge.CauseNoClinikoKey, "The practitioner has no Cliniko API key saved.")
	}
	if err != nil {
		return pr, "", cu, err
	}
	return pr, key, cu, nil
}

// applyClinikoPatient copies a Cliniko patient's details into p, made fit
// to keep and show (patient_fields.go): Cliniko bounds none of them, and a
// field we could not store must not fail the import.
func applyClinikoPatient(p *store.Patient, cp cliniko.Patient, now time.Time) {
	p.FirstName = cleanText(cp.FirstName, maxNameRunes)
	p.LastName = cleanText(cp.LastName, maxNameRunes)
	p.Email = cleanEmail(cp.Email)
	p.Mobile = usableMobile(cp.PhoneNumbers)
	switch {
	case cp.GenderIdentity != "":
		p.Gender = cp.GenderIdentity
	case cp.Sex != "":
		p.Gender = cp.Sex
	default:
		p.Gender = cp.Gender
	}
	p.Gender = cleanText(p.Gender, maxGenderRunes)
	by := pmsbridge.ParseBirthYear(cp.DateOfBirth, now)
	by.Raw = cleanText(by.Raw, maxRawBirthDateRunes)
	p.ApplyClinikoBirthYear(by)
}
