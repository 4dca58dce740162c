package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/internal/apptest"
	"github.com/physitrack/pmsbridge/internal/cli"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
	"github.com/physitrack/pmsbridge/support"
)

// cliEnviron is the environment that makes `pmsbridge jobs` read the same
// configuration (and Redis) as the test app.
func cliEnviron(e *apptest.Env) []string {
	c := e.Config
	return []string{
		"PMSBRIDGE_REGION=" + c.Region,
		"PMSBRIDGE_PUBLIC_URL=" + c.PublicURL,
		"PMSBRIDGE_REDIS_URL=" + c.Redis.URL,
		"PMSBRIDGE_CLINIKO_BASE_URL=" + c.Cliniko.BaseURL,
		"PMSBRIDGE_CLINIKO_USER_AGENT=" + c.Cliniko.UserAgent,
		"PMSBRIDGE_SECRETS_ENCRYPTION_KEY=" + c.Secrets.EncryptionKey,
		"PMSBRIDGE_WEBHOOKS_SECRET=" + c.Webhooks.Secret,
		"PMSBRIDGE_ADMIN_TOKEN=" + c.Admin.Token,
	}
}

// cliRun runs the pmsbridge command line against e's Redis.
func cliRun(t *testing.T, e *apptest.Env, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Execute(context.Background(), args, strings.NewReader(stdin), &out, &errb, cliEnviron(e))
	return code, out.String(), errb.String()
}

// adminAPI calls the admin API with the bearer token.
func adminAPI(e *apptest.Env, method, path string, body any) apptest.Response {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	return e.NewBrowser().Do(method, path, r, http.Header{"Authorization": {"Bearer " + apptest.AdminToken}, "Content-Type": {"application/json"}})
}

