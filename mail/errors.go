package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"regexp"
	"strings"

	"github.com/physitrack/pmsbridge"
	gomail "github.com/wneessen/go-mail"
	gosmtp "github.com/wneessen/go-mail/smtp"
)

// Stages of a delivery, as Error.Op names them.
const (
	OpCompose  = "compose"   // the message was refused before connecting (bad address, missing part)
	OpConnect  = "connect"   // no connection to the server (DNS, refused, timeout)
	OpTLS      = "tls"       // STARTTLS or implicit TLS failed (certificate, handshake)
	OpSession  = "session"   // greeting or EHLO refused
	OpAuth     = "auth"      // login refused or impossible
	OpMailFrom = "mail_from" // MAIL FROM (our sender address) refused
	OpRcptTo   = "rcpt_to"   // RCPT TO (the patient's address) refused
	OpData     = "data"      // DATA or the message itself refused, or the answer to it lost
)

// Error is a failed delivery. Every error Send returns is an *Error, so
// pmsbridge.CauseOf and pmsbridge.MessageOf work on it. Its text holds the
// stage, the SMTP reply code and the server's reply with every email
// address masked (z***@example.com); never the SMTP password, never a full
// recipient address.
type Error struct {
	// Op is the stage that failed (OpConnect, OpRcptTo, ...).
	Op string
	// Code is the SMTP reply code (421, 550, ...); 0 when the server gave
	// none (network error, timeout, lost answer, refused before sending).
	Code int
	// EnhancedCode is the RFC 3463 status ("5.1.1") when the server sent one.
	EnhancedCode string
	// Cause is pmsbridge.CauseDeliveryRejected (a permanent refusal: 5xx,
	// an address that can never work), pmsbridge.CauseDeliveryUnavailable
	// (4xx, no connection, timeout, no answer: retry later), or
	// pmsbridge.CauseInternal (the caller gave a Message that cannot be
	// sent: no Message-ID, no text, a two-line subject).
	Cause pmsbridge.Cause
	// Setup is true when the failure lies in pmsbridge's own mail set-up
	// (login, encryption, sender address, the server's greeting) rather
	// than in this patient's address: every message fails until support
	// fixes mail.smtp_url or mail.from.
	Setup bool
	// Recipient is the recipient's address, masked.
	Recipient string
	// Detail is the server's reply or the local error, addresses masked.
	Detail string
	// Err is the underlying network or context error, for errors.Is
	// (context.DeadlineExceeded, ...); nil for refusals by the server.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("mail: send")
	if e.Recipient != "" {
		b.WriteString(" to ")
		b.WriteString(e.Recipient)
	}
	b.WriteString(": ")
	b.WriteString(e.Op)
	if e.Code != 0 {
		fmt.Fprintf(&b, ": %d", e.Code)
		if e.EnhancedCode != "" {
			b.WriteString(" " + e.EnhancedCode)
		}
	}
	b.WriteString(": ")
	b.WriteString(string(e.Cause))
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// Unwrap returns the underlying network or context error, if any.
func (e *Error) Unwrap() error { return e.Err }

// ErrorCause returns the cause code; pmsbridge.CauseOf uses it.
func (e *Error) ErrorCause() pmsbridge.Cause { return e.Cause }

// ErrorMessage returns a sentence for practitioners and support staff
// saying what went wrong and what to do; pmsbridge.MessageOf uses it. It
// holds the masked address at most.
func (e *Error) ErrorMessage() string {
	addr := e.Recipient
	if addr == "" {
		addr = "the patient's address"
	}
	switch {
	case e.Cause == pmsbridge.CauseDeliveryUnavailable && e.Setup:
		return "The email could not be sent: " + setupProblem(e.Op) + ". It is tried again automatically; support should check the email settings."
	case e.Cause == pmsbridge.CauseDeliveryUnavailable:
		return "The email could not be sent just now: the mail server was busy or could not be reached. It is tried again automatically."
	case e.Op == OpCompose && e.Cause == pmsbridge.CauseDeliveryRejected:
		return "The patient's email address (" + addr + ") is not a valid email address. Correct it in the patient's record, then send the code again."
	case e.Op == OpCompose:
		return "The email could not be put together (a fault in pmsbridge). Support has the details."
	case e.Op == OpRcptTo:
		return "The patient's mail server refused the address " + addr + ": it may be mistyped or no longer in use. Check the email address with the patient, correct it in the patient's record, then send the code again."
	case e.Op == OpData:
		return "The mail server refused the email to " + addr + " for good (for example, it took it for spam). Support has the details; you can give the code to the patient yourself."
	case e.Op == OpAuth && e.Code == 0:
		return "The email could not be sent: pmsbridge did not log in to its mail server because the server offers no encrypted connection or no login method that keeps the password safe. Support must fix the email settings, then send the code again."
	case e.Setup:
		return "The email could not be sent: " + setupProblem(e.Op) + ". Support must fix the email settings, then send the code again."
	}
	return "The mail server refused the email to " + addr + " for good. Support has the details."
}

// setupProblem says in plain words what failed in pmsbridge's own mail
// set-up at a stage.
func setupProblem(op string) string {
	switch op {
	case OpAuth:
		return "pmsbridge's mail server did not accept its login"
	case OpTLS:
		return "pmsbridge could not make a secure connection to its mail server (for example, its certificate is not trusted)"
	case OpMailFrom:
		return "pmsbridge's mail server refused its sender address"
	}
	return "pmsbridge's mail server did not accept the connection"
}

// classify turns what go-mail returned into an *Error. connected says
// whether a connection to the server was made (the dial function saw it);
// ctx is the caller's context; redact removes secrets from texts.
func classify(ctx context.Context, err error, connected bool, rcpt string, redact func(string) string) *Error {
	e := classifyReply(err, connected)
	e.Recipient, e.Detail = rcpt, redact(err.Error())
	if ctxErr := ctx.Err(); ctxErr != nil {
		// The caller gave up or our deadline passed, whatever the stage:
		// transient, and nothing says the set-up is wrong.
		e.Cause, e.Setup, e.Err, e.Detail = pmsbridge.CauseDeliveryUnavailable, false, ctxErr, ctxErr.Error()
	}
	return e
}

// classifyReply sets Op, Code, EnhancedCode, Cause, Setup and Err from what
// go-mail returned.
func classifyReply(err error, connected bool) *Error {
	e := &Error{}
	var se *gomail.SendError
	if errors.As(err, &se) {
		e.Code, e.EnhancedCode = se.ErrorCode(), se.EnhancedStatusCode()
		switch se.Reason {
		case gomail.ErrSMTPMailFrom:
			e.Op, e.Setup = OpMailFrom, true
		case gomail.ErrSMTPRcptTo:
			e.Op = OpRcptTo
		case gomail.ErrGetSender:
			e.Op, e.Setup = OpMailFrom, true
		case gomail.ErrGetRcpts:
			e.Op = OpCompose
		default:
			// DATA, the message body, its final reply, the connection check.
			e.Op = OpData
		}
		e.Cause = causeForCode(e.Code)
		if e.Op == OpCompose {
			e.Cause = pmsbridge.CauseDeliveryRejected
		}
		var ne net.Error
		if errors.As(err, &ne) {
			e.Err = ne
		}
		return e
	}
	// Failures before a message was handed over: connecting, greeting,
	// EHLO, STARTTLS, login.
	var tpe *textproto.Error
	hasCode := errors.As(err, &tpe)
	if hasCode {
		e.Code = tpe.Code
		e.EnhancedCode = enhancedRe.FindString(tpe.Msg)
	}
	// Once connected, a failure before the message is handed over lies in
	// the set-up (encryption, login, a server that refuses us).
	e.Setup = connected
	switch {
	case !connected:
		e.Op = OpConnect
	case isTLSError(err):
		e.Op = OpTLS
	case isAuthError(err):
		e.Op = OpAuth
	default:
		e.Op = OpSession
	}
	var ne net.Error
	if errors.As(err, &ne) {
		e.Err = ne
	}
	switch {
	case hasCode:
		e.Cause = causeForCode(e.Code)
	case e.Op == OpAuth:
		// Refused locally: the server offers no way to log in that keeps
		// the password safe (no TLS, or no mechanism we speak). Retrying
		// cannot help until the set-up changes.
		e.Cause = pmsbridge.CauseDeliveryRejected
	default:
		e.Cause = pmsbridge.CauseDeliveryUnavailable
	}
	return e
}

// causeForCode maps an SMTP reply code to a cause: 5xx is a permanent
// refusal, anything else (4xx, no reply) is transient. It is the one place
// where SMTP codes become causes.
func causeForCode(code int) pmsbridge.Cause {
	if code >= 500 && code < 600 {
		return pmsbridge.CauseDeliveryRejected
	}
	return pmsbridge.CauseDeliveryUnavailable
}

var enhancedRe = regexp.MustCompile(`\b[245]\.\d{1,3}\.\d{1,3}\b`)

func isTLSError(err error) bool {
	var (
		cv *tls.CertificateVerificationError
		ua x509.UnknownAuthorityError
		he x509.HostnameError
		ci x509.CertificateInvalidError
		rh tls.RecordHeaderError
		ae tls.AlertError
	)
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) ||
		errors.As(err, &ci) || errors.As(err, &rh) || errors.As(err, &ae) ||
		strings.Contains(err.Error(), "STARTTLS")
}

