package flows

import (
	"slices"
	"testing"

	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// TestRefreshSaysWhatHappened: the refresh is waited for and says what
// changed; when Cliniko no longer shows the patient, it says so.
func TestRefreshSaysWhatHappened(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.patient(t)
	b.startWorker(t)
	refresh := func() Refreshed {
		t.Helper()
		type result struct {
			r   Refreshed
			err error
		}
		res, done := make(chan result, 1), make(chan struct{})
		go func() {
			defer close(done)
			r, err := b.f.Refresh(b.ctx, b.pr, true, p)
			res <- result{r, err}
		}()
		// The flow looks at the task, then waits on the clock: move the
		// clock on only once the worker has done the refresh, so the answer
		// does not depend on how fast the machine is.
		if b.clock.BlockUntilWaiting(t, done) {
			waitFor(t, "the refresh", func() bool {
				st, _, _ := b.jobs.TaskState(b.ctx, jobs.QueueImport, jobs.RefreshTaskID(p.ID))
				return st == jobs.StateNone
			})
			b.clock.Advance(refreshPoll)
		}
		r := <-res
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.r
	}
	if r := refresh(); !r.Done || len(r.Changed) != 0 || r.Archived {
		t.Errorf("nothing changed in Cliniko: %+v", r)
	}
	b.sb.EditPatient(sandbox.DemoPatientID, func(cp *sandbox.Patient) { cp.Email = "zoe@new.example"; cp.LastName = "O'Brien-Smith" })
	if r := refresh(); !r.Done || !slices.Equal(r.Changed, []string{"name", "email address"}) {
		t.Errorf("name and email changed in Cliniko: %+v", r)
	}
	p, _ = b.st.GetPatient(b.ctx, p.ID)
	b.sb.ArchivePatient(sandbox.DemoPatientID)
	if r := refresh(); !r.Done || !r.Archived {
		t.Errorf("archived in Cliniko: %+v", r)
	}
}

// TestPatientViewRowsAndUnlock: a programme is one row with its current
// version and the earlier ones; its code's lock-out shows, and the unlock
// clears it and is audited.
func TestPatientViewRowsAndUnlock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p, v1 := b.assigned(t)
	if _, err := b.f.Assign(b.ctx, b.pr, p, Assignment{ProgrammeID: v1.ID, Title: "Knee, week 2", CatalogueIDs: []string{CurrentExercise(0)}}); err != nil {
		t.Fatal(err)
	}
	other, err := b.f.Assign(b.ctx, b.pr, p, Assignment{Title: "Back", CatalogueIDs: []string{"ex_bird_dog"}})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		b.st.OpenProgramme(b.ctx, v1.Code, 1900, "203.0.113.5") //nolint:errcheck // wrong years, to lock the code
	}
	v, err := b.f.PatientView(b.ctx, b.pr, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Programmes) != 2 {
		t.Fatalf("%d rows, want 2", len(v.Programmes))
	}
	knee := v.Programmes[0]
	if knee.Current.ID == other.ID {
		knee = v.Programmes[1]
	}
	if knee.Current.Version != 2 || len(knee.Earlier) != 1 || knee.Earlier[0].Version != 1 || !knee.Lock.Locked() {
		t.Errorf("the knee row: current v%d, %d earlier, lock %+v; want v2, v1 earlier, locked", knee.Current.Version, len(knee.Earlier), knee.Lock)
	}
	if err := b.f.UnlockProgramme(b.ctx, b.pr, p, knee.Current.Programme); err != nil {
		t.Fatal(err)
	}
	if lock, _ := b.st.CodeLock(b.ctx, v1.Code); lock.Locked() {
		t.Errorf("still locked after the unlock: %+v", lock)
	}
	audit, err := b.st.AuditOf(b.ctx, p.ID, 20)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(audit, func(e store.AuditEntry) bool {
		return e.Op == "programme.unlocked" && e.PractitionerID == b.pr.ID && e.Detail == v1.ID
	}) {
		t.Errorf("the unlock is not in the patient's audit log: %+v", audit)
	}
	if _, _, err := b.st.OpenProgramme(b.ctx, v1.Code, 1985, "198.51.100.2"); err != nil {
		t.Errorf("the patient after the unlock: %v", err)
	}
}
