package bridge

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/store"
)

const adminCookie = "pmsbridge_admin"

func (s *Server) adminRoutes(mux *http.ServeMux) {
	api := func(h http.HandlerFunc) http.HandlerFunc { return s.adminAPIAuth(h) }
	page := func(h http.HandlerFunc) http.HandlerFunc { return s.adminPageAuth(h) }
	mux.HandleFunc("POST /admin/api/subscriptions", api(s.apiCreateSubscription))
	mux.HandleFunc("POST /admin/api/practitioners", api(s.apiCreatePractitioner))
	mux.HandleFunc("POST /admin/api/practitioners/{id}/deactivate", api(s.apiDeactivate))
	mux.HandleFunc("PUT /admin/api/subscriptions/{id}/sharing", api(s.apiSharing))
	mux.HandleFunc("POST /admin/api/patients/{id}/transfer", api(s.apiTransfer))
	mux.HandleFunc("GET /admin/api/jobs", api(s.apiJobs))
	mux.HandleFunc("GET /admin/api/jobs/recovered", api(s.apiRecovered))
	mux.HandleFunc("GET /admin/api/jobs/{id}", api(s.apiJob))
	mux.HandleFunc("DELETE /admin/api/jobs/{id}", api(s.apiDeleteJob))
	mux.HandleFunc("POST /admin/api/jobs/replay", api(s.apiReplay))
	mux.HandleFunc("GET /admin/api/stats", api(s.apiStats))
	mux.HandleFunc("GET /admin/login", s.adminLoginPage)
	mux.HandleFunc("POST /admin/login", s.adminLogin)
	mux.HandleFunc("POST /admin/logout", s.adminLogout)
	mux.HandleFunc("GET /admin/{$}", page(s.adminHome))
	mux.HandleFunc("GET /admin/jobs/{id}", page(s.adminJobPage))
	mux.HandleFunc("POST /admin/replay", page(s.adminReplay))
	mux.HandleFunc("POST /admin/delete", page(s.adminDelete))
}

func (s *Server) tokenOK(got string) bool {
	if s.cfg.AdminToken == "" || got == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.AdminToken)) == 1
}

// adminSessionTTL is how long a support login in a browser lasts.
const adminSessionTTL = 8 * time.Hour

// adminGeneration names the admin token that support logins are made
// with (a hash: the token itself never reaches Redis): replacing the token
// ends every support login.
func (s *Server) adminGeneration() string {
	h := sha256.Sum256([]byte("pmsbridge admin session\x00" + s.cfg.AdminToken))
	return hex.EncodeToString(h[:8])
}

func (s *Server) adminAPIAuth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.AdminToken == "" {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "admin is disabled: set admin.token"})
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !s.tokenOK(strings.TrimSpace(tok)) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pmsbridge admin"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
			return
		}
		h(w, r.WithContext(store.ActingAs(r.Context(), store.Actor{Via: store.ViaAPI})))
	}
}

// adminDisabled is the support pages' answer when no admin token is set.
func (s *Server) adminDisabled(w http.ResponseWriter, r *http.Request) {
	s.message(w, r, http.StatusServiceUnavailable, "Admin disabled", message{Tone: "warn", Heading: "Admin is disabled", Paragraphs: []string{"Set admin.token (PMSBRIDGE_ADMIN_TOKEN) to enable the support pages."}})
}

