package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/config"
	"github.com/physitrack/pmsbridge/internal/apptest"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// The end-to-end tests of the Cliniko "Open in" button (issue 4): the real
// app, a real Redis and the Cliniko sandbox.

const importPath = "/cliniko_patient_import?patient_id="

// wantPage fails t unless r has the status and its body contains every
// text, HTML-escaped as the page templates escape it.
func wantPage(t *testing.T, what string, r apptest.Response, status int, texts ...string) {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s: status %d, want %d; body:\n%s", what, r.StatusCode, status, pageText(r.Body))
	}
	for _, s := range texts {
		if !strings.Contains(r.Body, html.EscapeString(s)) {
			t.Errorf("%s: the page does not say %q; body:\n%s", what, s, pageText(r.Body))
		}
	}
}

// wantRedirect fails t unless r is a 303 to location (path and query).
func wantRedirect(t *testing.T, what string, r apptest.Response, location string) {
	t.Helper()
	if r.StatusCode != http.StatusSeeOther || r.Location() != location {
		t.Fatalf("%s: got %d to %q, want 303 to %q; body:\n%s", what, r.StatusCode, r.Header.Get("Location"), location, pageText(r.Body))
	}
}

// pageText shortens a page for failure messages.
func pageText(body string) string {
	if i := strings.Index(body, "<main"); i >= 0 {
		body = body[i:]
	}
	if len(body) > 3000 {
		body = body[:3000] + "…"
	}
	return body
}

// importStatus reads GET /imports/status for a Cliniko patient id.
type importStatusDoc struct {
	State      string `json:"state"`
	PatientURL string `json:"patient_url"`
	Cause      string `json:"cause"`
	Message    string `json:"message"`
}

func importStatusOf(t *testing.T, b *apptest.Browser, clinikoID string) importStatusDoc {
	t.Helper()
	r := b.Get("/imports/status?patient_id=" + url.QueryEscape(clinikoID))
	if r.StatusCode != http.StatusOK {
		t.Fatalf("GET /imports/status: %d %s", r.StatusCode, r.Body)
	}
	var doc importStatusDoc
	if err := json.Unmarshal([]byte(r.Body), &doc); err != nil {
		t.Fatalf("GET /imports/status: %v: %s", err, r.Body)
	}
	return doc
}

// queueActivity is how many tasks a queue holds in any state plus how many
// it processed today: zero means nothing was ever queued there.
func queueActivity(t *testing.T, e *apptest.Env, queue string) int {
	t.Helper()
	queues, err := e.Jobs.Inspector().Queues()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(queues, queue) {
		return 0
	}
	info, err := e.Jobs.Inspector().GetQueueInfo(queue)
	if err != nil {
		t.Fatalf("queue %s: %v", queue, err)
	}
	return info.Size + info.Processed + info.Completed + info.Archived
}

// linksOf returns the subscription's Cliniko links on shard.
func linksOf(t *testing.T, e *apptest.Env, subID, shard string) map[string]string {
	t.Helper()
	links, err := e.Store.LinkedPatientsOf(context.Background(), subID, shard)
	if err != nil {
		t.Fatal(err)
	}
	return links
}

// openOutcome is what a click settled on, for clicks made off the test's
// goroutine.
type openOutcome struct {
	status    int
	location  string
	body      string
	patientID string
	err       error
}

// clickAndSettle is Browser.Open for goroutines: it follows the app's
// answers to a click until a patient page or an error page and reports
// problems instead of failing the test.
func clickAndSettle(b *apptest.Browser, baseURL, clinikoID string) openOutcome {
	path := importPath + url.QueryEscape(clinikoID)
	for i := 0; i < 200; i++ {
		resp, err := b.C.Get(baseURL + path)
		if err != nil {
			return openOutcome{err: err}
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		o := openOutcome{status: resp.StatusCode, body: string(body)}
		if loc, err := resp.Location(); err == nil {
			o.location = loc.RequestURI()
		}
		switch {
		case o.status == http.StatusSeeOther && strings.HasPrefix(o.location, "/patients/"):
			o.patientID = strings.TrimPrefix(o.location, "/patients/")
			return o
		case o.status == http.StatusSeeOther && strings.HasPrefix(o.location, "/cliniko_patient_import"):
			path = o.location
		case o.status == http.StatusAccepted:
			time.Sleep(50 * time.Millisecond)
			path = importPath + url.QueryEscape(clinikoID) + "&check=1"
		default:
			return o
		}
	}
	return openOutcome{err: fmt.Errorf("click on %s never settled", clinikoID)}
}

func TestLoginClickImportPatientPage(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": sandbox.DemoAdminKey})

	b := e.NewBrowser()
	r := b.Get("/cliniko_patient_import?patient_id=" + sandbox.DemoPatientID)
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Location(), "/login?next=") {
		t.Fatalf("no session: got %d to %q, want 303 to /login?next=…", r.StatusCode, r.Location())
	}
	next := r.Location()
	r = b.PostForm("/login", map[string][]string{"email": {"demo@clinic.example"}, "password": {apptest.Password}, "next": {"/cliniko_patient_import?patient_id=" + sandbox.DemoPatientID}})
	if r.StatusCode != http.StatusSeeOther || r.Location() != "/cliniko_patient_import?patient_id="+sandbox.DemoPatientID {
		t.Fatalf("login: got %d to %q (login page was %s)", r.StatusCode, r.Location(), next)
	}
	_, id := b.Open(sandbox.DemoPatientID)
	if id == "" {
		t.Fatal("did not land on a patient page")
	}
	page := b.Get("/patients/" + id)
	if page.StatusCode != 200 || !strings.Contains(page.Body, "Zoë") || !strings.Contains(page.Body, "O&#39;Brien") {
		t.Fatalf("patient page: %d, body lacks the patient's name", page.StatusCode)
	}
	// A repeat click goes straight to the same patient.
	_, again := b.Open(sandbox.DemoPatientID)
	if again != id {
		t.Fatalf("repeat click: got patient %q, want %q", again, id)
	}
}