// failedJobs lists the failure ledger through the admin API.
func failedJobs(t *testing.T, e *apptest.Env, query string) []jobs.JobJSON {
	t.Helper()
	r := adminAPI(e, http.MethodGet, "/admin/api/jobs?state=failed&"+query, nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("GET /admin/api/jobs?%s: %d %s", query, r.StatusCode, r.Body)
	}
	var doc struct {
		Jobs []jobs.JobJSON `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(r.Body), &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Jobs
}

func jobIDs(js []jobs.JobJSON) []string {
	ids := []string{}
	for _, j := range js {
		ids = append(ids, j.ID)
	}
	slices.Sort(ids)
	return ids
}

func sortedIDs(ids ...string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	if out == nil {
		out = []string{}
	}
	return out
}

// waitLedgerGone waits until a job leaves the failure ledger (it succeeded).
func waitLedgerGone(t *testing.T, e *apptest.Env, id string) {
	t.Helper()
	e.Eventually(id+" to succeed and leave the ledger", func() bool {
		_, err := e.Store.GetFailure(context.Background(), id)
		return errors.Is(err, store.ErrNotFound)
	})
}

// waitFailed waits until a job is a permanent failure in the ledger.
func waitFailed(t *testing.T, e *apptest.Env, id string, cause pmsbridge.Cause) store.Failure {
	t.Helper()
	var f store.Failure
	e.Eventually(id+" to fail with "+string(cause), func() bool {
		var err error
		f, err = e.Store.GetFailure(context.Background(), id)
		return err == nil && f.Permanent
	})
	if f.Cause != cause {
		t.Fatalf("%s failed with %s (%s), want %s", id, f.Cause, f.Reason, cause)
	}
	return f
}

// metricValue is the value of one sample line of /metrics ("" when absent).
func metricValue(body, sample string) string {
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			return v
		}
	}
	return ""
}

// TestSupportFailedJobs makes real failures through the sandbox, shows them
// through the admin API, the CLI and the admin page, and replays them after
// the fix by every route support has.
func TestSupportFailedJobs(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	ctx := context.Background()
	const priyaKey = "MS0ycHJpeWFzZWNvbmRrZXlmb3J0ZXN0czAwMDAy-au1"
	au1 := e.Sandbox.Accounts()[0]
	au1.AddKey("2", priyaKey)
	clinic := e.SeedClinic("Demo Physio Clinic", map[string]string{
		"demo@clinic.example": sandbox.DemoAdminKey, "priya@clinic.example": priyaKey, "sam@clinic.example": sandbox.DemoSchedulerKey})
	sub := clinic.Subscription.ID
	demo, priya, sam := clinic.Practitioners["demo@clinic.example"], clinic.Practitioners["priya@clinic.example"], clinic.Practitioners["sam@clinic.example"]
	bd, bp, bs := e.Login(demo.Email), e.Login(priya.Email), e.Login(sam.Email)

	// 1. A revoked key on import.
	e.Sandbox.RevokeKey(priyaKey)
	if r, id := bp.Open("1002"); id != "" || r.StatusCode != http.StatusForbidden || !strings.Contains(r.Body, "Cliniko did not accept your API key") {
		t.Fatalf("import with a revoked key: %d (patient %q), want the 403 key page", r.StatusCode, id)
	}
	importRevoked := jobs.ImportTaskID(sub, "au1", "1002")
	waitFailed(t, e, importRevoked, pmsbridge.CauseClinikoUnauthorized)

	// 2. A Scheduler's upload.
	_, zoe := bs.Open(sandbox.DemoPatientID)
	if zoe == "" {
		t.Fatal("import with the Scheduler key failed")
	}
	samProg := assignProgramme(t, bs, zoe, kneeForm("Back care"))
	uploadForbidden := jobs.UploadTaskID(samProg.ID, 1)
	waitFailed(t, e, uploadForbidden, pmsbridge.CauseClinikoForbidden)

	// 3. A patient archived in Cliniko before the import, and 4. one that
	// does not exist at all.
	const lukasz = "836447129235882001"
	e.Sandbox.ArchivePatient(lukasz)
	if r, id := bd.Open(lukasz); id != "" || r.StatusCode != http.StatusNotFound {
		t.Fatalf("import of an archived patient: %d (patient %q), want 404", r.StatusCode, id)
	}
	importArchived := jobs.ImportTaskID(sub, "au1", lukasz)
	waitFailed(t, e, importArchived, pmsbridge.CauseClinikoNotFound)
	if _, id := bd.Open("999999"); id != "" {
		t.Fatal("imported a patient that does not exist")
	}
	importMissing := jobs.ImportTaskID(sub, "au1", "999999")
	waitFailed(t, e, importMissing, pmsbridge.CauseClinikoNotFound)

	// 5. Cliniko answers 422 to three uploads.
	const oliver = "836447129235882009"
	_, oli := bd.Open(oliver)
	if oli == "" {
		t.Fatal("import of Oliver failed")
	}
	e.Sandbox.FailNextOp("create_attachment", 3, http.StatusUnprocessableEntity)
	var invalid []string
	for _, title := range []string{"Shoulder A", "Shoulder B", "Shoulder C"} {
		p := assignProgramme(t, bd, oli, kneeForm(title))
		invalid = append(invalid, jobs.UploadTaskID(p.ID, 1))
	}
	for _, id := range invalid {
		waitFailed(t, e, id, pmsbridge.CauseClinikoInvalid)
	}
	all := sortedIDs(append([]string{importRevoked, uploadForbidden, importArchived, importMissing}, invalid...)...)

	t.Run("admin API lists failures in the contract shape", func(t *testing.T) {
		if r := e.NewBrowser().Get("/admin/api/jobs?state=failed"); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("without the token: %d, want 401", r.StatusCode)
		}
		for _, tc := range []struct {
			desc  string
			query string
			want  []string
		}{
			{"all", "", all},
			{"revoked key", "cause=cliniko_unauthorized", []string{importRevoked}},
			{"role", "cause=cliniko_forbidden", []string{uploadForbidden}},
			{"not found", "cause=cliniko_not_found", sortedIDs(importArchived, importMissing)},
			{"invalid uploads", "cause=cliniko_invalid&type=programme:upload_pdf", sortedIDs(invalid...)},
			{"imports", "type=cliniko:import_patient", sortedIDs(importRevoked, importArchived, importMissing)},
			{"one practitioner", "practitioner_id=" + sam.ID, []string{uploadForbidden}},
			{"cause and practitioner", "cause=cliniko_invalid&practitioner_id=" + sam.ID, []string{}},
			{"cause with nothing", "cause=cliniko_rate_limited", []string{}},
			{"practitioner by email", "practitioner=" + url.QueryEscape("sam@clinic.example"), []string{uploadForbidden}},
			{"clinic by name", "cause=cliniko_not_found&clinic=" + url.QueryEscape("Demo Physio Clinic"), sortedIDs(importArchived, importMissing)},
			{"clinic by id", "type=programme:upload_pdf&subscription_id=" + sub, sortedIDs(append([]string{uploadForbidden}, invalid...)...)},
			{"search for the Cliniko user", "search=" + url.QueryEscape("sam sched"), []string{uploadForbidden}},
			{"search for a patient", "search=oliver", sortedIDs(invalid...)},
		} {
			t.Run(tc.desc, func(t *testing.T) {
				if got := jobIDs(failedJobs(t, e, tc.query)); !slices.Equal(got, tc.want) {
					t.Errorf("got %v, want %v", got, tc.want)
				}
			})
		}
		for query, says := range map[string]string{
			"cause=bogus":                          "unknown cause",
			"practitioner=nobody%40clinic.example": `no practitioner has the email \"nobody@clinic.example\"`,
			"clinic=Nowhere":                       `no clinic \"Nowhere\"`,
			"practitioner=" + demo.ID + "&practitioner_id=" + sam.ID: "not both",
		} {
			if r := adminAPI(e, http.MethodGet, "/admin/api/jobs?state=failed&"+query, nil); r.StatusCode != http.StatusBadRequest || !strings.Contains(r.Body, says) {
				t.Errorf("%s: %d %s, want 400 saying %q", query, r.StatusCode, r.Body, says)
			}
		}

		// People on the rows.
		var named struct {
			Jobs []support.Job `json:"jobs"`
		}
		r0 := adminAPI(e, http.MethodGet, "/admin/api/jobs?cause=cliniko_forbidden", nil)
		if err := json.Unmarshal([]byte(r0.Body), &named); err != nil || len(named.Jobs) != 1 {
			t.Fatalf("forbidden jobs: %v %s", err, r0.Body)
		}
		nj := named.Jobs[0]
		if nj.Practitioner == nil || nj.Practitioner.Email != "sam@clinic.example" || nj.Clinic == nil || nj.Clinic.Name != "Demo Physio Clinic" ||
			nj.Patient == nil || nj.Patient.Name != "Zoë O'Brien" || nj.ClinikoUser == nil || nj.ClinikoUser.Name != "Sam Scheduler" || nj.ClinikoUser.Role != sandbox.RoleScheduler {
			t.Errorf("the Scheduler's job names: %s", r0.Body)
		}

		// A dry run says how many and where, and changes nothing.
		before := jobIDs(failedJobs(t, e, "cause=cliniko_invalid"))
		r1 := adminAPI(e, http.MethodPost, "/admin/api/jobs/replay", map[string]any{"cause": "cliniko_invalid", "clinic": "Demo Physio Clinic", "dry_run": true})
		var dry struct {
			DryRun   bool                  `json:"dry_run"`
			Matched  *int                  `json:"matched"`
			Replayed *int                  `json:"replayed"`
			Summary  string                `json:"summary"`
			Clinics  []support.ClinicCount `json:"clinics"`
			IDs      []string              `json:"ids"`
		}
		if err := json.Unmarshal([]byte(r1.Body), &dry); err != nil || r1.StatusCode != http.StatusOK || !dry.DryRun || dry.Matched == nil || *dry.Matched != 3 || dry.Replayed != nil ||
			dry.Summary != "3 failed jobs of Demo Physio Clinic" || len(dry.Clinics) != 1 || dry.Clinics[0] != (support.ClinicCount{ID: sub, Name: "Demo Physio Clinic", Jobs: 3}) ||
			!slices.Equal(sortedIDs(dry.IDs...), sortedIDs(invalid...)) {
			t.Errorf("dry run: %d %s", r1.StatusCode, r1.Body)
		}
		for _, id := range invalid {
			if f, err := e.Store.GetFailure(ctx, id); err != nil || !f.Permanent || f.Replayed != nil {
				t.Errorf("%s after a dry run: %+v %v", id, f, err)
			}
		}
		if after := jobIDs(failedJobs(t, e, "cause=cliniko_invalid")); !slices.Equal(before, after) {
			t.Errorf("a dry run changed the listing: %v → %v", before, after)
		}
		if r := adminAPI(e, http.MethodPost, "/admin/api/jobs/replay", map[string]any{"practitioner": "nobody@clinic.example", "dry_run": true}); r.StatusCode != http.StatusBadRequest {
			t.Errorf("replay for an unknown email: %d %s, want 400", r.StatusCode, r.Body)
		}
		if r := adminAPI(e, http.MethodPost, "/admin/api/jobs/replay", map[string]any{"ids": []string{importMissing}, "cause": "cliniko_not_found"}); r.StatusCode != http.StatusBadRequest {
			t.Errorf("replay by ids and a filter: %d %s, want 400", r.StatusCode, r.Body)
		}

		// Every contract field is there.
		r := adminAPI(e, http.MethodGet, "/admin/api/jobs?state=failed&cause=cliniko_forbidden", nil)
		var raw struct {
			Jobs []map[string]any `json:"jobs"`
		}
		if err := json.Unmarshal([]byte(r.Body), &raw); err != nil || len(raw.Jobs) != 1 {
			t.Fatalf("forbidden jobs: %v %s", err, r.Body)
		}
		for _, k := range []string{"id", "queue", "type", "state", "cause", "reason", "practitioner_id", "patient_id", "programme_id", "attempts", "last_failed_at"} {
			if _, ok := raw.Jobs[0][k]; !ok {
				t.Errorf("job lacks %q: %v", k, raw.Jobs[0])
			}
		}
		j := failedJobs(t, e, "cause=cliniko_forbidden")[0]
		if j.Queue != jobs.QueuePDF || j.Type != jobs.TypeUploadPDF || j.State != "failed" || j.Reason == "" ||
			j.PractitionerID != sam.ID || j.PatientID != zoe || j.ProgrammeID != samProg.ID || j.Attempts != 1 || j.LastFailedAt.IsZero() {
			t.Errorf("forbidden job = %+v", j)
		}
		imp := failedJobs(t, e, "cause=cliniko_unauthorized")[0]
		if imp.Queue != jobs.QueueImport || imp.Type != jobs.TypeImportPatient || imp.PractitionerID != priya.ID || imp.Attempts != 1 {
			t.Errorf("revoked-key import job = %+v", imp)
		}
		if r := adminAPI(e, http.MethodGet, "/admin/api/jobs/"+url.PathEscape(uploadForbidden), nil); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "cliniko.list_attachments") {
			t.Errorf("GET one job: %d, want 200 with the Cliniko calls of its audit log:\n%s", r.StatusCode, r.Body)
		}
	})

	t.Run("CLI failed --json prints the API's document", func(t *testing.T) {
		for _, q := range []struct{ query, flag string }{{"", ""}, {"cause=cliniko_not_found", "--cause=cliniko_not_found"}, {"type=programme:upload_pdf&practitioner_id=" + demo.ID, "--type=programme:upload_pdf --practitioner=" + demo.ID}} {
			args := append([]string{"jobs", "failed", "--json"}, strings.Fields(q.flag)...)
			code, out, errOut := cliRun(t, e, "", args...)
			if code != 0 {
				t.Fatalf("%v: exit %d: %s", args, code, errOut)
			}
			var fromCLI, fromAPI any
			if err := json.Unmarshal([]byte(out), &fromCLI); err != nil {
				t.Fatalf("%v: %v\n%s", args, err, out)
			}
			api := adminAPI(e, http.MethodGet, "/admin/api/jobs?state=failed&"+q.query, nil)
			_ = json.Unmarshal([]byte(api.Body), &fromAPI)
			if !reflect.DeepEqual(fromCLI, fromAPI) {
				t.Errorf("%v differs from the API:\nCLI: %s\nAPI: %s", args, out, api.Body)
			}
		}
	})

	t.Run("CLI failed, show, stats", func(t *testing.T) {
		code, out, _ := cliRun(t, e, "", "jobs", "failed")
		if code != 0 || !strings.Contains(out, "CAUSE") || !strings.Contains(out, strconv.Itoa(len(all))+" failed jobs of Demo Physio Clinic.") {
			t.Errorf("jobs failed: exit %d:\n%s", code, out)
		}
		// People, not ids: the Scheduler's upload names the practitioner,
		// the clinic, the patient and the Cliniko user whose key failed;
		// ids are shortened (whole with --wide).
		var samRow string
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, support.ShortID(uploadForbidden)+" ") {
				samRow = line
			}
		}
		for _, want := range []string{"Dr Sam <sam@clinic.example>", "Demo Physio Clinic", "Zoë O'Brien", "Sam Scheduler (Scheduler)", "cliniko_forbidden"} {
			if !strings.Contains(samRow, want) {
				t.Errorf("the Scheduler's row lacks %q: %q\n%s", want, samRow, out)
			}
		}
		if strings.Contains(out, zoe) || strings.Contains(out, uploadForbidden) {
			t.Errorf("jobs failed shows whole ids without --wide:\n%s", out)
		}
		_, wide, _ := cliRun(t, e, "", "jobs", "failed", "--wide")
		for _, id := range all {
			if !strings.Contains(wide, id) {
				t.Errorf("jobs failed --wide lacks %s", id)
			}
		}
		// --practitioner takes an email; an email of nobody is an error.
		code, out, _ = cliRun(t, e, "", "jobs", "failed", "--practitioner", "Sam@Clinic.example")
		if code != 0 || !strings.Contains(out, "1 failed job of Demo Physio Clinic.") || !strings.Contains(out, "Sam Scheduler (Scheduler)") {
			t.Errorf("jobs failed --practitioner <email>: exit %d:\n%s", code, out)
		}
		if code, out, errOut := cliRun(t, e, "", "jobs", "failed", "--practitioner", "nobody@clinic.example"); code != cli.ExitUsage || out != "" ||
			!strings.Contains(errOut, `no practitioner has the email "nobody@clinic.example"`) {
			t.Errorf("jobs failed --practitioner <unknown email>: exit %d: %q %q", code, out, errOut)
		}
		if code, out, _ := cliRun(t, e, "", "jobs", "failed", "--clinic", "Demo Physio Clinic", "--cause", "cliniko_not_found"); code != 0 || !strings.Contains(out, "2 failed jobs of Demo Physio Clinic.") {
			t.Errorf("jobs failed --clinic <name>: exit %d:\n%s", code, out)
		}
		if code, out, _ := cliRun(t, e, "", "jobs", "failed", "--search", "Shoulder"); code != 0 || !strings.Contains(out, "No failed jobs match.") {
			t.Errorf("jobs failed --search for a programme title (not searchable): exit %d:\n%s", code, out)
		}
		if code, out, _ := cliRun(t, e, "", "jobs", "failed", "--search", "SAM@"); code != 0 || !strings.Contains(out, "1 failed job of Demo Physio Clinic.") {
			t.Errorf("jobs failed --search <email part>: exit %d:\n%s", code, out)
		}
		code, out, _ = cliRun(t, e, "", "jobs", "show", uploadForbidden)
		for _, want := range []string{"cliniko_forbidden", samProg.ID, "cliniko.list_attachments", "403", "jobs replay " + uploadForbidden} {
			if !strings.Contains(out, want) {
				t.Errorf("jobs show lacks %q (exit %d):\n%s", want, code, out)
			}
		}
		code, out, _ = cliRun(t, e, "", "jobs", "stats")
		if code != 0 || !strings.Contains(out, "Failure ledger: "+strconv.Itoa(len(all))+" entries") {
			t.Errorf("jobs stats: exit %d:\n%s", code, out)
		}
		failedCol := map[string]string{}
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) == 8 {
				failedCol[f[0]+" "+f[1]] = f[6]
			}
		}
		if failedCol["pdf programme:upload_pdf"] != "4" || failedCol["import cliniko:import_patient"] != "3" {
			t.Errorf("jobs stats FAILED column: %v, want 4 uploads and 3 imports:\n%s", failedCol, out)
		}
	})

	t.Run("CLI exit codes", func(t *testing.T) {
		for _, tc := range []struct {
			args    []string
			code    int
			message string
		}{
			{[]string{"jobs", "failed", "--cause", "bogus"}, cli.ExitUsage, "unknown cause"},
			{[]string{"jobs", "replay", "--cause", "bogus", "--yes"}, cli.ExitUsage, "unknown cause"},
			{[]string{"jobs", "replay"}, cli.ExitUsage, "say what to replay"},
			{[]string{"jobs", "show", "pdf:nope:v1"}, cli.ExitFailed, `no failed job "pdf:nope:v1"`},
			{[]string{"jobs", "replay", "pdf:nope:v1"}, cli.ExitFailed, "not in the failure ledger"},
			{[]string{"jobs", "delete", "pdf:nope:v1", "--yes"}, cli.ExitFailed, `no failed job "pdf:nope:v1"`},
			{[]string{"jobs", "delete", importMissing}, cli.ExitUsage, "add --yes"},
		} {
			t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
				code, _, errOut := cliRun(t, e, "", tc.args...)
				if code != tc.code || !strings.Contains(errOut, tc.message) {
					t.Errorf("exit %d, stderr %q; want exit %d saying %q", code, errOut, tc.code, tc.message)
				}
			})
		}
		if got := jobIDs(failedJobs(t, e, "")); !slices.Equal(got, all) {
			t.Errorf("failed commands changed the ledger: %v", got)
		}
	})

	t.Run("admin page groups failures by cause", func(t *testing.T) {
		admin := e.NewBrowser()
		if r := admin.Get("/admin/"); r.StatusCode != http.StatusSeeOther || r.Location() != "/admin/login" {
			t.Errorf("without login: %d to %q, want 303 to /admin/login", r.StatusCode, r.Location())
		}
		if r := admin.PostForm("/admin/login", url.Values{"token": {"wrong-token-0123456789"}}); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("wrong token: %d, want 401", r.StatusCode)
		}
		if r := admin.PostForm("/admin/login", url.Values{"token": {apptest.AdminToken}}); r.StatusCode != http.StatusSeeOther || r.Location() != "/admin/" {
			t.Fatalf("login: %d to %q", r.StatusCode, r.Location())
		}
		page := admin.Get("/admin/")
		if page.StatusCode != http.StatusOK || !strings.Contains(page.Body, "<strong>"+strconv.Itoa(len(all))+" failed jobs of Demo Physio Clinic</strong> in the failure ledger") {
			t.Fatalf("admin page: %d", page.StatusCode)
		}
		for cause, n := range map[pmsbridge.Cause]int{pmsbridge.CauseClinikoUnauthorized: 1, pmsbridge.CauseClinikoForbidden: 1, pmsbridge.CauseClinikoNotFound: 2, pmsbridge.CauseClinikoInvalid: 3} {
			help := cause.Info().Support
			wants := []string{
				html.EscapeString(help.Title) + ` <span class="badge">` + string(cause) + `</span> <span class="badge error">` + strconv.Itoa(n) + `</span>`,
				html.EscapeString(help.Means), html.EscapeString(help.Fix),
			}
			if n > 1 { // a group of several asks before it replays them
				wants = append(wants, `<input type="hidden" name="cause" value="`+string(cause)+`"><input type="hidden" name="bulk" value="1"><button type="submit" class="secondary">Replay these `+strconv.Itoa(n)+`…</button>`)
			}
			for _, want := range wants {
				if !strings.Contains(page.Body, want) {
					t.Errorf("admin page lacks %q", want)
				}
			}
		}
		// People, not ids; plurals right; ids whole in the text and title.
		for _, want := range []string{"Dr Sam", "sam@clinic.example", "Sam Scheduler", `<span class="badge">Scheduler</span>`, "Zoë O&#39;Brien",
			"1 attempt ·", `<code class="jobid" title="` + uploadForbidden + `">`, `<svg class="chart"`, `<a href="/admin/queues/">`} {
			if !strings.Contains(page.Body, want) {
				t.Errorf("admin page lacks %q", want)
			}
		}
		if strings.Contains(page.Body, "(s)") {
			t.Errorf("admin page has a \"(s)\" plural")
		}
		// Filters: a clinic by name and a cause; a clinic nobody has.
		filtered := admin.Get("/admin/?clinic=" + url.QueryEscape("demo physio clinic") + "&cause=cliniko_invalid")
		if !strings.Contains(filtered.Body, "<strong>3 failed jobs of Demo Physio Clinic</strong> match these filters") || strings.Contains(filtered.Body, `title="`+uploadForbidden+`"`) {
			t.Errorf("filtered page does not list exactly the 3 invalid uploads")
		}
		if r := admin.Get("/admin/?clinic=Nowhere"); !strings.Contains(r.Body, `role="alert">no clinic &#34;Nowhere&#34;`) || strings.Contains(r.Body, `class="jobid"`) {
			t.Errorf("a clinic nobody has: the page does not say so, or lists jobs")
		}
		if strings.Contains(page.Body, `id="cause-cliniko_rate_limited"`) {
			t.Errorf("admin page shows a group without failures")
		}
		jp := admin.Get("/admin/jobs/" + url.PathEscape(uploadForbidden))
		for _, want := range []string{"cliniko.list_attachments", "Dr Sam", "Sam Scheduler", "<h2>History", "attempt 1 failed: cliniko_forbidden"} {
			if jp.StatusCode != http.StatusOK || !strings.Contains(jp.Body, want) {
				t.Errorf("job page: %d, lacks %q", jp.StatusCode, want)
			}
		}
	})

	t.Run("metrics", func(t *testing.T) {
		_, _ = bd.Open(oliver) // a click on a linked patient
		m := e.NewBrowser().Get("/metrics")
		if m.StatusCode != http.StatusOK {
			t.Fatalf("/metrics: %d", m.StatusCode)
		}
		for _, name := range []string{"pmsbridge_jobs_total", "pmsbridge_cliniko_requests_total", "pmsbridge_failure_ledger_entries", "pmsbridge_click_to_patient_seconds"} {
			if !strings.Contains(m.Body, "\n"+name) {
				t.Errorf("/metrics lacks %s", name)
			}
		}
		if v := metricValue(m.Body, "pmsbridge_failure_ledger_entries"); v != strconv.Itoa(len(all)) {
			t.Errorf("pmsbridge_failure_ledger_entries = %q, want %d", v, len(all))
		}
		if v := metricValue(m.Body, `pmsbridge_jobs_total{cause="cliniko_invalid",outcome="failed",type="programme:upload_pdf"}`); v != "3" {
			t.Errorf("failed invalid uploads counted %q, want 3", v)
		}
		if v := metricValue(m.Body, `pmsbridge_click_to_patient_seconds_count{path="linked"}`); v == "" || v == "0" {
			t.Errorf("click-to-patient count for linked patients = %q", v)
		}
	})

	t.Run("replay", func(t *testing.T) {
		// Without a terminal and without --yes nothing is replayed (a "y"
		// piped in does not count); exit 2.
		code, out, errOut := cliRun(t, e, "y\n", "jobs", "replay", "--cause", "cliniko_forbidden")
		if code != cli.ExitUsage || out != "" || !strings.Contains(errOut, "add --yes") {
			t.Errorf("replay without a terminal: exit %d:\n%s%s", code, out, errOut)
		}
		if f, err := e.Store.GetFailure(ctx, uploadForbidden); err != nil || !f.Permanent || f.Attempts != 1 {
			t.Errorf("after the refused replay: ledger entry %+v %v, want it untouched", f, err)
		}
		if st, _ := e.Store.PDFStateOf(ctx, samProg.ID, 1); st.State != pmsbridge.PDFFailed {
			t.Errorf("after the refused replay: pdf state %s, want failed", st.State)
		}

		// The role is fixed in Cliniko: replay the cause from the CLI.
		e.Sandbox.SetRole("4", sandbox.RolePractitioner)
		code, out, errOut = cliRun(t, e, "", "jobs", "replay", "--cause", "cliniko_forbidden", "--clinic", sub, "--by", "Tess Support", "--yes")
		if code != 0 || !strings.Contains(out, "Replayed 1 job of Demo Physio Clinic.") {
			t.Fatalf("replay --cause --yes: exit %d: %s %s", code, out, errOut)
		}
		waitLedgerGone(t, e, uploadForbidden)
		// Its history: the failure with the Scheduler's key, the replay by
		// the CLI, the success; it is recently recovered.
		code, out, _ = cliRun(t, e, "", "jobs", "show", uploadForbidden)
		history := out[strings.Index(out, "History (oldest first):"):]
		for i, want := range []string{"attempt 1 failed: cliniko_forbidden", "with the Cliniko key of Sam Scheduler (Scheduler); failed for good",
			"replayed by CLI (Tess Support)", "succeeded"} {
			if !strings.Contains(history, want) {
				t.Errorf("jobs show's history lacks step %d %q:\n%s", i, want, out)
			}
		}
		if code != 0 || !strings.Contains(out, "state:") || !strings.Contains(out, "done") || !strings.Contains(out, "recovered:") || strings.Contains(out, "Replay it with") {
			t.Errorf("jobs show of a recovered job: exit %d:\n%s", code, out)
		}
		if code, out, _ := cliRun(t, e, "", "jobs", "recovered"); code != 0 || !strings.Contains(out, support.ShortID(uploadForbidden)) ||
			!strings.Contains(out, "CLI (Tess Support)") || !strings.Contains(out, "1 job of Demo Physio Clinic recovered after a replay.") {
			t.Errorf("jobs recovered: exit %d:\n%s", code, out)
		}
		var recovered struct {
			Jobs []support.Job `json:"jobs"`
		}
		r := adminAPI(e, http.MethodGet, "/admin/api/jobs/recovered?clinic="+url.QueryEscape("Demo Physio Clinic"), nil)
		if err := json.Unmarshal([]byte(r.Body), &recovered); err != nil || len(recovered.Jobs) != 1 || recovered.Jobs[0].ID != uploadForbidden ||
			recovered.Jobs[0].RecoveredAt == nil || recovered.Jobs[0].Replayed == nil || recovered.Jobs[0].Replayed.By.Who != "Tess Support" {
			t.Errorf("API recovered: %d %s", r.StatusCode, r.Body)
		}
		var detail support.Detail
		r = adminAPI(e, http.MethodGet, "/admin/api/jobs/"+url.PathEscape(uploadForbidden), nil)
		if err := json.Unmarshal([]byte(r.Body), &detail); err != nil || detail.State != "done" || len(detail.History) != 3 ||
			detail.History[1].Kind != store.EventReplayed || detail.History[2].Kind != store.EventSucceeded {
			t.Errorf("API job after recovery: %d %s", r.StatusCode, r.Body)
		}
		waitPDFState(t, e, bs, zoe, samProg.ID, 1, pmsbridge.PDFUploaded)
		stillExactly(t, e, sandbox.DemoPatientID, 1)

		// A job nobody will fix is deleted.
		code, out, errOut = cliRun(t, e, "", "jobs", "delete", importMissing, "--yes")
		if code != 0 || !strings.Contains(out, "Deleted "+importMissing) {
			t.Fatalf("jobs delete: exit %d: %s %s", code, out, errOut)
		}
		if r := adminAPI(e, http.MethodGet, "/admin/api/jobs/"+url.PathEscape(importMissing), nil); r.StatusCode != http.StatusOK ||
			!strings.Contains(r.Body, `"state":"deleted"`) || !strings.Contains(r.Body, `"via":"cli"`) {
			t.Errorf("deleted job: %d %s, want its history saying the CLI deleted it", r.StatusCode, r.Body)
		}
		if failures, _ := e.Store.ListFailures(ctx, store.FailureFilter{MinAttempts: -1}); slices.ContainsFunc(failures, func(f store.Failure) bool { return f.TaskID == importMissing }) {
			t.Errorf("deleted job still in the ledger")
		}
		if _, err := e.Jobs.Inspector().GetTaskInfo(jobs.QueueImport, importMissing); !errors.Is(err, asynq.ErrTaskNotFound) {
			t.Errorf("deleted job still in asynq's archive: %v", err)
		}

		// The patient is unarchived in Cliniko: the admin page's group
		// form replays every cliniko_not_found job.
		e.Sandbox.EditPatient(lukasz, func(p *sandbox.Patient) { p.ArchivedAt = nil })
		admin := e.NewBrowser()
		admin.PostForm("/admin/login", url.Values{"token": {apptest.AdminToken}})
		// A replay by filter asks first, saying how many and where.
		group := url.Values{"cause": {"cliniko_not_found"}, "bulk": {"1"}}
		if r := admin.PostForm("/admin/replay", group); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "Replay 1 failed job of Demo Physio Clinic?") {
			t.Fatalf("group replay without confirmation: %d, want the question", r.StatusCode)
		}
		if f, _ := e.Store.GetFailure(ctx, importArchived); !f.Permanent {
			t.Fatalf("the question replayed the job")
		}
		group.Set("confirm", "2") // the page showed 2: the selection changed, ask again
		if r := admin.PostForm("/admin/replay", group); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "has changed since the page was shown") {
			t.Fatalf("group replay with a stale count: %d, want the question again", r.StatusCode)
		}
		group.Set("confirm", "1")
		if r := admin.PostForm("/admin/replay", group); r.StatusCode != http.StatusSeeOther || r.Location() != "/admin/?cause=cliniko_not_found&n=1&notice=replayed&where="+sub {
			t.Fatalf("group replay: %d to %q", r.StatusCode, r.Location())
		} else if page := admin.Get(r.Location()); !strings.Contains(page.Body, "Replayed 1 job of Demo Physio Clinic.") {
			t.Errorf("the page after the replay does not say what was replayed")
		}
		waitLedgerGone(t, e, importArchived)
		if by := replayedBy(t, e, importArchived); by.Via != store.ViaAdminPage {
			t.Errorf("the admin page's replay is in the history as %v", by)
		}
		if _, err := e.Store.FindLink(ctx, sub, "au1", lukasz); err != nil {
			t.Errorf("replayed import made no link: %v", err)
		}

		// Priya gets a new key: replay her cause through the API.
		const newKey = "MS0ycHJpeWF0aGlyZGtleWZvcnRlc3RzMDAwMDAy-au1"
		au1.AddKey("2", newKey)
		// Saved without the settings page (which would replay her failed
		// jobs by itself): support replays them.
		cu, _, err := e.Store.ClinikoUserOf(ctx, priya.ID)
		if err == nil {
			err = e.Store.SetClinikoKey(ctx, priya.ID, newKey, cu)
		}
		if err != nil {
			t.Fatal(err)
		}
		if r := adminAPI(e, http.MethodPost, "/admin/api/jobs/replay", map[string]string{"cause": "cliniko_unauthorized"}); r.StatusCode != http.StatusOK || replayedN(t, r) != 1 {
			t.Fatalf("API replay by cause: %d %s", r.StatusCode, r.Body)
		}
		waitLedgerGone(t, e, importRevoked)
		if by := replayedBy(t, e, importRevoked); by.Via != store.ViaAPI {
			t.Errorf("the API's replay is in the history as %v", by)
		}
		if _, id := bp.Open("1002"); id == "" {
			t.Errorf("Priya still cannot open the patient")
		}

		// The 422s: one by id from the CLI, one through the API, one from
		// the admin page's row form.
		if r := adminAPI(e, http.MethodPost, "/admin/api/jobs/replay", map[string]any{"ids": []string{"pdf:nope:v1"}}); r.StatusCode != http.StatusNotFound {
			t.Errorf("API replay of an unknown id: %d, want 404", r.StatusCode)
		}
		if r := adminAPI(e, http.MethodPost, "/admin/api/jobs/replay", map[string]any{}); r.StatusCode != http.StatusBadRequest {
			t.Errorf("API replay of nothing: %d, want 400", r.StatusCode)
		}
		if code, out, errOut := cliRun(t, e, "", "jobs", "replay", invalid[0]); code != 0 || !strings.Contains(out, "Replayed 1 job of Demo Physio Clinic.") {
			t.Fatalf("jobs replay ID: exit %d: %s %s", code, out, errOut)
		}
		if r := adminAPI(e, http.MethodPost, "/admin/api/jobs/replay", map[string]any{"ids": []string{invalid[1]}}); r.StatusCode != http.StatusOK || replayedN(t, r) != 1 {
			t.Fatalf("API replay by id: %d %s", r.StatusCode, r.Body)
		}
		if r := admin.PostForm("/admin/replay", url.Values{"id": {invalid[2]}}); r.StatusCode != http.StatusSeeOther || r.Location() != "/admin/?n=1&notice=replayed&where="+sub {
			t.Fatalf("row replay: %d to %q", r.StatusCode, r.Location())
		}
		for _, id := range invalid {
			waitLedgerGone(t, e, id)
		}
		atts := stillExactly(t, e, oliver, 3)
		for _, a := range atts {
			if !strings.Contains(a.Description, "Shoulder") {
				t.Errorf("unexpected attachment %q", a.Description)
			}
		}

		// Nothing is left.
		if js := failedJobs(t, e, ""); len(js) != 0 {
			t.Errorf("ledger after the replays: %v", jobIDs(js))
		}
		if _, out, _ := cliRun(t, e, "", "jobs", "failed"); !strings.Contains(out, "No failed jobs match.") {
			t.Errorf("jobs failed after the replays:\n%s", out)
		}
		if page := admin.Get("/admin/"); !strings.Contains(page.Body, "No failed jobs.") {
			t.Errorf("admin page after the replays does not say there are no failed jobs")
		}
		if v := metricValue(e.NewBrowser().Get("/metrics").Body, "pmsbridge_failure_ledger_entries"); v != "0" {
			t.Errorf("pmsbridge_failure_ledger_entries = %q, want 0", v)
		}
	})
}

