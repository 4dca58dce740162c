package pmsbridge_test

import (
	"testing"

	"github.com/physitrack/pmsbridge"
)

// TestCount: one thing in the singular, every other number in the plural.
func TestCount(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]string{0: "0 entries", 1: "1 entry", 2: "2 entries", 31: "31 entries"} {
		if got := pmsbridge.Count(n, "entry", "entries"); got != want {
			t.Errorf("Count(%d) = %q, want %q", n, got, want)
		}
	}
}