// TestOpenRepeatClickRefreshesDebounced: a click on a linked patient goes
// straight to the patient page and queues a refresh from Cliniko, at most
// one per patient per jobs.RefreshDebounce.
func TestOpenRepeatClickRefreshesDebounced(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": sandbox.DemoAdminKey})
	b := e.Login("demo@clinic.example")

	// A healthy Cliniko: the first click waits for the import and goes
	// straight to the new patient, without the waiting page.
	r := b.Get(importPath + sandbox.DemoPatientID)
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Location(), "/patients/pat_") {
		t.Fatalf("first click: %d to %q, want 303 to the new patient", r.StatusCode, r.Location())
	}
	id := strings.TrimPrefix(r.Location(), "/patients/")
	if n := e.Sandbox.RequestCount("get_patient"); n != 1 {
		t.Fatalf("import read the patient %d times, want 1", n)
	}
	time.Sleep(300 * time.Millisecond) // time for a wrongly queued refresh to run
	if n := e.Sandbox.RequestCount("get_patient"); n != 1 {
		t.Fatalf("the import itself queued a refresh: %d reads", n)
	}

	// The patient changes in Cliniko; the next click shows them at once
	// (no waiting for Cliniko) and refreshes them in the background.
	e.Sandbox.EditPatient(sandbox.DemoPatientID, func(p *sandbox.Patient) { p.FirstName = "Zoey" })
	r = b.Get(importPath + sandbox.DemoPatientID)
	wantRedirect(t, "repeat click", r, "/patients/"+id)
	e.Eventually("the refresh to read the new name", func() bool {
		return strings.Contains(b.Get("/patients/"+id).Body, "Zoey")
	})
	ttl, err := e.App.Redis().TTL(context.Background(), "pmsb:debounce:refresh:"+id).Result()
	if err != nil || ttl < jobs.RefreshDebounce-time.Minute || ttl > jobs.RefreshDebounce {
		t.Errorf("refresh debounce: ttl %s (err %v), want about %s", ttl, err, jobs.RefreshDebounce)
	}
	reads := e.Sandbox.RequestCount("get_patient")
	if reads != 2 {
		t.Errorf("after one repeat click Cliniko was read %d times, want 2", reads)
	}

	// More clicks within the debounce window: same patient, no more reads.
	e.Sandbox.EditPatient(sandbox.DemoPatientID, func(p *sandbox.Patient) { p.FirstName = "Zed" })
	for i := 0; i < 3; i++ {
		wantRedirect(t, "click within the debounce window", b.Get(importPath+sandbox.DemoPatientID), "/patients/"+id)
	}
	time.Sleep(400 * time.Millisecond) // time for a wrongly queued refresh to run
	if n := e.Sandbox.RequestCount("get_patient"); n != reads {
		t.Errorf("clicks within the debounce window read Cliniko %d more times, want 0", n-reads)
	}
	if strings.Contains(b.Get("/patients/"+id).Body, "Zed") {
		t.Error("a debounced click refreshed the patient")
	}
	// The refresh button is not debounced.
	// It waits briefly for Cliniko and says what changed; on a slow day it
	// says that it is still reading.
	r = b.PostForm("/patients/"+id+"/refresh", nil)
	switch loc := r.Location(); {
	case r.StatusCode == http.StatusSeeOther && loc == "/patients/"+id+"?done=refreshed&changed=name":
		wantPage(t, "after the refresh", b.Get(loc), http.StatusOK, "Updated: name.", "Zed")
	case r.StatusCode == http.StatusSeeOther && loc == "/patients/"+id+"?done=refreshing":
		wantPage(t, "while refreshing", b.Get(loc), http.StatusOK, "Cliniko has not answered yet")
	default:
		t.Fatalf("refresh button: %d to %q", r.StatusCode, loc)
	}
	e.Eventually("the forced refresh", func() bool { return strings.Contains(b.Get("/patients/"+id).Body, "Zed") })
}

