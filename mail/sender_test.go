package mail_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/mail"
	"github.com/physitrack/pmsbridge/mail/mailtest"
)

const (
	patient  = "zoe.obrien@example.com"
	password = "s3cret-Pa55"
)

var codeEmail = mail.CodeEmail{
	Clinic:       "Harbour Physio",
	Practitioner: "Sam Lee",
	Code:         "qwertyui",
	AccessURL:    "https://au.physitrack.com/access",
}

type bundle struct {
	srv    *mailtest.Server
	sender *mail.Sender
}

// setup starts a mailtest server with srvOpts and a Sender for it; edit
// changes the Sender's config first.
func setup(t *testing.T, edit func(*mail.Config), srvOpts ...mailtest.Option) bundle {
	t.Helper()
	srv, err := mailtest.New(srvOpts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	cfg := mail.Config{SMTPURL: srv.URL(), From: "pmsbridge <codes@pmsbridge.example>", RootCAs: srv.RootCAs(), Timeout: 20 * time.Second}
	if edit != nil {
		edit(&cfg)
	}
	s, err := mail.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return bundle{srv: srv, sender: s}
}

// codeMessage composes the code email to to with a Message-ID made from ref.
func (b bundle) codeMessage(t *testing.T, to, ref string) mail.Message {
	t.Helper()
	id, err := b.sender.MessageID(ref)
	if err != nil {
		t.Fatal(err)
	}
	m, err := codeEmail.Compose(to, id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// mailError asserts err is a *mail.Error with the cause and op.
func mailError(t *testing.T, err error, cause pmsbridge.Cause, op string) *mail.Error {
	t.Helper()
	var e *mail.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *mail.Error", err, err)
	}
	if pmsbridge.CauseOf(err) != cause || e.Op != op {
		t.Fatalf("cause %s op %s, want %s %s (%v)", pmsbridge.CauseOf(err), e.Op, cause, op, err)
	}
	for _, s := range []string{err.Error(), pmsbridge.MessageOf(err)} {
		if strings.Contains(s, patient) || strings.Contains(s, password) {
			t.Fatalf("error text holds the address or the password: %q", s)
		}
	}
	t.Logf("error: %v\nmessage: %s", err, pmsbridge.MessageOf(err))
	return e
}

var yearRe = regexp.MustCompile(`\b(19|20)\d\d\b`)

func TestCodeEmailArrivesDecoded(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	m := b.codeMessage(t, patient, "msg_01")
	rc, err := b.sender.Send(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if rc.MessageID != "pmsbridge.msg_01@pmsbridge.example" || !strings.Contains(rc.Reply, "queued") {
		t.Errorf("receipt %+v", rc)
	}
	msgs := b.srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	got := msgs[0]
	if got.ParseError != "" {
		t.Fatalf("parse: %s", got.ParseError)
	}
	if got.MessageID != "pmsbridge.msg_01@pmsbridge.example" {
		t.Errorf("Message-ID %q", got.MessageID)
	}
	if len(got.To) != 1 || got.To[0] != patient || got.From != "codes@pmsbridge.example" {
		t.Errorf("envelope from %q to %v", got.From, got.To)
	}
	if from := got.Header.Get("From"); !strings.Contains(from, "Harbour Physio") || !strings.Contains(from, "<codes@pmsbridge.example>") {
		t.Errorf("From header %q: want the clinic's name with mail.from's address", from)
	}
	if got.Subject != "Your access code from Harbour Physio" {
		t.Errorf("subject %q", got.Subject)
	}
	for _, part := range []struct{ name, body string }{{"text", got.Text}, {"html", got.HTML}} {
		for _, want := range []string{"qwertyui", "https://au.physitrack.com/access", "Sam Lee", "Harbour Physio", "year you were born"} {
			if !strings.Contains(part.body, want) {
				t.Errorf("%s part lacks %q:\n%s", part.name, want, part.body)
			}
		}
		if y := yearRe.FindString(part.body); y != "" {
			t.Errorf("%s part holds a year %q", part.name, y)
		}
	}
	// No header carries the code, a year, or what the programme is about.
	for k, vs := range got.Header {
		for _, v := range vs {
			l := strings.ToLower(v)
			if k == "Date" {
				continue // the sending date, not a birth year
			}
			for _, bad := range []string{"qwertyui", "exercise", "programme", "sam lee"} {
				if strings.Contains(l, bad) {
					t.Errorf("header %s: %q holds %q", k, v, bad)
				}
			}
			if y := yearRe.FindString(v); y != "" {
				t.Errorf("header %s: %q holds a year", k, v)
			}
		}
	}
	if got.Header.Get("Auto-Submitted") != "auto-generated" {
		t.Errorf("Auto-Submitted %q", got.Header.Get("Auto-Submitted"))
	}
	if got.TLS {
		t.Error("TLS without a TLS server")
	}
}

func TestSTARTTLSAndImplicitTLS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc   string
		opts   []mailtest.Option
		scheme string
	}{
		{desc: "smtp:// upgrades with STARTTLS when offered", opts: []mailtest.Option{mailtest.WithSTARTTLS()}, scheme: "smtp://"},
		{desc: "smtps:// is TLS from the first byte", opts: []mailtest.Option{mailtest.WithImplicitTLS()}, scheme: "smtps://"},
		{desc: "login after STARTTLS", opts: []mailtest.Option{mailtest.WithSTARTTLS(), mailtest.WithAuth("bridge", password)}, scheme: "smtp://"},
		{desc: "login over smtps", opts: []mailtest.Option{mailtest.WithImplicitTLS(), mailtest.WithAuth("bridge", password)}, scheme: "smtps://"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil, tc.opts...)
			if !strings.HasPrefix(b.srv.URL(), tc.scheme) {
				t.Fatalf("server URL scheme: %s", strings.SplitN(b.srv.URL(), "@", 2)[0])
			}
			if _, err := b.sender.Send(context.Background(), b.codeMessage(t, patient, "tls")); err != nil {
				t.Fatal(err)
			}
			msgs := b.srv.Messages()
			if len(msgs) != 1 || !msgs[0].TLS {
				t.Fatalf("want one message over TLS, got %d (TLS %v)", len(msgs), len(msgs) == 1 && msgs[0].TLS)
			}
			wantUser := ""
			if strings.Contains(tc.desc, "login") {
				wantUser = "bridge"
			}
			if msgs[0].AuthUser != wantUser {
				t.Errorf("logged in as %q, want %q", msgs[0].AuthUser, wantUser)
			}
		})
	}
}

