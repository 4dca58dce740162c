package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/store"
	"github.com/redis/go-redis/v9"
)

// TestLedgerAndReplay: permanent failures are in the ledger with
// everything support needs; replays select them by cause, type and
// practitioner; a replay after the key is fixed succeeds and clears the
// entry, even when asynq has already dropped its archived copy.
func TestLedgerAndReplay(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := b.startWorker(t, nil)
	_ = w
	sched := b.practitioner(t, "sam@clinic.example", "Sam Scheduler", sandbox.DemoSchedulerKey)
	nokey := b.practitioner(t, "nokey@clinic.example", "No Key", "")
	// The owner has no key: the scheduler's is the only one to try.
	if err := b.st.DeleteClinikoKey(b.ctx, b.pr.ID); err != nil {
		t.Fatal(err)
	}

	prog := b.programme(t, "", b.patient, sched, "Ankle")
	start := time.Now().UTC()
	uploadID, err := b.jc.EnqueueUpload(b.ctx, uploadPayload(prog))
	if err != nil {
		t.Fatal(err)
	}
	imp := ImportPayload{PractitionerID: nokey.ID, SubscriptionID: b.sub.ID, Shard: "au1", ClinikoPatientID: "1002"}
	importID, err := b.jc.EnqueueImport(b.ctx, imp)
	if err != nil {
		t.Fatal(err)
	}
	b.waitState(t, QueuePDF, uploadID, StateFailed)
	b.waitState(t, QueueImport, importID, StateFailed)

	got := b.failure(t, uploadID)
	want := store.Failure{TaskID: uploadID, Queue: QueuePDF, Type: TypeUploadPDF, Permanent: true,
		Cause: pmsbridge.CauseClinikoForbidden, PractitionerID: sched.ID, PatientID: b.patient.ID,
		ProgrammeID: prog.ID, Version: 1, Attempts: 1,
		KeyUser: &store.KeyUser{PractitionerID: sched.ID, ClinikoUserID: "4", Name: "Sam Scheduler", Role: sandbox.RoleScheduler}}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(store.Failure{}, "Reason", "FirstFailedAt", "LastFailedAt", "Payload")); diff != "" {
		t.Errorf("upload's ledger entry (-want +got):\n%s", diff)
	}
	if got.Reason == "" || got.FirstFailedAt.Before(start.Add(-time.Second)) || got.LastFailedAt.Before(got.FirstFailedAt) || len(got.Payload) == 0 {
		t.Errorf("reason %q, first %s, last %s, payload %s", got.Reason, got.FirstFailedAt, got.LastFailedAt, got.Payload)
	}

	if imp := b.failure(t, importID); imp.SubscriptionID != b.sub.ID || imp.KeyUser != nil || imp.Cause != pmsbridge.CauseNoClinikoKey {
		t.Errorf("import's ledger entry: subscription %q, key user %+v, cause %s; want the payload's subscription and no key user",
			imp.SubscriptionID, imp.KeyUser, imp.Cause)
	}

	ids := func(fs []store.Failure) []string {
		var out []string
		for _, f := range fs {
			out = append(out, f.TaskID)
		}
		return out
	}
	for _, tt := range []struct {
		desc string
		f    ReplayFilter
		want []string
	}{
		{"by cause", ReplayFilter{Causes: []pmsbridge.Cause{pmsbridge.CauseClinikoForbidden}}, []string{uploadID}},
		{"by causes", ReplayFilter{Causes: []pmsbridge.Cause{pmsbridge.CauseClinikoUnauthorized, pmsbridge.CauseNoClinikoKey}}, []string{importID}},
		{"by type", ReplayFilter{Type: TypeImportPatient}, []string{importID}},
		{"by practitioner", ReplayFilter{PractitionerID: sched.ID}, []string{uploadID}},
		{"by practitioner and another cause", ReplayFilter{PractitionerID: sched.ID, Causes: []pmsbridge.Cause{pmsbridge.CauseNoClinikoKey}}, nil},
		{"by ids", ReplayFilter{IDs: []string{importID}}, []string{importID}},
	} {
		m, err := b.jc.Matching(b.ctx, tt.f)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, ids(m)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.desc, diff)
		}
	}

	// The scheduler gets a practitioner's key: replay their key failures.
	b.setKey(t, sched.ID, sandbox.DemoPractitionerKey)
	asCLI := store.ActingAs(b.ctx, store.Actor{Via: store.ViaCLI, Who: "ann@desk"})
	n, err := b.jc.ReplayMatching(asCLI, ReplayFilter{PractitionerID: sched.ID,
		Causes: []pmsbridge.Cause{pmsbridge.CauseClinikoUnauthorized, pmsbridge.CauseClinikoForbidden, pmsbridge.CauseNoClinikoKey}})
	if err != nil || n != 1 {
		t.Fatalf("ReplayMatching = %d, %v; want 1", n, err)
	}
	b.waitDone(t, QueuePDF, uploadID)
	b.checkOneAttachment(t, prog, sandbox.DemoPatientID)
	waitFor(t, 5*time.Second, "the upload's ledger entry to clear", func() bool {
		_, err := b.st.GetFailure(b.ctx, uploadID)
		return err != nil
	})
	// Its history: the failure with the Scheduler's key, the CLI's replay,
	// the success; and it is recently recovered.
	h, err := b.st.JobHistory(b.ctx, uploadID)
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, e := range h {
		steps = append(steps, string(e.Kind))
	}
	if diff := cmp.Diff([]string{"failed", "replayed", "succeeded"}, steps); diff != "" {
		t.Fatalf("upload's history (-want +got):\n%s", diff)
	}
	if h[0].KeyUser == nil || h[0].KeyUser.Role != sandbox.RoleScheduler || h[0].Cause != pmsbridge.CauseClinikoForbidden || h[1].By == nil || h[1].By.String() != "CLI (ann@desk)" {
		t.Errorf("history: failure %+v, replay %+v", h[0], h[1])
	}
	if rec, err := b.st.ListRecovered(b.ctx, store.FailureFilter{SubscriptionID: b.sub.ID}); err != nil || len(rec) != 1 || rec[0].TaskID != uploadID {
		t.Errorf("recently recovered = %+v, %v; want the upload", rec, err)
	}

	// asynq dropped the archived import (its cap or its 90 days): the
	// ledger's payload re-creates it.
	if err := b.jc.Inspector().DeleteTask(QueueImport, importID); err != nil {
		t.Fatal(err)
	}
	b.setKey(t, nokey.ID, sandbox.DemoAdminKey)
	if err := b.jc.Replay(b.ctx, b.failure(t, importID)); err != nil {
		t.Fatal(err)
	}
	b.waitState(t, QueueImport, importID, StateDone)
	if _, err := b.st.FindLink(b.ctx, b.sub.ID, "au1", "1002"); err != nil {
		t.Errorf("replayed import made no link: %v", err)
	}
	waitFor(t, 5*time.Second, "the import's ledger entry to clear", func() bool {
		_, err := b.st.GetFailure(b.ctx, importID)
		return err != nil
	})
	if n, err := b.st.CountFailures(b.ctx); err != nil || n != 0 {
		t.Errorf("ledger size %d, %v; want 0", n, err)
	}
}

