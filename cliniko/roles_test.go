package cliniko_test

import (
	"testing"

	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
)

// TestCanUpload: the roles that may upload patient files are the ones the
// sandbox lets upload (receptionist and up), whatever their case; a
// Scheduler and an unknown role may not.
func TestCanUpload(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		role string
		want bool
	}{
		{sandbox.RoleAdministrator, true},
		{sandbox.RolePractitioner, true},
		{sandbox.RoleReceptionist, true},
		{sandbox.RolePowerReceptionist, true},
		{"Power Receptionist", true},
		{"ADMINISTRATOR", true},
		{sandbox.RoleScheduler, false},
		{"", false},
		{"owner", false},
	} {
		if got := cliniko.CanUpload(tc.role); got != tc.want {
			t.Errorf("CanUpload(%q) = %v, want %v", tc.role, got, tc.want)
		}
	}
}
