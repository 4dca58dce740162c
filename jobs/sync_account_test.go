package jobs

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/store"
)

// listCall is one "patients changed since" request: whose key it was made
// with (the practitioner) and Cliniko's status.
type listCall struct {
	By     string
	Status int
}

// recordLists records every list_patients request from now on; the
// returned function gives those made so far, in order.
func (b *bundle) recordLists() func() []listCall {
	var mu sync.Mutex
	var calls []listCall
	b.mu.Lock()
	b.onCallBy = func(by string, c cliniko.Call) {
		if c.Op == "list_patients" {
			mu.Lock()
			calls = append(calls, listCall{by, c.Status})
			mu.Unlock()
		}
	}
	b.mu.Unlock()
	return func() []listCall {
		mu.Lock()
		defer mu.Unlock()
		out := slices.Clone(calls)
		calls = nil
		return out
	}
}

// runQueuedSyncs runs the tasks waiting in the sync queue through the
// handlers (no worker), removes them from the queue, and returns them.
func (b *bundle) runQueuedSyncs(t *testing.T) []*asynq.TaskInfo {
	t.Helper()
	tasks, err := b.jc.Inspector().ListPendingTasks(QueueSync, asynq.PageSize(100))
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range tasks {
		if err := b.h.Mux().ProcessTask(b.ctx, asynq.NewTask(ti.Type, ti.Payload)); err != nil {
			t.Fatalf("%s %s: %v", ti.Type, ti.ID, err)
		}
		if err := b.jc.Inspector().DeleteTask(QueueSync, ti.ID); err != nil {
			t.Fatal(err)
		}
	}
	return tasks
}

// queuedSyncIDs returns the ids of the tasks waiting in the sync queue,
// sorted.
func (b *bundle) queuedSyncIDs(t *testing.T) []string {
	t.Helper()
	tasks, err := b.jc.Inspector().ListPendingTasks(QueueSync, asynq.PageSize(100))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ti := range tasks {
		ids = append(ids, ti.ID)
	}
	slices.Sort(ids)
	return ids
}

// TestSyncOncePerAccountPerPeriod: a clinic of several practitioners with
// keys of its Cliniko account (and one without a key) is synced once per
// period: the tick queues one account sync, which makes one request with
// one key.
func TestSyncOncePerAccountPerPeriod(t *testing.T) {
	t.Parallel()
	var at atomic.Int64 // the handlers' clock, moved by the test
	at.Store(time.Now().Truncate(time.Minute).UnixNano())
	now := func() time.Time { return time.Unix(0, at.Load()).UTC() }
	b := setup(t, func(o *options) { o.deps = func(d *Deps) { d.Now = now } })
	b.practitioner(t, "priya@clinic.example", "Priya Raman", sandbox.DemoPractitionerKey)
	b.practitioner(t, "rosa@clinic.example", "Rosa Reception", sandbox.DemoReceptionistKey)
	b.practitioner(t, "sam@clinic.example", "Sam Scheduler", sandbox.DemoSchedulerKey)
	b.practitioner(t, "nokey@clinic.example", "No Key", "")
	lists := b.recordLists()
	for period := range 3 {
		if err := b.run(t, TypeSyncTick, nil); err != nil {
			t.Fatal(err)
		}
		if err := b.run(t, TypeSyncTick, nil); err != nil { // a second work process's tick
			t.Fatal(err)
		}
		start := now().Truncate(time.Second).Unix()
		want := []string{AccountSyncTaskID(b.sub.ID, "au1", start)}
		if diff := cmp.Diff(want, b.queuedSyncIDs(t)); diff != "" {
			t.Fatalf("period %d: queued syncs (-want +got):\n%s", period, diff)
		}
		b.runQueuedSyncs(t)
		if diff := cmp.Diff([]listCall{{b.pr.ID, 200}}, lists()); diff != "" {
			t.Errorf("period %d: Cliniko list requests (-want +got):\n%s", period, diff)
		}
		at.Add(int64(time.Second))
	}
}

