package bridge

import (
	"io/fs"
	"net/http"
)

func (s *Server) routes(mux *http.ServeMux) {
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(http.FileServerFS(static))))
	sess := func(h http.HandlerFunc) http.Handler { return s.withSession(h) }
	auth := func(h http.HandlerFunc) http.Handler { return s.withSession(s.requireLogin(h)) }

	mux.Handle("GET /{$}", sess(s.home))
	mux.Handle("GET /login", sess(s.loginPage))
	mux.Handle("POST /login", sess(s.login))
	mux.Handle("POST /logout", sess(s.logout))
	mux.Handle("GET /settings/cliniko", auth(s.settingsPage))
	mux.Handle("POST /settings/cliniko", auth(s.saveSettings))

	mux.Handle("GET /cliniko_patient_import", s.clinikoClick(sess(s.clinikoImport)))
	mux.Handle("GET /imports/status", auth(s.importStatus))

	mux.Handle("GET /patients", auth(s.patientsPage))
	mux.Handle("GET /patients/{id}", auth(s.patientPage))
	mux.Handle("GET /api/patients/{id}", auth(s.patientJSON))
	mux.Handle("POST /patients/{id}/share", auth(s.share))
	mux.Handle("POST /patients/{id}/transfer", auth(s.transfer))
	mux.Handle("POST /patients/{id}/refresh", auth(s.refresh))
	mux.Handle("POST /patients/{id}/birth-year", auth(s.birthYear))
	mux.Handle("POST /patients/{id}/programmes", auth(s.assign))
	mux.Handle("POST /patients/{id}/programmes/{pid}/versions/{v}/resend", auth(s.resend))
	mux.Handle("POST /patients/{id}/programmes/{pid}/unlock", auth(s.unlock))
	mux.Handle("GET /patients/{id}/programmes/{pid}/versions/{v}/pdf", auth(s.downloadPDF))
	mux.Handle("POST /patients/{id}/programmes/{pid}/send-code", auth(s.sendCode))
	mux.Handle("GET /api/exercises", http.HandlerFunc(s.exercises))

	mux.HandleFunc("POST /webhooks/programmes", s.webhook)

	mux.HandleFunc("GET /access", s.accessPage)
	mux.HandleFunc("POST /access", s.access)
	mux.HandleFunc("GET /access/programme", s.accessProgramme)
	mux.HandleFunc("GET /access/pdf", s.accessPDF)

	s.adminRoutes(mux)
	s.queuesRoutes(mux)
	mux.Handle("/", sess(s.notFound))
}

func cacheFor(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	if practitionerFrom(r.Context()) != nil {
		http.Redirect(w, r, "/patients", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
