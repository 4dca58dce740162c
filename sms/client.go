// Package sms sends pmsbridge's text messages to patients (their programme
// code) through Twilio's REST API, with github.com/go-resty/resty/v2:
// POST {base}/2010-04-01/Accounts/{sid}/Messages.json with To, Body and
// From (or MessagingServiceSid), HTTP Basic sid:token. Every failure is an
// *Error with a pmsbridge cause: delivery_rejected for Twilio's 4xx (with a
// reason per known Twilio error code), delivery_unavailable for 429, 5xx,
// timeouts and network errors (with Twilio's Retry-After when it sends
// one).
//
// Twilio has no idempotency key for messages, so exactly-once rests on
// SendOnce: before sending again after an attempt whose outcome is unknown
// (a crash between sending and recording, a lost answer), it lists the
// messages Twilio holds for the number and takes one with our body,
// created after our message record, that no other record has claimed.
//
// MobileE164 turns a patient's number as typed in Cliniko into E.164 with
// github.com/nyaruka/phonenumbers, reading local numbers in the deployment
// region's plan; CodeText composes the code text in one GSM-7 segment
// where possible. Errors and logs never hold the auth token or a full
// phone number (MaskNumber).
//
// The package sms/twiliotest provides a Twilio sandbox to test against,
// also used by `pmsbridge dev`.
package sms

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-resty/resty/v2"
	"github.com/physitrack/pmsbridge"
)

// Message is one text message to send.
type Message struct {
	// To is the recipient in E.164 form (MobileE164 makes it).
	To string
	// Body is the text (CodeText.Compose makes it), at most 1,600
	// characters (Twilio's limit).
	Body string
}

// Sent is a message Twilio holds.
type Sent struct {
	// SID is Twilio's message sid ("SM" + 32 hex digits): the reference
	// to record.
	SID string
	// Status is Twilio's status at the time ("queued", "accepted", "sent",
	// "delivered", "failed", ...).
	Status string
	// Created is Twilio's date_created.
	Created time.Time
	// Segments is Twilio's num_segments (0 when it did not say).
	Segments int
	// Found is true when SendOnce found an earlier attempt's message
	// instead of sending a new one.
	Found bool
}

// Option changes how New builds a Client.
type Option func(*Client)

// WithHTTPClient sets the *http.Client used for requests (tests, proxies).
// Redirects are never followed either way.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithClock sets the clock used for Retry-After times (tests).
func WithClock(now func() time.Time) Option { return func(c *Client) { c.now = now } }

// Client talks to Twilio. It is safe for concurrent use.
type Client struct {
	cfg  Config
	http *resty.Client
	hc   *http.Client
	now  func() time.Time
}

// maxBody bounds how much of an answer the client reads.
const maxBody = 4 << 20

// maxBodyChars is Twilio's limit on Body.
const maxBodyChars = 1600

// New returns a client for cfg (after WithDefaults and Validate).
func New(cfg Config, opts ...Option) (*Client, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, now: time.Now}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		c.hc = &http.Client{}
	}
	hc := *c.hc
	// A redirect would replay the credentials to wherever it points.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.http = resty.NewWithClient(&hc).
		SetDisableWarn(true). // resty warns about Basic auth over http (the sandbox)
		SetLogger(nopLogger{}).
		SetResponseBodyLimit(maxBody)
	return c, nil
}

// nopLogger keeps resty silent: nothing it could log may reach our logs.
type nopLogger struct{}

func (nopLogger) Errorf(string, ...any) {}
func (nopLogger) Warnf(string, ...any)  {}
func (nopLogger) Debugf(string, ...any) {}

// messagesURL is the account's Messages.json.
func (c *Client) messagesURL() string {
	return c.cfg.BaseURL + "/2010-04-01/Accounts/" + c.cfg.AccountSID + "/Messages.json"
}

// apiMessage is the part of Twilio's Message resource the client reads.
type apiMessage struct {
	SID         string `json:"sid"`
	To          string `json:"to"`
	Body        string `json:"body"`
	Status      string `json:"status"`
	Direction   string `json:"direction"`
	DateCreated string `json:"date_created"`
	NumSegments string `json:"num_segments"`
}