// TestOpenConcurrentClicksMakeOnePatient: many clicks at once on a new
// patient, by two practitioners of one subscription, import it once. The
// first to click owns it; without sharing the colleague gets the "owned by
// a colleague" page, in the sharing group everyone lands on the one patient.
func TestOpenConcurrentClicksMakeOnePatient(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	// Slow Cliniko down a little so that the clicks overlap the import.
	e.Sandbox.SetLatency(150 * time.Millisecond)
	for _, tc := range []struct {
		desc  string
		slug  string
		group bool
	}{
		{"no sharing", "solo", false},
		{"sharing group", "group", true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			emails := []string{"first@" + tc.slug + ".example", "second@" + tc.slug + ".example"}
			clinic := e.SeedClinic(tc.slug, map[string]string{emails[0]: sandbox.DemoAdminKey, emails[1]: sandbox.DemoPractitionerKey})
			if tc.group {
				if _, err := e.Store.SetSharing(context.Background(), clinic.Subscription.ID,
					[]string{clinic.Practitioners[emails[0]].ID, clinic.Practitioners[emails[1]].ID}, nil); err != nil {
					t.Fatal(err)
				}
			}
			browsers := map[string]*apptest.Browser{emails[0]: e.Login(emails[0]), emails[1]: e.Login(emails[1])}
			readsBefore := e.Sandbox.RequestCount("get_patient")
			type click struct {
				email string
				out   openOutcome
			}
			const perPractitioner = 5
			results := make(chan click, 2*perPractitioner)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for email, b := range browsers {
				for i := 0; i < perPractitioner; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						results <- click{email, clickAndSettle(b, e.URL, sandbox.DemoPatientID)}
					}()
				}
			}
			close(start)
			wg.Wait()
			close(results)

			links := linksOf(t, e, clinic.Subscription.ID, "au1")
			if len(links) != 1 || links[sandbox.DemoPatientID] == "" {
				t.Fatalf("links after concurrent clicks: %v, want exactly one for %s", links, sandbox.DemoPatientID)
			}
			id := links[sandbox.DemoPatientID]
			patient, err := e.Store.GetPatient(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			var owner string
			for email, p := range clinic.Practitioners {
				if p.ID == patient.OwnerID {
					owner = email
				}
			}
			if owner == "" {
				t.Fatalf("patient owner %s is neither practitioner", patient.OwnerID)
			}
			ownerName := clinic.Practitioners[owner].Name
			for c := range results {
				switch {
				case c.out.err != nil:
					t.Errorf("%s: %v", c.email, c.out.err)
				case c.email == owner || tc.group:
					if c.out.patientID != id {
						t.Errorf("%s: got %d to %q, want the patient %s", c.email, c.out.status, c.out.location, id)
					}
				case c.out.patientID != "":
					t.Errorf("colleague %s opened patient %s that is not shared with them", c.email, c.out.patientID)
				case c.out.status != http.StatusNotFound || !strings.Contains(c.out.body, html.EscapeString("This patient belongs to "+ownerName)):
					t.Errorf("colleague %s: got %d to %q, want the 404 page naming %s:\n%s", c.email, c.out.status, c.out.location, ownerName, pageText(c.out.body))
				}
			}
			for email, p := range clinic.Practitioners {
				visible, err := e.Store.ListPatientsVisibleTo(context.Background(), p)
				if err != nil {
					t.Fatal(err)
				}
				want := 0
				if email == owner || tc.group {
					want = 1
				}
				if len(visible) != want {
					t.Errorf("%s sees %d patients, want %d", email, len(visible), want)
				}
			}
			// One import read Cliniko; at most one debounced refresh may follow.
			if n := e.Sandbox.RequestCount("get_patient") - readsBefore; n < 1 || n > 2 {
				t.Errorf("Cliniko was asked for the patient %d times, want 1 (import) or 2 (plus one refresh)", n)
			}
		})
	}
}

