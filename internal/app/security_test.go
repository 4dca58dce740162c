package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/config"
	"github.com/physitrack/pmsbridge/internal/apptest"
	"github.com/physitrack/pmsbridge/mail/mailtest"
	"github.com/physitrack/pmsbridge/sms/twiliotest"
)

// sessionCookieOf returns the session cookie a response sets (nil if none).
func sessionCookieOf(r apptest.Response) *http.Cookie {
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == "pmsbridge_session" {
			return c
		}
	}
	return nil
}

// browserWithCookie is a new browser that presents a given session token.
func browserWithCookie(t *testing.T, e *apptest.Env, token string) *apptest.Browser {
	t.Helper()
	b := e.NewBrowser()
	u, _ := url.Parse(e.URL)
	b.C.Jar.SetCookies(u, []*http.Cookie{{Name: "pmsbridge_session", Value: token, Path: "/"}})
	return b
}

// sessionToken is the session token in b's cookie jar.
func sessionToken(t *testing.T, e *apptest.Env, b *apptest.Browser) string {
	t.Helper()
	u, _ := url.Parse(e.URL)
	for _, c := range b.C.Jar.Cookies(u) {
		if c.Name == "pmsbridge_session" {
			return c.Value
		}
	}
	t.Fatal("no session cookie in the jar")
	return ""
}

// TestLoginFailuresLockOut: wrong credentials get the 401 page; after 10
// failures (from one address, or for one account) the 11th attempt is
// refused (429) even with the right password.
func TestLoginFailuresLockOut(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": "", "priya@clinic.example": ""})
	b := e.NewBrowser()
	for _, tc := range []struct{ desc, email, password string }{
		{"empty password", "demo@clinic.example", ""}, // not checked, not counted
		{"unknown email", "nobody@clinic.example", apptest.Password},
	} {
		r := b.PostForm("/login", url.Values{"email": {tc.email}, "password": {tc.password}})
		wantPage(t, tc.desc, r, http.StatusUnauthorized)
		if sessionCookieOf(r) != nil && sessionCookieOf(r).Value != "" {
			t.Errorf("%s: a session cookie was set", tc.desc)
		}
	}
	for i := 2; i <= 10; i++ {
		wrong := fmt.Sprintf("wrong password %02d", i)
		r := b.PostForm("/login", url.Values{"email": {"demo@clinic.example"}, "password": {wrong}})
		wantPage(t, fmt.Sprintf("failure %d", i), r, http.StatusUnauthorized, "That email address and password do not match")
		if strings.Contains(r.Body, wrong) {
			t.Fatalf("failure %d: the page repeats the password", i)
		}
	}
	r := b.PostForm("/login", url.Values{"email": {"demo@clinic.example"}, "password": {apptest.Password}})
	wantPage(t, "right password after 10 failures", r, http.StatusTooManyRequests, "Too many failed attempts")
	if strings.Contains(r.Body, apptest.Password) {
		t.Error("the page repeats the password")
	}
	if c := sessionCookieOf(r); c != nil && c.Value != "" {
		t.Error("a locked login set a session cookie")
	}
	if r := b.Get("/patients"); r.StatusCode != http.StatusSeeOther {
		t.Errorf("after a locked login /patients answers %d, want the login redirect", r.StatusCode)
	}
	// The address is locked too: another account from it is refused.
	r = b.PostForm("/login", url.Values{"email": {"priya@clinic.example"}, "password": {apptest.Password}})
	wantPage(t, "another account from the locked address", r, http.StatusTooManyRequests, "Too many failed attempts")
}

