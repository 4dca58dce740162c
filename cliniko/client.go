// Package cliniko is pmsbridge's client for the Cliniko API: shards taken from
// API keys, authentication, a request budget per Cliniko user shared by every
// process through Redis, retries of idempotent reads, typed errors carrying
// pmsbridge cause codes, paginated patient listings and the three-step
// patient attachment upload. See cliniko-api.md for the API's behaviour and
// README.md in this directory for the choices made where it is unconfirmed.
//
// The package cliniko/sandbox provides an in-process Cliniko sandbox to
// test against.
package cliniko

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-resty/resty/v2"
	"github.com/physitrack/pmsbridge"
	"github.com/redis/go-redis/v9"
)

// Auth is who a call is made as: a Cliniko API key, and the id of the
// Cliniko user it belongs to when known. The user id keys the shared request
// budget (Cliniko's limit is per user); leave it empty only when checking a
// new key (GetUser).
type Auth struct {
	Key    string
	UserID string
}

// Call describes one HTTP call the client made, for metrics and the audit
// log. It holds no key, no query values and no patient details beyond the
// Cliniko patient id.
type Call struct {
	// Op is the operation: "get_user", "get_patient", "list_patients",
	// "list_attachments", "presign", "storage_upload", "create_attachment"
	// or "list_businesses".
	Op string
	// Method and Path of the request; Path has no query string.
	Method string
	Path   string
	// PatientID is the Cliniko patient id the call was about, if any.
	PatientID string
	// Status is the HTTP status, 0 when there was no answer.
	Status int
	// Duration of the HTTP call (without waiting for the limiter).
	Duration time.Duration
	// LimiterWait is how long the call waited for the request budget.
	LimiterWait time.Duration
	// Err is the call's error, nil on success.
	Err error
}

// Option changes how New builds a Client.
type Option func(*Client)

// WithObserver sets a function called after every HTTP call (including each
// retry), for metrics and the audit log. It runs on the calling goroutine and
// should be quick.
func WithObserver(f func(ctx context.Context, c Call)) Option {
	return func(c *Client) { c.observer = f }
}

// WithHTTPClient sets the *http.Client used for requests (tests, proxies).
// Per-request timeouts come from Config.Timeout either way.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.hc = hc }
}

// WithClock sets the clock used for RetryAt times (tests).
func WithClock(now func() time.Time) Option {
	return func(c *Client) { c.now = now }
}

// WithMetrics makes the client record its calls in m.
func WithMetrics(m *Metrics) Option {
	return func(c *Client) { c.metrics = m }
}

// Client talks to Cliniko. It is safe for concurrent use; one Client serves
// every practitioner (the key comes with each call).
type Client struct {
	cfg      Config
	http     *resty.Client
	hc       *http.Client
	lim      *limiter
	observer func(context.Context, Call)
	metrics  *Metrics
	now      func() time.Time
}

// maxBody bounds how much of an answer the client reads.
const maxBody = 16 << 20

// Budget is where the Cliniko users' request budgets are kept: the Redis
// shared by every process of a deployment, and the namer of their keys,
// which belongs to whoever owns that Redis's key layout
// (store.Store.ClinikoBudgetKey). Both are required.
type Budget struct {
	Redis redis.UniversalClient
	// Key names the Redis key of one budget, "<shard>:<user id>" (or
	// "<shard>:k:<key hash>" while the user is not known yet). The limiter
	// library puts its own "rate:" in front.
	Key func(budget string) string
}