// TestSyncKeyOrder: a preferred key first, then administrators', then the
// others, and keys refused before last; the order among equals is kept.
func TestSyncKeyOrder(t *testing.T) {
	t.Parallel()
	h := func(id, role string) store.KeyHolder {
		return store.KeyHolder{PractitionerID: id, User: store.ClinikoUser{Role: role}}
	}
	holders := []store.KeyHolder{h("p1", "practitioner"), h("p2", "Administrator"), h("p3", "receptionist"), h("p4", "administrator"), h("p5", "scheduler")}
	for _, tc := range []struct {
		desc      string
		preferred string
		refused   []string
		want      []string
	}{
		{"administrators first", "", nil, []string{"p2", "p4", "p1", "p3", "p5"}},
		{"a preferred key before all", "p5", nil, []string{"p5", "p2", "p4", "p1", "p3"}},
		{"refused keys last", "", []string{"p2", "p1"}, []string{"p4", "p3", "p5", "p1", "p2"}},
		{"a preferred key first even if refused before", "p2", []string{"p2"}, []string{"p2", "p4", "p1", "p3", "p5"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var got []string
			for _, k := range syncKeyOrder(holders, tc.preferred, func(id string) bool { return slices.Contains(tc.refused, id) }) {
				got = append(got, k.PractitionerID)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("order (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSyncAdminKeyFirst: of the account's keys the administrator's is
// used, whatever the order of the practitioners; without it, another.
func TestSyncAdminKeyFirst(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// Practitioners whose ids sort before and after the administrator's.
	var others []store.Practitioner
	for _, key := range []string{sandbox.DemoPractitionerKey, sandbox.DemoReceptionistKey, sandbox.DemoSchedulerKey} {
		others = append(others, b.practitioner(t, clinikoUsers[key].ID+"@clinic.example", clinikoUsers[key].Name, key))
	}
	lists := b.recordLists()
	p := AccountSyncPayload{SubscriptionID: b.sub.ID, Shard: "au1", Period: 1}
	if err := b.run(t, TypeSyncAccount, p); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]listCall{{b.pr.ID, 200}}, lists()); diff != "" {
		t.Errorf("with an administrator's key (-want +got):\n%s", diff)
	}
	if err := b.st.DeleteClinikoKey(b.ctx, b.pr.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.run(t, TypeSyncAccount, p); err != nil {
		t.Fatal(err)
	}
	first := slices.MinFunc(others, func(x, y store.Practitioner) int { return strings.Compare(x.ID, y.ID) })
	if diff := cmp.Diff([]listCall{{first.ID, 200}}, lists()); diff != "" {
		t.Errorf("without it (-want +got):\n%s", diff)
	}
}

// TestSyncFallsBackToNextKey: a key Cliniko refuses (401 revoked, 403 role)
// is followed, in the same run, by the next key of the account; the refused
// key gets a ledger entry in its practitioner's name with the cause, and is
// tried last from then on. When every key is refused the account's sync
// fails with one ledger entry. A practitioner who saves a working key gets
// their entry replayed (as the settings page does) and it clears.
func TestSyncFallsBackToNextKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	priya := b.practitioner(t, "priya@clinic.example", "Priya Raman", sandbox.DemoPractitionerKey)
	lists := b.recordLists()
	b.sb.EditPatient(sandbox.DemoPatientID, func(p *sandbox.Patient) { p.Email = "zoe@changed.example" })
	p := AccountSyncPayload{SubscriptionID: b.sub.ID, Shard: "au1", Period: 1}

	// The administrator's key is revoked: Priya's serves the sync.
	b.sb.RevokeKey(sandbox.DemoAdminKey)
	if err := b.run(t, TypeSyncAccount, p); err != nil {
		t.Fatalf("sync with a revoked first key: %v", err)
	}
	if diff := cmp.Diff([]listCall{{b.pr.ID, 401}, {priya.ID, 200}}, lists()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if got := b.getPatient(t, b.patient.ID).Email; got != "zoe@changed.example" {
		t.Errorf("patient email after the sync = %q", got)
	}
	f, err := b.st.GetFailure(b.ctx, KeyLedgerID(b.pr.ID))
	if err != nil {
		t.Fatalf("no ledger entry for the refused key: %v", err)
	}
	if !f.Permanent || f.Cause != pmsbridge.CauseClinikoUnauthorized || f.PractitionerID != b.pr.ID || f.Type != TypeSyncAccount {
		t.Errorf("refused key's entry = %+v", f)
	}
	if mine, err := b.st.ListFailures(b.ctx, store.FailureFilter{PractitionerID: b.pr.ID}); err != nil || len(mine) != 1 {
		t.Errorf("the administrator's failed jobs = %+v, %v; want the refused key", mine, err)
	}
	b.noFailure(t, accountLedgerID(b.sub.ID, "au1"))

	// Next period: the refused key is tried last, so no request is refused.
	if err := b.run(t, TypeSyncAccount, p); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]listCall{{priya.ID, 200}}, lists()); diff != "" {
		t.Errorf("next period's requests (-want +got):\n%s", diff)
	}

	// Priya's key is refused too (a role that may not list patients): no
	// key is left. Through a worker, so the ledger sees the failure.
	b.startWorker(t, nil)
	b.sb.FailNextOp("list_patients", 1, 403)
	id := AccountSyncTaskID(b.sub.ID, "au1", 2)
	if err := b.jc.enqueueAccountSync(b.ctx, AccountSyncPayload{SubscriptionID: b.sub.ID, Shard: "au1", Period: 2}); err != nil {
		t.Fatal(err)
	}
	b.waitState(t, QueueSync, id, StateFailed)
	if diff := cmp.Diff([]listCall{{priya.ID, 403}, {b.pr.ID, 401}}, lists()); diff != "" {
		t.Errorf("requests with every key refused (-want +got):\n%s", diff)
	}
	for id, cause := range map[string]pmsbridge.Cause{
		accountLedgerID(b.sub.ID, "au1"): pmsbridge.CauseClinikoForbidden,
		KeyLedgerID(priya.ID):            pmsbridge.CauseClinikoForbidden,
		KeyLedgerID(b.pr.ID):             pmsbridge.CauseClinikoUnauthorized,
	} {
		if f, err := b.st.GetFailure(b.ctx, id); err != nil || !f.Permanent || f.Cause != cause {
			t.Errorf("ledger entry %s = %+v, %v; want permanent %s", id, f, err, cause)
		}
	}
	if n, err := b.st.CountFailures(b.ctx); err != nil || n != 3 {
		t.Errorf("ledger size = %d, %v; want 3 (the account and its two keys)", n, err)
	}

	// The administrator creates a new key and saves it; their key-related
	// failures are replayed, as the settings page does.
	newKey := "MS0xZGVtb2FkbWluc2FuZGJveGtleTAwMDAwMDA5-au1"
	b.sb.Accounts()[0].AddKey(sandbox.DemoAdminUserID, newKey)
	if err := b.st.SetClinikoKey(b.ctx, b.pr.ID, newKey, clinikoUsers[sandbox.DemoAdminKey]); err != nil {
		t.Fatal(err)
	}
	n, err := b.jc.ReplayMatching(b.ctx, ReplayFilter{PractitionerID: b.pr.ID, Causes: []pmsbridge.Cause{pmsbridge.CauseClinikoUnauthorized, pmsbridge.CauseNoClinikoKey}})
	if err != nil || n != 1 {
		t.Fatalf("replayed %d, %v; want the administrator's key entry", n, err)
	}
	waitFor(t, 15*time.Second, "the administrator's and the account's entries to clear", func() bool {
		_, e1 := b.st.GetFailure(b.ctx, KeyLedgerID(b.pr.ID))
		_, e2 := b.st.GetFailure(b.ctx, accountLedgerID(b.sub.ID, "au1"))
		return e1 != nil && e2 != nil
	})
	if diff := cmp.Diff([]listCall{{b.pr.ID, 200}}, lists()); diff != "" {
		t.Errorf("the replay's requests (-want +got):\n%s", diff)
	}
	// Priya's entry stays (her key was not tried) until it is replayed.
	f, err = b.st.GetFailure(b.ctx, KeyLedgerID(priya.ID))
	if err != nil {
		t.Fatalf("Priya's entry: %v", err)
	}
	if err := b.jc.Replay(b.ctx, f); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the ledger to empty", func() bool {
		n, err := b.st.CountFailures(b.ctx)
		return err == nil && n == 0
	})
	if diff := cmp.Diff([]listCall{{priya.ID, 200}}, lists()); diff != "" {
		t.Errorf("Priya's replay's requests (-want +got):\n%s", diff)
	}
}

// TestSyncAccountsSeparately: two subscriptions on one Cliniko account,
// and one subscription on two shards, are three accounts: the tick queues a
// sync for each, each has its own watermark, and each updates only the
// patients linked in its subscription and shard.
func TestSyncAccountsSeparately(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// Subscription A (the bundle's): the administrator on au1, and a
	// practitioner whose key is for the uk2 clinic.
	olivia := b.practitioner(t, "olivia@clinic.example", "Olivia Bennett", sandbox.DemoUK2AdminKey)
	const aoife = "836447129235881201"
	if err := b.run(t, TypeImportPatient, ImportPayload{PractitionerID: olivia.ID, SubscriptionID: b.sub.ID, Shard: "uk2", ClinikoPatientID: aoife}); err != nil {
		t.Fatal(err)
	}
	aoifeID, err := b.st.FindLink(b.ctx, b.sub.ID, "uk2", aoife)
	if err != nil {
		t.Fatal(err)
	}
	// Subscription B: another clinic in pmsbridge on the same au1 account.
	subB, err := b.st.CreateSubscription(b.ctx, "Second Clinic")
	if err != nil {
		t.Fatal(err)
	}
	priya, err := b.st.CreatePractitioner(b.ctx, store.NewPractitioner{SubscriptionID: subB.ID, Email: "priya@second.example", Name: "Priya Raman", Password: "correct horse battery staple"})
	if err != nil {
		t.Fatal(err)
	}
	b.setKey(t, priya.ID, sandbox.DemoPractitionerKey)
	joseB := b.importDirect(t, priya, "1002")
	zoeB := b.importDirect(t, priya, sandbox.DemoPatientID)

	for _, id := range []string{sandbox.DemoPatientID, "1002", aoife} {
		b.sb.EditPatient(id, func(p *sandbox.Patient) { p.Email = "changed-" + id + "@example.com" })
	}
	lists := b.recordLists()
	if err := b.run(t, TypeSyncTick, nil); err != nil {
		t.Fatal(err)
	}
	tasks, err := b.jc.Inspector().ListPendingTasks(QueueSync, asynq.PageSize(100))
	if err != nil {
		t.Fatal(err)
	}
	var got []AccountSyncPayload
	for _, ti := range tasks {
		var p AccountSyncPayload
		if err := decode(asynq.NewTask(ti.Type, ti.Payload), &p); err != nil || ti.Type != TypeSyncAccount {
			t.Fatalf("queued %s %s: %v", ti.Type, ti.Payload, err)
		}
		p.Period = 0
		got = append(got, p)
	}
	want := []AccountSyncPayload{{SubscriptionID: b.sub.ID, Shard: "au1"}, {SubscriptionID: b.sub.ID, Shard: "uk2"}, {SubscriptionID: subB.ID, Shard: "au1"}}
	less := func(x, y AccountSyncPayload) int {
		return strings.Compare(x.SubscriptionID+x.Shard, y.SubscriptionID+y.Shard)
	}
	slices.SortFunc(got, less)
	slices.SortFunc(want, less)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("queued account syncs (-want +got):\n%s", diff)
	}
	if _, err := b.jc.Inspector().DeleteAllPendingTasks(QueueSync); err != nil {
		t.Fatal(err)
	}

	email := func(id string) string { return b.getPatient(t, id).Email }
	// Clinic B's sync updates B's patients only.
	if err := b.run(t, TypeSyncAccount, AccountSyncPayload{SubscriptionID: subB.ID, Shard: "au1", Period: 1}); err != nil {
		t.Fatal(err)
	}
	if email(joseB.ID) != "changed-1002@example.com" || email(zoeB.ID) != "changed-1001@example.com" {
		t.Errorf("B's patients after B's sync: %q, %q", email(joseB.ID), email(zoeB.ID))
	}
	if got := email(b.patient.ID); got == "changed-1001@example.com" {
		t.Error("A's Zoë was updated by B's sync")
	}
	if got := email(aoifeID); got == "changed-"+aoife+"@example.com" {
		t.Error("A's uk2 patient was updated by B's sync")
	}
	if _, ok, _ := b.st.SyncCursor(b.ctx, b.sub.ID, "au1"); ok {
		t.Error("A's au1 watermark was set by B's sync")
	}
	// A on au1, then A on uk2.
	if err := b.run(t, TypeSyncAccount, AccountSyncPayload{SubscriptionID: b.sub.ID, Shard: "au1", Period: 1}); err != nil {
		t.Fatal(err)
	}
	if got := email(b.patient.ID); got != "changed-1001@example.com" {
		t.Errorf("A's Zoë after A's au1 sync: %q", got)
	}
	if got := email(aoifeID); got == "changed-"+aoife+"@example.com" {
		t.Error("A's uk2 patient was updated by A's au1 sync")
	}
	if err := b.run(t, TypeSyncAccount, AccountSyncPayload{SubscriptionID: b.sub.ID, Shard: "uk2", Period: 1}); err != nil {
		t.Fatal(err)
	}
	if got := email(aoifeID); got != "changed-"+aoife+"@example.com" {
		t.Errorf("A's uk2 patient after A's uk2 sync: %q", got)
	}
	for _, acct := range want {
		if _, ok, err := b.st.SyncCursor(b.ctx, acct.SubscriptionID, acct.Shard); !ok || err != nil {
			t.Errorf("no watermark for %s/%s: %v", acct.SubscriptionID, acct.Shard, err)
		}
	}
	wantCalls := []listCall{{priya.ID, 200}, {b.pr.ID, 200}, {olivia.ID, 200}}
	if diff := cmp.Diff(wantCalls, lists()); diff != "" {
		t.Errorf("requests: one per account with its own key (-want +got):\n%s", diff)
	}
}