// TestSessionCookieFlags: HttpOnly and SameSite=Lax always (Strict would
// drop the cookie on Cliniko's top-level navigation); Secure exactly when
// public_url is https.
func TestSessionCookieFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		desc, publicURL string
		secure          bool
	}{
		{"http public_url", "http://pmsbridge.test", false},
		{"https public_url", "https://au.physitrack.com", true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			e := apptest.Start(t, apptest.Options{Configure: func(c *config.Config) {
				c.PublicURL = tc.publicURL
				c.HTTP.ExtraHosts = []string{"127.0.0.1"}
			}})
			e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": ""})
			b := e.NewBrowser()
			r := b.PostForm("/login", url.Values{"email": {"demo@clinic.example"}, "password": {apptest.Password}})
			wantRedirect(t, "login", r, "/patients")
			c := sessionCookieOf(r)
			if c == nil || len(c.Value) < 32 {
				t.Fatalf("login set no proper session cookie: %v", r.Header.Values("Set-Cookie"))
			}
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure != tc.secure || c.Path != "/" {
				t.Errorf("session cookie %q: HttpOnly %v SameSite %v Secure %v Path %q; want HttpOnly, Lax, Secure %v, /",
					r.Header.Get("Set-Cookie"), c.HttpOnly, c.SameSite, c.Secure, c.Path, tc.secure)
			}
			if hsts := r.Header.Get("Strict-Transport-Security"); (hsts != "") != tc.secure {
				t.Errorf("Strict-Transport-Security %q with public_url %s", hsts, tc.publicURL)
			}
			// Logging out clears the cookie with the same attributes.
			logout := browserWithCookie(t, e, c.Value).PostForm("/logout", nil)
			wantRedirect(t, "logout", logout, "/login")
			cleared := sessionCookieOf(logout)
			if cleared == nil || cleared.Value != "" || cleared.MaxAge >= 0 || cleared.Secure != tc.secure || !cleared.HttpOnly {
				t.Errorf("logout cookie %q: want an expired, HttpOnly cookie, Secure %v", logout.Header.Get("Set-Cookie"), tc.secure)
			}
		})
	}
}

// TestCrossOriginFormsRefused: a form posted from another site is refused
// with 403 and changes nothing.
func TestCrossOriginFormsRefused(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	clinic := e.SeedClinic("Demo Physio Clinic", map[string]string{
		"demo@clinic.example":  sandbox.DemoAdminKey,
		"priya@clinic.example": sandbox.DemoPractitionerKey,
	})
	owner := e.Login("demo@clinic.example")
	_, id := owner.Open(sandbox.DemoPatientID)
	if id == "" {
		t.Fatal("import failed")
	}
	ownerID := clinic.Practitioners["demo@clinic.example"].ID

	forms := []struct {
		desc, path string
		form       url.Values
	}{
		{"share", "/patients/" + id + "/share", url.Values{"email": {"priya@clinic.example"}, "action": {"share"}}},
		{"transfer", "/patients/" + id + "/transfer", url.Values{"email": {"priya@clinic.example"}}},
		{"remove Cliniko key", "/settings/cliniko", url.Values{"action": {"remove"}}},
		{"replace Cliniko key", "/settings/cliniko", url.Values{"api_key": {sandbox.DemoSchedulerKey}}},
		{"assign programme", "/patients/" + id + "/programmes", url.Values{"title": {"Evil"}, "exercise": {"straight-leg-raise"}}},
		{"logout", "/logout", nil},
	}
	headers := []struct {
		desc string
		h    http.Header
	}{
		{"cross-site with Origin", http.Header{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}}},
		{"same-site subdomain", http.Header{"Origin": {"https://evil.physitrack.com"}, "Sec-Fetch-Site": {"same-site"}}},
		{"Origin only", http.Header{"Origin": {"https://evil.example"}}},
		{"Sec-Fetch-Site only", http.Header{"Sec-Fetch-Site": {"cross-site"}}},
	}
	for _, f := range forms {
		for _, h := range headers {
			t.Run(f.desc+" "+h.desc, func(t *testing.T) {
				hdr := h.h.Clone()
				hdr.Set("Content-Type", "application/x-www-form-urlencoded")
				r := owner.Do(http.MethodPost, f.path, strings.NewReader(f.form.Encode()), hdr)
				wantPage(t, "cross-origin POST "+f.path, r, http.StatusForbidden, "This request was blocked")
			})
		}
	}
	// Nothing changed.
	p, err := e.Store.GetPatient(context.Background(), id)
	if err != nil || p.OwnerID != ownerID || len(p.SharedWith) != 0 {
		t.Errorf("patient after refused forms: owner %s shared %v (%v)", p.OwnerID, p.SharedWith, err)
	}
	if progs, _ := e.Store.ListProgrammes(context.Background(), id); len(progs) != 0 {
		t.Errorf("a cross-origin form assigned %d programmes", len(progs))
	}
	key, cu, err := e.Store.ClinikoKey(context.Background(), ownerID)
	if err != nil || key != sandbox.DemoAdminKey || cu.Role != "administrator" {
		t.Errorf("Cliniko key after refused forms: role %q (%v)", cu.Role, err)
	}
	if r := owner.Get("/patients/" + id); r.StatusCode != http.StatusOK {
		t.Errorf("the session did not survive a cross-origin logout: %d", r.StatusCode)
	}
	priya := e.Login("priya@clinic.example")
	if r := priya.Get("/patients/" + id); r.StatusCode != http.StatusNotFound {
		t.Errorf("colleague can open the patient after refused share: %d", r.StatusCode)
	}
	// The same forms from our own pages work (the check is not just
	// refusing everything).
	r := owner.PostForm("/patients/"+id+"/share", url.Values{"email": {"priya@clinic.example"}, "action": {"share"}})
	wantRedirect(t, "same-origin share", r, "/patients/"+id+"?done=shared")
}

