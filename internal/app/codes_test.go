package app_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/bridge"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/internal/apptest"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/mail/mailtest"
	"github.com/physitrack/pmsbridge/store"
)

// The demo patients' contact details in the Cliniko sandbox.
const (
	zoeEmail      = "zoe.obrien@patient.example"
	zoeMasked     = "z***@patient.example"
	zoeMobile     = "+61400111222"
	xiaomingID    = "836447129235882004" // a mobile, no email address
	xiaomingPhone = "+61400444555"
	giorgosID     = "836447129235882002" // a landline, no email address
)

// codesSetup starts an app whose codes go to a real SMTP server and the
// Twilio sandbox, with the demo clinic (its practitioner logged in) and
// Zoë opened.
func codesSetup(t *testing.T) (*apptest.Env, *apptest.Messaging, *apptest.Browser, string) {
	t.Helper()
	msg := apptest.StartMessaging(t)
	e := apptest.Start(t, apptest.Options{Configure: msg.Configure})
	e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": sandbox.DemoAdminKey, "priya@clinic.example": ""})
	b := e.Login("demo@clinic.example")
	_, pid := b.Open(sandbox.DemoPatientID)
	if pid == "" {
		t.Fatal("import failed")
	}
	return e, msg, b, pid
}

// deliveryOf is code_delivery of a programme version in the patient JSON.
func deliveryOf(t *testing.T, b *apptest.Browser, patientID, progID string, version int) []bridge.CodeDeliveryJSON {
	t.Helper()
	p, ok := programmeIn(patientDoc(t, b, patientID), progID, version)
	if !ok {
		t.Fatalf("no %s v%d in the patient JSON", progID, version)
	}
	return p.CodeDelivery
}

// waitDelivered polls the patient JSON until the programme has n messages,
// none still pending, and returns them.
func waitDelivered(t *testing.T, e *apptest.Env, b *apptest.Browser, patientID, progID string, version, n int) []bridge.CodeDeliveryJSON {
	t.Helper()
	var got []bridge.CodeDeliveryJSON
	e.Eventually(strconv.Itoa(n)+" code messages of "+progID+" settled", func() bool {
		got = deliveryOf(t, b, patientID, progID, version)
		if len(got) != n {
			return false
		}
		for _, m := range got {
			if m.State == pmsbridge.MessagePending {
				return false
			}
		}
		return true
	})
	return got
}

// messagesEverQueued is how many message tasks there ever were: those
// still in the queue and those processed today.
func messagesEverQueued(t *testing.T, e *apptest.Env) int {
	t.Helper()
	insp := e.Jobs.Inspector()
	queues, err := insp.Queues()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(queues, jobs.QueueMessage) {
		return 0 // nothing was ever queued there
	}
	qi, err := insp.GetQueueInfo(jobs.QueueMessage)
	if err != nil {
		t.Fatal(err)
	}
	return qi.Size + qi.Processed
}

// wantSentEmail checks one delivered code email: to Zoë, with the code and
// the access address, and no year of birth anywhere.
func wantSentEmail(t *testing.T, e *apptest.Env, m mailtest.Message, code string) {
	t.Helper()
	if len(m.To) != 1 || m.To[0] != zoeEmail {
		t.Errorf("email to %v, want %s", m.To, zoeEmail)
	}
	for _, want := range []string{code, e.Config.PublicURL + "/access", "Demo Physio Clinic"} {
		if !strings.Contains(m.Text, want) || !strings.Contains(m.HTML, want) {
			t.Errorf("email lacks %q in its text or HTML part:\n%s", want, m.Text)
		}
	}
	if strings.Contains(string(m.Raw), "1985") {
		t.Error("the email holds the patient's year of birth")
	}
}

