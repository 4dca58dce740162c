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

// TestSaveKey: a key is checked with Cliniko before it is saved, refused in
// the cause table's words when it does not work, and a working one replays
// the practitioner's jobs that failed for want of it.
func TestSaveKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pr := b.practitioner(t, "nokey@clinic.example", "Dr Nokey", "")
	for _, tc := range []struct{ desc, key, says string }{
		{"empty", "", "Paste your Cliniko API key"},
		{"with a space", "abc def-au1", "does not look like a Cliniko API key"},
		{"a shard that is none", "abcdef-a.b", cliniko.BadShardMessage},
		{"unknown to Cliniko", "MS0xbm90YWtleWF0YWxsMDAwMDAwMDAwMDAwMDAw-au1", pmsbridge.CauseClinikoUnauthorized.Info().Clinician.KeyCheck},
	} {
		_, err := b.f.SaveKey(b.ctx, pr, tc.key)
		wantRefusal(t, tc.desc, err, Invalid, tc.says)
		if _, ok, _ := b.st.ClinikoUserOf(b.ctx, pr.ID); ok {
			t.Fatalf("%s: a key was saved", tc.desc)
		}
	}
	taskID := jobs.ImportTaskID(b.sub.ID, "au1", sandbox.DemoPatientID)
	if err := b.st.RecordFailure(b.ctx, store.Failure{TaskID: taskID, Queue: jobs.QueueImport, Type: jobs.TypeImportPatient, Permanent: true,
		Cause: pmsbridge.CauseNoClinikoKey, PractitionerID: pr.ID, ClinikoPatientID: sandbox.DemoPatientID,
		Payload: mustJSON(t, jobs.ImportPayload{PractitionerID: pr.ID, SubscriptionID: b.sub.ID, Shard: "au1", ClinikoPatientID: sandbox.DemoPatientID})}); err != nil {
		t.Fatal(err)
	}
	n, err := b.f.SaveKey(b.ctx, pr, sandbox.DemoPractitionerKey)
	if err != nil || n != 1 {
		t.Fatalf("SaveKey = %d, %v; want 1 replayed", n, err)
	}
	// The job's history says the replay came of the saved key, and whose.
	h, err := b.st.JobHistory(b.ctx, taskID)
	if err != nil || len(h) < 2 || h[1].Kind != store.EventReplayed || h[1].By == nil ||
		*h[1].By != (store.Actor{Via: store.ViaKeySaved, Who: "nokey@clinic.example"}) {
		t.Errorf("history after the key was saved: %+v, %v", h, err)
	}
	if cu, ok, err := b.st.ClinikoUserOf(b.ctx, pr.ID); err != nil || !ok || cu.Role != sandbox.RolePractitioner || cu.Shard != "au1" {
		t.Errorf("saved Cliniko user %+v, %v, %v", cu, ok, err)
	}
	if err := b.f.RemoveKey(b.ctx, pr); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.st.ClinikoUserOf(b.ctx, pr.ID); ok {
		t.Error("the key is still saved after RemoveKey")
	}
}