func TestPlainLoginWithoutTLS(t *testing.T) {
	t.Parallel()
	// A loopback server without TLS: go-mail allows PLAIN to localhost only.
	b := setup(t, nil, mailtest.WithAuth("bridge", password))
	if _, err := b.sender.Send(context.Background(), b.codeMessage(t, patient, "plain")); err != nil {
		t.Fatal(err)
	}
	if msgs := b.srv.Messages(); len(msgs) != 1 || msgs[0].AuthUser != "bridge" {
		t.Fatalf("messages %d", len(msgs))
	}
}

func TestPasswordIsNeverSentInClear(t *testing.T) {
	t.Parallel()
	srv, err := mailtest.New(mailtest.WithAuth("bridge", password))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	// The server is reached under a name that is not localhost, over a
	// connection without TLS: the login must be refused on our side.
	s, err := mail.New(mail.Config{SMTPURL: "smtp://bridge:" + password + "@mail.example.test:587", From: "pmsbridge <codes@pmsbridge.example>"},
		mail.WithDialFunc(func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, srv.Addr())
		}))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := s.MessageID("clear")
	m, _ := codeEmail.Compose(patient, id)
	_, err = s.Send(context.Background(), m)
	e := mailError(t, err, pmsbridge.CauseDeliveryRejected, mail.OpAuth)
	if !e.Setup {
		t.Error("Setup false: the login set-up is at fault")
	}
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("%d messages sent", n)
	}
}

