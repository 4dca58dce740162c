// Package twiliotest is an in-process Twilio sandbox: an HTTP server that
// answers the part of Twilio's REST API that pmsbridge uses as Twilio
// documents it — POST and GET /2010-04-01/Accounts/{sid}/Messages.json and
// GET …/Messages/{sid}.json, HTTP Basic auth with the account sid and auth
// token (401, code 20003 otherwise), form validation with Twilio's error
// codes (21604 no To, 21603 no sender, 21602 no Body, 21617 too long,
// 21212/21606 bad or foreign From, 21705/21701 bad or foreign messaging
// service, 21211 invalid To, 21614 not a mobile, 21610 unsubscribed), the
// 201 Message resource with RFC 2822 dates, the list envelope with To,
// From and DateSent filters and PageToken paging — plus a Go API to inject
// failures (429, 5xx, a created message whose answer is lost), to hold
// messages in the queue, and to inspect what was sent. Twilio's documented
// test-credential "magic" numbers work as To: +15005550001 (21211),
// +15005550002 (21612), +15005550003 (21408), +15005550004 (21610),
// +15005550009 (21614).
//
// Tests of anything that sends SMS run against it; `pmsbridge dev` mounts
// it with OutboxHandler's page, which lists what was "sent". It keeps
// everything in memory and is for tests and development only.
package twiliotest

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"
)

// Demo credentials: they work against a sandbox only. DemoFrom is Twilio's
// documented magic "valid sender" number for test credentials.
const (
	DemoAccountSID          = "AC0123456789abcdef0123456789abcdef"
	DemoAuthToken           = "5a4dbb0c7e57c0de5a4dbb0c7e57c0de"
	DemoFrom                = "+15005550006"
	DemoMessagingServiceSID = "MG0123456789abcdef0123456789abcdef"
)

// Option configures a Sandbox.
type Option func(*Sandbox)

// WithCredentials sets the account sid and auth token the sandbox accepts
// (default DemoAccountSID, DemoAuthToken).
func WithCredentials(accountSID, authToken string) Option {
	return func(s *Sandbox) { s.sid, s.token = accountSID, authToken }
}

// WithClock sets the sandbox's clock (date_created, date_sent). Default
// time.Now.
func WithClock(now func() time.Time) Option { return func(s *Sandbox) { s.now = now } }

// WithURL makes New start no server: the sandbox is to be mounted by the
// caller at u (for example "http://localhost:8080/dev/twilio", served with
// http.StripPrefix("/dev/twilio", sandbox)). URL() returns u.
func WithURL(u string) Option { return func(s *Sandbox) { s.url = strings.TrimRight(u, "/") } }

// Message is a message as the sandbox holds it.
type Message struct {
	SID                 string
	AccountSID          string
	To                  string
	From                string // "" when sent through a messaging service
	MessagingServiceSID string // "" when sent from a number
	Body                string
	// Status is "queued" (From) or "accepted" (messaging service) until the
	// sandbox dispatches it, then "sent".
	Status      string
	DateCreated time.Time
	DateSent    time.Time // zero until dispatched
	DateUpdated time.Time
	NumSegments int
}

type failRule struct {
	op     string // "" = any API request
	n      int
	status int
}

// Sandbox is a running Twilio sandbox. It is safe for concurrent use.
type Sandbox struct {
	mu    sync.Mutex
	srv   *httptest.Server
	mux   *http.ServeMux
	url   string
	now   func() time.Time
	sid   string
	token string

	senders      map[string]bool // E.164 numbers the account owns
	services     map[string]bool // messaging service sids of the account
	unsubscribed map[string]bool // E.164 numbers that replied STOP
	refused      map[string]int  // E.164 numbers refused with a Twilio code (Refuse)
	messages     []*Message
	hold         bool

	fails      []failRule
	drops      int
	latency    time.Duration
	retryAfter time.Duration
	requests   map[string]int
}

// New starts a sandbox on a local port (unless WithURL was given). Close it
// when done. The account owns DemoFrom and DemoMessagingServiceSID.
func New(opts ...Option) *Sandbox {
	s := &Sandbox{
		now: time.Now, sid: DemoAccountSID, token: DemoAuthToken,
		senders:      map[string]bool{DemoFrom: true},
		services:     map[string]bool{DemoMessagingServiceSID: true},
		unsubscribed: map[string]bool{},
		refused:      map[string]int{},
		requests:     map[string]int{},
	}
	for _, o := range opts {
		o(s)
	}
	s.routes()
	if s.url == "" {
		s.srv = httptest.NewServer(s)
		s.url = s.srv.URL
	}
	return s
}

