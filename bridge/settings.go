package bridge

import (
	"errors"
	"net/http"
	"strings"

	"github.com/physitrack/pmsbridge/flows"
)

type settingsData struct {
	flows.KeyStatus
	AppURL  string
	Notice  string
	Error   string
	Next    string
	NeedKey bool
	// ConfirmRemove shows the second step of "Remove the saved key".
	ConfirmRemove bool
}

func (s *Server) settingsData(r *http.Request) (settingsData, error) {
	st, err := s.flows.KeyStatus(r.Context(), *practitionerFrom(r.Context()), clinikoUserFrom(r.Context()))
	if err != nil {
		return settingsData{}, err
	}
	return settingsData{KeyStatus: st, AppURL: s.cfg.PublicURL + "/cliniko_patient_import"}, nil
}

func (s *Server) settingsPage(w http.ResponseWriter, r *http.Request) {
	d, err := s.settingsData(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	q := r.URL.Query()
	d.Next = localPath(q.Get("next"))
	d.NeedKey = q.Get("need") == "key" && !d.Saved
	d.Notice = settingsNotice(q.Get("done"), q.Get("replayed"), q.Get("zone") == "1")
	d.ConfirmRemove = q.Get("remove") == "confirm" && d.Saved
	s.page(w, r, http.StatusOK, "settings", "Cliniko settings", d)
}

// saveSettings is POST /settings/cliniko: api_key is checked with Cliniko
// (GET /user) before it is saved; action=remove deletes the saved key (the
// page asks first, with a link to ?remove=confirm; scripts post it
// directly, as design.md says).
func (s *Server) saveSettings(w http.ResponseWriter, r *http.Request) {
	pr := practitionerFrom(r.Context())
	if !s.parseForm(w, r) {
		return
	}
	next := localPath(r.PostForm.Get("next"))
	if r.PostForm.Get("action") == "remove" {
		if err := s.flows.RemoveKey(r.Context(), *pr); err != nil {
			s.Error(w, r, err)
			return
		}
		http.Redirect(w, r, "/settings/cliniko?done=removed", http.StatusSeeOther)
		return
	}
	saved, err := s.flows.SaveKey(r.Context(), *pr, strings.TrimSpace(r.PostForm.Get("api_key")))
	var refusal *flows.Error
	if errors.As(err, &refusal) {
		d, derr := s.settingsData(r)
		if derr != nil {
			s.Error(w, r, derr)
			return
		}
		d.Error, d.Next = refusal.Message, next
		s.page(w, r, answerFor(err).status, "settings", "Cliniko settings", d)
		return
	} else if err != nil {
		s.Error(w, r, err)
		return
	}
	if next != "" {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	target := "/settings/cliniko?done=saved&replayed=" + itoa(saved.Replayed)
	if saved.TimeZoneFilled {
		target += "&zone=1"
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}