func TestTLSFailures(t *testing.T) {
	t.Parallel()
	t.Run("untrusted certificate on STARTTLS", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *mail.Config) { c.RootCAs = nil }, mailtest.WithSTARTTLS())
		_, err := b.sender.Send(context.Background(), b.codeMessage(t, patient, "untrusted"))
		e := mailError(t, err, pmsbridge.CauseDeliveryUnavailable, mail.OpTLS)
		if !e.Setup || len(b.srv.Messages()) != 0 {
			t.Errorf("setup %v, %d messages", e.Setup, len(b.srv.Messages()))
		}
	})
	t.Run("untrusted certificate on smtps", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *mail.Config) { c.RootCAs = nil }, mailtest.WithImplicitTLS())
		_, err := b.sender.Send(context.Background(), b.codeMessage(t, patient, "untrusted"))
		mailError(t, err, pmsbridge.CauseDeliveryUnavailable, mail.OpTLS)
	})
}

func TestLoginRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *mail.Config) { c.SMTPURL = strings.Replace(c.SMTPURL, password, "wrong-"+password, 1) },
		mailtest.WithSTARTTLS(), mailtest.WithAuth("bridge", password))
	_, err := b.sender.Send(context.Background(), b.codeMessage(t, patient, "login"))
	e := mailError(t, err, pmsbridge.CauseDeliveryRejected, mail.OpAuth)
	if e.Code != 535 || !e.Setup {
		t.Errorf("code %d setup %v", e.Code, e.Setup)
	}
	if strings.Contains(err.Error(), "wrong-") {
		t.Errorf("error holds the password: %v", err)
	}
}

func TestLoginMissing(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *mail.Config) { c.SMTPURL = strings.Replace(c.SMTPURL, "bridge:"+password+"@", "", 1) },
		mailtest.WithAuth("bridge", password))
	_, err := b.sender.Send(context.Background(), b.codeMessage(t, patient, "nologin"))
	e := mailError(t, err, pmsbridge.CauseDeliveryRejected, mail.OpMailFrom)
	if !e.Setup {
		t.Error("a refused sender is a set-up problem")
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc    string
		fault   mailtest.Fault
		cause   pmsbridge.Cause
		op      string
		message string
	}{
		{desc: "550 at RCPT is rejected", fault: mailtest.Fault{Code: 550}, cause: pmsbridge.CauseDeliveryRejected, op: mail.OpRcptTo,
			message: "The patient's mail server refused the address z***@example.com"},
		{desc: "421 at RCPT is unavailable", fault: mailtest.Fault{Code: 421}, cause: pmsbridge.CauseDeliveryUnavailable, op: mail.OpRcptTo,
			message: "tried again automatically"},
		{desc: "450 at RCPT is unavailable", fault: mailtest.Fault{Code: 450}, cause: pmsbridge.CauseDeliveryUnavailable, op: mail.OpRcptTo,
			message: "tried again automatically"},
		{desc: "554 after DATA is rejected", fault: mailtest.Fault{Code: 554, Stage: mailtest.AtData}, cause: pmsbridge.CauseDeliveryRejected, op: mail.OpData,
			message: "refused the email to z***@example.com for good"},
		{desc: "451 after DATA is unavailable", fault: mailtest.Fault{Code: 451, Stage: mailtest.AtData}, cause: pmsbridge.CauseDeliveryUnavailable, op: mail.OpData,
			message: "tried again automatically"},
		{desc: "421 after DATA is unavailable", fault: mailtest.Fault{Code: 421, Stage: mailtest.AtData}, cause: pmsbridge.CauseDeliveryUnavailable, op: mail.OpData,
			message: "tried again automatically"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			b.srv.FailNext(1, tc.fault)
			m := b.codeMessage(t, patient, "refusal")
			_, err := b.sender.Send(context.Background(), m)
			e := mailError(t, err, tc.cause, tc.op)
			if e.Code != tc.fault.Code || e.Setup {
				t.Errorf("code %d setup %v", e.Code, e.Setup)
			}
			if e.Recipient != "z***@example.com" {
				t.Errorf("recipient %q", e.Recipient)
			}
			if !strings.Contains(pmsbridge.MessageOf(err), tc.message) {
				t.Errorf("message %q lacks %q", pmsbridge.MessageOf(err), tc.message)
			}
			if n := len(b.srv.Messages()); n != 0 {
				t.Fatalf("%d messages accepted", n)
			}
			// The fault was for one message: the retry goes through, once.
			if _, err := b.sender.Send(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			if n := len(b.srv.Mailbox(patient)); n != 1 {
				t.Fatalf("mailbox has %d messages after the retry, want 1", n)
			}
		})
	}
}