// TestCodeOnAssign: version 1 from the form sends one email with the code,
// and the page says where it goes; version 2 sends nothing and says so;
// code_delivery lists the message on every version, with the contract's
// fields and a sentence in the clinic's time.
func TestCodeOnAssign(t *testing.T) {
	t.Parallel()
	e, msg, b, pid := codesSetup(t)

	r := b.PostForm("/patients/"+pid+"/programmes", kneeForm("Knee rehab, week 1"))
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("assign: %d\n%s", r.StatusCode, pageText(r.Body))
	}
	// Sent or still on its way, depending on the worker's speed.
	wantPage(t, "after assigning", b.Get(r.Location()), http.StatusOK, "to the patient by email, to "+zoeMasked+".")
	doc := patientDoc(t, b, pid)
	v1 := doc.Programmes[0]
	got := waitDelivered(t, e, b, pid, v1.ID, 1, 1)
	m := got[0]
	if m.Channel != pmsbridge.ChannelEmail || m.State != pmsbridge.MessageSent || m.To != zoeMasked || m.SentAt == nil ||
		m.Trigger != store.TriggerAssigned || m.Cause != "" || m.Reason != "" || m.RequestedAt.IsZero() || m.ID == "" {
		t.Fatalf("code_delivery = %+v; want one email sent to %s", got, zoeMasked)
	}
	sydney, _ := time.LoadLocation("Australia/Sydney") // the au region's clinics' default
	if want := "Sent to " + zoeMasked + " at " + m.SentAt.In(sydney).Format("15:04"); m.Summary != want &&
		!strings.HasPrefix(m.Summary, "Sent to "+zoeMasked+" on ") { // a test run across midnight in Sydney
		t.Errorf("summary %q, want %q", m.Summary, want)
	}
	mails := msg.Mail.Messages()
	if len(mails) != 1 {
		t.Fatalf("%d emails, want 1", len(mails))
	}
	wantSentEmail(t, e, mails[0], v1.Code)
	page := b.Get("/patients/" + pid).Body
	if !strings.Contains(page, html.EscapeString(m.Summary)) || !strings.Contains(page, `data-message-id="`+m.ID+`" data-state="sent"`) {
		t.Errorf("the programme row does not show %q:\n%s", m.Summary, pageText(page))
	}

	// The programme in the address only picks a row: text there is never
	// shown, and another id shows no notice about a code.
	for _, other := range []string{"Call 0800 123 456 now", "prg_nothing"} {
		page := b.Get("/patients/" + pid + "?done=assigned&programme=" + url.QueryEscape(other)).Body
		if strings.Contains(page, "0800") || strings.Contains(page, "to the patient by email") {
			t.Errorf("programme=%q: the page shows a code notice or the address's text", other)
		}
	}

	form := kneeForm("Knee rehab, week 2")
	form.Set("programme_id", v1.ID)
	r = b.PostForm("/patients/"+pid+"/programmes", form)
	wantPage(t, "after assigning version 2", b.Get(r.Location()), http.StatusOK, "This new version keeps the patient's code, so nothing was sent to them.")
	waitPDFState(t, e, b, pid, v1.ID, 2, pmsbridge.PDFUploaded)
	// The message queue is served before the pdf queue: a message asked for
	// with version 2 would have run by now.
	if n := len(msg.Mail.Messages()); n != 1 {
		t.Errorf("%d emails after version 2, want still 1", n)
	}
	if n := messagesEverQueued(t, e); n != 1 {
		t.Errorf("%d message tasks ever queued, want 1", n)
	}
	for _, v := range []int{1, 2} {
		if got := deliveryOf(t, b, pid, v1.ID, v); len(got) != 1 || got[0].ID != m.ID {
			t.Errorf("code_delivery of version %d: %+v; want the one message", v, got)
		}
	}
}

