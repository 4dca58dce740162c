package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/internal/app"
	"github.com/physitrack/pmsbridge/internal/apptest"
	"github.com/physitrack/pmsbridge/internal/redistest"
	"github.com/physitrack/pmsbridge/store"
)

// The linked click in one Redis round trip (issue 16): counted on the
// app's own Redis client, whatever the machine's speed.

// linkedClinic is a clinic whose owner's Cliniko patient is linked, with
// colleagues who may open it by each rule and one who may not, all logged
// in, on an app that serves HTTP only (no workers: the app's Redis client
// carries nothing but the requests).
type linkedClinic struct {
	e         *apptest.Env
	patientID string
	ownerName string
	browsers  map[string]*apptest.Browser // owner, shared, group, outsider
}

func newLinkedClinic(t *testing.T, o apptest.Options) *linkedClinic {
	t.Helper()
	o.Mode = app.ModeServe
	e := apptest.Start(t, o)
	emails := map[string]string{"owner": "owner@linked.example", "shared": "shared@linked.example",
		"group": "group@linked.example", "outsider": "outsider@linked.example"}
	keys := map[string]string{}
	for _, email := range emails {
		keys[email] = sandbox.DemoPractitionerKey
	}
	c := e.SeedClinic("Linked Clinic", keys)
	ctx := context.Background()
	owner := c.Practitioners[emails["owner"]]
	p, _, err := e.Store.ImportPatient(ctx, c.Subscription.ID, "au1", sandbox.DemoPatientID, owner.ID, store.Patient{
		FirstName: "Zoë", LastName: "O'Brien", BirthYearStatus: pmsbridge.BirthYearMissing, BirthYearSource: pmsbridge.BirthYearFromCliniko})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Store.Share(ctx, p.ID, c.Practitioners[emails["shared"]].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.SetSharing(ctx, c.Subscription.ID, []string{owner.ID, c.Practitioners[emails["group"]].ID}, nil); err != nil {
		t.Fatal(err)
	}
	lc := &linkedClinic{e: e, patientID: p.ID, ownerName: owner.Name, browsers: map[string]*apptest.Browser{}}
	for who, email := range emails {
		lc.browsers[who] = e.Login(email)
	}
	return lc
}

// TestLinkedClickIsOneRoundTrip: a click on a linked patient costs one Redis
// round trip, the click script's EVALSHA, for the owner, a colleague it is
// shared with, a member of the sharing group, and a colleague who gets the
// 404 page naming the owner (whose page then reads the clinic's time zone,
// as every page does). The refresh debounce is held unsent for the
// whole test: the clicks are answered all the same, so it is not on the
// request path (a click waiting for it would never be answered).
func TestLinkedClickIsOneRoundTrip(t *testing.T) {
	t.Parallel()
	lc := newLinkedClinic(t, apptest.Options{})
	e := lc.e
	// The script is loaded by a first run (EVALSHA, then EVAL) and
	// stays: warm it up with a click nobody can make.
	if _, err := e.Store.ResolveClick(context.Background(), "no-such-session", "1"); err == nil {
		t.Fatal("a made-up session resolved")
	}
	trips := redistest.Watch(e.App.Redis())
	release := trips.Hold(func(t redistest.Trip) bool {
		for _, c := range t {
			if strings.Contains(c, ":debounce:refresh:") {
				return true
			}
		}
		return false
	})
	defer release()
	for _, who := range []string{"owner", "shared", "group", "outsider"} {
		trips.Record()
		r := lc.browsers[who].Get(importPath + sandbox.DemoPatientID)
		got := trips.Stop()
		if who == "outsider" {
			wantPage(t, who+"'s click", r, http.StatusNotFound, "This patient belongs to "+lc.ownerName)
		} else {
			wantRedirect(t, who+"'s click", r, "/patients/"+lc.patientID)
		}
		if who == "outsider" && len(got) == 2 && len(got[1]) == 1 && strings.HasPrefix(got[1][0], "get ") && strings.Contains(got[1][0], ":sub:") {
			// The click is decided by the script; the refusal page then
			// reads the clinic's time zone for its times, as every page does.
			got = got[:1]
		}
		if len(got) != 1 || len(got[0]) != 1 || !strings.HasPrefix(got[0][0], "evalsha ") {
			t.Errorf("%s's click: Redis round trips %v, want one EVALSHA", who, got)
		}
	}
	// Each allowed click queued its refresh in the background, which is
	// waiting for the held debounce.
	e.Eventually("the background refreshes to reach the debounce", func() bool { return len(trips.Held()) == 3 })
}

// TestLinkedClickSessionEnds: the fast path answers an ended session, and
// an inactive practitioner whose session is still there, as every page
// does: the cookie is cleared and the click goes to the login page and back
// here. A record that cannot be read is an error of ours that keeps the
// session.
func TestLinkedClickSessionEnds(t *testing.T) {
	t.Parallel()
	clock := newStepClock(time.Now().UTC())
	lc := newLinkedClinic(t, apptest.Options{Now: clock.Now})
	e, ctx, rdb := lc.e, context.Background(), lc.e.App.Redis()
	click := importPath + sandbox.DemoPatientID
	toLogin := "/login?next=" + url.QueryEscape(click)
	loggedOut := func(what string, r apptest.Response) {
		t.Helper()
		wantRedirect(t, what, r, toLogin)
		if c := sessionCookieOf(r); c == nil || c.MaxAge >= 0 {
			t.Errorf("%s: the session cookie is not cleared (Set-Cookie %q)", what, r.Header.Get("Set-Cookie"))
		}
	}

	// Within the idle limit, the click slides the session on.
	clock.Advance(11 * time.Hour)
	wantRedirect(t, "a click after 11 hours", lc.browsers["owner"].Get(click), "/patients/"+lc.patientID)
	clock.Advance(11 * time.Hour)
	wantRedirect(t, "11 hours after that", lc.browsers["owner"].Get(click), "/patients/"+lc.patientID)
	// 12 hours without a click: the session has ended.
	clock.Advance(12 * time.Hour)
	loggedOut("a click after 12 idle hours", lc.browsers["owner"].Get(click))
	wantRedirect(t, "a page after that", lc.browsers["owner"].Get("/patients"), "/login?next=%2Fpatients")

	// Deactivate ends every session; a session that outlived it (a record
	// changed by hand) is not let in either.
	fresh := e.Login("shared@linked.example")
	pr, err := e.Store.PractitionerByEmail(ctx, "shared@linked.example")
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(rdb.Get(ctx, "pmsb:prac:"+pr.ID).Val()), &rec); err != nil {
		t.Fatal(err)
	}
	rec["active"] = false
	raw, _ := json.Marshal(rec)
	if err := rdb.Set(ctx, "pmsb:prac:"+pr.ID, raw, 0).Err(); err != nil {
		t.Fatal(err)
	}
	loggedOut("an inactive practitioner's click", fresh.Get(click))

	// An unreadable Cliniko user: 503, and the session stays.
	group := e.Login("group@linked.example")
	gp, err := e.Store.PractitionerByEmail(ctx, "group@linked.example")
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, "pmsb:prac:"+gp.ID+":cliniko", "user", "{not json").Err(); err != nil {
		t.Fatal(err)
	}
	r := group.Get(click)
	if r.StatusCode != http.StatusServiceUnavailable || sessionCookieOf(r) != nil {
		t.Errorf("unreadable record: %d, Set-Cookie %q; want 503 and the session kept", r.StatusCode, r.Header.Get("Set-Cookie"))
	}
}
