package sms

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/physitrack/pmsbridge"
)

// Operations, as Error.Op names them.
const (
	OpNumber  = "number"  // reading the patient's number (MobileE164); nothing was sent
	OpCompose = "compose" // the message itself cannot be sent; nothing was sent
	OpSend    = "send"    // POST Messages.json
	OpLookup  = "lookup"  // GET Messages.json (SendOnce's check for an earlier attempt)
)

// Error is a failed SMS operation. Every error of this package is (or
// wraps) an *Error, so pmsbridge.CauseOf and pmsbridge.MessageOf work on it.
// Its text holds the operation, the HTTP status, Twilio's error code and
// message with phone numbers masked (+61 4** *** 678); never the auth
// token, never a full phone number, never the message body.
type Error struct {
	// Op is the operation (OpSend, OpLookup, OpNumber, OpCompose).
	Op string
	// Status is the HTTP status Twilio answered; 0 when there was no answer.
	Status int
	// Code is Twilio's error code (21211, 21610, 20429, ...); 0 when none.
	Code int
	// Cause is pmsbridge.CauseDeliveryRejected (Twilio refused for good: a
	// 4xx, or a number that can never take texts),
	// pmsbridge.CauseDeliveryUnavailable (429, 5xx, no answer: retry),
	// pmsbridge.CauseNoContact (no number at all) or pmsbridge.CauseInternal
	// (a caller mistake: unknown region, empty body).
	Cause pmsbridge.Cause
	// Setup is true when the failure lies in pmsbridge's own SMS set-up
	// (credentials, sender, the account's permissions) rather than in this
	// patient's number: every message fails until support fixes sms.*.
	Setup bool
	// To is the recipient's number, masked.
	To string
	// Detail is Twilio's message (numbers masked) or our own explanation.
	Detail string
	// RetryAt is when to try again, from Twilio's Retry-After header; zero
	// when Twilio gave none.
	RetryAt time.Time
	// Err is the underlying network or context error, for errors.Is; nil for
	// Twilio's refusals.
	Err error

	reason string // reasonNotANumber, reasonNotAMobile (MobileE164)
}