// TestCodeOnWebhook: the platform's webhook sends the code like the form;
// the same event again, and the same assignment under another event id,
// send nothing more.
func TestCodeOnWebhook(t *testing.T) {
	t.Parallel()
	e, msg, b, pid := codesSetup(t)
	demo, err := e.Store.PractitionerByEmail(context.Background(), "demo@clinic.example")
	if err != nil {
		t.Fatal(err)
	}
	hook := e.NewBrowser()
	deliver := func(eventID string) apptest.Response {
		body := hookEvent(eventID, "programme.assigned", hookProgramme{ID: "prg_web1", Version: 1, PatientID: pid, PractitionerID: demo.ID,
			Title: "Knee rehab, week 1", StartsOn: "2026-11-22", Exercises: []pmsbridge.Exercise{legRaise}})
		return postHook(hook, body, bridge.Sign(apptest.WebhookSecret, time.Now(), body))
	}
	if r := deliver("evt_c1"); r.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook: %d %s", r.StatusCode, r.Body)
	}
	got := waitDelivered(t, e, b, pid, "prg_web1", 1, 1)
	if got[0].Channel != pmsbridge.ChannelEmail || got[0].State != pmsbridge.MessageSent || got[0].To != zoeMasked {
		t.Fatalf("code_delivery = %+v", got)
	}
	prog, _ := programmeIn(patientDoc(t, b, pid), "prg_web1", 1)
	if mails := msg.Mail.Messages(); len(mails) != 1 {
		t.Fatalf("%d emails, want 1", len(mails))
	} else {
		wantSentEmail(t, e, mails[0], prog.Code)
	}

	if r := deliver("evt_c1"); r.StatusCode != http.StatusOK || hookStatus(t, r) != "duplicate" {
		t.Errorf("the same event again: %d %s, want 200 duplicate", r.StatusCode, r.Body)
	}
	if r := deliver("evt_c2"); r.StatusCode != http.StatusAccepted {
		t.Errorf("the same assignment under another event id: %d %s", r.StatusCode, r.Body)
	}
	if got := deliveryOf(t, b, pid, "prg_web1", 1); len(got) != 1 {
		t.Errorf("code_delivery after the repeats: %+v; want the one message", got)
	}
	if n := messagesEverQueued(t, e); n != 1 {
		t.Errorf("%d message tasks ever queued, want 1", n)
	}
	if n := len(msg.Mail.Messages()); n != 1 {
		t.Errorf("%d emails, want 1", n)
	}
}

// sendCode posts the send-code form.
func sendCode(b *apptest.Browser, patientID, progID, channel string) apptest.Response {
	return b.PostForm("/patients/"+patientID+"/programmes/"+url.PathEscape(progID)+"/send-code", url.Values{"channel": {channel}})
}

