package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/pdf"
	"github.com/physitrack/pmsbridge/store"
)

// TypeUploadPDF renders one programme version as a PDF and puts it in the
// patient's Cliniko files. Never rename.
const TypeUploadPDF = "programme:upload_pdf"

// UploadPayload names the programme version.
type UploadPayload struct {
	ProgrammeID string `json:"programme_id"`
	Version     int    `json:"version"`
	PatientID   string `json:"patient_id"`
	// PractitionerID is the assigning practitioner (whose key is tried first).
	PractitionerID string `json:"practitioner_id"`
}

// PDFDocument is what a programme PDF shows.
type PDFDocument = pdf.Document

// UploadTaskID is the deterministic task id of a programme version's upload.
func UploadTaskID(programmeID string, version int) string {
	return fmt.Sprintf("pdf:%s:v%d", programmeID, version)
}

// AttachmentMarker is put in the Cliniko attachment's description so a
// retry can find an attachment already made for this version and never make
// a second one.
func AttachmentMarker(programmeID string, version int) string {
	return fmt.Sprintf("[pmsbridge %s v%d]", programmeID, version)
}

// PDFFilename is the file name of a programme version's PDF: ids only, no
// patient details.
func PDFFilename(programmeID string, version int) string {
	return fmt.Sprintf("programme-%s-v%d.pdf", programmeID, version)
}

// EnqueueUpload queues the upload of a programme version, joining one that
// is queued and replacing one that failed (the "send again" button).
func (c *Client) EnqueueUpload(ctx context.Context, p UploadPayload) (string, error) {
	id := UploadTaskID(p.ProgrammeID, p.Version)
	_, err := c.enqueue(ctx, asynq.NewTask(TypeUploadPDF, mustPayload(p)), id)
	return id, err
}

func (h *Handlers) uploadPDF(ctx context.Context, t *asynq.Task) (err error) {
	var p UploadPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	prog, err := h.Store.GetProgramme(ctx, p.ProgrammeID, p.Version)
	if errors.Is(err, store.ErrNotFound) {
		return pmsbridge.Errorf(pmsbridge.CauseInvalidPayload, "Programme %s version %d does not exist.", p.ProgrammeID, p.Version)
	} else if err != nil {
		return err
	}
	state, err := h.Store.PDFStateOf(ctx, prog.ID, prog.Version)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if state.State == pmsbridge.PDFUploaded {
		return nil // done before (a redelivered task)
	}
	patient, err := h.Store.GetPatient(ctx, prog.PatientID)
	if err != nil {
		return fmt.Errorf("programme's patient: %w", err)
	}
	if patient.Link == nil {
		return h.Store.SetPDFState(ctx, prog.ID, prog.Version, store.PDFState{State: pmsbridge.PDFNotLinked,
			Cause: pmsbridge.CauseNotLinked, Reason: "The patient is not linked to Cliniko, so there is nowhere to send the PDF."})
	}
	pr, key, cu, err := h.uploadKey(ctx, prog.PractitionerID, patient)
	if err != nil {
		return err
	}
	defer func() { err = withKeyUsed(err, pr, cu) }()
	// One upload of a version at a time, even if asynq hands a crashed
	// worker's task to another while the first is somehow still running.
	lock, err := h.hold(ctx, "upload of this programme version", func() (*store.Lock, bool, error) {
		return h.Store.LockUpload(ctx, prog.ID, prog.Version, workLockTTL)
	})
	if err != nil {
		return err
	}
	defer lock.release(ctx)

	auth := cliniko.Auth{Key: key, UserID: cu.ID}
	cctx := cliniko.ForJob(WithActor(ctx, pr.ID, patient.ID), limiterMaxWait)
	marker := AttachmentMarker(prog.ID, prog.Version)
	existing, err := h.Cliniko.ListAttachments(cctx, auth, patient.Link.ClinikoPatientID)
	if err != nil {
		return fmt.Errorf("look for an earlier upload: %w", err)
	}
	for _, a := range existing {
		if strings.Contains(a.Description, marker) {
			return h.uploaded(ctx, prog, a.ID)
		}
	}
	body, err := h.Render(h.programmeDocument(ctx, prog, patient))
	if err != nil {
		return &pmsbridge.Error{Cause: pmsbridge.CauseInternal, Message: "The PDF could not be made.", Err: err}
	}
	desc := fmt.Sprintf("Home exercise programme: %s (version %d) %s", prog.Title, prog.Version, marker)
	if n := len([]rune(desc)); n > 255 {
		title := []rune(prog.Title)
		desc = fmt.Sprintf("Home exercise programme: %s… (version %d) %s", string(title[:max(0, len(title)-(n-255)-1)]), prog.Version, marker)
	}
	// Still ours? The attachment is the one step that cannot be undone.
	if err := lock.check(ctx); err != nil {
		return err
	}
	a, err := h.Cliniko.UploadAttachment(cctx, auth, patient.Link.ClinikoPatientID, PDFFilename(prog.ID, prog.Version), desc, body)
	if err != nil {
		return fmt.Errorf("upload programme pdf: %w", err)
	}
	return h.uploaded(ctx, prog, a.ID)
}

func (h *Handlers) uploaded(ctx context.Context, prog pmsbridge.Programme, attachmentID string) error {
	return h.Store.SetPDFState(ctx, prog.ID, prog.Version, store.PDFState{State: pmsbridge.PDFUploaded, AttachmentID: attachmentID})
}

// markPDFFailed records a permanent failure on the programme version.
func (h *Handlers) markPDFFailed(ctx context.Context, programmeID string, version int, cause pmsbridge.Cause, reason string) {
	if err := h.Store.SetPDFState(context.WithoutCancel(ctx), programmeID, version, store.PDFState{State: pmsbridge.PDFFailed, Cause: cause, Reason: reason}); err != nil {
		h.Log.Error("record pdf failure", "programme_id", programmeID, "version", version, "err", err)
	}
}

// uploadKey picks the key: the assigning practitioner's, else the owner's,
// provided its Cliniko account (shard) is the patient's.
func (h *Handlers) uploadKey(ctx context.Context, assignerID string, patient store.Patient) (store.Practitioner, string, store.ClinikoUser, error) {
	var firstErr error
	for _, id := range []string{assignerID, patient.OwnerID} {
		if id == "" {
			continue
		}
		pr, key, cu, err := h.practitionerKey(ctx, id)
		if err == nil && pr.SubscriptionID == patient.SubscriptionID && cu.Shard == patient.Link.Shard {
			return pr, key, cu, nil
		}
		if err != nil && pmsbridge.CauseOf(err) != pmsbridge.CauseNoClinikoKey && pmsbridge.CauseOf(err) != pmsbridge.CauseInvalidPayload {
			return pr, "", cu, err // e.g. Redis down: retry
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return store.Practitioner{}, "", store.ClinikoUser{}, pmsbridge.Errorf(pmsbridge.CauseNoClinikoKey,
		"Neither the assigning practitioner nor the patient's owner has a Cliniko API key for this patient's Cliniko account.")
}

// programmeDocument is what a programme version's PDF shows; the download
// in the app (flows.ProgrammePDF) reads the same byline.
func (h *Handlers) programmeDocument(ctx context.Context, prog pmsbridge.Programme, patient store.Patient) PDFDocument {
	by := h.Store.BylineOf(ctx, prog, patient)
	return PDFDocument{Programme: prog, PatientName: patient.Name(), Practitioner: by.Practitioner, Clinic: by.Clinic, AccessURL: h.AccessURL}
}