func TestRecipientRefusedForGood(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.srv.FailRecipient(patient, mailtest.Fault{Code: 550, Message: "5.1.1 <" + patient + ">: Recipient address rejected"})
	for range 2 {
		_, err := b.sender.Send(context.Background(), b.codeMessage(t, patient, "gone"))
		e := mailError(t, err, pmsbridge.CauseDeliveryRejected, mail.OpRcptTo)
		if !strings.Contains(e.Detail, "z***@example.com") {
			t.Errorf("detail %q: want the server's reply with the address masked", e.Detail)
		}
	}
	// Others still get mail.
	if _, err := b.sender.Send(context.Background(), b.codeMessage(t, "other@example.com", "other")); err != nil {
		t.Fatal(err)
	}
	if n := len(b.srv.Messages()); n != 1 {
		t.Fatalf("%d messages", n)
	}
}

func TestLostReplyThenResendIsOneMessage(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.srv.DropReplyNext(1)
	m := b.codeMessage(t, patient, "msg_lost")
	_, err := b.sender.Send(context.Background(), m)
	mailError(t, err, pmsbridge.CauseDeliveryUnavailable, mail.OpData)

	// The worker retries the same message request: same Message-ID.
	if _, err := b.sender.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	msgs := b.srv.Messages()
	if len(msgs) != 2 || !msgs[0].ReplyLost || msgs[1].ReplyLost {
		t.Fatalf("deliveries %d, want 2 (the first with its reply lost)", len(msgs))
	}
	if msgs[0].MessageID != msgs[1].MessageID {
		t.Fatalf("Message-IDs differ: %q, %q", msgs[0].MessageID, msgs[1].MessageID)
	}
	box := b.srv.Mailbox(patient)
	if len(box) != 1 || box[0].Deliveries != 2 {
		t.Fatalf("mailbox %d entries (deliveries %v), want 1 entry delivered twice", len(box), box)
	}
}

func TestConnectionProblemsAreUnavailable(t *testing.T) {
	t.Parallel()
	t.Run("nothing listening", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		s, err := mail.New(mail.Config{SMTPURL: "smtp://" + addr, From: "pmsbridge <codes@pmsbridge.example>"})
		if err != nil {
			t.Fatal(err)
		}
		id, _ := s.MessageID("down")
		m, _ := codeEmail.Compose(patient, id)
		_, err = s.Send(context.Background(), m)
		mailError(t, err, pmsbridge.CauseDeliveryUnavailable, mail.OpConnect)
	})
	t.Run("server never greets: the deadline ends it", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ln.Close() })
		held := make(chan net.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err == nil {
				held <- c // accept, then say nothing
			}
		}()
		t.Cleanup(func() {
			select {
			case c := <-held:
				_ = c.Close()
			default:
			}
		})
		s, err := mail.New(mail.Config{SMTPURL: "smtp://" + ln.Addr().String(), From: "pmsbridge <codes@pmsbridge.example>"})
		if err != nil {
			t.Fatal(err)
		}
		id, _ := s.MessageID("silent")
		m, _ := codeEmail.Compose(patient, id)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err = s.Send(ctx, m)
		e := mailError(t, err, pmsbridge.CauseDeliveryUnavailable, mail.OpSession)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v does not say the deadline passed (%v)", err, e.Err)
		}
	})
}

