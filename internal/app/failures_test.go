package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/internal/apptest"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// failuresWorld is two clinics with a failed job each: the Demo clinic's
// upload failed for real with a Scheduler's key; the other clinic's import
// is a ledger entry of a practitioner without a key.
type failuresWorld struct {
	e               *apptest.Env
	upload, import_ string
	demoSub         string
}

func newFailuresWorld(t *testing.T) failuresWorld {
	t.Helper()
	e := apptest.Start(t, apptest.Options{})
	demo := e.SeedClinic("Demo Physio Clinic", map[string]string{"sam@clinic.example": sandbox.DemoSchedulerKey})
	other := e.SeedClinic("Other Clinic", map[string]string{"olga@other.example": ""})
	sam := e.Login("sam@clinic.example")
	_, pid := sam.Open(sandbox.DemoPatientID)
	if pid == "" {
		t.Fatal("import with the Scheduler key failed")
	}
	prog := assignProgramme(t, sam, pid, kneeForm("Back care"))
	upload := jobs.UploadTaskID(prog.ID, 1)
	waitFailed(t, e, upload, pmsbridge.CauseClinikoForbidden)
	olga := other.Practitioners["olga@other.example"]
	p := jobs.ImportPayload{PractitionerID: olga.ID, SubscriptionID: other.Subscription.ID, Shard: "au1", ClinikoPatientID: "1002"}
	payload, _ := json.Marshal(p)
	imp := jobs.ImportTaskID(other.Subscription.ID, "au1", "1002")
	if err := e.Store.RecordFailure(context.Background(), store.Failure{TaskID: imp, Queue: jobs.QueueImport, Type: jobs.TypeImportPatient,
		Permanent: true, Cause: pmsbridge.CauseNoClinikoKey, Reason: "The practitioner has no Cliniko API key saved.",
		PractitionerID: olga.ID, SubscriptionID: other.Subscription.ID, Attempts: 1, Payload: payload}); err != nil {
		t.Fatal(err)
	}
	return failuresWorld{e: e, upload: upload, import_: imp, demoSub: demo.Subscription.ID}
}

// TestFailuresPageDeleteAsks: deleting from the page always asks first
// (how many, where) and records who in the job's history.
func TestFailuresPageDeleteAsks(t *testing.T) {
	t.Parallel()
	w := newFailuresWorld(t)
	admin := supportLogin(t, w.e)
	form := url.Values{"id": {w.import_}}
	if r := admin.PostForm("/admin/delete", form); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "Delete 1 failed job of Other Clinic for good?") {
		t.Fatalf("delete without confirmation: %d, want the question", r.StatusCode)
	}
	if _, err := w.e.Store.GetFailure(context.Background(), w.import_); err != nil {
		t.Fatalf("the question deleted the job: %v", err)
	}
	form.Set("confirm", "1")
	r := admin.PostForm("/admin/delete", form)
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete: %d", r.StatusCode)
	}
	if page := admin.Get(r.Location()); !strings.Contains(page.Body, "Deleted 1 job of Other Clinic.") {
		t.Errorf("the page after the deletion does not say what was deleted (%s)", r.Location())
	}
	h, err := w.e.Store.JobHistory(context.Background(), w.import_)
	if err != nil || len(h) == 0 || h[len(h)-1].Kind != store.EventDeleted || h[len(h)-1].By == nil || h[len(h)-1].By.Via != store.ViaAdminPage {
		t.Errorf("history after the page's deletion: %+v %v", h, err)
	}
	if r := admin.Get("/admin/jobs/" + url.PathEscape(w.import_)); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "deleted by admin page") {
		t.Errorf("the deleted job's page: %d", r.StatusCode)
	}
}

