package sms_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/sms"
	"github.com/physitrack/pmsbridge/sms/twiliotest"
)

const (
	mobile = "+61412345678"
	body   = "Harbour Physio: your programme code is qwertyui. Open https://au.physitrack.com/access and enter the code and your year of birth."
)

// clock is a settable clock shared by the sandbox and the client.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type bundle struct {
	sb     *twiliotest.Sandbox
	client *sms.Client
	clock  *clock
}

// setup starts a sandbox and a client for it; edit changes the client's
// config first.
func setup(t *testing.T, edit func(*sms.Config)) bundle {
	t.Helper()
	ck := &clock{now: time.Date(2026, 11, 22, 10, 2, 0, 0, time.UTC)}
	sb := twiliotest.New(twiliotest.WithClock(ck.Now))
	t.Cleanup(sb.Close)
	cfg := sms.Config{AccountSID: twiliotest.DemoAccountSID, AuthToken: twiliotest.DemoAuthToken,
		From: twiliotest.DemoFrom, BaseURL: sb.URL(), Timeout: 10 * time.Second}
	if edit != nil {
		edit(&cfg)
	}
	c, err := sms.New(cfg, sms.WithClock(ck.Now))
	if err != nil {
		t.Fatal(err)
	}
	return bundle{sb: sb, client: c, clock: ck}
}

// smsError asserts err is an *sms.Error with the cause, and that no text
// of it holds the full number or the auth token.
func smsError(t *testing.T, err error, cause pmsbridge.Cause) *sms.Error {
	t.Helper()
	var e *sms.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *sms.Error", err, err)
	}
	if c := pmsbridge.CauseOf(err); c != cause {
		t.Fatalf("cause %s, want %s (%v)", c, cause, err)
	}
	for _, s := range []string{err.Error(), pmsbridge.MessageOf(err)} {
		if strings.Contains(s, mobile) || strings.Contains(s, "412345678") || strings.Contains(s, twiliotest.DemoAuthToken) {
			t.Fatalf("error text holds the number or the token: %q", s)
		}
	}
	t.Logf("error: %v\nmessage: %s", err, pmsbridge.MessageOf(err))
	return e
}

func TestSend(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	s, err := b.client.Send(context.Background(), sms.Message{To: mobile, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.SID) != 34 || !strings.HasPrefix(s.SID, "SM") || s.Status != "queued" || s.Segments != 1 || !s.Created.Equal(b.clock.Now()) || s.Found {
		t.Errorf("sent %+v", s)
	}
	msgs := b.sb.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	m := msgs[0]
	if m.SID != s.SID || m.To != mobile || m.From != twiliotest.DemoFrom || m.MessagingServiceSID != "" || m.Body != body {
		t.Errorf("sandbox holds %+v", m)
	}
}

func TestSendThroughMessagingService(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *sms.Config) { c.From = twiliotest.DemoMessagingServiceSID })
	s, err := b.client.Send(context.Background(), sms.Message{To: mobile, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != "accepted" {
		t.Errorf("status %q, want accepted (a service picks the sender)", s.Status)
	}
	m := b.sb.Messages()[0]
	if m.MessagingServiceSID != twiliotest.DemoMessagingServiceSID || m.From != "" {
		t.Errorf("sandbox holds from %q service %q", m.From, m.MessagingServiceSID)
	}
}

func TestTwilioRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc    string
		to      string
		edit    func(*sms.Config)
		prepare func(*twiliotest.Sandbox)
		status  int
		code    int
		setup   bool
		message string
	}{
		{desc: "21211 invalid number", to: "+61412345", status: 400, code: 21211,
			message: "is not a valid phone number"},
		{desc: "21211 Twilio's magic invalid number", to: "+15005550001", status: 400, code: 21211,
			message: "+1 5**-***-*001 is not a valid phone number"},
		{desc: "21610 unsubscribed", to: mobile, prepare: func(sb *twiliotest.Sandbox) { sb.Unsubscribe(mobile) }, status: 400, code: 21610,
			message: "they replied STOP"},
		{desc: "21614 a landline", to: "+61293744000", status: 400, code: 21614,
			message: "is not a mobile number"},
		{desc: "21612 unreachable", to: "+15005550002", status: 400, code: 21612,
			message: "cannot reach"},
		{desc: "21408 region not enabled", to: "+15005550003", status: 400, code: 21408, setup: true,
			message: "not enabled in the clinic's Twilio account"},
		{desc: "21606 sender not ours", to: mobile, edit: func(c *sms.Config) { c.From = "+15005550007" }, status: 400, code: 21606, setup: true,
			message: "sender number"},
		{desc: "21701 messaging service not ours", to: mobile, edit: func(c *sms.Config) { c.From = "MG" + strings.Repeat("f", 32) }, status: 400, code: 21701, setup: true,
			message: "messaging service"},
		{desc: "20003 wrong token", to: mobile, edit: func(c *sms.Config) { c.AuthToken = "wrong-" + twiliotest.DemoAuthToken }, status: 401, code: 20003, setup: true,
			message: "did not accept pmsbridge's account SID and auth token"},
		{desc: "20003 another account sid", to: mobile, edit: func(c *sms.Config) { c.AccountSID = "AC" + strings.Repeat("0", 32) }, status: 401, code: 20003, setup: true,
			message: "auth token"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tc.edit)
			if tc.prepare != nil {
				tc.prepare(b.sb)
			}
			_, err := b.client.Send(context.Background(), sms.Message{To: tc.to, Body: body})
			e := smsError(t, err, pmsbridge.CauseDeliveryRejected)
			if e.Status != tc.status || e.Code != tc.code || e.Setup != tc.setup || e.Op != sms.OpSend {
				t.Errorf("status %d code %d setup %v op %s, want %d %d %v send", e.Status, e.Code, e.Setup, e.Op, tc.status, tc.code, tc.setup)
			}
			if msg := pmsbridge.MessageOf(err); !strings.Contains(msg, tc.message) {
				t.Errorf("message %q lacks %q", msg, tc.message)
			}
			if strings.Contains(err.Error(), "wrong-") {
				t.Errorf("error holds the token: %v", err)
			}
			if n := len(b.sb.Messages()); n != 0 {
				t.Fatalf("%d messages created", n)
			}
		})
	}
}

func TestTransientFailuresThenOneMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc       string
		status     int
		retryAfter time.Duration
	}{
		{desc: "503", status: http.StatusServiceUnavailable},
		{desc: "500", status: http.StatusInternalServerError},
		{desc: "429", status: http.StatusTooManyRequests},
		{desc: "429 with Retry-After", status: http.StatusTooManyRequests, retryAfter: 30 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			b.sb.SetRetryAfter(tc.retryAfter)
			b.sb.FailNext(1, tc.status)
			m := sms.Message{To: mobile, Body: body}
			since := b.clock.Now()
			_, err := b.client.Send(context.Background(), m)
			e := smsError(t, err, pmsbridge.CauseDeliveryUnavailable)
			if e.Status != tc.status {
				t.Errorf("status %d", e.Status)
			}
			wantAt := time.Time{}
			if tc.retryAfter > 0 {
				wantAt = b.clock.Now().Add(tc.retryAfter)
			}
			if !e.RetryAt.Equal(wantAt) {
				t.Errorf("RetryAt %v, want %v", e.RetryAt, wantAt)
			}
			// The job retries: an earlier attempt exists, so SendOnce looks
			// first, finds nothing, and sends.
			s, err := b.client.SendOnce(context.Background(), m, sms.Attempt{Retry: true, Since: since})
			if err != nil || s.Found {
				t.Fatalf("retry: %+v, %v", s, err)
			}
			if n := len(b.sb.MessagesTo(mobile)); n != 1 {
				t.Fatalf("%d messages, want 1", n)
			}
		})
	}
}

func TestNoAnswer(t *testing.T) {
	t.Parallel()
	t.Run("server gone", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		b.sb.Close()
		_, err := b.client.Send(context.Background(), sms.Message{To: mobile, Body: body})
		e := smsError(t, err, pmsbridge.CauseDeliveryUnavailable)
		if e.Status != 0 || e.Err == nil {
			t.Errorf("status %d err %v", e.Status, e.Err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *sms.Config) { c.Timeout = 200 * time.Millisecond })
		b.sb.SetLatency(time.Minute)
		_, err := b.client.Send(context.Background(), sms.Message{To: mobile, Body: body})
		smsError(t, err, pmsbridge.CauseDeliveryUnavailable)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "did not answer within 200ms") {
			t.Errorf("error %v", err)
		}
	})
}

