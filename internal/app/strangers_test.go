package app_test

// Tests of issue 11, "hold the line against strangers": client addresses
// behind proxies, limits under bursts, bounded work.

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/bridge"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/config"
	"github.com/physitrack/pmsbridge/internal/apptest"
	"github.com/physitrack/pmsbridge/internal/loadgen"
	"github.com/physitrack/pmsbridge/internal/redistest"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
	"github.com/redis/go-redis/v9"
)

// postFrom posts a form with an X-Forwarded-For header ("" for none), as
// a proxy in front would pass it on.
func postFrom(b *apptest.Browser, path string, form url.Values, forwardedFor string) apptest.Response {
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	if forwardedFor != "" {
		h.Set("X-Forwarded-For", forwardedFor)
	}
	return b.Do(http.MethodPost, path, strings.NewReader(form.Encode()), h)
}

// junkLogins sends n failed logins for made-up accounts with the given
// X-Forwarded-For values (used in turn) and wants each to be a 401.
func junkLogins(t *testing.T, b *apptest.Browser, n int, forwardedFor ...string) {
	t.Helper()
	for i := range n {
		xff := forwardedFor[i%len(forwardedFor)]
		r := postFrom(b, "/login", url.Values{"email": {fmt.Sprintf("junk%d@nowhere.example", i)}, "password": {"not the password"}}, xff)
		if r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("junk login %d from %q: %d, want 401", i+1, xff, r.StatusCode)
		}
	}
}

// TestClientAddressBehindProxy: behind a trusted proxy each client has its
// own limits (a stranger's junk logins and codes lock out only the
// stranger), the X-Forwarded-For of an untrusted peer is ignored, what a
// client writes left of the proxy's entry does not help it, IPv6 clients
// count per /64, and the session record and the request log name the
// client, not the proxy.
func TestClientAddressBehindProxy(t *testing.T) {
	t.Parallel()
	const stranger, colleague = "203.0.113.7", "198.51.100.9"

	t.Run("trusted proxy", func(t *testing.T) {
		t.Parallel()
		// The app on :0 sees the test as 127.0.0.1: that is the proxy.
		e := apptest.Start(t, apptest.Options{Configure: func(c *config.Config) { c.HTTP.TrustedProxies = []string{"127.0.0.1"} }})
		clinic := e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": ""})
		b := e.NewBrowser()
		junkLogins(t, b, 10, stranger)
		right := url.Values{"email": {"demo@clinic.example"}, "password": {apptest.Password}}
		wantPage(t, "the stranger's 11th try", postFrom(b, "/login", right, stranger), http.StatusTooManyRequests, "Too many failed attempts")
		// The stranger cannot get out of the lock by writing another
		// address in front of what the proxy saw.
		wantPage(t, "the stranger with a made-up address", postFrom(b, "/login", right, colleague+", "+stranger), http.StatusTooManyRequests)
		wantPage(t, "the stranger behind a second trusted hop", postFrom(b, "/login", right, stranger+", 127.0.0.1"), http.StatusTooManyRequests)

		// Everyone else behind the same proxy logs in.
		r := postFrom(b, "/login", right, colleague)
		wantRedirect(t, "a colleague behind the same proxy", r, "/patients")
		tok := sessionCookieOf(r)
		if tok == nil {
			t.Fatal("no session cookie")
		}
		sess, err := e.Store.GetSession(context.Background(), tok.Value)
		if err != nil || sess.IP != colleague || sess.PractitionerID != clinic.Practitioners["demo@clinic.example"].ID {
			t.Errorf("session record: ip %q practitioner %q (%v), want ip %s", sess.IP, sess.PractitionerID, err, colleague)
		}
		if !strings.Contains(e.Logs.String(), `"remote":"`+colleague+`"`) {
			t.Errorf("the request log does not name the client %s", colleague)
		}

		// IPv6: one /64 is one client.
		var v6 []string
		for i := range 10 {
			v6 = append(v6, fmt.Sprintf("2001:db8:1:2::%x", i+1))
		}
		junkLogins(t, b, 10, v6...)
		wantPage(t, "another address of the same /64", postFrom(b, "/login", right, "2001:db8:1:2:ffff:ffff:ffff:ffff"), http.StatusTooManyRequests)
		wantRedirect(t, "the next /64", postFrom(b, "/login", right, "2001:db8:1:3::1"), "/patients")
	})

	t.Run("trusted proxy, patient access", func(t *testing.T) {
		t.Parallel()
		e, _, _, code := accessSetupWith(t, apptest.Options{Configure: func(c *config.Config) { c.HTTP.TrustedProxies = []string{"127.0.0.0/8"} }}, sandbox.DemoPatientID)
		b := e.NewBrowser()
		for i := range 30 {
			junk := otherCode(code, 1+i%25)
			junk = junk[:7] + string(rune('a'+i%26))
			if r := postFrom(b, "/access", url.Values{"code": {junk}, "year_of_birth": {"1985"}}, stranger); r.StatusCode != http.StatusUnauthorized {
				t.Fatalf("junk code %d: %d, want 401", i+1, r.StatusCode)
			}
		}
		right := url.Values{"code": {code}, "year_of_birth": {"1985"}}
		wantPage(t, "the stranger's 31st try", postFrom(b, "/access", right, stranger), http.StatusTooManyRequests, "Too many attempts")
		wantPage(t, "the patient behind the same proxy", followAccess(b, postFrom(b, "/access", right, colleague)), http.StatusOK, "Knee rehab, week 1")
	})

	t.Run("untrusted peer", func(t *testing.T) {
		t.Parallel()
		e := apptest.Start(t, apptest.Options{Configure: func(c *config.Config) { c.HTTP.TrustedProxies = []string{"10.0.0.0/8"} }})
		e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": ""})
		b := e.NewBrowser()
		// A client that is no proxy of ours cannot spread its tries over
		// made-up addresses.
		junkLogins(t, b, 10, "192.0.2.1", "192.0.2.2", "192.0.2.3")
		right := url.Values{"email": {"demo@clinic.example"}, "password": {apptest.Password}}
		wantPage(t, "11th try with yet another made-up address", postFrom(b, "/login", right, "192.0.2.99"), http.StatusTooManyRequests)
	})
}

