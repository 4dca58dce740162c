package bridge

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/flows"
	"github.com/physitrack/pmsbridge/store"
	"golang.org/x/text/collate"
	"golang.org/x/text/language"
)

// loadPatient loads the patient of the {id} path value, whom the logged-in
// practitioner must be allowed to open; on failure it has answered (a page,
// or JSON under /api/).
func (s *Server) loadPatient(w http.ResponseWriter, r *http.Request) (store.Patient, bool) {
	p, err := s.flows.OpenPatient(r.Context(), *practitionerFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			s.errorJSON(w, r, err)
		} else {
			s.Error(w, r, err)
		}
		return p, false
	}
	return p, true
}

type patientRow struct {
	store.Patient
	OwnerName string
	Mine      bool
	// FailedPDFs counts the patient's programme versions whose PDF failed
	// for good.
	FailedPDFs int
}

// Attention filters of the patients list (GET /patients?attention=…,
// repeatable: a patient shown matches any of them).
const (
	attentionBirthYear = "birth-year" // the year of birth is missing, unreadable or differs from Cliniko
	attentionPDF       = "pdf"        // a programme's PDF failed to reach Cliniko
)

func (s *Server) patientsPage(w http.ResponseWriter, r *http.Request) {
	pr := practitionerFrom(r.Context())
	list, err := s.deps.Store.ListPatientsVisibleTo(r.Context(), *pr)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	ids := make([]string, len(list))
	for i, p := range list {
		ids[i] = p.ID
	}
	failed, err := s.deps.Store.FailedPDFCounts(r.Context(), ids)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	var d patientsData
	for _, a := range r.URL.Query()["attention"] {
		switch a {
		case attentionBirthYear:
			d.BirthYearFilter = true
		case attentionPDF:
			d.PDFFilter = true
		}
	}
	names := s.practitionerNames(r, pr.SubscriptionID)
	for _, p := range list {
		badYear := p.BirthYearStatus != pmsbridge.BirthYearOK
		badPDF := failed[p.ID] > 0
		if badYear {
			d.YearNeeds++
		}
		if badPDF {
			d.PDFNeeds++
		}
		if d.Filtered() && !(d.BirthYearFilter && badYear || d.PDFFilter && badPDF) {
			continue
		}
		d.Rows = append(d.Rows, patientRow{Patient: p, OwnerName: names[p.OwnerID], Mine: p.OwnerID == pr.ID, FailedPDFs: failed[p.ID]})
	}
	// Alphabetical by family name, then given name, in a collation that
	// places accented letters next to their base letter (Ó with O).
	coll := collate.New(language.Und, collate.IgnoreCase)
	sort.SliceStable(d.Rows, func(i, j int) bool {
		a, b := d.Rows[i], d.Rows[j]
		if c := coll.CompareString(a.LastName, b.LastName); c != 0 {
			return c < 0
		}
		return coll.CompareString(a.FirstName, b.FirstName) < 0
	})
	d.Total, d.HasKey = len(list), clinikoUserFrom(r.Context()) != nil
	s.page(w, r, http.StatusOK, "patients", "Patients", d)
}

// patientsData is what the patients page shows.
type patientsData struct {
	Rows []patientRow
	// BirthYearFilter, PDFFilter: only patients whose year of birth needs
	// attention, or with a PDF that failed (either, when both).
	BirthYearFilter, PDFFilter bool
	YearNeeds                  int // how many have a year of birth that needs attention
	PDFNeeds                   int // how many have a PDF that failed
	Total                      int
	HasKey                     bool // the practitioner has a Cliniko key saved
}

// Filtered reports whether the list is filtered.
func (d patientsData) Filtered() bool { return d.BirthYearFilter || d.PDFFilter }

// practitionerNames maps the subscription's practitioner ids to names.
func (s *Server) practitionerNames(r *http.Request, subID string) map[string]string {
	m := map[string]string{}
	if ps, err := s.deps.Store.ListPractitioners(r.Context(), subID); err == nil {
		for _, p := range ps {
			m[p.ID] = p.Name
		}
	}
	return m
}

