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

// TestBrowserCodeDelivery: in a real Chromium, a practitioner assigns a
// programme and the row shows the code sent to the patient's masked
// address; "Send code by SMS" adds a second entry that reaches "sent".
func TestBrowserCodeDelivery(t *testing.T) {
	msg := apptest.StartMessaging(t)
	e := apptest.Start(t, apptest.Options{Configure: msg.Configure})
	e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": sandbox.DemoAdminKey})
	ctx := newBrowser(t, 60*time.Second)

	step(t, ctx, "log in",
		chromedp.Navigate(e.URL+"/login?next="+url.QueryEscape(importPath+sandbox.DemoPatientID)),
		loginForm("demo@clinic.example"))
	waitJS(t, ctx, "the patient page", `/^\/patients\/[^\/]+$/.test(location.pathname) && document.querySelector("#programmes") ? "yes" : ""`)
	patientURL := run(t, ctx, "read the location", chromedp.Location())

	form := `form[action$="/programmes"]`
	step(t, ctx, "fill in the assign form",
		chromedp.SendKeys(chromedp.CSS(form+` input[name=title]`), "Knee rehab, week 1", chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(form+` input[name=exercise]`), chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(form+` button[type=submit]`), chromedp.NodeVisible))
	notice := waitJS(t, ctx, "the notice about the code", `location.search.includes("done=assigned") && document.querySelector("main") ? document.querySelector("main").innerText : ""`)
	if !strings.Contains(notice, "to the patient by email, to z***@patient.example.") {
		t.Errorf("after assigning the page does not say where the code goes:\n%s", notice)
	}
	screenshots(t, ctx, "patient-assigned", "")
	screenshots(t, ctx, "patient-assigned-delivery", ".delivery")

	// The page does not poll by itself here: look again until sent.
	row := reloadUntil(t, ctx, patientURL, "the row to show the email sent", func(text string) bool {
		return strings.Count(text, "Sent to ") == 1 && strings.Contains(text, "Sent to z***@patient.example at ")
	})
	if !strings.Contains(row, "when the programme was assigned") {
		t.Errorf("the row does not say why the email went:\n%s", row)
	}

	step(t, ctx, "send the code by SMS", chromedp.Click(chromedp.CSS(`.delivery form input[value=sms] ~ button`), chromedp.NodeVisible))
	waitJS(t, ctx, "the notice", `location.search.includes("done=code_sms") ? "yes" : ""`)
	row = reloadUntil(t, ctx, patientURL, "a second entry, sent by SMS", func(text string) bool {
		return strings.Count(text, "Sent to ") == 2 && strings.Contains(text, "Sent to +61 4** *** 222 at ")
	})
	if i, j := strings.Index(row, "z***@patient.example"), strings.Index(row, "+61 4** *** 222"); i < 0 || j < i {
		t.Errorf("the entries are not oldest first:\n%s", row)
	}
	if n := len(msg.SMS.MessagesTo(zoeMobile)); n != 1 {
		t.Errorf("%d texts to Zoë, want 1", n)
	}
	screenshots(t, ctx, "patient-resent", "")
	screenshots(t, ctx, "patient-resent-delivery", ".delivery")
}

// reloadUntil loads page until the programme rows' code-delivery text
// satisfies ok, and returns that text.
func reloadUntil(t *testing.T, ctx context.Context, page, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(stepTimeout)
	var text string
	for time.Now().Before(deadline) {
		step(t, ctx, "load the patient page", chromedp.Navigate(page))
		text = run(t, ctx, "read the delivery", chromedp.Evaluate[string](`[...document.querySelectorAll(".delivery")].map(d => d.innerText).join("\n")`))
		if ok(text) {
			return text
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; the rows say:\n%s", what, text)
	return ""
}