// TestOpenRejectsBadPatientID: every malformed patient_id gets the 400 page
// saying what is wrong, and nothing is queued or created.
func TestOpenRejectsBadPatientID(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	clinic := e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": sandbox.DemoAdminKey})
	b := e.Login("demo@clinic.example")
	anon := e.NewBrowser()

	for _, tc := range []struct {
		desc, query, problem string
	}{
		{"missing", "", "no patient number"},
		{"other parameter only", "?id=1001", "no patient number"},
		{"empty", "?patient_id=", "no patient number"},
		{"letters", "?patient_id=abc", "not a number"},
		{"digits then letters", "?patient_id=1001abc", "not a number"},
		{"negative", "?patient_id=-5", "not a number"},
		{"plus sign", "?patient_id=%2B12", "not a number"},
		{"decimal", "?patient_id=1.5", "not a number"},
		{"leading space", "?patient_id=%2012", "not a number"},
		{"trailing newline", "?patient_id=12%0A", "not a number"},
		{"arabic-indic digits", "?patient_id=" + url.QueryEscape("١٢"), "not a number"},
		{"twenty digits", "?patient_id=12345678901234567890", "too long"},
		{"five thousand digits", "?patient_id=" + strings.Repeat("9", 5000), "too long"},
		{"above int64 max", "?patient_id=9223372036854775808", "not a valid Cliniko patient number"},
		{"two patient ids", "?patient_id=1001&patient_id=1002", "more than one"},
		{"same id twice", "?patient_id=1001&patient_id=1001", "more than one"},
		{"zero", "?patient_id=0", "not a valid Cliniko patient number"},
		{"zeros", "?patient_id=000", "not a valid Cliniko patient number"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			for who, br := range map[string]*apptest.Browser{"logged in": b, "no session": anon} {
				r := br.Get("/cliniko_patient_import" + tc.query)
				wantPage(t, who, r, http.StatusBadRequest, "This link from Cliniko is not valid", tc.problem)
			}
		})
	}

	if n := queueActivity(t, e, jobs.QueueImport); n != 0 {
		t.Errorf("bad links queued %d import tasks", n)
	}
	if n := e.Sandbox.RequestCount("get_patient") + e.Sandbox.RequestCount("list_patients"); n != 0 {
		t.Errorf("bad links made %d patient requests to Cliniko", n)
	}
	if links := linksOf(t, e, clinic.Subscription.ID, "au1"); len(links) != 0 {
		t.Errorf("bad links created links %v", links)
	}
	if ps, _ := e.Store.ListPatientsVisibleTo(context.Background(), clinic.Practitioners["demo@clinic.example"]); len(ps) != 0 {
		t.Errorf("bad links created %d patients", len(ps))
	}
	// A good id with leading zeros is the same Cliniko patient.
	_, id := b.Open("0" + sandbox.DemoPatientID)
	if id == "" || linksOf(t, e, clinic.Subscription.ID, "au1")[sandbox.DemoPatientID] != id {
		t.Errorf("patient_id=0%s: landed on %q; links %v", sandbox.DemoPatientID, id, linksOf(t, e, clinic.Subscription.ID, "au1"))
	}
}

// TestOpenWithoutSession: no session → login with next → back to the click;
// next only ever leads to a path on this site.
func TestOpenWithoutSession(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": sandbox.DemoAdminKey})

	t.Run("click, log in, back to the patient", func(t *testing.T) {
		b := e.NewBrowser()
		click := importPath + sandbox.DemoPatientID
		r := b.Get(click)
		wantRedirect(t, "click without a session", r, "/login?next="+url.QueryEscape(click))
		if got := r.Header.Get("Location"); got != "/login?next=%2Fcliniko_patient_import%3Fpatient_id%3D1001" {
			t.Errorf("Location %q: next is not escaped", got)
		}
		login := b.Get(r.Location())
		wantPage(t, "login page", login, http.StatusOK)
		if !strings.Contains(login.Body, `name="next" value="`+html.EscapeString(click)+`"`) {
			t.Errorf("the login form does not carry next=%s:\n%s", click, pageText(login.Body))
		}
		r = b.PostForm("/login", url.Values{"email": {"demo@clinic.example"}, "password": {apptest.Password}, "next": {click}})
		wantRedirect(t, "login", r, click)
		if _, id := b.Open(sandbox.DemoPatientID); id == "" {
			t.Fatal("after logging in the click did not reach the patient")
		}
	})

	t.Run("other pages keep their path and query", func(t *testing.T) {
		b := e.NewBrowser()
		r := b.Get("/patients?attention=birth-year")
		wantRedirect(t, "patients without a session", r, "/login?next="+url.QueryEscape("/patients?attention=birth-year"))
		r = b.Get("/imports/status?patient_id=1001")
		if r.StatusCode != http.StatusUnauthorized {
			t.Errorf("/imports/status without a session: %d, want 401", r.StatusCode)
		}
	})

	for _, tc := range []struct{ desc, next, want string }{
		{"protocol-relative", "//evil.example/x", "/patients"},
		{"absolute https", "https://evil.example/x", "/patients"},
		{"backslash", "/\\evil.example", "/patients"},
		{"encoded backslash", "/%5Cevil.example", "/%5Cevil.example"},
		{"javascript", "javascript:alert(1)", "/patients"},
		{"tab trick", "/\t/evil.example", "/patients"},
		{"scheme-relative with spaces", " //evil.example", "/patients"},
		{"relative path", "patients", "/patients"},
		{"empty", "", "/patients"},
		{"local path", "/settings/cliniko", "/settings/cliniko"},
	} {
		t.Run("next "+tc.desc, func(t *testing.T) {
			b := e.NewBrowser()
			r := b.PostForm("/login", url.Values{"email": {"demo@clinic.example"}, "password": {apptest.Password}, "next": {tc.next}})
			if r.StatusCode != http.StatusSeeOther {
				t.Fatalf("login: %d", r.StatusCode)
			}
			loc := r.Header.Get("Location")
			if u, err := url.Parse(loc); err != nil || u.Host != "" || u.Scheme != "" || strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\") {
				t.Fatalf("next=%q: redirected off the site to %q", tc.next, loc)
			}
			if loc != tc.want {
				t.Errorf("next=%q: redirected to %q, want %q", tc.next, loc, tc.want)
			}
			// A logged-in visit to the login page with a bad next stays here.
			r = b.Get("/login?next=" + url.QueryEscape(tc.next))
			if l := r.Header.Get("Location"); l != "" && l != tc.want {
				t.Errorf("GET /login?next=%q while logged in: redirected to %q", tc.next, l)
			}
		})
	}
}

