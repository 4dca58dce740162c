package app_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/internal/apptest"
)

// stepClock is a clock that stands still until a test moves it.
type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func newStepClock(t time.Time) *stepClock { return &stepClock{t: t} }

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *stepClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var (
	alertRe   = regexp.MustCompile(`(?s)role="alert">(.*?)</p>`)
	pdfLinkRe = regexp.MustCompile(`href="(/access/pdf\?t=[^"]+)"`)
)

// alertOf is the text of a page's alert message.
func alertOf(body string) string {
	m := alertRe.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(strings.TrimSpace(m[1]))
}

// openProgramme posts the patient's access form and, when it sends the
// patient on to their programme's own address, follows it.
func openProgramme(b *apptest.Browser, code string, year string) apptest.Response {
	return followAccess(b, b.PostForm("/access", url.Values{"code": {code}, "year_of_birth": {year}}))
}

// followAccess follows a right code and year's 303 to the programme's
// address (/access/programme?t=…); any other answer is returned as it is.
func followAccess(b *apptest.Browser, r apptest.Response) apptest.Response {
	if r.StatusCode == http.StatusSeeOther && strings.HasPrefix(r.Location(), "/access/programme?t=") {
		return b.Get(r.Location())
	}
	return r
}

// accessSetup starts an app on clock, imports a Cliniko patient and assigns
// a programme; it returns the env, the practitioner's browser, our patient
// id and the programme's code.
func accessSetup(t *testing.T, clock *stepClock, clinikoID string) (*apptest.Env, *apptest.Browser, string, string) {
	t.Helper()
	o := apptest.Options{}
	if clock != nil {
		o.Now = clock.Now
	}
	return accessSetupWith(t, o, clinikoID)
}

// accessSetupWith is accessSetup for an app started with o.
func accessSetupWith(t *testing.T, o apptest.Options, clinikoID string) (*apptest.Env, *apptest.Browser, string, string) {
	t.Helper()
	e := apptest.Start(t, o)
	e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": sandbox.DemoAdminKey})
	b := e.Login("demo@clinic.example")
	_, pid := b.Open(clinikoID)
	if pid == "" {
		t.Fatalf("import of %s failed", clinikoID)
	}
	p := assignProgramme(t, b, pid, kneeForm("Knee rehab, week 1", "ex_quad_set", "ex_bridge"))
	return e, b, pid, p.Code
}

