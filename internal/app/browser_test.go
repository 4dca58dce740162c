package app_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/internal/apptest"
)

// TestBrowserOpenFromClinikoAndAssign drives a real headless Chromium the
// way a clinician does: on the Cliniko (sandbox) patient page they click
// "Open in pmsbridge", log in on our login page, land on the patient's page,
// and then assign a programme with the form.
func TestBrowserOpenFromClinikoAndAssign(t *testing.T) {
	e := apptest.Start(t, apptest.Options{})
	clinic := e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": sandbox.DemoAdminKey})
	demo := clinic.Practitioners["demo@clinic.example"]

	// The whole test, browser start included, gets 45 s at most; each step
	// has its own shorter limit below.
	ctx := newBrowser(t, 45*time.Second)

	var patientURL string
	ok := t.Run("OpenFromClinikoAndLogIn", func(t *testing.T) {
		sandboxPage := e.Sandbox.URL() + "/sandbox/patients/" + sandbox.DemoPatientID
		step(t, ctx, "open the sandbox patient page", chromedp.Navigate(sandboxPage))
		button := chromedp.CSS(`a[href$="/cliniko_patient_import?patient_id=` + sandbox.DemoPatientID + `"]`)
		label := run(t, ctx, "read the Open button", chromedp.Text(button, chromedp.NodeVisible))
		if strings.TrimSpace(label) != "Open in pmsbridge" {
			t.Fatalf("sandbox button reads %q, want %q", label, "Open in pmsbridge")
		}
		step(t, ctx, "click Open in pmsbridge", chromedp.Click(button, chromedp.NodeVisible))

		// No session yet: our login page, which keeps where we were going.
		waitJS(t, ctx, "the login page", `location.pathname === "/login" && document.querySelector("form[action='/login'] #password") ? "yes" : ""`)
		loc := run(t, ctx, "read the location", chromedp.Location())
		if !strings.HasPrefix(loc, e.URL+"/login?next=") {
			t.Fatalf("login page at %q, want %s/login?next=…", loc, e.URL)
		}
		step(t, ctx, "fill in the login form",
			loginForm("demo@clinic.example"))

		// Then on to the import, maybe the waiting page, and the patient.
		heading := waitJS(t, ctx, "the patient page",
			`/^\/patients\/[^\/]+$/.test(location.pathname) && document.querySelector("h1") ? document.querySelector("h1").innerText : ""`)
		if want := "Zoë O'Brien"; !strings.Contains(heading, want) {
			t.Fatalf("patient page heading %q, want it to show %q", heading, want)
		}
		patientURL = run(t, ctx, "read the location", chromedp.Location())
		if visible := run(t, ctx, "read the page", chromedp.Evaluate[string](`document.body.innerText`)); !strings.Contains(visible, "Zoë O'Brien") {
			t.Fatalf("patient page does not show the name; it shows:\n%s", visible)
		}
	})
	if !ok {
		return
	}

	t.Run("AssignProgramme", func(t *testing.T) {
		patientID := patientURL[strings.LastIndex(patientURL, "/")+1:]
		const title = "Knee rehab — week 1"
		form := `form[action="/patients/` + patientID + `/programmes"]`
		step(t, ctx, "fill in the assign form",
			chromedp.WaitVisible(chromedp.CSS(form)),
			chromedp.SendKeys(chromedp.CSS(form+` input[name=title]`), title, chromedp.NodeVisible),
		)
		// Pick the first two exercises of the catalogue.
		ids := run(t, ctx, "pick two exercises", chromedp.Evaluate[[]string](`(() => {
			const boxes = [...document.querySelectorAll('`+form+` input[name=exercise]')].slice(0, 2);
			boxes.forEach(b => { if (!b.checked) b.click(); });
			return boxes.filter(b => b.checked).map(b => b.value);
		})()`))
		if len(ids) != 2 {
			t.Fatalf("checked exercises %v, want two", ids)
		}
		step(t, ctx, "submit the assign form", chromedp.Click(chromedp.CSS(form+` button[type=submit]`), chromedp.NodeVisible))

		// Back on the patient page with the programme and its code.
		waitJS(t, ctx, "the programme on the patient page",
			`location.search.includes("done=assigned") && document.querySelector("#programmes") && document.querySelector("#programmes").innerText.includes(`+strconv.Quote(title)+`) ? "yes" : ""`)
		progs, err := e.Store.ListProgrammes(context.Background(), patientID)
		if err != nil {
			t.Fatal(err)
		}
		if len(progs) != 1 {
			t.Fatalf("patient has %d programmes, want 1", len(progs))
		}
		p := progs[0]
		if p.Title != title || len(p.Exercises) != 2 || p.PractitionerID != demo.ID {
			t.Fatalf("saved programme: title %q, %d exercises, practitioner %q; want %q, 2, %q", p.Title, len(p.Exercises), p.PractitionerID, title, demo.ID)
		}
		if !regexp.MustCompile(`^[a-z]{8}$`).MatchString(p.Code) {
			t.Fatalf("programme code %q is not 8 lower-case letters", p.Code)
		}
		shown := run(t, ctx, "read the programmes", chromedp.Evaluate[string](`document.querySelector("#programmes").innerText`))
		if !strings.Contains(shown, p.Code) {
			t.Fatalf("the programme's code %q is not shown; the programmes section reads:\n%s", p.Code, shown)
		}
	})
}

