package jobs

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko"
)

func (d Decision) String() string {
	switch d {
	case Retry:
		return "Retry"
	case Snooze:
		return "Snooze"
	case GiveUp:
		return "GiveUp"
	}
	return fmt.Sprintf("Decision(%d)", int(d))
}

// TestDecide: every cause maps to what the contract says (401, 403, 404,
// 422 and our own permanent causes give up at once; 5xx, timeouts and
// internal errors retry; 429 and our limiter snooze), however the error is
// wrapped; only a snooze is "not a failure" to asynq.
func TestDecide(t *testing.T) {
	t.Parallel()
	retryAt := time.Now().Add(30 * time.Second)
	tests := []struct {
		desc string
		err  error
		want Decision
	}{
		{"cliniko 401", &cliniko.Error{Op: "get_patient", Status: 401, Cause: cliniko.CauseForStatus(401)}, GiveUp},
		{"cliniko 403", &cliniko.Error{Op: "presign", Status: 403, Cause: cliniko.CauseForStatus(403)}, GiveUp},
		{"cliniko 404", &cliniko.Error{Op: "get_patient", Status: 404, Cause: cliniko.CauseForStatus(404)}, GiveUp},
		{"cliniko 422", &cliniko.Error{Op: "create_attachment", Status: 422, Cause: cliniko.CauseForStatus(422)}, GiveUp},
		{"cliniko 400", &cliniko.Error{Op: "list_patients", Status: 400, Cause: cliniko.CauseForStatus(400)}, GiveUp},
		{"cliniko 429 with reset", &cliniko.Error{Op: "get_patient", Status: 429, Cause: cliniko.CauseForStatus(429), RetryAt: retryAt}, Snooze},
		{"our limiter", &cliniko.Error{Op: "get_patient", Cause: pmsbridge.CauseClinikoRateLimited, RetryAt: retryAt}, Snooze},
		{"cliniko 500", &cliniko.Error{Op: "get_patient", Status: 500, Cause: cliniko.CauseForStatus(500)}, Retry},
		{"cliniko 503", &cliniko.Error{Op: "get_patient", Status: 503, Cause: cliniko.CauseForStatus(503)}, Retry},
		{"no answer", &cliniko.Error{Op: "get_patient", Cause: cliniko.CauseForStatus(0), Err: context.DeadlineExceeded}, Retry},
		{"wrapped 401", fmt.Errorf("import cliniko patient: %w", &cliniko.Error{Status: 401, Cause: pmsbridge.CauseClinikoUnauthorized}), GiveUp},
		{"wrapped 429", fmt.Errorf("upload: %w", fmt.Errorf("list: %w", &cliniko.Error{Status: 429, Cause: pmsbridge.CauseClinikoRateLimited, RetryAt: retryAt})), Snooze},
		{"another worker holds the upload lock", fmt.Errorf("upload: %w", &busyError{what: "upload of this programme version", retryAt: retryAt}), Snooze},
		{"already permanent", permanent(pmsbridge.Errorf(pmsbridge.CauseClinikoForbidden, "no")), GiveUp},
		{"no_cliniko_key", pmsbridge.Errorf(pmsbridge.CauseNoClinikoKey, "no key"), GiveUp},
		{"not_linked", pmsbridge.Errorf(pmsbridge.CauseNotLinked, "not linked"), GiveUp},
		{"invalid_payload", pmsbridge.Errorf(pmsbridge.CauseInvalidPayload, "bad"), GiveUp},
		{"cliniko_invalid", pmsbridge.Errorf(pmsbridge.CauseClinikoInvalid, "bad"), GiveUp},
		{"cliniko_unavailable", pmsbridge.Errorf(pmsbridge.CauseClinikoUnavailable, "down"), Retry},
		{"internal", pmsbridge.Errorf(pmsbridge.CauseInternal, "bug"), Retry},
		{"plain error (Redis down)", errors.New("dial tcp: connection refused"), Retry},
		{"context cancelled (shutdown)", context.Canceled, Retry},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			if got := Decide(tt.err); got != tt.want {
				t.Errorf("Decide(%v) = %v, want %v", tt.err, got, tt.want)
			}
			if got, want := isFailure(tt.err), tt.want != Snooze; got != want {
				t.Errorf("isFailure = %v, want %v", got, want)
			}
			out := finish(tt.err)
			if got, want := errors.Is(out, asynq.SkipRetry), tt.want == GiveUp; got != want {
				t.Errorf("finish(err) wraps SkipRetry = %v, want %v", got, want)
			}
			if pmsbridge.CauseOf(out) != pmsbridge.CauseOf(tt.err) {
				t.Errorf("finish changed the cause: %s, want %s", pmsbridge.CauseOf(out), pmsbridge.CauseOf(tt.err))
			}
		})
	}
	// Every cause code has the decision the contract gives it, and pages
	// (Transient) agree with the worker: one rule.
	want := map[pmsbridge.Cause]Decision{
		pmsbridge.CauseClinikoUnauthorized: GiveUp, pmsbridge.CauseClinikoForbidden: GiveUp,
		pmsbridge.CauseClinikoNotFound: GiveUp, pmsbridge.CauseClinikoInvalid: GiveUp,
		pmsbridge.CauseClinikoRateLimited: Snooze, pmsbridge.CauseClinikoUnavailable: Retry,
		pmsbridge.CauseNoClinikoKey: GiveUp, pmsbridge.CauseNotLinked: GiveUp,
		pmsbridge.CauseInvalidPayload: GiveUp, pmsbridge.CauseInternal: Retry,
		pmsbridge.CauseNoContact: GiveUp, pmsbridge.CauseDeliveryRejected: GiveUp,
		pmsbridge.CauseDeliveryUnavailable: Retry,
	}
	for _, c := range pmsbridge.Causes {
		w, ok := want[c]
		if !ok {
			t.Errorf("cause %s: no decision in this test; add what the contract says", c)
			continue
		}
		d := Decide(pmsbridge.Errorf(c, "x"))
		if d != w {
			t.Errorf("cause %s: Decide = %v, want %v", c, d, w)
		}
		if c.Transient() != (d != GiveUp) {
			t.Errorf("cause %s: Transient() = %v but Decide = %v", c, c.Transient(), d)
		}
	}
}

