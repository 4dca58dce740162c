package pmsbridge_test

import (
	"testing"

	"github.com/physitrack/pmsbridge"
)

// TestMayHandOver: only the owner gives a patient away.
func TestMayHandOver(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		desc, practitioner, owner string
		want                      bool
	}{
		{"the owner", "prac_a", "prac_a", true},
		{"a colleague the patient is shared with", "prac_b", "prac_a", false},
		{"nobody (no practitioner)", "", "prac_a", false},
		{"a patient without an owner on record", "", "", false},
	} {
		if got := pmsbridge.MayHandOver(tc.practitioner, tc.owner); got != tc.want {
			t.Errorf("%s: MayHandOver(%q, %q) = %v, want %v", tc.desc, tc.practitioner, tc.owner, got, tc.want)
		}
	}
}