func isAuthError(err error) bool {
	return errors.Is(err, gosmtp.ErrUnencrypted) || errors.Is(err, gomail.ErrPlainAuthNotSupported) ||
		errors.Is(err, gomail.ErrLoginAuthNotSupported) || errors.Is(err, gomail.ErrNoSupportedAuthDiscovered) ||
		// go-mail's own wording (v0.8.1) for a refused or impossible login.
		strings.Contains(err.Error(), "SMTP AUTH failed") || strings.Contains(err.Error(), "does not support SMTP AUTH")
}

// addressRe finds anything that looks like an email address in a server
// reply or an error text, so it can be masked.
var addressRe = regexp.MustCompile(`[A-Za-z0-9.!#$%&'*+/=?^_{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*`)

// maskAddresses masks every email address in s.
func maskAddresses(s string) string {
	return addressRe.ReplaceAllStringFunc(s, MaskAddress)
}

// MaskAddress hides most of an email address for display and logs:
// "zoe.obrien@example.com" → "z***@example.com". The domain stays (it tells
// support which provider refused); anything that is not an address becomes
// "***".
func MaskAddress(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 1 || at == len(addr)-1 {
		return "***"
	}
	r := []rune(addr[:at])
	return string(r[0]) + "***" + addr[at:]
}

// maxDetail bounds how much of a server reply an Error keeps.
const maxDetail = 300

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