// TestOpenWithoutKeyThenSave: no saved key → the settings page with a
// note; saving a key there goes on to the patient.
func TestOpenWithoutKeyThenSave(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	clinic := e.SeedClinic("Demo Physio Clinic", map[string]string{"nokey@clinic.example": ""})
	b := e.Login("nokey@clinic.example")

	click := importPath + sandbox.DemoPatientID
	r := b.Get(click)
	settings := "/settings/cliniko?need=key&next=" + url.QueryEscape(click)
	wantRedirect(t, "click without a key", r, settings)
	wantPage(t, "settings page", b.Get(settings), http.StatusOK, "pmsbridge needs your personal Cliniko API key", "No Cliniko API key is saved yet.")
	if n := queueActivity(t, e, jobs.QueueImport); n != 0 {
		t.Errorf("a click without a key queued %d imports", n)
	}

	// A wrong key keeps next, so a second try still goes on.
	r = b.PostForm("/settings/cliniko", url.Values{"api_key": {"MS0xbm90YXJlYWxrZXkwMDAwMDAw-au1"}, "next": {click}})
	wantPage(t, "wrong key", r, http.StatusUnprocessableEntity, "bad key")
	if !strings.Contains(r.Body, `name="next" value="`+html.EscapeString(click)+`"`) {
		t.Errorf("the settings form lost next after an error")
	}
	r = b.PostForm("/settings/cliniko", url.Values{"api_key": {sandbox.DemoPractitionerKey}, "next": {click}})
	wantRedirect(t, "save key", r, click)
	_, id := b.Open(sandbox.DemoPatientID)
	if id == "" {
		t.Fatal("after saving a key the click did not reach the patient")
	}
	cu, ok, err := e.Store.ClinikoUserOf(context.Background(), clinic.Practitioners["nokey@clinic.example"].ID)
	if err != nil || !ok || cu.Name != "Priya Raman" || cu.Shard != "au1" {
		t.Errorf("saved Cliniko user %+v (%v, %v), want Priya Raman on au1", cu, ok, err)
	}
}

