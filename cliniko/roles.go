package cliniko

import "strings"

// uploadRoles are the Cliniko roles whose users may upload patient files
// (cliniko-api.md §6, §7): receptionist and up. A Scheduler may not.
var uploadRoles = map[string]bool{
	"administrator":      true,
	"practitioner":       true,
	"receptionist":       true,
	"power_receptionist": true,
	"power receptionist": true,
}

// CanUpload reports whether a Cliniko user with role may upload patient
// files, which a programme PDF needs. Roles are compared without regard to
// case; an unknown role may not.
func CanUpload(role string) bool { return uploadRoles[strings.ToLower(role)] }
