package bridge

import (
	"errors"
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
}

func (s *Server) patientsPage(w http.ResponseWriter, r *http.Request) {
	pr := practitionerFrom(r.Context())
	list, err := s.deps.Store.ListPatientsVisibleTo(r.Context(), *pr)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	attention := r.URL.Query().Get("attention") == "birth-year"
	names := s.practitionerNames(r, pr.SubscriptionID)
	var rows []patientRow
	needs := 0
	for _, p := range list {
		bad := p.BirthYearStatus != pmsbridge.BirthYearOK
		if bad {
			needs++
		}
		if attention && !bad {
			continue
		}
		rows = append(rows, patientRow{Patient: p, OwnerName: names[p.OwnerID], Mine: p.OwnerID == pr.ID})
	}
	// Alphabetical by family name, then given name, in a collation that
	// places accented letters next to their base letter (Ó with O).
	coll := collate.New(language.Und, collate.IgnoreCase)
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if c := coll.CompareString(a.LastName, b.LastName); c != 0 {
			return c < 0
		}
		return coll.CompareString(a.FirstName, b.FirstName) < 0
	})
	hasKey := clinikoUserFrom(r.Context()) != nil
	s.page(w, r, http.StatusOK, "patients", "Patients", patientsData{rows, attention, needs, len(list), hasKey})
}

// patientsData is what the patients page shows.
type patientsData struct {
	Rows      []patientRow
	Attention bool // only those whose year of birth needs attention
	Needs     int  // how many need attention
	Total     int
	HasKey    bool // the practitioner has a Cliniko key saved
}

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

// patientView is everything the patient page and JSON show.
type patientView struct {
	Patient    store.Patient
	OwnerName  string
	Mine       bool
	SharedWith []store.Practitioner
	Colleagues []store.Practitioner
	Programmes []programmeView
	Catalogue  []pmsbridge.Exercise
	Today      string
	Notice     string
	Error      string
	Attempts   []store.AuditEntry
	// AttemptCounts counts every try by kind (locked tries are listed
	// at most once per hour and device, but all counted).
	AttemptCounts map[string]int
	// CodeNotice says, after an assignment, what happens to the code.
	CodeNotice *codeNotice
	// codes are what the programmes' rows show of their codes, by
	// programme id (the patient JSON's code_delivery).
	codes map[string]*codeDelivery
}

type programmeView struct {
	pmsbridge.Programme
	PDF store.PDFState
	// Delivery is the programme's code on its way to the patient (template
	// "code_delivery"); set on the row of its latest version only.
	Delivery *codeDelivery
}

func (s *Server) patientView(r *http.Request, p store.Patient) (patientView, error) {
	ctx := r.Context()
	pr := practitionerFrom(ctx)
	v := patientView{Patient: p, Mine: p.OwnerID == pr.ID, Catalogue: pmsbridge.Catalogue(), Today: s.cfg.Now().UTC().Format("2006-01-02")}
	ps, err := s.deps.Store.ListPractitioners(ctx, p.SubscriptionID)
	if err != nil {
		return v, err
	}
	shared := map[string]bool{}
	for _, id := range p.SharedWith {
		shared[id] = true
	}
	names := map[string]string{}
	for _, x := range ps {
		names[x.ID] = x.Name
		if x.ID == p.OwnerID {
			v.OwnerName = x.Name
		}
		if shared[x.ID] {
			v.SharedWith = append(v.SharedWith, x)
		}
		if x.ID != p.OwnerID && x.Active {
			v.Colleagues = append(v.Colleagues, x)
		}
	}
	progs, err := s.deps.Store.ListProgrammes(ctx, p.ID)
	if err != nil {
		return v, err
	}
	for _, prog := range progs {
		st, err := s.deps.Store.PDFStateOf(ctx, prog.ID, prog.Version)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return v, err
		}
		if st.State == "" {
			st.State = pmsbridge.PDFPending
		}
		v.Programmes = append(v.Programmes, programmeView{Programme: prog, PDF: st})
	}
	sort.SliceStable(v.Programmes, func(i, j int) bool {
		a, b := v.Programmes[i], v.Programmes[j]
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.After(b.CreatedAt)
		}
		return a.Version > b.Version
	})
	if err := s.addCodeDeliveries(ctx, &v, progs, names); err != nil {
		return v, err
	}
	if v.Attempts, v.AttemptCounts, err = s.deps.Store.AccessAttemptsOf(ctx, p.ID, 50); err != nil {
		return v, err
	}
	return v, nil
}

