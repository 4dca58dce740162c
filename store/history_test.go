package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/store"
)

// failure is a ledger entry of a practitioner's upload.
func uploadFailure(id string, pr store.Practitioner, cause pmsbridge.Cause, attempt int, permanent bool) store.Failure {
	return store.Failure{TaskID: id, Queue: "pdf", Type: "programme:upload_pdf", Permanent: permanent, Cause: cause,
		Reason: "seeded " + string(cause), PractitionerID: pr.ID, Attempts: attempt,
		KeyUser: &store.KeyUser{PractitionerID: pr.ID, ClinikoUserID: "4", Name: "Sam Scheduler", Role: "Scheduler"}}
}

// kinds lists a history's event kinds with their counts ("failed×3").
func kinds(h []store.JobEvent) []string {
	out := []string{}
	for _, e := range h {
		s := string(e.Kind)
		if e.Count > 1 {
			s += fmt.Sprintf("×%d", e.Count)
		}
		out = append(out, s)
	}
	return out
}

func history(t *testing.T, b *bundle, id string) []store.JobEvent {
	t.Helper()
	h, err := b.store.JobHistory(b.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestJobHistory follows one job through retries, a permanent failure, a
// replay by the CLI and a success: every step is in its history, oldest
// first, with repeated attempts merged; the success clears the ledger
// entry and lists the job as recently recovered.
func TestJobHistory(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Demo Physio Clinic")
	sam := b.practitioner(t, sub.ID, "sam@clinic.example")
	const id = "pdf:prg_x:v1"
	start := b.clock.Now()

	for attempt := 1; attempt <= 3; attempt++ {
		must(t, b.store.RecordFailure(b.ctx, uploadFailure(id, sam, pmsbridge.CauseClinikoUnavailable, attempt, false)))
		b.clock.Advance(time.Minute)
	}
	must(t, b.store.RecordFailure(b.ctx, uploadFailure(id, sam, pmsbridge.CauseClinikoForbidden, 4, true)))
	h := history(t, b, id)
	if diff := cmp.Diff([]string{"failed×3", "failed"}, kinds(h)); diff != "" {
		t.Fatalf("history after 4 attempts (-want +got):\n%s", diff)
	}
	if e := h[0]; e.Attempt != 1 || e.LastAttempt != 3 || !e.At.Equal(start) || !e.LastAt.Equal(start.Add(2*time.Minute)) || e.Permanent || e.Cause != pmsbridge.CauseClinikoUnavailable {
		t.Errorf("merged retries = %+v", e)
	}
	if e := h[1]; !e.Permanent || e.Cause != pmsbridge.CauseClinikoForbidden || e.KeyUser == nil || e.KeyUser.Name != "Sam Scheduler" || e.KeyUser.Role != "Scheduler" {
		t.Errorf("permanent failure = %+v", e)
	}

	f, err := b.store.GetFailure(b.ctx, id)
	must(t, err)
	ctx := store.ActingAs(b.ctx, store.Actor{Via: store.ViaCLI, Who: "ann@desk"})
	replayed, err := b.store.MarkReplayed(ctx, f)
	must(t, err)
	if replayed.Permanent || replayed.Attempts != 0 || replayed.Replayed == nil || replayed.Replayed.By != (store.Actor{Via: store.ViaCLI, Who: "ann@desk"}) {
		t.Errorf("replayed entry = %+v", replayed)
	}
	// A failed attempt after the replay keeps the replay on the entry.
	b.clock.Advance(time.Minute)
	must(t, b.store.RecordFailure(b.ctx, uploadFailure(id, sam, pmsbridge.CauseClinikoUnavailable, 1, false)))
	if f, _ := b.store.GetFailure(b.ctx, id); f.Replayed == nil || !f.FirstFailedAt.Equal(start) {
		t.Errorf("entry after a retry lost the replay or its first failure: %+v", f)
	}
	b.clock.Advance(time.Minute)
	must(t, b.store.ClearFailure(b.ctx, id))
	if _, err := b.store.GetFailure(b.ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ledger entry after success: %v", err)
	}
	h = history(t, b, id)
	if diff := cmp.Diff([]string{"failed×3", "failed", "replayed", "failed", "succeeded"}, kinds(h)); diff != "" {
		t.Fatalf("whole history (-want +got):\n%s", diff)
	}
	if by := h[2].By; by == nil || by.String() != "CLI (ann@desk)" {
		t.Errorf("replay by %v", by)
	}
	rec, err := b.store.ListRecovered(b.ctx, store.FailureFilter{})
	must(t, err)
	if len(rec) != 1 || rec[0].TaskID != id || rec[0].Cause != pmsbridge.CauseClinikoUnavailable || !rec[0].RecoveredAt.Equal(b.clock.Now()) || rec[0].Replayed == nil {
		t.Fatalf("recovered = %+v", rec)
	}
	if ttl := b.rdb.PTTL(b.ctx, "pmsb:history:"+id).Val(); ttl < 29*24*time.Hour || ttl > 30*24*time.Hour {
		t.Errorf("history TTL %s, want 30 days", ttl)
	}

	// A second success (a redelivered task) adds nothing.
	must(t, b.store.ClearFailure(b.ctx, id))
	if n := len(history(t, b, id)); n != 5 {
		t.Errorf("a success without an entry changed the history: %d events", n)
	}
	// A job that never failed has no history.
	must(t, b.store.ClearFailure(b.ctx, "import:never"))
	if h := history(t, b, "import:never"); len(h) != 0 {
		t.Errorf("history of a job that never failed: %v", kinds(h))
	}
}

// TestRecoveredList: only jobs that succeeded after a replay are listed,
// for a day; a job that fails again leaves the list; filters apply.
func TestRecoveredList(t *testing.T) {
	t.Parallel()
	b := setup(t)
	demo, other := b.subscription(t, "Demo Physio Clinic"), b.subscription(t, "Other Clinic")
	ann, olga := b.practitioner(t, demo.ID, "ann@demo.example"), b.practitioner(t, other.ID, "olga@other.example")
	recover := func(id string, pr store.Practitioner, replay bool) {
		t.Helper()
		must(t, b.store.RecordFailure(b.ctx, uploadFailure(id, pr, pmsbridge.CauseClinikoForbidden, 1, true)))
		if replay {
			f, err := b.store.GetFailure(b.ctx, id)
			must(t, err)
			_, err = b.store.MarkReplayed(store.ActingAs(b.ctx, store.Actor{Via: store.ViaAdminPage}), f)
			must(t, err)
		}
		must(t, b.store.ClearFailure(b.ctx, id))
	}
	recover("pdf:a:v1", ann, true)
	recover("pdf:b:v1", ann, false) // succeeded on a retry of its own
	b.clock.Advance(time.Hour)
	recover("pdf:c:v1", olga, true)
	ids := func(f store.FailureFilter) []string {
		t.Helper()
		rec, err := b.store.ListRecovered(b.ctx, f)
		must(t, err)
		out := []string{}
		for _, r := range rec {
			out = append(out, r.TaskID)
		}
		return out
	}
	for _, tc := range []struct {
		desc string
		f    store.FailureFilter
		want []string
	}{
		{"all, newest first", store.FailureFilter{}, []string{"pdf:c:v1", "pdf:a:v1"}},
		{"one clinic", store.FailureFilter{SubscriptionID: demo.ID}, []string{"pdf:a:v1"}},
		{"one practitioner", store.FailureFilter{PractitionerID: olga.ID}, []string{"pdf:c:v1"}},
		{"another cause", store.FailureFilter{Cause: pmsbridge.CauseClinikoNotFound}, []string{}},
		{"since", store.FailureFilter{Since: b.clock.Now().Add(-time.Minute)}, []string{"pdf:c:v1"}},
	} {
		if diff := cmp.Diff(tc.want, ids(tc.f)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.desc, diff)
		}
	}
	// c fails again: it is a failure, not recovered.
	must(t, b.store.RecordFailure(b.ctx, uploadFailure("pdf:c:v1", olga, pmsbridge.CauseClinikoForbidden, 1, true)))
	if diff := cmp.Diff([]string{"pdf:a:v1"}, ids(store.FailureFilter{})); diff != "" {
		t.Errorf("after c failed again (-want +got):\n%s", diff)
	}
	// A day after its recovery, a is no longer listed.
	b.clock.Advance(23*time.Hour + time.Second)
	if diff := cmp.Diff([]string{}, ids(store.FailureFilter{})); diff != "" {
		t.Errorf("a day later (-want +got):\n%s", diff)
	}
}

// TestJobHistoryBounded: a job's history keeps its newest JobHistoryCap
// events, and a job that fails the same way every period keeps one event.
func TestJobHistoryBounded(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *store.Options) { o.JobHistoryCap = 4 })
	sub := b.subscription(t, "Clinic")
	pr := b.practitioner(t, sub.ID, "a@example.com")
	causes := []pmsbridge.Cause{pmsbridge.CauseClinikoUnavailable, pmsbridge.CauseClinikoInvalid}
	for i := range 10 {
		must(t, b.store.RecordFailure(b.ctx, uploadFailure("pdf:x:v1", pr, causes[i%2], i+1, false)))
	}
	h := history(t, b, "pdf:x:v1")
	if len(h) != 4 || h[0].Attempt != 7 || h[3].Attempt != 10 {
		t.Errorf("capped history: %d events from attempt %d, want 4 from attempt 7", len(h), h[0].Attempt)
	}
	for range 500 {
		must(t, b.store.RecordFailure(b.ctx, uploadFailure("sync:"+pr.ID, pr, pmsbridge.CauseClinikoUnauthorized, 1, true)))
	}
	if h := history(t, b, "sync:"+pr.ID); len(h) != 1 || h[0].Count != 500 {
		t.Errorf("500 identical failures: %v", kinds(h))
	}
}