// TestSecurityHeaders: every kind of answer carries the protective headers.
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": sandbox.DemoAdminKey})
	b := e.Login("demo@clinic.example")
	anon := e.NewBrowser()
	for _, tc := range []struct {
		desc string
		get  func() apptest.Response
	}{
		{"login page", func() apptest.Response { return anon.Get("/login") }},
		{"login redirect", func() apptest.Response { return anon.Get(importPath + "1001") }},
		{"bad link page", func() apptest.Response { return b.Get(importPath + "abc") }},
		{"patients page", func() apptest.Response { return b.Get("/patients") }},
		{"settings page", func() apptest.Response { return b.Get("/settings/cliniko") }},
		{"not found page", func() apptest.Response { return b.Get("/no/such/page") }},
		{"JSON API", func() apptest.Response { return b.Get("/imports/status?patient_id=1001") }},
		{"healthz", func() apptest.Response { return anon.Get("/healthz") }},
		{"static file", func() apptest.Response { return anon.Get("/static/app.css") }},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r := tc.get()
			csp := r.Header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe-eval") {
				t.Errorf("Content-Security-Policy %q", csp)
			}
			for h, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"} {
				if got := r.Header.Get(h); got != want {
					t.Errorf("%s: %q, want %q", h, got, want)
				}
			}
			if r.StatusCode != http.StatusSeeOther && strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") && r.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("HTML page Cache-Control %q, want no-store", r.Header.Get("Cache-Control"))
			}
		})
	}
}

// TestLogoutEndsSessionServerSide: after logout the old cookie no longer
// works, also when replayed by someone who copied it.
func TestLogoutEndsSessionServerSide(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": ""})
	b := e.Login("demo@clinic.example")
	token := sessionToken(t, e, b)
	copycat := browserWithCookie(t, e, token)
	if r := copycat.Get("/patients"); r.StatusCode != http.StatusOK {
		t.Fatalf("the copied cookie does not work before logout: %d", r.StatusCode)
	}
	other := e.Login("demo@clinic.example") // another device's session
	wantRedirect(t, "logout", b.PostForm("/logout", url.Values{"next": {"//evil.example"}}), "/login")
	if r := copycat.Get("/patients"); r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Location(), "/login") {
		t.Errorf("the old cookie still works after logout: %d %q", r.StatusCode, r.Location())
	}
	if r := copycat.Get("/api/patients/pat_x"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("the old cookie on the API after logout: %d, want 401", r.StatusCode)
	}
	if r := other.Get("/patients"); r.StatusCode != http.StatusOK {
		t.Errorf("logout ended the session of another device: %d", r.StatusCode)
	}
	// A new login gets a new token (no session fixation).
	r := copycat.PostForm("/login", url.Values{"email": {"demo@clinic.example"}, "password": {apptest.Password}})
	if c := sessionCookieOf(r); c == nil || c.Value == token {
		t.Error("logging in with an old cookie kept the old token")
	}
}

