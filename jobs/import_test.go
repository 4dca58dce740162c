package jobs

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/store"
)

// imported is what an import should make of a Cliniko patient.
type imported struct {
	FirstName, LastName, Email, Mobile, Gender string
	YearOfBirth                                int
	Status                                     pmsbridge.BirthYearStatus
	Source                                     pmsbridge.BirthYearSource
	Raw                                        string
	Owner, ClinikoID, Shard                    string
}

func importedOf(p store.Patient) imported {
	x := imported{FirstName: p.FirstName, LastName: p.LastName, Email: p.Email, Mobile: p.Mobile, Gender: p.Gender,
		YearOfBirth: p.YearOfBirth, Status: p.BirthYearStatus, Source: p.BirthYearSource, Raw: p.BirthYearRaw, Owner: p.OwnerID}
	if p.Link != nil {
		x.ClinikoID, x.Shard = p.Link.ClinikoPatientID, p.Link.Shard
	}
	return x
}

// TestImport imports the demo seed's patients through a real worker: names,
// email, mobile and gender are mapped, and each state of date_of_birth
// (a date, null, "", "0000-00-00") gives its birth-year state.
func TestImport(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startWorker(t, nil)
	tests := []struct {
		desc      string
		clinikoID string
		want      imported
	}{
		{"date of birth", "1002", imported{FirstName: "José", LastName: "Núñez", Email: "jose.nunez@patient.example", Mobile: "61400222333", Gender: "Male",
			YearOfBirth: 1978, Status: pmsbridge.BirthYearOK, Source: pmsbridge.BirthYearFromCliniko}},
		{"gender identity first, no email, home phone", "836447129235882002", imported{FirstName: "Γιώργος", LastName: "Παπαδόπουλος", Mobile: "61295554444", Gender: "Male",
			YearOfBirth: 1969, Status: pmsbridge.BirthYearOK, Source: pmsbridge.BirthYearFromCliniko}},
		{"gender identity", "836447129235882003", imported{FirstName: "Наталья", LastName: "Иванова", Email: "natalia@patient.example", Gender: "Woman",
			YearOfBirth: 1982, Status: pmsbridge.BirthYearOK, Source: pmsbridge.BirthYearFromCliniko}},
		{"null date of birth", "836447129235882005", imported{FirstName: "花子", LastName: "佐藤", Email: "hanako@patient.example", Mobile: "",
			Status: pmsbridge.BirthYearMissing, Source: pmsbridge.BirthYearFromCliniko}},
		{"empty date of birth", "836447129235882006", imported{FirstName: "민준", LastName: "김", Email: "minjun.kim@patient.example",
			Status: pmsbridge.BirthYearMissing, Source: pmsbridge.BirthYearFromCliniko}},
		{"0000-00-00", "836447129235882008", imported{FirstName: "Siobhán", LastName: "Ní Bhriain", Email: "siobhan@patient.example",
			Status: pmsbridge.BirthYearInvalid, Source: pmsbridge.BirthYearFromCliniko, Raw: "0000-00-00"}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			cp, _ := b.sb.Patient(tt.clinikoID)
			tt.want.Mobile = mobileOf(cp)
			tt.want.Gender = genderOf(cp)
			tt.want.Owner, tt.want.ClinikoID, tt.want.Shard = b.pr.ID, tt.clinikoID, "au1"
			id, err := b.jc.EnqueueImport(b.ctx, ImportPayload{PractitionerID: b.pr.ID, SubscriptionID: b.sub.ID, Shard: "au1", ClinikoPatientID: tt.clinikoID})
			if err != nil {
				t.Fatal(err)
			}
			info := b.waitState(t, QueueImport, id, StateDone)
			patientID, err := b.st.FindLink(b.ctx, b.sub.ID, "au1", tt.clinikoID)
			if err != nil {
				t.Fatal(err)
			}
			if string(info.Result) != patientID {
				t.Errorf("task result %q, want the patient id %q", info.Result, patientID)
			}
			p := b.getPatient(t, patientID)
			if diff := cmp.Diff(tt.want, importedOf(p)); diff != "" {
				t.Errorf("imported patient (-want +got):\n%s", diff)
			}
			if p.Link.LastSyncedAt.IsZero() || p.Link.ArchivedInCliniko {
				t.Errorf("link %+v", *p.Link)
			}
		})
	}
	// setup imported Zoë through the handler directly.
	want := imported{FirstName: "Zoë", LastName: "O'Brien", Email: "zoe.obrien@patient.example", Mobile: "61400111222", Gender: "Female",
		YearOfBirth: 1985, Status: pmsbridge.BirthYearOK, Source: pmsbridge.BirthYearFromCliniko, Owner: b.pr.ID, ClinikoID: sandbox.DemoPatientID, Shard: "au1"}
	if diff := cmp.Diff(want, importedOf(b.patient)); diff != "" {
		t.Errorf("Zoë (-want +got):\n%s", diff)
	}
}