// TestDeleteFailureHistory: a deletion says who gave up; deleting what is
// not in the ledger leaves no trace.
func TestDeleteFailureHistory(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	pr := b.practitioner(t, sub.ID, "a@example.com")
	must(t, b.store.RecordFailure(b.ctx, uploadFailure("pdf:d:v1", pr, pmsbridge.CauseClinikoNotFound, 1, true)))
	ctx := store.ActingAs(b.ctx, store.Actor{Via: store.ViaAPI, Who: "cleanup\x1b[31m script\n"})
	must(t, b.store.DeleteFailure(ctx, "pdf:d:v1"))
	must(t, b.store.DeleteFailure(ctx, "pdf:d:v1"))
	h := history(t, b, "pdf:d:v1")
	if diff := cmp.Diff([]string{"failed", "deleted"}, kinds(h)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if by := h[1].By; by == nil || by.Via != store.ViaAPI || by.Who != "cleanup [31m script" {
		t.Errorf("deleted by %+v, want the API with its cleaned name", by)
	}
	if n, _ := b.store.CountFailures(b.ctx); n != 0 {
		t.Errorf("ledger size %d after delete", n)
	}
}

// TestFailureFilterClinic: a clinic's jobs are those of its practitioners
// and those whose payload names it.
func TestFailureFilterClinic(t *testing.T) {
	t.Parallel()
	b := setup(t)
	demo, other := b.subscription(t, "Demo Physio Clinic"), b.subscription(t, "Other Clinic")
	ann, olga := b.practitioner(t, demo.ID, "ann@demo.example"), b.practitioner(t, other.ID, "olga@other.example")
	must(t, b.store.RecordFailure(b.ctx, uploadFailure("pdf:ann:v1", ann, pmsbridge.CauseClinikoForbidden, 1, true)))
	must(t, b.store.RecordFailure(b.ctx, uploadFailure("pdf:olga:v1", olga, pmsbridge.CauseClinikoForbidden, 1, true)))
	b.clock.Advance(time.Second)
	imp := store.Failure{TaskID: "import:" + demo.ID + ":au1:1", Type: "cliniko:import_patient", Permanent: true, Cause: pmsbridge.CauseNoClinikoKey,
		PractitionerID: "prac_gone", SubscriptionID: demo.ID, Attempts: 1}
	must(t, b.store.RecordFailure(b.ctx, imp))
	for _, tc := range []struct {
		sub  string
		want []string
	}{
		{demo.ID, []string{imp.TaskID, "pdf:ann:v1"}},
		{other.ID, []string{"pdf:olga:v1"}},
		{"sub_none", []string{}},
	} {
		list, err := b.store.ListFailures(b.ctx, store.FailureFilter{SubscriptionID: tc.sub})
		must(t, err)
		got := []string{}
		for _, f := range list {
			got = append(got, f.TaskID)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("clinic %s (-want +got):\n%s", tc.sub, diff)
		}
	}
}

// TestFailuresPerHour counts every recorded failed attempt in its hour, by
// cause.
func TestFailuresPerHour(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	pr := b.practitioner(t, sub.ID, "a@example.com")
	h0 := b.clock.Now().Truncate(time.Hour)
	for i, at := range []time.Duration{5 * time.Minute, 10 * time.Minute, 70 * time.Minute, 190 * time.Minute} {
		f := uploadFailure(fmt.Sprintf("pdf:%d:v1", i), pr, pmsbridge.CauseClinikoForbidden, 1, true)
		if i == 1 {
			f.Cause = pmsbridge.CauseClinikoUnavailable
		}
		f.LastFailedAt = h0.Add(at)
		must(t, b.store.RecordFailure(b.ctx, f))
	}
	got, err := b.store.FailuresPerHour(b.ctx, h0, h0.Add(3*time.Hour+time.Minute))
	must(t, err)
	want := []store.HourCount{
		{Hour: h0, ByCause: map[pmsbridge.Cause]int{pmsbridge.CauseClinikoForbidden: 1, pmsbridge.CauseClinikoUnavailable: 1}},
		{Hour: h0.Add(time.Hour), ByCause: map[pmsbridge.Cause]int{pmsbridge.CauseClinikoForbidden: 1}},
		{Hour: h0.Add(2 * time.Hour), ByCause: map[pmsbridge.Cause]int{}},
		{Hour: h0.Add(3 * time.Hour), ByCause: map[pmsbridge.Cause]int{pmsbridge.CauseClinikoForbidden: 1}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestPatientLabels: names only with the encryption key; the subscription
// always.
func TestPatientLabels(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	pr := b.practitioner(t, sub.ID, "a@example.com")
	p := b.patient(t, pr, "1001", "O'Brien")
	got, err := b.store.PatientLabels(b.ctx, []string{p.ID, "pat_nope", p.ID, "bad id!"})
	must(t, err)
	if diff := cmp.Diff(map[string]store.PatientLabel{p.ID: {ID: p.ID, SubscriptionID: sub.ID, Name: "Pat O'Brien", Named: true}}, got); diff != "" {
		t.Errorf("with the key (-want +got):\n%s", diff)
	}
	keyless := b.reopen(t, func(o *store.Options) { o.Keys = nil })
	got, err = keyless.PatientLabels(b.ctx, []string{p.ID})
	must(t, err)
	if diff := cmp.Diff(map[string]store.PatientLabel{p.ID: {ID: p.ID, SubscriptionID: sub.ID}}, got); diff != "" {
		t.Errorf("without the key (-want +got):\n%s", diff)
	}
	prs, err := b.store.PractitionersByID(b.ctx, []string{pr.ID, "prac_nope"})
	must(t, err)
	subs, err := b.store.SubscriptionsByID(b.ctx, []string{sub.ID, sub.ID})
	must(t, err)
	if len(prs) != 1 || prs[pr.ID].Email != "a@example.com" || len(subs) != 1 || subs[sub.ID].Name != "Clinic" {
		t.Errorf("PractitionersByID = %v, SubscriptionsByID = %v", prs, subs)
	}
}

func TestActorWords(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a    store.Actor
		want string
	}{
		{store.Actor{Via: store.ViaCLI, Who: "ann@desk"}, "CLI (ann@desk)"},
		{store.Actor{Via: store.ViaAdminPage}, "admin page"},
		{store.Actor{Via: store.ViaKeySaved, Who: "demo@clinic.example"}, "automatically after a Cliniko key was saved (demo@clinic.example)"},
		{store.Actor{}, "unknown"},
	} {
		if got := tc.a.String(); got != tc.want {
			t.Errorf("%+v = %q, want %q", tc.a, got, tc.want)
		}
	}
	if got := store.ActorOf(context.Background()); got != (store.Actor{}) {
		t.Errorf("ActorOf an empty context = %+v", got)
	}
	long := strings.Repeat("é", 300)
	if got := store.ActorOf(store.ActingAs(context.Background(), store.Actor{Via: store.ViaCLI, Who: long})).Who; len([]rune(got)) != store.MaxActorWho {
		t.Errorf("a long name kept %d characters", len([]rune(got)))
	}
}
