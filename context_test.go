package pmsbridge_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/physitrack/pmsbridge"
)

// TestLoggerInContext: the logger a context carries is the one used;
// without one, the fallback.
func TestLoggerInContext(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	base := slog.New(slog.NewTextHandler(&buf, nil))
	fallback := slog.New(slog.DiscardHandler)
	if got := pmsbridge.Logger(context.Background(), fallback); got != fallback {
		t.Error("a context without a logger did not give the fallback")
	}
	ctx := pmsbridge.WithLogger(context.Background(), base.With("request_id", "r1"))
	pmsbridge.Logger(ctx, fallback).Info("hello")
	if !strings.Contains(buf.String(), "request_id=r1") {
		t.Errorf("the line %q lacks the context logger's request_id", buf.String())
	}
}

// TestLoggerAttrsInContext: WithLoggerAttrs gives the same lines as
// WithLogger with base.With(attrs...), and one logger however often it is
// asked for.
func TestLoggerAttrsInContext(t *testing.T) {
	t.Parallel()
	var lazy, eager bytes.Buffer
	ctx := pmsbridge.WithLoggerAttrs(context.Background(), slog.New(slog.NewJSONHandler(&lazy, nil)), "request_id", "r1")
	l := pmsbridge.Logger(ctx, slog.New(slog.DiscardHandler))
	if l != pmsbridge.Logger(ctx, nil) {
		t.Error("a second Logger built another logger")
	}
	l.Info("hello", "n", 1)
	slog.New(slog.NewJSONHandler(&eager, nil)).With("request_id", "r1").Info("hello", "n", 1)
	// The times differ; the rest must not.
	cut := func(s string) string { return s[strings.Index(s, `"level"`):] }
	if cut(lazy.String()) != cut(eager.String()) {
		t.Errorf("lazy line %q, want %q", lazy.String(), eager.String())
	}
}