// TestSendCodeAgain: "Send code by email" and "by SMS" each add a message,
// sent once, listed oldest first; a bad channel, a channel the patient
// has no address for, another programme and a colleague's patient are
// refused with a clear page, adding nothing.
func TestSendCodeAgain(t *testing.T) {
	t.Parallel()
	e, msg, b, pid := codesSetup(t)
	prog := assignProgramme(t, b, pid, kneeForm("Knee rehab, week 1"))
	waitDelivered(t, e, b, pid, prog.ID, 1, 1)

	wantRedirect(t, "send by email", sendCode(b, pid, prog.ID, "email"), "/patients/"+pid+"?done=code_email")
	wantPage(t, "the notice", b.Get("/patients/"+pid+"?done=code_email"), http.StatusOK, "The code is on its way to the patient by email.")
	wantRedirect(t, "send by SMS", sendCode(b, pid, prog.ID, "sms"), "/patients/"+pid+"?done=code_sms")
	got := waitDelivered(t, e, b, pid, prog.ID, 1, 3)
	for i, want := range []struct {
		channel pmsbridge.Channel
		trigger store.MessageTrigger
		to      string
	}{{pmsbridge.ChannelEmail, store.TriggerAssigned, zoeMasked}, {pmsbridge.ChannelEmail, store.TriggerResend, zoeMasked},
		{pmsbridge.ChannelSMS, store.TriggerResend, "+61 4** *** 222"}} {
		m := got[i]
		if m.Channel != want.channel || m.Trigger != want.trigger || m.To != want.to || m.State != pmsbridge.MessageSent {
			t.Errorf("code_delivery[%d] = %+v; want %s (%s) sent to %s", i, m, want.channel, want.trigger, want.to)
		}
		if i > 0 && m.RequestedAt.Before(got[i-1].RequestedAt) {
			t.Errorf("code_delivery is not oldest first: %v before %v", got[i-1].RequestedAt, m.RequestedAt)
		}
	}
	mails := msg.Mail.Messages()
	if len(mails) != 2 || mails[0].MessageID == mails[1].MessageID {
		t.Fatalf("%d emails, want 2 with their own Message-IDs", len(mails))
	}
	wantSentEmail(t, e, mails[1], prog.Code)
	texts := msg.SMS.MessagesTo(zoeMobile)
	if len(texts) != 1 || !strings.Contains(texts[0].Body, prog.Code) || !strings.Contains(texts[0].Body, e.Config.PublicURL+"/access") {
		t.Fatalf("texts to %s: %+v; want one with the code and the address", zoeMobile, texts)
	}
	page := html.UnescapeString(b.Get("/patients/" + pid).Body)
	for _, want := range []string{"Sent to +61 4** *** 222 at ", "sent again by you", "when the programme was assigned"} {
		if !strings.Contains(page, want) {
			t.Errorf("the row does not say %q:\n%s", want, pageText(page))
		}
	}

	_, xiaoming := b.Open(xiaomingID)
	xprog := assignProgramme(t, b, xiaoming, kneeForm("Back care"))
	if got := waitDelivered(t, e, b, xiaoming, xprog.ID, 1, 1); got[0].Channel != pmsbridge.ChannelSMS {
		t.Errorf("a patient with a mobile only: first message %+v, want an SMS", got[0])
	}
	priya := e.Login("priya@clinic.example")
	for _, tc := range []struct {
		desc            string
		who             *apptest.Browser
		patient, prog   string
		channel         string
		status          int
		says            string
		countOf, progOf string
	}{
		{"an unknown channel", b, pid, prog.ID, "fax", http.StatusUnprocessableEntity, "Codes can be sent by email or by SMS.", pid, prog.ID},
		{"no channel", b, pid, prog.ID, "", http.StatusUnprocessableEntity, "Codes can be sent by email or by SMS.", pid, prog.ID},
		{"no email address", b, xiaoming, xprog.ID, "email", http.StatusUnprocessableEntity, "The patient has no email address on record.", xiaoming, xprog.ID},
		{"another patient's programme", b, xiaoming, prog.ID, "email", http.StatusNotFound, "Page not found", pid, prog.ID},
		{"no such programme", b, pid, "prg_nothing", "email", http.StatusNotFound, "Page not found", pid, prog.ID},
		{"a colleague's patient not shared", priya, pid, prog.ID, "email", http.StatusNotFound, "This patient belongs to Dr Demo", pid, prog.ID},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			before := len(deliveryOf(t, b, tc.countOf, tc.progOf, 1))
			wantPage(t, tc.desc, sendCode(tc.who, tc.patient, tc.prog, tc.channel), tc.status, tc.says)
			if after := len(deliveryOf(t, b, tc.countOf, tc.progOf, 1)); after != before {
				t.Errorf("%d messages after a refusal, want %d", after, before)
			}
		})
	}
	if n := messagesEverQueued(t, e); n != 4 {
		t.Errorf("%d message tasks ever queued, want 4", n)
	}
}