// burstResult is what a burst of requests got: the count of each status,
// and the responses.
type burstResult struct {
	status map[int]int
	resps  []*http.Response
	bodies []string
}

// burst sends n requests at once: each is built first, then all wait at a
// start barrier (loadgen.Burst) and go together. Transport errors fail the
// test.
func burst(t *testing.T, n int, build func(i int) *http.Request) burstResult {
	t.Helper()
	hc := &http.Client{
		Transport:     &http.Transport{MaxIdleConns: n, MaxIdleConnsPerHost: n, MaxConnsPerHost: 0},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer hc.CloseIdleConnections()
	res := burstResult{status: map[int]int{}, resps: make([]*http.Response, n), bodies: make([]string, n)}
	errs := make([]error, n)
	reqs := make([]*http.Request, n)
	for i := range reqs {
		reqs[i] = build(i)
	}
	loadgen.Burst(n, func(i int) {
		resp, err := hc.Do(reqs[i])
		if err != nil {
			errs[i] = err
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res.resps[i], res.bodies[i] = resp, string(b)
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("burst request %d: %v", i, err)
		}
		res.status[res.resps[i].StatusCode]++
	}
	return res
}

// formRequest is a POST of form to the app, with an X-Forwarded-For
// header when forwardedFor is not "".
func formRequest(e *apptest.Env, path string, form url.Values, forwardedFor string) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, e.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if forwardedFor != "" {
		req.Header.Set("X-Forwarded-For", forwardedFor)
	}
	return req
}

var attemptsRe = regexp.MustCompile(`(?m)^pmsbridge_auth_attempts_total\{kind="(\w+)",outcome="(\w+)"\} (\d+)$`)

// attemptCounts reads pmsbridge_auth_attempts_total of one kind from
// /metrics, by outcome.
func attemptCounts(t *testing.T, e *apptest.Env, kind string) map[string]int {
	t.Helper()
	r := e.NewBrowser().Get("/metrics")
	out := map[string]int{}
	for _, m := range attemptsRe.FindAllStringSubmatch(r.Body, -1) {
		if m[1] == kind {
			n, _ := strconv.Atoi(m[3])
			out[m[2]] = n
		}
	}
	return out
}

// TestBurstOfYearsOpensNothing: 100 simultaneous tries of one code, each
// with another year (the right one among them), check at most 5 years (the
// per-code limit) and the rest are refused unchecked.
func TestBurstOfYearsOpensNothing(t *testing.T) {
	t.Parallel()
	e, _, _, code := accessSetup(t, nil, sandbox.DemoPatientID) // born 1985
	res := burst(t, 100, func(i int) *http.Request {
		return formRequest(e, "/access", url.Values{"code": {code}, "year_of_birth": {strconv.Itoa(1900 + i)}}, "")
	})
	ok, wrong, locked := res.status[http.StatusSeeOther], res.status[http.StatusUnauthorized], res.status[http.StatusTooManyRequests]
	t.Logf("burst of 100 years: %d opened, %d wrong, %d locked", ok, wrong, locked)
	if wrong > 5 || ok > 1 || wrong+ok < 1 || ok+wrong+locked != 100 {
		t.Errorf("statuses %v: want at most 5 wrong years checked (401), the right one at most once (303 to the programme), the rest 429", res.status)
	}
	if got := attemptCounts(t, e, "access"); got["wrong"] != wrong || got["ok"] != ok || got["locked"] != locked {
		t.Errorf("metrics count %v, the answers %d ok, %d wrong, %d locked", got, ok, wrong, locked)
	}
	if wrong == 5 {
		if r := openProgramme(e.NewBrowser(), code, "1985"); r.StatusCode != http.StatusTooManyRequests {
			t.Errorf("the right year after the burst: %d, want 429", r.StatusCode)
		}
	}
}

// TestBurstOfPasswordsFindsNothing: 60 simultaneous logins to one account,
// each with another wrong password, check at most 10 (the per-account
// limit); the rest are refused unchecked.
func TestBurstOfPasswordsFindsNothing(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": ""})
	res := burst(t, 60, func(i int) *http.Request {
		return formRequest(e, "/login", url.Values{"email": {"demo@clinic.example"}, "password": {fmt.Sprintf("guess number %02d", i)}}, "")
	})
	wrong := res.status[http.StatusUnauthorized]
	refused := res.status[http.StatusTooManyRequests] + res.status[http.StatusServiceUnavailable]
	t.Logf("burst of 60 passwords: %v", res.status)
	if wrong > 10 || wrong < 1 || wrong+refused != 60 {
		t.Errorf("statuses %v: want at most 10 passwords checked (401), the rest refused (429, or 503 when busy)", res.status)
	}
	if got := attemptCounts(t, e, "login"); got["wrong"] != wrong || got["ok"] != 0 {
		t.Errorf("metrics count %v checked, the answers %d", got, wrong)
	}
	r := e.NewBrowser().PostForm("/login", url.Values{"email": {"demo@clinic.example"}, "password": {apptest.Password}})
	if wrong == 10 && r.StatusCode != http.StatusTooManyRequests {
		t.Errorf("the right password after the burst: %d, want 429", r.StatusCode)
	}
}

// TestLoginBurstBoundedHashing: 60 simultaneous logins from 60 clients
// (none locked out) are not all hashed at once: beyond the process's
// password-check slots and waiting places the answer is a quick 503 with
// Retry-After, unchecked; the rest are checked (401).
func TestLoginBurstBoundedHashing(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{
		Configure: func(c *config.Config) { c.HTTP.TrustedProxies = []string{"127.0.0.1"} },
		Store:     func(o *store.Options) { o.PasswordChecks, o.PasswordCheckQueue = 2, 2 },
	})
	e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": ""})
	res := burst(t, 60, func(i int) *http.Request {
		return formRequest(e, "/login", url.Values{"email": {fmt.Sprintf("guess%d@nowhere.example", i)}, "password": {"not the password"}},
			fmt.Sprintf("198.51.100.%d", i+1))
	})
	t.Logf("burst of 60 logins from 60 clients: %v", res.status)
	busy, wrong := res.status[http.StatusServiceUnavailable], res.status[http.StatusUnauthorized]
	if busy < 1 || busy+wrong != 60 {
		t.Errorf("statuses %v: want 401 for the logins checked and a quick 503 for the others", res.status)
	}
	for i, r := range res.resps {
		if r.StatusCode == http.StatusServiceUnavailable && (r.Header.Get("Retry-After") == "" || !strings.Contains(res.bodies[i], "try again in a few seconds")) {
			t.Errorf("503 without Retry-After or without a readable page: %q", r.Header.Get("Retry-After"))
			break
		}
	}
	if got := attemptCounts(t, e, "login"); got["busy"] != busy || got["wrong"] != wrong {
		t.Errorf("metrics count %v, the answers %d busy, %d wrong", got, busy, wrong)
	}
	// Busy answers do not count towards a lock-out.
	wantRedirect(t, "login after the burst", postFrom(e.NewBrowser(), "/login", url.Values{"email": {"demo@clinic.example"}, "password": {apptest.Password}}, "198.51.100.1"), "/patients")
}