func (s *Server) adminPageAuth(next http.HandlerFunc) http.HandlerFunc {
	h := func(w http.ResponseWriter, r *http.Request) {
		next(w, r.WithContext(store.ActingAs(r.Context(), store.Actor{Via: store.ViaAdminPage})))
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.AdminToken == "" {
			s.adminDisabled(w, r)
			return
		}
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && s.tokenOK(strings.TrimSpace(tok)) {
			h(w, r)
			return
		}
		if c, err := r.Cookie(adminCookie); err == nil && c.Value != "" {
			ok, err := s.deps.Store.AdminSessionValid(r.Context(), c.Value, s.adminGeneration())
			if err != nil {
				s.Error(w, r, err)
				return
			}
			if ok {
				h(w, r)
				return
			}
		}
		if r.Method != http.MethodGet {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		http.Redirect(w, r, "/admin/login", http.StatusSeeOther)
	}
}

func (s *Server) adminLoginPage(w http.ResponseWriter, r *http.Request) {
	s.page(w, r, http.StatusOK, "admin_login", "Support login", "")
}

// adminLogin checks the admin token typed into the support login page.
// Tries are counted per client and locked out like practitioner logins
// (store.CheckAdminLogin); a good one starts a server-side session whose
// random token is the cookie.
func (s *Server) adminLogin(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	if s.cfg.AdminToken == "" {
		s.adminDisabled(w, r)
		return
	}
	typed := strings.TrimSpace(r.PostForm.Get("token"))
	err := s.deps.Store.CheckAdminLogin(r.Context(), clientFrom(r), func() bool { return s.tokenOK(typed) })
	s.countAttempt("admin", err)
	var le *store.LockedError
	switch {
	case errors.As(err, &le):
		left := le.Until.Sub(s.cfg.Now())
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(left.Seconds())+1)))
		s.page(w, r, http.StatusTooManyRequests, "admin_login", "Support login", "Too many wrong tokens from this address. Logging in is paused for about "+pmsbridge.Count(int(left.Minutes())+1, "minute", "minutes")+".")
		return
	case errors.Is(err, store.ErrBadCredentials):
		s.page(w, r, http.StatusUnauthorized, "admin_login", "Support login", "That token is not right.")
		return
	case err != nil:
		s.Error(w, r, err)
		return
	}
	if old, err := r.Cookie(adminCookie); err == nil && old.Value != "" {
		_ = s.deps.Store.DeleteAdminSession(r.Context(), old.Value)
	}
	token, err := s.deps.Store.CreateAdminSession(r.Context(), s.adminGeneration(), clientFrom(r), adminSessionTTL)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: adminCookie, Value: token, Path: "/admin", HttpOnly: true,
		Secure: s.cfg.SecureCookies, SameSite: http.SameSiteStrictMode, MaxAge: int(adminSessionTTL.Seconds())})
	http.Redirect(w, r, "/admin/", http.StatusSeeOther)
}

// adminLogout ends the support login on the server, so a copied cookie
// stops working too.
func (s *Server) adminLogout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(adminCookie); err == nil && c.Value != "" {
		if err := s.deps.Store.DeleteAdminSession(r.Context(), c.Value); err != nil {
			s.Error(w, r, err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: adminCookie, Value: "", Path: "/admin", MaxAge: -1, HttpOnly: true, Secure: s.cfg.SecureCookies, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/admin/login", http.StatusSeeOther)
}

// decodeBody reads a JSON request body of at most 64 KiB, refusing unknown
// fields so typos are caught, and anything after the one JSON value.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed JSON body: " + err.Error()})
		return false
	}
	if err := dec.Decode(&json.RawMessage{}); !errors.Is(err, io.EOF) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed JSON body: more than one JSON value"})
		return false
	}
	return true
}

func (s *Server) apiCreateSubscription(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name     string `json:"name"`
		TimeZone string `json:"time_zone"` // IANA; "": the region's
	}
	if !decodeBody(w, r, &in) {
		return
	}
	sub, err := s.deps.Store.CreateSubscription(r.Context(), in.Name, store.WithTimeZone(in.TimeZone))
	if err != nil {
		s.errorJSON(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": sub.ID, "name": sub.Name, "time_zone": sub.TimeZone})
}

// PractitionerJSON is a practitioner in the admin API.
type PractitionerJSON struct {
	ID             string `json:"id"`
	SubscriptionID string `json:"subscription_id"`
	Email          string `json:"email"`
	Name           string `json:"name"`
	Active         bool   `json:"active"`
}

func practitionerJSON(p store.Practitioner) PractitionerJSON {
	return PractitionerJSON{ID: p.ID, SubscriptionID: p.SubscriptionID, Email: p.Email, Name: p.Name, Active: p.Active}
}

func (s *Server) apiCreatePractitioner(w http.ResponseWriter, r *http.Request) {
	var in struct {
		SubscriptionID string `json:"subscription_id"`
		Email          string `json:"email"`
		Name           string `json:"name"`
		Password       string `json:"password"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	p, err := s.deps.Store.CreatePractitioner(r.Context(), store.NewPractitioner{SubscriptionID: in.SubscriptionID, Email: in.Email, Name: in.Name, Password: in.Password})
	if err != nil {
		s.errorJSON(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, practitionerJSON(p))
}

func (s *Server) apiDeactivate(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.deps.Store.Deactivate(r.Context(), id); err != nil {
		s.errorJSON(w, r, err)
		return
	}
	p, err := s.deps.Store.GetPractitioner(r.Context(), id)
	if err != nil {
		s.errorJSON(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, practitionerJSON(p))
}

func (s *Server) apiSharing(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Patients []string `json:"patients"`
		Content  []string `json:"content"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	sh, err := s.deps.Store.SetSharing(r.Context(), r.PathValue("id"), in.Patients, in.Content)
	if err != nil {
		s.errorJSON(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sh)
}

func (s *Server) apiStats(w http.ResponseWriter, r *http.Request) {
	st, err := s.deps.Jobs.Stats(r.Context())
	if err != nil {
		s.errorJSON(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"stats": st})
}
