package jobs

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
)

// idFields are the only fields a task payload may carry: ids and numbers.
var idFields = []string{"practitioner_id", "subscription_id", "shard", "cliniko_patient_id", "patient_id", "programme_id", "version", "period", "message_id", "channel"}

var idValue = regexp.MustCompile(`^[A-Za-z0-9_-]{1,100}$`)

// TestPayloadsHoldIDsOnly enqueues every task type through the code that
// enqueues it in production and checks each payload: only id and number
// fields, and nothing of the patient (name, email, date of birth) or the
// practitioner's key.
func TestPayloadsHoldIDsOnly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	prog := b.programme(t, "", b.patient, b.pr, "Knee rehab")
	if _, err := b.jc.EnqueueImport(b.ctx, ImportPayload{PractitionerID: b.pr.ID, SubscriptionID: b.sub.ID, Shard: "au1", ClinikoPatientID: "1002"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.jc.EnqueueRefresh(b.ctx, RefreshPayload{PractitionerID: b.pr.ID, PatientID: b.patient.ID}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := b.jc.EnqueueUpload(b.ctx, uploadPayload(prog)); err != nil {
		t.Fatal(err)
	}
	if err := b.jc.RunSyncNow(b.ctx); err != nil {
		t.Fatal(err)
	}
	// The tick enqueues one sync per practitioner with a key.
	if err := b.run(t, TypeSyncTick, nil); err != nil {
		t.Fatal(err)
	}
	// The code messages: the automatic one (email) and a resend by SMS.
	codes := NewCodes(b.jc, CodesConfig{Email: true, SMS: true, Region: "au"})
	if _, err := codes.Assigned(b.ctx, prog); err != nil {
		t.Fatal(err)
	}
	if _, err := codes.SendAgain(b.ctx, prog.ID, pmsbridge.ChannelSMS, b.pr.ID); err != nil {
		t.Fatal(err)
	}

	secrets := []string{b.patient.FirstName, b.patient.LastName, b.patient.Email, b.patient.Mobile, zoeMobile, "400111222", "1985-03-14",
		sandbox.DemoAdminKey, strings.Split(sandbox.DemoAdminKey, "-")[0], b.pr.Email, b.pr.Name, prog.Title, prog.Code}
	seen := map[string]bool{}
	for queue := range Queues {
		tasks, err := b.jc.Inspector().ListPendingTasks(queue, asynq.PageSize(100))
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			seen[task.Type] = true
			for _, s := range secrets {
				if s != "" && strings.Contains(string(task.Payload), s) {
					t.Errorf("%s payload %s holds %q", task.Type, task.Payload, s)
				}
			}
			for k, v := range payloadMap(t, task.Payload) {
				if !slices.Contains(idFields, k) {
					t.Errorf("%s payload has field %q", task.Type, k)
				}
				switch v := v.(type) {
				case float64:
				case string:
					if !idValue.MatchString(v) {
						t.Errorf("%s payload field %s = %q is not an id", task.Type, k, v)
					}
				default:
					t.Errorf("%s payload field %s is a %T", task.Type, k, v)
				}
			}
		}
	}
	for _, typ := range []string{TypeImportPatient, TypeRefreshPatient, TypeUploadPDF, TypeSyncTick, TypeSyncPractitioner, TypeSendCode} {
		if !seen[typ] {
			t.Errorf("no %s task was enqueued", typ)
		}
	}
}
