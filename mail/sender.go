// Package mail sends pmsbridge's emails to patients (their programme code)
// over SMTP, with github.com/wneessen/go-mail: smtp:// with STARTTLS
// whenever the server offers it, smtps:// with TLS from the first byte,
// user:password login when the URL has one. Every failure is an *Error
// carrying a pmsbridge cause: delivery_rejected for a permanent refusal
// (SMTP 5xx), delivery_unavailable for anything worth retrying (4xx, no
// connection, timeout, a lost answer). Errors and logs never hold the SMTP
// password or a full recipient address (MaskAddress).
//
// SMTP has no way to ask whether an earlier attempt arrived, so exactly-once
// rests on the Message-ID: the caller gives every message request its own
// stable id, and a resend after a crash or a lost answer carries the same
// one, which mail providers (and mailtest's Mailbox) use to show one
// message.
//
// The package mail/mailtest provides an SMTP server to test against, also
// used by `pmsbridge dev`.
package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	stdmail "net/mail"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/physitrack/pmsbridge"
	gomail "github.com/wneessen/go-mail"
)

// Message is one email to send.
type Message struct {
	// To is the recipient's address: a patient detail, never logged.
	To string
	// FromName is the sender's display name (the clinic's name); the address
	// is always mail.from's. Empty: mail.from's own name.
	FromName string
	// Subject must carry no health details and no year of birth.
	Subject string
	// Text is the plain-text part. Required.
	Text string
	// HTML is the HTML part, sent as an alternative to Text. Optional.
	HTML string
	// MessageID is the Message-ID, "local@domain" without angle brackets
	// (Sender.MessageID makes one). Required, and stable per message
	// request: a resend after a crash must carry the same id.
	MessageID string
	// Date is the Date header; zero means now.
	Date time.Time
}

// Receipt is what the server said when it accepted a message.
type Receipt struct {
	// MessageID is the message's Message-ID, without angle brackets.
	MessageID string
	// Reply is the server's final reply ("2.0.0 Ok: queued as 4F2A"), for
	// support: providers look messages up by its queue id.
	Reply string
}

// Option changes how New builds a Sender.
type Option func(*Sender)

// WithClock sets the clock used for the Date header (tests).
func WithClock(now func() time.Time) Option { return func(s *Sender) { s.now = now } }

// DialFunc opens a TCP connection, like net.Dialer.DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// WithDialFunc sets how the server is reached (tests, proxies). Default
// net.Dialer.DialContext. TLS is still done by the Sender.
func WithDialFunc(dial DialFunc) Option { return func(s *Sender) { s.dial = dial } }

// Sender sends emails through one SMTP server. It is safe for concurrent
// use; each Send uses its own connection.
type Sender struct {
	cfg  Config
	srv  server
	from from
	now  func() time.Time
	dial DialFunc
}

