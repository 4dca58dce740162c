package flows

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// patient imports the demo patient for the bundle's practitioner.
func (b *bundle) patient(t *testing.T) store.Patient {
	t.Helper()
	p, err := b.st.GetPatient(b.ctx, b.importNow(t, b.click(t, b.pr, sandbox.DemoPatientID)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// assigned imports the demo patient and assigns them a programme.
func (b *bundle) assigned(t *testing.T) (store.Patient, pmsbridge.Programme) {
	t.Helper()
	p := b.patient(t)
	prog, err := b.f.Assign(b.ctx, b.pr, p, Assignment{Title: "Knee", CatalogueIDs: []string{"ex_quad_set"}})
	if err != nil {
		t.Fatal(err)
	}
	return p, prog
}

func wantRefusal(t *testing.T, what string, err error, code Code, says string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != code || !strings.Contains(e.Message, says) {
		t.Errorf("%s: %v, want a refusal %s saying %q", what, err, code, says)
	}
}

// TestAssign: the form's assignment is saved as version 1 with its PDF
// owed and queued; programme_id adds the next version with the same code;
// bad input saves and queues nothing and names every problem.
func TestAssign(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.patient(t)
	v1, err := b.f.Assign(b.ctx, b.pr, p, Assignment{Title: " Knee rehab ", CatalogueIDs: []string{"ex_quad_set"}})
	if err != nil || v1.Version != 1 || v1.Title != "Knee rehab" || v1.StartsOn != "2026-11-22" {
		t.Fatalf("Assign = %+v, %v", v1, err)
	}
	if st, err := b.st.PDFStateOf(b.ctx, v1.ID, 1); err != nil || st.State != pmsbridge.PDFPending {
		t.Errorf("PDF state %+v, %v; want pending", st, err)
	}
	if st, _, err := b.jobs.TaskState(b.ctx, jobs.QueuePDF, jobs.UploadTaskID(v1.ID, 1)); err != nil || st != jobs.StatePending {
		t.Errorf("upload task %q, %v; want pending", st, err)
	}
	v2, err := b.f.Assign(b.ctx, b.pr, p, Assignment{ProgrammeID: v1.ID, Title: "Knee rehab, week 2", CatalogueIDs: []string{"ex_quad_set"}})
	if err != nil || v2.ID != v1.ID || v2.Version != 2 || v2.Code != v1.Code {
		t.Errorf("a new version: %+v, %v; want version 2 of %s with code %s", v2, err, v1.ID, v1.Code)
	}
	for _, tc := range []struct {
		desc string
		a    Assignment
		says []string
	}{
		{"nothing", Assignment{}, []string{"Give the programme a title.", "Choose at least one exercise."}},
		{"an exercise not in the catalogue", Assignment{Title: "Knee", CatalogueIDs: []string{"ex_nope"}}, []string{"not in the catalogue"}},
		{"a bad date", Assignment{Title: "Knee", CatalogueIDs: []string{"ex_quad_set"}, StartsOn: "22/11/2026"}, []string{"The start date must be a date"}},
		{"another patient's programme", Assignment{ProgrammeID: "prg_elsewhere", Title: "Knee", CatalogueIDs: []string{"ex_quad_set"}}, []string{"not one of this patient's"}},
	} {
		_, err := b.f.Assign(b.ctx, b.pr, p, tc.a)
		for _, s := range tc.says {
			wantRefusal(t, tc.desc, err, Invalid, s)
		}
	}
	if progs, _ := b.st.ListProgrammes(b.ctx, p.ID); len(progs) != 2 {
		t.Errorf("%d programme versions, want the 2 assigned", len(progs))
	}
}

// TestAssignDoses: the form's doses replace the catalogue's; a new version
// can choose the current version's exercises (also those not in the
// catalogue, from the platform) with their doses; bad doses are refused
// naming the exercise and the field, by the same check as the webhook's.
func TestAssignDoses(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.patient(t)
	v1, err := b.f.Assign(b.ctx, b.pr, p, Assignment{Title: "Knee", CatalogueIDs: []string{"ex_quad_set", "ex_bridge"},
		Doses: map[string]map[string]string{"ex_quad_set": {"sets": "4", "reps": "12", "hold_seconds": "", "times_per_day": "3", "days_per_week": "6"}}})
	if err != nil {
		t.Fatal(err)
	}
	bridge, _ := pmsbridge.CatalogueExercise("ex_bridge")
	if got := v1.Exercises[0]; got.Sets != 4 || got.Reps != 12 || got.HoldSeconds != 0 || got.TimesPerDay != 3 || got.DaysPerWeek != 6 {
		t.Errorf("typed doses: %+v", got)
	}
	if v1.Exercises[1] != bridge {
		t.Errorf("untouched exercise %+v, want the catalogue's %+v", v1.Exercises[1], bridge)
	}
	// A platform version with an exercise of its own, then a new version
	// from the form that keeps it and changes its reps.
	own := pmsbridge.Exercise{Name: "Stairs with a rail", Instructions: "Up and down.", Sets: 1, Reps: 5, DaysPerWeek: 3}
	if _, err := b.f.assign(b.ctx, pmsbridge.Programme{ID: v1.ID, Version: 2, PatientID: p.ID, PractitionerID: b.pr.ID, Title: "Knee",
		StartsOn: "2026-11-22", Exercises: []pmsbridge.Exercise{own}}, p); err != nil {
		t.Fatal(err)
	}
	v3, err := b.f.Assign(b.ctx, b.pr, p, Assignment{ProgrammeID: v1.ID, Title: "Knee", CatalogueIDs: []string{CurrentExercise(0), "ex_bridge"},
		Doses: map[string]map[string]string{CurrentExercise(0): {"reps": "8"}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := (pmsbridge.Exercise{Name: own.Name, Instructions: own.Instructions, Sets: 1, Reps: 8, DaysPerWeek: 3}); v3.Version != 3 || v3.Exercises[0] != want {
		t.Errorf("version %d kept %+v, want %+v", v3.Version, v3.Exercises[0], want)
	}
	for _, tc := range []struct {
		desc  string
		doses map[string]string
		says  string
	}{
		{"too many sets", map[string]string{"sets": "21"}, "Quadriceps setting: sets must be from 0 to 20."},
		{"negative hold", map[string]string{"hold_seconds": "-5"}, "Quadriceps setting: hold (seconds) must be from 0 to 600."},
		{"eight days a week", map[string]string{"days_per_week": "8"}, "Quadriceps setting: days a week must be from 0 to 7."},
		{"not a number", map[string]string{"reps": "ten"}, "Quadriceps setting: reps must be a whole number (or empty)."},
	} {
		_, err := b.f.Assign(b.ctx, b.pr, p, Assignment{Title: "Knee", CatalogueIDs: []string{"ex_quad_set"}, Doses: map[string]map[string]string{"ex_quad_set": tc.doses}})
		wantRefusal(t, tc.desc, err, Invalid, tc.says)
	}
	_, err = b.f.Assign(b.ctx, b.pr, p, Assignment{Title: "Knee", CatalogueIDs: []string{CurrentExercise(0)}})
	wantRefusal(t, "the current version's exercise of no programme", err, Invalid, "not in the catalogue")
	// The webhook's exercises are checked by the same rule.
	wp := &PlatformProgramme{PatientID: p.ID, PractitionerID: b.pr.ID, Assignment: Assignment{ProgrammeID: "prg_dose", Version: 1, Title: "Knee",
		Exercises: []pmsbridge.Exercise{{Name: "Quad set", Sets: 21}}}}
	_, err = b.f.AcceptEvent(b.ctx, PlatformEvent{ID: "e-dose", Type: "programme.assigned", SignedAt: b.clock.Now(), Programme: wp})
	wantRefusal(t, "the webhook's dose", err, Invalid, "Quad set: sets must be from 0 to 20.")
}

// TestAssignStartsOnClinicDay: without a start date, a programme starts on
// the clinic's today, not UTC's.
func TestAssignStartsOnClinicDay(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.patient(t)
	b.clock.Advance(2 * time.Hour) // 22 Nov 2026, 12:00 UTC: the 23rd in Auckland
	if _, err := b.st.SetSubscriptionTimeZone(b.ctx, b.sub.ID, "Pacific/Auckland"); err != nil {
		t.Fatal(err)
	}
	prog, err := b.f.Assign(b.ctx, b.pr, p, Assignment{Title: "Knee", CatalogueIDs: []string{"ex_quad_set"}})
	if err != nil {
		t.Fatal(err)
	}
	if prog.StartsOn != "2026-11-23" {
		t.Errorf("starts on %s, want the clinic's today 2026-11-23", prog.StartsOn)
	}
}

// TestAcceptEvent: the platform's event is taken once per id; a stale or
// unusable one is refused and released, so a good redelivery is taken.
func TestAcceptEvent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.patient(t)
	now := b.clock.Now()
	ev := func(id string, signedAt time.Time, patientID string) PlatformEvent {
		return PlatformEvent{ID: id, Type: "programme.assigned", SignedAt: signedAt, Programme: &PlatformProgramme{
			PatientID: patientID, PractitionerID: b.pr.ID, Assignment: Assignment{ProgrammeID: "prg_" + id, Version: 1, Title: "Knee",
				Exercises: []pmsbridge.Exercise{{Name: "Straight leg raise", Sets: 3, Reps: 10}}}}}
	}
	if got, err := b.f.AcceptEvent(b.ctx, ev("e1", now, p.ID)); err != nil || got != AcceptedNew {
		t.Fatalf("first delivery: %v, %v", got, err)
	}
	if got, err := b.f.AcceptEvent(b.ctx, ev("e1", now.Add(-time.Hour), p.ID)); err != nil || got != AcceptedDuplicate {
		t.Errorf("repeat, even with an old signature: %v, %v; want a duplicate", got, err)
	}
	_, err := b.f.AcceptEvent(b.ctx, ev("e2", now.Add(-6*time.Minute), p.ID))
	wantRefusal(t, "stale", err, Unauthorized, "stale signature")
	_, err = b.f.AcceptEvent(b.ctx, ev("e3", now, "pat_nobody"))
	wantRefusal(t, "unknown patient", err, Invalid, "unknown patient")
	for _, id := range []string{"e2", "e3"} {
		if got, err := b.f.AcceptEvent(b.ctx, ev(id, now, p.ID)); err != nil || got != AcceptedNew {
			t.Errorf("good redelivery of refused %s: %v, %v", id, got, err)
		}
	}
	_, err = b.f.AcceptEvent(b.ctx, PlatformEvent{ID: strings.Repeat("x", 201)})
	wantRefusal(t, "a long id", err, Invalid, "event id")
}

// TestResend: an uploaded PDF is not sent again; a failed one is replayed
// from the ledger; one with no ledger entry is queued again.
func TestResend(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p, prog := b.assigned(t)
	taskID := jobs.UploadTaskID(prog.ID, prog.Version)
	if err := b.jobs.Delete(b.ctx, taskID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("no ledger entry yet: %v", err)
	}
	if err := b.st.RecordFailure(b.ctx, store.Failure{TaskID: taskID, Queue: jobs.QueuePDF, Type: jobs.TypeUploadPDF, Permanent: true,
		Cause: pmsbridge.CauseClinikoForbidden, ProgrammeID: prog.ID, Version: prog.Version, PractitionerID: b.pr.ID,
		Payload: mustJSON(t, uploadOf(prog, p))}); err != nil {
		t.Fatal(err)
	}
	if err := b.f.Resend(b.ctx, p, prog); err != nil {
		t.Fatal(err)
	}
	if f, err := b.st.GetFailure(b.ctx, taskID); err != nil || f.Permanent {
		t.Errorf("after the replay the entry is %+v, %v; want it kept, no longer permanent", f, err)
	}
	if err := b.st.ClearFailure(b.ctx, taskID); err != nil {
		t.Fatal(err)
	}
	if err := b.f.Resend(b.ctx, p, prog); err != nil {
		t.Errorf("without a ledger entry: %v", err)
	}
	if st, _, err := b.jobs.TaskState(b.ctx, jobs.QueuePDF, taskID); err != nil || st != jobs.StatePending {
		t.Errorf("upload task %q, %v; want pending", st, err)
	}
	if err := b.st.SetPDFState(b.ctx, prog.ID, prog.Version, store.PDFState{State: pmsbridge.PDFUploaded, AttachmentID: "a1"}); err != nil {
		t.Fatal(err)
	}
	wantRefusal(t, "uploaded", b.f.Resend(b.ctx, p, prog), Conflict, "already in the patient's Cliniko files")
	if _, err := b.f.Programme(b.ctx, p, prog.ID, 9); !errors.As(err, new(*Error)) {
		t.Errorf("a version the patient does not have: %v", err)
	}
}

// TestProgrammePDF: the download is the PDF of the version, under its file
// name.
func TestProgrammePDF(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p, prog := b.assigned(t)
	pdf, name, err := b.f.ProgrammePDF(b.ctx, p, prog)
	if err != nil || !strings.HasPrefix(string(pdf), "%PDF-") || name != jobs.PDFFilename(prog) {
		t.Errorf("ProgrammePDF: %d bytes starting %q, %q, %v", len(pdf), string(pdf[:min(5, len(pdf))]), name, err)
	}
}