// TestLockedTriesCannotFlushHistory: 300 locked tries of a patient's code
// leave the Cliniko call history that support reads intact (jobs show,
// the admin API and page), and the practitioner's page lists the locked
// tries once per device and hour, with the count of all of them.
func TestLockedTriesCannotFlushHistory(t *testing.T) {
	t.Parallel()
	e, b, pid, code := accessSetup(t, nil, sandbox.DemoPatientID)
	ctx := context.Background()
	// A failed upload, so that support has a job to look at: the key
	// is revoked in Cliniko before the second programme.
	e.Sandbox.RevokeKey(sandbox.DemoAdminKey)
	prog := assignProgramme(t, b, pid, kneeForm("Knee rehab, week 2"))
	taskID := jobs.UploadTaskID(prog.ID, prog.Version)
	e.Eventually("the upload's permanent failure", func() bool {
		f, err := e.Store.GetFailure(ctx, taskID)
		return err == nil && f.Permanent
	})
	history, err := e.Store.AuditOf(ctx, pid, 0)
	if err != nil || !slices.ContainsFunc(history, func(a store.AuditEntry) bool { return strings.HasPrefix(a.Op, "cliniko.") }) {
		t.Fatalf("no Cliniko calls in the patient's history before the tries: %+v (%v)", history, err)
	}

	patient := e.NewBrowser()
	for i := range 5 {
		if r := openProgramme(patient, code, strconv.Itoa(1970+i)); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong year %d: %d", i+1, r.StatusCode)
		}
	}
	res := burst(t, 300, func(i int) *http.Request {
		return formRequest(e, "/access", url.Values{"code": {code}, "year_of_birth": {strconv.Itoa(1900 + i%100)}}, "")
	})
	if res.status[http.StatusTooManyRequests] != 300 {
		t.Fatalf("300 tries of a locked code: %v, want 300 × 429", res.status)
	}

	// Everything that was in the history is still there, in order (a
	// background job may have added newer entries in front).
	after, err := e.Store.AuditOf(ctx, pid, 0)
	if err != nil || len(after) < len(history) || !slices.EqualFunc(after[len(after)-len(history):], history, func(a, b store.AuditEntry) bool { return a == b }) ||
		slices.ContainsFunc(after, func(a store.AuditEntry) bool { return strings.HasPrefix(a.Op, "access.") }) {
		t.Errorf("the patient's history changed under the locked tries:\nbefore %v\nafter  %v (%v)", opsOf(history), opsOf(after), err)
	}
	if r := adminAPI(e, http.MethodGet, "/admin/api/jobs/"+taskID, nil); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, `"op":"cliniko.`) {
		t.Errorf("admin API job: %d, want the patient's Cliniko calls:\n%s", r.StatusCode, r.Body)
	}
	if code, out, errOut := cliRun(t, e, "", "jobs", "show", taskID); code != 0 || !strings.Contains(out, "cliniko.list_attachments") || !strings.Contains(out, "401") {
		t.Errorf("jobs show: exit %d, want the Cliniko calls:\n%s%s", code, out, errOut)
	}
	admin := e.NewBrowser()
	wantRedirect(t, "admin login", admin.PostForm("/admin/login", url.Values{"token": {apptest.AdminToken}}), "/admin/")
	wantPage(t, "admin job page", admin.Get("/admin/jobs/"+taskID), http.StatusOK, "cliniko.list_attachments")

	tries, counts, err := e.Store.AccessAttemptsOf(ctx, pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := opsOf(tries); len(got) != 6 || got[0] != store.AccessLocked || counts[store.AccessLocked] != 300 || counts[store.AccessFailed] != 5 {
		t.Errorf("access log %v, counts %v: want 5 wrong years and one locked entry, 300 locked tries counted", got, counts)
	}
	wantPage(t, "the practitioner's patient page", b.Get("/patients/"+pid), http.StatusOK, "locked out after too many tries", "Refused 300 time(s) in all")
}

