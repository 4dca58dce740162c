package app_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/config"
	"github.com/physitrack/pmsbridge/internal/apptest"
	"github.com/physitrack/pmsbridge/jobs"
)

// archivedImport makes an import fail for good (its practitioner has no
// key) and returns its task id: a task for the queue monitor to show.
func archivedImport(t *testing.T, e *apptest.Env) string {
	t.Helper()
	clinic := e.SeedClinic("Queue Clinic", map[string]string{"nokey@clinic.example": ""})
	pr := clinic.Practitioners["nokey@clinic.example"]
	id, err := e.Jobs.EnqueueImport(t.Context(), jobs.ImportPayload{PractitionerID: pr.ID, SubscriptionID: clinic.Subscription.ID, Shard: "au1", ClinikoPatientID: "1002"})
	if err != nil {
		t.Fatal(err)
	}
	waitFailed(t, e, id, pmsbridge.CauseNoClinikoKey)
	return id
}

// supportLogin is a browser with a support login (the admin cookie).
func supportLogin(t *testing.T, e *apptest.Env) *apptest.Browser {
	t.Helper()
	b := e.NewBrowser()
	if r := b.PostForm("/admin/login", url.Values{"token": {apptest.AdminToken}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("support login: %d", r.StatusCode)
	}
	return b
}

// sameOrigin is what a browser's own fetch from the monitor sends.
func sameOrigin(e *apptest.Env) http.Header {
	return http.Header{"Origin": {e.URL}, "Sec-Fetch-Site": {"same-origin"}}
}

// TestQueueMonitor: asynqmon answers under /admin/queues/ only with the
// support login (cookie or bearer), serves its page and its API with it,
// runs under a Content-Security-Policy that allows exactly its inline
// scripts, and is read-only by default: a call that would delete a task or
// pause a queue is refused and changes nothing.
func TestQueueMonitor(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	id := archivedImport(t, e)
	insp := e.Jobs.Inspector()
	deletePath := "/admin/queues/api/queues/import/archived_tasks/" + url.PathEscape(id)

	t.Run("without the support login", func(t *testing.T) {
		stranger := e.NewBrowser()
		for _, p := range []string{"/admin/queues/", "/admin/queues/api/queues", "/admin/queues/api/queues/import/archived_tasks"} {
			if r := stranger.Get(p); r.StatusCode != http.StatusSeeOther || r.Location() != "/admin/login" || strings.Contains(r.Body, id) {
				t.Errorf("GET %s: %d to %q, want 303 to the support login", p, r.StatusCode, r.Location())
			}
		}
		if r := stranger.Get("/admin/queues"); r.StatusCode/100 != 3 || r.Location() != "/admin/queues/" {
			t.Errorf("GET /admin/queues: %d to %q, want a redirect to /admin/queues/", r.StatusCode, r.Location())
		}
		for _, m := range []string{http.MethodDelete, http.MethodPost} {
			if r := stranger.Do(m, deletePath, nil, sameOrigin(e)); r.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s without login: %d, want 401", m, r.StatusCode)
			}
		}
		if r := stranger.Do(http.MethodGet, "/admin/queues/api/queues", nil, http.Header{"Authorization": {"Bearer wrong-token-0123456789"}}); r.StatusCode != http.StatusSeeOther {
			t.Errorf("a wrong bearer token: %d, want the login redirect", r.StatusCode)
		}
	})

	t.Run("with the bearer token", func(t *testing.T) {
		r := adminAPI(e, http.MethodGet, "/admin/queues/", nil)
		if r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "<title>Asynq - Monitoring</title>") ||
			!strings.Contains(r.Body, `window.FLAG_ROOT_PATH="\/admin\/queues"`) || !strings.Contains(r.Body, `window.FLAG_READ_ONLY="true"`) {
			t.Fatalf("GET /admin/queues/: %d\n%.600s", r.StatusCode, r.Body)
		}
		// The policy allows exactly the page's inline scripts, by hash, and
		// no inline script in general.
		csp := r.Header.Get("Content-Security-Policy")
		scriptSrc := regexp.MustCompile(`script-src ([^;]*)`).FindStringSubmatch(csp)
		if scriptSrc == nil || strings.Contains(scriptSrc[1], "unsafe-inline") {
			t.Fatalf("CSP %q", csp)
		}
		inline := regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindAllStringSubmatch(r.Body, -1)
		if len(inline) == 0 {
			t.Fatal("no inline script on asynqmon's page: the hash check tests nothing")
		}
		for _, m := range inline {
			sum := sha256.Sum256([]byte(m[1]))
			if h := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(scriptSrc[1], h) {
				t.Errorf("the CSP does not allow the inline script %.40q…", m[1])
			}
		}
		// Its bundle is served.
		src := regexp.MustCompile(`src="(/admin/queues/static/js/main\.[0-9a-f]+\.chunk\.js)"`).FindStringSubmatch(r.Body)
		if src == nil {
			t.Fatal("no main bundle on the page")
		}
		if js := adminAPI(e, http.MethodGet, src[1], nil); js.StatusCode != http.StatusOK || !strings.HasPrefix(js.Header.Get("Content-Type"), "application/javascript") || len(js.Body) < 1000 {
			t.Errorf("GET %s: %d %s, %d bytes", src[1], js.StatusCode, js.Header.Get("Content-Type"), len(js.Body))
		}
	})

	t.Run("with the support cookie, read-only", func(t *testing.T) {
		b := supportLogin(t, e)
		if r := b.Get("/admin/"); !strings.Contains(r.Body, `<a href="/admin/queues/">Queues (asynqmon)</a>`) {
			t.Errorf("the admin page does not link to the queue monitor")
		}
		r := b.Get("/admin/queues/api/queues/import/archived_tasks")
		var doc struct {
			Tasks []struct {
				ID    string `json:"id"`
				Type  string `json:"type"`
				Queue string `json:"queue"`
			} `json:"tasks"`
		}
		if err := json.Unmarshal([]byte(r.Body), &doc); r.StatusCode != http.StatusOK || err != nil || len(doc.Tasks) != 1 || doc.Tasks[0].ID != id || doc.Tasks[0].Type != jobs.TypeImportPatient {
			t.Fatalf("archived tasks through asynqmon: %d %v %.300s", r.StatusCode, err, r.Body)
		}
		if r := b.Get("/admin/queues/api/queues"); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, `"queue":"import"`) {
			t.Errorf("queues: %d %.300s", r.StatusCode, r.Body)
		}
		for _, c := range []struct{ method, path string }{
			{http.MethodDelete, deletePath},
			{http.MethodPost, "/admin/queues/api/queues/import:pause"},
			{http.MethodPost, "/admin/queues/api/queues/import/archived_tasks:run_all"},
		} {
			r := b.Do(c.method, c.path, nil, sameOrigin(e))
			if r.StatusCode != http.StatusForbidden || !strings.Contains(r.Body, "admin.queues_actions") {
				t.Errorf("%s %s read-only: %d %s, want 403 naming admin.queues_actions", c.method, c.path, r.StatusCode, r.Body)
			}
		}
		if info, err := insp.GetTaskInfo(jobs.QueueImport, id); err != nil || info.State != asynq.TaskStateArchived {
			t.Errorf("after the refused calls the task is %v (%v), want archived", info, err)
		}
		if q, err := insp.GetQueueInfo(jobs.QueueImport); err != nil || q.Paused {
			t.Errorf("after the refused pause the queue: %+v %v", q, err)
		}
	})
}