// New returns a Sender for cfg (after WithDefaults and Validate).
func New(cfg Config, opts ...Option) (*Sender, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	srv, _ := parseServer(cfg.SMTPURL)
	f, _ := parseFrom(cfg.From)
	s := &Sender{cfg: cfg, srv: srv, from: f, now: time.Now, dial: (&net.Dialer{}).DialContext}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Server describes the server for logs and pages: "smtp://host:port
// (STARTTLS when offered, login as u***)" — never the password.
func (s *Sender) Server() string {
	scheme, tlsMode := "smtp", "STARTTLS when offered"
	if s.srv.implicit {
		scheme, tlsMode = "smtps", "implicit TLS"
	}
	d := fmt.Sprintf("%s://%s (%s", scheme, net.JoinHostPort(s.srv.host, strconv.Itoa(s.srv.port)), tlsMode)
	if s.srv.hasAuth {
		d += ", with login"
	}
	return d + ")"
}

var refRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// MessageID makes the Message-ID of a message request from its own stable
// reference (for example the message record's id): "pmsbridge.<ref>@<domain
// of mail.from>". ref must be letters, digits, '.', '_' or '-', and must not
// hold patient details: mail providers keep the Message-ID.
func (s *Sender) MessageID(ref string) (string, error) {
	if !refRe.MatchString(ref) {
		return "", fmt.Errorf("mail: message reference must be 1-128 letters, digits, '.', '_' or '-'")
	}
	return "pmsbridge." + ref + "@" + s.from.domain, nil
}

var messageIDRe = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+/=?^_{|}~.-]+@[A-Za-z0-9.-]+$`)

// Send delivers m and returns the server's receipt. Errors are *Error (see
// the package comment for their causes). Send honours ctx: cancelling it
// closes the connection at once, and a delivery whose answer was lost with
// it returns delivery_unavailable, to be resent with the same MessageID.
func (s *Sender) Send(ctx context.Context, m Message) (Receipt, error) {
	rcpt := maskRecipient(m.To)
	msg, err := s.build(m)
	if err != nil {
		cause := pmsbridge.CauseInternal // the caller's mistake
		if errors.Is(err, errBadRecipient) {
			cause = pmsbridge.CauseDeliveryRejected // can never be delivered
		}
		return Receipt{}, &Error{Op: OpCompose, Cause: cause, Recipient: rcpt, Detail: s.redact(err.Error())}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()

	var connected atomic.Bool
	client, err := gomail.NewClient(s.srv.host, s.clientOptions(ctx, &connected)...)
	if err != nil {
		return Receipt{}, &Error{Op: OpConnect, Cause: pmsbridge.CauseDeliveryUnavailable, Setup: true,
			Recipient: rcpt, Detail: s.redact(err.Error())}
	}
	err = client.DialAndSendWithContext(ctx, msg)
	if msg.IsDelivered() {
		// The server accepted the message; a failure after that (RSET,
		// QUIT) does not make it undelivered.
		return Receipt{MessageID: m.MessageID, Reply: s.redact(msg.ServerResponse())}, nil
	}
	if err == nil {
		err = errors.New("the server did not confirm the message")
	}
	return Receipt{}, classify(ctx, err, connected.Load(), rcpt, s.redact)
}

// errBadRecipient: the recipient is not a plain email address.
var errBadRecipient = errors.New("the recipient is not a plain email address")

// maskRecipient masks the address part of to, for error texts.
func maskRecipient(to string) string {
	if a, err := stdmail.ParseAddress(to); err == nil {
		return MaskAddress(a.Address)
	}
	return MaskAddress(strings.TrimSpace(to))
}

// build makes the go-mail message, checking what the caller gave.
func (s *Sender) build(m Message) (*gomail.Msg, error) {
	switch {
	case m.MessageID == "" || !messageIDRe.MatchString(m.MessageID):
		return nil, errors.New("a Message-ID (left part, at sign, domain; no angle brackets) is required")
	case strings.TrimSpace(m.Text) == "":
		return nil, errors.New("the message has no text")
	case strings.ContainsAny(m.Subject, "\r\n"):
		return nil, errors.New("the subject must be one line")
	}
	to, err := stdmail.ParseAddress(m.To)
	if err != nil || to.Name != "" || to.Address != strings.TrimSpace(m.To) {
		return nil, errBadRecipient
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	name := oneLine(m.FromName)
	if name == "" {
		name = s.from.name
	}
	if err := msg.FromFormat(name, s.from.address); err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	if err := msg.To(to.Address); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadRecipient, err)
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(m.MessageID)
	date := m.Date
	if date.IsZero() {
		date = s.now()
	}
	msg.SetDateWithValue(date)
	// An automatic message: no out-of-office replies (RFC 3834; the second
	// header is Exchange's own).
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetGenHeader("X-Auto-Response-Suppress", "All")
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

// clientOptions configures go-mail for one delivery. The connection is
// made by our own dial function so that it is closed as soon as ctx ends
// (go-mail only watches ctx while dialling) and so that we know whether a
// connection was made at all.
func (s *Sender) clientOptions(ctx context.Context, connected *atomic.Bool) []gomail.Option {
	tlsCfg := &tls.Config{ServerName: s.srv.host, RootCAs: s.cfg.RootCAs, MinVersion: tls.VersionTLS12}
	dial := func(dctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := s.dial(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		if s.srv.implicit {
			tc := tls.Client(conn, tlsCfg)
			if err := tc.HandshakeContext(dctx); err != nil {
				_ = conn.Close()
				// Connected, but not to anything we trust.
				connected.Store(true)
				return nil, err
			}
			conn = tc
		}
		connected.Store(true)
		// Closed by go-mail's QUIT or when ctx ends (at the latest when Send
		// returns), whichever comes first.
		context.AfterFunc(ctx, func() { _ = conn.Close() })
		return conn, nil
	}
	opts := []gomail.Option{
		gomail.WithPort(s.srv.port),
		gomail.WithTimeout(s.cfg.Timeout),
		gomail.WithHELO(s.cfg.HELO),
		gomail.WithDialContextFunc(dial),
		gomail.WithTLSConfig(tlsCfg),
		gomail.WithoutNoop(),
	}
	if s.srv.implicit {
		// TLS is already up (dial above); no STARTTLS on top.
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	} else {
		// WithTLSPolicy, not WithTLSPortPolicy: the latter changes port 25
		// to 587 and falls back to plain port 25 on its own.
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if s.srv.hasAuth {
		// PLAIN and LOGIN refuse to send the password over a connection
		// that is not encrypted (except to localhost): go-mail checks.
		opts = append(opts, gomail.WithUsername(s.srv.user), gomail.WithPassword(s.srv.password),
			gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthSCRAMSHA256, gomail.SMTPAuthSCRAMSHA1,
				gomail.SMTPAuthPlain, gomail.SMTPAuthLogin))
	}
	return opts
}

// redact masks addresses in a text and removes the SMTP password from it
// (defence in depth: no text we produce should hold it), bounded in length.
func (s *Sender) redact(text string) string {
	if s.srv.password != "" {
		text = strings.ReplaceAll(text, s.srv.password, "***")
	}
	text = strings.Join(strings.Fields(strings.ReplaceAll(text, "\n", "; ")), " ")
	return truncate(maskAddresses(text), maxDetail)
}

// oneLine drops control characters (a header injection) and trims.
func oneLine(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s))
}
