package bridge

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/pdf"
	"github.com/physitrack/pmsbridge/store"
)

// accessTokenTTL is how long a patient's programme page (and its PDF link)
// works after they entered their code and year: a reload or a bookmark
// within it shows the programme again, then they are asked again.
const accessTokenTTL = time.Hour

// clinicBrand is the clinic a patient's page is from: its name, its time
// and its reference (for links back to /access). The zero value is no
// clinic: the pages then name none, and times are in the region's zone.
type clinicBrand struct {
	Name  string
	Ref   string
	Clock pmsbridge.ClinicTime
}

type accessForm struct {
	clinicBrand
	Code    string
	Year    string
	Error   string
	Tone    string
	Heading string
}

func (f accessForm) clinic() (string, pmsbridge.ClinicTime) { return f.Name, f.Clock }

type accessView struct {
	clinicBrand
	Programme    pmsbridge.Programme
	Exercises    []accessExercise
	PDFURL       string
	Starts       string
	Practitioner string
	// Until is when the page stops working (clinic time of day).
	Until string
}

func (v accessView) clinic() (string, pmsbridge.ClinicTime) { return v.Name, v.Clock }

type accessExercise struct {
	pmsbridge.Exercise
	Dosage string
}

// brandOf reads the clinic of a clinic reference (the c of /access?c=…,
// from the address printed on the patient's PDF). An unknown reference is
// no clinic: it reveals nothing, and the page works without one.
func (s *Server) brandOf(r *http.Request, ref string) clinicBrand {
	b := clinicBrand{Clock: s.regionClock()}
	if ref == "" {
		return b
	}
	sub, err := s.deps.Store.ClinicByRef(r.Context(), ref)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.logger(r.Context()).Warn("read clinic of a reference", "err", err)
		}
		return b
	}
	return clinicBrand{Name: sub.Name, Ref: strings.ToLower(strings.TrimSpace(ref)), Clock: sub.ClinicTime()}
}

// brandOfSubscription is the clinic of subscription subID, with its
// reference.
func (s *Server) brandOfSubscription(r *http.Request, subID string) clinicBrand {
	sub, err := s.deps.Store.GetSubscription(r.Context(), subID)
	if err != nil {
		return clinicBrand{Clock: s.regionClock()}
	}
	b := clinicBrand{Name: sub.Name, Clock: sub.ClinicTime()}
	b.Ref, _ = s.deps.Store.ClinicRef(r.Context(), subID)
	return b
}

// regionClock is the region's default clinic time, for patients' pages
// that know no clinic.
func (s *Server) regionClock() pmsbridge.ClinicTime {
	c, err := pmsbridge.LoadClinicTime(s.cfg.TimeZone)
	if err != nil {
		return pmsbridge.ClinicTime{}
	}
	return c
}

func (s *Server) accessPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.page(w, r, http.StatusOK, "access", "Open your programme", accessForm{clinicBrand: s.brandOf(r, q.Get("c")), Code: q.Get("code")})
}

// normalCode is a typed code as codes are: lower case, without the spaces
// and hyphens people type to group letters.
func normalCode(typed string) string {
	return strings.NewReplacer(" ", "", "-", "", "\t", "").Replace(strings.ToLower(strings.TrimSpace(typed)))
}

// access is POST /access: code + year_of_birth (and c, the clinic
// reference of the page) → 303 to the programme's own short-lived address
// (accessProgramme); wrong → 401 with how many tries are left; locked →
// 429 with when to try again, in the clinic's time.
func (s *Server) access(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	code := normalCode(r.PostForm.Get("code"))
	yearText := strings.TrimSpace(r.PostForm.Get("year_of_birth"))
	form := accessForm{clinicBrand: s.brandOf(r, r.PostForm.Get("c")), Code: code, Year: yearText}
	year, err := strconv.Atoi(yearText)
	switch {
	case code == "" || yearText == "":
		form.Error = "Enter the 8-letter code from your programme and your year of birth (four digits, for example 1985)."
	case !pmsbridge.ValidCode(code):
		form.Error = "Your code is 8 letters from a to z, as printed on your programme (you typed " + pmsbridge.Count(len([]rune(code)), "character", "characters") + "). Check it and try again."
	case err != nil || year < 1000 || year > 9999:
		form.Error = "Enter your year of birth as four digits, for example 1985."
	}
	if form.Error != "" {
		s.page(w, r, http.StatusBadRequest, "access", "Open your programme", form)
		return
	}
	ctx := r.Context()
	prog, att, err := s.deps.Store.OpenProgramme(ctx, code, year, clientFrom(r))
	s.countAttempt("access", err)
	// The practitioner's page shows the patient's tries.
	if rerr := s.deps.Store.RecordAttempt(ctx, att); rerr != nil {
		s.logger(ctx).Warn("record access attempt", "err", rerr)
	}
	var le *store.LockedError
	switch {
	case errors.As(err, &le) || errors.Is(err, store.ErrLocked):
		when := "in an hour"
		if le != nil {
			// In the clinic's time of the page (the reference), never the
			// code's: that would tell whether the code exists.
			when = "after " + form.Clock.Time(le.Until)
			// By the app's clock, which decided the lock (not the wall clock).
			left := le.Until.Sub(s.cfg.Now())
			if mins := int(math.Ceil(left.Minutes())); mins > 0 {
				when += " (in about " + pmsbridge.Count(mins, "minute", "minutes") + ")"
			}
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(left.Seconds())+1)))
		}
		form.Error = "Too many attempts. For your security, this programme is locked for now. Please try again " + when + ", or ask your clinic to unlock it."
		s.page(w, r, http.StatusTooManyRequests, "access", "Open your programme", form)
		return
	case errors.Is(err, store.ErrBadCredentials):
		// The same answer for a wrong code, a wrong year and a patient
		// without a year on record: anything else would tell a stranger
		// that a code exists. The tries left are the code string's own
		// count, which every well-formed code has, made-up or real.
		form.Error = "The code and year of birth do not match a programme. Check both and try again. If they are right, your clinic may not have your year of birth yet: ask your practitioner."
		switch {
		case att.TriesLeft == 0:
			form.Error += " That was the last try for now: for your security, the next ones are refused for an hour."
		case att.TriesLeft > 0:
			form.Error += " You can try " + pmsbridge.Count(att.TriesLeft, "more time", "more times") + "."
		}
		s.page(w, r, http.StatusUnauthorized, "access", "Open your programme", form)
		return
	case err != nil:
		s.Error(w, r, err)
		return
	}
	token, err := s.accessToken(prog)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	http.Redirect(w, r, "/access/programme?t="+url.QueryEscape(token), http.StatusSeeOther)
}

