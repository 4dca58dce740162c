// Package mailtest is an SMTP server for tests and `pmsbridge dev`, built on
// github.com/emersion/go-smtp. It accepts mail for any recipient, records
// every accepted message (raw, headers, Message-ID, decoded text and HTML
// parts), and can offer STARTTLS or implicit TLS with a generated
// self-signed certificate and require AUTH PLAIN. Faults are injected per
// message: a 4xx/5xx reply to the next N messages or to one recipient, or a
// message accepted and its 250 reply lost (the connection dropped first).
// Mailbox shows what a mail provider would show: one message per
// Message-ID, however often it was delivered. Handler serves an "outbox"
// page listing the messages for the dev banner.
//
// It is for tests and development only: it keeps everything in memory and
// shows it to whoever can reach its page.
package mailtest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Option configures a Server.
type Option func(*Server)

// WithAddr sets the listen address. Default "127.0.0.1:0" (a free port).
func WithAddr(addr string) Option { return func(s *Server) { s.addr = addr } }

// WithSTARTTLS makes the server offer STARTTLS with a self-signed
// certificate for 127.0.0.1, ::1 and localhost (RootCAs trusts it). Login
// is then offered only after STARTTLS, as real servers do.
func WithSTARTTLS() Option { return func(s *Server) { s.tlsMode = tlsStart } }

// WithImplicitTLS makes the server speak TLS from the first byte (smtps://),
// with the same self-signed certificate.
func WithImplicitTLS() Option { return func(s *Server) { s.tlsMode = tlsImplicit } }

// WithAuth makes the server require AUTH PLAIN with this user and password
// before MAIL FROM. Without TLS, login is allowed in clear (the server only
// listens on loopback by default).
func WithAuth(user, password string) Option {
	return func(s *Server) { s.user, s.password = user, password }
}

// WithClock sets the clock stamped on received messages. Default time.Now.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithDomain sets the name the server greets with. Default "mailtest.local".
func WithDomain(d string) Option { return func(s *Server) { s.domain = d } }

type tlsMode int

const (
	tlsNone tlsMode = iota
	tlsStart
	tlsImplicit
)

// Stage is where a Fault strikes.
type Stage int

const (
	// AtRcpt replies to RCPT TO: the recipient is refused.
	AtRcpt Stage = iota
	// AtData replies to the end of the message: the message is refused
	// after it was sent.
	AtData
)

// Fault is a reply the server gives instead of accepting.
type Fault struct {
	// Code is the SMTP reply: 421 (service closing: the connection is
	// dropped after the reply, as RFC 5321 says), 450/451/452 (try later),
	// 550/552/553/554 (refused for good).
	Code int
	// Stage is where the reply is given. Default AtRcpt.
	Stage Stage
	// Message is the reply text. Default: a typical text for the code.
	Message string
}

func (f Fault) smtpError() *smtp.SMTPError {
	msg, ec := f.Message, smtp.EnhancedCode{f.Code / 100, 0, 0}
	switch f.Code {
	case 421:
		ec = smtp.EnhancedCode{4, 3, 2}
		if msg == "" {
			msg = "Service not available, closing transmission channel"
		}
	case 450, 451, 452:
		ec = smtp.EnhancedCode{4, 2, 0}
		if msg == "" {
			msg = "Mailbox temporarily unavailable, try again later"
		}
	case 550:
		ec = smtp.EnhancedCode{5, 1, 1}
		if msg == "" {
			msg = "Recipient address rejected: User unknown in virtual mailbox table"
		}
	case 552:
		ec = smtp.EnhancedCode{5, 2, 2}
		if msg == "" {
			msg = "Mailbox full"
		}
	case 554:
		ec = smtp.EnhancedCode{5, 7, 1}
		if msg == "" {
			msg = "Message rejected as spam"
		}
	}
	if msg == "" {
		msg = "Refused by mailtest"
	}
	return &smtp.SMTPError{Code: f.Code, EnhancedCode: ec, Message: msg}
}

