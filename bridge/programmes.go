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

// doseShort are the dose fields' labels on the form, by key.
var doseShort = map[string]string{
	"sets": "Sets", "reps": "Reps", "hold_seconds": "Hold (seconds)", "times_per_day": "Times a day", "days_per_week": "Days a week",
}

// assignFormView is the assign form as the page shows it: empty, pre-filled
// from a programme's current version ("New version"), or as typed when it
// was refused.
type assignFormView struct {
	// ProgrammeID is the programme a new version is made of ("": a new
	// programme); Base is its row.
	ProgrammeID string
	Base        *flows.ProgrammeRow
	Title       string
	Notes       string
	StartsOn    string
	// Current are the exercises of the base's current version (a new
	// version); Groups the catalogue by body region, without those.
	Current []exerciseChoice
	Groups  []choiceGroup
	// Error is why the form was refused.
	Error string
	// Today is the clinic's date today, in words (the date field's hint:
	// browsers show the date in their own format).
	Today string
}

// choiceGroup is one body region of the exercise picker.
type choiceGroup struct {
	Region  string
	Choices []exerciseChoice
}

// exerciseChoice is one exercise of the picker: its form value (catalogue
// id, or "cur:N"), whether it is chosen, and its dose fields.
type exerciseChoice struct {
	Value string
	pmsbridge.Exercise
	Checked bool
	Doses   []doseInput
}

// doseInput is one dose field of an exercise on the form.
type doseInput struct {
	Name  string // the form field: "<key>.<exercise value>"
	Label string
	Value string
	Max   int
}

// Chosen counts the chosen exercises.
func (f assignFormView) Chosen() int {
	n := 0
	for _, c := range f.Current {
		if c.Checked {
			n++
		}
	}
	for _, g := range f.Groups {
		for _, c := range g.Choices {
			if c.Checked {
				n++
			}
		}
	}
	return n
}

// choice is the picker's entry of exercise e under form value v: checked
// or not, its doses as typed (typed, by dose key) or else e's own.
func choice(v string, e pmsbridge.Exercise, checked bool, typed map[string]string) exerciseChoice {
	c := exerciseChoice{Value: v, Exercise: e, Checked: checked}
	for _, d := range pmsbridge.DoseFields {
		val, ok := typed[d.Key]
		if !ok {
			val = ""
			if n := *d.Get(&e); n != 0 {
				val = strconv.Itoa(n)
			}
		}
		c.Doses = append(c.Doses, doseInput{Name: d.Key + "." + v, Label: doseShort[d.Key], Value: val, Max: d.Max})
	}
	return c
}

// assignForm builds the form view: base is the programme a new version is
// made of (nil: a new programme), chosen the form values checked, typed
// the doses typed by form value.
func assignForm(base *flows.ProgrammeRow, chosen []string, typed map[string]map[string]string) assignFormView {
	f := assignFormView{Base: base}
	isChosen := map[string]bool{}
	for _, v := range chosen {
		isChosen[v] = true
	}
	inBase := map[string]bool{}
	if base != nil {
		f.ProgrammeID = base.Current.ID
		for i, e := range base.Current.Exercises {
			v := flows.CurrentExercise(i)
			f.Current = append(f.Current, choice(v, e, isChosen[v], typed[v]))
			if e.ID != "" {
				inBase[e.ID] = true
			}
		}
	}
	for _, g := range pmsbridge.CatalogueByRegion() {
		cg := choiceGroup{Region: g.Region}
		for _, e := range g.Exercises {
			if !inBase[e.ID] {
				cg.Choices = append(cg.Choices, choice(e.ID, e, isChosen[e.ID], typed[e.ID]))
			}
		}
		if len(cg.Choices) > 0 {
			f.Groups = append(f.Groups, cg)
		}
	}
	return f
}

// emptyAssignForm is the form for a new programme, starting on the clinic's
// today.
func (s *Server) emptyAssignForm(v flows.PatientView) assignFormView {
	f := assignForm(nil, nil, nil)
	f.StartsOn = v.Clock.ISODate(s.cfg.Now())
	return f
}

// rowOf is the patient's programme id ("" or not theirs: nil).
func rowOf(v flows.PatientView, id string) *flows.ProgrammeRow {
	for i := range v.Programmes {
		if v.Programmes[i].Current.ID == id {
			return &v.Programmes[i]
		}
	}
	return nil
}

