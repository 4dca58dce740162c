package bridge

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/flows"
	"github.com/physitrack/pmsbridge/store"
)

func (s *Server) exercises(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"exercises": pmsbridge.Catalogue()})
}

// assignForm reads the assign form: title, exercise (repeatable, catalogue
// ids), notes; optional starts_on and programme_id (a new version of that
// programme). The flow checks what it says.
func assignForm(form url.Values) flows.Assignment {
	return flows.Assignment{
		ProgrammeID:  strings.TrimSpace(form.Get("programme_id")),
		Title:        strings.TrimSpace(form.Get("title")),
		Notes:        strings.TrimSpace(form.Get("notes")),
		StartsOn:     strings.TrimSpace(form.Get("starts_on")),
		CatalogueIDs: form["exercise"],
	}
}

// assign is POST /patients/{id}/programmes.
func (s *Server) assign(w http.ResponseWriter, r *http.Request) {
	p, ok := s.patientForm(w, r)
	if !ok {
		return
	}
	prog, err := s.flows.Assign(r.Context(), *practitionerFrom(r.Context()), p, assignForm(r.PostForm))
	if err != nil {
		s.patientError(w, r, p, err)
		return
	}
	// The page says what happens to the code, from the programme's records.
	http.Redirect(w, r, "/patients/"+p.ID+"?done=assigned&programme="+url.QueryEscape(prog.ID), http.StatusSeeOther)
}

// programmeOf loads the {pid}/{v} programme version of patient p; on
// failure it has answered.
func (s *Server) programmeOf(w http.ResponseWriter, r *http.Request, p store.Patient) (pmsbridge.Programme, bool) {
	v, _ := strconv.Atoi(r.PathValue("v")) // not a number: 0, no such version
	prog, err := s.flows.Programme(r.Context(), p, r.PathValue("pid"), v)
	if err != nil {
		s.Error(w, r, err)
		return prog, false
	}
	return prog, true
}

// resend is the "Send to Cliniko again" button.
func (s *Server) resend(w http.ResponseWriter, r *http.Request) {
	p, ok := s.loadPatient(w, r)
	if !ok {
		return
	}
	prog, ok := s.programmeOf(w, r, p)
	if !ok {
		return
	}
	if err := s.flows.Resend(r.Context(), p, prog); err != nil {
		s.patientError(w, r, p, err)
		return
	}
	http.Redirect(w, r, "/patients/"+p.ID+"?done=resent", http.StatusSeeOther)
}

// downloadPDF serves the same PDF that goes to Cliniko.
func (s *Server) downloadPDF(w http.ResponseWriter, r *http.Request) {
	p, ok := s.loadPatient(w, r)
	if !ok {
		return
	}
	prog, ok := s.programmeOf(w, r, p)
	if !ok {
		return
	}
	s.servePDF(w, r, prog, p)
}

func (s *Server) servePDF(w http.ResponseWriter, r *http.Request, prog pmsbridge.Programme, p store.Patient) {
	b, name, err := s.flows.ProgrammePDF(r.Context(), p, prog)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/pdf")
	w.Header().Set("Content-Disposition", `inline; filename="`+name+`"`)
	w.Header().Set("Cache-Control", "private, no-store")
	_, _ = w.Write(b)
}
