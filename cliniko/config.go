package cliniko

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Defaults of Config (and of the cliniko.* configuration keys, which take
// them from here).
const (
	// DefaultBaseURL is Cliniko's API address; {shard} is replaced by the
	// shard taken from the API key (cliniko-api.md §1).
	DefaultBaseURL = "https://api.{shard}.cliniko.com/v1"
	// DefaultRequestsPerMinute is Cliniko's documented limit per user.
	DefaultRequestsPerMinute = 200
	// DefaultTimeout bounds one HTTP request.
	DefaultTimeout = 15 * time.Second
	// DefaultGetRetries is how many times a GET is retried inside one call.
	DefaultGetRetries = 2
	// DefaultRetryBackoff is the pause before the first GET retry.
	DefaultRetryBackoff = 250 * time.Millisecond
)

// Config configures a Client. The zero value of every field means "use the
// default"; call WithDefaults then Validate (New does both).
type Config struct {
	// BaseURL is the API address with a {shard} placeholder. Default
	// DefaultBaseURL. The sandbox uses "http://127.0.0.1:PORT/{shard}/v1".
	BaseURL string
	// UserAgent identifies us to Cliniko, "Name (email)" (CheckUserAgent).
	// Required: Cliniko blocks requests without one.
	UserAgent string
	// RequestsPerMinute is the request budget per Cliniko user, shared by
	// every process using the same Redis. Default DefaultRequestsPerMinute.
	RequestsPerMinute int
	// Timeout bounds one HTTP request (one attempt). Default DefaultTimeout.
	Timeout time.Duration
	// GetRetries is how many times an idempotent GET is retried after a 5xx,
	// a timeout or a network error, inside one call. Default
	// DefaultGetRetries; a negative value means no retries.
	GetRetries int
	// RetryBackoff is the pause before the first GET retry; it doubles for
	// each further retry (plus up to 50% jitter). Default
	// DefaultRetryBackoff.
	RetryBackoff time.Duration
}

// WithDefaults returns a copy of c with every unset field filled in.
func (c Config) WithDefaults() Config {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if c.RequestsPerMinute == 0 {
		c.RequestsPerMinute = DefaultRequestsPerMinute
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.GetRetries == 0 {
		c.GetRetries = DefaultGetRetries
	} else if c.GetRetries < 0 {
		c.GetRetries = 0
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	return c
}

var userAgentRe = regexp.MustCompile(`^([^()]*[^()\s])\s+\(([^()\s]+)\)$`)

// Validate reports every problem with c (after WithDefaults) at once.
func (c Config) Validate() error {
	var errs []error
	if err := CheckBaseURL(c.BaseURL); err != nil {
		errs = append(errs, fmt.Errorf("base URL %w", err))
	}
	if err := CheckUserAgent(c.UserAgent); err != nil {
		errs = append(errs, fmt.Errorf("user agent %w", err))
	}
	if c.RequestsPerMinute < 1 {
		errs = append(errs, fmt.Errorf("requests per minute must be at least 1, got %d", c.RequestsPerMinute))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout must be positive, got %s", c.Timeout))
	}
	if c.RetryBackoff < 0 {
		errs = append(errs, fmt.Errorf("retry backoff must not be negative, got %s", c.RetryBackoff))
	}
	if len(errs) > 0 {
		return fmt.Errorf("cliniko config: %w", errors.Join(errs...))
	}
	return nil
}

// CheckBaseURL is the rule for an API address template: http(s), with a
// {shard} placeholder. Its messages read after the name of what is checked.
func CheckBaseURL(base string) error {
	if !strings.Contains(base, "{shard}") {
		return errors.New("must contain {shard}, like " + DefaultBaseURL)
	}
	if u, err := url.Parse(strings.ReplaceAll(base, "{shard}", "au1")); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an http(s) address such as " + DefaultBaseURL)
	}
	return nil
}

// CheckUserAgent is the one rule for the User-Agent that Cliniko asks for
// (cliniko-api.md §2): "Name (email)" with a plausible email address
// (something@domain.tld). The configuration checks it at start; the
// client checks it again in Validate. Its messages read after the name of
// what is checked ("user agent …", "cliniko.user_agent: …").
func CheckUserAgent(ua string) error {
	if ua == "" {
		return errors.New("is required: Cliniko blocks requests without it; use \"Your Product (contact@your.domain)\"")
	}
	m := userAgentRe.FindStringSubmatch(strings.TrimSpace(ua))
	if m == nil {
		return errors.New("must look like \"Name (email)\", e.g. \"Acme Sync (dev@acme.example)\"")
	}
	email := m[2]
	at := strings.Index(email, "@")
	if a, err := mail.ParseAddress(email); err != nil || a.Address != email || at < 1 || !strings.Contains(email[at:], ".") || strings.HasSuffix(email, ".") {
		return errors.New("has a part in brackets that must be an email address")
	}
	return nil
}

// ErrBadShard means the text after the API key's last hyphen is not a
// Cliniko shard. The settings page shows it as "unknown shard".
var ErrBadShard = errors.New("the API key's shard suffix is not a Cliniko shard")

// BadShardMessage is what practitioners read about a key that fails with
// ErrBadShard (Error.ErrorMessage gives it).
const BadShardMessage = "The end of this key (after the last \"-\") does not name a Cliniko region we know (unknown shard, such as au1, uk2 or ca1). Copy the whole key from Cliniko and try again."

var shardRe = regexp.MustCompile(`(?i)^[a-z]{2}[0-9]{1,2}$`)

// ShardFromKey returns the Cliniko shard an API key belongs to: the text after
// the key's last hyphen, lower-cased, or "au1" for a key without a hyphen
// (keys that predate sharding). The shard becomes part of a host name, so
// anything but two letters and one or two digits is refused with ErrBadShard.
// The error never contains the key.
func ShardFromKey(key string) (string, error) {
	i := strings.LastIndex(key, "-")
	if i < 0 {
		return "au1", nil
	}
	s := strings.ToLower(key[i+1:])
	if !shardRe.MatchString(s) {
		return "", fmt.Errorf("shard from key: %w", ErrBadShard)
	}
	return s, nil
}
