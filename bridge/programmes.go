package bridge

import (
	"context"
	"errors"
	"net/http"
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
	maxTitle        = 200
	maxNotes        = 4000
	maxExercises    = 60
	maxInstructions = 2000
)

func (s *Server) exercises(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"exercises": pmsbridge.Catalogue()})
}

// assign is POST /patients/{id}/programmes: title, exercise (repeatable,
// catalogue ids), notes; optional starts_on and programme_id (a new version
// of that programme).
func (s *Server) assign(w http.ResponseWriter, r *http.Request) {
	p, ok := s.patientForm(w, r)
	if !ok {
		return
	}
	pr := practitionerFrom(r.Context())
	f := r.PostForm
	prog := pmsbridge.Programme{
		ID: strings.TrimSpace(f.Get("programme_id")), PatientID: p.ID, PractitionerID: pr.ID,
		Title: strings.TrimSpace(f.Get("title")), Notes: strings.TrimSpace(f.Get("notes")),
		StartsOn: strings.TrimSpace(f.Get("starts_on")), CreatedAt: s.cfg.Now().UTC(),
	}
	if prog.StartsOn == "" {
		prog.StartsOn = s.cfg.Now().UTC().Format("2006-01-02")
	}
	var problems []string
	for _, id := range f["exercise"] {
		e, ok := pmsbridge.CatalogueExercise(id)
		if !ok {
			problems = append(problems, "An exercise in the form is not in the catalogue.")
			break
		}
		prog.Exercises = append(prog.Exercises, e)
	}
	problems = append(problems, programmeProblems(prog)...)
	if len(problems) > 0 {
		s.patientFormError(w, r, p, http.StatusUnprocessableEntity, strings.Join(problems, " "))
		return
	}
	if prog.ID != "" {
		// A new version of an existing programme of this patient.
		latest, err := s.latestVersion(r.Context(), p.ID, prog.ID)
		if err != nil {
			s.patientFormError(w, r, p, http.StatusUnprocessableEntity, "That programme is not one of this patient's.")
			return
		}
		prog.Version = latest + 1
	}
	if _, err := s.createAndUpload(r.Context(), prog, p); err != nil {
		if errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrConflict) {
			s.patientFormError(w, r, p, http.StatusUnprocessableEntity, "The programme could not be saved: "+err.Error())
			return
		}
		s.internalError(w, r, err)
		return
	}
	http.Redirect(w, r, "/patients/"+p.ID+"?done=assigned", http.StatusSeeOther)
}

func (s *Server) latestVersion(ctx context.Context, patientID, programmeID string) (int, error) {
	progs, err := s.deps.Store.ListProgrammes(ctx, patientID)
	if err != nil {
		return 0, err
	}
	v := 0
	for _, x := range progs {
		if x.ID == programmeID && x.Version > v {
			v = x.Version
		}
	}
	if v == 0 {
		return 0, store.ErrNotFound
	}
	return v, nil
}

// programmeProblems checks a programme's fields, one sentence per problem.
func programmeProblems(p pmsbridge.Programme) []string {
	var out []string
	if p.Title == "" {
		out = append(out, "Give the programme a title.")
	} else if utf8.RuneCountInString(p.Title) > maxTitle {
		out = append(out, "The title is too long (at most "+itoa(maxTitle)+" characters).")
	}
	if utf8.RuneCountInString(p.Notes) > maxNotes {
		out = append(out, "The notes are too long (at most "+itoa(maxNotes)+" characters).")
	}
	if len(p.Exercises) == 0 {
		out = append(out, "Choose at least one exercise.")
	} else if len(p.Exercises) > maxExercises {
		out = append(out, "Too many exercises (at most "+itoa(maxExercises)+").")
	}
	if _, err := time.Parse("2006-01-02", p.StartsOn); err != nil {
		out = append(out, "The start date must be a date like 2026-11-22.")
	}
	for _, e := range p.Exercises {
		if strings.TrimSpace(e.Name) == "" || utf8.RuneCountInString(e.Name) > maxTitle || utf8.RuneCountInString(e.Instructions) > maxInstructions {
			out = append(out, "Every exercise needs a name (at most 200 characters) and instructions of at most 2000 characters.")
			break
		}
		if e.Sets < 0 || e.Reps < 0 || e.HoldSeconds < 0 || e.TimesPerDay < 0 || e.DaysPerWeek < 0 ||
			e.Sets > 100 || e.Reps > 1000 || e.HoldSeconds > 3600 || e.TimesPerDay > 24 || e.DaysPerWeek > 7 {
			out = append(out, "Exercise dosages must be sensible numbers (days per week at most 7).")
			break
		}
	}
	return out
}