// TestSettingsChecksKey: the key is checked with Cliniko before it is
// saved, and every kind of problem gets a 422 page naming it.
func TestSettingsChecksKey(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": ""})
	b := e.Login("demo@clinic.example")
	pr, _ := e.Store.PractitionerByEmail(context.Background(), "demo@clinic.example")
	hasKey := func() bool {
		_, ok, err := e.Store.ClinikoUserOf(context.Background(), pr.ID)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	// Not parallel: FailNext affects the whole sandbox.
	for _, tc := range []struct {
		desc, key string
		before    func()
		want      string
	}{
		{"empty", "", nil, "Paste your Cliniko API key"},
		{"key with spaces", "MS0xbm90YXJl YWxrZXkwMDAwMDAw-au1", nil, "no spaces"},
		{"cannot be a key", "abc123", nil, "too short to be a Cliniko API key"},
		{"unknown key", "MS0xbm90YXJlYWxrZXkwMDAwMDAw-au1", nil, "bad key"},
		{"key of another shard", strings.TrimSuffix(sandbox.DemoAdminKey, "-au1") + "-uk2", nil, "bad key"},
		{"revoked key", "", nil, ""}, // filled below
		{"unknown shard", "abc-zz99x", nil, "unknown shard"},
		{"Cliniko unreachable", sandbox.DemoAdminKey, func() { e.Sandbox.FailNext(3, http.StatusServiceUnavailable) }, "Cliniko unreachable"},
	} {
		if tc.desc == "revoked key" {
			acct := accountOn(t, e.Sandbox, "au1")
			_, key := acct.AddUser("Rita", "Revoked", "rita@clinic.example", "practitioner")
			e.Sandbox.RevokeKey(key)
			tc.key, tc.want = key, "bad key"
		}
		t.Run(tc.desc, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			r := b.PostForm("/settings/cliniko", url.Values{"api_key": {tc.key}})
			wantPage(t, "save", r, http.StatusUnprocessableEntity, tc.want)
			if hasKey() {
				t.Fatal("a key that did not pass the check was saved")
			}
			if tc.key != "" && len(tc.key) > 8 && strings.Contains(r.Body, tc.key) {
				t.Error("the error page repeats the key")
			}
		})
	}

	t.Run("valid key shows the Cliniko account, user, role and App URL", func(t *testing.T) {
		r := b.PostForm("/settings/cliniko", url.Values{"api_key": {"  " + sandbox.DemoAdminKey + "\n"}, "next": {"//evil.example/x"}})
		wantRedirect(t, "save", r, "/settings/cliniko?done=saved&replayed=0")
		page := b.Get(r.Location())
		wantPage(t, "settings", page, http.StatusOK, "Your Cliniko API key is saved and works.", "Your Cliniko connection",
			"Demo Physio Clinic (Australia)", "Demo Practitioner", "demo@clinic.example", "Administrator", e.Config.PublicURL+"/cliniko_patient_import")
		if strings.Contains(strings.ToLower(pageText(page.Body)), "shard") {
			t.Error("the settings page speaks of shards")
		}
		if strings.Contains(page.Body, "This key is not yours") || strings.Contains(page.Body, "another Cliniko account") {
			t.Error("the practitioner's own key of the clinic's account is warned about")
		}
		if !strings.Contains(page.Body, "http://pmsbridge.test/cliniko_patient_import") {
			t.Errorf("App URL is not public_url + /cliniko_patient_import")
		}
		if strings.Contains(page.Body, "may not upload patient files") {
			t.Error("an administrator is warned about uploads")
		}
		if strings.Contains(page.Body, sandbox.DemoAdminKey) || strings.Contains(page.Body, strings.TrimSuffix(sandbox.DemoAdminKey, "-au1")) {
			t.Error("the settings page shows the saved key")
		}
	})

	t.Run("scheduler key warns that the role cannot upload", func(t *testing.T) {
		r := b.PostForm("/settings/cliniko", url.Values{"api_key": {sandbox.DemoSchedulerKey}})
		wantRedirect(t, "save", r, "/settings/cliniko?done=saved&replayed=0")
		wantPage(t, "settings", b.Get(r.Location()), http.StatusOK, "Sam Scheduler", "scheduler", "may not upload patient files")
	})

	t.Run("a bad key over a working one leaves the working one in use", func(t *testing.T) {
		r := b.PostForm("/settings/cliniko", url.Values{"api_key": {"MS0xbm90YXJlYWxrZXkwMDAwMDAw-au1"}})
		wantPage(t, "save a bad key", r, http.StatusUnprocessableEntity, "bad key", "Nothing was changed: your saved key for Demo Physio Clinic (Australia) stays in use.")
		if cu, ok, _ := e.Store.ClinikoUserOf(context.Background(), pr.ID); !ok || cu.Name != "Sam Scheduler" {
			t.Errorf("saved key's user %+v, %v; want Sam Scheduler's key still saved", cu, ok)
		}
	})

	t.Run("remove asks first", func(t *testing.T) {
		page := b.Get("/settings/cliniko")
		if !strings.Contains(page.Body, `href="/settings/cliniko?remove=confirm#confirm-remove"`) || strings.Contains(page.Body, `name="action" value="remove"`) {
			t.Fatal("the settings page does not ask before removing the key")
		}
		page = b.Get("/settings/cliniko?remove=confirm")
		wantPage(t, "the second step", page, http.StatusOK, "Remove your Cliniko API key?", "Yes, remove the key", "Keep it")
		if !strings.Contains(page.Body, `name="action" value="remove"`) || !hasKey() {
			t.Fatal("the second step has no remove form, or the key went already")
		}
	})

	t.Run("remove deletes the key", func(t *testing.T) {
		r := b.PostForm("/settings/cliniko", url.Values{"action": {"remove"}})
		wantRedirect(t, "remove", r, "/settings/cliniko?done=removed")
		wantPage(t, "settings", b.Get(r.Location()), http.StatusOK, "Your Cliniko API key is removed.", "No Cliniko API key is saved yet.")
		if hasKey() {
			t.Fatal("the key is still saved")
		}
		if _, _, err := e.Store.ClinikoKey(context.Background(), pr.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ClinikoKey after remove: %v, want ErrNotFound", err)
		}
		r = b.Get(importPath + sandbox.DemoPatientID)
		if !strings.HasPrefix(r.Location(), "/settings/cliniko?need=key") {
			t.Errorf("click after removing the key: %d to %q, want the settings page", r.StatusCode, r.Location())
		}
	})
}

