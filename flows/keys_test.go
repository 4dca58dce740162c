package flows

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// TestReplayCauses: a working key fixes key failures; role failures only
// when its role may upload.
func TestReplayCauses(t *testing.T) {
	t.Parallel()
	keyCauses := []pmsbridge.Cause{pmsbridge.CauseClinikoUnauthorized, pmsbridge.CauseNoClinikoKey}
	for role, want := range map[string][]pmsbridge.Cause{
		sandbox.RoleAdministrator: append(keyCauses, pmsbridge.CauseClinikoForbidden),
		sandbox.RoleReceptionist:  append(keyCauses, pmsbridge.CauseClinikoForbidden),
		sandbox.RoleScheduler:     keyCauses,
	} {
		if d := cmp.Diff(want, ReplayCauses(role)); d != "" {
			t.Errorf("%s (-want +got):\n%s", role, d)
		}
	}
}

// TestSaveKey: what cannot be a key is refused without asking Cliniko; a
// key is checked with Cliniko before it is saved, refused in the cause
// table's words when it does not work, and a working one replays the
// practitioner's jobs that failed for want of it.
func TestSaveKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pr := b.practitioner(t, "nokey@clinic.example", "Dr Nokey", "")
	before := b.sb.RequestCount("get_user")
	for _, tc := range []struct{ desc, key, says string }{
		{"empty", "", "Paste your Cliniko API key"},
		{"too short", "abc123", "too short to be a Cliniko API key"},
		{"with a space", "MS0xbm90YWtleWF0 YWxsMDAwMDAwMDAwMDAw-au1", "no spaces"},
		{"a character a key never has", "MS0xbm90YWtleWF0YWxsMDAwMDAwMDAwMDAw-a.b", "characters a Cliniko API key never has"},
		{"a shard that is none", "MS0xbm90YWtleWF0YWxsMDAwMDAwMDAwMDAw-aus", cliniko.BadShardMessage},
	} {
		_, err := b.f.SaveKey(b.ctx, pr, tc.key)
		wantRefusal(t, tc.desc, err, Invalid, tc.says)
	}
	if n := b.sb.RequestCount("get_user"); n != before {
		t.Errorf("keys of the wrong shape reached Cliniko (%d requests)", n-before)
	}
	_, err := b.f.SaveKey(b.ctx, pr, "MS0xbm90YWtleWF0YWxsMDAwMDAwMDAwMDAwMDAw-au1")
	wantRefusal(t, "unknown to Cliniko", err, Invalid, pmsbridge.CauseClinikoUnauthorized.Info().Clinician.KeyCheck)
	if _, ok, _ := b.st.ClinikoUserOf(b.ctx, pr.ID); ok {
		t.Fatal("a refused key was saved")
	}
	taskID := jobs.ImportTaskID(b.sub.ID, "au1", sandbox.DemoPatientID)
	if err := b.st.RecordFailure(b.ctx, store.Failure{TaskID: taskID, Queue: jobs.QueueImport, Type: jobs.TypeImportPatient, Permanent: true,
		Cause: pmsbridge.CauseNoClinikoKey, PractitionerID: pr.ID, ClinikoPatientID: sandbox.DemoPatientID,
		Payload: mustJSON(t, jobs.ImportPayload{PractitionerID: pr.ID, SubscriptionID: b.sub.ID, Shard: "au1", ClinikoPatientID: sandbox.DemoPatientID})}); err != nil {
		t.Fatal(err)
	}
	saved, err := b.f.SaveKey(b.ctx, pr, sandbox.DemoPractitionerKey)
	if err != nil || saved.Replayed != 1 {
		t.Fatalf("SaveKey = %+v, %v; want 1 replayed", saved, err)
	}
	// The job's history says the replay came of the saved key, and whose.
	h, err := b.st.JobHistory(b.ctx, taskID)
	if err != nil || len(h) < 2 || h[1].Kind != store.EventReplayed || h[1].By == nil ||
		*h[1].By != (store.Actor{Via: store.ViaKeySaved, Who: "nokey@clinic.example"}) {
		t.Errorf("history after the key was saved: %+v, %v", h, err)
	}
	if cu, ok, err := b.st.ClinikoUserOf(b.ctx, pr.ID); err != nil || !ok || cu.Role != sandbox.RolePractitioner || cu.Shard != "au1" || cu.Account.Label() != "Demo Physio Clinic (Australia)" {
		t.Errorf("saved Cliniko user %+v, %v, %v", cu, ok, err)
	}
	if err := b.f.RemoveKey(b.ctx, pr); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.st.ClinikoUserOf(b.ctx, pr.ID); ok {
		t.Error("the key is still saved after RemoveKey")
	}
}