// TestSendCodeLimitUnderBurst: 100 simultaneous "send again" posts for one
// patient send at most the limit (5 an hour); the rest get 429 with
// Retry-After and the time, in the clinic's zone, when sending is allowed
// again.
func TestSendCodeLimitUnderBurst(t *testing.T) {
	t.Parallel()
	e, msg, b, pid := codesSetup(t)
	prog := assignProgramme(t, b, pid, kneeForm("Knee rehab, week 1"))
	waitDelivered(t, e, b, pid, prog.ID, 1, 1)

	const n = 100
	var wg sync.WaitGroup
	answers := make([]apptest.Response, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			answers[i] = sendCode(b, pid, prog.ID, "email")
		}()
	}
	before := time.Now()
	close(start)
	wg.Wait()
	after := time.Now()
	byStatus := map[int]int{}
	var limited apptest.Response
	for _, r := range answers {
		byStatus[r.StatusCode]++
		if r.StatusCode == http.StatusTooManyRequests {
			limited = r
		}
	}
	if byStatus[http.StatusSeeOther] != 5 || byStatus[http.StatusTooManyRequests] != n-5 {
		t.Fatalf("answers by status %v; want 5 × 303 and %d × 429", byStatus, n-5)
	}
	if s, err := strconv.Atoi(limited.Header.Get("Retry-After")); err != nil || s < 3000 || s > 3601 {
		t.Errorf("Retry-After %q, want about an hour", limited.Header.Get("Retry-After"))
	}
	m := regexp.MustCompile(`You can send it again (at|on [0-9]+ [A-Z][a-z]+ [0-9]{4} at) ([0-9]{2}:[0-9]{2})`).FindStringSubmatch(html.UnescapeString(limited.Body))
	if m == nil {
		t.Fatalf("the 429 page does not say when:\n%s", pageText(limited.Body))
	}
	// The first resend was allowed between before and after; the next is an
	// hour later, shown to the minute (rounded up) in Sydney, the au
	// region's default clinic zone.
	sydney, _ := time.LoadLocation("Australia/Sydney")
	var allowed []string
	for at := before.Add(time.Hour).Truncate(time.Minute); !at.After(after.Add(time.Hour + time.Minute)); at = at.Add(time.Minute) {
		allowed = append(allowed, at.In(sydney).Format("15:04"))
	}
	if !slices.Contains(allowed, m[2]) {
		t.Errorf("the page says %q, want one of %v (an hour later, Sydney time)", m[0], allowed)
	}
	waitDelivered(t, e, b, pid, prog.ID, 1, 6)
	if got := len(msg.Mail.Messages()); got != 6 {
		t.Errorf("%d emails, want 6 (the first and 5 resends)", got)
	}
}

// TestCodeHandOver: a patient with neither an email address nor a mobile
// gets nothing; the page tells the practitioner to give the code
// themselves, shows it large and says why.
func TestCodeHandOver(t *testing.T) {
	t.Parallel()
	e, msg, b, _ := codesSetup(t)
	_, giorgos := b.Open(giorgosID)
	if giorgos == "" {
		t.Fatal("import failed")
	}
	r := b.PostForm("/patients/"+giorgos+"/programmes", kneeForm("Balance, week 1"))
	page := b.Get(r.Location())
	prog := patientDoc(t, b, giorgos).Programmes[0]
	wantPage(t, "after assigning", page, http.StatusOK, "Give the code to the patient yourself", "The patient has no email address on record.",
		e.Config.PublicURL+"/access")
	if !strings.Contains(page.Body, `<p class="handover-code" aria-label="The patient's code">`+prog.Code+`</p>`) {
		t.Errorf("the code %s is not shown large:\n%s", prog.Code, pageText(page.Body))
	}
	if !strings.Contains(page.Body, "Not sent to the patient.") {
		t.Error("the programme row does not say the code was not sent")
	}
	waitPDFState(t, e, b, giorgos, prog.ID, 1, pmsbridge.PDFUploaded)
	if got := deliveryOf(t, b, giorgos, prog.ID, 1); len(got) != 0 {
		t.Errorf("code_delivery = %+v, want none", got)
	}
	if len(msg.Mail.Messages()) != 0 || len(msg.SMS.Messages()) != 0 || messagesEverQueued(t, e) != 0 {
		t.Errorf("%d emails, %d texts, %d tasks; want nothing sent", len(msg.Mail.Messages()), len(msg.SMS.Messages()), messagesEverQueued(t, e))
	}
}