func (m apiMessage) sent() Sent {
	s := Sent{SID: m.SID, Status: m.Status}
	s.Created, _ = time.Parse(time.RFC1123Z, m.DateCreated)
	s.Segments, _ = strconv.Atoi(m.NumSegments)
	return s
}

// Send asks Twilio to send m and returns the new message. It never retries
// by itself (a POST is not idempotent): after a delivery_unavailable error
// the message may or may not exist at Twilio, so the next attempt must go
// through SendOnce with Attempt.Retry set.
func (c *Client) Send(ctx context.Context, m Message) (Sent, error) {
	to := MaskNumber(m.To)
	if err := checkMessage(m); err != nil {
		return Sent{}, &Error{Op: OpCompose, Cause: pmsbridge.CauseInternal, To: to, Detail: err.Error()}
	}
	form := url.Values{"To": {m.To}, "Body": {m.Body}}
	if c.cfg.usesService() {
		form.Set("MessagingServiceSid", c.cfg.From)
	} else {
		form.Set("From", c.cfg.From)
	}
	res, err := c.do(ctx, OpSend, to, c.request(ctx).
		SetHeader("Content-Type", "application/x-www-form-urlencoded").
		SetBody(form.Encode()), http.MethodPost, c.messagesURL(), http.StatusCreated)
	if err != nil {
		return Sent{}, err
	}
	var am apiMessage
	if err := json.Unmarshal(res.Body(), &am); err != nil || am.SID == "" {
		// Twilio said 201: the message exists, but we cannot tell its sid.
		return Sent{}, &Error{Op: OpSend, Status: res.StatusCode(), Cause: pmsbridge.CauseDeliveryUnavailable, To: to,
			Detail: "Twilio's answer could not be read; the message may have been created"}
	}
	return am.sent(), nil
}

func checkMessage(m Message) error {
	switch {
	case !e164Re.MatchString(m.To):
		return errors.New("the recipient must be an E.164 number (use MobileE164)")
	case strings.TrimSpace(m.Body) == "":
		return errors.New("the message has no text")
	case len([]rune(m.Body)) > maxBodyChars:
		return errors.New("the message is longer than Twilio's 1,600 characters")
	}
	return nil
}

// Attempt describes the message request SendOnce works for.
type Attempt struct {
	// Retry is true when an earlier attempt of this message request may
	// have reached Twilio: the record says an attempt was started and no
	// sid was recorded (a crash, a lost answer, a delivery_unavailable).
	// False on the first attempt: nothing is looked up.
	Retry bool
	// Since is when the message record was written, before its first
	// attempt. Messages created earlier (by more than Config.LookupSkew)
	// are not this request's.
	Since time.Time
	// Exclude lists the sids already recorded for other message requests
	// (for example earlier sends of the same code to the same patient),
	// which look the same as this request's but are not it.
	Exclude []string
}

// SendOnce sends m unless an earlier attempt of the same message request
// already reached Twilio, in which case it returns that message with
// Found set. With a.Retry false it is Send. The look-up costs one GET per
// page (usually one). If the look-up cannot decide (Twilio unavailable, or
// more than LookupPages pages of recent messages to the number), nothing
// is sent and the error is delivery_unavailable, so the job retries later
// rather than risk sending twice.
func (c *Client) SendOnce(ctx context.Context, m Message, a Attempt) (Sent, error) {
	if a.Retry {
		s, found, err := c.Find(ctx, Lookup{To: m.To, Body: m.Body, Since: a.Since, Exclude: a.Exclude})
		if err != nil {
			return Sent{}, err
		}
		if found {
			s.Found = true
			return s, nil
		}
	}
	return c.Send(ctx, m)
}

// Lookup is what Find looks for.
type Lookup struct {
	To      string    // E.164
	Body    string    // the exact body sent
	Since   time.Time // the message record's creation time
	Exclude []string  // sids that belong to other message requests
}

