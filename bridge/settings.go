package bridge

import (
	"errors"
	"net/http"
	"strings"

	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/flows"
	"github.com/physitrack/pmsbridge/store"
)

type settingsData struct {
	User     store.ClinikoUser
	HasKey   bool
	CanUp    bool
	AppURL   string
	Notice   string
	Error    string
	Next     string
	NeedKey  bool
	Replayed int
}

func (s *Server) settingsData(r *http.Request) (settingsData, error) {
	pr := practitionerFrom(r.Context())
	cu, ok, err := s.deps.Store.ClinikoUserOf(r.Context(), pr.ID)
	if err != nil {
		return settingsData{}, err
	}
	return settingsData{User: cu, HasKey: ok, CanUp: cliniko.CanUpload(cu.Role), AppURL: s.cfg.PublicURL + "/cliniko_patient_import"}, nil
}

func (s *Server) settingsPage(w http.ResponseWriter, r *http.Request) {
	d, err := s.settingsData(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	q := r.URL.Query()
	d.Next = localPath(q.Get("next"))
	d.NeedKey = q.Get("need") == "key" && !d.HasKey
	d.Notice = settingsNotice(q.Get("done"), q.Get("replayed"))
	s.page(w, r, http.StatusOK, "settings", "Cliniko settings", d)
}

// saveSettings is POST /settings/cliniko: api_key is checked with Cliniko
// (GET /user) before it is saved; action=remove deletes the saved key.
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
	n, err := s.flows.SaveKey(r.Context(), *pr, strings.TrimSpace(r.PostForm.Get("api_key")))
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
	http.Redirect(w, r, "/settings/cliniko?done=saved&replayed="+itoa(n), http.StatusSeeOther)
}
