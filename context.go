package pmsbridge

import (
	"context"
	"log/slog"
	"sync"
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
	switch l := ctx.Value(loggerKey{}).(type) {
	case *slog.Logger:
		if l != nil {
			return l
		}
	case *lazyLogger:
		return l.get()
	}
	return fallback
}

// WithLoggerAttrs is WithLogger(ctx, base.With(attrs...)), with the logger
// built only when Logger asks for it: a request that logs nothing of its
// own (most of them) does not pay for it.
func WithLoggerAttrs(ctx context.Context, base *slog.Logger, attrs ...any) context.Context {
	return context.WithValue(ctx, loggerKey{}, &lazyLogger{base: base, attrs: attrs})
}

type lazyLogger struct {
	base  *slog.Logger
	attrs []any
	once  sync.Once
	l     *slog.Logger
}

func (l *lazyLogger) get() *slog.Logger {
	l.once.Do(func() { l.l = l.base.With(l.attrs...) })
	return l.l
}