func opsOf(es []store.AuditEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Op)
	}
	return out
}

// TestNoticesFromFixedTable: the success box of the settings and admin
// pages shows only our own texts, chosen by a key of the address; text or
// numbers that are not numbers in the address are never shown; unknown
// keys show nothing.
func TestNoticesFromFixedTable(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	clinic := e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": sandbox.DemoAdminKey})
	b := e.Login("demo@clinic.example")
	admin := e.NewBrowser()
	wantRedirect(t, "admin login", admin.PostForm("/admin/login", url.Values{"token": {apptest.AdminToken}}), "/admin/")
	const phish = "Your account is suspended. Call 0800 123 456 now"
	noticeRe := regexp.MustCompile(`class="notice ok"[^>]*>([^<]*)<`)
	notice := func(body string) string {
		if m := noticeRe.FindStringSubmatch(body); m != nil {
			return html.UnescapeString(m[1])
		}
		return ""
	}
	for _, tc := range []struct {
		desc, path, want string
		who              *apptest.Browser
	}{
		{"settings: saved", "/settings/cliniko?done=saved", "Your Cliniko API key is saved and works.", b},
		{"settings: saved, 3 replayed", "/settings/cliniko?done=saved&replayed=3", "Your Cliniko API key is saved and works. 3 programme PDFs or imports that had failed are running again with it.", b},
		{"settings: saved, 1 replayed", "/settings/cliniko?done=saved&replayed=1", "Your Cliniko API key is saved and works. A programme PDF or an import that had failed is running again with it.", b},
		{"settings: replayed is text", "/settings/cliniko?done=saved&replayed=" + url.QueryEscape(phish), "Your Cliniko API key is saved and works.", b},
		{"settings: replayed is not a plain number", "/settings/cliniko?done=saved&replayed=3%20jobs", "Your Cliniko API key is saved and works.", b},
		{"settings: removed", "/settings/cliniko?done=removed", "Your Cliniko API key is removed.", b},
		{"settings: unknown key", "/settings/cliniko?done=" + url.QueryEscape(phish), "", b},
		{"admin: replayed", "/admin/?notice=replayed&n=2", "Replayed 2 jobs.", admin},
		{"admin: replayed, one", "/admin/?notice=replayed&n=1", "Replayed 1 job.", admin},
		{"admin: replayed in a clinic", "/admin/?notice=replayed&n=2&where=" + clinic.Subscription.ID, "Replayed 2 jobs of Demo Physio Clinic.", admin},
		{"admin: replayed, where is text", "/admin/?notice=replayed&n=2&where=" + url.QueryEscape(phish), "Replayed 2 jobs.", admin},
		{"admin: replayed, count is text", "/admin/?notice=replayed&n=" + url.QueryEscape(phish), "", admin},
		{"admin: deleted", "/admin/?notice=deleted", "Deleted.", admin},
		{"admin: text as the key", "/admin/?notice=" + url.QueryEscape(phish), "", admin},
	} {
		r := tc.who.Get(tc.path)
		if r.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", tc.desc, r.StatusCode)
			continue
		}
		if got := notice(r.Body); got != tc.want {
			t.Errorf("%s: notice %q, want %q", tc.desc, got, tc.want)
		}
		if strings.Contains(r.Body, "suspended") || strings.Contains(r.Body, "0800") {
			t.Errorf("%s: the page shows text from the address", tc.desc)
		}
	}
}