// TestBrowserFailuresPage drives headless Chromium as support would: log
// in, see both clinics' failures, filter by clinic, then on a phone-sized
// screen (the Replay button on screen, no sideways scrolling) replay the
// one failed job after its cause was fixed, and see it under "Recently
// recovered".
func TestBrowserFailuresPage(t *testing.T) {
	w := newFailuresWorld(t)
	e := w.e
	ctx := newBrowser(t, 60*time.Second)

	supportLoginFrom(t, ctx, e.URL+"/admin/")
	summary := waitJS(t, ctx, "the failures page", `location.pathname === "/admin/" && document.querySelector(".summary") ? document.querySelector(".summary").innerText : ""`)
	if !strings.Contains(summary, "2 failed jobs across 2 clinics") {
		t.Fatalf("summary %q, want both clinics' jobs", summary)
	}

	// Filter by clinic: only the Demo clinic's upload is left.
	step(t, ctx, "filter by clinic",
		chromedp.SendKeys(chromedp.CSS(`form.filters input[name=clinic]`), "Demo Physio Clinic", chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`form.filters button[type=submit]`), chromedp.NodeVisible))
	summary = waitJS(t, ctx, "the filtered page", `new URLSearchParams(location.search).get("clinic") === "Demo Physio Clinic" ? document.querySelector(".summary").innerText : ""`)
	if !strings.Contains(summary, "1 failed job of Demo Physio Clinic matches these filters") {
		t.Fatalf("filtered summary %q", summary)
	}
	ids := run(t, ctx, "read the listed jobs", chromedp.Evaluate[[]string](`[...document.querySelectorAll("section.error code.jobid")].map(c => c.title)`))
	if len(ids) != 1 || ids[0] != w.upload {
		t.Fatalf("filtered page lists %v, want only %s", ids, w.upload)
	}
	who := run(t, ctx, "read the row", chromedp.Evaluate[string](`document.querySelector("section.error .jobrows li").innerText`))
	for _, want := range []string{"Demo Physio Clinic", "sam@clinic.example", "Sam Scheduler", "Zoë O'Brien", "1 attempt"} {
		if !strings.Contains(who, want) {
			t.Errorf("the row lacks %q:\n%s", want, who)
		}
	}

	// On a phone: the page does not scroll sideways and Replay is on screen.
	step(t, ctx, "a phone-sized screen", chromedp.EmulateViewport(375, 740), chromedp.Reload())
	fits := waitJS(t, ctx, "the page laid out for a phone", `(() => {
		const b = document.querySelector("section.error .jobrows li .do button");
		if (!b || window.innerWidth > 400) return "";
		const r = b.getBoundingClientRect();
		return JSON.stringify({button: [r.left, r.right], width: window.innerWidth, scroll: document.documentElement.scrollWidth});
	})()`)
	var m struct {
		Button [2]float64 `json:"button"`
		Width  float64    `json:"width"`
		Scroll float64    `json:"scroll"`
	}
	if err := json.Unmarshal([]byte(fits), &m); err != nil {
		t.Fatal(err)
	}
	if m.Button[0] < 0 || m.Button[1] > m.Width || m.Scroll > m.Width {
		t.Errorf("on a %.0f px screen the Replay button spans %v and the page is %.0f px wide", m.Width, m.Button, m.Scroll)
	}
	// The id is cut short but whole in its text (copy) and title (hover).
	text := run(t, ctx, "read the id", chromedp.Evaluate[string](`document.querySelector("section.error code.jobid").textContent`))
	if text != w.upload {
		t.Errorf("the id's text is %q, want the whole id", text)
	}

	// The role is fixed in Cliniko; replay the job from the phone.
	e.Sandbox.SetRole("4", sandbox.RolePractitioner)
	step(t, ctx, "replay the job", chromedp.Click(chromedp.CSS(`section.error .jobrows li .do button`), chromedp.NodeVisible))
	notice := waitJS(t, ctx, "the notice", `document.querySelector(".notice.ok") ? document.querySelector(".notice.ok").innerText : ""`)
	if notice != "Replayed 1 job of Demo Physio Clinic." {
		t.Errorf("notice %q", notice)
	}
	waitLedgerGone(t, e, w.upload)
	step(t, ctx, "reload", chromedp.Reload())
	recovered := waitJS(t, ctx, "the job under Recently recovered", `(() => {
		const c = [...document.querySelectorAll("#recovered code.jobid")].map(c => c.title);
		return c.length ? c.join(",") + "|" + document.querySelector("#recovered").innerText : "";
	})()`)
	if !strings.HasPrefix(recovered, w.upload+"|") || !strings.Contains(recovered, "Replayed by admin page") {
		t.Errorf("recently recovered: %q", recovered)
	}
	if summary := run(t, ctx, "read the summary", chromedp.Evaluate[string](`document.querySelector(".summary").innerText`)); !strings.Contains(summary, "No failed jobs match these filters") {
		t.Errorf("after the replay the filtered page says %q", summary)
	}
}