// replayedBy is who the last replay in a job's history was asked by.
func replayedBy(t *testing.T, e *apptest.Env, id string) store.Actor {
	t.Helper()
	h, err := e.Store.JobHistory(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].Kind == store.EventReplayed && h[i].By != nil {
			return *h[i].By
		}
	}
	t.Fatalf("no replay in the history of %s", id)
	return store.Actor{}
}

// replayedN reads {"replayed":N} from a replay's answer.
func replayedN(t *testing.T, r apptest.Response) int {
	t.Helper()
	var doc struct {
		Replayed *int `json:"replayed"`
	}
	if err := json.Unmarshal([]byte(r.Body), &doc); err != nil || doc.Replayed == nil {
		t.Fatalf("replay answer without replayed: %v %s", err, r.Body)
	}
	return *doc.Replayed
}

// TestAdminAPIJobsStateFilter: GET /admin/api/jobs lists permanent failures
// unless state=all asks for the jobs still being retried too — with or
// without state=failed, the same document as `pmsbridge jobs failed
// --json`. A bad since is refused.
func TestAdminAPIJobsStateFilter(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	ctx := context.Background()
	for _, f := range []store.Failure{
		{TaskID: "import:sub_x:au1:7", Queue: jobs.QueueImport, Type: jobs.TypeImportPatient, Permanent: true, Cause: pmsbridge.CauseClinikoNotFound, Reason: "gone", Attempts: 1},
		{TaskID: "import:sub_x:au1:8", Queue: jobs.QueueImport, Type: jobs.TypeImportPatient, Permanent: false, Cause: pmsbridge.CauseClinikoUnavailable, Reason: "busy", Attempts: 5},
	} {
		if err := e.Store.RecordFailure(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(query string) []string {
		t.Helper()
		r := adminAPI(e, http.MethodGet, "/admin/api/jobs"+query, nil)
		var doc struct {
			Jobs []jobs.JobJSON `json:"jobs"`
		}
		if err := json.Unmarshal([]byte(r.Body), &doc); r.StatusCode != http.StatusOK || err != nil {
			t.Fatalf("GET /admin/api/jobs%s: %d %s", query, r.StatusCode, r.Body)
		}
		return jobIDs(doc.Jobs)
	}
	_, out, _ := cliRun(t, e, "", "jobs", "failed", "--json")
	var fromCLI struct {
		Jobs []jobs.JobJSON `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(out), &fromCLI); err != nil {
		t.Fatalf("jobs failed --json: %v: %s", err, out)
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", jobIDs(fromCLI.Jobs)},
		{"", []string{"import:sub_x:au1:7"}},
		{"?state=failed", []string{"import:sub_x:au1:7"}},
		{"?state=all", []string{"import:sub_x:au1:8", "import:sub_x:au1:7"}},
	} {
		got := ids(tc.query)
		slices.Sort(got)
		slices.Sort(tc.want)
		if !slices.Equal(got, tc.want) {
			t.Errorf("GET /admin/api/jobs%s: %v, want %v", tc.query, got, tc.want)
		}
	}
	for _, q := range []string{"?since=-1h", "?since=yesterday", "?state=retrying"} {
		if r := adminAPI(e, http.MethodGet, "/admin/api/jobs"+q, nil); r.StatusCode != http.StatusBadRequest {
			t.Errorf("GET /admin/api/jobs%s: %d %s, want 400", q, r.StatusCode, r.Body)
		}
	}
}