// TestSyncOldTaskType: a "sync:practitioner" task queued by an older
// version (during a rolling upgrade) becomes the account sync of that
// practitioner's key for the same period; the old tasks of one account's
// practitioners join one account sync; an old task whose practitioner has
// no key (or is gone) does nothing; and an old ledger entry replayed runs
// and clears.
func TestSyncOldTaskType(t *testing.T) {
	t.Parallel()
	b := setup(t)
	priya := b.practitioner(t, "priya@clinic.example", "Priya Raman", sandbox.DemoPractitionerKey)
	nokey := b.practitioner(t, "nokey@clinic.example", "No Key", "")
	for _, id := range []string{b.pr.ID, priya.ID, nokey.ID, "prac_gone"} {
		if err := b.run(t, TypeSyncPractitioner, SyncPayload{PractitionerID: id, Period: 42}); err != nil {
			t.Fatalf("old task of %s: %v", id, err)
		}
	}
	if diff := cmp.Diff([]string{AccountSyncTaskID(b.sub.ID, "au1", 42)}, b.queuedSyncIDs(t)); diff != "" {
		t.Fatalf("queued (-want +got):\n%s", diff)
	}
	if _, err := b.jc.Inspector().DeleteAllPendingTasks(QueueSync); err != nil {
		t.Fatal(err)
	}

	// Through a worker: an old task in the queue, and an old ledger entry
	// replayed, both sync the account and leave no entry.
	b.sb.EditPatient(sandbox.DemoPatientID, func(p *sandbox.Patient) { p.Email = "zoe@old-task.example" })
	lists := b.recordLists()
	b.startWorker(t, nil)
	if _, err := b.jc.enqueueOnce(b.ctx, newTask(TypeSyncPractitioner, SyncPayload{PractitionerID: priya.ID, Period: 43}), QueueSync,
		"sync:"+priya.ID+":43", asynq.MaxRetry(5), asynq.Timeout(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the account sync to run", func() bool { return b.getPatient(t, b.patient.ID).Email == "zoe@old-task.example" })
	if diff := cmp.Diff([]listCall{{b.pr.ID, 200}}, lists()); diff != "" {
		t.Errorf("the old task's requests: the account's, with the administrator's key (-want +got):\n%s", diff)
	}
	old := store.Failure{TaskID: "sync:" + b.pr.ID, Queue: QueueSync, Type: TypeSyncPractitioner, Permanent: true,
		Cause: pmsbridge.CauseClinikoUnauthorized, Reason: "x", PractitionerID: b.pr.ID, Attempts: 6,
		Payload: mustPayload(SyncPayload{PractitionerID: b.pr.ID, Period: 7})}
	if err := b.st.RecordFailure(b.ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := b.jc.Replay(b.ctx, old); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the old entry to clear", func() bool {
		n, err := b.st.CountFailures(b.ctx)
		return err == nil && n == 0
	})
	var calls []listCall
	waitFor(t, 15*time.Second, "the replay's account sync", func() bool {
		calls = append(calls, lists()...)
		return len(calls) > 0
	})
	if diff := cmp.Diff([]listCall{{b.pr.ID, 200}}, calls); diff != "" {
		t.Errorf("the replay's requests (-want +got):\n%s", diff)
	}
}