// TestQueueMonitorActions: with admin.queues_actions the monitor's page
// says so and its actions work (for the support login only).
func TestQueueMonitorActions(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{Configure: func(c *config.Config) { c.Admin.QueuesActions = true }})
	id := archivedImport(t, e)
	insp := e.Jobs.Inspector()
	b := supportLogin(t, e)
	if r := b.Get("/admin/queues/"); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, `window.FLAG_READ_ONLY="false"`) {
		t.Errorf("page with actions: %d", r.StatusCode)
	}
	if r := e.NewBrowser().Do(http.MethodPost, "/admin/queues/api/queues/import:pause", nil, sameOrigin(e)); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("pause without login: %d, want 401", r.StatusCode)
	}
	if r := b.Do(http.MethodPost, "/admin/queues/api/queues/import:pause", nil, sameOrigin(e)); r.StatusCode/100 != 2 {
		t.Fatalf("pause: %d %s", r.StatusCode, r.Body)
	}
	if q, err := insp.GetQueueInfo(jobs.QueueImport); err != nil || !q.Paused {
		t.Errorf("after pause: %+v %v", q, err)
	}
	if r := b.Do(http.MethodPost, "/admin/queues/api/queues/import:resume", nil, sameOrigin(e)); r.StatusCode/100 != 2 {
		t.Fatalf("resume: %d %s", r.StatusCode, r.Body)
	}
	if r := b.Do(http.MethodDelete, "/admin/queues/api/queues/import/archived_tasks/"+url.PathEscape(id), nil, sameOrigin(e)); r.StatusCode/100 != 2 {
		t.Fatalf("delete: %d %s", r.StatusCode, r.Body)
	}
	if _, err := insp.GetTaskInfo(jobs.QueueImport, id); !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Errorf("after delete: %v, want the task gone", err)
	}
	// A cross-site request is still refused.
	if r := b.Do(http.MethodPost, "/admin/queues/api/queues/import:pause", nil, http.Header{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}}); r.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site pause: %d, want 403", r.StatusCode)
	}
}

// TestBrowserQueueMonitor: in a real browser, after the support login, the
// queue monitor's app runs under its Content-Security-Policy (its scripts
// are allowed) and lists our queues.
func TestBrowserQueueMonitor(t *testing.T) {
	e := apptest.Start(t, apptest.Options{})
	archivedImport(t, e)
	ctx := newBrowser(t, 45*time.Second)
	supportLoginFrom(t, ctx, e.URL+"/admin/queues/")
	waitJS(t, ctx, "the admin page", `location.pathname === "/admin/" ? "yes" : ""`)
	step(t, ctx, "open the queue monitor", chromedp.Navigate(e.URL+"/admin/queues/"))
	// asynqmon's app rendered (its scripts ran) and fetched the queues.
	waitJS(t, ctx, "asynqmon's queue table with the import queue", `(() => {
		const rows = [...document.querySelectorAll("#root table tr")].map(tr => tr.innerText);
		return rows.some(r => /^import\s/.test(r)) && rows.some(r => /Error rate/.test(r)) ? "yes" : "";
	})()`)
}