// mobileOf and genderOf read the sandbox's record the way the contract
// says: a Mobile number first, else any number; gender identity, else sex.
func mobileOf(p sandbox.Patient) string {
	for _, n := range p.PhoneNumbers {
		if n.Type == "Mobile" {
			return n.Number
		}
	}
	if len(p.PhoneNumbers) > 0 {
		return p.PhoneNumbers[0].Number
	}
	return ""
}

func genderOf(p sandbox.Patient) string {
	switch {
	case p.GenderIdentity != "":
		return p.GenderIdentity
	case p.Sex != "":
		return p.Sex
	}
	return p.Gender
}

// TestImportPermanentFailures: 401, 404 and a missing key fail the import
// at once (archived, no retry) with their cause in the failure ledger.
func TestImportPermanentFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc      string
		clinikoID string
		arrange   func(t *testing.T, b *bundle) string // returns the practitioner id
		wantCause pmsbridge.Cause
		wantGets  int // get_patient requests by the failed import
	}{
		{"revoked key", "1002", func(t *testing.T, b *bundle) string {
			b.sb.RevokeKey(sandbox.DemoAdminKey)
			return b.pr.ID
		}, pmsbridge.CauseClinikoUnauthorized, 1},
		{"archived patient", sandbox.DemoArchivedPatientID, func(t *testing.T, b *bundle) string { return b.pr.ID },
			pmsbridge.CauseClinikoNotFound, 1},
		{"no key", "1002", func(t *testing.T, b *bundle) string {
			return b.practitioner(t, "nokey@clinic.example", "No Key", "").ID
		}, pmsbridge.CauseNoClinikoKey, 0},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			prID := tt.arrange(t, b)
			before := b.sb.RequestCount("get_patient")
			b.startWorker(t, nil)
			id, err := b.jc.EnqueueImport(b.ctx, ImportPayload{PractitionerID: prID, SubscriptionID: b.sub.ID, Shard: "au1", ClinikoPatientID: tt.clinikoID})
			if err != nil {
				t.Fatal(err)
			}
			info := b.waitState(t, QueueImport, id, StateFailed)
			if info.Retried != 0 {
				t.Errorf("Retried = %d, want 0 (permanent at once)", info.Retried)
			}
			f := b.failure(t, id)
			got := store.Failure{TaskID: f.TaskID, Queue: f.Queue, Type: f.Type, Permanent: f.Permanent, Cause: f.Cause,
				PractitionerID: f.PractitionerID, ClinikoPatientID: f.ClinikoPatientID, Attempts: f.Attempts}
			want := store.Failure{TaskID: id, Queue: QueueImport, Type: TypeImportPatient, Permanent: true, Cause: tt.wantCause,
				PractitionerID: prID, ClinikoPatientID: tt.clinikoID, Attempts: 1}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("ledger entry (-want +got):\n%s", diff)
			}
			if f.Reason == "" || f.FirstFailedAt.IsZero() || !f.LastFailedAt.Equal(f.FirstFailedAt) {
				t.Errorf("ledger entry reason %q, first %s, last %s", f.Reason, f.FirstFailedAt, f.LastFailedAt)
			}
			if n := b.sb.RequestCount("get_patient") - before; n != tt.wantGets {
				t.Errorf("get_patient requests = %d, want %d (no retries)", n, tt.wantGets)
			}
			if _, err := b.st.FindLink(b.ctx, b.sub.ID, "au1", tt.clinikoID); err == nil {
				t.Error("a link was made")
			}
		})
	}
}