// TestSessionSurvivesUnreadableRecord: when the practitioner's records
// cannot be read (Redis trouble, a record the process cannot decode), the
// request fails with 503 but the session is not ended: the browser keeps
// its cookie and works again once the records can be read.
func TestSessionSurvivesUnreadableRecord(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	clinic := e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": sandbox.DemoAdminKey})
	b := e.Login("demo@clinic.example")
	rdb, ctx := e.App.Redis(), context.Background()
	key := "pmsb:prac:" + clinic.Practitioners["demo@clinic.example"].ID + ":cliniko"
	saved, err := rdb.HGet(ctx, key, "user").Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, key, "user", "{not json").Err(); err != nil {
		t.Fatal(err)
	}
	r := b.Get("/patients")
	if r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("unreadable record: %d to %q, want 503", r.StatusCode, r.Location())
	}
	if c := sessionCookieOf(r); c != nil {
		t.Errorf("unreadable record ended the session: Set-Cookie %q", r.Header.Get("Set-Cookie"))
	}
	if err := rdb.HSet(ctx, key, "user", saved).Err(); err != nil {
		t.Fatal(err)
	}
	if r := b.Get("/patients"); r.StatusCode != http.StatusOK {
		t.Errorf("once the record is readable again: %d to %q, want 200", r.StatusCode, r.Location())
	}
}