// Find looks for a message this account sent to l.To with l.Body, created
// no earlier than l.Since minus Config.LookupSkew, whose sid is not in
// l.Exclude: GET Messages.json?To=…[&From=…]&PageSize=50, newest first,
// following next_page_uri. It does not filter on DateSent: a message still
// queued has no date_sent yet. Twilio's trial accounts prefix the body, so
// a body that contains l.Body matches. The newest match is returned.
func (c *Client) Find(ctx context.Context, l Lookup) (Sent, bool, error) {
	to := MaskNumber(l.To)
	if !e164Re.MatchString(l.To) || l.Body == "" {
		return Sent{}, false, &Error{Op: OpLookup, Cause: pmsbridge.CauseInternal, To: to,
			Detail: "a look-up needs the E.164 number and the body"}
	}
	q := url.Values{"To": {l.To}, "PageSize": {"50"}}
	if !c.cfg.usesService() {
		q.Set("From", c.cfg.From)
	}
	next := c.messagesURL() + "?" + q.Encode()
	oldest := l.Since.Add(-c.cfg.LookupSkew)
	for page := 0; page < c.cfg.LookupPages; page++ {
		res, err := c.do(ctx, OpLookup, to, c.request(ctx), http.MethodGet, next, http.StatusOK)
		if err != nil {
			return Sent{}, false, err
		}
		var p struct {
			Messages    []apiMessage `json:"messages"`
			NextPageURI *string      `json:"next_page_uri"`
		}
		if err := json.Unmarshal(res.Body(), &p); err != nil {
			return Sent{}, false, &Error{Op: OpLookup, Status: res.StatusCode(), Cause: pmsbridge.CauseDeliveryUnavailable,
				To: to, Detail: "Twilio's list of messages could not be read"}
		}
		older := 0
		for _, am := range p.Messages {
			s := am.sent()
			switch {
			case s.Created.IsZero() || s.Created.Before(oldest):
				older++
			case am.To == l.To && strings.HasPrefix(am.Direction, "outbound") &&
				strings.Contains(am.Body, l.Body) && !slices.Contains(l.Exclude, am.SID):
				return s, true, nil
			}
		}
		// Newest first: a page of only older messages ends the search.
		if p.NextPageURI == nil || *p.NextPageURI == "" || len(p.Messages) == 0 || older == len(p.Messages) {
			return Sent{}, false, nil
		}
		if next, err = c.sameOrigin(*p.NextPageURI); err != nil {
			return Sent{}, false, &Error{Op: OpLookup, Cause: pmsbridge.CauseDeliveryUnavailable, To: to, Detail: err.Error()}
		}
	}
	return Sent{}, false, &Error{Op: OpLookup, Cause: pmsbridge.CauseDeliveryUnavailable, To: to,
		Detail: "too many recent messages to this number to check whether the earlier attempt arrived; nothing sent"}
}

// sameOrigin resolves a next_page_uri (relative to the API's host) and
// refuses any that leads elsewhere: the credentials go with it.
func (c *Client) sameOrigin(next string) (string, error) {
	base, err := url.Parse(c.cfg.BaseURL)
	if err != nil {
		return "", err
	}
	n, err := base.Parse(next)
	if err != nil || n.Scheme != base.Scheme || !strings.EqualFold(n.Host, base.Host) {
		return "", errors.New("Twilio's next-page link points to another host; not followed")
	}
	return n.String(), nil
}

// request starts a request with the credentials and the timeout.
func (c *Client) request(ctx context.Context) *resty.Request {
	return c.http.R().SetContext(ctx).
		SetBasicAuth(c.cfg.AccountSID, c.cfg.AuthToken).
		SetHeader("Accept", "application/json")
}

// do runs one request within Config.Timeout and turns every failure into
// an *Error.
func (c *Client) do(ctx context.Context, op, to string, rq *resty.Request, method, u string, want int) (*resty.Response, error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	rq.SetContext(actx)
	res, err := rq.Execute(method, u)
	if err != nil {
		// Keep the inner error only: *url.Error's text repeats the URL,
		// whose query holds the phone number.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		detail := "no answer from Twilio"
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			detail = "Twilio did not answer within " + c.cfg.Timeout.String()
		}
		if res != nil && res.RawResponse != nil && res.StatusCode() != 0 {
			detail = "Twilio's answer could not be read"
		}
		return nil, &Error{Op: op, Cause: pmsbridge.CauseDeliveryUnavailable, To: to, Detail: detail, Err: err}
	}
	if res.StatusCode() == want {
		return res, nil
	}
	var at time.Time
	if res.StatusCode() == http.StatusTooManyRequests || res.StatusCode() >= 500 {
		at = retryAfter(res.Header().Get("Retry-After"), c.now())
	}
	return nil, statusError(op, to, res.StatusCode(), res.Body(), at)
}
