package jobs

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/internal/loadgen"
	"github.com/physitrack/pmsbridge/mail"
	"github.com/physitrack/pmsbridge/mail/mailtest"
	"github.com/physitrack/pmsbridge/sms"
	"github.com/physitrack/pmsbridge/sms/twiliotest"
	"github.com/physitrack/pmsbridge/store"
)

// The demo patient's contact details (the Cliniko sandbox's seed) as the code
// messages use them.
const (
	zoeEmail  = "zoe.obrien@patient.example"
	zoeMobile = "+61400111222" // "61400111222" in Cliniko
)

// codesBundle is a jobs bundle with a real SMTP server (STARTTLS, as a
// submission server offers it), the Twilio sandbox, the handlers wired to
// both and Codes on top.
type codesBundle struct {
	*bundle
	smtp   *mailtest.Server
	twilio *twiliotest.Sandbox
	codes  *Codes
}

// codesOptions adjust setupCodes: what Codes believes is configured, and
// whether the handlers get a sender for each channel.
type codesOptions struct {
	cfg           CodesConfig
	noMail, noSMS bool
	more          []func(*options)
}

func setupCodes(t *testing.T, mods ...func(*codesOptions)) *codesBundle {
	t.Helper()
	co := codesOptions{cfg: CodesConfig{Email: true, SMS: true, Region: "au"}}
	for _, m := range mods {
		m(&co)
	}
	smtp, err := mailtest.New(mailtest.WithSTARTTLS())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = smtp.Close() })
	tw := twiliotest.New()
	t.Cleanup(tw.Close)
	sender, err := mail.New(mail.Config{SMTPURL: smtp.URL(), From: "pmsbridge <codes@clinic.example>", RootCAs: smtp.RootCAs(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	texter, err := sms.New(sms.Config{AccountSID: tw.AccountSID(), AuthToken: tw.AuthToken(), From: twiliotest.DemoFrom, BaseURL: tw.URL()})
	if err != nil {
		t.Fatal(err)
	}
	wire := func(o *options) {
		prev := o.deps
		o.deps = func(d *Deps) {
			if prev != nil {
				prev(d)
			}
			d.Region = "au"
			if !co.noMail {
				d.Mail = sender
			}
			if !co.noSMS {
				d.SMS = texter
			}
		}
	}
	b := setup(t, append(co.more, wire)...)
	return &codesBundle{bundle: b, smtp: smtp, twilio: tw, codes: NewCodes(b.jc, co.cfg)}
}

// message reloads a message request.
func (b *codesBundle) message(t *testing.T, id string) store.Message {
	t.Helper()
	m, err := b.st.MessageOf(b.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// waitMessage waits until message id leaves pending and returns it.
func (b *codesBundle) waitMessage(t *testing.T, id string, want pmsbridge.MessageState) store.Message {
	t.Helper()
	var m store.Message
	waitFor(t, 30*time.Second, "message "+id+" to be "+string(want), func() bool {
		m = b.message(t, id)
		return m.State == want
	})
	return m
}

// assign stores version 1 of a new programme and runs the on-assign
// decision, as the assign workflows do.
func (b *codesBundle) assign(t *testing.T, title string) (pmsbridge.Programme, Assignment) {
	t.Helper()
	p := b.programme(t, "", b.patient, b.pr, title)
	a, err := b.codes.Assigned(b.ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	return p, a
}

func (b *codesBundle) setContact(t *testing.T, email, mobile string) {
	t.Helper()
	if _, err := b.st.UpdatePatient(b.ctx, b.patient.ID, func(p *store.Patient) error {
		p.Email, p.Mobile = email, mobile
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestCodeByEmailOnAssign: version 1 sends one email with the code and the
// access address; a duplicate assignment (a redelivered webhook) asks for
// nothing more; version 2 sends nothing; a resend sends one more email,
// with its own Message-ID. The records say who asked, why, where (masked)
// and the Message-ID.
func TestCodeByEmailOnAssign(t *testing.T) {
	t.Parallel()
	b := setupCodes(t)
	prog, a := b.assign(t, "Knee rehab, week 1")
	if a.HandOver || a.Message == nil || a.Message.Channel != pmsbridge.ChannelEmail {
		t.Fatalf("Assigned = %+v, want an email", a)
	}
	again, err := b.codes.Assigned(b.ctx, prog)
	if err != nil || again.Message == nil || again.Message.ID != a.Message.ID {
		t.Fatalf("duplicate Assigned = %+v, %v; want the same message", again, err)
	}
	v2 := b.programme(t, prog.ID, b.patient, b.pr, "Knee rehab, week 2")
	if got, err := b.codes.Assigned(b.ctx, v2); err != nil || got.Message != nil || got.HandOver {
		t.Fatalf("version 2: %+v, %v; want nothing", got, err)
	}
	if n := b.pendingCount(t, QueueMessage); n != 1 {
		t.Fatalf("%d message tasks queued, want 1 (one assignment, one duplicate, one later version)", n)
	}
	payload := payloadMap(t, b.taskInfo(t, QueueMessage, SendCodeTaskID(a.Message.ID)).Payload)
	wantKeys := []string{"channel", "message_id", "patient_id", "practitioner_id", "programme_id", "version"}
	var keys []string
	for k := range payload {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if diff := cmp.Diff(wantKeys, keys); diff != "" {
		t.Errorf("payload fields (-want +got):\n%s", diff)
	}

	w := b.startWorker(t, nil)
	sent := b.waitMessage(t, a.Message.ID, pmsbridge.MessageSent)
	box := b.smtp.Mailbox(zoeEmail)
	if len(box) != 1 || box[0].Deliveries != 1 {
		t.Fatalf("mailbox has %d messages, want 1 delivered once", len(box))
	}
	e := box[0]
	for _, want := range []string{prog.Code, testAccessURL, "Dr Demo Practitioner at Demo Physio Clinic", "year of birth"} {
		if !strings.Contains(e.Text, want) || !strings.Contains(e.HTML, want) {
			t.Errorf("the email (text and HTML) lacks %q:\n%s", want, e.Text)
		}
	}
	if strings.Contains(e.Text, "1985") || strings.Contains(e.Subject, "Knee") {
		t.Errorf("the email holds the year or the programme's title: %q\n%s", e.Subject, e.Text)
	}
	if e.Subject != "Your access code from Demo Physio Clinic" || !strings.Contains(e.Header.Get("From"), "Demo Physio Clinic") || !e.TLS {
		t.Errorf("subject %q, from %q, TLS %v", e.Subject, e.Header.Get("From"), e.TLS)
	}
	if sent.Ref != e.MessageID || sent.To != "z***@patient.example" || sent.SentAt.IsZero() || sent.Attempts != 1 ||
		sent.Trigger != store.TriggerAssigned || sent.RequestedBy != b.pr.ID {
		t.Errorf("record %+v; Message-ID %q", sent, e.MessageID)
	}
	b.noFailure(t, SendCodeTaskID(a.Message.ID))

	// After the send: a duplicate queues nothing (the workers are stopped,
	// so a task would stay visible).
	w.Shutdown()
	if got, err := b.codes.Assigned(b.ctx, prog); err != nil || got.Message.State != pmsbridge.MessageSent {
		t.Fatalf("duplicate after the send: %+v, %v", got, err)
	}
	if n := b.pendingCount(t, QueueMessage); n != 0 {
		t.Fatalf("%d tasks queued by a duplicate of a sent message", n)
	}

	r, err := b.codes.SendAgain(b.ctx, prog.ID, pmsbridge.ChannelEmail, b.pr.ID)
	if err != nil {
		t.Fatal(err)
	}
	b.startWorker(t, nil)
	resent := b.waitMessage(t, r.ID, pmsbridge.MessageSent)
	box = b.smtp.Mailbox(zoeEmail)
	if len(box) != 2 || box[1].MessageID != resent.Ref || box[1].MessageID == box[0].MessageID || !strings.Contains(box[1].Text, prog.Code) {
		t.Fatalf("after the resend the mailbox has %d messages (want 2, the second with the code and its own Message-ID)", len(box))
	}
	list, err := b.st.MessagesOf(b.ctx, prog.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != a.Message.ID || list[1].ID != r.ID || list[1].Trigger != store.TriggerResend || list[1].Version != 2 {
		t.Errorf("the programme's messages: %+v", list)
	}
	if n := len(b.smtp.Messages()); n != 2 {
		t.Errorf("%d deliveries in all, want 2", n)
	}
}

// TestCodeEmailRejected: a 550 to the patient's address fails the message
// for good with delivery_rejected, on the record and in the ledger, with a
// reason naming the masked address; support replays it after the fix (also
// when asynq has dropped its archived copy) and it is sent once.
func TestCodeEmailRejected(t *testing.T) {
	t.Parallel()
	b := setupCodes(t)
	b.smtp.FailRecipient(zoeEmail, mailtest.Fault{Code: 550})
	b.startWorker(t, nil)
	_, a := b.assign(t, "Shoulder")
	taskID := SendCodeTaskID(a.Message.ID)
	b.waitState(t, QueueMessage, taskID, StateFailed)
	m := b.waitMessage(t, a.Message.ID, pmsbridge.MessageFailed)
	f := b.failure(t, taskID)
	if !f.Permanent || f.Cause != pmsbridge.CauseDeliveryRejected || f.Attempts != 1 || f.Type != TypeSendCode ||
		f.PatientID != b.patient.ID || f.PractitionerID != b.pr.ID || f.ProgrammeID != a.Message.ProgrammeID {
		t.Errorf("ledger entry %+v", f)
	}
	if m.Cause != pmsbridge.CauseDeliveryRejected || m.Reason != f.Reason || !strings.Contains(m.Reason, "z***@patient.example") {
		t.Errorf("record %+v, ledger reason %q", m, f.Reason)
	}
	for _, text := range []string{f.Reason, string(f.Payload)} {
		if strings.Contains(text, zoeEmail) {
			t.Errorf("the ledger holds the address: %q", text)
		}
	}
	if n, _ := b.st.CountOwed(b.ctx, store.OwedMessage); n != 0 || len(b.smtp.Messages()) != 0 {
		t.Errorf("%d owed, %d delivered; want none", n, len(b.smtp.Messages()))
	}

	b.smtp.ClearFaults()
	if err := b.jc.Inspector().DeleteTask(QueueMessage, taskID); err != nil {
		t.Fatal(err) // as if asynq had dropped its oldest archived tasks
	}
	if err := b.jc.Replay(b.ctx, f); err != nil {
		t.Fatal(err)
	}
	b.waitMessage(t, a.Message.ID, pmsbridge.MessageSent)
	if box := b.smtp.Mailbox(zoeEmail); len(box) != 1 || box[0].Deliveries != 1 {
		t.Errorf("after the replay: %d messages", len(box))
	}
	b.waitDone(t, QueueMessage, taskID)
	b.noFailure(t, taskID)
}

// TestCodeEmailRetriedAfter421: the server answers 421 (closing); the
// message is retried and sent once.
func TestCodeEmailRetriedAfter421(t *testing.T) {
	t.Parallel()
	b := setupCodes(t)
	b.smtp.FailNext(1, mailtest.Fault{Code: 421})
	b.startWorker(t, nil)
	_, a := b.assign(t, "Hip")
	m := b.waitMessage(t, a.Message.ID, pmsbridge.MessageSent)
	if m.Attempts != 2 {
		t.Errorf("%d attempts, want 2", m.Attempts)
	}
	if n := len(b.smtp.Messages()); n != 1 {
		t.Errorf("%d deliveries, want 1", n)
	}
	b.waitDone(t, QueueMessage, SendCodeTaskID(a.Message.ID))
	b.noFailure(t, SendCodeTaskID(a.Message.ID))
}

// TestCodeEmailSentOnceAcrossLostReply: the server takes the message and
// the connection drops before its 250 (a worker that dies between sending
// and recording learns no more). The retry sends it again with the same
// Message-ID, so the patient's mailbox shows one message.
func TestCodeEmailSentOnceAcrossLostReply(t *testing.T) {
	t.Parallel()
	b := setupCodes(t)
	b.smtp.DropReplyNext(1)
	b.startWorker(t, nil)
	_, a := b.assign(t, "Ankle")
	m := b.waitMessage(t, a.Message.ID, pmsbridge.MessageSent)
	all := b.smtp.Messages()
	box := b.smtp.Mailbox(zoeEmail)
	if len(all) != 2 || !all[0].ReplyLost || len(box) != 1 || box[0].Deliveries != 2 || box[0].MessageID != m.Ref {
		t.Errorf("%d deliveries (first reply lost: %v), mailbox %d; want 2 deliveries shown as 1 message", len(all), len(all) > 0 && all[0].ReplyLost, len(box))
	}
}

// TestCodeSentOnceAfterACrash: a worker marked its attempt, sent, and died
// before recording. The task's next run sends the email again with the
// same Message-ID (one message in the mailbox) and finds the text at Twilio
// instead of sending it again.
func TestCodeSentOnceAfterACrash(t *testing.T) {
	t.Parallel()
	b := setupCodes(t)
	prog := b.programme(t, "", b.patient, b.pr, "Wrist")
	h := b.h
	c, err := h.codeContent(b.ctx, store.Message{ProgrammeID: prog.ID, Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	crashed := func(ch pmsbridge.Channel, send func(store.Message)) store.Message {
		t.Helper()
		m, err := b.codes.SendAgain(b.ctx, prog.ID, ch, b.pr.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.jc.Inspector().DeleteTask(QueueMessage, SendCodeTaskID(m.ID)); err != nil {
			t.Fatal(err)
		}
		if _, err := b.st.StartMessageAttempt(b.ctx, m.ID, "a***@b.example"); err != nil {
			t.Fatal(err)
		}
		send(m) // ... and the worker died here
		if err := b.run(t, TypeSendCode, sendCodePayload(m)); err != nil {
			t.Fatalf("the task after the crash: %v", err)
		}
		return b.message(t, m.ID)
	}

	em := crashed(pmsbridge.ChannelEmail, func(m store.Message) {
		id, _ := h.Mail.MessageID(m.ID)
		msg, err := mail.CodeEmail{Clinic: c.clinic, Practitioner: c.practitioner, Code: prog.Code, AccessURL: h.AccessURL}.Compose(zoeEmail, id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Mail.Send(b.ctx, msg); err != nil {
			t.Fatal(err)
		}
	})
	box := b.smtp.Mailbox(zoeEmail)
	if em.State != pmsbridge.MessageSent || len(box) != 1 || box[0].Deliveries != 2 || box[0].MessageID != em.Ref {
		t.Errorf("email: record %+v, mailbox %d messages", em, len(box))
	}

	var first string
	sm := crashed(pmsbridge.ChannelSMS, func(store.Message) {
		text, err := sms.CodeText{Clinic: c.clinic, Code: prog.Code, AccessURL: h.AccessURL}.Compose()
		if err != nil {
			t.Fatal(err)
		}
		s, err := h.SMS.Send(b.ctx, sms.Message{To: zoeMobile, Body: text.Body})
		if err != nil {
			t.Fatal(err)
		}
		first = s.SID
	})
	got := b.twilio.MessagesTo(zoeMobile)
	if sm.State != pmsbridge.MessageSent || len(got) != 1 || sm.Ref != first || got[0].SID != first {
		t.Errorf("sms: record %+v, %d texts at Twilio (the crashed attempt's %s)", sm, len(got), first)
	}
	if n := b.twilio.RequestCount("list_messages"); n < 1 {
		t.Error("the retry did not look for the earlier attempt")
	}
}

// TestCodeSMSRejected: Twilio's 21211 (invalid number) and 21610 (the
// patient replied STOP) fail the text for good with delivery_rejected and
// a reason with the masked number; nothing is sent.
func TestCodeSMSRejected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc   string
		code   int
		refuse func(*twiliotest.Sandbox)
		reason string
	}{
		{desc: "21211 invalid number", code: 21211, refuse: func(s *twiliotest.Sandbox) { s.Refuse(zoeMobile, 21211) }, reason: "not a valid"},
		{desc: "21610 unsubscribed", code: 21610, refuse: func(s *twiliotest.Sandbox) { s.Unsubscribe(zoeMobile) }, reason: "STOP"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			b := setupCodes(t)
			tc.refuse(b.twilio)
			b.startWorker(t, nil)
			prog := b.programme(t, "", b.patient, b.pr, "Neck")
			m, err := b.codes.SendAgain(b.ctx, prog.ID, pmsbridge.ChannelSMS, b.pr.ID)
			if err != nil {
				t.Fatal(err)
			}
			taskID := SendCodeTaskID(m.ID)
			b.waitState(t, QueueMessage, taskID, StateFailed)
			m = b.waitMessage(t, m.ID, pmsbridge.MessageFailed)
			f := b.failure(t, taskID)
			if !f.Permanent || f.Cause != pmsbridge.CauseDeliveryRejected || m.Cause != pmsbridge.CauseDeliveryRejected {
				t.Errorf("ledger %+v, record %+v", f, m)
			}
			if !strings.Contains(m.Reason, "+61 4** *** 222") || !strings.Contains(m.Reason, tc.reason) || strings.Contains(m.Reason, "400111") {
				t.Errorf("reason %q: want the masked number and %q", m.Reason, tc.reason)
			}
			if n := len(b.twilio.Messages()); n != 0 {
				t.Errorf("%d texts sent", n)
			}
		})
	}
}

// TestCodeSMSRetried: Twilio's 503 and 429 are retried; one text is sent.
func TestCodeSMSRetried(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			// Email not configured: the automatic message goes by SMS.
			b := setupCodes(t, func(o *codesOptions) { o.cfg.Email = false })
			b.twilio.FailNextOp("create_message", 1, status)
			b.startWorker(t, nil)
			_, a := b.assign(t, "Back")
			if a.Message == nil || a.Message.Channel != pmsbridge.ChannelSMS {
				t.Fatalf("Assigned = %+v, want an SMS", a)
			}
			m := b.waitMessage(t, a.Message.ID, pmsbridge.MessageSent)
			got := b.twilio.MessagesTo(zoeMobile)
			if len(got) != 1 || got[0].SID != m.Ref || m.To != "+61 4** *** 222" || m.Attempts != 2 {
				t.Fatalf("%d texts; record %+v", len(got), m)
			}
			for _, want := range []string{"Demo Physio Clinic", testAccessURL} {
				if !strings.Contains(got[0].Body, want) {
					t.Errorf("text %q lacks %q", got[0].Body, want)
				}
			}
			prog, _ := b.st.GetProgramme(b.ctx, a.Message.ProgrammeID, 1)
			if !strings.Contains(got[0].Body, prog.Code) {
				t.Errorf("text %q lacks the code", got[0].Body)
			}
			b.waitDone(t, QueueMessage, SendCodeTaskID(m.ID))
			b.noFailure(t, SendCodeTaskID(m.ID))
		})
	}
}

// TestCodeAutoChannel: the automatic message of a first version goes by
// email when the patient has an address and email is set up, else by SMS
// when SMS is set up and the patient has a mobile, else nowhere (the
// practitioner hands the code over).
func TestCodeAutoChannel(t *testing.T) {
	t.Parallel()
	const landline = "0398765432"
	tests := []struct {
		desc         string
		email, sms   bool
		addr, mobile string
		want         pmsbridge.Channel
	}{
		{desc: "email", email: true, sms: true, addr: zoeEmail, mobile: zoeMobile, want: pmsbridge.ChannelEmail},
		{desc: "no address: sms", email: true, sms: true, mobile: "0412 345 678", want: pmsbridge.ChannelSMS},
		{desc: "email not set up: sms", sms: true, addr: zoeEmail, mobile: zoeMobile, want: pmsbridge.ChannelSMS},
		{desc: "no address, sms not set up", email: true, mobile: zoeMobile},
		{desc: "no address, a landline only", email: true, sms: true, mobile: landline},
		{desc: "nothing set up", addr: zoeEmail, mobile: zoeMobile},
		{desc: "no contact at all", email: true, sms: true},
	}
	b := setupCodes(t)
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			b.setContact(t, tc.addr, tc.mobile)
			codes := NewCodes(b.jc, CodesConfig{Email: tc.email, SMS: tc.sms, Region: "au"})
			p := b.programme(t, "", b.patient, b.pr, tc.desc)
			a, err := codes.Assigned(b.ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.want == "" && (a.Message != nil || !a.HandOver):
				t.Errorf("Assigned = %+v, want a hand-over", a)
			case tc.want != "" && (a.Message == nil || a.Message.Channel != tc.want || a.HandOver):
				t.Errorf("Assigned = %+v, want %s", a, tc.want)
			}
			list, _ := b.st.MessagesOf(b.ctx, p.ID)
			if want := map[bool]int{true: 0, false: 1}[tc.want == ""]; len(list) != want {
				t.Errorf("%d message records, want %d", len(list), want)
			}
		})
	}
}

// TestSendAgainRefusals: a channel that cannot work is refused with a
// sentence saying why, and so is a resend over the patient's limit; of 100
// simultaneous resends 5 are recorded and queued. Refusals record nothing.
func TestSendAgainRefusals(t *testing.T) {
	t.Parallel()
	b := setupCodes(t)
	prog := b.programme(t, "", b.patient, b.pr, "Elbow")
	tests := []struct {
		desc         string
		cfg          CodesConfig
		addr, mobile string
		ch           pmsbridge.Channel
		want         ChannelProblem
		why          string
	}{
		{desc: "email not set up", cfg: CodesConfig{SMS: true, Region: "au"}, addr: zoeEmail, ch: pmsbridge.ChannelEmail, want: ProblemNotConfigured, why: "Email is not set up"},
		{desc: "sms not set up", cfg: CodesConfig{Email: true, Region: "au"}, mobile: zoeMobile, ch: pmsbridge.ChannelSMS, want: ProblemNotConfigured, why: "Text messages are not set up"},
		{desc: "no address", cfg: CodesConfig{Email: true, SMS: true, Region: "au"}, mobile: zoeMobile, ch: pmsbridge.ChannelEmail, want: ProblemNoAddress, why: "no email address"},
		{desc: "no mobile", cfg: CodesConfig{Email: true, SMS: true, Region: "au"}, addr: zoeEmail, ch: pmsbridge.ChannelSMS, want: ProblemNoAddress, why: "no mobile number"},
		{desc: "a landline", cfg: CodesConfig{Email: true, SMS: true, Region: "au"}, mobile: "03 9876 5432", ch: pmsbridge.ChannelSMS, want: ProblemNotAMobile, why: "*** 432) is not a mobile"},
		{desc: "a fax", cfg: CodesConfig{Email: true, SMS: true, Region: "au"}, addr: zoeEmail, ch: "fax", want: ProblemUnknownChannel, why: "email or by SMS"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			b.setContact(t, tc.addr, tc.mobile)
			_, err := NewCodes(b.jc, tc.cfg).SendAgain(b.ctx, prog.ID, tc.ch, b.pr.ID)
			var ce *ChannelError
			if !errors.As(err, &ce) || ce.Status.Problem != tc.want || !strings.Contains(pmsbridge.MessageOf(err), tc.why) {
				t.Fatalf("err = %v (%q), want %s saying %q", err, pmsbridge.MessageOf(err), tc.want, tc.why)
			}
		})
	}
	if _, err := b.codes.SendAgain(b.ctx, "prg_nothere", pmsbridge.ChannelEmail, b.pr.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown programme: %v", err)
	}
	if list, _ := b.st.MessagesOf(b.ctx, prog.ID); len(list) != 0 {
		t.Fatalf("refusals recorded %d messages", len(list))
	}

	b.setContact(t, zoeEmail, zoeMobile)
	errs := make([]error, 100)
	loadgen.Burst(100, func(i int) {
		ch := pmsbridge.ChannelEmail
		if i%2 == 0 {
			ch = pmsbridge.ChannelSMS
		}
		_, errs[i] = b.codes.SendAgain(b.ctx, prog.ID, ch, b.pr.ID)
	})
	ok, limited := 0, 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if le, is := IsResendLimit(err); is && le.Until.After(time.Now().Add(59*time.Minute)) {
			limited++
		} else {
			t.Errorf("unexpected error %v", err)
		}
	}
	if ok != 5 || limited != 95 {
		t.Errorf("%d resends recorded, %d refused; want 5 and 95", ok, limited)
	}
	if n := b.pendingCount(t, QueueMessage); n != 5 {
		t.Errorf("%d tasks queued, want 5", n)
	}
}

// TestCodeJobFailsClearly: a message by a channel the worker has no
// sender for, or to a patient whose address went away after the request,
// fails for good with a cause and a sentence that says so.
func TestCodeJobFailsClearly(t *testing.T) {
	t.Parallel()
	b := setupCodes(t, func(o *codesOptions) { o.noSMS = true })
	w := b.startWorker(t, nil)
	prog := b.programme(t, "", b.patient, b.pr, "Calf")
	bySMS, err := b.codes.SendAgain(b.ctx, prog.ID, pmsbridge.ChannelSMS, b.pr.ID)
	if err != nil {
		t.Fatal(err)
	}
	m := b.waitMessage(t, bySMS.ID, pmsbridge.MessageFailed)
	if m.Cause != pmsbridge.CauseDeliveryRejected || !strings.Contains(m.Reason, "Text messaging is not set up") {
		t.Errorf("no SMS sender: %+v", m)
	}

	w.Shutdown()
	byEmail, err := b.codes.SendAgain(b.ctx, prog.ID, pmsbridge.ChannelEmail, b.pr.ID)
	if err != nil {
		t.Fatal(err)
	}
	b.setContact(t, "", zoeMobile) // removed in Cliniko and refreshed before the task ran
	b.startWorker(t, nil)
	m = b.waitMessage(t, byEmail.ID, pmsbridge.MessageFailed)
	if m.Cause != pmsbridge.CauseNoContact || !strings.Contains(m.Reason, "no email address") {
		t.Errorf("no address: %+v", m)
	}
	if f := b.failure(t, SendCodeTaskID(byEmail.ID)); f.Cause != pmsbridge.CauseNoContact || !f.Permanent {
		t.Errorf("ledger %+v", f)
	}
}

// TestReconcileRequeuesLostMessage: a message whose task was lost (a
// failover dropping the last writes) is queued again once, sent once, and
// then nothing is owed.
func TestReconcileRequeuesLostMessage(t *testing.T) {
	t.Parallel()
	b := setupCodes(t, func(o *codesOptions) { o.more = append(o.more, pastGrace) })
	_, a := b.assign(t, "Lost in a failover")
	b.loseAndRequeue(t, store.OwedMessage, TypeSendCode, SendCodeTaskID(a.Message.ID))
	b.startWorker(t, nil)
	b.waitMessage(t, a.Message.ID, pmsbridge.MessageSent)
	if box := b.smtp.Mailbox(zoeEmail); len(box) != 1 || box[0].Deliveries != 1 {
		t.Errorf("%d messages in the mailbox, want 1 delivered once", len(box))
	}
	if got := b.reconcile(t)[store.OwedMessage]; len(got) != 0 {
		t.Errorf("after the send: %v, want nothing owed", got)
	}
}