// accessProgramme is GET /access/programme?t=…: the programme a patient
// opened, by its short-lived address (a reload or a bookmark works for
// accessTokenTTL; after that they are asked for their code again). It
// shows the programme's latest version, from their clinic.
func (s *Server) accessProgramme(w http.ResponseWriter, r *http.Request) {
	t := r.URL.Query().Get("t")
	prog, p, c, ok := s.openToken(r, t)
	if !ok {
		s.accessExpired(w, r, p)
		return
	}
	v := accessView{clinicBrand: s.brandOfSubscription(r, p.SubscriptionID), Programme: prog,
		PDFURL: "/access/pdf?t=" + url.QueryEscape(t)}
	// The prescriber's name, as the PDF's byline has it (empty when it
	// cannot be read); the clinic is the brand's.
	if pr, err := s.deps.Store.GetPractitioner(r.Context(), prog.PractitionerID); err == nil {
		v.Practitioner = pr.Name
	}
	v.Starts = v.Clock.Day(prog.StartsOn)
	v.Until = v.Clock.Time(time.Unix(c.Expires, 0))
	for _, e := range prog.Exercises {
		v.Exercises = append(v.Exercises, accessExercise{Exercise: e, Dosage: pdf.Dosage(e)})
	}
	w.Header().Set("Referrer-Policy", "no-referrer")
	s.page(w, r, http.StatusOK, "programme", prog.Title, v)
}

// accessExpired is the answer to an address whose time is up (or that was
// never ours): the form again, of the patient's clinic when it is known.
func (s *Server) accessExpired(w http.ResponseWriter, r *http.Request, p *store.Patient) {
	form := accessForm{Tone: "info", Heading: "Please enter your code again",
		Error: "For your privacy, this page works for an hour only. Enter your code and year of birth again to see your programme."}
	if p != nil {
		form.clinicBrand = s.brandOfSubscription(r, p.SubscriptionID)
	} else {
		form.clinicBrand = clinicBrand{Clock: s.regionClock()}
	}
	s.page(w, r, http.StatusForbidden, "access", "Open your programme", form)
}

type accessClaim struct {
	ProgrammeID string `json:"p"`
	Version     int    `json:"v"`
	Expires     int64  `json:"e"`
}

// accessToken is an encrypted, authenticated, expiring claim on a
// programme, for its page and PDF; it works on every serve process of the
// region.
func (s *Server) accessToken(p pmsbridge.Programme) (string, error) {
	b, _ := json.Marshal(accessClaim{p.ID, p.Version, s.cfg.Now().Add(accessTokenTTL).Unix()})
	return s.deps.Keys.Encrypt(b, "access-pdf")
}

// openToken reads an access token: the latest version of its programme
// and the patient, ok when it is still good. An expired token still names
// the patient (its clinic is shown on the page that asks again); a forged
// one names nothing.
func (s *Server) openToken(r *http.Request, t string) (pmsbridge.Programme, *store.Patient, accessClaim, bool) {
	var c accessClaim
	b, err := s.deps.Keys.Decrypt(t, "access-pdf")
	if err != nil || json.Unmarshal(b, &c) != nil {
		return pmsbridge.Programme{}, nil, c, false
	}
	prog, err := s.deps.Store.GetProgramme(r.Context(), c.ProgrammeID, 0)
	if err != nil {
		return prog, nil, c, false
	}
	p, err := s.deps.Store.GetPatient(r.Context(), prog.PatientID)
	if err != nil {
		return prog, nil, c, false
	}
	return prog, &p, c, s.cfg.Now().Unix() <= c.Expires
}

// accessPDF serves a patient's programme PDF to the holder of a fresh token.
func (s *Server) accessPDF(w http.ResponseWriter, r *http.Request) {
	prog, p, _, ok := s.openToken(r, r.URL.Query().Get("t"))
	if !ok {
		s.accessExpired(w, r, p)
		return
	}
	s.servePDF(w, r, prog, *p)
}