// New returns a client whose request budgets are kept in b.
func New(cfg Config, b Budget, opts ...Option) (*Client, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if b.Redis == nil || b.Key == nil {
		return nil, errors.New("cliniko: a Redis client and a key namer are required for the shared request budget")
	}
	c := &Client{cfg: cfg, now: time.Now}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		c.hc = &http.Client{
			// Cliniko's API does not redirect; a redirect is answered as the
			// error it is instead of being followed with the key.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	c.http = resty.NewWithClient(c.hc).
		SetDisableWarn(true). // resty warns about Basic auth over http (the sandbox)
		SetLogger(nopLogger{}).
		SetResponseBodyLimit(maxBody)
	c.lim = newLimiter(b, cfg.RequestsPerMinute, c.now)
	return c, nil
}

// nopLogger keeps resty silent: nothing it could log may reach our logs.
type nopLogger struct{}

func (nopLogger) Errorf(string, ...any) {}
func (nopLogger) Warnf(string, ...any)  {}
func (nopLogger) Debugf(string, ...any) {}

// request is one logical Cliniko operation step.
type request struct {
	op          string
	method      string
	url         string // absolute
	path        string // for Call.Path
	patientID   string
	body        []byte
	contentType string
	accept      string
	noAuth      bool // file storage: no Cliniko credentials
	limited     bool // counts against the Cliniko user's budget
	retries     int  // extra attempts after a 5xx/timeout/network error
	want        int  // success status; 0 means any 2xx
}

type response struct {
	status int
	body   []byte
	header http.Header
}

// baseURL is the API address for shard.
func (c *Client) baseURL(shard string) string {
	return strings.TrimRight(strings.ReplaceAll(c.cfg.BaseURL, "{shard}", shard), "/")
}

// shard returns the key's shard, or an *Error (cause cliniko_unauthorized,
// wrapping ErrBadShard) when the suffix is not a shard.
func (c *Client) shard(op string, a Auth) (string, error) {
	s, err := ShardFromKey(a.Key)
	if err != nil {
		return "", &Error{Op: op, Cause: pmsbridge.CauseClinikoUnauthorized, Err: err}
	}
	return s, nil
}

// do runs r: waits for the budget, sends, retries what may be retried, and
// turns every failure into an *Error.
func (c *Client) do(ctx context.Context, a Auth, shard string, r request) (response, error) {
	for attempt := 0; ; attempt++ {
		var wait time.Duration
		if r.limited {
			w, err := c.lim.take(ctx, limiterKey(shard, a))
			wait = w
			c.metrics.observeWait(w)
			if err != nil {
				var el errLimited
				switch {
				case errors.As(err, &el):
					return response{}, &Error{Op: r.op, Cause: pmsbridge.CauseClinikoRateLimited,
						Message: "the request budget for this Cliniko user is used up", RetryAt: el.retryAt}
				case ctx.Err() != nil:
					return response{}, &Error{Op: r.op, Cause: pmsbridge.CauseClinikoUnavailable, Err: ctx.Err()}
				default:
					// Redis trouble: transient, like Cliniko being unreachable.
					return response{}, &Error{Op: r.op, Cause: pmsbridge.CauseClinikoUnavailable,
						Message: "the shared request budget could not be checked", Err: err}
				}
			}
		}
		res, dur, err := c.send(ctx, a, r)
		call := Call{Op: r.op, Method: r.method, Path: r.path, PatientID: r.patientID,
			Status: res.status, Duration: dur, LimiterWait: wait, Err: err}
		c.metrics.observe(call)
		if c.observer != nil {
			c.observer(ctx, call)
		}
		if err == nil {
			return res, nil
		}
		var e *Error
		retryable := errors.As(err, &e) && (e.Status == 0 || e.Status >= 500)
		if !retryable || attempt >= r.retries || ctx.Err() != nil {
			return res, err
		}
		backoff := c.cfg.RetryBackoff << attempt
		backoff += time.Duration(rand.Int64N(int64(backoff)/2 + 1))
		if err := sleep(ctx, backoff); err != nil {
			return res, &Error{Op: r.op, Cause: pmsbridge.CauseClinikoUnavailable, Err: err}
		}
	}
}

// send makes one HTTP call.
func (c *Client) send(ctx context.Context, a Auth, r request) (response, time.Duration, error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	accept := r.accept
	if accept == "" {
		accept = "application/json"
	}
	rq := c.http.R().SetContext(actx).
		SetHeader("User-Agent", c.cfg.UserAgent).
		SetHeader("Accept", accept)
	if !r.noAuth {
		rq.SetBasicAuth(a.Key, "")
	}
	if r.body != nil {
		ct := r.contentType
		if ct == "" {
			ct = "application/json"
		}
		rq.SetHeader("Content-Type", ct).SetBody(r.body)
	}
	start := time.Now()
	rs, err := rq.Execute(r.method, r.url)
	dur := time.Since(start)
	if err != nil {
		// Keep the inner error only: *url.Error's text repeats the URL,
		// which may carry query values.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if rs != nil && rs.RawResponse != nil && rs.StatusCode() != 0 {
			// An answer arrived but could not be read whole.
			return response{status: rs.StatusCode()}, dur, &Error{Op: r.op, Status: rs.StatusCode(),
				Cause: pmsbridge.CauseClinikoUnavailable, Message: "Cliniko's answer could not be read", Err: err}
		}
		msg := "no answer from Cliniko"
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			msg = "Cliniko did not answer within " + c.cfg.Timeout.String()
		}
		return response{}, dur, &Error{Op: r.op, Cause: pmsbridge.CauseClinikoUnavailable, Message: msg, Err: err}
	}
	res := response{status: rs.StatusCode(), body: rs.Body(), header: rs.Header()}
	ok := res.status >= 200 && res.status < 300
	if r.want != 0 {
		ok = res.status == r.want
	}
	if ok {
		return res, dur, nil
	}
	e := statusError(r.op, res.status, res.body)
	if res.status == http.StatusTooManyRequests {
		e.RetryAt = c.retryAt(res.header)
	}
	return res, dur, e
}

// retryAt reads X-RateLimit-Reset (Unix seconds). Cliniko documents no other
// header; when it is missing or unreadable we wait a full minute, the length
// of Cliniko's budget period.
func (c *Client) retryAt(h http.Header) time.Time {
	if v := strings.TrimSpace(h.Get("X-RateLimit-Reset")); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
			return time.Unix(n, 0).UTC()
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil && f > 0 {
			return time.Unix(int64(f), 0).UTC()
		}
	}
	return c.now().Add(time.Minute).UTC()
}

// decodeError is the *Error for a success answer whose body we cannot read;
// treated as transient (a proxy's page, a truncated answer).
func decodeError(op string, status int, err error) error {
	return &Error{Op: op, Status: status, Cause: pmsbridge.CauseClinikoUnavailable,
		Message: "Cliniko's answer could not be read", Err: err}
}

var idRe = regexp.MustCompile(`^[0-9]{1,20}$`)

// checkID refuses anything but a Cliniko id (digits) before it reaches a
// URL path: patient ids arrive from browsers.
func checkID(op, what, id string) error {
	if !idRe.MatchString(id) {
		return &Error{Op: op, Cause: pmsbridge.CauseInvalidPayload, Message: fmt.Sprintf("%s is not a Cliniko id", what)}
	}
	return nil
}

// sameOrigin checks that next (resolved against the page it came from) is
// on the API's own scheme and host: the key is never sent elsewhere.
func sameOrigin(op, base, current, next string) (string, error) {
	b, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("base url: %w", err)
	}
	cur, err := url.Parse(current)
	if err != nil {
		return "", fmt.Errorf("current url: %w", err)
	}
	n, err := cur.Parse(next)
	if err != nil || n.Scheme != b.Scheme || !strings.EqualFold(n.Host, b.Host) {
		return "", &Error{Op: op, Cause: pmsbridge.CauseInternal,
			Message: "Cliniko's next-page link points to another host; not followed"}
	}
	return n.String(), nil
}