// PatientJSON is the patient document of GET /api/patients/{id}.
type PatientJSON struct {
	ID              string                    `json:"id"`
	FirstName       string                    `json:"first_name"`
	LastName        string                    `json:"last_name"`
	Email           string                    `json:"email"`
	Mobile          string                    `json:"mobile"`
	Gender          string                    `json:"gender,omitempty"`
	YearOfBirth     *int                      `json:"year_of_birth"`
	BirthYearStatus pmsbridge.BirthYearStatus `json:"birth_year_status"`
	BirthYearSource pmsbridge.BirthYearSource `json:"birth_year_source"`
	BirthYearRaw    string                    `json:"birth_year_raw,omitempty"`
	ClinikoYear     *int                      `json:"cliniko_year,omitempty"`
	Owner           NamedID                   `json:"owner"`
	Cliniko         *ClinikoJSON              `json:"cliniko"`
	Programmes      []ProgrammeJSON           `json:"programmes"`
}

// NamedID is an id with a display name.
type NamedID struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// ClinikoJSON is a patient's Cliniko link.
type ClinikoJSON struct {
	Shard             string     `json:"shard"`
	PatientID         string     `json:"patient_id"`
	LastSyncedAt      *time.Time `json:"last_synced_at"`
	ArchivedInCliniko bool       `json:"archived_in_cliniko"`
}

// ProgrammeJSON is one programme version with its PDF sync state and the
// messages that carry its code to the patient.
type ProgrammeJSON struct {
	ID       string `json:"id"`
	Version  int    `json:"version"`
	Title    string `json:"title"`
	Code     string `json:"code"`
	StartsOn string `json:"starts_on"`
	// Current says this is the programme's current (latest) version.
	Current bool    `json:"current"`
	PDF     PDFJSON `json:"pdf"`
	// CodeDelivery lists every message asked for on the programme (all
	// its versions share the code), oldest first; [] when none.
	CodeDelivery []CodeDeliveryJSON `json:"code_delivery"`
}

// PDFJSON is a programme version's PDF sync state. Every field of the
// contract is always there ("" when it has no value).
type PDFJSON struct {
	State        pmsbridge.PDFState `json:"state"`
	Cause        string             `json:"cause"`
	Reason       string             `json:"reason"`
	AttachmentID string             `json:"attachment_id"`
}

