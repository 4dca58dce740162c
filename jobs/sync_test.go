package jobs

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/store"
)

func ptr[T any](v T) *T { return &v }

// addChanged adds n patients to the demo account, changed one second apart
// from t0 on (so each page of 100 ends at a distinct second).
func (b *bundle) addChanged(n int, t0 time.Time) []sandbox.Patient {
	acct := b.sb.Accounts()[0]
	out := make([]sandbox.Patient, n)
	for i := range out {
		at := t0.Add(time.Duration(i) * time.Second)
		out[i] = acct.AddPatient(sandbox.Patient{FirstName: fmt.Sprintf("Sync%03d", i), LastName: "Patient",
			Email: fmt.Sprintf("sync%03d@patient.example", i), DateOfBirth: ptr("1970-01-01"), CreatedAt: at, UpdatedAt: at})
	}
	return out
}

// syncedOf is what the sync keeps of a patient.
type syncedOf struct {
	FirstName, Email  string
	Year, ClinikoYear int
	Status            pmsbridge.BirthYearStatus
	Source            pmsbridge.BirthYearSource
}

func synced(p store.Patient) syncedOf {
	return syncedOf{p.FirstName, p.Email, p.YearOfBirth, p.ClinikoYear, p.BirthYearStatus, p.BirthYearSource}
}

// TestSync pulls 250 changed patients (3 pages) of which 3 are linked: the
// linked ones are updated, a year set by hand is kept (a differing Cliniko
// year is a mismatch), the others are ignored. The watermark advances per
// page, so a failure on page 2 resumes there on the next run.
func TestSync(t *testing.T) {
	t.Parallel()
	b := setup(t)
	t0 := time.Now().UTC().Truncate(time.Second).Add(-2 * time.Hour)
	cps := b.addChanged(250, t0)
	linked := map[int]store.Patient{}
	for _, i := range []int{5, 150, 240} {
		linked[i] = b.importDirect(t, b.pr, cps[i].ID)
	}
	// A year set by hand for patient 150.
	if _, err := b.st.UpdatePatient(b.ctx, linked[150].ID, func(p *store.Patient) error { p.SetManualYear(1950); return nil }); err != nil {
		t.Fatal(err)
	}
	// Changes in Cliniko, keeping each patient's place in the change order.
	acct := b.sb.Accounts()[0]
	for i, dob := range map[int]string{5: "1981-02-03", 150: "1971-04-05", 240: "1991-06-07"} {
		p := cps[i]
		p.FirstName, p.Email, p.DateOfBirth = p.FirstName+"-new", "new-"+p.Email, ptr(dob)
		acct.AddPatient(p)
	}
	before, err := b.st.LinkedPatientsOf(b.ctx, b.sub.ID, "au1")
	if err != nil {
		t.Fatal(err)
	}

	// Run 1: page 1 is read, then Cliniko fails (past the GET retries).
	var once sync.Once
	b.setOnCall(func(c cliniko.Call) {
		if c.Op == "list_patients" && c.Err == nil {
			once.Do(func() { b.sb.FailNextOp("list_patients", 3, 503) })
		}
	})
	p := SyncPayload{PractitionerID: b.pr.ID, Period: 1}
	err = b.run(t, TypeSyncPractitioner, p)
	if pmsbridge.CauseOf(err) != pmsbridge.CauseClinikoUnavailable {
		t.Fatalf("run 1: %v, want cliniko_unavailable", err)
	}
	b.setOnCall(nil)
	if got, want := b.cursor(t), t0.Add(99*time.Second-time.Second); !got.Equal(want) {
		t.Errorf("watermark after page 1 = %s, want %s (page 1's newest change - 1s)", got, want)
	}
	if got := synced(b.getPatient(t, linked[5].ID)); got.FirstName != "Sync005-new" || got.Year != 1981 {
		t.Errorf("patient 5 after run 1: %+v, want updated", got)
	}
	if got := b.getPatient(t, linked[150].ID).FirstName; got != "Sync150" {
		t.Errorf("patient 150 after run 1: %q, want unchanged", got)
	}
	if n := b.sb.RequestCount("list_patients"); n != 1+3 {
		t.Errorf("list requests in run 1 = %d, want 4", n)
	}

	// Run 2 resumes after page 1: patients 99..249, 2 pages.
	if err := b.run(t, TypeSyncPractitioner, p); err != nil {
		t.Fatalf("run 2: %v", err)
	}
	if n := b.sb.RequestCount("list_patients") - 4; n != 2 {
		t.Errorf("list requests in run 2 = %d, want 2 (page 1 not read again)", n)
	}
	want := map[int]syncedOf{
		5:   {"Sync005-new", "new-sync005@patient.example", 1981, 0, pmsbridge.BirthYearOK, pmsbridge.BirthYearFromCliniko},
		150: {"Sync150-new", "new-sync150@patient.example", 1950, 1971, pmsbridge.BirthYearMismatch, pmsbridge.BirthYearManual},
		240: {"Sync240-new", "new-sync240@patient.example", 1991, 0, pmsbridge.BirthYearOK, pmsbridge.BirthYearFromCliniko},
	}
	for i, w := range want {
		got := b.getPatient(t, linked[i].ID)
		if diff := cmp.Diff(w, synced(got)); diff != "" {
			t.Errorf("patient %d (-want +got):\n%s", i, diff)
		}
		if !got.Link.LastSyncedAt.After(linked[i].Link.LastSyncedAt) {
			t.Errorf("patient %d: last synced %s, not after the import", i, got.Link.LastSyncedAt)
		}
	}
	after, err := b.st.LinkedPatientsOf(b.ctx, b.sub.ID, "au1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("links changed: unlinked patients were imported (-before +after):\n%s", diff)
	}
	if got, want := b.cursor(t), t0.Add(249*time.Second-time.Second); !got.Equal(want) {
		t.Errorf("watermark = %s, want %s", got, want)
	}
}

