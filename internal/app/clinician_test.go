package app_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/bridge"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/internal/apptest"
	"github.com/physitrack/pmsbridge/store"
)

// wantHTML fails t unless body has each snippet of HTML as it is.
func wantHTML(t *testing.T, what, body string, snippets ...string) {
	t.Helper()
	for _, s := range snippets {
		if !strings.Contains(body, s) {
			t.Errorf("%s: the page lacks %s; body:\n%s", what, s, pageText(body))
		}
	}
}

// clinicIn makes a subscription in time zone zone with one practitioner
// (email) and their Cliniko key saved, logged in.
func clinicIn(t *testing.T, e *apptest.Env, name, zone, email, key string) (store.Subscription, store.Practitioner, *apptest.Browser) {
	t.Helper()
	ctx := context.Background()
	sub, err := e.Store.CreateSubscription(ctx, name, store.WithTimeZone(zone))
	if err != nil {
		t.Fatal(err)
	}
	pr, err := e.Store.CreatePractitioner(ctx, store.NewPractitioner{SubscriptionID: sub.ID, Email: email, Name: "Dr " + name, Password: apptest.Password})
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		e.SaveKey(pr.ID, key)
	}
	return sub, pr, e.Login(email)
}

// TestTimesInClinicTime: every time and date a clinic's practitioners and
// patients see is in the clinic's time zone, in one format. At 23:30 UTC
// on 30 Nov 2026 it is already 1 Dec, 12:30 in Auckland and still 30 Nov,
// 18:30 in Toronto: the patient page (last read from Cliniko, the date
// the programme was given, today's date for the start), the lock-out
// shown to the practitioner and told to the patient, and the PDF.
func TestTimesInClinicTime(t *testing.T) {
	t.Parallel()
	clock := newStepClock(time.Date(2026, 11, 30, 23, 30, 0, 0, time.UTC))
	e := apptest.Start(t, apptest.Options{Now: clock.Now})
	for _, tc := range []struct {
		zone, email, day, iso, time, lockedUntil string
	}{
		{"Pacific/Auckland", "kiwi@clinic.example", "1 Dec 2026", "2026-12-01", "12:30", "13:30"},
		{"America/Toronto", "maple@clinic.example", "30 Nov 2026", "2026-11-30", "18:30", "19:30"},
	} {
		t.Run(tc.zone, func(t *testing.T) {
			sub, _, b := clinicIn(t, e, tc.zone+" Physio", tc.zone, tc.email, sandbox.DemoAdminKey)
			_, pid := b.Open(sandbox.DemoPatientID)
			if pid == "" {
				t.Fatal("import failed")
			}
			page := b.Get("/patients/" + pid)
			wantPage(t, "patient page", page, http.StatusOK,
				"Details last read from Cliniko: "+tc.day+", "+tc.time, "Today is "+tc.day+".")
			wantHTML(t, "the start date", page.Body, `name="starts_on" type="date" class="date" value="`+tc.iso+`"`)
			prog := assignProgramme(t, b, pid, kneeForm("Knee rehab, week 1"))
			if prog.StartsOn != tc.iso {
				t.Errorf("starts on %s, want the clinic's today %s", prog.StartsOn, tc.iso)
			}
			wantPage(t, "the programme's row", b.Get("/patients/"+pid), http.StatusOK, "starts "+tc.day+" · given "+tc.day)
			if strings.Contains(pageText(b.Get("/patients/"+pid).Body), "UTC") {
				t.Error("the patient page shows a time in UTC")
			}
			pdf := b.Get("/patients/" + pid + "/programmes/" + prog.ID + "/versions/1/pdf")
			if text := normSpace(pdfText(t, []byte(pdf.Body))); !strings.Contains(text, "starts "+tc.day+" · given "+tc.day) {
				t.Errorf("the PDF does not give the clinic's dates (%s):\n%s", tc.day, text)
			}
			// Five wrong years lock the code for an hour: until 00:30 UTC.
			ref, err := e.Store.ClinicRef(context.Background(), sub.ID)
			if err != nil {
				t.Fatal(err)
			}
			patient := e.NewBrowser()
			for i := range 5 {
				patient.PostForm("/access", url.Values{"c": {ref}, "code": {prog.Code}, "year_of_birth": {strconv.Itoa(1970 + i)}})
			}
			r := patient.PostForm("/access", url.Values{"c": {ref}, "code": {prog.Code}, "year_of_birth": {"1985"}})
			if r.StatusCode != http.StatusTooManyRequests || !strings.Contains(alertOf(r.Body), "after "+tc.lockedUntil+" ") {
				t.Errorf("locked code: %d %q, want 429 saying after %s", r.StatusCode, alertOf(r.Body), tc.lockedUntil)
			}
			wantPage(t, "the locked programme on the practitioner's page", b.Get("/patients/"+pid), http.StatusOK, "locked until "+tc.lockedUntil)
		})
	}
}

