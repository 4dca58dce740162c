package bridge

import (
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
	"golang.org/x/text/collate"
	"golang.org/x/text/language"
)

// loadPatient loads the patient of the {id} path value and checks that the
// logged-in practitioner may open it; on failure it has written the page.
func (s *Server) loadPatient(w http.ResponseWriter, r *http.Request) (store.Patient, bool) {
	id := r.PathValue("id")
	pr := practitionerFrom(r.Context())
	p, err := s.deps.Store.GetPatient(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such patient"})
			return p, false
		}
		s.notFound(w, r)
		return p, false
	}
	if err != nil {
		s.internalError(w, r, err)
		return p, false
	}
	acc, err := s.deps.Store.CanOpen(r.Context(), *pr, p)
	if err != nil {
		s.internalError(w, r, err)
		return p, false
	}
	if !acc.Allowed {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such patient"})
			return p, false
		}
		s.notShared(w, r, acc)
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
		s.internalError(w, r, err)
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
	s.page(w, r, http.StatusOK, "patients", "Patients", struct {
		Rows      []patientRow
		Attention bool
		Needs     int
		Total     int
		HasKey    bool
	}{rows, attention, needs, len(list), hasKey})
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
}

type programmeView struct {
	pmsbridge.Programme
	PDF store.PDFState
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
	for _, x := range ps {
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
		s.internalError(w, r, err)
		return
	}
	v.Notice = patientNotices[r.URL.Query().Get("done")]
	s.page(w, r, http.StatusOK, "patient", strings.TrimSpace(p.FirstName+" "+p.LastName), v)
}

func (s *Server) patientFormError(w http.ResponseWriter, r *http.Request, p store.Patient, status int, msg string) {
	v, err := s.patientView(r, p)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	v.Error = msg
	s.page(w, r, status, "patient", strings.TrimSpace(p.FirstName+" "+p.LastName), v)
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

// ProgrammeJSON is one programme version with its PDF sync state.
type ProgrammeJSON struct {
	ID       string  `json:"id"`
	Version  int     `json:"version"`
	Title    string  `json:"title"`
	Code     string  `json:"code"`
	StartsOn string  `json:"starts_on"`
	PDF      PDFJSON `json:"pdf"`
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
		s.log.ErrorContext(r.Context(), "patient json", "request_id", requestID(r.Context()), "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
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
			PDF: PDFJSON{State: prog.PDF.State, Cause: string(prog.PDF.Cause), Reason: prog.PDF.Reason, AttachmentID: prog.PDF.AttachmentID}})
	}
	writeJSON(w, http.StatusOK, out)
}

// colleagueByEmail finds an active practitioner of the same subscription.
func (s *Server) colleagueByEmail(r *http.Request, email string) (store.Practitioner, string) {
	pr := practitionerFrom(r.Context())
	email = strings.TrimSpace(email)
	if email == "" {
		return store.Practitioner{}, "Enter your colleague's pmsbridge login email address."
	}
	c, err := s.deps.Store.PractitionerByEmail(r.Context(), email)
	if err != nil || c.SubscriptionID != pr.SubscriptionID {
		return c, "No colleague in your clinic logs in with " + email + ". Check the address."
	}
	if !c.Active {
		return c, c.Name + "'s account is deactivated."
	}
	return c, ""
}

// patientForm loads the {id} patient for a form post and parses the form;
// on failure it has written the page.
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

// colleagueForm is patientForm for the patient's owner only (sharing and
// transfer: a colleague who may open the patient may not give them away),
// plus the colleague named by the form's email field.
func (s *Server) colleagueForm(w http.ResponseWriter, r *http.Request) (store.Patient, store.Practitioner, bool) {
	p, ok := s.patientForm(w, r)
	if !ok {
		return p, store.Practitioner{}, false
	}
	if p.OwnerID != practitionerFrom(r.Context()).ID {
		s.ownerOnly(w, r, p)
		return p, store.Practitioner{}, false
	}
	c, problem := s.colleagueByEmail(r, r.PostForm.Get("email"))
	if problem != "" {
		s.patientFormError(w, r, p, http.StatusUnprocessableEntity, problem)
		return p, c, false
	}
	return p, c, true
}

// audit records a practitioner's action on a patient.
func (s *Server) audit(r *http.Request, patientID, op, detail string) {
	if err := s.deps.Store.Audit(r.Context(), store.AuditEntry{PractitionerID: practitionerFrom(r.Context()).ID, PatientID: patientID, Op: op, Detail: detail}); err != nil {
		s.log.WarnContext(r.Context(), "audit", "err", err)
	}
}