func TestSendOnceFindsTheMessageSentBeforeACrash(t *testing.T) {
	t.Parallel()
	for _, held := range []bool{false, true} {
		t.Run(fmt.Sprintf("queue held %v", held), func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			// Held: the message is still queued (no date_sent) when the
			// retry looks; a DateSent filter would miss it.
			b.sb.HoldQueue(held)
			m := sms.Message{To: mobile, Body: body}
			since := b.clock.Now() // the message record is written
			b.clock.Add(time.Second)
			// Twilio creates the message; the answer is lost (or the worker
			// dies before recording the sid).
			b.sb.DropResponseNext(1)
			_, err := b.client.SendOnce(context.Background(), m, sms.Attempt{Since: since})
			smsError(t, err, pmsbridge.CauseDeliveryUnavailable)
			if n := len(b.sb.Messages()); n != 1 {
				t.Fatalf("%d messages after the lost answer", n)
			}
			b.clock.Add(90 * time.Second) // asynq brings the task back
			s, err := b.client.SendOnce(context.Background(), m, sms.Attempt{Retry: true, Since: since})
			if err != nil {
				t.Fatal(err)
			}
			msgs := b.sb.Messages()
			if len(msgs) != 1 || !s.Found || s.SID != msgs[0].SID {
				t.Fatalf("found %+v; sandbox holds %d messages", s, len(msgs))
			}
			if b.sb.RequestCount("list_messages") != 1 || b.sb.RequestCount("create_message") != 1 {
				t.Errorf("requests: list %d create %d", b.sb.RequestCount("list_messages"), b.sb.RequestCount("create_message"))
			}
		})
	}
}