// TestKeyStatus: the settings page is told whose key it is and what is
// wrong with it: another person's, another Cliniko account than the
// clinic's patients', a clinic of another region's country, a role that
// may not upload.
func TestKeyStatus(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.patient(t) // the clinic's patients come from Demo Physio Clinic (au1)
	olivia := b.practitioner(t, "olivia@harbour.example", "Olivia Bennett", sandbox.DemoUK2AdminKey)
	sam := b.practitioner(t, "frontdesk@clinic.example", "Front Desk", sandbox.DemoSchedulerKey)
	for _, tc := range []struct {
		desc string
		pr   store.Practitioner
		want KeyStatus
	}{
		{"the clinic's own, the practitioner's", b.pr, KeyStatus{Saved: true, CanUpload: true, Match: store.AccountSame}},
		{"another Cliniko account, in the UK", olivia, KeyStatus{Saved: true, CanUpload: true, Match: store.AccountOther,
			Residency: &Region{Code: "uk", Name: "United Kingdom", URL: "https://uk.physitrack.test"}}},
		{"another person's Scheduler key", sam, KeyStatus{Saved: true, Match: store.AccountSame, NotYou: true}},
	} {
		got, err := b.f.KeyStatus(b.ctx, tc.pr, b.clinikoUser(t, tc.pr))
		if err != nil {
			t.Fatal(err)
		}
		if got.ClinicAccount.Label() != "Demo Physio Clinic (Australia)" || got.Here.Code != "au" {
			t.Errorf("%s: clinic account %q, here %q", tc.desc, got.ClinicAccount.Label(), got.Here.Code)
		}
		tc.want.User, tc.want.ClinicAccount, tc.want.Here = got.User, got.ClinicAccount, got.Here
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", tc.desc, d)
		}
	}
	if got, _ := b.f.KeyStatus(b.ctx, olivia, b.clinikoUser(t, olivia)); got.User.Account.Label() != "Harbour Street Physiotherapy (United Kingdom)" {
		t.Errorf("Olivia's key's account %q", got.User.Account.Label())
	}
}

