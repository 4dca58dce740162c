package pmsbridge

import (
	"context"
	"log/slog"
)

// loggerKey is the context key of the logger of the work a context belongs
// to (unexported, so only this package's functions put one in).
type loggerKey struct{}

// WithLogger returns ctx carrying l as the logger of the work ctx belongs
// to. The HTTP layer puts each request's logger there, with the request's
// id, so every line logged for the request names it without anyone adding
// the id by hand.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

// Logger returns the logger that ctx carries (see WithLogger), or fallback
// when it carries none.
func Logger(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok && l != nil {
		return l
	}
	return fallback
}
