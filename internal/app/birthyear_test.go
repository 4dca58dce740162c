package app_test

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge/bridge"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/internal/apptest"
)

var patientLinkRe = regexp.MustCompile(`href="/patients/(pat_[A-Za-z0-9_-]+)"`)

// listedPatients are the patient ids a patients list page links to.
func listedPatients(body string) []string {
	var ids []string
	for _, m := range patientLinkRe.FindAllStringSubmatch(body, -1) {
		if !slices.Contains(ids, m[1]) {
			ids = append(ids, m[1])
		}
	}
	slices.Sort(ids)
	return ids
}

// refreshFromCliniko presses "Refresh from Cliniko" and waits until the
// patient JSON shows a sync after since and satisfies done.
func refreshFromCliniko(t *testing.T, e *apptest.Env, b *apptest.Browser, pid string, done func(bridge.PatientJSON) bool) bridge.PatientJSON {
	t.Helper()
	r := b.PostForm("/patients/"+pid+"/refresh", nil)
	// The page waits briefly for the refresh and says how it went (or that
	// it is still running, on a slow day).
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Location(), "/patients/"+pid+"?done=refresh") {
		t.Fatalf("refresh: %d to %q", r.StatusCode, r.Location())
	}
	var doc bridge.PatientJSON
	e.Eventually("the refresh of "+pid, func() bool { doc = patientDoc(t, b, pid); return done(doc) })
	return doc
}

func yearOf(doc bridge.PatientJSON) int {
	if doc.YearOfBirth == nil {
		return 0
	}
	return *doc.YearOfBirth
}

