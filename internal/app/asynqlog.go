package app

import (
	"context"
	"log/slog"
	"strings"
)

// asynqSharedClose starts the line asynq's scheduler logs at ERROR on every
// clean shutdown. The cause is in asynq (v0.26.0), not in our order of
// closing: a Scheduler made with NewSchedulerFromRedisClient holds a Client
// marked as sharing the caller's connection, and Scheduler.Shutdown calls
// that Client's Close anyway, which refuses ("redis connection is shared so
// the Client can't be closed through asynq") — and the refusal is logged as
// an error (hibiken/asynq#1068, fix proposed in #1135). The connection is
// ours and Main.Close closes it after the workers have stopped.
const asynqSharedClose = "Failed to close redis client connection: redis connection is shared"

// quietSharedClose passes log records through, but logs asynq's refusal to
// close our shared connection at DEBUG: it is not an error, and a clean
// shutdown must not set off log alerts. Drop it once jobs builds the
// scheduler on a connection asynq owns, or asynq stops logging the refusal.
type quietSharedClose struct{ slog.Handler }

func (h quietSharedClose) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelError && strings.HasPrefix(r.Message, asynqSharedClose) {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietSharedClose) WithAttrs(as []slog.Attr) slog.Handler {
	return quietSharedClose{h.Handler.WithAttrs(as)}
}

func (h quietSharedClose) WithGroup(name string) slog.Handler {
	return quietSharedClose{h.Handler.WithGroup(name)}
}