func TestPatientAccess(t *testing.T) {
	t.Parallel()
	// The clock is two hours behind the wall clock so that anything
	// mixing the two shows.
	start := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Minute)
	clock := newStepClock(start)
	e, _, _, code := accessSetup(t, clock, sandbox.DemoPatientID) // Zoë, born 1985
	patient := e.NewBrowser()

	t.Run("form", func(t *testing.T) {
		r := patient.Get("/access?code=" + code)
		if r.StatusCode != http.StatusOK || !strings.Contains(r.Body, `name="code"`) || !strings.Contains(r.Body, `name="year_of_birth"`) {
			t.Fatalf("GET /access: %d, want the form", r.StatusCode)
		}
		if !strings.Contains(r.Body, `value="`+code+`"`) {
			t.Errorf("the form does not keep the code of the link")
		}
	})

	t.Run("right year opens the programme", func(t *testing.T) {
		for _, typed := range []string{code, strings.ToUpper(code[:4]) + " " + code[4:]} {
			r := openProgramme(patient, typed, "1985")
			if r.StatusCode != http.StatusOK {
				t.Fatalf("code %q + 1985: %d %s", typed, r.StatusCode, alertOf(r.Body))
			}
			for _, id := range []string{"ex_quad_set", "ex_bridge"} {
				ex, _ := pmsbridge.CatalogueExercise(id)
				if !strings.Contains(r.Body, html.EscapeString(ex.Name)) {
					t.Errorf("programme page lacks exercise %q", ex.Name)
				}
			}
			if !strings.Contains(r.Body, "Knee rehab, week 1") {
				t.Errorf("programme page lacks the title")
			}
			// The prescriber, as the PDF's byline names them.
			if pr, err := e.Store.PractitionerByEmail(context.Background(), "demo@clinic.example"); err != nil || !strings.Contains(r.Body, "From "+html.EscapeString(pr.Name)+" · ") {
				t.Errorf("programme page lacks the prescriber (%v)", err)
			}
			m := pdfLinkRe.FindStringSubmatch(r.Body)
			if m == nil {
				t.Fatal("programme page has no PDF link")
			}
			pdf := e.NewBrowser().Get(html.UnescapeString(m[1]))
			if pdf.StatusCode != http.StatusOK || pdf.Header.Get("Content-Type") != "application/pdf" {
				t.Fatalf("PDF link: %d %s", pdf.StatusCode, pdf.Header.Get("Content-Type"))
			}
			if text := normSpace(pdfText(t, []byte(pdf.Body))); !strings.Contains(text, code) || !strings.Contains(text, "Zoë O'Brien") {
				t.Errorf("downloaded PDF lacks the code or the name:\n%s", text)
			}
		}
		if r := e.NewBrowser().Get("/access/pdf?t=forged"); r.StatusCode != http.StatusForbidden {
			t.Errorf("forged PDF link: %d, want 403", r.StatusCode)
		}
	})

	var neutral string
	t.Run("wrong year and unknown code get the same neutral 401", func(t *testing.T) {
		wrong := openProgramme(patient, code, "1986")
		unknown := openProgramme(patient, otherCode(code, 1), "1985")
		if wrong.StatusCode != http.StatusUnauthorized || unknown.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong year: %d, unknown code: %d; want 401 for both", wrong.StatusCode, unknown.StatusCode)
		}
		neutral = alertOf(wrong.Body)
		if neutral == "" || neutral != alertOf(unknown.Body) {
			t.Errorf("messages differ or are empty:\nwrong year:   %q\nunknown code: %q", neutral, alertOf(unknown.Body))
		}
		if strings.Contains(wrong.Body, "Zoë") || strings.Contains(wrong.Body, "Knee rehab") {
			t.Errorf("the 401 page tells something about the programme")
		}
	})

	t.Run("five wrong years lock the code for an hour", func(t *testing.T) {
		for i := 2; i <= 5; i++ { // one wrong year above
			if r := openProgramme(patient, code, strconv.Itoa(1970+i)); r.StatusCode != http.StatusUnauthorized {
				t.Fatalf("wrong year %d: %d, want 401", i, r.StatusCode)
			}
		}
		r := openProgramme(patient, code, "1985")
		if r.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("right year after 5 wrong ones: %d, want 429", r.StatusCode)
		}
		// In the region's clinic time (au: Australia/Sydney), as the page
		// names no clinic.
		sydney, _ := time.LoadLocation("Australia/Sydney")
		until := start.Add(time.Hour).In(sydney).Format("15:04")
		msg := alertOf(r.Body)
		if !strings.Contains(msg, "after "+until+" ") || strings.Contains(msg, "UTC") {
			t.Errorf("429 message %q does not say when to retry in clinic time (after %s)", msg, until)
		}
		if strings.Contains(msg, "in about") && !strings.Contains(msg, "in about 60 minutes") {
			t.Errorf("429 message %q counts the wait by another clock than the app's", msg)
		}
		ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
		if err != nil || ra < 3500 || ra > 3601 {
			t.Errorf("Retry-After = %q, want about 3600 seconds (by the app's clock)", r.Header.Get("Retry-After"))
		}
		// Another code from the same address is not locked.
		if r := openProgramme(patient, otherCode(code, 2), "1985"); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("another code: %d, want 401", r.StatusCode)
		}

		clock.Advance(59 * time.Minute)
		if r := openProgramme(patient, code, "1985"); r.StatusCode != http.StatusTooManyRequests {
			t.Errorf("after 59 minutes: %d, want still 429", r.StatusCode)
		} else if ra, _ := strconv.Atoi(r.Header.Get("Retry-After")); ra < 1 || ra > 61 {
			t.Errorf("after 59 minutes Retry-After = %q, want at most a minute", r.Header.Get("Retry-After"))
		}
		clock.Advance(2 * time.Minute)
		if r := openProgramme(patient, code, "1985"); r.StatusCode != http.StatusOK {
			t.Errorf("after the hour: %d %q, want 200", r.StatusCode, alertOf(r.Body))
		}
	})
}

