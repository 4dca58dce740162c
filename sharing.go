package pmsbridge

// The sharing rules of design.md: who may open a patient is decided with the
// patient's records (store.CanOpen); who may give a patient away is decided
// here, from the ids alone.

// MayHandOver reports whether a practitioner may share, unshare or transfer
// a patient: only its owner may. A colleague who may open the patient (an
// individual share, the sharing group) may work with them, but not give
// them away; support does that through the admin API.
func MayHandOver(practitionerID, ownerID string) bool {
	return practitionerID != "" && practitionerID == ownerID
}
