package bridge

import (
	"errors"
	"net/http"

	"github.com/physitrack/pmsbridge/store"
)

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
		s.errorJSON(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": id, "owner_id": in.To, "previous_owner_id": prev})
}