// TestReplayRace replays failed imports whose cause is already fixed from
// a support tool with a slow link to Redis (every command takes 20 ms),
// while a worker close to Redis runs them: each replayed job succeeds
// before the replay has finished, and its ledger entry must end up cleared
// — the replay must not write it back after the success.
func TestReplayRace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	nokey := b.practitioner(t, "nokey@clinic.example", "No Key", "")
	b.startWorker(t, nil)
	clinikoIDs := []string{"1002", "836447129235882001", "836447129235882002", "836447129235882003", "836447129235882004",
		"836447129235882005", "836447129235882006", "836447129235882007", "836447129235882008", "836447129235882009"}
	for _, cid := range clinikoIDs {
		if _, err := b.jc.EnqueueImport(b.ctx, ImportPayload{PractitionerID: nokey.ID, SubscriptionID: b.sub.ID, Shard: "au1", ClinikoPatientID: cid}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "10 failed imports", func() bool {
		fs, _ := b.st.ListFailures(b.ctx, store.FailureFilter{PermanentOnly: true})
		return len(fs) == len(clinikoIDs)
	})
	// The owner imports them all meanwhile: a replay succeeds at once.
	for _, cid := range clinikoIDs {
		b.importDirect(t, b.pr, cid)
	}
	b.setKey(t, nokey.ID, sandbox.DemoPractitionerKey)
	slow := redis.NewClient(b.rdb.Options())
	t.Cleanup(func() { slow.Close() })
	slow.AddHook(latencyHook(20 * time.Millisecond))
	slowStore := b.newStore(t, slow)
	n, err := NewClient(slow, slowStore).ReplayMatching(b.ctx, ReplayFilter{Causes: []pmsbridge.Cause{pmsbridge.CauseNoClinikoKey}})
	if err != nil || n != len(clinikoIDs) {
		t.Fatalf("ReplayMatching = %d, %v", n, err)
	}
	for _, cid := range clinikoIDs {
		b.waitState(t, QueueImport, ImportTaskID(b.sub.ID, "au1", cid), StateDone)
	}
	time.Sleep(100 * time.Millisecond) // let any late ledger write land
	if fs, _ := b.st.ListFailures(b.ctx, store.FailureFilter{MinAttempts: -1}); len(fs) != 0 {
		t.Errorf("%d ledger entries left after every replay succeeded: %+v", len(fs), fs[0])
	}
}