// TestAdminLoginLockOut: wrong admin tokens are counted per client: 10
// lock the client out (429, even with the right token) while others log
// in; 60 simultaneous wrong tokens check at most 10.
func TestAdminLoginLockOut(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{Configure: func(c *config.Config) { c.HTTP.TrustedProxies = []string{"127.0.0.1"} }})
	res := burst(t, 60, func(i int) *http.Request {
		return formRequest(e, "/admin/login", url.Values{"token": {fmt.Sprintf("guess-%02d", i)}}, "203.0.113.7")
	})
	t.Logf("burst of 60 tokens: %v", res.status)
	wrong, locked := res.status[http.StatusUnauthorized], res.status[http.StatusTooManyRequests]
	if wrong > 10 || wrong < 1 || wrong+locked != 60 {
		t.Errorf("statuses %v: want at most 10 tokens checked (401), the rest 429", res.status)
	}
	if got := attemptCounts(t, e, "admin"); got["wrong"] != wrong || got["locked"] != locked {
		t.Errorf("metrics count %v, the answers %d wrong, %d locked", got, wrong, locked)
	}
	b := e.NewBrowser()
	for i := wrong; i < 10; i++ {
		wantPage(t, "wrong token", postFrom(b, "/admin/login", url.Values{"token": {"wrong"}}, "203.0.113.7"), http.StatusUnauthorized)
	}
	r := postFrom(b, "/admin/login", url.Values{"token": {apptest.AdminToken}}, "203.0.113.7")
	wantPage(t, "the right token from the locked client", r, http.StatusTooManyRequests, "Too many wrong tokens")
	if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 15*60+1 {
		t.Errorf("Retry-After %q, want up to 15 minutes", r.Header.Get("Retry-After"))
	}
	wantRedirect(t, "the right token from another client", postFrom(b, "/admin/login", url.Values{"token": {apptest.AdminToken}}, "198.51.100.9"), "/admin/")
}