// TestNewVersionPrefilledAndDosesReachPDF: doses typed on the form reach
// the PDF; "New version" opens the form with the current version's title,
// notes, exercises and doses; the new version's changed dose reaches its
// PDF; the patient page shows one row with the current version and the
// earlier one, while the patient JSON lists both.
func TestNewVersionPrefilledAndDosesReachPDF(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": sandbox.DemoAdminKey})
	b := e.Login("demo@clinic.example")
	_, pid := b.Open(sandbox.DemoPatientID)
	form := url.Values{"title": {"Knee rehab, week 1"}, "notes": {"Ice afterwards."}, "exercise": {"ex_quad_set", "ex_bridge"},
		"sets.ex_quad_set": {"4"}, "reps.ex_quad_set": {"12"}, "hold_seconds.ex_quad_set": {""}, "times_per_day.ex_quad_set": {"3"}, "days_per_week.ex_quad_set": {"6"}}
	v1 := assignProgramme(t, b, pid, form)
	pdfOf := func(v int) string {
		t.Helper()
		r := b.Get("/patients/" + pid + "/programmes/" + v1.ID + "/versions/" + strconv.Itoa(v) + "/pdf")
		if r.StatusCode != http.StatusOK {
			t.Fatalf("download v%d: %d", v, r.StatusCode)
		}
		return normSpace(pdfText(t, []byte(r.Body)))
	}
	if text := pdfOf(1); !strings.Contains(text, "4 sets of 12 repetitions, 3 times a day, 6 days a week") {
		t.Errorf("v1's PDF lacks the typed dose:\n%s", text)
	}

	page := b.Get("/patients/" + pid + "?version_of=" + v1.ID)
	wantPage(t, "New version", page, http.StatusOK, "New version of “Knee rehab, week 1”", "Assign version 2 and send the PDF to Cliniko")
	wantHTML(t, "New version", page.Body, `name="programme_id" value="`+v1.ID+`"`, `value="Knee rehab, week 1"`, ">Ice afterwards.</textarea>")
	for _, want := range []string{
		`name="exercise" value="cur:0" checked`, `name="exercise" value="cur:1" checked`,
		`name="sets.cur:0" value="4"`, `name="reps.cur:0" value="12"`, `name="hold_seconds.cur:0" value=""`, `name="days_per_week.cur:0" value="6"`,
	} {
		if !strings.Contains(page.Body, want) {
			t.Errorf("the new-version form lacks %s", want)
		}
	}
	if strings.Contains(page.Body, `value="ex_quad_set"`) {
		t.Error("the new-version form offers the current version's exercise twice")
	}

	// Bad doses keep what was typed and say what is wrong.
	bad := url.Values{"programme_id": {v1.ID}, "title": {"Knee rehab, week 2"}, "notes": {"Ice afterwards."}, "exercise": {"cur:0"}, "sets.cur:0": {"25"}}
	r := b.PostForm("/patients/"+pid+"/programmes", bad)
	wantPage(t, "bad dose", r, http.StatusUnprocessableEntity, "Quadriceps setting: sets must be from 0 to 20.")
	wantHTML(t, "bad dose", r.Body, `value="Knee rehab, week 2"`, `name="sets.cur:0" value="25"`)

	v2 := assignProgramme(t, b, pid, url.Values{"programme_id": {v1.ID}, "title": {"Knee rehab, week 2"}, "exercise": {"cur:0"},
		"sets.cur:0": {"5"}, "reps.cur:0": {"15"}, "hold_seconds.cur:0": {"10"}, "times_per_day.cur:0": {"2"}, "days_per_week.cur:0": {"7"}})
	if v2.Version != 2 || v2.Code != v1.Code {
		t.Fatalf("new version %d with code %s, want 2 with %s", v2.Version, v2.Code, v1.Code)
	}
	if text := pdfOf(2); !strings.Contains(text, "5 sets of 15 repetitions, hold each for 10 seconds, twice a day, every day") || strings.Contains(text, "Bridge") {
		t.Errorf("v2's PDF lacks the changed dose, or keeps a dropped exercise:\n%s", text)
	}
	doc := patientDoc(t, b, pid)
	var versions []int
	for _, p := range doc.Programmes {
		if p.ID == v1.ID {
			versions = append(versions, p.Version)
		}
	}
	if !slices.Equal(versions, []int{2, 1}) || !doc.Programmes[0].Current {
		t.Errorf("patient JSON versions %v (first current: %v), want [2 1] with 2 current", versions, doc.Programmes[0].Current)
	}
	page = b.Get("/patients/" + pid)
	if n := strings.Count(page.Body, `class="prog" id="prog-`); n != 1 {
		t.Errorf("%d programme rows, want 1 for the two versions", n)
	}
	wantPage(t, "the row", page, http.StatusOK, "Knee rehab, week 2", "Version 2 (current)", "Earlier version", "Version 1 “Knee rehab, week 1”")
}

