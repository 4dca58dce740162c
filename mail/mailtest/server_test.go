package mailtest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/smtp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge/mail"
	"github.com/physitrack/pmsbridge/mail/mailtest"
)

var now = time.Date(2026, 11, 22, 10, 2, 0, 0, time.UTC)

func start(t *testing.T, opts ...mailtest.Option) *mailtest.Server {
	t.Helper()
	s, err := mailtest.New(append([]mailtest.Option{mailtest.WithClock(func() time.Time { return now })}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// sendRaw delivers a hand-made message with the standard library's client
// (no TLS, no login), so the parser sees bytes we chose.
func sendRaw(t *testing.T, s *mailtest.Server, from string, to []string, raw string) error {
	t.Helper()
	c, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail(from); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, raw); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

const rawMixed = "From: =?utf-8?q?Cl=C3=ADnica_Sol?= <codes@clinic.example>\r\n" +
	"To: ana@example.com\r\n" +
	"Subject: =?utf-8?q?Tu_c=C3=B3digo?=\r\n" +
	"Message-ID: <pmsbridge.m1@clinic.example>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=outer\r\n" +
	"\r\n" +
	"--outer\r\n" +
	"Content-Type: multipart/alternative; boundary=inner\r\n" +
	"\r\n" +
	"--inner\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"Q8OzZGlnbzogcXdlcnR5dWk=\r\n" +
	"--inner\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"<p>C=C3=B3digo: <b>qwertyui</b></p>\r\n" +
	"--inner--\r\n" +
	"--outer--\r\n"

func TestParsesNestedMultipartAndEncodings(t *testing.T) {
	t.Parallel()
	s := start(t)
	if err := sendRaw(t, s, "bounce@clinic.example", []string{"ana@example.com"}, rawMixed); err != nil {
		t.Fatal(err)
	}
	msgs := s.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	m := msgs[0]
	checks := []struct{ name, got, want string }{
		{"subject", m.Subject, "Tu código"},
		{"message id", m.MessageID, "pmsbridge.m1@clinic.example"},
		{"text", m.Text, "Código: qwertyui"},
		{"html", strings.TrimSpace(m.HTML), "<p>Código: <b>qwertyui</b></p>"},
		{"envelope from", m.From, "bounce@clinic.example"},
		{"parse error", m.ParseError, ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if m.Seq != 1 || !m.Received.Equal(now) || len(m.To) != 1 {
		t.Errorf("seq %d received %v to %v", m.Seq, m.Received, m.To)
	}
}

func TestMailboxFoldsMessageIDs(t *testing.T) {
	t.Parallel()
	s := start(t)
	msg := func(id, to string) string {
		return "Subject: hello\r\nMessage-ID: <" + id + ">\r\nTo: " + to + "\r\n\r\nbody\r\n"
	}
	deliveries := []struct{ id, to string }{
		{"a@x", "ana@example.com"}, {"a@x", "ana@example.com"}, {"b@x", "ana@example.com"},
		{"c@x", "ben@example.com"}, {"a@x", "ana@example.com"},
	}
	for _, d := range deliveries {
		if err := sendRaw(t, s, "f@x", []string{d.to}, msg(d.id, d.to)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(s.Messages()); n != 5 {
		t.Fatalf("%d deliveries, want 5", n)
	}
	ana := s.Mailbox("ANA@example.com")
	if len(ana) != 2 || ana[0].MessageID != "a@x" || ana[0].Deliveries != 3 || ana[0].Last.Seq != 5 || ana[1].MessageID != "b@x" {
		t.Fatalf("ana's mailbox: %+v", summary(ana))
	}
	if all := s.Mailbox(""); len(all) != 3 {
		t.Fatalf("all mailboxes: %+v", summary(all))
	}
}

func summary(es []mailtest.MailboxEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%s×%d", e.MessageID, e.Deliveries))
	}
	return out
}

func TestFaults(t *testing.T) {
	t.Parallel()
	s := start(t)
	raw := "Subject: x\r\n\r\nbody\r\n"
	s.FailNext(2, mailtest.Fault{Code: 550})
	s.FailRecipient("gone@example.com", mailtest.Fault{Code: 551, Message: "User not local"})
	s.FailNext(1, mailtest.Fault{Code: 452, Stage: mailtest.AtData})

	// A message to two recipients is struck once by a FailNext rule, at its
	// first recipient.
	err := sendRaw(t, s, "f@x", []string{"a@example.com", "b@example.com"}, raw)
	if err == nil || !strings.HasPrefix(err.Error(), "550") {
		t.Fatalf("first message: %v, want 550", err)
	}
	if err := sendRaw(t, s, "f@x", []string{"a@example.com"}, raw); err == nil || !strings.HasPrefix(err.Error(), "550") {
		t.Fatalf("second message: %v, want 550", err)
	}
	// The RCPT rules are used up; the DATA rule is next.
	if err := sendRaw(t, s, "f@x", []string{"a@example.com"}, raw); err == nil || !strings.HasPrefix(err.Error(), "452") {
		t.Fatalf("third message: %v, want 452 at DATA", err)
	}
	if err := sendRaw(t, s, "f@x", []string{"gone@example.com"}, raw); err == nil || !strings.HasPrefix(err.Error(), "551") || !strings.Contains(err.Error(), "User not local") {
		t.Fatalf("to the refused recipient: %v", err)
	}
	if err := sendRaw(t, s, "f@x", []string{"a@example.com"}, raw); err != nil {
		t.Fatalf("after the faults: %v", err)
	}
	if n := len(s.Messages()); n != 1 {
		t.Fatalf("%d accepted, want 1", n)
	}
	s.ClearFaults()
	if err := sendRaw(t, s, "f@x", []string{"gone@example.com"}, raw); err != nil {
		t.Fatalf("after ClearFaults: %v", err)
	}
}

func TestReply421ClosesTheConnection(t *testing.T) {
	t.Parallel()
	s := start(t)
	s.FailNext(1, mailtest.Fault{Code: 421})
	c, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("f@x"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("a@example.com"); err == nil || !strings.HasPrefix(err.Error(), "421") {
		t.Fatalf("RCPT: %v, want 421", err)
	}
	if err := c.Noop(); err == nil {
		t.Fatal("the connection is still open after 421")
	}
}

func TestDropReplyRecordsTheMessage(t *testing.T) {
	t.Parallel()
	s := start(t)
	s.DropReplyNext(1)
	err := sendRaw(t, s, "f@x", []string{"a@example.com"}, "Message-ID: <d@x>\r\n\r\nbody\r\n")
	if err == nil {
		t.Fatal("the client heard a reply")
	}
	msgs := s.Messages()
	if len(msgs) != 1 || !msgs[0].ReplyLost {
		t.Fatalf("messages %d, want 1 with its reply lost", len(msgs))
	}
}

func TestAuthRequired(t *testing.T) {
	t.Parallel()
	s := start(t, mailtest.WithAuth("bridge", "pw"))
	if !strings.HasPrefix(s.URL(), "smtp://bridge:pw@127.0.0.1:") {
		t.Fatalf("URL %q", s.URL())
	}
	err := sendRaw(t, s, "f@x", []string{"a@example.com"}, "\r\nbody\r\n")
	if err == nil || !strings.HasPrefix(err.Error(), "502") {
		t.Fatalf("without login: %v", err)
	}
	c, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(smtp.PlainAuth("", "bridge", "wrong", "127.0.0.1")); err == nil || !strings.HasPrefix(err.Error(), "535") {
		t.Fatalf("wrong password: %v", err)
	}
}

func TestOutboxPage(t *testing.T) {
	t.Parallel()
	s := start(t, mailtest.WithSTARTTLS())
	sender, err := mail.New(mail.Config{SMTPURL: s.URL(), From: "pmsbridge <codes@pmsbridge.example>", RootCAs: s.RootCAs()})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := sender.MessageID("outbox")
	m, err := mail.CodeEmail{Clinic: "Harbour <Physio>", Code: "asdfghjk", AccessURL: "https://au.physitrack.com/access"}.Compose("zoe@example.com", id)
	if err != nil {
		t.Fatal(err)
	}
	s.DropReplyNext(1)
	_, _ = sender.Send(context.Background(), m) // reply lost
	if _, err := sender.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/dev/outbox/email", s.Handler()))
	t.Cleanup(srv.Close)
	res, err := http.Get(srv.URL + "/dev/outbox/email")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	page := string(body)
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("status %d type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	for _, want := range []string{"Your access code from Harbour &lt;Physio&gt;", "zoe@example.com", "asdfghjk",
		"https://au.physitrack.com/access", "2026-11-22 10:02:00 UTC", "2 times"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Count(page, "<article>") != 1 {
		t.Errorf("%d entries, want 1 (one Message-ID)", strings.Count(page, "<article>"))
	}
	if strings.Contains(page, "<Physio>") {
		t.Error("the clinic's name is not escaped")
	}
	res, err = http.Post(srv.URL+"/dev/outbox/email", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", res.StatusCode)
	}
}

func TestConcurrentClientsAndReaders(t *testing.T) {
	t.Parallel()
	s := start(t)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			raw := fmt.Sprintf("Message-ID: <m%d@x>\r\n\r\nbody\r\n", i)
			if err := sendRaw(t, s, "f@x", []string{"a@example.com"}, raw); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() { _ = s.Mailbox("a@example.com") })
	}
	wg.Wait()
	if n := len(s.Mailbox("a@example.com")); n != 10 {
		t.Fatalf("%d messages, want 10", n)
	}
}

func TestCloseTwiceAndRightAway(t *testing.T) {
	t.Parallel()
	s, err := mailtest.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := smtp.Dial(s.Addr()); err == nil {
		t.Fatal("still listening after Close")
	}
}