// TestFormBodiesCapped: forms anyone may post without logging in take at
// most 64 KiB, the others 256 KiB; more gets a 413 page and changes
// nothing.
func TestFormBodiesCapped(t *testing.T) {
	t.Parallel()
	e, b, pid, code := accessSetup(t, nil, sandbox.DemoPatientID)
	pad := func(n int) string { return strings.Repeat("x", n) }
	anon := e.NewBrowser()
	for _, tc := range []struct {
		desc   string
		who    *apptest.Browser
		path   string
		form   url.Values
		status int
	}{
		{"login, 70 KiB", anon, "/login", url.Values{"email": {"demo@clinic.example"}, "password": {pad(70 << 10)}}, http.StatusRequestEntityTooLarge},
		{"access, 10 MiB", anon, "/access", url.Values{"code": {code}, "year_of_birth": {"1985"}, "junk": {pad(10 << 20)}}, http.StatusRequestEntityTooLarge},
		{"access, 70 KiB", anon, "/access", url.Values{"code": {code}, "year_of_birth": {"1985"}, "junk": {pad(70 << 10)}}, http.StatusRequestEntityTooLarge},
		{"access, 60 KiB", anon, "/access", url.Values{"code": {code}, "year_of_birth": {"1985"}, "junk": {pad(60 << 10)}}, http.StatusSeeOther},
		{"admin login, 70 KiB", anon, "/admin/login", url.Values{"token": {pad(70 << 10)}}, http.StatusRequestEntityTooLarge},
		{"assign, 300 KiB of notes", b, "/patients/" + pid + "/programmes", url.Values{"title": {"Big"}, "exercise": {"ex_quad_set"}, "notes": {pad(300 << 10)}}, http.StatusRequestEntityTooLarge},
		{"assign, 200 KiB of notes", b, "/patients/" + pid + "/programmes", url.Values{"title": {"Big"}, "exercise": {"ex_quad_set"}, "notes": {pad(200 << 10)}}, http.StatusUnprocessableEntity},
	} {
		r := tc.who.PostForm(tc.path, tc.form)
		if r.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.desc, r.StatusCode, tc.status)
		}
		if tc.status == http.StatusRequestEntityTooLarge && !strings.Contains(r.Body, "too much to send") {
			t.Errorf("%s: the 413 answer is not our page", tc.desc)
		}
	}
	if progs := patientDoc(t, b, pid).Programmes; len(progs) != 1 {
		t.Errorf("the patient has %d programmes, want the first one only", len(progs))
	}
	if got := attemptCounts(t, e, "login"); got["wrong"] != 0 || got["ok"] != 1 {
		t.Errorf("login attempts %v, want only the practitioner's own: an oversized login is no attempt", got)
	}
}