// latencyHook delays every Redis command (and pipeline) by d.
type latencyHook time.Duration

func (latencyHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h latencyHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		time.Sleep(time.Duration(h))
		return next(ctx, cmd)
	}
}

func (h latencyHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		time.Sleep(time.Duration(h))
		return next(ctx, cmds)
	}
}

// TestLedgerBeyondArchiveCap: asynq keeps at most 10,000 archived tasks
// per queue; the ledger keeps every failure.
func TestLedgerBeyondArchiveCap(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 12000
	base := time.Now().UTC().Add(-time.Hour)
	var wg sync.WaitGroup
	const workers = 16
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				typ, cause := TypeUploadPDF, pmsbridge.CauseClinikoForbidden
				if i%3 == 0 {
					typ, cause = TypeImportPatient, pmsbridge.CauseClinikoUnauthorized
				}
				err := b.st.RecordFailure(b.ctx, store.Failure{TaskID: fmt.Sprintf("task-%05d", i), Queue: QueuePDF, Type: typ,
					Permanent: true, Cause: cause, Reason: "x", PractitionerID: b.pr.ID, Attempts: 1,
					LastFailedAt: base.Add(time.Duration(i) * time.Millisecond)})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got, err := b.st.CountFailures(b.ctx); err != nil || got != n {
		t.Errorf("CountFailures = %d, %v; want %d", got, err, n)
	}
	all, err := b.st.ListFailures(b.ctx, store.FailureFilter{PermanentOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != n || all[0].TaskID != fmt.Sprintf("task-%05d", n-1) || all[n-1].TaskID != "task-00000" {
		t.Errorf("ListFailures: %d entries, want %d newest first", len(all), n)
	}
	imports, err := b.jc.Matching(b.ctx, ReplayFilter{Type: TypeImportPatient})
	if err != nil {
		t.Fatal(err)
	}
	if len(imports) != n/3 {
		t.Errorf("import failures = %d, want %d", len(imports), n/3)
	}
}

// TestStats counts tasks by queue, type and state, and those done today.
func TestStats(t *testing.T) {
	t.Parallel()
	b := setup(t)
	nokey := b.practitioner(t, "nokey@clinic.example", "No Key", "")
	w := b.startWorker(t, nil)
	okID, err := b.jc.EnqueueImport(b.ctx, ImportPayload{PractitionerID: b.pr.ID, SubscriptionID: b.sub.ID, Shard: "au1", ClinikoPatientID: "1002"})
	if err != nil {
		t.Fatal(err)
	}
	badID, err := b.jc.EnqueueImport(b.ctx, ImportPayload{PractitionerID: nokey.ID, SubscriptionID: b.sub.ID, Shard: "au1", ClinikoPatientID: "836447129235882001"})
	if err != nil {
		t.Fatal(err)
	}
	prog := b.programme(t, "", b.patient, b.pr, "Neck")
	upID, err := b.jc.EnqueueUpload(b.ctx, uploadPayload(prog))
	if err != nil {
		t.Fatal(err)
	}
	b.waitState(t, QueueImport, okID, StateDone)
	b.waitState(t, QueueImport, badID, StateFailed)
	b.waitDone(t, QueuePDF, upID)
	w.Shutdown()
	prog2 := b.programme(t, "", b.patient, b.pr, "Back")
	if _, err := b.jc.EnqueueUpload(b.ctx, uploadPayload(prog2)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.jc.EnqueueRefresh(b.ctx, RefreshPayload{PractitionerID: b.pr.ID, PatientID: b.patient.ID}, true); err != nil {
		t.Fatal(err)
	}
	stats, err := b.jc.Stats(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Stat{
		{Queue: QueueImport, Type: TypeImportPatient, Failed: 1, DoneToday: 1, Retrying: 0},
		{Queue: QueueImport, Type: TypeRefreshPatient, Pending: 1},
		{Queue: QueuePDF, Type: TypeUploadPDF, Pending: 1, DoneToday: 1},
	}
	if diff := cmp.Diff(want, stats); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
}

// TestSyncFailuresOneEntryPerAccount: the periodic sync enqueues a task
// with a new id each period, so an account whose only key Cliniko refuses
// fails once per period, for as long as nobody fixes the key. The ledger
// keeps one entry for that account's sync (not one per period, which would
// grow without bound and be replayed by the dozen when the key is fixed),
// and the next sync that succeeds clears it.
func TestSyncFailuresOneEntryPerAccount(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startWorker(t, nil)
	enqueue := func(period int64) string {
		t.Helper()
		p := AccountSyncPayload{SubscriptionID: b.sub.ID, Shard: "au1", Period: period}
		id := AccountSyncTaskID(b.sub.ID, "au1", period)
		if _, err := b.jc.enqueueOnce(b.ctx, newTask(TypeSyncAccount, p), QueueSync, id, asynq.MaxRetry(5)); err != nil {
			t.Fatal(err)
		}
		return id
	}
	for period := range int64(3) {
		b.sb.FailNextOp("list_patients", 1, 401)
		b.waitState(t, QueueSync, enqueue(period), StateFailed)
	}
	list, err := b.st.ListFailures(b.ctx, store.FailureFilter{Type: TypeSyncAccount})
	if err != nil {
		t.Fatal(err)
	}
	var account []store.Failure
	for _, f := range list {
		if f.TaskID == accountLedgerID(b.sub.ID, "au1") {
			account = append(account, f)
		} else if f.TaskID != KeyLedgerID(b.pr.ID) {
			t.Errorf("unexpected ledger entry %s", f.TaskID)
		}
	}
	if len(account) != 1 || account[0].Cause != pmsbridge.CauseClinikoUnauthorized {
		t.Fatalf("ledger holds %d account sync failures (%+v), want 1", len(account), list)
	}
	// Replaying it runs a sync now; success clears the entry (and the key's).
	if err := b.jc.Replay(b.ctx, account[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the replayed sync to clear the ledger", func() bool {
		n, err := b.st.CountFailures(b.ctx)
		return err == nil && n == 0
	})
	// A failure, then a later period's sync that succeeds: no entry left.
	b.sb.FailNextOp("list_patients", 1, 401)
	b.waitState(t, QueueSync, enqueue(10), StateFailed)
	b.waitDone(t, QueueSync, enqueue(11))
	if n, err := b.st.CountFailures(b.ctx); err != nil || n != 0 {
		t.Errorf("ledger size after a successful sync = %d, %v; want 0", n, err)
	}
}

// TestReplayKeepsTaskOptions: a task re-created from the ledger (asynq has
// dropped its copy) gets the options of its type, exactly as one enqueued
// afresh does: one table serves both.
func TestReplayKeepsTaskOptions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct {
		typ     string
		payload any
	}{
		{TypeImportPatient, ImportPayload{PractitionerID: b.pr.ID, SubscriptionID: b.sub.ID, Shard: "au1", ClinikoPatientID: "1002"}},
		{TypeRefreshPatient, RefreshPayload{PractitionerID: b.pr.ID, PatientID: b.patient.ID}},
		{TypeUploadPDF, UploadPayload{ProgrammeID: "prg_replayed", Version: 1, PatientID: b.patient.ID, PractitionerID: b.pr.ID}},
		{TypeSyncAccount, AccountSyncPayload{SubscriptionID: b.sub.ID, Shard: "au1", Period: 1}},
		{TypeSyncPractitioner, SyncPayload{PractitionerID: b.pr.ID, Period: 1}},
		{TypeSendCode, SendCodePayload{MessageID: "msg_replayed", ProgrammeID: "prg_replayed", Version: 1, PatientID: b.patient.ID, Channel: pmsbridge.ChannelEmail}},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			id := "replayed:" + tc.typ
			spec := taskSpecs[tc.typ]
			// The ledger names another queue: where asynq's copy was.
			f := store.Failure{TaskID: id, Queue: "elsewhere", Type: tc.typ, Permanent: true,
				Cause: pmsbridge.CauseClinikoUnauthorized, Reason: "x", Attempts: 1, Payload: mustPayload(tc.payload)}
			if err := b.st.RecordFailure(b.ctx, f); err != nil {
				t.Fatal(err)
			}
			if err := b.jc.Replay(b.ctx, f); err != nil {
				t.Fatal(err)
			}
			info, err := b.jc.Inspector().GetTaskInfo(spec.queue, id)
			if err != nil {
				t.Fatalf("replayed task not in queue %s: %v", spec.queue, err)
			}
			got := taskSpec{queue: info.Queue, maxRetry: info.MaxRetry, timeout: info.Timeout, retention: info.Retention}
			if got != spec {
				t.Errorf("replayed task's options %+v, want %+v", got, spec)
			}
		})
	}
}

// TestLedgerNamesTheKeyOfTheAttempt: an upload whose assigning practitioner
// has no key falls back to the patient owner's key; when that fails, the
// ledger names the owner's Cliniko user (a Scheduler), not the assigner.
func TestLedgerNamesTheKeyOfTheAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startWorker(t, nil)
	sched := b.practitioner(t, "sam@clinic.example", "Sam Scheduler", sandbox.DemoSchedulerKey)
	nokey := b.practitioner(t, "nokey@clinic.example", "No Key", "")
	patient := b.importDirect(t, sched, "836447129235882001") // owned by the Scheduler
	prog := b.programme(t, "", patient, nokey, "Hip")
	id, err := b.jc.EnqueueUpload(b.ctx, uploadPayload(prog))
	if err != nil {
		t.Fatal(err)
	}
	b.waitState(t, QueuePDF, id, StateFailed)
	f := b.failure(t, id)
	want := &store.KeyUser{PractitionerID: sched.ID, ClinikoUserID: "4", Name: "Sam Scheduler", Role: sandbox.RoleScheduler}
	if f.PractitionerID != nokey.ID || f.Cause != pmsbridge.CauseClinikoForbidden {
		t.Errorf("entry: practitioner %s, cause %s; want the assigner and cliniko_forbidden", f.PractitionerID, f.Cause)
	}
	if diff := cmp.Diff(want, f.KeyUser); diff != "" {
		t.Errorf("key user (-want +got):\n%s", diff)
	}
	if strings.Contains(string(mustJSONForTest(t, f)), sandbox.DemoSchedulerKey) {
		t.Errorf("the ledger entry holds the key")
	}
}