// TestSettingsClinikoTimeout: a Cliniko that answers slower than
// cliniko.timeout is "unreachable" on the settings page.
func TestSettingsClinikoTimeout(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{Configure: func(c *config.Config) { c.Cliniko.Timeout = time.Second }})
	e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": ""})
	b := e.Login("demo@clinic.example")
	e.Sandbox.SetLatency(1500 * time.Millisecond)
	r := b.PostForm("/settings/cliniko", url.Values{"api_key": {sandbox.DemoAdminKey}})
	wantPage(t, "save with a slow Cliniko", r, http.StatusUnprocessableEntity, "Cliniko unreachable", "Nothing was saved")
	e.Sandbox.SetLatency(0)
	r = b.PostForm("/settings/cliniko", url.Values{"api_key": {sandbox.DemoAdminKey}})
	wantRedirect(t, "save when Cliniko is back", r, "/settings/cliniko?done=saved&replayed=0")
}

// accountOn returns the sandbox's first account on shard.
func accountOn(t *testing.T, sb *sandbox.Sandbox, shard string) *sandbox.Account {
	t.Helper()
	for _, a := range sb.Accounts() {
		if a.Shard == shard {
			return a
		}
	}
	t.Fatalf("sandbox has no account on %s", shard)
	return nil
}

// TestOpenClinikoKeyProblems: the failure pages of a click name the cause
// (wrong account, revoked key) and say how to fix it; fixing the key
// replays the failed import; a Scheduler may import.
func TestOpenClinikoKeyProblems(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})

	t.Run("key of another Cliniko account", func(t *testing.T) {
		t.Parallel()
		clinic := e.SeedClinic("Harbour Street", map[string]string{"olivia@harbour.example": sandbox.DemoUK2AdminKey})
		b := e.Login("olivia@harbour.example")
		r, id := b.Open(sandbox.DemoPatientID)
		if id != "" {
			t.Fatalf("a uk2 key opened au1 patient %s as %s", sandbox.DemoPatientID, id)
		}
		// Olivia's key is of her clinic's own account (her clinic's first
		// key claimed it), so the page does not blame the key.
		wantPage(t, "click", r, http.StatusNotFound, "Cliniko no longer shows this patient", "Harbour Street Physiotherapy (United Kingdom), your clinic's Cliniko account",
			"Not "+clinic.Practitioners["olivia@harbour.example"].Name+"?", "Log out")
		if st := importStatusOf(t, b, sandbox.DemoPatientID); st.State != "failed" || st.Cause != "cliniko_not_found" {
			t.Errorf("import status %+v, want failed with cliniko_not_found", st)
		}
		if links := linksOf(t, e, clinic.Subscription.ID, "uk2"); len(links) != 0 {
			t.Errorf("links %v after a failed import", links)
		}
		// "Log out" ends the session and offers to come back.
		r = b.PostForm("/logout", url.Values{"next": {importPath + sandbox.DemoPatientID}})
		wantRedirect(t, "not you? log out", r, "/login?next="+url.QueryEscape(importPath+sandbox.DemoPatientID))
	})

	t.Run("revoked key, then a new key replays the import", func(t *testing.T) {
		t.Parallel()
		acct := accountOn(t, e.Sandbox, "au1")
		u, oldKey := acct.AddUser("Rhys", "Revoked", "rhys@clinic.example", "practitioner")
		clinic := e.SeedClinic("Revoked Clinic", map[string]string{"rhys@clinic.example": oldKey})
		e.Sandbox.RevokeKey(oldKey)
		b := e.Login("rhys@clinic.example")

		r, id := b.Open(sandbox.DemoPatientID)
		if id != "" {
			t.Fatalf("a revoked key imported the patient as %s", id)
		}
		wantPage(t, "click", r, http.StatusForbidden, "Cliniko did not accept your API key", "Manage API keys")
		if st := importStatusOf(t, b, sandbox.DemoPatientID); st.State != "failed" || st.Cause != "cliniko_unauthorized" {
			t.Errorf("import status %+v, want failed with cliniko_unauthorized", st)
		}
		// A repeat click on a failed import runs it again (and fails again),
		// rather than being stuck on the archived task.
		before := e.Sandbox.RequestCount("get_patient")
		r, _ = b.Open(sandbox.DemoPatientID)
		wantPage(t, "repeat click", r, http.StatusForbidden, "Cliniko did not accept your API key")
		if e.Sandbox.RequestCount("get_patient") == before {
			t.Error("a repeat click after a failure did not try Cliniko again")
		}

		newKey := "MS0" + strings.ReplaceAll(u.ID, "-", "") + "cmVwbGFjZW1lbnRrZXkwMDAw-au1"
		acct.AddKey(u.ID, newKey)
		r = b.PostForm("/settings/cliniko", url.Values{"api_key": {newKey}})
		wantRedirect(t, "save the new key", r, "/settings/cliniko?done=saved&replayed=1")
		wantPage(t, "settings", b.Get(r.Location()), http.StatusOK, "A programme PDF or an import that had failed is running again with it.")
		e.Eventually("the replayed import to link the patient", func() bool {
			return linksOf(t, e, clinic.Subscription.ID, "au1")[sandbox.DemoPatientID] != ""
		})
		r = b.Get(importPath + sandbox.DemoPatientID)
		wantRedirect(t, "click after the fix", r, "/patients/"+linksOf(t, e, clinic.Subscription.ID, "au1")[sandbox.DemoPatientID])
	})

	t.Run("scheduler may import", func(t *testing.T) {
		t.Parallel()
		clinic := e.SeedClinic("Scheduler Clinic", map[string]string{"sam@clinic.example": sandbox.DemoSchedulerKey})
		b := e.Login("sam@clinic.example")
		_, id := b.Open(sandbox.DemoPatientID)
		if id == "" {
			t.Fatal("a scheduler's click did not reach the patient")
		}
		p, err := e.Store.GetPatient(context.Background(), id)
		if err != nil || p.OwnerID != clinic.Practitioners["sam@clinic.example"].ID || p.FirstName != "Zoë" {
			t.Errorf("imported patient %+v (%v)", p, err)
		}
	})
}

