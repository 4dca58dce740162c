package bridge

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestReady: the one readiness rule behind /readyz and pmsbridge_ready.
func TestReady(t *testing.T) {
	t.Parallel()
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("down") }
	for _, tc := range []struct {
		desc   string
		checks Checks
		want   Readiness
	}{
		{"serve, Redis answers", Checks{Redis: ok}, Readiness{true, map[string]string{"redis": "ok"}}},
		{"serve, Redis down", Checks{Redis: down}, Readiness{false, map[string]string{"redis": "unreachable"}}},
		{"run, all up", Checks{Redis: ok, Workers: ok}, Readiness{true, map[string]string{"redis": "ok", "workers": "ok"}}},
		{"run, workers down", Checks{Redis: ok, Workers: down}, Readiness{false, map[string]string{"redis": "ok", "workers": "down"}}},
		{"run, both down", Checks{Redis: down, Workers: down}, Readiness{false, map[string]string{"redis": "unreachable", "workers": "down"}}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if d := cmp.Diff(tc.want, tc.checks.Ready(context.Background())); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}