// newVersionForm is "New version" of programme id: its current version's
// title, notes, exercises and doses, starting today.
func (s *Server) newVersionForm(v flows.PatientView, id string) assignFormView {
	base := rowOf(v, id)
	if base == nil {
		return s.emptyAssignForm(v)
	}
	var chosen []string
	for i := range base.Current.Exercises {
		chosen = append(chosen, flows.CurrentExercise(i))
	}
	f := assignForm(base, chosen, nil)
	f.Title, f.Notes, f.StartsOn = base.Current.Title, base.Current.Notes, v.Clock.ISODate(s.cfg.Now())
	return f
}

// typedAssignForm is the form as a (refused) assignment had it.
func typedAssignForm(v flows.PatientView, a flows.Assignment) assignFormView {
	f := assignForm(rowOf(v, a.ProgrammeID), a.CatalogueIDs, a.Doses)
	f.Title, f.Notes, f.StartsOn = a.Title, a.Notes, a.StartsOn
	return f
}

// parseAssignForm reads the assign form: title, exercise (repeatable:
// catalogue ids, or "cur:N" of the current version for a new one), notes;
// optional starts_on, programme_id (a new version of that programme), and
// each chosen exercise's dose fields "<key>.<exercise>" (sets, reps,
// hold_seconds, times_per_day, days_per_week). The flow checks what it
// says.
func parseAssignForm(form url.Values) flows.Assignment {
	a := flows.Assignment{
		ProgrammeID:  strings.TrimSpace(form.Get("programme_id")),
		Title:        strings.TrimSpace(form.Get("title")),
		Notes:        strings.TrimSpace(form.Get("notes")),
		StartsOn:     strings.TrimSpace(form.Get("starts_on")),
		CatalogueIDs: form["exercise"],
	}
	for _, v := range a.CatalogueIDs {
		for _, d := range pmsbridge.DoseFields {
			vals, ok := form[d.Key+"."+v]
			if !ok || len(vals) == 0 {
				continue
			}
			if a.Doses == nil {
				a.Doses = map[string]map[string]string{}
			}
			if a.Doses[v] == nil {
				a.Doses[v] = map[string]string{}
			}
			a.Doses[v][d.Key] = vals[0]
		}
	}
	return a
}

// assign is POST /patients/{id}/programmes. After it, the page says what
// happens to the PDF (the outlook at the time of assigning).
func (s *Server) assign(w http.ResponseWriter, r *http.Request) {
	p, ok := s.patientForm(w, r)
	if !ok {
		return
	}
	pr := *practitionerFrom(r.Context())
	a := parseAssignForm(r.PostForm)
	prog, err := s.flows.Assign(r.Context(), pr, p, a)
	if err != nil {
		s.patientError(w, r, p, err, &a)
		return
	}
	o, err := s.flows.PDFOutlook(r.Context(), pr, p)
	if err != nil {
		s.logger(r.Context()).Warn("pdf outlook after assigning", "err", err)
	}
	http.Redirect(w, r, "/patients/"+p.ID+"?done=assigned&pdf="+outlookKey(o)+"&programme="+url.QueryEscape(prog.ID)+"#prog-"+prog.ID, http.StatusSeeOther)
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
		s.patientError(w, r, p, err, nil)
		return
	}
	http.Redirect(w, r, "/patients/"+p.ID+"?done=resent#prog-"+prog.ID, http.StatusSeeOther)
}

// unlock is POST /patients/{id}/programmes/{pid}/unlock: the patient may
// try their code again at once after too many wrong years (audited).
func (s *Server) unlock(w http.ResponseWriter, r *http.Request) {
	p, ok := s.loadPatient(w, r)
	if !ok {
		return
	}
	prog, err := s.flows.Programme(r.Context(), p, r.PathValue("pid"), 1)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if err := s.flows.UnlockProgramme(r.Context(), *practitionerFrom(r.Context()), p, prog); err != nil {
		s.Error(w, r, err)
		return
	}
	http.Redirect(w, r, "/patients/"+p.ID+"?done=unlocked#prog-"+prog.ID, http.StatusSeeOther)
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
