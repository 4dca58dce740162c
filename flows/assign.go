package flows

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/pdf"
	"github.com/physitrack/pmsbridge/store"
)

// Limits on programme text.
const (
	maxTitle     = 200
	maxNotes     = 4000
	maxExercises = 60
)

// Assignment is a programme version to assign, as the assign form or the
// platform's webhook sends it.
type Assignment struct {
	// ProgrammeID names the programme: "" for a new one (the form); on the
	// form, an existing programme of the patient gets its next version.
	ProgrammeID string
	// Version is the version the platform assigns (the webhook); 0 on the
	// form.
	Version  int
	Title    string
	Notes    string
	StartsOn string // YYYY-MM-DD; "" means today in the clinic
	// CatalogueIDs are the form's exercises in the order posted: catalogue
	// ids, or "cur:N" for the Nth exercise (from 0) of the programme's
	// current version, so that a new version keeps exercises the catalogue
	// does not have (the platform's own). Exercises are the webhook's,
	// spelt out. An assignment has one or the other.
	CatalogueIDs []string
	// Doses are the form's dose fields of the chosen exercises: by the
	// exercise's CatalogueIDs value, then pmsbridge.DoseField.Key, the text
	// typed ("" is 0: not stated). A field not sent keeps the exercise's
	// dose (the catalogue's default, or the current version's).
	Doses     map[string]map[string]string
	Exercises []pmsbridge.Exercise
}

// CurrentExercise is the form's value for the ith exercise (from 0) of a
// programme's current version (Assignment.CatalogueIDs).
func CurrentExercise(i int) string { return "cur:" + strconv.Itoa(i) }

// Assign assigns a programme version to patient p (whom pr may open), from
// the assign form: it is saved, its PDF upload queued, and acknowledged once
// it is durable. A new version of one of the patient's programmes keeps its
// code. *Error Invalid names every problem of the form at once.
func (f *Flows) Assign(ctx context.Context, pr store.Practitioner, p store.Patient, a Assignment) (pmsbridge.Programme, error) {
	var base *pmsbridge.Programme
	if id := strings.TrimSpace(a.ProgrammeID); id != "" {
		latest, err := f.Store.GetProgramme(ctx, id, 0)
		if errors.Is(err, store.ErrNotFound) || err == nil && latest.PatientID != p.ID {
			return pmsbridge.Programme{}, refuse(Invalid, "That programme is not one of this patient's.")
		} else if err != nil {
			return pmsbridge.Programme{}, err
		}
		base = &latest
	}
	prog, err := f.programme(ctx, pr, p, a, base)
	if err != nil {
		return prog, err
	}
	if base != nil {
		prog.Version = base.Version + 1
	}
	return f.assign(ctx, prog, p)
}

// programme is the programme version that a sends, checked: every problem
// in one *Error Invalid. base is the programme's current version when a is
// a new version of it from the form (its exercises can be chosen again).
func (f *Flows) programme(ctx context.Context, pr store.Practitioner, p store.Patient, a Assignment, base *pmsbridge.Programme) (pmsbridge.Programme, error) {
	now := f.Now().UTC()
	prog := pmsbridge.Programme{
		ID: strings.TrimSpace(a.ProgrammeID), Version: a.Version, PatientID: p.ID, PractitionerID: pr.ID,
		Title: strings.TrimSpace(a.Title), Notes: strings.TrimSpace(a.Notes), StartsOn: strings.TrimSpace(a.StartsOn),
		Exercises: a.Exercises, CreatedAt: now,
	}
	if prog.StartsOn == "" {
		prog.StartsOn = f.clinicTime(ctx, p.SubscriptionID).ISODate(now)
	}
	var problems []string
	for _, v := range a.CatalogueIDs {
		e, ok := chosenExercise(v, base)
		if !ok {
			problems = append(problems, "An exercise in the form is not in the catalogue.")
			break
		}
		problems = append(problems, applyDoses(&e, a.Doses[v])...)
		prog.Exercises = append(prog.Exercises, e)
	}
	problems = append(problems, programmeProblems(prog)...)
	if len(problems) > 0 {
		return prog, refuse(Invalid, strings.Join(problems, " "))
	}
	return prog, nil
}

// chosenExercise is the exercise a form value names: a catalogue id, or
// "cur:N" of base.
func chosenExercise(v string, base *pmsbridge.Programme) (pmsbridge.Exercise, bool) {
	if n, ok := strings.CutPrefix(v, "cur:"); ok {
		i, err := strconv.Atoi(n)
		if base == nil || err != nil || i < 0 || i >= len(base.Exercises) {
			return pmsbridge.Exercise{}, false
		}
		return base.Exercises[i], true
	}
	return pmsbridge.CatalogueExercise(v)
}

// applyDoses sets the dose fields typed for e (see Assignment.Doses): a
// whole number, "" for 0. The ranges are checked with the rest of the
// exercise (pmsbridge.ExerciseProblems).
func applyDoses(e *pmsbridge.Exercise, typed map[string]string) []string {
	var out []string
	for _, d := range pmsbridge.DoseFields {
		text, ok := typed[d.Key]
		if !ok {
			continue
		}
		text = strings.TrimSpace(text)
		if text == "" {
			*d.Get(e) = 0
			continue
		}
		n, err := strconv.Atoi(text)
		if err != nil {
			out = append(out, e.Name+": "+d.Name+" must be a whole number (or empty).")
			*d.Get(e) = 0
			continue
		}
		*d.Get(e) = n
	}
	return out
}

