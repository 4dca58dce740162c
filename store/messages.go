package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/redis/go-redis/v9"
)

// Messages to patients: one record per message request (the automatic
// message of a programme's first version, or a practitioner's "send the code
// again"), so that every request is sent exactly once and its state can be
// shown. A record holds ids, the channel, the state, the masked address
// ("z***@example.com", "+61 4** *** 678") and the provider's reference (the
// email's Message-ID or Twilio's message sid); never the address or number
// itself, which stays in the patient's encrypted record, and never the code.
//
// Key layout (P is the prefix; also listed in store.go):
//
//	P msg:<msg>                     json  Message
//	P prg:<prg>:messages            zset  ids of a programme's messages, scored by request time (unix ms)
//	P {lim}:resend:pat:<pat>        zset  resends asked for a patient (score unix ms), ResendWindow
//	P lock:msg:<msg>                str   send lock of a message (holder's token), TTL
//
// A pending message is owed work (owed.go, OwedMessage, id the message id):
// marked before the record says pending, cleared after it says sent or
// failed.

// MessageTrigger says why a message was asked for.
type MessageTrigger string

// The triggers.
const (
	// TriggerAssigned: the automatic message when a programme's first
	// version is assigned. Its id is AutoMessageID: a repeated assignment
	// (a redelivered webhook) asks for the same message.
	TriggerAssigned MessageTrigger = "assigned"
	// TriggerResend: a practitioner asked to send the code again. Each
	// request is a new message, counted against the patient's resend limit.
	TriggerResend MessageTrigger = "resend"
)

