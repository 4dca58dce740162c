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