func mustJSONForTest(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReplayOfUnreadableMessageChangesNothing: a message job whose payload
// names no message cannot be replayed, and the refusal leaves its ledger
// entry and history as they were.
func TestReplayOfUnreadableMessageChangesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	f := store.Failure{TaskID: "code:unreadable", Queue: QueueMessage, Type: TypeSendCode, Permanent: true,
		Cause: pmsbridge.CauseDeliveryRejected, Reason: "x", Attempts: 3, Payload: []byte(`{"channel":"email"}`)}
	if err := b.st.RecordFailure(b.ctx, f); err != nil {
		t.Fatal(err)
	}
	before, err := b.st.GetFailure(b.ctx, f.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.jc.Replay(b.ctx, before); !errors.Is(err, ErrNotReplayable) {
		t.Fatalf("Replay = %v, want ErrNotReplayable", err)
	}
	after, err := b.st.GetFailure(b.ctx, f.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	if !after.Permanent || after.Attempts != 3 || after.Replayed != nil {
		t.Errorf("entry after a refused replay: permanent %v, attempts %d, replayed %+v; want as before", after.Permanent, after.Attempts, after.Replayed)
	}
	if hist, err := b.st.JobHistory(b.ctx, f.TaskID); err != nil || len(hist) != 1 {
		t.Errorf("history after a refused replay: %+v, %v; want only the failure", hist, err)
	}
}