func (s *Server) patientJSON(w http.ResponseWriter, r *http.Request) {
	p, ok := s.loadPatient(w, r)
	if !ok {
		return
	}
	v, err := s.flows.PatientView(r.Context(), *practitionerFrom(r.Context()), p)
	if err != nil {
		s.errorJSON(w, r, err)
		return
	}
	out := PatientJSON{ID: p.ID, FirstName: p.FirstName, LastName: p.LastName, Email: p.Email, Mobile: p.Mobile, Gender: p.Gender,
		BirthYearStatus: p.BirthYearStatus, BirthYearSource: p.BirthYearSource, BirthYearRaw: p.BirthYearRaw,
		Owner: NamedID{ID: p.OwnerID, Name: v.Owner.Name}, Programmes: []ProgrammeJSON{}}
	if p.YearOfBirth != 0 {
		y := p.YearOfBirth
		out.YearOfBirth = &y
	}
	if p.ClinikoYear != 0 {
		y := p.ClinikoYear
		out.ClinikoYear = &y
	}
	if p.Link != nil {
		c := &ClinikoJSON{Shard: p.Link.Shard, PatientID: p.Link.ClinikoPatientID, ArchivedInCliniko: p.Link.ArchivedInCliniko}
		if !p.Link.LastSyncedAt.IsZero() {
			t := p.Link.LastSyncedAt
			c.LastSyncedAt = &t
		}
		out.Cliniko = c
	}
	codes, err := s.codesOf(r.Context(), v)
	if err != nil {
		s.errorJSON(w, r, err)
		return
	}
	// Every version of every programme (the contract), the current one of
	// each first.
	for _, row := range v.Programmes {
		for i, prog := range row.Versions() {
			out.Programmes = append(out.Programmes, ProgrammeJSON{ID: prog.ID, Version: prog.Version, Title: prog.Title, Code: prog.Code,
				StartsOn: prog.StartsOn, Current: i == 0,
				PDF:          PDFJSON{State: prog.PDF.State, Cause: string(prog.PDF.Cause), Reason: prog.PDF.Reason, AttachmentID: prog.PDF.AttachmentID},
				CodeDelivery: codeDeliveryJSON(codes[prog.ID])})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// patientForm loads the {id} patient for a form post and parses the form;
// on failure it has answered.
func (s *Server) patientForm(w http.ResponseWriter, r *http.Request) (store.Patient, bool) {
	p, ok := s.loadPatient(w, r)
	if !ok {
		return p, false
	}
	if !s.parseForm(w, r) {
		return p, false
	}
	return p, true
}

// shareAction reads the sharing form's action: share (the default) or
// unshare.
func shareAction(form url.Values) flows.ShareAction {
	switch form.Get("action") {
	case "", "share":
		return flows.ShareOn
	case "unshare":
		return flows.ShareOff
	}
	return flows.ShareUnknown
}

// share is POST /patients/{id}/share: email, action=share|unshare.
func (s *Server) share(w http.ResponseWriter, r *http.Request) {
	p, ok := s.patientForm(w, r)
	if !ok {
		return
	}
	action := shareAction(r.PostForm)
	if _, err := s.flows.Share(r.Context(), *practitionerFrom(r.Context()), p, r.PostForm.Get("email"), action); err != nil {
		s.patientError(w, r, p, err, nil)
		return
	}
	done := "shared"
	if action == flows.ShareOff {
		done = "unshared"
	}
	http.Redirect(w, r, "/patients/"+p.ID+"?done="+done, http.StatusSeeOther)
}

// transfer is POST /patients/{id}/transfer: email.
func (s *Server) transfer(w http.ResponseWriter, r *http.Request) {
	p, ok := s.patientForm(w, r)
	if !ok {
		return
	}
	stillMine, err := s.flows.Transfer(r.Context(), *practitionerFrom(r.Context()), p, r.PostForm.Get("email"))
	if err != nil {
		s.patientError(w, r, p, err, nil)
		return
	}
	// The practitioner may no longer be able to open the patient.
	target := "/patients?done=transferred"
	if stillMine {
		target = "/patients/" + p.ID + "?done=transferred"
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// birthYearForm reads the birth-year form: year=YYYY (0 when it is not a
// number), or action=use_cliniko to take Cliniko's year back.
func birthYearForm(form url.Values) (year int, useCliniko bool) {
	if form.Get("action") == "use_cliniko" {
		return 0, true
	}
	year, _ = strconv.Atoi(strings.TrimSpace(form.Get("year")))
	return year, false
}

// birthYear is POST /patients/{id}/birth-year: set the year of birth by
// hand, or take Cliniko's back.
func (s *Server) birthYear(w http.ResponseWriter, r *http.Request) {
	p, ok := s.patientForm(w, r)
	if !ok {
		return
	}
	pr := *practitionerFrom(r.Context())
	year, useCliniko := birthYearForm(r.PostForm)
	done, err := "year", error(nil)
	if useCliniko {
		done, err = "cliniko", s.flows.UseClinikoYear(r.Context(), pr, p)
	} else {
		err = s.flows.SetBirthYear(r.Context(), pr, p, year)
	}
	if err != nil {
		s.patientError(w, r, p, err, nil)
		return
	}
	http.Redirect(w, r, "/patients/"+p.ID+"?done="+done, http.StatusSeeOther)
}