// TestCodeFailuresForSupport: code messages that fail for good — refused
// by the mail server (delivery_rejected), to a patient whose address went
// away before the job ran (no_contact), and Twilio unavailable until the
// retries ran out (delivery_unavailable) — show on the programme row, in
// the admin API and page and in `jobs failed` with their causes, and
// replay to one message each once fixed.
func TestCodeFailuresForSupport(t *testing.T) {
	t.Parallel()
	e, msg, b, pid := codesSetup(t)
	ctx := context.Background()

	// delivery_rejected: the mail server refuses Zoë's address.
	msg.Mail.FailRecipient(zoeEmail, mailtest.Fault{Code: 550})
	rejected := assignProgramme(t, b, pid, kneeForm("Knee rehab"))
	got := waitDelivered(t, e, b, pid, rejected.ID, 1, 1)[0]
	if got.State != pmsbridge.MessageFailed || got.Cause != string(pmsbridge.CauseDeliveryRejected) || !strings.Contains(got.Reason, "refused the address "+zoeMasked) {
		t.Fatalf("refused: %+v", got)
	}
	rejectedTask := jobs.SendCodeTaskID(got.ID)
	wantPage(t, "the row of a refused message", b.Get("/patients/"+pid), http.StatusOK, "Not sent: "+got.Reason)

	// no_contact: the address goes before the job runs.
	insp := e.Jobs.Inspector()
	if err := insp.PauseQueue(jobs.QueueMessage); err != nil {
		t.Fatal(err)
	}
	wantRedirect(t, "send by email", sendCode(b, pid, rejected.ID, "email"), "/patients/"+pid+"?done=code_email")
	if _, err := e.Store.UpdatePatient(ctx, pid, func(p *store.Patient) error { p.Email = ""; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := insp.UnpauseQueue(jobs.QueueMessage); err != nil {
		t.Fatal(err)
	}
	noContact := waitDelivered(t, e, b, pid, rejected.ID, 1, 2)[1]
	if noContact.Cause != string(pmsbridge.CauseNoContact) {
		t.Fatalf("without an address: %+v", noContact)
	}
	noContactTask := jobs.SendCodeTaskID(noContact.ID)

	// delivery_unavailable: Twilio answers 503 to every attempt; each retry
	// is run at once instead of after its backoff.
	msg.SMS.FailNextOp("create_message", 11, http.StatusServiceUnavailable) // 1 + 10 retries
	wantRedirect(t, "send by SMS", sendCode(b, pid, rejected.ID, "sms"), "/patients/"+pid+"?done=code_sms")
	unavailable := deliveryOf(t, b, pid, rejected.ID, 1)[2]
	unavailableTask := jobs.SendCodeTaskID(unavailable.ID)
	for attempt := 1; ; attempt++ {
		var st jobs.State
		e.Eventually("attempt "+strconv.Itoa(attempt)+" of the SMS", func() bool {
			st, _, _ = e.Jobs.TaskState(ctx, jobs.QueueMessage, unavailableTask)
			return st == jobs.StateRetrying || st == jobs.StateFailed
		})
		if attempt == 3 {
			code, out, _ := cliRun(t, e, "", "jobs", "failed", "--all", "--wide")
			if code != 0 || !strings.Contains(out, unavailableTask) {
				t.Errorf("jobs failed --all after 3 attempts does not list the retrying message (exit %d):\n%s", code, out)
			}
		}
		if st == jobs.StateFailed {
			break
		}
		if attempt > 20 {
			t.Fatal("the SMS was never given up")
		}
		if err := insp.RunTask(jobs.QueueMessage, unavailableTask); err != nil {
			t.Fatal(err)
		}
	}
	failedSMS := waitDelivered(t, e, b, pid, rejected.ID, 1, 3)[2]
	if failedSMS.State != pmsbridge.MessageFailed || failedSMS.Cause != string(pmsbridge.CauseDeliveryUnavailable) {
		t.Fatalf("after the retries: %+v", failedSMS)
	}
	if !strings.Contains(failedSMS.Summary, "stopped trying") || strings.Contains(failedSMS.Summary, "tried again automatically") {
		t.Errorf("the row says %q about a message given up", failedSMS.Summary)
	}

	for _, tc := range []struct {
		task  string
		cause pmsbridge.Cause
	}{{rejectedTask, pmsbridge.CauseDeliveryRejected}, {noContactTask, pmsbridge.CauseNoContact}, {unavailableTask, pmsbridge.CauseDeliveryUnavailable}} {
		t.Run(string(tc.cause), func(t *testing.T) {
			f := waitFailed(t, e, tc.task, tc.cause)
			js := failedJobs(t, e, "cause="+string(tc.cause))
			if len(js) != 1 || js[0].ID != tc.task || js[0].Type != jobs.TypeSendCode || js[0].Queue != jobs.QueueMessage ||
				js[0].PatientID != pid || js[0].ProgrammeID != rejected.ID || js[0].Reason != f.Reason || js[0].PractitionerID == "" {
				t.Errorf("admin API, cause %s: %+v", tc.cause, js)
			}
			code, out, _ := cliRun(t, e, "", "jobs", "failed", "--cause", string(tc.cause), "--wide")
			if code != 0 || !strings.Contains(out, tc.task) {
				t.Errorf("jobs failed --cause %s (exit %d):\n%s", tc.cause, code, out)
			}
			for _, secret := range []string{zoeEmail, zoeMobile, rejected.Code} {
				if strings.Contains(out, secret) || strings.Contains(f.Reason, secret) {
					t.Errorf("support sees a patient detail or the code: %q", secret)
				}
			}
		})
	}
	admin := e.NewBrowser()
	wantRedirect(t, "admin login", admin.PostForm("/admin/login", url.Values{"token": {apptest.AdminToken}}), "/admin/")
	adminPage := admin.Get("/admin/")
	for _, c := range []pmsbridge.Cause{pmsbridge.CauseDeliveryRejected, pmsbridge.CauseNoContact, pmsbridge.CauseDeliveryUnavailable} {
		wantPage(t, "admin page", adminPage, http.StatusOK, c.Info().Support.Title, string(c))
	}
	for _, id := range []string{rejectedTask, noContactTask, unavailableTask} {
		wantPage(t, "admin page", adminPage, http.StatusOK, id)
		f, _ := e.Store.GetFailure(ctx, id)
		wantPage(t, "admin page of "+id, admin.Get("/admin/jobs/"+url.PathEscape(id)), http.StatusOK, id, string(f.Cause), f.Reason)
		code, out, _ := cliRun(t, e, "", "jobs", "show", id)
		for _, want := range []string{string(f.Cause), f.Reason, "jobs replay " + id} {
			if code != 0 || !strings.Contains(out, want) {
				t.Errorf("jobs show %s lacks %q (exit %d):\n%s", id, want, code, out)
			}
		}
	}

	// The fixes, then a replay by each of support's routes.
	msg.Mail.ClearFaults()
	if _, err := e.Store.UpdatePatient(ctx, pid, func(p *store.Patient) error { p.Email = zoeEmail; return nil }); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := cliRun(t, e, "", "jobs", "replay", rejectedTask); code != 0 {
		t.Fatalf("jobs replay: exit %d: %s %s", code, out, errOut)
	}
	// A row's own Replay button on the failures page acts at once.
	if r := admin.PostForm("/admin/replay", url.Values{"id": {noContactTask}}); r.StatusCode != http.StatusSeeOther ||
		!strings.Contains(r.Location(), "notice=replayed") || !strings.Contains(r.Location(), "n=1") {
		t.Fatalf("admin replay: %d to %q, want 303 back to the page saying one was replayed", r.StatusCode, r.Location())
	}
	if r := adminAPI(e, http.MethodPost, "/admin/api/jobs/replay", map[string]any{"ids": []string{unavailableTask}}); r.StatusCode != http.StatusOK {
		t.Fatalf("admin API replay: %d %s", r.StatusCode, r.Body)
	}
	for _, id := range []string{rejectedTask, noContactTask, unavailableTask} {
		waitLedgerGone(t, e, id)
	}
	final := waitDelivered(t, e, b, pid, rejected.ID, 1, 3)
	for _, m := range final {
		if m.State != pmsbridge.MessageSent || m.Cause != "" || m.Reason != "" {
			t.Errorf("after the replay: %+v, want sent", m)
		}
	}
	if mails, texts := msg.Mail.Messages(), msg.SMS.MessagesTo(zoeMobile); len(mails) != 2 || len(texts) != 1 {
		t.Errorf("%d emails and %d texts delivered, want 2 and 1 (one per message)", len(mails), len(texts))
	}
}
