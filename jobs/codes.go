package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/mail"
	"github.com/physitrack/pmsbridge/sms"
	"github.com/physitrack/pmsbridge/store"
)

// CodesConfig says what this deployment can send codes by.
type CodesConfig struct {
	// Email is true when email is configured (mail.smtp_url).
	Email bool
	// SMS is true when Twilio is configured (sms.*).
	SMS bool
	// Region is the deployment's region code: patients' local mobile
	// numbers are read in its numbering plan (au, nz, ca, us, ie, uk).
	Region string
}

// Codes decides which messages send patients their programme codes and
// asks for them: it records each message request (store.Message) and
// queues its send task (TypeSendCode), which sends it exactly once. It is
// what the assign and "send the code again" workflows call; it does not
// check who may act on a patient (the caller has). Safe for concurrent use.
type Codes struct {
	st  *store.Store
	c   *Client
	cfg CodesConfig
}

// NewCodes returns Codes that queue through c (and its store).
func NewCodes(c *Client, cfg CodesConfig) *Codes {
	return &Codes{st: c.st, c: c, cfg: cfg}
}

// Config is what the deployment can send codes by.
func (c *Codes) Config() CodesConfig { return c.cfg }

// ChannelProblem says why a channel cannot send a patient's code.
type ChannelProblem string

// The channel problems; "" means none.
const (
	// ProblemUnknownChannel: neither email nor sms.
	ProblemUnknownChannel ChannelProblem = "unknown_channel"
	// ProblemNotConfigured: this deployment has no settings for the
	// channel (mail.* or sms.*).
	ProblemNotConfigured ChannelProblem = "not_configured"
	// ProblemNoAddress: the patient has no email address, or no mobile
	// number, on record.
	ProblemNoAddress ChannelProblem = "no_address"
	// ProblemNotAMobile: the number on record cannot take text messages
	// (a landline, or not a valid number in the region's plan).
	ProblemNotAMobile ChannelProblem = "not_a_mobile"
)

// ChannelStatus says whether a channel can send a patient's code now; the
// page's "Send code by email" / "by SMS" buttons are disabled with Why when
// it cannot.
type ChannelStatus struct {
	Channel pmsbridge.Channel
	// Problem is "" when the channel can be used.
	Problem ChannelProblem
	// To is where the code would go, masked ("z***@example.com",
	// "+61 4** *** 678"); "" when there is no usable address.
	To string
}

// OK reports whether the channel can be used.
func (s ChannelStatus) OK() bool { return s.Problem == "" }

// Why is a sentence for a practitioner saying why the channel cannot be
// used ("" when it can).
func (s ChannelStatus) Why() string {
	email := s.Channel == pmsbridge.ChannelEmail
	switch s.Problem {
	case "":
		return ""
	case ProblemUnknownChannel:
		return "Codes can be sent by email or by SMS."
	case ProblemNotConfigured:
		if email {
			return "Email is not set up on this pmsbridge."
		}
		return "Text messages are not set up on this pmsbridge."
	case ProblemNoAddress:
		if email {
			return "The patient has no email address on record. Add it in Cliniko, then refresh the patient."
		}
		return "The patient has no mobile number on record. Add it in Cliniko, then refresh the patient."
	case ProblemNotAMobile:
		return "The number on record (" + s.To + ") is not a mobile number that can receive text messages."
	}
	return "This channel cannot be used."
}

// ChannelError is SendAgain's error when the channel cannot send the
// patient's code (nothing was recorded or queued). Its ErrorMessage is
// ChannelStatus.Why.
type ChannelError struct{ Status ChannelStatus }

func (e *ChannelError) Error() string {
	return fmt.Sprintf("send code by %s: %s", e.Status.Channel, e.Status.Problem)
}

// ErrorMessage is the sentence for the practitioner (pmsbridge.MessageOf).
func (e *ChannelError) ErrorMessage() string { return e.Status.Why() }

// Channel says whether ch can send patient p's code now.
func (c *Codes) Channel(p store.Patient, ch pmsbridge.Channel) ChannelStatus {
	s := ChannelStatus{Channel: ch}
	switch ch {
	case pmsbridge.ChannelEmail:
		addr := strings.TrimSpace(p.Email)
		if addr != "" {
			s.To = mail.MaskAddress(addr)
		}
		switch {
		case !c.cfg.Email:
			s.Problem = ProblemNotConfigured
		case addr == "":
			s.Problem = ProblemNoAddress
		}
	case pmsbridge.ChannelSMS:
		number, err := sms.MobileE164(p.Mobile, c.cfg.Region)
		switch {
		case err == nil:
			s.To = sms.MaskNumber(number)
		case strings.TrimSpace(p.Mobile) != "":
			s.To = sms.MaskNumber(p.Mobile)
		}
		switch {
		case !c.cfg.SMS:
			s.Problem = ProblemNotConfigured
		case strings.TrimSpace(p.Mobile) == "":
			s.Problem = ProblemNoAddress
		case err != nil:
			s.Problem = ProblemNotAMobile
		}
	default:
		s.Problem = ProblemUnknownChannel
	}
	return s
}

