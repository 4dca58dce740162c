package flows

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// SendCode is "Send code by email" / "Send code by SMS" on a programme of
// patient p (whom pr may open): one more message with the programme's code
// to the patient by channel ch, sent exactly once by its job. It is
// audited. Refusals, with nothing recorded or queued:
//
//   - *Error NotFound: p has no such programme;
//   - *Error Invalid: the channel cannot work for this patient (not email
//     or sms, not set up here, no address on record, not a mobile); the
//     message says which and what to do;
//   - *Error TooMany: the patient's codes were sent again as often as
//     allowed (store.Options.ResendMax per ResendWindow); RetryAt, and the
//     message in the clinic's time, say when the next may be sent.
//
// Once the request is recorded it is answered as asked for, even if its
// task could not be queued (the reconciler queues an owed message within a
// minute or two): an error then would make the practitioner ask again and
// the patient get two.
func (f *Flows) SendCode(ctx context.Context, pr store.Practitioner, p store.Patient, programmeID string, ch pmsbridge.Channel) (store.Message, error) {
	prog, err := f.Store.GetProgramme(ctx, programmeID, 0)
	if errors.Is(err, store.ErrNotFound) || err == nil && prog.PatientID != p.ID {
		return store.Message{}, &Error{Code: NotFound, Message: "The patient has no such programme.", Err: err}
	} else if err != nil {
		return store.Message{}, err
	}
	m, err := f.Codes.SendAgain(ctx, prog.ID, ch, pr.ID)
	var unusable *jobs.ChannelError
	if errors.As(err, &unusable) {
		return m, &Error{Code: Invalid, Message: unusable.ErrorMessage(), Err: err}
	}
	if limit, ok := jobs.IsResendLimit(err); ok {
		return m, f.resendLimit(ctx, p, limit)
	}
	if err != nil && m.ID == "" {
		return m, err
	}
	if err != nil {
		f.logger(ctx).Warn("code message recorded but not queued; the reconciler queues it", "message_id", m.ID, "err", err)
	}
	f.audit(ctx, pr.ID, p.ID, "programme.code.sent_again", "by "+string(ch)+" ("+m.ID+")")
	return m, f.Store.Durable(ctx)
}

// resendLimit is SendCode's refusal when the patient's resend limit holds
// until limit.Until, in words with the clinic's time.
func (f *Flows) resendLimit(ctx context.Context, p store.Patient, limit *store.LockedError) error {
	ct := f.clinicTime(ctx, p.SubscriptionID)
	// The next minute on the clock, so that "at 10:42" is never early.
	at := limit.Until.Add(time.Minute - time.Nanosecond).Truncate(time.Minute)
	max, window := f.Store.ResendLimit()
	return &Error{Code: TooMany, RetryAt: limit.Until, Err: limit, Message: fmt.Sprintf(
		"This patient's code was sent again %d times in the last %s, as often as pmsbridge allows. You can send it again %s, or give the code to the patient yourself.",
		max, spanWords(window), ct.At(at, f.Now()))}
}

// spanWords says a window in words: "hour", "2 hours", "30 minutes".
func spanWords(d time.Duration) string {
	switch {
	case d == time.Hour:
		return "hour"
	case d%time.Hour == 0:
		return strconv.Itoa(int(d/time.Hour)) + " hours"
	case d >= time.Minute:
		return strconv.Itoa(int(d/time.Minute)) + " minutes"
	}
	return d.String()
}

// CodeChannels says whether each channel (email, then SMS) can send patient
// p's code now, and why not: the page's send buttons.
func (f *Flows) CodeChannels(p store.Patient) []jobs.ChannelStatus { return f.Codes.Channels(p) }
