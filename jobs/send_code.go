package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/mail"
	"github.com/physitrack/pmsbridge/sms"
	"github.com/physitrack/pmsbridge/store"
)

// TypeSendCode sends a programme's access code to its patient: one message
// request (store.Message), by email or SMS as the request says. Never
// rename.
const TypeSendCode = "message:send_code"

// SendCodePayload names the message request. Ids and the channel only:
// never an address, a number, a name or the code (support staff and
// dashboards read payloads); the handler reads the rest from the records.
type SendCodePayload struct {
	MessageID   string            `json:"message_id"`
	ProgrammeID string            `json:"programme_id"`
	Version     int               `json:"version"`
	PatientID   string            `json:"patient_id"`
	Channel     pmsbridge.Channel `json:"channel"`
	// PractitionerID is who asked for the message (the failure ledger
	// files it under them); "" when nobody was named.
	PractitionerID string `json:"practitioner_id,omitempty"`
}

// SendCodeTaskID is the deterministic task id of a message request: one
// task per request, whoever queues it (the request, the reconciler, a
// replay).
func SendCodeTaskID(messageID string) string { return "code:" + messageID }

func sendCodePayload(m store.Message) SendCodePayload {
	return SendCodePayload{MessageID: m.ID, ProgrammeID: m.ProgrammeID, Version: m.Version, PatientID: m.PatientID,
		Channel: m.Channel, PractitionerID: m.RequestedBy}
}

func newSendCodeTask(m store.Message) *asynq.Task {
	return asynq.NewTask(TypeSendCode, mustPayload(sendCodePayload(m)))
}

// enqueueSendCode queues the send task of message request m unless a task
// with its id exists in any state: a retrying one keeps its backoff (a
// duplicate webhook must not hurry it), a failed one is support's to
// replay.
func (c *Client) enqueueSendCode(ctx context.Context, m store.Message) (string, error) {
	id := SendCodeTaskID(m.ID)
	_, err := c.enqueueIfAbsent(ctx, newSendCodeTask(m), id)
	return id, err
}

// codeContent is what a code message says, read from the records.
type codeContent struct {
	prog         pmsbridge.Programme
	patient      store.Patient
	clinic       string
	practitioner string
}

func (h *Handlers) sendCode(ctx context.Context, t *asynq.Task) error {
	var p SendCodePayload
	if err := decode(t, &p); err != nil {
		return err
	}
	m, err := h.Store.MessageOf(ctx, p.MessageID)
	if errors.Is(err, store.ErrNotFound) {
		return pmsbridge.Errorf(pmsbridge.CauseInvalidPayload, "Message %s does not exist.", p.MessageID)
	} else if err != nil {
		return err
	}
	if m.State == pmsbridge.MessageSent {
		return nil // done before (a redelivered task)
	}
	c, err := h.codeContent(ctx, m)
	if err != nil {
		return err
	}
	// One attempt of a message at a time, even if asynq hands a crashed
	// worker's task to another while the first is somehow still running.
	lock, err := h.hold(ctx, "message", func() (*store.Lock, bool, error) {
		return h.Store.LockMessage(ctx, m.ID, workLockTTL)
	})
	if err != nil {
		return err
	}
	defer lock.release(ctx)
	switch m.Channel {
	case pmsbridge.ChannelEmail:
		return h.sendCodeEmail(ctx, m, c, lock)
	case pmsbridge.ChannelSMS:
		return h.sendCodeSMS(ctx, m, c, lock)
	}
	return pmsbridge.Errorf(pmsbridge.CauseInvalidPayload, "Message %s has no known channel.", m.ID)
}

// codeContent reads the programme version, the patient (decrypted), the
// clinic's and the practitioner's names.
func (h *Handlers) codeContent(ctx context.Context, m store.Message) (codeContent, error) {
	var c codeContent
	var err error
	c.prog, err = h.Store.GetProgramme(ctx, m.ProgrammeID, m.Version)
	if errors.Is(err, store.ErrNotFound) {
		return c, pmsbridge.Errorf(pmsbridge.CauseInvalidPayload, "Programme %s version %d does not exist.", m.ProgrammeID, m.Version)
	} else if err != nil {
		return c, err
	}
	c.patient, err = h.Store.GetPatient(ctx, c.prog.PatientID)
	if errors.Is(err, store.ErrNotFound) {
		return c, pmsbridge.Errorf(pmsbridge.CauseInvalidPayload, "The programme's patient %s does not exist.", c.prog.PatientID)
	} else if err != nil {
		return c, fmt.Errorf("programme's patient: %w", err)
	}
	sub, err := h.Store.GetSubscription(ctx, c.patient.SubscriptionID)
	if err != nil {
		return c, fmt.Errorf("patient's subscription: %w", err)
	}
	c.clinic = sub.Name
	if pr, err := h.Store.GetPractitioner(ctx, c.prog.PractitionerID); err == nil {
		c.practitioner = pr.Name
	} else if !errors.Is(err, store.ErrNotFound) {
		return c, fmt.Errorf("programme's practitioner: %w", err)
	}
	return c, nil
}

