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

// accessTokenTTL is how long a patient's PDF link works after they opened
// their programme.
const accessTokenTTL = time.Hour

type accessForm struct {
	Code    string
	Year    string
	Error   string
	Tone    string
	Heading string
}

type accessView struct {
	Programme pmsbridge.Programme
	Exercises []accessExercise
	PDFURL    string
	Clinic    string
	Starts    string
}

type accessExercise struct {
	pmsbridge.Exercise
	Dosage string
}

func (s *Server) accessPage(w http.ResponseWriter, r *http.Request) {
	s.page(w, r, http.StatusOK, "access", "Open your programme", accessForm{Code: r.URL.Query().Get("code")})
}

// access is POST /access: code + year_of_birth → the programme.
func (s *Server) access(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	code := strings.ToLower(strings.TrimSpace(r.PostForm.Get("code")))
	code = strings.ReplaceAll(code, " ", "")
	yearText := strings.TrimSpace(r.PostForm.Get("year_of_birth"))
	form := accessForm{Code: code, Year: yearText}
	year, err := strconv.Atoi(yearText)
	if code == "" || yearText == "" || err != nil || year < 1000 || year > 9999 {
		form.Error = "Enter the 8-letter code from your programme and your year of birth (four digits, for example 1985)."
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
			when = "after " + le.Until.UTC().Format("15:04") + " UTC"
			// By the app's clock, which decided the lock (not the wall clock).
			left := le.Until.Sub(s.cfg.Now())
			if mins := int(math.Ceil(left.Minutes())); mins > 0 {
				when += " (in about " + plural(mins, "minute") + ")"
			}
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(left.Seconds())+1)))
		}
		form.Error = "Too many attempts. For your security, this programme is locked for now. Please try again " + when + "."
		s.page(w, r, http.StatusTooManyRequests, "access", "Open your programme", form)
		return
	case errors.Is(err, store.ErrBadCredentials):
		// The same answer for a wrong code, a wrong year and a patient
		// without a year on record: anything else would tell a stranger
		// that a code exists. The practitioner's page shows the try.
		form.Error = "The code and year of birth do not match a programme. Check both and try again. If they are right, your clinic may not have your year of birth yet: ask your practitioner."
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
	v := accessView{Programme: prog, PDFURL: "/access/pdf?t=" + url.QueryEscape(token)}
	if t, err := time.Parse("2006-01-02", prog.StartsOn); err == nil {
		v.Starts = t.Format("2 January 2006")
	}
	for _, e := range prog.Exercises {
		v.Exercises = append(v.Exercises, accessExercise{Exercise: e, Dosage: pdf.Dosage(e)})
	}
	s.page(w, r, http.StatusOK, "programme", prog.Title, v)
}

type accessClaim struct {
	ProgrammeID string `json:"p"`
	Version     int    `json:"v"`
	Expires     int64  `json:"e"`
}

// accessToken is an encrypted, authenticated, expiring claim on one
// programme version's PDF; it works on every serve process of the region.
func (s *Server) accessToken(p pmsbridge.Programme) (string, error) {
	b, _ := json.Marshal(accessClaim{p.ID, p.Version, s.cfg.Now().Add(accessTokenTTL).Unix()})
	return s.deps.Keys.Encrypt(b, "access-pdf")
}

// accessPDF serves a patient's programme PDF to the holder of a fresh token.
func (s *Server) accessPDF(w http.ResponseWriter, r *http.Request) {
	gone := func() {
		s.page(w, r, http.StatusForbidden, "access", "Open your programme", accessForm{Error: "That download link has expired. Enter your code and year of birth again."})
	}
	b, err := s.deps.Keys.Decrypt(r.URL.Query().Get("t"), "access-pdf")
	if err != nil {
		gone()
		return
	}
	var c accessClaim
	if json.Unmarshal(b, &c) != nil || s.cfg.Now().Unix() > c.Expires {
		gone()
		return
	}
	prog, err := s.deps.Store.GetProgramme(r.Context(), c.ProgrammeID, c.Version)
	if err != nil {
		gone()
		return
	}
	p, err := s.deps.Store.GetPatient(r.Context(), prog.PatientID)
	if err != nil {
		gone()
		return
	}
	s.servePDF(w, r, prog, p)
}