var patientNotices = map[string]string{
	"shared":      "The patient is now shared.",
	"unshared":    "The patient is no longer shared with that colleague.",
	"transferred": "The patient now belongs to your colleague.",
	"refreshing":  "pmsbridge is reading the patient's details from Cliniko again. Reload the page in a moment.",
	"year":        "The year of birth is saved.",
	"cliniko":     "The year of birth now comes from Cliniko again.",
	"assigned":    "The programme is assigned. Its PDF is on its way to the patient's files in Cliniko.",
	"resent":      "The PDF is being sent to Cliniko again.",
}

func (s *Server) patientPage(w http.ResponseWriter, r *http.Request) {
	p, ok := s.loadPatient(w, r)
	if !ok {
		return
	}
	v, err := s.patientView(r, p)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	done := r.URL.Query().Get("done")
	v.Notice = patientNotices[done]
	if n, ok := codeSentNotices[done]; ok {
		v.Notice = n
	}
	if done == "assigned" {
		v.CodeNotice = s.assignedCodeNotice(v, r.URL.Query().Get("programme"))
	}
	s.page(w, r, http.StatusOK, "patient", p.Name(), v)
}

// patientError answers a form post about patient p that failed with err:
// a refusal the practitioner can act on shows on the patient's page, with
// its status (answerFor); anything else is Error's.
func (s *Server) patientError(w http.ResponseWriter, r *http.Request, p store.Patient, err error) {
	var refusal *flows.Error
	if !errors.As(err, &refusal) || refusal.Code == flows.NotFound {
		s.Error(w, r, err)
		return
	}
	v, verr := s.patientView(r, p)
	if verr != nil {
		s.Error(w, r, verr)
		return
	}
	v.Error = refusal.Message
	a := answerFor(err)
	s.retryAfter(w, a)
	s.page(w, r, a.status, "patient", p.Name(), v)
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
	ID       string  `json:"id"`
	Version  int     `json:"version"`
	Title    string  `json:"title"`
	Code     string  `json:"code"`
	StartsOn string  `json:"starts_on"`
	PDF      PDFJSON `json:"pdf"`
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
	v, err := s.patientView(r, p)
	if err != nil {
		s.errorJSON(w, r, err)
		return
	}
	out := PatientJSON{ID: p.ID, FirstName: p.FirstName, LastName: p.LastName, Email: p.Email, Mobile: p.Mobile, Gender: p.Gender,
		BirthYearStatus: p.BirthYearStatus, BirthYearSource: p.BirthYearSource, BirthYearRaw: p.BirthYearRaw,
		Owner: NamedID{ID: p.OwnerID, Name: v.OwnerName}, Programmes: []ProgrammeJSON{}}
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
	for _, prog := range v.Programmes {
		out.Programmes = append(out.Programmes, ProgrammeJSON{ID: prog.ID, Version: prog.Version, Title: prog.Title, Code: prog.Code, StartsOn: prog.StartsOn,
			PDF:          PDFJSON{State: prog.PDF.State, Cause: string(prog.PDF.Cause), Reason: prog.PDF.Reason, AttachmentID: prog.PDF.AttachmentID},
			CodeDelivery: codeDeliveryJSON(v.codes[prog.ID])})
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
		s.patientError(w, r, p, err)
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
		s.patientError(w, r, p, err)
		return
	}
	// The practitioner may no longer be able to open the patient.
	target := "/patients?done=transferred"
	if stillMine {
		target = "/patients/" + p.ID + "?done=transferred"
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// refresh is POST /patients/{id}/refresh: read the details from Cliniko
// again.
func (s *Server) refresh(w http.ResponseWriter, r *http.Request) {
	p, ok := s.loadPatient(w, r)
	if !ok {
		return
	}
	hasKey := clinikoUserFrom(r.Context()) != nil
	if err := s.flows.Refresh(r.Context(), *practitionerFrom(r.Context()), hasKey, p); err != nil {
		s.patientError(w, r, p, err)
		return
	}
	http.Redirect(w, r, "/patients/"+p.ID+"?done=refreshing", http.StatusSeeOther)
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
		s.patientError(w, r, p, err)
		return
	}
	http.Redirect(w, r, "/patients/"+p.ID+"?done="+done, http.StatusSeeOther)
}