// notSetUp is the failure of a message by a channel this deployment has no
// settings for: permanent (settings change only with a restart; support
// replays after).
func notSetUp(ch pmsbridge.Channel) error {
	what, keys := "Email", "mail.smtp_url and mail.from"
	if ch == pmsbridge.ChannelSMS {
		what, keys = "Text messaging", "sms.twilio_account_sid, sms.twilio_auth_token and sms.from"
	}
	return pmsbridge.Errorf(pmsbridge.CauseDeliveryRejected,
		"%s is not set up on this pmsbridge, so the code could not be sent that way. Give the code to the patient yourself or use the other channel; support can set up %s, then replay.", what, keys)
}

func (h *Handlers) sendCodeEmail(ctx context.Context, m store.Message, c codeContent, lock *workLock) error {
	if h.Mail == nil {
		return notSetUp(pmsbridge.ChannelEmail)
	}
	to := strings.TrimSpace(c.patient.Email)
	if to == "" {
		return pmsbridge.Errorf(pmsbridge.CauseNoContact,
			"The patient has no email address on record, so the code could not be sent by email. Add it in Cliniko and refresh the patient, send the code by SMS, or give it to the patient yourself.")
	}
	// The Message-ID is the request's own: a resend after a crash or a lost
	// answer carries the same one, and mailboxes show one message.
	messageID, err := h.Mail.MessageID(m.ID)
	if err != nil {
		return &pmsbridge.Error{Cause: pmsbridge.CauseInternal, Message: "The email could not be put together.", Err: err}
	}
	msg, err := mail.CodeEmail{Clinic: c.clinic, Practitioner: c.practitioner, Code: c.prog.Code, AccessURL: h.AccessURL}.Compose(to, messageID)
	if err != nil {
		return &pmsbridge.Error{Cause: pmsbridge.CauseInternal, Message: "The email could not be put together.", Err: err}
	}
	rec, err := h.Store.StartMessageAttempt(ctx, m.ID, mail.MaskAddress(to))
	if err != nil || rec.State == pmsbridge.MessageSent {
		return err
	}
	if err := lock.check(ctx); err != nil {
		return err
	}
	receipt, err := h.Mail.Send(ctx, msg)
	if err != nil {
		return fmt.Errorf("send code by email: %w", err)
	}
	// Recorded even if the task's context ends now: the message is out.
	_, err = h.Store.MessageSent(context.WithoutCancel(ctx), m.ID, receipt.MessageID)
	return err
}

func (h *Handlers) sendCodeSMS(ctx context.Context, m store.Message, c codeContent, lock *workLock) error {
	if h.SMS == nil {
		return notSetUp(pmsbridge.ChannelSMS)
	}
	// no_contact without a number; delivery_rejected with a reason for one
	// that cannot take texts (a landline, junk).
	to, err := sms.MobileE164(c.patient.Mobile, h.Region)
	if err != nil {
		return fmt.Errorf("send code by sms: %w", err)
	}
	text, err := sms.CodeText{Clinic: c.clinic, Code: c.prog.Code, AccessURL: h.AccessURL}.Compose()
	if err != nil {
		return &pmsbridge.Error{Cause: pmsbridge.CauseInternal, Message: "The text message could not be put together.", Err: err}
	}
	rec, err := h.Store.StartMessageAttempt(ctx, m.ID, sms.MaskNumber(to))
	if err != nil || rec.State == pmsbridge.MessageSent {
		return err
	}
	// Twilio has no idempotency key: when an earlier attempt of this
	// request may have reached it, SendOnce looks for that message first,
	// among those not claimed by the programme's other requests (a resend
	// of the same code has the same text).
	var exclude []string
	if rec.Attempts > 1 {
		others, err := h.Store.MessagesOf(ctx, m.ProgrammeID)
		if err != nil {
			return err
		}
		for _, o := range others {
			if o.ID != m.ID && o.Channel == pmsbridge.ChannelSMS && o.Ref != "" {
				exclude = append(exclude, o.Ref)
			}
		}
	}
	if err := lock.check(ctx); err != nil {
		return err
	}
	sent, err := h.SMS.SendOnce(ctx, sms.Message{To: to, Body: text.Body},
		sms.Attempt{Retry: rec.Attempts > 1, Since: rec.CreatedAt, Exclude: exclude})
	if err != nil {
		return fmt.Errorf("send code by sms: %w", err)
	}
	if sent.Found {
		h.Log.Info("code text found from an earlier attempt; not sent again", "message_id", m.ID, "sid", sent.SID)
	}
	_, err = h.Store.MessageSent(context.WithoutCancel(ctx), m.ID, sent.SID)
	return err
}

// settleMessage settles a message request that was pending (the
// reconciler's OwedWork for store.OwedMessage).
func (h *Handlers) settleMessage(ctx context.Context, id string) (Settled, error) {
	var m store.Message
	pending := func() (bool, error) {
		var err error
		m, err = h.Store.MessageOf(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return err == nil && m.State == pmsbridge.MessagePending, err
	}
	return h.settle(ctx, TypeSendCode, SendCodeTaskID(id), pending, func() (*asynq.Task, error) { return newSendCodeTask(m), nil })
}
