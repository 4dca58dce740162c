package store_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/store"
)

// messageFixture is a patient with one programme (version 1).
type messageFixture struct {
	b   *bundle
	pat store.Patient
	prg pmsbridge.Programme
}

func newMessageFixture(t *testing.T, mods ...func(*store.Options)) messageFixture {
	t.Helper()
	b := setup(t, mods...)
	sub := b.subscription(t, "Clinic")
	pat := b.patient(t, b.practitioner(t, sub.ID, "a@example.com"), "1", "P")
	prg, _, err := b.store.CreateProgramme(b.ctx, programmeFor(pat, "Knee"))
	must(t, err)
	return messageFixture{b: b, pat: pat, prg: prg}
}

func (f messageFixture) request(trigger store.MessageTrigger, ch pmsbridge.Channel) store.Message {
	return store.Message{ProgrammeID: f.prg.ID, Version: f.prg.Version, PatientID: f.pat.ID, Channel: ch,
		Trigger: trigger, RequestedBy: f.pat.OwnerID, To: "z***@example.com"}
}

func (f messageFixture) owed(t *testing.T) []string {
	t.Helper()
	page, err := f.b.store.NextOwed(f.b.ctx, store.OwedMessage, f.b.clock.Now(), 100)
	must(t, err)
	ids := owedIDs(page)
	slices.Sort(ids)
	return ids
}