// TestUnlockFromPatientPage: after too many wrong years the practitioner
// sees the lock on the programme and unlocks it (audited); the patient
// then gets in at once.
func TestUnlockFromPatientPage(t *testing.T) {
	t.Parallel()
	e, b, pid, code := accessSetup(t, nil, sandbox.DemoPatientID)
	patient := e.NewBrowser()
	for i := range 5 {
		r := openProgramme(patient, code, strconv.Itoa(1970+i))
		if want := "You can try " + strconv.Itoa(4-i) + " more time"; i < 4 && !strings.Contains(alertOf(r.Body), want) {
			t.Errorf("wrong year %d: %q, want it to say %q", i+1, alertOf(r.Body), want)
		}
	}
	if r := openProgramme(patient, code, "1985"); r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("locked: %d", r.StatusCode)
	}
	page := b.Get("/patients/" + pid)
	wantPage(t, "patient page", page, http.StatusOK, "locked until", "Unlock now")
	m := regexp.MustCompile(`action="(/patients/[^"]+/unlock)"`).FindStringSubmatch(page.Body)
	if m == nil {
		t.Fatal("no unlock form")
	}
	r := b.PostForm(html.UnescapeString(m[1]), nil)
	if r.StatusCode != http.StatusSeeOther || r.Location() != "/patients/"+pid+"?done=unlocked" {
		t.Fatalf("unlock: %d to %q", r.StatusCode, r.Location())
	}
	if page := b.Get(r.Location()); strings.Contains(page.Body, "locked until") || !strings.Contains(page.Body, "The programme is unlocked") {
		t.Error("the page still shows the lock, or does not say it is unlocked")
	}
	if r := openProgramme(patient, code, "1985"); r.StatusCode != http.StatusOK {
		t.Errorf("after the unlock: %d %q", r.StatusCode, alertOf(r.Body))
	}
	audit, err := e.Store.AuditOf(context.Background(), pid, 0)
	if err != nil || !slices.ContainsFunc(audit, func(a store.AuditEntry) bool { return a.Op == "programme.unlocked" }) {
		t.Errorf("the unlock is not audited: %v", err)
	}
}

