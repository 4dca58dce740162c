package bridge

import (
	"errors"
	"net/http"

	"github.com/physitrack/pmsbridge/store"
)

// ownerOnly is the 403 page for a colleague who may open a patient but
// tries to share, unshare or transfer them: only the owner (or support)
// may give a patient away. It names the owner, so the colleague knows whom
// to ask.
func (s *Server) ownerOnly(w http.ResponseWriter, r *http.Request, p store.Patient) {
	owner := s.practitionerNames(r, p.SubscriptionID)[p.OwnerID]
	if owner == "" {
		owner = "their owner"
	}
	s.message(w, r, http.StatusForbidden, "Only the owner can do this", message{Tone: "warn",
		Heading: "Only " + owner + " can share or transfer this patient",
		Paragraphs: []string{
			owner + " owns this patient. You can work with them here (assign programmes, refresh their details, fix their year of birth), but only " + owner + " can share them with colleagues, stop sharing them, or transfer them.",
			"Ask " + owner + ", or your clinic's pmsbridge administrator, to do it.",
		},
		Links: []link{{Text: "Back to the patient", URL: "/patients/" + p.ID}},
	})
}

// apiTransfer is support's transfer: POST /admin/api/patients/{id}/transfer
// {"to_practitioner_id"} → 200, written to the patient's audit log.
func (s *Server) apiTransfer(w http.ResponseWriter, r *http.Request) {
	var in struct {
		To string `json:"to_practitioner_id"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	if in.To == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "to_practitioner_id is required"})
		return
	}
	id := r.PathValue("id")
	prev, err := s.deps.Store.TransferBySupport(r.Context(), id, in.To)
	if errors.Is(err, store.ErrNotFound) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such patient"})
		return
	}
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": id, "owner_id": in.To, "previous_owner_id": prev})
}