// TestRequestAutomaticMessageOnce: the automatic message of a programme
// version has a fixed id, so asking again (a redelivered webhook) returns
// the stored request and adds nothing; the request is listed and owed.
func TestRequestAutomaticMessageOnce(t *testing.T) {
	t.Parallel()
	f := newMessageFixture(t)
	b := f.b
	m, created, err := b.store.RequestMessage(b.ctx, f.request(store.TriggerAssigned, pmsbridge.ChannelEmail))
	if err != nil || !created {
		t.Fatalf("first request: created %v, %v", created, err)
	}
	if m.ID != store.AutoMessageID(f.prg.ID, 1) || m.State != pmsbridge.MessagePending || !m.CreatedAt.Equal(b.clock.Now()) {
		t.Errorf("request = %+v", m)
	}
	b.clock.Advance(time.Minute)
	again, created, err := b.store.RequestMessage(b.ctx, f.request(store.TriggerAssigned, pmsbridge.ChannelSMS))
	if err != nil || created {
		t.Fatalf("second request: created %v, %v", created, err)
	}
	if diff := cmp.Diff(m, again); diff != "" {
		t.Errorf("the second request is not the stored one (-first +second):\n%s", diff)
	}
	list, err := b.store.MessagesOf(b.ctx, f.prg.ID)
	must(t, err)
	if diff := cmp.Diff([]store.Message{m}, list); diff != "" {
		t.Errorf("MessagesOf (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{m.ID}, f.owed(t)); diff != "" {
		t.Errorf("owed (-want +got):\n%s", diff)
	}
	if store.AutoMessageID(f.prg.ID, 2) == m.ID || store.AutoMessageID("prg_other", 1) == m.ID {
		t.Error("AutoMessageID is the same for another version or programme")
	}
}

// TestRequestMessageRefusesBadInput: each bad request is refused with
// ErrInvalid and leaves nothing behind.
func TestRequestMessageRefusesBadInput(t *testing.T) {
	t.Parallel()
	f := newMessageFixture(t)
	b := f.b
	other := b.patient(t, b.practitioner(t, f.pat.SubscriptionID, "b@example.com"), "2", "Q")
	tests := []struct {
		desc string
		mod  func(*store.Message)
	}{
		{desc: "unknown channel", mod: func(m *store.Message) { m.Channel = "fax" }},
		{desc: "unknown trigger", mod: func(m *store.Message) { m.Trigger = "whim" }},
		{desc: "address in clear", mod: func(m *store.Message) { m.To = "zoe@example.com" }},
		{desc: "number in clear", mod: func(m *store.Message) { m.To = "+61412345678" }},
		{desc: "another patient's programme", mod: func(m *store.Message) { m.PatientID = other.ID }},
		{desc: "unknown programme", mod: func(m *store.Message) { m.ProgrammeID = "prg_nothere" }},
		{desc: "no version", mod: func(m *store.Message) { m.Version = 0 }},
		{desc: "bad id", mod: func(m *store.Message) { m.ID = "msg:1" }},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			m := f.request(store.TriggerResend, pmsbridge.ChannelEmail)
			tc.mod(&m)
			if _, _, err := b.store.RequestMessage(b.ctx, m); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
	list, err := b.store.MessagesOf(b.ctx, f.prg.ID)
	must(t, err)
	if len(list) != 0 || len(f.owed(t)) != 0 {
		t.Errorf("refused requests left %d records and owed %v", len(list), f.owed(t))
	}
	if n := b.rdb.Exists(b.ctx, "pmsb:{lim}:resend:pat:"+f.pat.ID).Val(); n != 0 {
		t.Error("a refused resend was counted against the patient's limit")
	}
}

// TestMessageLifecycle: an attempt is marked before sending; sent is final
// (a late failure, a reset or another attempt does not undo it) and leaves
// the owed index; a failure leaves it too, and a reset (a replay) brings
// it back as pending.
func TestMessageLifecycle(t *testing.T) {
	t.Parallel()
	f := newMessageFixture(t)
	b := f.b
	m, _, err := b.store.RequestMessage(b.ctx, f.request(store.TriggerAssigned, pmsbridge.ChannelEmail))
	must(t, err)

	b.clock.Advance(time.Second)
	a, err := b.store.StartMessageAttempt(b.ctx, m.ID, "q***@example.net")
	must(t, err)
	if a.Attempts != 1 || !a.AttemptedAt.Equal(b.clock.Now()) || a.To != "q***@example.net" || a.State != pmsbridge.MessagePending {
		t.Errorf("after the first attempt: %+v", a)
	}
	if _, err := b.store.StartMessageAttempt(b.ctx, m.ID, "zoe@example.com"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("an attempt with the address in clear: %v, want ErrInvalid", err)
	}
	a, err = b.store.StartMessageAttempt(b.ctx, m.ID, "")
	must(t, err)
	if a.Attempts != 2 || a.To != "q***@example.net" {
		t.Errorf("after the second attempt: %+v", a)
	}

	b.clock.Advance(time.Second)
	sent, err := b.store.MessageSent(b.ctx, m.ID, "pmsbridge.x@clinic.example")
	must(t, err)
	if sent.State != pmsbridge.MessageSent || sent.Ref != "pmsbridge.x@clinic.example" || !sent.SentAt.Equal(b.clock.Now()) {
		t.Errorf("sent: %+v", sent)
	}
	if got := f.owed(t); len(got) != 0 {
		t.Errorf("a sent message is owed: %v", got)
	}
	b.clock.Advance(time.Second)
	for what, op := range map[string]func() (store.Message, error){
		"failed": func() (store.Message, error) {
			return b.store.MessageFailed(b.ctx, m.ID, pmsbridge.CauseDeliveryRejected, "No.")
		},
		"reset":   func() (store.Message, error) { return b.store.ResetMessage(b.ctx, m.ID) },
		"attempt": func() (store.Message, error) { return b.store.StartMessageAttempt(b.ctx, m.ID, "") },
		"sent":    func() (store.Message, error) { return b.store.MessageSent(b.ctx, m.ID, "other") },
	} {
		got, err := op()
		must(t, err)
		if diff := cmp.Diff(sent, got); diff != "" {
			t.Errorf("%s after sent changed the record (-sent +got):\n%s", what, diff)
		}
	}
	if got := f.owed(t); len(got) != 0 {
		t.Errorf("owed after the no-ops on a sent message: %v", got)
	}

	r, _, err := b.store.RequestMessage(b.ctx, f.request(store.TriggerResend, pmsbridge.ChannelSMS))
	must(t, err)
	failed, err := b.store.MessageFailed(b.ctx, r.ID, pmsbridge.CauseDeliveryRejected, "The number was refused.")
	must(t, err)
	if failed.State != pmsbridge.MessageFailed || failed.Cause != pmsbridge.CauseDeliveryRejected || failed.Reason != "The number was refused." {
		t.Errorf("failed: %+v", failed)
	}
	if got := f.owed(t); len(got) != 0 {
		t.Errorf("a failed message is owed: %v", got)
	}
	reset, err := b.store.ResetMessage(b.ctx, r.ID)
	must(t, err)
	if reset.State != pmsbridge.MessagePending || reset.Cause != "" || reset.Reason != "" {
		t.Errorf("reset: %+v", reset)
	}
	if diff := cmp.Diff([]string{r.ID}, f.owed(t)); diff != "" {
		t.Errorf("owed after the reset (-want +got):\n%s", diff)
	}
	if _, err := b.store.MessageSent(b.ctx, "msg_nothere", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown message: %v, want ErrNotFound", err)
	}

	list, err := b.store.MessagesOf(b.ctx, f.prg.ID)
	must(t, err)
	var ids []string
	for _, x := range list {
		ids = append(ids, x.ID)
	}
	if diff := cmp.Diff([]string{m.ID, r.ID}, ids); diff != "" {
		t.Errorf("MessagesOf is not oldest first (-want +got):\n%s", diff)
	}
}

// TestResendLimitHoldsUnderConcurrency: of 100 simultaneous resends for
// one patient exactly ResendMax are recorded; the rest are refused with a
// *LockedError saying when the next is allowed, and recorded nowhere. The
// automatic message does not count. Once the window has passed, resends
// work again.
func TestResendLimitHoldsUnderConcurrency(t *testing.T) {
	t.Parallel()
	f := newMessageFixture(t, func(o *store.Options) { o.ResendMax = 5 })
	b := f.b
	_, _, err := b.store.RequestMessage(b.ctx, f.request(store.TriggerAssigned, pmsbridge.ChannelEmail))
	must(t, err)
	start := b.clock.Now()
	errs := together(100, func(i int) error {
		ch := pmsbridge.ChannelEmail
		if i%2 == 1 {
			ch = pmsbridge.ChannelSMS
		}
		_, _, err := b.store.RequestMessage(b.ctx, f.request(store.TriggerResend, ch))
		return err
	})
	ok, locked := 0, 0
	for _, err := range errs {
		var le *store.LockedError
		switch {
		case err == nil:
			ok++
		case errors.As(err, &le) && errors.Is(err, store.ErrLocked):
			locked++
			if le.Scope != "resend" || !le.Until.Equal(start.Add(time.Hour)) {
				t.Errorf("locked error %+v, want scope resend until %s", le, start.Add(time.Hour))
			}
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	if ok != 5 || locked != 95 {
		t.Errorf("%d recorded, %d refused; want 5 and 95", ok, locked)
	}
	list, err := b.store.MessagesOf(b.ctx, f.prg.ID)
	must(t, err)
	if len(list) != 6 || len(f.owed(t)) != 6 {
		t.Errorf("%d records, %d owed; want 6 (the automatic one and 5 resends)", len(list), len(f.owed(t)))
	}
	b.clock.Advance(time.Hour + time.Millisecond)
	if _, _, err := b.store.RequestMessage(b.ctx, f.request(store.TriggerResend, pmsbridge.ChannelEmail)); err != nil {
		t.Errorf("after the window: %v", err)
	}
}

// TestMessageLock: one holder at a time.
func TestMessageLock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	l, ok, err := b.store.LockMessage(b.ctx, "msg_a", time.Minute)
	if err != nil || !ok {
		t.Fatalf("first lock: %v %v", ok, err)
	}
	if _, ok, err := b.store.LockMessage(b.ctx, "msg_a", time.Minute); err != nil || ok {
		t.Errorf("second lock taken: %v %v", ok, err)
	}
	must(t, l.Release(b.ctx))
	if _, ok, err := b.store.LockMessage(b.ctx, "msg_a", time.Minute); err != nil || !ok {
		t.Errorf("after release: %v %v", ok, err)
	}
	if _, _, err := b.store.LockMessage(b.ctx, "msg:a", time.Minute); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("bad id: %v", err)
	}
}