// TestRedisDumpHoldsNoClinicalText: after a run with programmes (from the
// form and the webhook), patient tries (wrong, right, locked) and a
// programme opened, neither the keys and values of the Redis database nor
// the AOF that Redis writes hold an access code, a programme title, notes
// or an exercise text of ours in clear.
func TestRedisDumpHoldsNoClinicalText(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, true)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	// Every write reaches the file at once, and a rewrite writes commands,
	// not a (compressed) RDB preamble.
	for _, kv := range [][2]string{{"appendfsync", "always"}, {"aof-use-rdb-preamble", "no"}} {
		if err := rdb.ConfigSet(ctx, kv[0], kv[1]).Err(); err != nil {
			t.Fatal(err)
		}
	}
	e := apptest.Start(t, apptest.Options{RedisURL: srv.URL(0)})
	clinic := e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": sandbox.DemoAdminKey})
	b := e.Login("demo@clinic.example")
	_, pid := b.Open(sandbox.DemoPatientID) // Zoë, born 1985
	if pid == "" {
		t.Fatal("import failed")
	}
	secrets := map[string]string{
		"form title": "Knee rehab after the skiing fall",
		"form notes": "Ice the knee for ten minutes after each session",
		"hook title": "Shoulder plan for the rotator cuff",
		"hook notes": "Call the clinic if the tingling returns",
		"hook name":  "Wall slide with the yellow band",
		"hook text":  "Keep both forearms against the wall and slide upwards",
	}
	form := kneeForm(secrets["form title"])
	form.Set("notes", secrets["form notes"])
	p1 := assignProgramme(t, b, pid, form)
	body := hookEvent("evt_dump", "programme.assigned", hookProgramme{ID: "prg_dump", Version: 1, PatientID: pid,
		PractitionerID: clinic.Practitioners["demo@clinic.example"].ID, Title: secrets["hook title"], StartsOn: "2026-11-22",
		Notes: secrets["hook notes"], Exercises: []pmsbridge.Exercise{{Name: secrets["hook name"], Instructions: secrets["hook text"], Sets: 2, Reps: 8}}})
	if r := postHook(e.NewBrowser(), body, bridge.Sign(apptest.WebhookSecret, time.Now(), body)); r.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook: %d %s", r.StatusCode, r.Body)
	}
	waitPDFState(t, e, b, pid, p1.ID, 1, "uploaded")
	p2 := waitPDFState(t, e, b, pid, "prg_dump", 1, "uploaded")
	codes := map[string]string{"form programme's code": p1.Code, "hook programme's code": p2.Code}
	patient := e.NewBrowser()
	wantPage(t, "right year", openProgramme(patient, p1.Code, "1985"), http.StatusOK, secrets["form title"])
	for i := range 6 {
		openProgramme(patient, p2.Code, strconv.Itoa(1990+i)) // the sixth is locked
	}
	if r := openProgramme(patient, p2.Code, "1985"); r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the code after 5 wrong years: %d", r.StatusCode)
	}
	// The text really went somewhere: into the PDFs in Cliniko.
	if atts := attachmentsOf(e, sandbox.DemoPatientID); len(atts) != 2 {
		t.Fatalf("%d PDFs in Cliniko, want 2", len(atts))
	}

	dump, keys := e.DumpRedis()
	if keys < 10 || !strings.Contains(dump, "pmsb:prg:") {
		t.Fatalf("the dump has %d keys and no programme: not the app's database", keys)
	}
	var aof bytes.Buffer
	err := filepath.WalkDir(srv.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		aof.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(aof.String(), "prg_dump") || !strings.Contains(aof.String(), pid) {
		t.Fatalf("the AOF (%d bytes) does not hold the programmes' writes", aof.Len())
	}
	for _, set := range []map[string]string{secrets, codes} {
		for what, s := range set {
			for where, text := range map[string]string{"the Redis keys and values": dump, "the AOF": aof.String()} {
				if strings.Contains(text, s) {
					t.Errorf("%s (%q) is in %s in clear", what, s, where)
				}
			}
		}
	}
}