// TestSecretsNeverStoredOrLogged: after a realistic session the raw Cliniko
// key, the passwords, the session tokens and the SMTP and Twilio secrets
// are nowhere in Redis, in any asynq task, or in the logs; patient contact
// details are not stored in clear, and task payloads and logs hold no
// patient details. The session includes codes sent by email and SMS, and
// one refused by the mail server (a failure in the ledger and the logs).
func TestSecretsNeverStoredOrLogged(t *testing.T) {
	t.Parallel()
	const smtpPassword = "smtp-secret-pass-5521"
	smtp, err := mailtest.New(mailtest.WithAuth("codes", smtpPassword))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = smtp.Close() })
	const twilioToken = "f00dfacef00dfacef00dfacef00dface"
	tw := twiliotest.New(twiliotest.WithCredentials(twiliotest.DemoAccountSID, twilioToken))
	t.Cleanup(tw.Close)
	e := apptest.Start(t, apptest.Options{Configure: func(c *config.Config) {
		c.Mail = config.Mail{SMTPURL: smtp.URL(), From: "Codes <codes@clinic.example>"}
		c.SMS = config.SMS{TwilioAccountSID: twiliotest.DemoAccountSID, TwilioAuthToken: twilioToken, From: twiliotest.DemoFrom, TwilioBaseURL: tw.URL()}
	}})
	clinic := e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": "", "priya@clinic.example": sandbox.DemoPractitionerKey})

	const wrongPassword = "wrong-horse-battery-7731"
	const adminPassword = "admin-made-password-4410"
	badKey := "MS0xbm90LWEtcmVhbC1rZXktNzcyMTk5MA-au1"
	b := e.NewBrowser()
	wantPage(t, "wrong password", b.PostForm("/login", url.Values{"email": {"demo@clinic.example"}, "password": {wrongPassword}}), http.StatusUnauthorized)
	wantRedirect(t, "login", b.PostForm("/login", url.Values{"email": {"demo@clinic.example"}, "password": {apptest.Password}}), "/patients")
	tokens := []string{sessionToken(t, e, b)}
	wantPage(t, "bad key", b.PostForm("/settings/cliniko", url.Values{"api_key": {badKey}}), http.StatusUnprocessableEntity, "bad key")
	wantRedirect(t, "save key", b.PostForm("/settings/cliniko", url.Values{"api_key": {sandbox.DemoAdminKey}}), "/settings/cliniko?done=saved&replayed=0")
	_, id := b.Open(sandbox.DemoPatientID)
	if id == "" {
		t.Fatal("import failed")
	}
	wantRedirect(t, "repeat click", b.Get(importPath+sandbox.DemoPatientID), "/patients/"+id)
	e.Eventually("the refresh", func() bool { return e.Sandbox.RequestCount("get_patient") >= 2 })
	r, _ := b.Open("999999999")
	wantPage(t, "unknown patient", r, http.StatusNotFound, "Cliniko no longer shows this patient")
	if status, doc := callAdminAPI(t, e, http.MethodPost, "/admin/api/practitioners", map[string]string{
		"subscription_id": clinic.Subscription.ID, "email": "new@clinic.example", "name": "Dr New", "password": adminPassword}); status != http.StatusCreated {
		t.Fatalf("create practitioner: %d %v", status, doc)
	}
	nb := e.NewBrowser()
	wantRedirect(t, "new practitioner's login", nb.PostForm("/login", url.Values{"email": {"new@clinic.example"}, "password": {adminPassword}}), "/patients")
	tokens = append(tokens, sessionToken(t, e, nb))
	priya := e.Login("priya@clinic.example")
	tokens = append(tokens, sessionToken(t, e, priya))
	// The patient's code: by email on assign, again by SMS, and once more
	// by email refused for good by the mail server.
	prog, _, err := e.Store.CreateProgramme(context.Background(), pmsbridge.Programme{PatientID: id,
		PractitionerID: clinic.Practitioners["demo@clinic.example"].ID, Title: "Knee rehab", StartsOn: "2026-11-22"})
	if err != nil {
		t.Fatal(err)
	}
	codes := e.App.Codes
	if a, err := codes.Assigned(context.Background(), prog); err != nil || a.Message == nil {
		t.Fatalf("Assigned = %+v, %v", a, err)
	}
	if _, err := codes.SendAgain(context.Background(), prog.ID, pmsbridge.ChannelSMS, prog.PractitionerID); err != nil {
		t.Fatal(err)
	}
	e.Eventually("the email and the text", func() bool { return len(smtp.Messages()) == 1 && len(tw.Messages()) == 1 })
	smtp.FailRecipient("zoe.obrien@patient.example", mailtest.Fault{Code: 550})
	refused, err := codes.SendAgain(context.Background(), prog.ID, pmsbridge.ChannelEmail, prog.PractitionerID)
	if err != nil {
		t.Fatal(err)
	}
	e.Eventually("the refusal", func() bool {
		m, err := e.Store.MessageOf(context.Background(), refused.ID)
		return err == nil && m.State == pmsbridge.MessageFailed
	})
	if !strings.Contains(smtp.Messages()[0].Text, prog.Code) || !strings.Contains(tw.Messages()[0].Body, prog.Code) {
		t.Fatal("the messages do not carry the code: the scan below would prove nothing")
	}

	e.Sandbox.RevokeKey(sandbox.DemoPractitionerKey)
	r, _ = priya.Open("1002")
	wantPage(t, "revoked key", r, http.StatusForbidden, "Cliniko did not accept your API key")
	wantRedirect(t, "logout", b.PostForm("/logout", nil), "/login")

	secrets := map[string]string{
		"the admin's Cliniko key":              sandbox.DemoAdminKey,
		"the admin's Cliniko key secret":       strings.TrimSuffix(sandbox.DemoAdminKey, "-au1"),
		"the admin's key as Basic auth":        base64.StdEncoding.EncodeToString([]byte(sandbox.DemoAdminKey + ":")),
		"the practitioner's Cliniko key":       strings.TrimSuffix(sandbox.DemoPractitionerKey, "-au1"),
		"the practitioner's key as Basic auth": base64.StdEncoding.EncodeToString([]byte(sandbox.DemoPractitionerKey + ":")),
		"the rejected Cliniko key":             strings.TrimSuffix(badKey, "-au1"),
		"the SMTP password":                    smtpPassword,
		"the Twilio auth token":                twilioToken,
		"the password":                         apptest.Password,
		"the wrong password":                   wrongPassword,
		"the admin-made password":              adminPassword,
	}
	for i, tok := range tokens {
		secrets[fmt.Sprintf("session token %d", i)] = tok
	}
	patientDetails := map[string]string{
		"the patient's email":  "zoe.obrien@patient.example",
		"the patient's mobile": "61400111222",
		"the programme's code": prog.Code,
	}

	// Every key in this app's Redis database, every type, plus DUMP.
	all, keys := e.DumpRedis()
	if keys < 10 || !strings.Contains(all, "pmsb:prac:") || !strings.Contains(all, "asynq:") {
		t.Fatalf("the scan found only %d keys; it is not looking at the app's database", keys)
	}

	// Every asynq task in every state.
	var payloads bytes.Buffer
	tasks := 0
	insp := e.Jobs.Inspector()
	queues, err := insp.Queues()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range queues {
		for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
			insp.ListPendingTasks, insp.ListActiveTasks, insp.ListScheduledTasks,
			insp.ListRetryTasks, insp.ListArchivedTasks, insp.ListCompletedTasks,
		} {
			infos, err := list(q, asynq.PageSize(1000))
			if err != nil {
				t.Fatal(err)
			}
			for _, ti := range infos {
				tasks++
				fmt.Fprintf(&payloads, "%s %s %s %s\n", ti.ID, ti.Type, ti.Payload, ti.Result)
				fmt.Fprintf(&payloads, "%s\n", ti.LastErr)
			}
		}
	}
	if tasks < 2 {
		t.Errorf("found only %d asynq tasks; expected at least the imports", tasks)
	}

	logs := e.Logs.String()
	if !strings.Contains(logs, "http request") {
		t.Fatal("no request logs captured")
	}
	for what, s := range secrets {
		for where, text := range map[string]string{"Redis": all, "asynq tasks": payloads.String(), "the logs": logs} {
			if strings.Contains(text, s) {
				t.Errorf("%s is in %s", what, where)
			}
		}
	}
	for what, s := range patientDetails {
		for where, text := range map[string]string{"Redis": all, "asynq tasks": payloads.String(), "the logs": logs} {
			if strings.Contains(text, s) {
				t.Errorf("%s is in clear in %s", what, where)
			}
		}
	}
	for _, name := range []string{"Zoë", "O'Brien", "O\\u0027Brien"} {
		if strings.Contains(payloads.String(), name) || strings.Contains(logs, name) {
			t.Errorf("the patient's name %q is in a task or the logs", name)
		}
	}
}