// Channels is Channel for email, then SMS: the page's two buttons.
func (c *Codes) Channels(p store.Patient) []ChannelStatus {
	return []ChannelStatus{c.Channel(p, pmsbridge.ChannelEmail), c.Channel(p, pmsbridge.ChannelSMS)}
}

// AutoChannel is the channel of the automatic message for patient p: email
// when email is configured and p has an address, else SMS when SMS is
// configured and p has a mobile number, else none (false).
func (c *Codes) AutoChannel(p store.Patient) (pmsbridge.Channel, bool) {
	for _, ch := range []pmsbridge.Channel{pmsbridge.ChannelEmail, pmsbridge.ChannelSMS} {
		if c.Channel(p, ch).OK() {
			return ch, true
		}
	}
	return "", false
}

// Assignment is what Assigned did about a programme version's code.
type Assignment struct {
	// Message is the automatic message: asked for now, or by an earlier
	// delivery of the same assignment (a duplicate webhook: nothing more is
	// sent). Nil when there is none.
	Message *store.Message
	// HandOver is true for a first version that no channel can send: the
	// page tells the practitioner to give the code to the patient
	// themselves, and shows it large.
	HandOver bool
}

// Assigned is called once a programme version is stored (the assign form
// and the webhook alike, before store.Durable so that the acknowledgement
// covers the message request too). For version 1 it asks for the
// automatic message by AutoChannel, under the version's fixed message id
// (store.AutoMessageID), so a repeated call asks for nothing more; later
// versions keep the code and send nothing (SendAgain sends on request).
// The request is recorded before its task is queued: if queueing fails
// the error is returned, and the message stays owed, so the reconciler
// queues it within a few minutes.
func (c *Codes) Assigned(ctx context.Context, prog pmsbridge.Programme) (Assignment, error) {
	if prog.Version != 1 {
		return Assignment{}, nil
	}
	p, err := c.st.GetPatient(ctx, prog.PatientID)
	if err != nil {
		return Assignment{}, fmt.Errorf("code on assign: %w", err)
	}
	ch, ok := c.AutoChannel(p)
	if !ok {
		return Assignment{HandOver: true}, nil
	}
	m, _, err := c.st.RequestMessage(ctx, store.Message{ProgrammeID: prog.ID, Version: prog.Version, PatientID: p.ID,
		Channel: ch, Trigger: store.TriggerAssigned, RequestedBy: prog.PractitionerID, To: c.Channel(p, ch).To})
	if err != nil {
		return Assignment{}, fmt.Errorf("code on assign: %w", err)
	}
	a := Assignment{Message: &m}
	if m.State != pmsbridge.MessagePending {
		return a, nil // sent or failed before: a duplicate
	}
	if _, err := c.c.enqueueSendCode(ctx, m); err != nil {
		return a, fmt.Errorf("code on assign: %w", err)
	}
	return a, nil
}

// SendAgain asks for one more message with the code of programme
// programmeID to its patient by channel ch, for practitioner by. Errors:
// a *ChannelError (errors.As) when the channel cannot work for this
// patient (not configured, no address, not a mobile); a *store.LockedError
// (errors.Is store.ErrLocked) when the patient's code was sent again as
// often as allowed within the window (5 an hour by default), with the time
// the next is allowed; store.ErrNotFound for an unknown programme. Nothing
// is recorded or queued then. Like Assigned, a failure to queue after the
// request was recorded is returned and left to the reconciler.
func (c *Codes) SendAgain(ctx context.Context, programmeID string, ch pmsbridge.Channel, by string) (store.Message, error) {
	if !ch.Valid() {
		return store.Message{}, &ChannelError{Status: ChannelStatus{Channel: ch, Problem: ProblemUnknownChannel}}
	}
	prog, err := c.st.GetProgramme(ctx, programmeID, 0)
	if err != nil {
		return store.Message{}, fmt.Errorf("send code again: %w", err)
	}
	p, err := c.st.GetPatient(ctx, prog.PatientID)
	if err != nil {
		return store.Message{}, fmt.Errorf("send code again: %w", err)
	}
	status := c.Channel(p, ch)
	if !status.OK() {
		return store.Message{}, &ChannelError{Status: status}
	}
	m, _, err := c.st.RequestMessage(ctx, store.Message{ProgrammeID: prog.ID, Version: prog.Version, PatientID: p.ID,
		Channel: ch, Trigger: store.TriggerResend, RequestedBy: by, To: status.To})
	if err != nil {
		return store.Message{}, fmt.Errorf("send code again: %w", err)
	}
	if _, err := c.c.enqueueSendCode(ctx, m); err != nil {
		return m, fmt.Errorf("send code again: %w", err)
	}
	return m, nil
}

// IsResendLimit reports whether err is SendAgain's resend limit, and until
// when it holds.
func IsResendLimit(err error) (*store.LockedError, bool) {
	var le *store.LockedError
	if errors.As(err, &le) && le.Scope == "resend" {
		return le, true
	}
	return nil, false
}
