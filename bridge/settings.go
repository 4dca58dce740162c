package bridge

import (
	"net/http"
	"strings"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// uploadRoles are the Cliniko roles that may upload patient files.
var uploadRoles = map[string]bool{"administrator": true, "practitioner": true, "receptionist": true, "power_receptionist": true, "power receptionist": true}

// CanUpload reports whether a Cliniko role may upload patient files.
func CanUpload(role string) bool { return uploadRoles[strings.ToLower(role)] }

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
	return settingsData{User: cu, HasKey: ok, CanUp: CanUpload(cu.Role), AppURL: s.cfg.PublicURL + "/cliniko_patient_import"}, nil
}

func (s *Server) settingsPage(w http.ResponseWriter, r *http.Request) {
	d, err := s.settingsData(r)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	q := r.URL.Query()
	d.Next = localPath(q.Get("next"))
	d.NeedKey = q.Get("need") == "key" && !d.HasKey
	d.Notice = settingsNotice(q.Get("done"), q.Get("replayed"))
	s.page(w, r, http.StatusOK, "settings", "Cliniko settings", d)
}

// saveSettings checks a Cliniko API key against Cliniko (GET /user) before
// saving it; action=remove deletes the saved key.
func (s *Server) saveSettings(w http.ResponseWriter, r *http.Request) {
	pr := practitionerFrom(r.Context())
	if !s.parseForm(w, r) {
		return
	}
	next := localPath(r.PostForm.Get("next"))
	if r.PostForm.Get("action") == "remove" {
		if err := s.deps.Store.DeleteClinikoKey(r.Context(), pr.ID); err != nil {
			s.internalError(w, r, err)
			return
		}
		http.Redirect(w, r, "/settings/cliniko?done=removed", http.StatusSeeOther)
		return
	}
	key := strings.TrimSpace(r.PostForm.Get("api_key"))
	fail := func(msg string) {
		d, err := s.settingsData(r)
		if err != nil {
			s.internalError(w, r, err)
			return
		}
		d.Error, d.Next = msg, next
		s.page(w, r, http.StatusUnprocessableEntity, "settings", "Cliniko settings", d)
	}
	if key == "" {
		fail("Paste your Cliniko API key into the box first.")
		return
	}
	if len(key) > 200 || strings.ContainsAny(key, " \t\r\n") {
		fail("That does not look like a Cliniko API key. Copy the whole key from Cliniko (My info → Manage API keys) and paste it again.")
		return
	}
	shard, err := cliniko.ShardFromKey(key)
	if err != nil {
		fail(cliniko.BadShardMessage)
		return
	}
	u, err := s.deps.Cliniko.GetUser(jobs.WithActor(r.Context(), pr.ID, ""), cliniko.Auth{Key: key})
	if err != nil {
		cause := pmsbridge.CauseOf(err)
		msg := cause.Info().Clinician.KeyCheck
		if msg == "" {
			s.log.WarnContext(r.Context(), "check cliniko key", "request_id", requestID(r.Context()), "cause", cause)
			msg = pmsbridge.CauseInternal.Info().Clinician.KeyCheck
		}
		fail(msg)
		return
	}
	cu := store.ClinikoUser{ID: u.ID, Name: strings.TrimSpace(u.FirstName + " " + u.LastName), Email: u.Email, Role: u.Role, Shard: shard}
	cu.Account = s.keyAccount(jobs.WithActor(r.Context(), pr.ID, ""), cliniko.Auth{Key: key, UserID: u.ID}, shard)
	if err := s.deps.Store.SetClinikoKey(r.Context(), pr.ID, key, cu); err != nil {
		s.internalError(w, r, err)
		return
	}
	s.adoptKeyAccount(r.Context(), pr.SubscriptionID, cu.Account)
	// Jobs that failed for key reasons can now succeed: run them again.
	causes := []pmsbridge.Cause{pmsbridge.CauseClinikoUnauthorized, pmsbridge.CauseNoClinikoKey}
	if CanUpload(u.Role) {
		causes = append(causes, pmsbridge.CauseClinikoForbidden)
	}
	n, err := s.deps.Jobs.ReplayMatching(r.Context(), s.deps.Store, jobs.ReplayFilter{PractitionerID: pr.ID, Causes: causes})
	if err != nil {
		s.log.WarnContext(r.Context(), "replay after key saved", "err", err)
	}
	if next != "" {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/settings/cliniko?done=saved&replayed="+itoa(n), http.StatusSeeOther)
}