// TestAdminBrowserLoginExpires: the support login is a server-side
// session: its cookie is a random token that Redis holds only hashed; it
// ends on logout (a copied cookie stops working too), after 8 hours by the
// app's clock, and a made-up cookie never works.
func TestAdminBrowserLoginExpires(t *testing.T) {
	t.Parallel()
	clock := newStepClock(time.Now().UTC())
	e := apptest.Start(t, apptest.Options{Now: clock.Now})
	login := func() (*apptest.Browser, string) {
		t.Helper()
		b := e.NewBrowser()
		if r := b.PostForm("/admin/login", url.Values{"token": {apptest.AdminToken}}); r.StatusCode != http.StatusSeeOther {
			t.Fatalf("admin login: %d", r.StatusCode)
		}
		u, _ := url.Parse(e.URL + "/admin/")
		for _, c := range b.C.Jar.Cookies(u) {
			if c.Name == "pmsbridge_admin" {
				return b, c.Value
			}
		}
		t.Fatal("no admin cookie")
		return nil, ""
	}
	withCookie := func(value string) *apptest.Browser {
		b := e.NewBrowser()
		u, _ := url.Parse(e.URL + "/admin/")
		b.C.Jar.SetCookies(u, []*http.Cookie{{Name: "pmsbridge_admin", Value: value, Path: "/admin"}})
		return b
	}
	admin, value := login()
	if r := admin.Get("/admin/"); r.StatusCode != http.StatusOK {
		t.Fatalf("admin page after login: %d, want 200", r.StatusCode)
	}
	if len(value) < 40 || strings.Contains(value, apptest.AdminToken) {
		t.Errorf("admin cookie %q: want a long random token", value)
	}
	if n, _ := e.App.Redis().Exists(context.Background(), "pmsb:adminsess:"+value).Result(); n != 0 {
		t.Error("Redis holds the admin session token in clear")
	}
	for _, forged := range []string{"", "x", value[:len(value)-1] + "A", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10) + ".deadbeef"} {
		if r := withCookie(forged).Get("/admin/"); r.StatusCode != http.StatusSeeOther || r.Location() != "/admin/login" {
			t.Errorf("made-up cookie %q: %d, want 303 to the login", forged, r.StatusCode)
		}
	}
	// Logout ends the session on the server: a copied cookie stops too.
	copied := withCookie(value)
	if r := copied.Get("/admin/"); r.StatusCode != http.StatusOK {
		t.Fatalf("the copied cookie before logout: %d", r.StatusCode)
	}
	other, _ := login()
	wantRedirect(t, "admin logout", admin.PostForm("/admin/logout", nil), "/admin/login")
	if r := copied.Get("/admin/"); r.StatusCode != http.StatusSeeOther {
		t.Errorf("the copied cookie after logout: %d, want 303 to the login", r.StatusCode)
	}
	if r := other.Get("/admin/"); r.StatusCode != http.StatusOK {
		t.Errorf("another browser's support login after this one logged out: %d", r.StatusCode)
	}
	clock.Advance(8*time.Hour + time.Minute)
	if r := other.Get("/admin/"); r.StatusCode != http.StatusSeeOther || r.Location() != "/admin/login" {
		t.Errorf("after 8 hours: %d to %q, want 303 to /admin/login", r.StatusCode, r.Location())
	}
}
