package app_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/internal/apptest"
)

// TestBrowserPDFStatusNeverLies walks what issue 13 asks of the patient
// page in a real headless Chromium. A colleague whose Cliniko key is a
// Scheduler's saves it (the settings page warns that the role may not
// upload files), opens a patient whose owner has no key, and is told
// before assigning that the PDF will probably not reach Cliniko; assigns;
// the programme's row turns "failed: the Cliniko role…" without a reload.
// Then the patient's owner saves an administrator's key, and the row turns
// "in Cliniko", still without a reload; the file in Cliniko is named after
// the programme.
//
// With PMSBRIDGE_SCREENSHOTS=DIR it also saves screenshots of the patient
// page, the settings page, the assign form and /access at 1280 and 390
// pixels wide into DIR (for people to look at; nothing is compared).
func TestBrowserPDFStatusNeverLies(t *testing.T) {
	e := apptest.Start(t, apptest.Options{})
	clinic := e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": sandbox.DemoAdminKey, "sam@clinic.example": ""})
	sam := clinic.Practitioners["sam@clinic.example"]

	// The owner imports the patient, shares them with Sam, and removes
	// their own key (as if it had been revoked).
	owner := e.Login("demo@clinic.example")
	_, pid := owner.Open(sandbox.DemoPatientID)
	if pid == "" {
		t.Fatal("the owner could not import the patient")
	}
	wantRedirect(t, "share", owner.PostForm("/patients/"+pid+"/share", url.Values{"email": {sam.Email}}), "/patients/"+pid+"?done=shared")
	wantRedirect(t, "remove the owner's key", owner.PostForm("/settings/cliniko", url.Values{"action": {"remove"}}), "/settings/cliniko?done=removed")

	ctx := newBrowser(t, 150*time.Second)
	step(t, ctx, "log in as Sam",
		chromedp.Navigate(e.URL+"/login"),
		loginForm(sam.Email))
	waitJS(t, ctx, "the patients list", `location.pathname === "/patients" ? "yes" : ""`)

	// 1. Sam saves a Scheduler's key: saved, with a warning about uploads.
	step(t, ctx, "save the Scheduler key",
		chromedp.Navigate(e.URL+"/settings/cliniko"),
		chromedp.SendKeys(chromedp.ID("api_key"), sandbox.DemoSchedulerKey, chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`form[action="/settings/cliniko"] button[type=submit]`), chromedp.NodeVisible))
	settings := waitJS(t, ctx, "the saved key", `location.search.includes("done=saved") ? document.querySelector("main").innerText : ""`)
	for _, want := range []string{"Your Cliniko API key is saved and works.", "Demo Physio Clinic (Australia)", "Sam Scheduler", "may not upload patient files"} {
		if !strings.Contains(settings, want) {
			t.Errorf("the settings page does not say %q; it says:\n%s", want, settings)
		}
	}
	screenshots(t, ctx, "settings", "")

	// 2. Before assigning, the form says the PDF will probably not reach
	// Cliniko, why, and who can fix it; the button says so too.
	step(t, ctx, "open the patient", chromedp.Navigate(e.URL+"/patients/"+pid))
	outlook := run(t, ctx, "read the warning", chromedp.Text(chromedp.ID("pdf-outlook"), chromedp.NodeVisible))
	for _, want := range []string{"will probably not reach Cliniko", "your Cliniko key (Sam Scheduler) has the Scheduler role", "may not upload files", "Dr Demo (the patient's owner)"} {
		if !strings.Contains(outlook, want) {
			t.Errorf("the warning before assigning does not say %q: %q", want, outlook)
		}
	}
	if b := run(t, ctx, "read the button", chromedp.Text(chromedp.ID("assign-button"), chromedp.NodeVisible)); b != "Assign now, send the PDF later" {
		t.Errorf("the assign button reads %q", b)
	}
	screenshots(t, ctx, "patient", "")

	// 3. Assign. The page is then left alone: the row must change by
	// itself (a marker on window would be gone after a reload).
	const title = "Knee rehab, week 1"
	step(t, ctx, "fill in the assign form",
		chromedp.SendKeys(chromedp.ID("title"), title, chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`#assign input[name=exercise][value="ex_quad_set"]`), chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`#assign input[name=exercise][value="ex_straight_leg_raise"]`), chromedp.NodeVisible),
		chromedp.SetValue(chromedp.CSS(`#assign input[name="sets.ex_quad_set"]`), "4", chromedp.NodeVisible))
	screenshots(t, ctx, "assign-form", "#assign")
	step(t, ctx, "assign", chromedp.Click(chromedp.ID("assign-button"), chromedp.NodeVisible))
	notice := waitJS(t, ctx, "the flash after assigning", `location.search.includes("done=assigned") ? document.querySelector("[role=status]").innerText : ""`)
	if !strings.Contains(notice, "will probably not reach Cliniko") {
		t.Errorf("the flash after assigning says %q", notice)
	}
	run(t, ctx, "mark the page", chromedp.Evaluate[string](`window.__stayed = "yes"`))
	row := `document.querySelector("#programme-list .prog .prog-pdf")`
	failed := waitJSFor(t, ctx, "the row to turn failed by itself", 40*time.Second,
		`window.__stayed === "yes" && `+row+` && `+row+`.innerText.includes("failed") ? `+row+`.innerText : ""`)
	if !strings.Contains(failed, "The Cliniko role") {
		t.Errorf("the failed row says %q, want the Cliniko role named", failed)
	}
	screenshots(t, ctx, "patient-failed", "")

	// 4. The owner saves an administrator's key (in their own browser):
	// the failed upload runs again with it, and Sam's row follows.
	r := owner.PostForm("/settings/cliniko", url.Values{"api_key": {sandbox.DemoAdminKey}})
	wantRedirect(t, "the owner saves a key", r, "/settings/cliniko?done=saved&replayed=1")
	waitJSFor(t, ctx, "the row to turn \"in Cliniko\" by itself", 60*time.Second,
		`window.__stayed === "yes" && `+row+` && `+row+`.innerText.includes("in Cliniko") ? "yes" : ""`)
	atts := e.Sandbox.Attachments(sandbox.DemoPatientID)
	if len(atts) != 1 || !strings.HasPrefix(atts[0].Filename, "Knee rehab - week 1 (v1) ") || atts[0].UserID != sandbox.DemoAdminUserID {
		t.Errorf("attachments in Cliniko: %+v; want one, \"Knee rehab - week 1 (v1) <date>.pdf\", by the owner's Cliniko user", atts)
	}

	// The patient's side, for the screenshots: /access of the clinic; and
	// a new version of the programme, pre-filled.
	if screenshotDir != "" {
		progs, _ := e.Store.ListProgrammes(context.Background(), pid)
		step(t, ctx, "New version", chromedp.Navigate(e.URL+"/patients/"+pid+"?version_of="+progs[0].ID+"#assign"))
		screenshots(t, ctx, "new-version", "#assign")
		ref, err := e.Store.ClinicRef(context.Background(), clinic.Subscription.ID)
		if err != nil {
			t.Fatal(err)
		}
		step(t, ctx, "open /access", chromedp.Navigate(e.URL+"/access?c="+ref))
		screenshots(t, ctx, "access", "")
		step(t, ctx, "enter a wrong year",
			chromedp.SendKeys(chromedp.ID("code"), progs[0].Code, chromedp.NodeVisible),
			chromedp.SendKeys(chromedp.ID("year_of_birth"), "1986", chromedp.NodeVisible),
			chromedp.Click(chromedp.CSS(`form[action="/access"] button[type=submit]`), chromedp.NodeVisible))
		waitJS(t, ctx, "the wrong-year answer", `document.querySelector("[role=alert]") ? "yes" : ""`)
		screenshots(t, ctx, "access-wrong", "")
		step(t, ctx, "enter the right year",
			chromedp.SetValue(chromedp.ID("year_of_birth"), "1985", chromedp.NodeVisible),
			chromedp.Click(chromedp.CSS(`form[action="/access"] button[type=submit]`), chromedp.NodeVisible))
		waitJS(t, ctx, "the programme", `location.pathname === "/access/programme" ? "yes" : ""`)
		screenshots(t, ctx, "programme", "")
	}
}