// programmeProblems checks a programme's fields, one sentence per problem;
// each exercise by pmsbridge.ExerciseProblems, the one check of the form
// and the webhook.
func programmeProblems(p pmsbridge.Programme) []string {
	var out []string
	if p.Title == "" {
		out = append(out, "Give the programme a title.")
	} else if utf8.RuneCountInString(p.Title) > maxTitle {
		out = append(out, "The title is too long (at most "+strconv.Itoa(maxTitle)+" characters).")
	}
	if utf8.RuneCountInString(p.Notes) > maxNotes {
		out = append(out, "The notes are too long (at most "+strconv.Itoa(maxNotes)+" characters).")
	}
	if len(p.Exercises) == 0 {
		out = append(out, "Choose at least one exercise.")
	} else if len(p.Exercises) > maxExercises {
		out = append(out, "Too many exercises (at most "+strconv.Itoa(maxExercises)+").")
	}
	if _, err := time.Parse(pmsbridge.ISODateLayout, p.StartsOn); err != nil {
		out = append(out, "The start date must be a date like 2026-11-22.")
	}
	for i, e := range p.Exercises {
		if i >= maxExercises {
			break
		}
		out = append(out, pmsbridge.ExerciseProblems(e)...)
	}
	return out
}

// clinicTime is the formatter of subscription subID's clinic time (UTC
// when the subscription cannot be read: a date is still given).
func (f *Flows) clinicTime(ctx context.Context, subID string) pmsbridge.ClinicTime {
	sub, err := f.Store.GetSubscription(ctx, subID)
	if err != nil {
		f.logger(ctx).Warn("read subscription for its time zone", "err", err)
		return pmsbridge.ClinicTime{}
	}
	return sub.ClinicTime()
}

// assign is what every assignment does, from the form or the webhook: save
// the version, record and queue what it owes (its PDF upload, and for a first
// version the message with the patient's code: jobs.Codes.Assigned), and
// answer only once the replicas hold it (redis.ack_replicas: a failover must
// not lose an assignment the user was told about, nor the message it
// promised). Every record is written before anything is queued, so a queue
// that fails leaves owed work the reconciler finds. A repeated assignment (a
// duplicate webhook, a version saved by an earlier request whose enqueue
// failed) queues what is still owed, joining a task that is in fact queued,
// and asks for no second message.
func (f *Flows) assign(ctx context.Context, prog pmsbridge.Programme, p store.Patient) (pmsbridge.Programme, error) {
	saved, created, err := f.Store.CreateProgramme(ctx, prog)
	if errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrConflict) {
		return saved, &Error{Code: Invalid, Message: "The programme could not be saved: " + err.Error(), Err: err}
	}
	if err != nil {
		return saved, err
	}
	uploadOwed := true
	if created {
		if err := f.Store.SetPDFState(ctx, saved.ID, saved.Version, store.PDFState{State: pmsbridge.PDFPending}); err != nil {
			return saved, err
		}
	} else if st, err := f.Store.PDFStateOf(ctx, saved.ID, saved.Version); err == nil && st.State != pmsbridge.PDFPending {
		uploadOwed = false // already handled: uploaded, failed (support replays) or not linked
	}
	if _, err := f.Codes.Assigned(ctx, saved); err != nil {
		return saved, err
	}
	if uploadOwed {
		if _, err := f.Jobs.EnqueueUpload(ctx, uploadOf(saved, p)); err != nil {
			return saved, err
		}
	}
	return saved, f.Store.Durable(ctx)
}

func uploadOf(prog pmsbridge.Programme, p store.Patient) jobs.UploadPayload {
	return jobs.UploadPayload{ProgrammeID: prog.ID, Version: prog.Version, PatientID: p.ID, PractitionerID: prog.PractitionerID}
}

// Programme is version v of programme id of patient p: *Error NotFound when
// the patient has no such version.
func (f *Flows) Programme(ctx context.Context, p store.Patient, id string, v int) (pmsbridge.Programme, error) {
	prog, err := f.Store.GetProgramme(ctx, id, v)
	if v < 1 || errors.Is(err, store.ErrNotFound) || err == nil && prog.PatientID != p.ID {
		return prog, &Error{Code: NotFound, Message: "The patient has no such programme.", Err: err}
	}
	return prog, err
}

// Resend is "Send to Cliniko again" for a programme version of patient p:
// a failed upload is replayed from the failure ledger; one that has no
// entry is queued again. *Error Conflict when the PDF is in Cliniko
// already.
func (f *Flows) Resend(ctx context.Context, p store.Patient, prog pmsbridge.Programme) error {
	st, err := f.Store.PDFStateOf(ctx, prog.ID, prog.Version)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if st.State == pmsbridge.PDFUploaded {
		return refuse(Conflict, "This version is already in the patient's Cliniko files.")
	}
	failed, err := f.Store.GetFailure(ctx, jobs.UploadTaskID(prog.ID, prog.Version))
	switch {
	case err == nil:
		return f.Jobs.Replay(ctx, failed)
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	if err := f.Store.SetPDFState(ctx, prog.ID, prog.Version, store.PDFState{State: pmsbridge.PDFPending}); err != nil {
		return err
	}
	_, err = f.Jobs.EnqueueUpload(ctx, uploadOf(prog, p))
	return err
}

// ProgrammePDF is the PDF of a programme version of patient p, the same one
// that goes to Cliniko, with its file name.
func (f *Flows) ProgrammePDF(ctx context.Context, p store.Patient, prog pmsbridge.Programme) ([]byte, string, error) {
	b, err := pdf.Render(jobs.DocumentOf(ctx, f.Store, f.AccessURL, prog, p))
	if err != nil {
		return nil, "", err
	}
	return b, jobs.PDFFilename(prog), nil
}