func TestBirthYears(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": sandbox.DemoAdminKey})
	b := e.Login("demo@clinic.example")
	imported := map[string]string{} // Cliniko id → our id
	for _, cid := range []string{"1001", "1002", "836447129235882001", "836447129235882005", "836447129235882006", "836447129235882008"} {
		_, pid := b.Open(cid)
		if pid == "" {
			t.Fatalf("import of %s failed", cid)
		}
		imported[cid] = pid
	}

	t.Run("import states", func(t *testing.T) {
		for _, tc := range []struct {
			desc, cid, status, raw string
			year                   int
		}{
			{"1985-03-14", "1001", "ok", "", 1985},
			{"null", "836447129235882005", "missing", "", 0},
			{`""`, "836447129235882006", "missing", "", 0},
			{"0000-00-00", "836447129235882008", "invalid", "0000-00-00", 0},
		} {
			t.Run(tc.desc, func(t *testing.T) {
				doc := patientDoc(t, b, imported[tc.cid])
				if string(doc.BirthYearStatus) != tc.status || yearOf(doc) != tc.year || doc.BirthYearRaw != tc.raw || doc.BirthYearSource != "cliniko" {
					t.Errorf("got status %q year %d raw %q source %q, want %q %d %q cliniko",
						doc.BirthYearStatus, yearOf(doc), doc.BirthYearRaw, doc.BirthYearSource, tc.status, tc.year, tc.raw)
				}
			})
		}
		page := b.Get("/patients/" + imported["836447129235882008"])
		if !strings.Contains(page.Body, "<code>0000-00-00</code>") || !strings.Contains(page.Body, "unreadable") {
			t.Errorf("Siobhán's page does not show the unreadable raw value")
		}
		if page := b.Get("/patients/" + imported["836447129235882005"]); !strings.Contains(page.Body, "Cliniko has no date of birth") {
			t.Errorf("Hanako's page does not say the date of birth is missing")
		}
	})

	attention := func(t *testing.T, want ...string) {
		t.Helper()
		var ids []string
		for _, cid := range want {
			ids = append(ids, imported[cid])
		}
		slices.Sort(ids)
		r := b.Get("/patients?attention=birth-year")
		if r.StatusCode != http.StatusOK {
			t.Fatalf("attention list: %d", r.StatusCode)
		}
		if got := listedPatients(r.Body); !slices.Equal(got, ids) {
			t.Errorf("attention list = %v, want %v", got, ids)
		}
		if all := b.Get("/patients"); len(listedPatients(all.Body)) != len(imported) {
			t.Errorf("full list has %d patients, want %d", len(listedPatients(all.Body)), len(imported))
		}
	}
	t.Run("attention list", func(t *testing.T) {
		attention(t, "836447129235882005", "836447129235882006", "836447129235882008")
	})

	t.Run("bad year input", func(t *testing.T) {
		pid := imported["836447129235882008"]
		for _, year := range []string{"", "abc", "1899", strconv.Itoa(time.Now().Year() + 1), "19900", "1990.5", "-1990"} {
			t.Run(strconv.Quote(year), func(t *testing.T) {
				r := b.PostForm("/patients/"+pid+"/birth-year", url.Values{"year": {year}})
				if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(alertOf(r.Body), "four digits") {
					t.Fatalf("got %d %q, want 422 saying how to enter the year", r.StatusCode, alertOf(r.Body))
				}
				if doc := patientDoc(t, b, pid); doc.BirthYearStatus != "invalid" || doc.YearOfBirth != nil {
					t.Errorf("patient changed: %s %v", doc.BirthYearStatus, doc.YearOfBirth)
				}
			})
		}
		r := b.PostForm("/patients/"+pid+"/birth-year", url.Values{"action": {"use_cliniko"}})
		if r.StatusCode != http.StatusConflict {
			t.Errorf("use Cliniko's year without a mismatch: %d, want 409", r.StatusCode)
		}
	})

	t.Run("set by hand", func(t *testing.T) {
		pid := imported["836447129235882008"]
		r := b.PostForm("/patients/"+pid+"/birth-year", url.Values{"year": {"1990"}})
		if r.StatusCode != http.StatusSeeOther || r.Location() != "/patients/"+pid+"?done=year" {
			t.Fatalf("set year: %d to %q", r.StatusCode, r.Location())
		}
		doc := patientDoc(t, b, pid)
		if doc.BirthYearStatus != "ok" || doc.BirthYearSource != "manual" || yearOf(doc) != 1990 || doc.BirthYearRaw != "" {
			t.Errorf("got %s/%s %d raw %q, want ok/manual 1990", doc.BirthYearStatus, doc.BirthYearSource, yearOf(doc), doc.BirthYearRaw)
		}
		attention(t, "836447129235882005", "836447129235882006")
	})

	t.Run("Cliniko changes a year set by hand", func(t *testing.T) {
		cid := "836447129235882001" // Łukasz, 1990-07-21
		pid := imported[cid]
		if r := b.PostForm("/patients/"+pid+"/birth-year", url.Values{"year": {"1990"}}); r.StatusCode != http.StatusSeeOther {
			t.Fatalf("set year: %d", r.StatusCode)
		}
		if doc := patientDoc(t, b, pid); doc.BirthYearSource != "manual" || doc.BirthYearStatus != "ok" {
			t.Fatalf("after setting by hand: %s/%s", doc.BirthYearStatus, doc.BirthYearSource)
		}
		// Refreshing with the same year in Cliniko changes nothing.
		synced := patientDoc(t, b, pid).Cliniko.LastSyncedAt
		doc := refreshFromCliniko(t, e, b, pid, func(d bridge.PatientJSON) bool {
			return d.Cliniko.LastSyncedAt != nil && (synced == nil || d.Cliniko.LastSyncedAt.After(*synced))
		})
		if doc.BirthYearStatus != "ok" || doc.BirthYearSource != "manual" {
			t.Errorf("refresh with an equal Cliniko year: %s/%s, want ok/manual", doc.BirthYearStatus, doc.BirthYearSource)
		}

		e.Sandbox.EditPatient(cid, func(p *sandbox.Patient) { d := "1991-07-21"; p.DateOfBirth = &d })
		doc = refreshFromCliniko(t, e, b, pid, func(d bridge.PatientJSON) bool { return d.BirthYearStatus == "mismatch" })
		if yearOf(doc) != 1990 || doc.ClinikoYear == nil || *doc.ClinikoYear != 1991 || doc.BirthYearSource != "manual" {
			t.Errorf("mismatch: year %d, cliniko year %v, source %s; want 1990, 1991, manual", yearOf(doc), doc.ClinikoYear, doc.BirthYearSource)
		}
		page := b.Get("/patients/" + pid)
		for _, want := range []string{"<strong>1990</strong>", "<strong>1991</strong>", "Use Cliniko's year (1991)", `name="action" value="use_cliniko"`} {
			if !strings.Contains(page.Body, want) {
				t.Errorf("patient page lacks %q", want)
			}
		}
		attention(t, "836447129235882005", "836447129235882006", cid)

		r := b.PostForm("/patients/"+pid+"/birth-year", url.Values{"action": {"use_cliniko"}})
		if r.StatusCode != http.StatusSeeOther || r.Location() != "/patients/"+pid+"?done=cliniko" {
			t.Fatalf("use Cliniko's year: %d to %q", r.StatusCode, r.Location())
		}
		doc = patientDoc(t, b, pid)
		if doc.BirthYearStatus != "ok" || doc.BirthYearSource != "cliniko" || yearOf(doc) != 1991 || doc.ClinikoYear != nil {
			t.Errorf("after using Cliniko's year: %s/%s %d (cliniko year %v), want ok/cliniko 1991", doc.BirthYearStatus, doc.BirthYearSource, yearOf(doc), doc.ClinikoYear)
		}
		attention(t, "836447129235882005", "836447129235882006")

		// From now on Cliniko's changes come through.
		e.Sandbox.EditPatient(cid, func(p *sandbox.Patient) { d := "1992-07-21"; p.DateOfBirth = &d })
		doc = refreshFromCliniko(t, e, b, pid, func(d bridge.PatientJSON) bool { return yearOf(d) == 1992 })
		if doc.BirthYearStatus != "ok" || doc.BirthYearSource != "cliniko" {
			t.Errorf("after a Cliniko change: %s/%s, want ok/cliniko", doc.BirthYearStatus, doc.BirthYearSource)
		}
	})

	t.Run("archived in Cliniko", func(t *testing.T) {
		cid := "1002"
		pid := imported[cid]
		e.Sandbox.ArchivePatient(cid)
		doc := refreshFromCliniko(t, e, b, pid, func(d bridge.PatientJSON) bool { return d.Cliniko != nil && d.Cliniko.ArchivedInCliniko })
		if doc.FirstName != "José" || yearOf(doc) != 1978 {
			t.Errorf("the archived patient's details were not kept: %s %d", doc.FirstName, yearOf(doc))
		}
		page := b.Get("/patients/" + pid)
		if page.StatusCode != http.StatusOK || !strings.Contains(page.Body, "Cliniko no longer shows this patient") {
			t.Errorf("patient page: %d, does not say the patient is archived in Cliniko", page.StatusCode)
		}
		if list := b.Get("/patients"); !slices.Contains(listedPatients(list.Body), pid) || !strings.Contains(list.Body, "archived in Cliniko") {
			t.Errorf("the patients list lost the archived patient or does not mark it")
		}
	})
}