// createAndUpload saves a programme version and queues its PDF upload. It
// reports whether the version was new.
func (s *Server) createAndUpload(ctx context.Context, prog pmsbridge.Programme, p store.Patient) (pmsbridge.Programme, error) {
	saved, created, err := s.deps.Store.CreateProgramme(ctx, prog)
	if err != nil {
		return saved, err
	}
	if created {
		if err := s.deps.Store.SetPDFState(ctx, saved.ID, saved.Version, store.PDFState{State: pmsbridge.PDFPending}); err != nil {
			return saved, err
		}
	} else if st, err := s.deps.Store.PDFStateOf(ctx, saved.ID, saved.Version); err == nil && st.State != pmsbridge.PDFPending {
		// Already handled: uploaded, failed (support replays) or not linked.
		return saved, s.deps.Store.Durable(ctx)
	}
	// A version saved by an earlier request whose enqueue failed is still
	// pending: queue it now (joins the task if it is in fact queued).
	if _, err = s.deps.Jobs.EnqueueUpload(ctx, jobs.UploadPayload{ProgrammeID: saved.ID, Version: saved.Version, PatientID: p.ID, PractitionerID: saved.PractitionerID}); err != nil {
		return saved, err
	}
	// Acknowledged only once the replicas hold it (redis.ack_replicas): a
	// failover must not lose an assignment the user was told about.
	return saved, s.deps.Store.Durable(ctx)
}

// programmeOf loads the {pid}/{v} programme version of patient p.
func (s *Server) programmeOf(w http.ResponseWriter, r *http.Request, p store.Patient) (pmsbridge.Programme, bool) {
	v, err := strconv.Atoi(r.PathValue("v"))
	if err != nil || v < 1 {
		s.notFound(w, r)
		return pmsbridge.Programme{}, false
	}
	prog, err := s.deps.Store.GetProgramme(r.Context(), r.PathValue("pid"), v)
	if err != nil || prog.PatientID != p.ID {
		s.notFound(w, r)
		return prog, false
	}
	return prog, true
}

// resend is the "Send to Cliniko again" button.
func (s *Server) resend(w http.ResponseWriter, r *http.Request) {
	p, ok := s.loadPatient(w, r)
	if !ok {
		return
	}
	prog, ok := s.programmeOf(w, r, p)
	if !ok {
		return
	}
	st, _ := s.deps.Store.PDFStateOf(r.Context(), prog.ID, prog.Version)
	if st.State == pmsbridge.PDFUploaded {
		s.patientFormError(w, r, p, http.StatusConflict, "This version is already in the patient's Cliniko files.")
		return
	}
	taskID := jobs.UploadTaskID(prog.ID, prog.Version)
	if f, err := s.deps.Store.GetFailure(r.Context(), taskID); err == nil {
		err = s.deps.Jobs.Replay(r.Context(), s.deps.Store, f)
		if err != nil {
			s.internalError(w, r, err)
			return
		}
	} else {
		if err := s.deps.Store.SetPDFState(r.Context(), prog.ID, prog.Version, store.PDFState{State: pmsbridge.PDFPending}); err != nil {
			s.internalError(w, r, err)
			return
		}
		if _, err := s.deps.Jobs.EnqueueUpload(r.Context(), jobs.UploadPayload{ProgrammeID: prog.ID, Version: prog.Version, PatientID: p.ID, PractitionerID: prog.PractitionerID}); err != nil {
			s.internalError(w, r, err)
			return
		}
	}
	http.Redirect(w, r, "/patients/"+p.ID+"?done=resent", http.StatusSeeOther)
}

// downloadPDF serves the same PDF that goes to Cliniko.
func (s *Server) downloadPDF(w http.ResponseWriter, r *http.Request) {
	p, ok := s.loadPatient(w, r)
	if !ok {
		return
	}
	prog, ok := s.programmeOf(w, r, p)
	if !ok {
		return
	}
	s.servePDF(w, r, prog, p)
}

func (s *Server) servePDF(w http.ResponseWriter, r *http.Request, prog pmsbridge.Programme, p store.Patient) {
	b, err := pdf.Render(jobs.ProgrammeDocument(r.Context(), s.deps.Store, prog, p, s.cfg.PublicURL+"/access"))
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/pdf")
	w.Header().Set("Content-Disposition", `inline; filename="`+jobs.PDFFilename(prog.ID, prog.Version)+`"`)
	w.Header().Set("Cache-Control", "private, no-store")
	_, _ = w.Write(b)
}