// TestAnotherAccountsKeyWarnedOnSave: a clinic whose patients come from
// Demo Physio Clinic (au1) saves the key of Harbour Street Physiotherapy
// (uk2, a UK clinic): saved, but the page warns of another Cliniko account
// and that the clinic belongs in the UK's region.
func TestAnotherAccountsKeyWarnedOnSave(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": sandbox.DemoAdminKey, "olivia@clinic.example": ""})
	if _, pid := e.Login("demo@clinic.example").Open(sandbox.DemoPatientID); pid == "" {
		t.Fatal("import failed")
	}
	b := e.Login("olivia@clinic.example")
	r := b.PostForm("/settings/cliniko", url.Values{"api_key": {sandbox.DemoUK2AdminKey}})
	wantRedirect(t, "save", r, "/settings/cliniko?done=saved&replayed=0")
	settings := b.Get(r.Location())
	wantPage(t, "settings", settings, http.StatusOK,
		"Harbour Street Physiotherapy (United Kingdom)", "This key is from another Cliniko account",
		"This Cliniko account belongs in United Kingdom", "https://uk.physitrack.com")
	wantHTML(t, "settings", settings.Body, "your clinic's patients are in Demo Physio Clinic (Australia)")
	// Olivia's programmes for the clinic's patients are not sent with it.
	_, zoe := e.Login("demo@clinic.example").Open(sandbox.DemoPatientID)
	if err := e.Store.Share(context.Background(), zoe, olivia(t, e).ID); err != nil {
		t.Fatal(err)
	}
	wantPage(t, "the patient page", b.Get("/patients/"+zoe), http.StatusOK, "The PDF will be sent to Cliniko with Dr Demo's key (the patient's owner), because your Cliniko key is of another Cliniko region.")
}

func olivia(t *testing.T, e *apptest.Env) store.Practitioner {
	t.Helper()
	p, err := e.Store.PractitionerByEmail(context.Background(), "olivia@clinic.example")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPatientsListFlagsFailedPDFs: a patient with a PDF that failed is
// flagged beside birth-year problems; the filter values add up.
func TestPatientsListFlagsFailedPDFs(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	e.SeedClinic("Demo Physio Clinic", map[string]string{"sam@clinic.example": sandbox.DemoSchedulerKey})
	b := e.Login("sam@clinic.example")
	_, zoe := b.Open(sandbox.DemoPatientID)
	_, jose := b.Open("1002")
	_, hanako := b.Open("836447129235882005") // no date of birth in Cliniko
	prog := assignProgramme(t, b, zoe, kneeForm("Knee"))
	waitPDFState(t, e, b, zoe, prog.ID, 1, pmsbridge.PDFFailed)
	list := b.Get("/patients")
	wantPage(t, "patients", list, http.StatusOK, "1 patient has a programme PDF that did not reach Cliniko", "1 not sent")
	wantHTML(t, "patients", list.Body, "1 patient's year of birth needs checking")
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"attention=pdf", []string{zoe}},
		{"attention=birth-year", []string{hanako}},
		{"attention=pdf&attention=birth-year", []string{zoe, hanako}},
		{"", []string{zoe, jose, hanako}},
	} {
		got := listedPatients(b.Get("/patients?" + tc.query).Body)
		slices.Sort(got)
		slices.Sort(tc.want)
		if !slices.Equal(got, tc.want) {
			t.Errorf("/patients?%s lists %v, want %v", tc.query, got, tc.want)
		}
	}
}

// TestArchivedPatientPageSaysWhy: when the key is the clinic's own, a
// patient Cliniko does not show is said to be archived, not of another
// account; a key of another account is said to be one.
func TestArchivedPatientPageSaysWhy(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": sandbox.DemoAdminKey, "olga@clinic.example": ""})
	b := e.Login("demo@clinic.example")
	r, _ := b.Open(sandbox.DemoArchivedPatientID)
	wantPage(t, "archived", r, http.StatusNotFound, "Cliniko no longer shows this patient",
		"Your key belongs to Demo Physio Clinic (Australia), your clinic's Cliniko account", "unarchive them")
	if strings.Contains(r.Body, "another Cliniko account") {
		t.Error("the page blames the key's account although it is the clinic's")
	}
	other := e.Sandbox.AddAccount("au1", "Other Clinic", sandbox.Business{ID: "777", BusinessName: "Other Clinic", CountryCode: "AU", TimeZoneIdentifier: "Australia/Perth"})
	_, key := other.AddUser("Olga", "Other", "olga@other.example", sandbox.RoleAdministrator)
	olga := e.Login("olga@clinic.example")
	wantRedirect(t, "save another account's key", olga.PostForm("/settings/cliniko", url.Values{"api_key": {key}}), "/settings/cliniko?done=saved&replayed=0")
	r, _ = olga.Open("1002")
	wantPage(t, "another account's key", r, http.StatusNotFound, "Your key is from another Cliniko account",
		"Your saved key belongs to Other Clinic (Australia), but your clinic's patients are in Demo Physio Clinic (Australia).")
}