// otherCode returns a well-formed code that differs from code.
func otherCode(code string, n int) string {
	b := []byte(code)
	for i := range b {
		b[i] = 'a' + (b[i]-'a'+byte(n))%26
	}
	return string(b)
}

func TestPatientAccessIPLimit(t *testing.T) {
	t.Parallel()
	clock := newStepClock(time.Now().UTC())
	e, _, _, code := accessSetup(t, clock, sandbox.DemoPatientID)
	patient := e.NewBrowser()
	for i := 1; i <= 30; i++ {
		c := fmt.Sprintf("%c%c%s", 'a'+i/26, 'a'+i%26, otherCode(code, 1)[2:]) // 30 different unknown codes
		if r := openProgramme(patient, c, "1985"); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("try %d: %d, want 401", i, r.StatusCode)
		}
	}
	r := openProgramme(patient, code, "1985")
	if r.StatusCode != http.StatusTooManyRequests || !strings.Contains(alertOf(r.Body), "Too many attempts") {
		t.Fatalf("right code and year after 30 failures from one address: %d %q, want 429", r.StatusCode, alertOf(r.Body))
	}
	clock.Advance(time.Hour + time.Second)
	if r := openProgramme(patient, code, "1985"); r.StatusCode != http.StatusOK {
		t.Errorf("an hour later: %d %q, want 200", r.StatusCode, alertOf(r.Body))
	}
}

func TestPatientAccessWithoutYearOfBirth(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		desc      string
		clinikoID string
	}{
		{"date_of_birth null (佐藤花子)", "836447129235882005"},
		{`date_of_birth "" (김민준)`, "836447129235882006"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			e, b, pid, code := accessSetup(t, nil, tc.clinikoID)
			if doc := patientDoc(t, b, pid); doc.BirthYearStatus != "missing" || doc.YearOfBirth != nil {
				t.Fatalf("birth year: %s %v, want missing", doc.BirthYearStatus, doc.YearOfBirth)
			}
			patient := e.NewBrowser()
			r := openProgramme(patient, code, "1990")
			// Exactly the answer to a code that does not exist: anything
			// else would tell a stranger that this code is real.
			wrong := openProgramme(patient, otherCode(code, 1), "1990")
			if r.StatusCode != http.StatusUnauthorized || sameAnswer(r, code) != sameAnswer(wrong, otherCode(code, 1)) {
				t.Fatalf("a real code without a year answers %d %q, a made-up code %d %q: want the same 401", r.StatusCode, alertOf(r.Body), wrong.StatusCode, alertOf(wrong.Body))
			}
			if !strings.Contains(alertOf(r.Body), "ask your practitioner") {
				t.Errorf("the neutral answer %q does not tell a patient whose year is missing what to do", alertOf(r.Body))
			}
			page := b.Get("/patients/" + pid)
			if !strings.Contains(page.Body, "tried, but no year of birth is recorded") {
				t.Errorf("the practitioner's patient page does not show that the patient tried")
			}
			// The practitioner adds the year; the patient gets in.
			if r := b.PostForm("/patients/"+pid+"/birth-year", url.Values{"year": {"1990"}}); r.StatusCode != http.StatusSeeOther {
				t.Fatalf("set year: %d", r.StatusCode)
			}
			if r := openProgramme(patient, code, "1990"); r.StatusCode != http.StatusOK {
				t.Errorf("after the year was set: %d %q, want 200", r.StatusCode, alertOf(r.Body))
			}
			page = b.Get("/patients/" + pid)
			if !strings.Contains(page.Body, "opened the programme") {
				t.Errorf("the patient page does not show the successful opening")
			}
		})
	}
}

var supportRefRe = regexp.MustCompile(`Support reference: [0-9a-f]+`)

// sameAnswer is what a stranger sees of an answer to POST /access: status,
// headers that matter and the page, with the code they typed and the
// request's support reference taken out.
func sameAnswer(r apptest.Response, typed string) string {
	body := supportRefRe.ReplaceAllString(strings.ReplaceAll(r.Body, typed, "CODE"), "")
	return fmt.Sprintf("%d %s %q\n%s", r.StatusCode, r.Header.Get("Content-Type"), r.Header.Get("Retry-After"), body)
}