// Close stops the server (if New started one).
func (s *Sandbox) Close() {
	if s.srv != nil {
		s.srv.Close()
	}
}

// URL is the sandbox's address: the sms.twilio_base_url to use.
func (s *Sandbox) URL() string { return s.url }

// AccountSID and AuthToken are the credentials the sandbox accepts.
func (s *Sandbox) AccountSID() string { return s.sid }

// AuthToken is the auth token the sandbox accepts.
func (s *Sandbox) AuthToken() string { return s.token }

// ServeHTTP serves the API (under /2010-04-01/) and the outbox page (/).
func (s *Sandbox) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// AddSender gives the account another number it may send from.
func (s *Sandbox) AddSender(e164 string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.senders[e164] = true
}

// AddMessagingService gives the account another messaging service.
func (s *Sandbox) AddMessagingService(sid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.services[sid] = true
}

// Unsubscribe records that these numbers replied STOP: sending to them
// answers 400 with code 21610.
func (s *Sandbox) Unsubscribe(e164 ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range e164 {
		s.unsubscribed[n] = true
	}
}

// Resubscribe records that these numbers texted START again.
func (s *Sandbox) Resubscribe(e164 ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range e164 {
		delete(s.unsubscribed, n)
	}
}

// Refuse makes sending to this number answer 400 with a Twilio error code
// (until ClearRefusals): 21211 for a number that Twilio's own checks find
// invalid although it is well formed (libphonenumber, which MobileE164 and
// the sandbox's own validation use, knows less than Twilio does about
// numbers in service), 21612 unreachable, 21408 country not enabled, 21614
// not a mobile, 21610 unsubscribed; the message is not created.
func (s *Sandbox) Refuse(e164 string, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refused[e164] = code
}

// ClearRefusals undoes every Refuse.
func (s *Sandbox) ClearRefusals() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refused = map[string]int{}
}

// FailNext makes the next n API requests (any operation) answer status
// with Twilio's error body (429: code 20429; 500: 20500; 503: 20503).
func (s *Sandbox) FailNext(n, status int) { s.FailNextOp("", n, status) }

// FailNextOp makes the next n requests of one operation ("create_message",
// "list_messages", "fetch_message") answer status.
func (s *Sandbox) FailNextOp(op string, n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails = append(s.fails, failRule{op: op, n: n, status: status})
}

// SetLatency delays every API answer by d (or until the client gives up);
// a client with a shorter timeout sees a timeout.
func (s *Sandbox) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetRetryAfter makes injected 429 and 503 answers carry Retry-After with
// d in whole seconds (0, the default: no header, as Twilio usually sends).
func (s *Sandbox) SetRetryAfter(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retryAfter = d
}

// DropResponseNext makes the next n message creations take effect — the
// message is created and "sent" — but lose their answer: the client gets a
// 502 instead, as when a proxy or the network fails after Twilio acted (or
// the worker crashes before recording the sid). Tests use it to check that
// a retry does not send twice.
func (s *Sandbox) DropResponseNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drops += n
}

// HoldQueue keeps new messages "queued" (no date_sent) until Dispatch, as
// Twilio does while its queue is busy. Default off: messages are sent at
// once.
func (s *Sandbox) HoldQueue(hold bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hold = hold
}

// Dispatch sends every queued message (status "sent", date_sent now).
func (s *Sandbox) Dispatch() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	for _, m := range s.messages {
		if m.DateSent.IsZero() {
			m.Status, m.DateSent, m.DateUpdated = "sent", now, now
		}
	}
}

// Messages returns every message created, oldest first.
func (s *Sandbox) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	for i, m := range s.messages {
		out[i] = *m
	}
	return out
}

// MessagesTo returns the messages created for one number, oldest first.
func (s *Sandbox) MessagesTo(e164 string) []Message {
	return slices.DeleteFunc(s.Messages(), func(m Message) bool { return m.To != e164 })
}

// RequestCount is how many requests an operation received:
// "create_message", "list_messages", "fetch_message", "unknown"
// (authenticated or not).
func (s *Sandbox) RequestCount(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[op]
}

func (s *Sandbox) nowLocked() time.Time { return s.now().UTC().Truncate(time.Second) }

// newSID makes a resource sid: prefix + 32 hex digits.
func newSID(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}
