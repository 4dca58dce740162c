// Package jobs runs pmsbridge's background work on asynq: one file per task
// type (its type name, payload, constructor and handler), the decision of
// which messages send patients their codes (Codes), the mapping from a
// failure's cause to retry or give up, the shared Cliniko rate-limit waits,
// the scheduler for periodic work and the worker processes themselves.
//
// Task payloads hold ids only — never names, birth dates or keys — because
// support staff and dashboards read payloads.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge"
)

// Queue names. Interactive imports are served first, then messages that
// send patients their codes (someone may be waiting for theirs), then
// programme PDFs, then background sync.
const (
	QueueImport  = "import"
	QueueMessage = "message"
	QueuePDF     = "pdf"
	QueueSync    = "sync"
)

// Queues lists the queues with their priorities (strict: a lower queue is
// served only when the ones above are empty).
var Queues = map[string]int{QueueImport: 6, QueueMessage: 4, QueuePDF: 3, QueueSync: 1}

// taskSpec is how tasks of one type are queued.
type taskSpec struct {
	queue     string
	maxRetry  int           // attempts after the first; rate-limit waits do not count
	timeout   time.Duration // one attempt's limit
	retention time.Duration // how long a completed task is kept (0: not kept)
}

// taskSpecs are each task type's queue and options: the one place they are
// stated. Enqueueing, the scheduler and replaying from the failure ledger
// all take them from here, so a replayed task runs as a fresh one would.
var taskSpecs = map[string]taskSpec{
	// Kept 10 minutes once done, so the receiver's waiting page can see it.
	TypeImportPatient:  {queue: QueueImport, maxRetry: 8, timeout: 60 * time.Second, retention: 10 * time.Minute},
	TypeRefreshPatient: {queue: QueueImport, maxRetry: 5, timeout: 60 * time.Second},
	TypeUploadPDF:      {queue: QueuePDF, maxRetry: 10, timeout: 2 * time.Minute},
	// Backoff from 2 s to 10 min: about an hour and a half of tries before
	// a mail server or Twilio outage fails a message for good. A timeout
	// covers an SMTP conversation (30 s) or Twilio's look-up and send
	// (15 s a request, up to 6).
	TypeSendCode:         {queue: QueueMessage, maxRetry: 10, timeout: 2 * time.Minute},
	TypeSyncTick:         {queue: QueueSync, maxRetry: 3, timeout: time.Minute},
	TypeSyncAccount:      {queue: QueueSync, maxRetry: 5, timeout: 10 * time.Minute},
	TypeSyncPractitioner: {queue: QueueSync, maxRetry: 5, timeout: time.Minute}, // old tasks: turned into TypeSyncAccount
	// The reconciler does not retry: the next period runs again, and a
	// failed tick would only fill the ledger. The pdf queue: served before
	// the sync queue, after clicks.
	TypeReconcile: {queue: QueuePDF, maxRetry: 0, timeout: time.Minute},
}

// TaskOptions are the asynq options (queue included) of a task type, from
// taskSpecs; nil for an unknown type. The benchmark's baseline queues its
// no-op tasks with the import's.
func TaskOptions(taskType string) []asynq.Option {
	s, ok := taskSpecs[taskType]
	if !ok {
		return nil
	}
	opts := []asynq.Option{asynq.Queue(s.queue), asynq.MaxRetry(s.maxRetry), asynq.Timeout(s.timeout)}
	if s.retention > 0 {
		opts = append(opts, asynq.Retention(s.retention))
	}
	return opts
}

// TaskTypes lists every task type, sorted (support's filters check a type
// against it).
func TaskTypes() []string {
	out := make([]string, 0, len(taskSpecs))
	for t := range taskSpecs {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// limiterMaxWait is how long a job's first Cliniko call waits for a request
// slot before the job gives the worker back and re-queues itself for when
// the slot opens; its later calls wait for theirs (cliniko.ForJob).
const limiterMaxWait = 5 * time.Second

// RetryAfter is implemented by errors that know when the work may be tried
// again (a Cliniko 429 or our own rate limiter).
type RetryAfter interface{ RetryTime() time.Time }

// Decision is what the worker does with a failed attempt.
type Decision int

const (
	// Retry tries again later with backoff; the attempt counts.
	Retry Decision = iota
	// Snooze tries again at a known time; the attempt does not count.
	Snooze
	// GiveUp archives the task at once: the failure is permanent.
	GiveUp
)

// Decide maps a handler error to what happens next. It follows the cause
// table's retry class (pmsbridge.Cause.Retry), the same rule that pages use
// through pmsbridge.Cause.Transient; the only addition is busyError, work
// that another worker is doing right now.
func Decide(err error) Decision {
	if err == nil {
		return Retry
	}
	var b *busyError
	if errors.As(err, &b) {
		return Snooze
	}
	switch pmsbridge.CauseOf(err).Retry() {
	case pmsbridge.RetryWait:
		return Snooze
	case pmsbridge.RetryBackoff:
		return Retry
	default:
		// 401, 403, 404, 422, no key, not linked, invalid payload: trying
		// again cannot help until someone fixes something.
		return GiveUp
	}
}

// busyError says the work is being done right now by another worker: try
// again at RetryAt, without using up an attempt.
type busyError struct {
	what    string
	retryAt time.Time
}

func (e *busyError) Error() string               { return e.what + " is being done by another worker" }
func (e *busyError) RetryTime() time.Time        { return e.retryAt }
func (e *busyError) ErrorCause() pmsbridge.Cause { return pmsbridge.CauseInternal }
func (e *busyError) ErrorMessage() string {
	return "Another worker was doing the same " + e.what + " at that moment."
}

// permanent wraps err so asynq archives the task without retrying.
func permanent(err error) error {
	return fmt.Errorf("%w (%w)", err, asynq.SkipRetry)
}

// finish turns a handler's error into what asynq expects.
func finish(err error) error {
	if err == nil {
		return nil
	}
	if Decide(err) == GiveUp && !errors.Is(err, asynq.SkipRetry) {
		return permanent(err)
	}
	return err
}

// isFailure tells asynq whether an error uses up a retry: rate limits do not.
func isFailure(err error) bool {
	return Decide(err) != Snooze
}

// retryDelay waits until the time a rate-limited error names (with a little
// jitter so a crowd does not return at once), else backs off exponentially
// from 2 s to 10 min.
func retryDelay(n int, err error, _ *asynq.Task) time.Duration {
	var ra RetryAfter
	if errors.As(err, &ra) && !ra.RetryTime().IsZero() {
		if d := time.Until(ra.RetryTime()); d > 0 {
			return d + time.Duration(rand.Int64N(int64(500*time.Millisecond)))
		}
		return time.Duration(200+rand.Int64N(800)) * time.Millisecond
	}
	d := 2 * time.Second << min(n, 9)
	if d > 10*time.Minute {
		d = 10 * time.Minute
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)))
}

// asynqLogger adapts slog to asynq's Logger.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)) }

func asynqLogLevel(l *slog.Logger) asynq.LogLevel {
	if l.Enabled(context.Background(), slog.LevelDebug) {
		return asynq.DebugLevel
	}
	return asynq.WarnLevel
}