func TestBadMessagesAreRefusedBeforeConnecting(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	good := b.codeMessage(t, patient, "good")
	tests := []struct {
		desc  string
		edit  func(*mail.Message)
		cause pmsbridge.Cause
	}{
		{desc: "not an address", edit: func(m *mail.Message) { m.To = "zoe.obrien at example.com" }, cause: pmsbridge.CauseDeliveryRejected},
		{desc: "address with a name", edit: func(m *mail.Message) { m.To = "Zoe <" + patient + ">" }, cause: pmsbridge.CauseDeliveryRejected},
		{desc: "two addresses", edit: func(m *mail.Message) { m.To = patient + ", x@example.com" }, cause: pmsbridge.CauseDeliveryRejected},
		{desc: "no Message-ID", edit: func(m *mail.Message) { m.MessageID = "" }, cause: pmsbridge.CauseInternal},
		{desc: "Message-ID in brackets", edit: func(m *mail.Message) { m.MessageID = "<a@b>" }, cause: pmsbridge.CauseInternal},
		{desc: "no text", edit: func(m *mail.Message) { m.Text = " " }, cause: pmsbridge.CauseInternal},
		{desc: "subject on two lines", edit: func(m *mail.Message) { m.Subject = "a\r\nBcc: x@example.com" }, cause: pmsbridge.CauseInternal},
	}
	for _, tc := range tests {
		m := good
		tc.edit(&m)
		_, err := b.sender.Send(context.Background(), m)
		e := mailError(t, err, tc.cause, mail.OpCompose)
		if strings.Contains(e.Error(), "zoe.obrien") {
			t.Errorf("%s: error holds the address: %v", tc.desc, e)
		}
	}
	if n := len(b.srv.Messages()); n != 0 {
		t.Fatalf("%d messages sent", n)
	}
}

func TestConcurrentSends(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, mailtest.WithSTARTTLS())
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			m := b.codeMessage(t, fmt.Sprintf("p%d@example.com", i), fmt.Sprintf("msg_%d", i))
			if _, err := b.sender.Send(context.Background(), m); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := len(b.srv.Mailbox("")); got != n {
		t.Fatalf("%d distinct messages, want %d", got, n)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc string
		cfg  mail.Config
		want string // "" means valid
	}{
		{desc: "smtp", cfg: mail.Config{SMTPURL: "smtp://mail.example.com:587", From: "Clinic <a@example.com>"}},
		{desc: "smtps with login", cfg: mail.Config{SMTPURL: "smtps://u:" + password + "@mail.example.com", From: "a@example.com"}},
		{desc: "no URL", cfg: mail.Config{From: "a@example.com"}, want: "SMTP URL is required"},
		{desc: "other scheme", cfg: mail.Config{SMTPURL: "http://u:" + password + "@mail.example.com", From: "a@example.com"}, want: "must start with smtp://"},
		{desc: "bad port", cfg: mail.Config{SMTPURL: "smtp://u:" + password + "@mail.example.com:99999", From: "a@example.com"}, want: "bad port"},
		{desc: "path", cfg: mail.Config{SMTPURL: "smtp://u:" + password + "@mail.example.com/x", From: "a@example.com"}, want: "just scheme"},
		{desc: "no from", cfg: mail.Config{SMTPURL: "smtp://mail.example.com"}, want: "from is required"},
		{desc: "bad from", cfg: mail.Config{SMTPURL: "smtp://mail.example.com", From: "Clinic"}, want: "from must look like"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			_, err := mail.New(tc.cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), password):
				t.Fatalf("error holds the password: %v", err)
			}
		})
	}
	s, err := mail.New(mail.Config{SMTPURL: "smtps://u:" + password + "@mail.example.com", From: "a@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if d := s.Server(); d != "smtps://mail.example.com:465 (implicit TLS, with login)" {
		t.Errorf("Server() = %q", d)
	}
}

func TestMessageID(t *testing.T) {
	t.Parallel()
	s, err := mail.New(mail.Config{SMTPURL: "smtp://mail.example.com", From: "Clinic <codes@clinic.example>"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.MessageID("msg_01HZX.v1")
	if err != nil || a != "pmsbridge.msg_01HZX.v1@clinic.example" {
		t.Fatalf("MessageID = %q, %v", a, err)
	}
	if again, _ := s.MessageID("msg_01HZX.v1"); again != a {
		t.Fatalf("not stable: %q then %q", a, again)
	}
	for _, bad := range []string{"", "a b", "a@b", "<x>", strings.Repeat("x", 129)} {
		if _, err := s.MessageID(bad); err == nil {
			t.Errorf("MessageID(%q) accepted", bad)
		}
	}
}

func TestMaskAddress(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"zoe.obrien@example.com": "z***@example.com",
		"Z@example.com":          "Z***@example.com",
		"élodie@exemple.fr":      "é***@exemple.fr",
		"not an address":         "***",
		"@example.com":           "***",
		"zoe@":                   "***",
	} {
		if got := mail.MaskAddress(in); got != want {
			t.Errorf("MaskAddress(%q) = %q, want %q", in, got, want)
		}
	}
}