// TestPatientPagesCarryTheClinic: the address on the PDF carries the
// clinic's reference; /access with it and the programme's own address
// show the clinic's name, not ours; the programme's address works for a
// reload, and once its hour is up asks for the code again, still naming
// the clinic; a code of the wrong shape is told so.
func TestPatientPagesCarryTheClinic(t *testing.T) {
	t.Parallel()
	clock := newStepClock(time.Now().UTC())
	e, b, pid, code := accessSetup(t, clock, sandbox.DemoPatientID)
	progs := patientDoc(t, b, pid).Programmes
	pdf := normSpace(pdfText(t, []byte(b.Get("/patients/"+pid+"/programmes/"+progs[0].ID+"/versions/1/pdf").Body)))
	m := regexp.MustCompile(`(https?://\S+/access\?c=([0-9a-f]{12}))`).FindStringSubmatch(pdf)
	if m == nil {
		t.Fatalf("the PDF's access address has no clinic reference:\n%s", pdf)
	}
	ref := m[2]
	patient := e.NewBrowser()
	form := patient.Get("/access?c=" + ref)
	wantPage(t, "/access of the clinic", form, http.StatusOK, "Demo Physio Clinic")
	wantHTML(t, "/access of the clinic", form.Body, `name="c" value="`+ref+`"`)
	if strings.Contains(pageText(form.Body), "pmsbridge") {
		t.Error("the patient's page names pmsbridge")
	}
	wantPage(t, "a code of the wrong shape", patient.PostForm("/access", url.Values{"c": {ref}, "code": {"abc12"}, "year_of_birth": {"1985"}}),
		http.StatusBadRequest, "Your code is 8 letters from a to z")
	r := patient.PostForm("/access", url.Values{"c": {ref}, "code": {code}, "year_of_birth": {"1985"}})
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Location(), "/access/programme?t=") {
		t.Fatalf("right code and year: %d to %q, want 303 to the programme's address", r.StatusCode, r.Location())
	}
	for range 2 { // a reload shows it again
		wantPage(t, "the programme", patient.Get(r.Location()), http.StatusOK, "Knee rehab, week 1", "Your exercise programme from Demo Physio Clinic")
	}
	clock.Advance(time.Hour + time.Minute)
	wantPage(t, "after the hour", patient.Get(r.Location()), http.StatusForbidden, "Please enter your code again", "Demo Physio Clinic")
}

// TestKeptYearShown: a year read from Cliniko stays in use when Cliniko's
// date of birth becomes unreadable; the page explains it and the patient
// still gets in.
func TestKeptYearShown(t *testing.T) {
	t.Parallel()
	e, b, pid, code := accessSetup(t, nil, sandbox.DemoPatientID)
	e.Sandbox.EditPatient(sandbox.DemoPatientID, func(p *sandbox.Patient) { d := "14/03/85"; p.DateOfBirth = &d })
	doc := refreshFromCliniko(t, e, b, pid, func(d bridge.PatientJSON) bool { return d.BirthYearStatus == "invalid" })
	if yearOf(doc) != 1985 || doc.BirthYearRaw != "14/03/85" {
		t.Errorf("after Cliniko's date became unreadable: year %d, raw %q; want 1985 kept, raw shown", yearOf(doc), doc.BirthYearRaw)
	}
	wantPage(t, "patient page", b.Get("/patients/"+pid), http.StatusOK, "unreadable in Cliniko", "still opens their programmes with")
	if r := openProgramme(e.NewBrowser(), code, "1985"); r.StatusCode != http.StatusOK {
		t.Errorf("the patient with the kept year: %d %q", r.StatusCode, alertOf(r.Body))
	}
}
