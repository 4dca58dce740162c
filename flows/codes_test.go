package flows

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// withChannels gives the bundle's flows Codes with email and SMS set up as
// asked (setup's flows have neither).
func (b *bundle) withChannels(email, sms bool) {
	b.f.Codes = jobs.NewCodes(b.jobs, jobs.CodesConfig{Email: email, SMS: sms, Region: "au"})
}

// messagesOf lists a programme's message requests, failing t on error.
func (b *bundle) messagesOf(t *testing.T, programmeID string) []store.Message {
	t.Helper()
	ms, err := b.st.MessagesOf(b.ctx, programmeID)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// wantQueued checks that message m's send task is queued.
func (b *bundle) wantQueued(t *testing.T, m store.Message) {
	t.Helper()
	if st, _, err := b.jobs.TaskState(b.ctx, jobs.QueueMessage, jobs.SendCodeTaskID(m.ID)); err != nil || st != jobs.StatePending {
		t.Errorf("send task of %s: %q, %v; want pending", m.ID, st, err)
	}
}

// TestAssignAsksForTheCode: a first version from the form or the webhook
// asks for one message by the automatic channel, and queues it; a new
// version, the same event again, and the same assignment under another
// event id ask for nothing more; with no channel that works, nothing is
// asked for (the practitioner hands the code over).
func TestAssignAsksForTheCode(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.withChannels(true, true)
	p := b.patient(t)

	v1, err := b.f.Assign(b.ctx, b.pr, p, Assignment{Title: "Knee", CatalogueIDs: []string{"ex_quad_set"}})
	if err != nil {
		t.Fatal(err)
	}
	ms := b.messagesOf(t, v1.ID)
	if len(ms) != 1 || ms[0].Channel != pmsbridge.ChannelEmail || ms[0].Trigger != store.TriggerAssigned ||
		ms[0].State != pmsbridge.MessagePending || ms[0].RequestedBy != b.pr.ID || ms[0].To != "z***@patient.example" {
		t.Fatalf("messages after assigning version 1: %+v; want one pending email to z***@patient.example", ms)
	}
	b.wantQueued(t, ms[0])
	if _, err := b.f.Assign(b.ctx, b.pr, p, Assignment{ProgrammeID: v1.ID, Title: "Knee, week 2", CatalogueIDs: []string{"ex_quad_set"}}); err != nil {
		t.Fatal(err)
	}
	if got := b.messagesOf(t, v1.ID); len(got) != 1 {
		t.Errorf("version 2 asked for a message: %+v", got)
	}

	ev := func(id string) PlatformEvent {
		return PlatformEvent{ID: id, Type: "programme.assigned", SignedAt: b.clock.Now(), Programme: &PlatformProgramme{
			PatientID: p.ID, PractitionerID: b.pr.ID, Assignment: Assignment{ProgrammeID: "prg_web1", Version: 1, Title: "Hip",
				Exercises: []pmsbridge.Exercise{{Name: "Bridge", Sets: 3, Reps: 10}}}}}
	}
	for _, id := range []string{"evt_1", "evt_1", "evt_2"} {
		if _, err := b.f.AcceptEvent(b.ctx, ev(id)); err != nil {
			t.Fatalf("event %s: %v", id, err)
		}
	}
	web := b.messagesOf(t, "prg_web1")
	if len(web) != 1 || web[0].Channel != pmsbridge.ChannelEmail || web[0].Trigger != store.TriggerAssigned {
		t.Fatalf("messages after the webhook's version 1, twice, and again under another event id: %+v; want one email", web)
	}
	b.wantQueued(t, web[0])

	b.withChannels(false, false)
	handOver, err := b.f.Assign(b.ctx, b.pr, p, Assignment{Title: "Shoulder", CatalogueIDs: []string{"ex_quad_set"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := b.messagesOf(t, handOver.ID); len(got) != 0 {
		t.Errorf("with no channel set up, messages %+v; want none (the practitioner hands the code over)", got)
	}
}

// TestSendCode: "send the code again" records and queues one message per
// request by the channel asked for, audited; a channel that cannot work,
// another patient's programme and the resend limit are refused with words
// for the practitioner (the limit's in the clinic's time), recording and
// queueing nothing.
func TestSendCode(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.withChannels(true, true)
	if _, err := b.st.SetSubscriptionTimeZone(b.ctx, b.sub.ID, "Pacific/Auckland"); err != nil {
		t.Fatal(err)
	}
	p, prog := b.assigned(t)

	m, err := b.f.SendCode(b.ctx, b.pr, p, prog.ID, pmsbridge.ChannelSMS)
	if err != nil || m.Channel != pmsbridge.ChannelSMS || m.Trigger != store.TriggerResend || m.RequestedBy != b.pr.ID || m.To != "+61 4** *** 222" {
		t.Fatalf("SendCode by SMS = %+v, %v", m, err)
	}
	b.wantQueued(t, m)
	ms := b.messagesOf(t, prog.ID)
	if len(ms) != 2 || ms[0].Trigger != store.TriggerAssigned || ms[1].ID != m.ID {
		t.Fatalf("messages %+v; want the automatic email, then the SMS", ms)
	}
	audit, err := b.st.AuditOf(b.ctx, p.ID, 20)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(audit, func(e store.AuditEntry) bool {
		return e.Op == "programme.code.sent_again" && e.PractitionerID == b.pr.ID && strings.Contains(e.Detail, m.ID)
	}) {
		t.Errorf("no audit entry for the resend: %+v", audit)
	}

	other, err := b.f.Assign(b.ctx, b.pr, b.otherPatient(t), Assignment{Title: "Other", CatalogueIDs: []string{"ex_quad_set"}})
	if err != nil {
		t.Fatal(err)
	}
	before := len(b.messagesOf(t, prog.ID))
	for _, tc := range []struct {
		desc    string
		email   bool
		edit    func(*store.Patient)
		prog    string
		channel pmsbridge.Channel
		code    Code
		says    string
	}{
		{desc: "an unknown channel", email: true, prog: prog.ID, channel: "fax", code: Invalid, says: "by email or by SMS"},
		{desc: "no channel", email: true, prog: prog.ID, channel: "", code: Invalid, says: "by email or by SMS"},
		{desc: "email not set up", prog: prog.ID, channel: pmsbridge.ChannelEmail, code: Invalid, says: "Email is not set up"},
		{desc: "no email address", email: true, edit: func(x *store.Patient) { x.Email = "" }, prog: prog.ID,
			channel: pmsbridge.ChannelEmail, code: Invalid, says: "no email address on record"},
		{desc: "a landline", email: true, edit: func(x *store.Patient) { x.Mobile = "02 9876 5432" }, prog: prog.ID,
			channel: pmsbridge.ChannelSMS, code: Invalid, says: "not a mobile number"},
		{desc: "another patient's programme", email: true, prog: other.ID, channel: pmsbridge.ChannelEmail, code: NotFound, says: "no such programme"},
		{desc: "no such programme", email: true, prog: "prg_nothing", channel: pmsbridge.ChannelEmail, code: NotFound, says: "no such programme"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			b.withChannels(tc.email, true)
			if tc.edit != nil {
				b.editPatient(t, p.ID, tc.edit)
			}
			_, err := b.f.SendCode(b.ctx, b.pr, p, tc.prog, tc.channel)
			wantRefusal(t, tc.desc, err, tc.code, tc.says)
			if got := b.messagesOf(t, prog.ID); len(got) != before {
				t.Errorf("a refusal recorded a message: %d, want %d", len(got), before)
			}
		})
	}
	b.withChannels(true, true)

	// The limit (5 an hour by default) counts the SMS above.
	for i := 0; i < 4; i++ {
		if _, err := b.f.SendCode(b.ctx, b.pr, p, prog.ID, pmsbridge.ChannelEmail); err != nil {
			t.Fatalf("resend %d: %v", i+2, err)
		}
	}
	_, err = b.f.SendCode(b.ctx, b.pr, p, prog.ID, pmsbridge.ChannelEmail)
	var refusal *Error
	if !errors.As(err, &refusal) || refusal.Code != TooMany || refusal.RetryAt.IsZero() || !errors.Is(err, store.ErrLocked) {
		t.Fatalf("the sixth resend: %v; want TooMany with a time", err)
	}
	auckland, _ := time.LoadLocation("Pacific/Auckland")
	next := refusal.RetryAt.Add(time.Minute - time.Nanosecond).Truncate(time.Minute).In(auckland)
	if want := fmt.Sprintf("You can send it again on %s at %s", next.Format("2 Jan 2006"), next.Format("15:04")); !strings.Contains(refusal.Message, want) {
		// The flows' clock is days away from the store's, so the date is named.
		t.Errorf("the limit says %q; want it to say %q (Auckland time)", refusal.Message, want)
	}
	if !strings.Contains(refusal.Message, "sent again 5 times in the last hour") {
		t.Errorf("the limit says %q; want it to name the limit", refusal.Message)
	}
	if got := b.messagesOf(t, prog.ID); len(got) != 6 {
		t.Errorf("%d messages, want 6 (the refused one not recorded)", len(got))
	}
}

// editPatient changes a patient's email address or mobile number until the
// test (or subtest) ends.
func (b *bundle) editPatient(t *testing.T, id string, edit func(*store.Patient)) {
	t.Helper()
	var was store.Patient
	if _, err := b.st.UpdatePatient(b.ctx, id, func(x *store.Patient) error { was = *x; edit(x); return nil }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := b.st.UpdatePatient(b.ctx, id, func(x *store.Patient) error { x.Email, x.Mobile = was.Email, was.Mobile; return nil }); err != nil {
			t.Error(err)
		}
	})
}

// otherPatient imports a second demo patient for the bundle's practitioner.
func (b *bundle) otherPatient(t *testing.T) store.Patient {
	t.Helper()
	p, err := b.st.GetPatient(b.ctx, b.importNow(t, b.click(t, b.pr, "1002")))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