// TestOpenClinikoBusy: while Cliniko answers 503 the click shows the
// waiting page saying Cliniko is busy; when Cliniko recovers the import
// completes by itself.
func TestOpenClinikoBusy(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	clinic := e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": sandbox.DemoAdminKey})
	b := e.Login("demo@clinic.example")

	e.Sandbox.SetFailureRate(1, http.StatusServiceUnavailable)
	r := b.Get(importPath + sandbox.DemoPatientID)
	wantPage(t, "click while Cliniko is down", r, http.StatusAccepted, "This page moves on by itself")
	e.Eventually("the import status to say Cliniko is unavailable", func() bool {
		st := importStatusOf(t, b, sandbox.DemoPatientID)
		return st.State == "pending" && st.Cause == "cliniko_unavailable"
	})
	if n := e.Sandbox.RequestCount("get_patient"); n < 3 {
		t.Errorf("Cliniko was asked %d times, want the GET retried (at least 3)", n)
	}
	// The waiting page's own check (check=1) says why it waits and does not
	// start another import.
	r = b.Get(importPath + sandbox.DemoPatientID + "&check=1")
	wantPage(t, "check while Cliniko is down", r, http.StatusAccepted, "Cliniko is busy", "keeps trying by itself")
	if links := linksOf(t, e, clinic.Subscription.ID, "au1"); len(links) != 0 {
		t.Fatalf("links %v while Cliniko is down", links)
	}

	e.Sandbox.SetFailureRate(0, 0)
	e.Eventually("the import to complete after Cliniko recovered", func() bool {
		return importStatusOf(t, b, sandbox.DemoPatientID).State == "done"
	})
	st := importStatusOf(t, b, sandbox.DemoPatientID)
	id := linksOf(t, e, clinic.Subscription.ID, "au1")[sandbox.DemoPatientID]
	if id == "" || st.PatientURL != "/patients/"+id {
		t.Errorf("status %+v, link %q", st, id)
	}
	r = b.Get(importPath + sandbox.DemoPatientID + "&check=1")
	wantRedirect(t, "the waiting page's next check", r, "/patients/"+id)
}

// TestWrongHost: a request for a host that is not this region's gets the
// page listing the regional addresses; health answers on any host.
func TestWrongHost(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	get := func(host, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, e.URL+path, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, tc := range []struct {
		desc, host, path string
		want             int
	}{
		{"Cliniko button on another host", "evil.example", importPath + "1001", http.StatusMisdirectedRequest},
		{"another region's host", "uk.physitrack.com", "/login", http.StatusMisdirectedRequest},
		{"host with a port", "evil.example:8443", "/patients", http.StatusMisdirectedRequest},
		{"public host", "pmsbridge.test", "/login", http.StatusOK},
		{"public host in capitals with port", "PMSBRIDGE.TEST:443", "/login", http.StatusOK},
		{"healthz on another host", "evil.example", "/healthz", http.StatusOK},
		{"readyz on another host", "evil.example", "/readyz", http.StatusOK},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			status, body := get(tc.host, tc.path)
			if status != tc.want {
				t.Fatalf("%s %s: %d, want %d", tc.host, tc.path, status, tc.want)
			}
			if tc.want == http.StatusMisdirectedRequest {
				for _, s := range []string{"https://au.physitrack.com", "https://uk.physitrack.com", "https://us.physitrack.com", "/cliniko_patient_import"} {
					if !strings.Contains(body, s) {
						t.Errorf("wrong-host page does not list %s", s)
					}
				}
			}
		})
	}
}
