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

// TypeRefreshPatient re-reads a linked patient's details from Cliniko.
// Never rename.
const TypeRefreshPatient = "cliniko:refresh_patient"

// RefreshPayload names the patient and whose key reads it.
type RefreshPayload struct {
	PractitionerID string `json:"practitioner_id"`
	PatientID      string `json:"patient_id"`
}

// RefreshDebounce is how often a click refreshes the same patient at most.
const RefreshDebounce = 5 * time.Minute

// EnqueueRefresh queues a refresh of a patient's details. Unless force is
// set it is debounced: at most one per patient per RefreshDebounce. It
// reports whether one was queued.
func (c *Client) EnqueueRefresh(ctx context.Context, p RefreshPayload, force bool) (bool, error) {
	if !force {
		free, err := c.st.DebounceRefresh(ctx, p.PatientID, RefreshDebounce)
		if err != nil || !free {
			return false, err
		}
	}
	id := RefreshTaskID(p.PatientID)
	return c.enqueue(ctx, asynq.NewTask(TypeRefreshPatient, mustPayload(p)), id)
}

// RefreshTaskID is the task id of a patient's refresh: one at a time.
func RefreshTaskID(patientID string) string { return "refresh:" + patientID }

func (h *Handlers) refreshPatient(ctx context.Context, t *asynq.Task) (err error) {
	var p RefreshPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	patient, err := h.Store.GetPatient(ctx, p.PatientID)
	if errors.Is(err, store.ErrNotFound) {
		return pmsbridge.Errorf(pmsbridge.CauseInvalidPayload, "The patient no longer exists.")
	} else if err != nil {
		return err
	}
	if patient.Link == nil {
		return pmsbridge.Errorf(pmsbridge.CauseNotLinked, "The patient is not linked to Cliniko.")
	}
	pr, key, cu, err := h.practitionerKey(ctx, p.PractitionerID)
	if err != nil {
		return err
	}
	defer func() { err = withKeyUsed(err, pr, cu) }()
	if cu.Shard != patient.Link.Shard || pr.SubscriptionID != patient.SubscriptionID {
		return pmsbridge.Errorf(pmsbridge.CauseClinikoUnauthorized, "The practitioner's Cliniko key is for another Cliniko account than this patient's.")
	}
	cctx := cliniko.ForJob(WithActor(ctx, pr.ID, patient.ID), limiterMaxWait)
	cp, err := h.Cliniko.GetPatient(cctx, cliniko.Auth{Key: key, UserID: cu.ID}, patient.Link.ClinikoPatientID)
	if pmsbridge.CauseOf(err) == pmsbridge.CauseClinikoNotFound {
		// Archived (or deleted) in Cliniko: say so, keep our patient.
		return h.Store.MarkLinkArchived(ctx, patient.ID, true)
	}
	if err != nil {
		return fmt.Errorf("refresh cliniko patient: %w", err)
	}
	return h.applyRefresh(ctx, patient.ID, cp)
}

// applyRefresh writes a Cliniko patient's details to our patient.
func (h *Handlers) applyRefresh(ctx context.Context, patientID string, cp cliniko.Patient) error {
	if _, err := h.Store.UpdatePatient(ctx, patientID, func(x *store.Patient) error {
		applyClinikoPatient(x, cp, h.Now())
		return nil
	}); err != nil {
		return fmt.Errorf("update patient: %w", err)
	}
	if err := h.Store.MarkLinkArchived(ctx, patientID, false); err != nil {
		return err
	}
	return h.Store.MarkLinkSynced(ctx, patientID, h.Now())
}