type nextFault struct {
	n int
	f Fault
}

// Server is a running SMTP server. It is safe for concurrent use.
type Server struct {
	addr     string
	domain   string
	tlsMode  tlsMode
	user     string
	password string
	now      func() time.Time

	srv   *smtp.Server
	ln    net.Listener
	roots *x509.CertPool
	done  chan struct{}

	mu        sync.Mutex
	messages  []Message
	nextFault []nextFault
	rcptFault map[string]Fault // by lower-case address
	drops     int
	closed    bool
}

// New starts a server. Close it when done.
func New(opts ...Option) (*Server, error) {
	s := &Server{addr: "127.0.0.1:0", domain: "mailtest.local", now: time.Now,
		rcptFault: map[string]Fault{}, done: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	srv := smtp.NewServer(backend{s})
	srv.Domain = s.domain
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.MaxMessageBytes = 10 << 20
	srv.MaxRecipients = 50
	srv.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return nil, fmt.Errorf("mailtest: listen: %w", err)
	}
	if s.tlsMode != tlsNone {
		// Real time, not the clock: TLS clients check validity against theirs.
		cert, pool, err := selfSigned(time.Now(), hostOf(ln.Addr().String()))
		if err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("mailtest: certificate: %w", err)
		}
		s.roots = pool
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if s.tlsMode == tlsStart {
			srv.TLSConfig = cfg
		} else {
			ln = tls.NewListener(ln, cfg)
		}
	}
	// Login in clear only where there is no TLS to use at all.
	srv.AllowInsecureAuth = s.tlsMode == tlsNone
	s.srv, s.ln = srv, ln
	go func() {
		defer close(s.done)
		_ = srv.Serve(ln)
	}()
	return s, nil
}

// Close stops the server and closes every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	err := s.srv.Close()
	// go-smtp registers the listener only once Serve runs: a Close right
	// after New would miss it, so close it here too.
	if lerr := s.ln.Close(); err == nil && !errors.Is(lerr, net.ErrClosed) {
		err = lerr
	}
	<-s.done
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the mail.smtp_url that reaches this server: smtp:// (with
// STARTTLS when WithSTARTTLS) or smtps://, with the login when WithAuth.
func (s *Server) URL() string {
	u := url.URL{Scheme: "smtp", Host: s.Addr()}
	if s.tlsMode == tlsImplicit {
		u.Scheme = "smtps"
	}
	if s.user != "" {
		u.User = url.UserPassword(s.user, s.password)
	}
	return u.String()
}

// RootCAs trusts the server's self-signed certificate (mail.Config.RootCAs);
// nil when the server has no TLS.
func (s *Server) RootCAs() *x509.CertPool { return s.roots }

// FailNext makes the next n messages get f instead of being accepted.
func (s *Server) FailNext(n int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextFault = append(s.nextFault, nextFault{n: n, f: f})
}

// FailRecipient makes every message to addr get f (until ClearFaults).
func (s *Server) FailRecipient(addr string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcptFault[strings.ToLower(addr)] = f
}

// DropReplyNext makes the server accept the next n messages (they are
// recorded, as delivered) and then drop the connection before sending the
// 250 reply: the client cannot tell whether the message arrived, as when a
// network fails at the worst moment.
func (s *Server) DropReplyNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drops += n
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextFault, s.rcptFault, s.drops = nil, map[string]Fault{}, 0
}

// takeNextFault consumes one message's worth of a FailNext rule for stage.
func (s *Server) takeNextFault(stage Stage) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.nextFault {
		if nf := &s.nextFault[i]; nf.n > 0 && nf.f.Stage == stage {
			nf.n--
			f := nf.f
			s.nextFault = slices.DeleteFunc(s.nextFault, func(nf nextFault) bool { return nf.n <= 0 })
			return f, true
		}
	}
	return Fault{}, false
}