// TestSyncWhileCliniko changes: Cliniko's pages are offsets into the list
// sorted by updated_at. A patient of page 1 changed while the sync reads
// moves to the end of that list, and every later patient moves one place
// back; the patient that was first on page 2 must still be synced. Pages
// whose patients all changed in one second are read through links.next
// (asking again from that second could not move on): the sync must get
// through them. (A change during the read of such a page can still shift
// it; that needs a bulk change in Cliniko and a change while it is read.)
func TestSyncWhileClinikoChanges(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		desc   string
		gap    time.Duration // between two patients' changes
		change bool          // change a patient of page 1 after reading it
	}{
		{"a change while reading", time.Second, true},
		{"all changes in one second", 0, false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			b := setup(t)
			t0 := time.Now().UTC().Truncate(time.Second).Add(-2 * time.Hour)
			acct := b.sb.Accounts()[0]
			cps := make([]sandbox.Patient, 250)
			for i := range cps {
				at := t0.Add(time.Duration(i) * tc.gap)
				cps[i] = acct.AddPatient(sandbox.Patient{FirstName: fmt.Sprintf("Sync%03d", i), LastName: "Patient",
					DateOfBirth: ptr("1970-01-01"), CreatedAt: at, UpdatedAt: at})
			}
			linked := b.importDirect(t, b.pr, cps[100].ID)
			changed := cps[100]
			changed.FirstName = "Sync100-new"
			acct.AddPatient(changed) // same place in the change order
			if err := b.st.SetSyncCursor(b.ctx, b.sub.ID, syncCursorScope("au1", b.pr.ID), t0.Add(-time.Second)); err != nil {
				t.Fatal(err)
			}
			var once sync.Once
			b.setOnCall(func(c cliniko.Call) {
				if c.Op == "list_patients" && c.Err == nil && tc.change {
					once.Do(func() {
						p := cps[10]
						p.UpdatedAt = time.Now()
						acct.AddPatient(p) // changed in Cliniko between page 1 and page 2
					})
				}
			})
			if err := b.run(t, TypeSyncPractitioner, SyncPayload{PractitionerID: b.pr.ID, Period: 1}); err != nil {
				t.Fatal(err)
			}
			if got := b.getPatient(t, linked.ID).FirstName; got != "Sync100-new" {
				t.Errorf("patient 100 after the sync: %q, want Sync100-new", got)
			}
			if n := b.sb.RequestCount("list_patients"); n > 5 {
				t.Errorf("list requests = %d, want at most 5", n)
			}
		})
	}
}

// cursor returns the bundle practitioner's sync watermark.
func (b *bundle) cursor(t *testing.T) time.Time {
	t.Helper()
	at, ok, err := b.st.SyncCursor(b.ctx, b.sub.ID, syncCursorScope("au1", b.pr.ID))
	if err != nil || !ok {
		t.Fatalf("sync cursor: %v, %v", ok, err)
	}
	return at
}