// chromiumPath finds the browser. A missing browser fails the test: the
// test command (scripts/test) installs it, so its absence is a broken
// set-up, not a reason to skip.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("headless Chromium is needed for the browser tests but was not found at /usr/bin/chromium or in PATH " +
		"(chromium, chromium-browser, google-chrome). Install it: apt-get install chromium (scripts/test does this).")
	return ""
}

// newBrowser starts a headless Chromium with a fresh profile that is
// stopped when the test ends (or after limit).
func newBrowser(t *testing.T, limit time.Duration) context.Context {
	t.Helper()
	exe := chromiumPath(t)
	profile := t.TempDir() // removed after the browser has stopped (cleanups run last-in, first-out)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancel)
	// The first run starts the browser; it lives as long as ctx, so the
	// overall limit is a timer that cancels it rather than a deadline on
	// the first call.
	timer := time.AfterFunc(limit, cancel)
	t.Cleanup(func() { timer.Stop() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium (%s): %v", exe, err)
	}
	return ctx
}

const stepTimeout = 10 * time.Second

// loginForm fills in our login page's form for email (with
// apptest.Password) and submits it.
func loginForm(email string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.SendKeys(chromedp.ID("email"), email, chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.ID("password"), apptest.Password, chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`), chromedp.NodeVisible))
}

// step runs browser actions with a time limit and fails the test with what
// the page shows when they do not work.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	run(t, ctx, what, chromedp.Steps(actions...))
}

func run[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(c, a)
	if err != nil {
		t.Fatalf("%s: %v\n%s", what, err, pageState(ctx))
	}
	return v
}

// supportLoginFrom opens page, which sends the browser to the support
// login, and logs in there with the admin token; the caller waits for
// where it lands.
func supportLoginFrom(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	step(t, ctx, "open "+page, chromedp.Navigate(page))
	waitJS(t, ctx, "the support login page", `location.pathname === "/admin/login" && document.querySelector("input[name=token]") ? "yes" : ""`)
	step(t, ctx, "log in as support",
		chromedp.SendKeys(chromedp.CSS("input[name=token]"), apptest.AdminToken, chromedp.NodeVisible),
		chromedp.Submit(chromedp.CSS("input[name=token]")))
}

// waitJS evaluates expr until it gives a non-empty string, across page
// loads and redirects (a script's context does not survive a navigation,
// so each try is a fresh evaluation).
func waitJS(t *testing.T, ctx context.Context, what, expr string) string {
	t.Helper()
	return waitJSFor(t, ctx, what, stepTimeout, expr)
}

// waitJSFor is waitJS with its own time limit, for what a page does by
// itself over several polls.
func waitJSFor(t *testing.T, ctx context.Context, what string, limit time.Duration, expr string) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	var lastErr error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		c, cancel := context.WithTimeout(ctx, time.Second)
		v, err := chromedp.Run(c, chromedp.Evaluate[string](expr))
		cancel()
		if err == nil && v != "" {
			return v
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			lastErr = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s (last error: %v)\n%s", what, lastErr, pageState(ctx))
	return ""
}

// screenshotDir is where browser tests save screenshots of the pages they
// reach, for people to look at (PMSBRIDGE_SCREENSHOTS, e.g. /tmp/shots;
// nothing is compared); unset, none are taken.
var screenshotDir = os.Getenv("PMSBRIDGE_SCREENSHOTS")

// screenshots saves, when screenshotDir is set, the whole page (or the
// element sel) at 1280 and 390 pixels wide as NAME-1280.png and
// NAME-390.png.
func screenshots(t *testing.T, ctx context.Context, name, sel string) {
	t.Helper()
	if screenshotDir == "" {
		return
	}
	for _, width := range []int64{1280, 390} {
		step(t, ctx, "resize for "+name, chromedp.EmulateViewport(width, 900))
		shot := chromedp.FullScreenshot(100)
		if sel != "" {
			shot = chromedp.Screenshot(chromedp.CSS(sel))
		}
		png := run(t, ctx, "screenshot "+name, shot)
		path := filepath.Join(screenshotDir, name+"-"+strconv.FormatInt(width, 10)+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	}
	step(t, ctx, "back to the wide window", chromedp.EmulateViewport(1280, 900))
}

// pageState describes where the browser is, for failure messages.
func pageState(ctx context.Context) string {
	if ctx.Err() != nil {
		return "(the browser has stopped: " + ctx.Err().Error() + ")"
	}
	c, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s, err := chromedp.Run(c, chromedp.Evaluate[string](`location.href + "\n---\n" + (document.body ? document.body.innerText : "")`))
	if err != nil {
		return "(could not read the page: " + err.Error() + ")"
	}
	if len(s) > 3000 {
		s = s[:3000] + "…"
	}
	return "browser at " + s
}