// TestImportTransientFailure: Cliniko answering 503 past the client's GET
// retries fails the attempt; it is retried (the ledger entry is not
// permanent and counts the attempt); a second click runs the retry at once,
// and success clears the ledger entry.
func TestImportTransientFailure(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sb.FailNextOp("get_patient", 3, 503) // the call and its 2 GET retries
	b.startWorker(t, nil)
	p := ImportPayload{PractitionerID: b.pr.ID, SubscriptionID: b.sub.ID, Shard: "au1", ClinikoPatientID: "1002"}
	id, err := b.jc.EnqueueImport(b.ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	info := b.waitState(t, QueueImport, id, StateRetrying)
	if info.Retried != 1 {
		t.Errorf("Retried = %d, want 1", info.Retried)
	}
	f := b.failure(t, id)
	if f.Permanent || f.Cause != pmsbridge.CauseClinikoUnavailable || f.Attempts != 1 {
		t.Errorf("ledger entry %+v, want a retrying cliniko_unavailable failure after 1 attempt", f)
	}
	if _, err := b.jc.EnqueueImport(b.ctx, p); err != nil { // the click again
		t.Fatal(err)
	}
	b.waitState(t, QueueImport, id, StateDone)
	b.noFailure(t, id)
	if n := b.sb.RequestCount("get_patient"); n != 1+3+1 {
		t.Errorf("get_patient requests = %d, want 5 (setup, 3 failed, 1 good)", n)
	}
}

// TestEnqueueImportOnce: a repeat enqueue while the import is pending joins
// it; one after it failed replaces the archived task (whose id asynq keeps
// taken) and runs again.
func TestEnqueueImportOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	nokey := b.practitioner(t, "later@clinic.example", "Key Later", "")
	p := ImportPayload{PractitionerID: nokey.ID, SubscriptionID: b.sub.ID, Shard: "au1", ClinikoPatientID: "1002"}
	for range 3 {
		if _, err := b.jc.EnqueueImport(b.ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	pending, err := b.jc.Inspector().ListPendingTasks(QueueImport)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 {
		t.Fatalf("pending imports = %d, want 1", len(pending))
	}
	id := ImportTaskID(p.SubscriptionID, p.Shard, p.ClinikoPatientID)
	if added, err := b.jc.enqueueOnce(b.ctx, asynq.NewTask(TypeImportPatient, mustPayload(p)), QueueImport, id); err != nil || added {
		t.Errorf("enqueueOnce while pending = %v, %v; want joined (false, nil)", added, err)
	}
	b.startWorker(t, nil)
	b.waitState(t, QueueImport, id, StateFailed)
	if f := b.failure(t, id); f.Cause != pmsbridge.CauseNoClinikoKey {
		t.Errorf("cause %s, want no_cliniko_key", f.Cause)
	}
	b.setKey(t, nokey.ID, sandbox.DemoPractitionerKey)
	if _, err := b.jc.EnqueueImport(b.ctx, p); err != nil {
		t.Fatalf("enqueue after failure: %v", err)
	}
	b.waitState(t, QueueImport, id, StateDone)
	b.noFailure(t, id)
	pid, err := b.st.FindLink(b.ctx, b.sub.ID, "au1", "1002")
	if err != nil {
		t.Fatal(err)
	}
	if got := b.getPatient(t, pid).OwnerID; got != nokey.ID {
		t.Errorf("owner %s, want %s", got, nokey.ID)
	}
}