// TestSyncRespectsRateLimit runs a sync of 3 pages through a worker with a
// budget of 2 requests per sandbox minute (the sandbox's clock runs 60
// times faster than real time: 2 per real second, the client's 120 per
// minute): Cliniko never answers 429.
func TestSyncRespectsRateLimit(t *testing.T) {
	t.Parallel()
	const speed = 60
	realStart := time.Now()
	clock := func() time.Time { return realStart.Add(speed * time.Since(realStart)) }
	b := setup(t, func(o *options) {
		o.sandbox = append(o.sandbox, sandbox.WithClock(clock), sandbox.WithRateLimit(2))
		o.cliniko.RequestsPerMinute = 2 * speed
	})
	t0 := time.Now().UTC().Truncate(time.Second).Add(-2 * time.Hour)
	cps := b.addChanged(250, t0)
	b.startWorker(t, nil)
	if err := b.jc.RunSyncNow(b.ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the sync to reach the last page", func() bool {
		at, ok, err := b.st.SyncCursor(b.ctx, b.sub.ID, syncCursorScope("au1", b.pr.ID))
		return err == nil && ok && at.Equal(cps[249].UpdatedAt.Add(-time.Second))
	})
	if n := b.sb.RateLimited(); n != 0 {
		t.Errorf("Cliniko answered %d 429s, want none", n)
	}
	if n := b.sb.RequestCount("list_patients"); n != 3 {
		t.Errorf("list requests = %d, want 3", n)
	}
}

// TestSyncOncePerPeriod runs two work processes, each with its scheduler
// enqueuing a tick every second: the practitioner is synced once per
// period between them.
func TestSyncOncePerPeriod(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var mu sync.Mutex
	var ticks int
	var periods []int64
	mux := b.h.Mux()
	counting := asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		err := mux.ProcessTask(ctx, task)
		mu.Lock()
		defer mu.Unlock()
		switch task.Type() {
		case TypeSyncTick:
			ticks++
		case TypeSyncPractitioner:
			var p SyncPayload
			if derr := decode(task, &p); derr != nil || err != nil {
				t.Errorf("sync run: %v %v", derr, err)
			}
			periods = append(periods, p.Period)
		}
		return err
	})
	b.startWorker(t, counting, time.Second)
	b.startWorker(t, counting, time.Second)
	waitFor(t, 10*time.Second, "3 sync runs", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(periods) >= 3
	})
	mu.Lock()
	defer mu.Unlock()
	sorted := slices.Clone(periods)
	slices.Sort(sorted)
	if len(slices.Compact(sorted)) != len(periods) {
		t.Errorf("periods synced %v: a period ran more than once", periods)
	}
	if ticks <= len(periods) {
		t.Errorf("%d ticks for %d runs: want more ticks than runs (two schedulers)", ticks, len(periods))
	}
	if n := b.sb.RequestCount("list_patients"); n < len(periods) || n > len(periods)+1 {
		t.Errorf("list requests = %d for %d runs", n, len(periods))
	}
}

// TestRefresh: a click refreshes a linked patient from Cliniko (debounced);
// a patient archived in Cliniko keeps our record and its link is marked
// archived, without a failure.
func TestRefresh(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startWorker(t, nil)
	b.sb.EditPatient(sandbox.DemoPatientID, func(p *sandbox.Patient) { p.Email = "zoe@new.example" })
	p := RefreshPayload{PractitionerID: b.pr.ID, PatientID: b.patient.ID}
	if ok, err := b.jc.EnqueueRefresh(b.ctx, p, false); err != nil || !ok {
		t.Fatalf("EnqueueRefresh = %v, %v", ok, err)
	}
	if ok, err := b.jc.EnqueueRefresh(b.ctx, p, false); err != nil || ok {
		t.Errorf("second EnqueueRefresh = %v, %v; want debounced", ok, err)
	}
	b.waitDone(t, QueueImport, "refresh:"+b.patient.ID)
	if got := b.getPatient(t, b.patient.ID); got.Email != "zoe@new.example" || got.Link.ArchivedInCliniko {
		t.Errorf("after the refresh: email %q, archived %v", got.Email, got.Link.ArchivedInCliniko)
	}

	b.sb.ArchivePatient(sandbox.DemoPatientID)
	if ok, err := b.jc.EnqueueRefresh(b.ctx, p, true); err != nil || !ok {
		t.Fatalf("forced EnqueueRefresh = %v, %v", ok, err)
	}
	waitFor(t, 10*time.Second, "the link to be marked archived", func() bool { return b.getPatient(t, b.patient.ID).Link.ArchivedInCliniko })
	b.waitDone(t, QueueImport, "refresh:"+b.patient.ID)
	got := b.getPatient(t, b.patient.ID)
	if got.FirstName != "Zoë" || got.Link.ClinikoPatientID != sandbox.DemoPatientID {
		t.Errorf("patient after archiving: %+v", got)
	}
	b.noFailure(t, "refresh:"+b.patient.ID)
}