// TestSaveKeyProbesLinkedPatient: when the clinic's Cliniko account was
// never recorded (patients linked before accounts were) a new key reads one
// linked patient: another account's key cannot (warned, nothing claimed),
// the clinic's own can (its account is claimed).
func TestSaveKeyProbesLinkedPatient(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.patient(t)
	if err := b.rdb.Del(b.ctx, "pmsb:sub:"+b.sub.ID+":cliniko").Err(); err != nil {
		t.Fatal(err)
	}
	other := b.sb.AddAccount("au1", "Other Clinic")
	_, otherKey := other.AddUser("Olga", "Other", "olga@other.example", sandbox.RoleAdministrator)
	olga := b.practitioner(t, "olga@other.example", "Olga Other", "")
	reads := b.sb.RequestCount("get_patient")
	if _, err := b.f.SaveKey(b.ctx, olga, otherKey); err != nil {
		t.Fatal(err)
	}
	if n := b.sb.RequestCount("get_patient") - reads; n != 1 {
		t.Errorf("the probe read %d patients, want 1", n)
	}
	if st, _ := b.f.KeyStatus(b.ctx, olga, b.clinikoUser(t, olga)); st.Match != store.AccountOther || st.User.ClinicProbe != store.ProbeNotFound {
		t.Errorf("another account's key: %+v", st)
	}
	if _, ok, _ := b.st.SubscriptionClinikoAccount(b.ctx, b.sub.ID, "au1"); ok {
		t.Error("another account's key claimed the clinic's account")
	}
	priya := b.practitioner(t, "priya@clinic.example", "Priya Raman", sandbox.DemoPractitionerKey)
	if st, _ := b.f.KeyStatus(b.ctx, priya, b.clinikoUser(t, priya)); st.Match != store.AccountSame {
		t.Errorf("the clinic's key: %+v", st)
	}
	if a, ok, _ := b.st.SubscriptionClinikoAccount(b.ctx, b.sub.ID, "au1"); !ok || a.Name() != "Demo Physio Clinic" {
		t.Errorf("the clinic's key did not claim the account: %+v, %v", a, ok)
	}
	if st, _ := b.f.KeyStatus(b.ctx, olga, b.clinikoUser(t, olga)); st.Match != store.AccountOther {
		t.Errorf("another account's key, once the clinic's is known: %+v", st)
	}
}

// TestOwnersKeyReplaysColleaguesUpload: a colleague with a Scheduler key
// assigns; the owner has no key; the upload fails for the role. When the
// owner saves a key that may upload, that upload runs again by itself and
// goes through with the owner's key.
func TestOwnersKeyReplaysColleaguesUpload(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.patient(t)
	if err := b.f.RemoveKey(b.ctx, b.pr); err != nil {
		t.Fatal(err)
	}
	sam := b.practitioner(t, "sam@clinic.example", "Sam Scheduler", sandbox.DemoSchedulerKey)
	if err := b.st.Share(b.ctx, p.ID, sam.ID); err != nil {
		t.Fatal(err)
	}
	o, err := b.f.PDFOutlook(b.ctx, sam, p)
	if err != nil || o.Cause != pmsbridge.CauseClinikoForbidden || o.PractitionerID != sam.ID || o.Role != sandbox.RoleScheduler {
		t.Fatalf("outlook before assigning: %+v, %v", o, err)
	}
	b.startWorker(t)
	prog, err := b.f.Assign(b.ctx, sam, p, Assignment{Title: "Ankle", CatalogueIDs: []string{"ex_calf_raise"}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the upload to fail", func() bool {
		st, _ := b.st.PDFStateOf(b.ctx, prog.ID, 1)
		return st.State == pmsbridge.PDFFailed
	})
	if st, _ := b.st.PDFStateOf(b.ctx, prog.ID, 1); st.Cause != pmsbridge.CauseClinikoForbidden {
		t.Fatalf("failed with %s, want cliniko_forbidden", st.Cause)
	}
	// Sam saving another Scheduler key fixes nothing: nothing replays.
	if saved, err := b.f.SaveKey(b.ctx, sam, sandbox.DemoSchedulerKey); err != nil || saved.Replayed != 0 {
		t.Errorf("a Scheduler key saved again: %+v, %v; want nothing replayed", saved, err)
	}
	saved, err := b.f.SaveKey(b.ctx, b.pr, sandbox.DemoAdminKey)
	if err != nil || saved.Replayed != 1 {
		t.Fatalf("the owner's key: %+v, %v; want 1 replayed", saved, err)
	}
	waitFor(t, "the upload", func() bool {
		st, _ := b.st.PDFStateOf(b.ctx, prog.ID, 1)
		return st.State == pmsbridge.PDFUploaded
	})
	if as := b.sb.Attachments(sandbox.DemoPatientID); len(as) != 1 || as[0].UserID != sandbox.DemoAdminUserID {
		t.Errorf("attachments %+v, want one by the owner's Cliniko user", as)
	}
}