// Message is one message request: the programme's code, to the patient, by
// one channel.
type Message struct {
	ID          string                 `json:"id"` // "msg_…"
	ProgrammeID string                 `json:"programme_id"`
	Version     int                    `json:"version"` // the programme version current when it was asked for
	PatientID   string                 `json:"patient_id"`
	Channel     pmsbridge.Channel      `json:"channel"`
	State       pmsbridge.MessageState `json:"state"`
	Cause       pmsbridge.Cause        `json:"cause,omitempty"`  // with MessageFailed
	Reason      string                 `json:"reason,omitempty"` // with MessageFailed: for a clinician
	// To is the address or number the message went (or goes) to, masked
	// for display; it is refreshed at each attempt, since the job reads the
	// patient's current details.
	To string `json:"to,omitempty"`
	// RequestedBy is the practitioner who assigned the programme or asked
	// for the resend ("" for none, e.g. a platform that names nobody).
	RequestedBy string         `json:"requested_by,omitempty"`
	Trigger     MessageTrigger `json:"trigger"`
	CreatedAt   time.Time      `json:"created_at"`
	// Attempts counts the attempts started; the first is marked before
	// anything is sent, so Attempts > 1 with no Ref means an earlier
	// attempt may have reached the provider (a crash, a lost answer).
	Attempts    int       `json:"attempts,omitempty"`
	AttemptedAt time.Time `json:"attempted_at,omitzero"` // when the last attempt started
	SentAt      time.Time `json:"sent_at,omitzero"`
	// Ref is the provider's reference once sent: the email's Message-ID or
	// Twilio's message sid.
	Ref       string    `json:"ref,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// AutoMessageID is the id of the automatic message of a programme version:
// the same for every request about that version, so duplicate webhooks and
// repeated forms ask for one message.
func AutoMessageID(programmeID string, version int) string {
	h := sha256.Sum256([]byte("auto:" + programmeID + ":" + strconv.Itoa(version)))
	return "msg_" + idEncoding.EncodeToString(h[:15])
}

func (s *Store) messageKey(id string) string            { return s.key("msg", id) }
func (s *Store) programmeMessagesKey(prg string) string { return s.key("prg", prg, "messages") }
func (s *Store) resendLimitKey(patientID string) string {
	return s.limitKeyOf("resend", "pat", patientID)
}

// ResendLimit is how many times a patient's code may be sent again within
// how long (Options.ResendMax, Options.ResendWindow), for the words of a
// refusal.
func (s *Store) ResendLimit() (max int, window time.Duration) {
	return s.opts.ResendMax, s.opts.ResendWindow
}

// messageProblems checks a new message request; messages never quote the
// values.
func messageProblems(m Message) []string {
	var problems []string
	if m.ID != "" && !validID(m.ID) {
		problems = append(problems, "bad message id")
	}
	if !validID(m.ProgrammeID) || m.Version < 1 {
		problems = append(problems, "bad programme id or version")
	}
	if !validID(m.PatientID) {
		problems = append(problems, "bad patient id")
	}
	if !m.Channel.Valid() {
		problems = append(problems, "channel must be email or sms")
	}
	if m.Trigger != TriggerAssigned && m.Trigger != TriggerResend {
		problems = append(problems, "unknown trigger")
	}
	if m.RequestedBy != "" && !validID(m.RequestedBy) {
		problems = append(problems, "bad practitioner id")
	}
	problems = append(problems, maskedProblems(m.To)...)
	return problems
}

// maskedProblems refuses an address that is not masked: the record must
// never hold a patient's whole address or number.
func maskedProblems(to string) []string {
	if to != "" && (!strings.Contains(to, "*") || len(to) > 200) {
		return []string{"the address must be masked"}
	}
	return nil
}

// RequestMessage records a message request and marks it owed; the caller
// then queues its send task. m.Channel, m.Trigger, the programme, version
// and patient are required; m.To (masked) and m.RequestedBy are optional;
// the state is pending and the times are set here.
//
// With TriggerAssigned the id is AutoMessageID(programme, version): if that
// message was asked for before, its record is returned as stored, with
// created false, and nothing changes. With TriggerResend the id is new, and
// the request counts against the patient's resend limit (ResendMax within
// ResendWindow, decided in one Redis step like the login limits, so of any
// number of simultaneous requests at most the limit get through): over it,
// the error is a *LockedError with Scope "resend" (errors.Is ErrLocked)
// saying when the next one is allowed, and nothing is recorded.
//
// The programme must exist and belong to the patient (ErrInvalid
// otherwise).
func (s *Store) RequestMessage(ctx context.Context, m Message) (Message, bool, error) {
	fail := func(err error) (Message, bool, error) {
		return Message{}, false, fmt.Errorf("request message: %w", err)
	}
	if problems := messageProblems(m); len(problems) > 0 {
		return fail(invalid("message", problems...))
	}
	owner, err := s.programmePatient(ctx, m.ProgrammeID)
	if err != nil {
		return fail(err)
	}
	if owner != m.PatientID {
		return fail(invalid("message", "no such programme for this patient"))
	}
	switch {
	case m.ID != "":
	case m.Trigger == TriggerAssigned:
		m.ID = AutoMessageID(m.ProgrammeID, m.Version)
	default:
		m.ID = newID("msg")
	}
	now := s.now()
	m.State, m.Cause, m.Reason = pmsbridge.MessagePending, "", ""
	m.CreatedAt, m.UpdatedAt, m.AttemptedAt, m.SentAt = now, now, time.Time{}, time.Time{}
	m.Attempts, m.Ref = 0, ""

	var res reservation
	if m.Trigger == TriggerResend {
		res, err = s.reserve(ctx, []limitKey{{scope: "resend", key: s.resendLimitKey(m.PatientID), max: s.opts.ResendMax}}, s.opts.ResendWindow)
		if err != nil {
			return fail(err)
		}
	}
	existing := func() (Message, bool, error) {
		if rerr := s.release(ctx, res); rerr != nil {
			return fail(rerr)
		}
		got, err := s.MessageOf(ctx, m.ID)
		if err != nil {
			return fail(err)
		}
		return got, false, nil
	}
	undo := func(err error) (Message, bool, error) {
		return fail(errors.Join(err, s.release(ctx, res)))
	}
	if n, err := s.rdb.Exists(ctx, s.messageKey(m.ID)).Result(); err != nil {
		return undo(err)
	} else if n > 0 {
		return existing()
	}
	// The indexes first (store.go's rule): the programme's list, and the
	// owed-work entry before the record says pending.
	pipe := s.rdb.Pipeline()
	pipe.ZAddNX(ctx, s.programmeMessagesKey(m.ProgrammeID), redis.Z{Score: float64(now.UnixMilli()), Member: m.ID})
	pipe.ZAddNX(ctx, s.owedKey(OwedMessage), redis.Z{Score: float64(now.UnixMilli()), Member: m.ID})
	if _, err := pipe.Exec(ctx); err != nil {
		return undo(err)
	}
	ok, err := s.rdb.SetNX(ctx, s.messageKey(m.ID), mustJSON(m), 0).Result()
	if err != nil {
		return undo(err)
	}
	if !ok {
		return existing() // a concurrent request for the same message won
	}
	return m, true, nil
}

// MessageOf returns the message request id; ErrNotFound when there is none.
func (s *Store) MessageOf(ctx context.Context, id string) (Message, error) {
	var m Message
	if !validID(id) {
		return m, fmt.Errorf("message %q: %w", id, ErrNotFound)
	}
	if err := getJSON(ctx, s.rdb, s.messageKey(id), &m); err != nil {
		return m, fmt.Errorf("message %s: %w", id, err)
	}
	return m, nil
}

// MessagesOf returns every message asked for on a programme, oldest first
// (code_delivery in the patient JSON); empty when none. Two round trips.
func (s *Store) MessagesOf(ctx context.Context, programmeID string) ([]Message, error) {
	out := []Message{}
	if !validID(programmeID) {
		return out, nil
	}
	ids, err := s.rdb.ZRange(ctx, s.programmeMessagesKey(programmeID), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("messages of %s: %w", programmeID, err)
	}
	keys := make([]string, 0, len(ids))
	for _, id := range ids {
		if validID(id) {
			keys = append(keys, s.messageKey(id))
		}
	}
	// An index entry whose record was never written (a crash in between)
	// is skipped by getMany.
	ms, err := getMany[Message](ctx, s.rdb, keys)
	if err != nil {
		return nil, fmt.Errorf("messages of %s: %w", programmeID, err)
	}
	return append(out, ms...), nil
}

// errMessageSent stops an update of a message that is already sent: sent is
// final, like an uploaded PDF.
var errMessageSent = errors.New("message already sent")

// updateMessage applies fn to a message that is not sent yet and returns
// the record as it then stands (a sent one unchanged, without calling fn).
func (s *Store) updateMessage(ctx context.Context, id string, fn func(*Message)) (Message, error) {
	if !validID(id) {
		return Message{}, fmt.Errorf("message %q: %w", id, ErrNotFound)
	}
	var sent Message
	m, err := updateJSON(ctx, s.rdb, s.messageKey(id), func(m *Message) error {
		if m.State == pmsbridge.MessageSent {
			sent = *m
			return errMessageSent
		}
		fn(m)
		m.UpdatedAt = s.now()
		return nil
	})
	if errors.Is(err, errMessageSent) {
		return sent, nil // as read: sent is final
	}
	if err != nil {
		return m, fmt.Errorf("message %s: %w", id, err)
	}
	return m, nil
}

// StartMessageAttempt marks that an attempt to send message id starts now,
// to the masked address to, before anything is sent: Attempts counts it,
// the state is pending (and owed) again if it was failed. It returns the
// record as it now stands; a message already sent is returned unchanged
// (State MessageSent): then there is nothing to send.
func (s *Store) StartMessageAttempt(ctx context.Context, id, to string) (Message, error) {
	if p := maskedProblems(to); len(p) > 0 {
		return Message{}, fmt.Errorf("message %s: %w", id, invalid("message", p...))
	}
	if err := s.MarkOwed(ctx, OwedMessage, id); err != nil {
		return Message{}, err
	}
	m, err := s.updateMessage(ctx, id, func(m *Message) {
		m.State, m.Cause, m.Reason = pmsbridge.MessagePending, "", ""
		m.Attempts++
		m.AttemptedAt = s.now()
		if to != "" {
			m.To = to
		}
	})
	if err == nil && m.State == pmsbridge.MessageSent {
		_ = s.ClearOwed(ctx, OwedMessage, id)
	}
	return m, err
}

// MessageSent records that message id was accepted by the provider, with
// its reference (Message-ID or Twilio sid). Sent is final: a message sent
// before keeps its first reference and time.
func (s *Store) MessageSent(ctx context.Context, id, ref string) (Message, error) {
	m, err := s.updateMessage(ctx, id, func(m *Message) {
		m.State, m.Cause, m.Reason = pmsbridge.MessageSent, "", ""
		m.SentAt, m.Ref = s.now(), ref
	})
	if err != nil {
		return m, err
	}
	return m, s.ClearOwed(ctx, OwedMessage, id)
}

// MessageFailed records that message id failed for good, with the cause
// and a reason a clinician understands. A sent message stays sent.
func (s *Store) MessageFailed(ctx context.Context, id string, cause pmsbridge.Cause, reason string) (Message, error) {
	m, err := s.updateMessage(ctx, id, func(m *Message) {
		m.State, m.Cause, m.Reason = pmsbridge.MessageFailed, cause, reason
	})
	if err != nil {
		return m, err
	}
	return m, s.ClearOwed(ctx, OwedMessage, id)
}

// ResetMessage puts a failed message back to pending (and owed), for a
// replay: support queues its task again after this. A sent message stays
// sent.
func (s *Store) ResetMessage(ctx context.Context, id string) (Message, error) {
	if err := s.MarkOwed(ctx, OwedMessage, id); err != nil {
		return Message{}, err
	}
	m, err := s.updateMessage(ctx, id, func(m *Message) {
		m.State, m.Cause, m.Reason = pmsbridge.MessagePending, "", ""
	})
	if err == nil && m.State == pmsbridge.MessageSent {
		_ = s.ClearOwed(ctx, OwedMessage, id)
	}
	return m, err
}

// LockMessage takes the send lock of message id for ttl. ok is false, with
// a nil lock, when another process holds it.
func (s *Store) LockMessage(ctx context.Context, id string, ttl time.Duration) (*Lock, bool, error) {
	if !validID(id) {
		return nil, false, fmt.Errorf("lock message: %w", invalid("lock", "bad message id"))
	}
	return s.tryLock(ctx, s.key("lock", "msg", id), ttl)
}