// TestRetryDelay: a rate-limited error waits until its RetryAt (plus at
// most half a second of jitter); one whose time has passed comes back soon;
// anything else backs off exponentially between 1–2 s and 5–10 min.
func TestRetryDelay(t *testing.T) {
	t.Parallel()
	limited := func(at time.Time) error {
		return fmt.Errorf("import: %w", &cliniko.Error{Status: 429, Cause: pmsbridge.CauseClinikoRateLimited, RetryAt: at})
	}
	unavailable := &cliniko.Error{Status: 503, Cause: pmsbridge.CauseClinikoUnavailable}
	tests := []struct {
		desc     string
		n        int
		err      func() error
		min, max time.Duration
	}{
		{"429, reset in 30s", 0, func() error { return limited(time.Now().Add(30 * time.Second)) }, 29 * time.Second, 30*time.Second + 500*time.Millisecond},
		{"429 after many retries: still the reset time", 7, func() error { return limited(time.Now().Add(3 * time.Second)) }, 2 * time.Second, 3*time.Second + 500*time.Millisecond},
		{"429, reset passed", 0, func() error { return limited(time.Now().Add(-time.Second)) }, 200 * time.Millisecond, time.Second},
		{"rate limited without a time: backoff", 0, func() error { return pmsbridge.Errorf(pmsbridge.CauseClinikoRateLimited, "x") }, time.Second, 2 * time.Second},
		{"5xx, first retry", 0, func() error { return unavailable }, time.Second, 2 * time.Second},
		{"5xx, fourth retry", 3, func() error { return unavailable }, 8 * time.Second, 16 * time.Second},
		{"5xx, capped", 20, func() error { return unavailable }, 5 * time.Minute, 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			for range 50 { // jitter: try a few draws
				d := retryDelay(tt.n, tt.err(), nil)
				if d < tt.min || d > tt.max {
					t.Fatalf("retryDelay = %s, want within [%s, %s]", d, tt.min, tt.max)
				}
			}
		})
	}
}

// TestRateLimitIsNotAFailure runs a real worker against a 429 from the
// sandbox: the attempt is snoozed until X-RateLimit-Reset, asynq's retry
// count stays 0, the ledger stays empty, and the task then succeeds.
func TestRateLimitIsNotAFailure(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startWorker(t, nil)
	b.sb.FailNext(1, 429)
	start := time.Now()
	id, err := b.jc.EnqueueImport(b.ctx, ImportPayload{PractitionerID: b.pr.ID, SubscriptionID: b.sub.ID, Shard: "au1", ClinikoPatientID: "1002"})
	if err != nil {
		t.Fatal(err)
	}
	// The sandbox's reset is the end of the current minute.
	reset := start.Truncate(time.Minute).Add(time.Minute)
	var info = b.waitState(t, QueueImport, id, StateRetrying)
	if reset.Sub(start) > 2*time.Second { // else it may already be due
		if info.Retried != 0 {
			t.Errorf("Retried = %d after a 429, want 0", info.Retried)
		}
		if d := info.NextProcessAt.Sub(reset); d < -time.Second || d > 2*time.Second {
			t.Errorf("next attempt at %s, want about the reset time %s", info.NextProcessAt, reset)
		}
	}
	b.noFailure(t, id)
	if n := b.sb.RequestCount("get_patient"); n != 2 { // setup's import + the 429
		t.Errorf("get_patient requests = %d, want 2 (a 429 is not retried inside the call)", n)
	}
	// Run it now rather than wait for the reset.
	if err := b.jc.Inspector().RunTask(QueueImport, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Fatal(err)
	}
	info = b.waitState(t, QueueImport, id, StateDone)
	if info.Retried != 0 {
		t.Errorf("Retried = %d after a snoozed attempt, want 0", info.Retried)
	}
	b.noFailure(t, id)
	if _, err := b.st.FindLink(b.ctx, b.sub.ID, "au1", "1002"); err != nil {
		t.Errorf("patient not imported: %v", err)
	}
}

// TestSnoozeAtRetryLimit: asynq archives a task whose retries are used up
// even when the last error is a rate limit; the ledger must then say the
// failure is permanent, or support would never see it.
func TestSnoozeAtRetryLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startWorker(t, nil)
	b.sb.FailNext(1, 429)
	p := ImportPayload{PractitionerID: b.pr.ID, SubscriptionID: b.sub.ID, Shard: "au1", ClinikoPatientID: "1002"}
	id := ImportTaskID(p.SubscriptionID, p.Shard, p.ClinikoPatientID)
	if _, err := b.jc.enqueueOnce(b.ctx, asynq.NewTask(TypeImportPatient, mustPayload(p)), QueueImport, id, asynq.MaxRetry(0)); err != nil {
		t.Fatal(err)
	}
	b.waitState(t, QueueImport, id, StateFailed)
	f := b.failure(t, id)
	if !f.Permanent || f.Cause != pmsbridge.CauseClinikoRateLimited {
		t.Errorf("ledger entry %+v, want a permanent cliniko_rate_limited failure", f)
	}
}