func (s *Server) recipientFault(addr string, stage Stage) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.rcptFault[strings.ToLower(addr)]
	return f, ok && f.Stage == stage
}

func (s *Server) takeDrop() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drops > 0 {
		s.drops--
		return true
	}
	return false
}

func (s *Server) record(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m.Seq = len(s.messages) + 1
	s.messages = append(s.messages, m)
}

// Messages returns every accepted delivery, in order (a message delivered
// twice appears twice).
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.messages)
}

// MailboxEntry is one message as a mailbox shows it.
type MailboxEntry struct {
	Message            // the first delivery
	Deliveries int     // how many times it was delivered
	Last       Message // the last delivery
}

// Mailbox returns the messages to addr (any recipient when addr is ""), one
// per Message-ID, in order of first delivery: what a mail provider that
// folds duplicate Message-IDs shows the patient. Messages without a
// Message-ID are never folded.
func (s *Server) Mailbox(addr string) []MailboxEntry {
	var out []MailboxEntry
	index := map[string]int{}
	for _, m := range s.Messages() {
		if addr != "" && !slices.ContainsFunc(m.To, func(t string) bool { return strings.EqualFold(t, addr) }) {
			continue
		}
		if i, ok := index[m.MessageID]; ok && m.MessageID != "" {
			out[i].Deliveries++
			out[i].Last = m
			continue
		}
		index[m.MessageID] = len(out)
		out = append(out, MailboxEntry{Message: m, Deliveries: 1, Last: m})
	}
	return out
}

// backend makes one session per connection.
type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	return &session{s: b.s, conn: c, tls: isTLS}, nil
}

type session struct {
	s        *Server
	conn     *smtp.Conn
	tls      bool
	authUser string
	from     string
	to       []string
	faulted  bool // a FailNext rule already struck this message
}

func (ss *session) AuthMechanisms() []string {
	if ss.s.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain || ss.s.user == "" {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, user, password string) error {
		if (identity != "" && identity != user) || user != ss.s.user || password != ss.s.password {
			return smtp.ErrAuthFailed
		}
		ss.authUser = user
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.user != "" && ss.authUser == "" {
		return smtp.ErrAuthRequired
	}
	ss.from, ss.to, ss.faulted = from, nil, false
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	f, ok := ss.s.recipientFault(to, AtRcpt)
	if !ok && !ss.faulted {
		f, ok = ss.s.takeNextFault(AtRcpt)
		ss.faulted = ok
	}
	if ok {
		return ss.refuse(f)
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	for _, to := range ss.to {
		if f, ok := ss.s.recipientFault(to, AtData); ok {
			return ss.refuse(f)
		}
	}
	if f, ok := ss.s.takeNextFault(AtData); ok {
		return ss.refuse(f)
	}
	m := parse(raw)
	m.Received, m.From, m.To, m.TLS, m.AuthUser = ss.s.now(), ss.from, slices.Clone(ss.to), ss.tls, ss.authUser
	if ss.s.takeDrop() {
		m.ReplyLost = true
		ss.s.record(m)
		// The message is in; the client never hears so.
		_ = ss.conn.Conn().Close()
		return nil
	}
	ss.s.record(m)
	return nil
}

// refuse answers f; a 421 also closes the connection after the reply, as
// RFC 5321 says a server shutting down does.
func (ss *session) refuse(f Fault) error {
	e := f.smtpError()
	if f.Code == 421 {
		fmt.Fprintf(ss.conn.Conn(), "%d %d.%d.%d %s\r\n", e.Code, e.EnhancedCode[0], e.EnhancedCode[1], e.EnhancedCode[2], e.Message)
		_ = ss.conn.Conn().Close()
	}
	return e
}

func (ss *session) Reset() { ss.from, ss.to, ss.faulted = "", nil, false }

func (ss *session) Logout() error { return nil }

func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}