func (s *Server) share(w http.ResponseWriter, r *http.Request) {
	p, c, ok := s.colleagueForm(w, r)
	if !ok {
		return
	}
	var err error
	done := "shared"
	switch r.PostForm.Get("action") {
	case "", "share":
		if c.ID == p.OwnerID {
			s.patientFormError(w, r, p, http.StatusUnprocessableEntity, c.Name+" already owns this patient.")
			return
		}
		err = s.deps.Store.Share(r.Context(), p.ID, c.ID)
	case "unshare":
		err = s.deps.Store.Unshare(r.Context(), p.ID, c.ID)
		done = "unshared"
	default:
		s.patientFormError(w, r, p, http.StatusUnprocessableEntity, "Choose share or unshare.")
		return
	}
	if errors.Is(err, store.ErrInvalid) {
		s.patientFormError(w, r, p, http.StatusUnprocessableEntity, "That colleague cannot be given this patient.")
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.audit(r, p.ID, "patient."+done, "with "+c.ID)
	http.Redirect(w, r, "/patients/"+p.ID+"?done="+done, http.StatusSeeOther)
}

func (s *Server) transfer(w http.ResponseWriter, r *http.Request) {
	p, c, ok := s.colleagueForm(w, r)
	if !ok {
		return
	}
	if c.ID == p.OwnerID {
		s.patientFormError(w, r, p, http.StatusUnprocessableEntity, c.Name+" already owns this patient.")
		return
	}
	if err := s.deps.Store.Transfer(r.Context(), p.ID, c.ID); errors.Is(err, store.ErrInvalid) {
		s.patientFormError(w, r, p, http.StatusUnprocessableEntity, "The patient cannot be transferred to that colleague.")
		return
	} else if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.audit(r, p.ID, "patient.transferred", "to "+c.ID)
	// The practitioner may no longer be able to open the patient.
	target := "/patients?done=transferred"
	if acc, err := s.deps.Store.CanOpen(r.Context(), *practitionerFrom(r.Context()), withOwner(p, c.ID)); err == nil && acc.Allowed {
		target = "/patients/" + p.ID + "?done=transferred"
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// withOwner is p as it is after a transfer to owner.
func withOwner(p store.Patient, owner string) store.Patient {
	p.OwnerID = owner
	return p
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request) {
	p, ok := s.loadPatient(w, r)
	if !ok {
		return
	}
	if p.Link == nil {
		s.patientFormError(w, r, p, http.StatusConflict, "This patient is not linked to Cliniko, so there is nothing to refresh.")
		return
	}
	pr := practitionerFrom(r.Context())
	if clinikoUserFrom(r.Context()) == nil {
		http.Redirect(w, r, "/settings/cliniko?need=key", http.StatusSeeOther)
		return
	}
	if _, err := s.deps.Jobs.EnqueueRefresh(r.Context(), jobs.RefreshPayload{PractitionerID: pr.ID, PatientID: p.ID}, true); err != nil {
		s.internalError(w, r, err)
		return
	}
	http.Redirect(w, r, "/patients/"+p.ID+"?done=refreshing", http.StatusSeeOther)
}

// birthYear sets the year of birth by hand (year=YYYY) or takes Cliniko's
// year back (action=use_cliniko).
func (s *Server) birthYear(w http.ResponseWriter, r *http.Request) {
	p, ok := s.patientForm(w, r)
	if !ok {
		return
	}
	action := r.PostForm.Get("action")
	var year int
	if action != "use_cliniko" {
		y, err := strconv.Atoi(strings.TrimSpace(r.PostForm.Get("year")))
		now := s.cfg.Now().UTC().Year()
		if err != nil || y < 1900 || y > now {
			s.patientFormError(w, r, p, http.StatusUnprocessableEntity, "Enter the year of birth as four digits, between 1900 and "+itoa(now)+".")
			return
		}
		year = y
	}
	changed := true
	_, err := s.deps.Store.UpdatePatient(r.Context(), p.ID, func(x *store.Patient) error {
		if action == "use_cliniko" {
			changed = x.UseClinikoYear()
			return nil
		}
		x.SetManualYear(year)
		return nil
	})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if !changed {
		s.patientFormError(w, r, p, http.StatusConflict, "There is no differing year from Cliniko to use.")
		return
	}
	done := "year"
	if action == "use_cliniko" {
		done = "cliniko"
	}
	s.audit(r, p.ID, "patient.birth_year."+done, "")
	http.Redirect(w, r, "/patients/"+p.ID+"?done="+done, http.StatusSeeOther)
}
