package jobs

import (
	"context"
	"errors"
	"fmt"

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

// EnqueueUpload queues the upload of a programme version, joining one that
// is queued and replacing one that failed (the "send again" button).
func (c *Client) EnqueueUpload(ctx context.Context, p UploadPayload) (string, error) {
	id := UploadTaskID(p.ProgrammeID, p.Version)
	_, err := c.enqueue(ctx, newUploadTask(p), id)
	return id, err
}

func newUploadTask(p UploadPayload) *asynq.Task { return asynq.NewTask(TypeUploadPDF, mustPayload(p)) }

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
	existing, err := h.Cliniko.ListAttachments(cctx, auth, patient.Link.ClinikoPatientID)
	if err != nil {
		return fmt.Errorf("look for an earlier upload: %w", err)
	}
	for _, a := range existing {
		if IsAttachmentOf(a.Description, prog.ID, prog.Version) {
			return h.uploaded(ctx, prog, a.ID)
		}
	}
	// Read only now: a redelivered task that found its attachment, or one
	// whose lock is busy, needs none of it.
	doc := DocumentOf(ctx, h.Store, h.AccessURL, prog, patient)
	body, err := h.Render(doc)
	if err != nil {
		return &pmsbridge.Error{Cause: pmsbridge.CauseInternal, Message: "The PDF could not be made.", Err: err}
	}
	desc := AttachmentDescription(prog, doc.Clock)
	// Still ours? The attachment is the one step that cannot be undone.
	if err := lock.check(ctx); err != nil {
		return err
	}
	a, err := h.Cliniko.UploadAttachment(cctx, auth, patient.Link.ClinikoPatientID, PDFFilename(prog), desc, body)
	if err != nil {
		return fmt.Errorf("upload programme pdf: %w", err)
	}
	return h.uploaded(ctx, prog, a.ID)
}

func (h *Handlers) uploaded(ctx context.Context, prog pmsbridge.Programme, attachmentID string) error {
	return h.Store.SetPDFState(ctx, prog.ID, prog.Version, store.PDFState{State: pmsbridge.PDFUploaded, AttachmentID: attachmentID})
}

// uploadKey is the key that sends a patient's PDF (ChooseUploader): the
// assigning practitioner's, else the owner's, of the patient's Cliniko
// account, one whose role may upload first.
func (h *Handlers) uploadKey(ctx context.Context, assignerID string, patient store.Patient) (store.Practitioner, string, store.ClinikoUser, error) {
	u, err := ChooseUploader(ctx, h.Store, assignerID, patient)
	if err != nil {
		return store.Practitioner{}, "", store.ClinikoUser{}, err
	}
	if u.PractitionerID == "" {
		return store.Practitioner{}, "", store.ClinikoUser{}, &pmsbridge.Error{Cause: pmsbridge.CauseNoClinikoKey, Message: noUploaderReason(u)}
	}
	return h.practitionerKey(ctx, u.PractitionerID)
}

// noUploaderReason says why no key can send a patient's PDF.
func noUploaderReason(u Uploader) string {
	for _, s := range u.Skipped {
		switch s.Why {
		case pmsbridge.CauseClinikoNotFound:
			return "The saved Cliniko keys of the assigning practitioner and the patient's owner belong to another Cliniko account than this patient's."
		case pmsbridge.CauseClinikoUnauthorized:
			return "The saved Cliniko keys of the assigning practitioner and the patient's owner belong to another Cliniko region than this patient's."
		}
	}
	return "Neither the assigning practitioner nor the patient's owner has a Cliniko API key saved."
}

// DocumentOf is what programme version prog of patient p's PDF shows, the
// same for the upload and the download in the app: the byline, the
// clinic's time, and the access address with the clinic's reference.
func DocumentOf(ctx context.Context, st *store.Store, accessURL string, prog pmsbridge.Programme, p store.Patient) PDFDocument {
	by := st.BylineOf(ctx, prog, p)
	return PDFDocument{Programme: prog, PatientName: p.Name(), Practitioner: by.Practitioner, Clinic: by.Clinic,
		Clock: by.Clock, AccessURL: st.ClinicAccessURL(ctx, accessURL, p.SubscriptionID)}
}