const (
	reasonNotANumber = "not_a_number"
	reasonNotAMobile = "not_a_mobile"
)

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("sms ")
	b.WriteString(e.Op)
	if e.To != "" {
		b.WriteString(" to ")
		b.WriteString(e.To)
	}
	b.WriteString(": ")
	if e.Status != 0 {
		fmt.Fprintf(&b, "status %d: ", e.Status)
	}
	if e.Code != 0 {
		fmt.Fprintf(&b, "twilio error %d: ", e.Code)
	}
	b.WriteString(string(e.Cause))
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if !e.RetryAt.IsZero() {
		b.WriteString("; retry at ")
		b.WriteString(e.RetryAt.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// Unwrap returns the underlying network or context error, if any.
func (e *Error) Unwrap() error { return e.Err }

// ErrorCause returns the cause code; pmsbridge.CauseOf uses it.
func (e *Error) ErrorCause() pmsbridge.Cause { return e.Cause }

// RetryTime is when Twilio asked us to try again (zero when it did not
// say).
func (e *Error) RetryTime() time.Time { return e.RetryAt }

// ErrorMessage returns a sentence for practitioners and support staff
// saying what went wrong and what to do; pmsbridge.MessageOf uses it. It
// holds the masked number at most.
func (e *Error) ErrorMessage() string {
	to := e.To
	if to == "" {
		to = "the patient's mobile number"
	}
	switch {
	case e.Cause == pmsbridge.CauseNoContact:
		return "The patient has no mobile number on record. Add it in the patient's record, or give the code to the patient yourself."
	case e.reason == reasonNotANumber:
		return "The mobile number on record (" + to + ") is not a valid phone number. Check it with the patient and correct it in the patient's record, then send the code again."
	case e.reason == reasonNotAMobile:
		return "The number on record (" + to + ") is not a mobile number, so it cannot receive text messages. Add the patient's mobile number, or send the code by email."
	case e.Cause == pmsbridge.CauseDeliveryUnavailable:
		return "The text message could not be sent just now: Twilio, the text message service, was busy or could not be reached. It is tried again automatically."
	case e.Cause == pmsbridge.CauseInternal:
		return "The text message could not be put together (a fault in pmsbridge). Support has the details."
	}
	if c, ok := twilioCodes[e.Code]; ok {
		return strings.ReplaceAll(c.reason, "{to}", to)
	}
	if e.Setup {
		return "The text message could not be sent: Twilio refused pmsbridge's SMS settings. Support must check them, then send the code again."
	}
	return fmt.Sprintf("Twilio, the text message service, refused to send the text message to %s (Twilio error %d). Support has the details; you can send the code by email or give it to the patient yourself.", to, e.Code)
}

// twilioCode is what a Twilio error code means to us.
type twilioCode struct {
	setup  bool   // pmsbridge's SMS set-up is at fault, not the number
	reason string // for practitioners; {to} is the masked number
}

// twilioCodes are the error codes Twilio answers POST Messages.json with
// that we explain; others get a generic sentence with the code. It is the
// one table of Twilio codes.
var twilioCodes = map[int]twilioCode{
	20003: {setup: true, reason: "The text message could not be sent: Twilio did not accept pmsbridge's account SID and auth token. Support must check the SMS settings, then send the code again."},
	20404: {setup: true, reason: "The text message could not be sent: Twilio does not know the account in pmsbridge's SMS settings. Support must check them, then send the code again."},
	21211: {reason: "The mobile number {to} is not a valid phone number. Check it with the patient and correct it in the patient's record, then send the code again."},
	21212: {setup: true, reason: "The text message could not be sent: the sender number in pmsbridge's SMS settings is not a valid phone number. Support must fix it."},
	21408: {setup: true, reason: "The text message could not be sent: texts to the country of {to} are not enabled in the clinic's Twilio account. Support can enable that country (Twilio's geographic permissions), then send the code again."},
	21602: {reason: "The text message could not be sent because it was empty (a fault in pmsbridge). Support has the details."},
	21603: {setup: true, reason: "The text message could not be sent: pmsbridge's SMS settings name no sender. Support must fix them."},
	21604: {reason: "The text message could not be sent because it had no recipient (a fault in pmsbridge). Support has the details."},
	21606: {setup: true, reason: "The text message could not be sent: the sender number in pmsbridge's SMS settings cannot send texts from this Twilio account. Support must fix it."},
	21608: {setup: true, reason: "The text message could not be sent: the clinic's Twilio account is a trial account, which may only text numbers verified in Twilio. Support can upgrade the account or verify {to}."},
	21610: {reason: "The patient has unsubscribed from text messages from this sender (they replied STOP), so no text can reach {to}. They can text START to the same number to receive texts again; until then, send the code by email or give it to them yourself."},
	21612: {reason: "Twilio cannot reach {to} by text message from this sender (the number does not take texts or is not reachable from it). Send the code by email or give it to the patient yourself."},
	21614: {reason: "The number {to} is not a mobile number, so it cannot receive text messages. Add the patient's mobile number, or send the code by email."},
	21617: {reason: "The text message was too long for Twilio (a fault in pmsbridge). Support has the details."},
	21701: {setup: true, reason: "The text message could not be sent: the messaging service in pmsbridge's SMS settings does not exist in this Twilio account. Support must fix it."},
	21705: {setup: true, reason: "The text message could not be sent: the messaging service in pmsbridge's SMS settings is not valid. Support must fix it."},
}

// CauseForStatus maps a Twilio HTTP status to a cause. It is the one place
// where statuses become causes: 429 and 5xx (and no answer, status 0) are
// transient; any other 4xx is a permanent refusal.
func CauseForStatus(status int) pmsbridge.Cause {
	switch {
	case status == 429, status >= 500, status == 0:
		return pmsbridge.CauseDeliveryUnavailable
	case status >= 400:
		return pmsbridge.CauseDeliveryRejected
	}
	// A 1xx/2xx/3xx where a success was expected: an answer we cannot use.
	return pmsbridge.CauseDeliveryUnavailable
}

// twilioBody is Twilio's error JSON.
type twilioBody struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

// statusError builds the *Error of a non-success answer. Twilio's message
// may quote the phone number ("The 'To' number +61412345678 is not a valid
// phone number."): every number in it is masked.
func statusError(op, to string, status int, body []byte, retryAt time.Time) *Error {
	e := &Error{Op: op, Status: status, Cause: CauseForStatus(status), To: to, RetryAt: retryAt}
	var b twilioBody
	if json.Unmarshal(body, &b) == nil {
		e.Code = b.Code
		e.Detail = truncate(maskNumbers(b.Message), maxDetail)
	}
	if status == 401 || status == 403 || status == 404 {
		e.Setup = true
	}
	if c, ok := twilioCodes[e.Code]; ok && c.setup {
		e.Setup = true
	}
	return e
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date.
func retryAfter(v string, now time.Time) time.Time {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return now.Add(time.Duration(n) * time.Second).UTC()
	}
	if t, err := time.Parse(time.RFC1123, v); err == nil {
		return t.UTC()
	}
	return time.Time{}
}

// maxDetail bounds how much of Twilio's message an Error keeps.
const maxDetail = 300

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// numberRe finds things that look like phone numbers in Twilio's texts.
var numberRe = regexp.MustCompile(`\+?[0-9][0-9 ()-]{5,}[0-9]`)

// maskNumbers masks every phone number in s.
func maskNumbers(s string) string {
	return numberRe.ReplaceAllStringFunc(s, func(n string) string {
		compact := strings.Map(func(r rune) rune {
			if r == '+' || (r >= '0' && r <= '9') {
				return r
			}
			return -1
		}, n)
		return MaskNumber(compact)
	})
}