func TestSendOnceTellsResendsApart(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	m := sms.Message{To: mobile, Body: body}
	// Request 1 is sent and recorded.
	first, err := b.client.SendOnce(context.Background(), m, sms.Attempt{Since: b.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	b.clock.Add(20 * time.Second)
	// Request 2 (a resend, same text) is recorded; its first attempt fails
	// before reaching Twilio.
	since2 := b.clock.Now()
	b.sb.FailNextOp("create_message", 1, http.StatusServiceUnavailable)
	if _, err := b.client.SendOnce(context.Background(), m, sms.Attempt{Since: since2}); err == nil {
		t.Fatal("no error from the failed attempt")
	}
	// Its retry sees request 1's message, which is excluded: it sends.
	s, err := b.client.SendOnce(context.Background(), m, sms.Attempt{Retry: true, Since: since2, Exclude: []string{first.SID}})
	if err != nil || s.Found {
		t.Fatalf("retry of request 2: %+v, %v", s, err)
	}
	// Request 3 is created and its answer lost; its retry finds it, not 1
	// or 2.
	b.clock.Add(20 * time.Second)
	since3 := b.clock.Now()
	b.sb.DropResponseNext(1)
	_, _ = b.client.SendOnce(context.Background(), m, sms.Attempt{Since: since3})
	third, err := b.client.SendOnce(context.Background(), m, sms.Attempt{Retry: true, Since: since3, Exclude: []string{first.SID, s.SID}})
	if err != nil || !third.Found {
		t.Fatalf("retry of request 3: %+v, %v", third, err)
	}
	msgs := b.sb.MessagesTo(mobile)
	if len(msgs) != 3 || third.SID != msgs[2].SID {
		t.Fatalf("%d messages; found %s", len(msgs), third.SID)
	}
}

func TestSendOnceIgnoresOldMessagesAndOtherTexts(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	m := sms.Message{To: mobile, Body: body}
	if _, err := b.client.Send(context.Background(), m); err != nil { // last week's code text
		t.Fatal(err)
	}
	if _, err := b.client.Send(context.Background(), sms.Message{To: mobile, Body: "another text"}); err != nil {
		t.Fatal(err)
	}
	b.clock.Add(7 * 24 * time.Hour)
	since := b.clock.Now()
	b.sb.FailNextOp("create_message", 1, http.StatusBadGateway)
	_, _ = b.client.SendOnce(context.Background(), m, sms.Attempt{Since: since})
	s, err := b.client.SendOnce(context.Background(), m, sms.Attempt{Retry: true, Since: since})
	if err != nil || s.Found {
		t.Fatalf("%+v, %v: a week-old message is not this request's", s, err)
	}
	if n := len(b.sb.MessagesTo(mobile)); n != 3 {
		t.Fatalf("%d messages", n)
	}
}

func TestSendOnceReadsPagesAndGivesUp(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *sms.Config) { c.LookupPages = 3 })
	m := sms.Message{To: mobile, Body: body}
	since := b.clock.Now()
	b.sb.DropResponseNext(1)
	_, _ = b.client.Send(context.Background(), m) // our message, answer lost
	for i := range 120 {                          // then a flood of other texts to the number
		if _, err := b.client.Send(context.Background(), sms.Message{To: mobile, Body: fmt.Sprintf("other %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := b.client.SendOnce(context.Background(), m, sms.Attempt{Retry: true, Since: since})
	if err != nil || !s.Found {
		t.Fatalf("%+v, %v: want it found on page 3", s, err)
	}
	if got := b.sb.RequestCount("list_messages"); got != 3 {
		t.Errorf("%d list requests, want 3", got)
	}

	// With room for two pages only, the look-up cannot decide: nothing is
	// sent.
	b2 := setup(t, func(c *sms.Config) { c.LookupPages = 2 })
	for i := range 120 {
		if _, err := b2.client.Send(context.Background(), sms.Message{To: mobile, Body: fmt.Sprintf("other %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = b2.client.SendOnce(context.Background(), m, sms.Attempt{Retry: true, Since: since})
	e := smsError(t, err, pmsbridge.CauseDeliveryUnavailable)
	if e.Op != sms.OpLookup || len(b2.sb.MessagesTo(mobile)) != 120 {
		t.Fatalf("op %s, %d messages", e.Op, len(b2.sb.MessagesTo(mobile)))
	}
}

func TestSendOnceLookupFailureSendsNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.sb.FailNextOp("list_messages", 1, http.StatusServiceUnavailable)
	_, err := b.client.SendOnce(context.Background(), sms.Message{To: mobile, Body: body}, sms.Attempt{Retry: true, Since: b.clock.Now()})
	e := smsError(t, err, pmsbridge.CauseDeliveryUnavailable)
	if e.Op != sms.OpLookup || len(b.sb.Messages()) != 0 {
		t.Fatalf("op %s, %d messages", e.Op, len(b.sb.Messages()))
	}
}

func TestBadMessagesAreNotSent(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for _, m := range []sms.Message{
		{To: "0412 345 678", Body: body}, // not normalised
		{To: mobile, Body: " "},
		{To: mobile, Body: strings.Repeat("a", 1601)},
	} {
		_, err := b.client.Send(context.Background(), m)
		e := smsError(t, err, pmsbridge.CauseInternal)
		if e.Op != sms.OpCompose {
			t.Errorf("op %s", e.Op)
		}
	}
	if n := b.sb.RequestCount("create_message"); n != 0 {
		t.Fatalf("%d requests", n)
	}
}

func TestConcurrentSends(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			to := fmt.Sprintf("+614123450%02d", i)
			if _, err := b.client.Send(context.Background(), sms.Message{To: to, Body: body}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := len(b.sb.Messages()); n != 20 {
		t.Fatalf("%d messages", n)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	const token = "tok-3a9f"
	good := sms.Config{AccountSID: twiliotest.DemoAccountSID, AuthToken: token, From: "+61480000000"}
	tests := []struct {
		desc string
		edit func(*sms.Config)
		want string
	}{
		{desc: "valid", edit: func(*sms.Config) {}},
		{desc: "messaging service", edit: func(c *sms.Config) { c.From = twiliotest.DemoMessagingServiceSID }},
		{desc: "bad sid", edit: func(c *sms.Config) { c.AccountSID = "AC123" }, want: "account SID"},
		{desc: "no token", edit: func(c *sms.Config) { c.AuthToken = "" }, want: "auth token is required"},
		{desc: "bad from", edit: func(c *sms.Config) { c.From = "0412345678" }, want: "from must be"},
		{desc: "base URL with a path", edit: func(c *sms.Config) { c.BaseURL = "https://api.twilio.com/2010-04-01" }, want: "base URL"},
		{desc: "base URL with a login", edit: func(c *sms.Config) { c.BaseURL = "https://u:" + token + "@api.twilio.com" }, want: "base URL"},
	}
	for _, tc := range tests {
		cfg := good
		tc.edit(&cfg)
		_, err := sms.New(cfg)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.desc, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.desc, err, tc.want)
		case err != nil && strings.Contains(err.Error(), token):
			t.Errorf("%s: error holds the token", tc.desc)
		}
	}
}
