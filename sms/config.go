package sms

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// DefaultBaseURL is Twilio's REST API address.
const DefaultBaseURL = "https://api.twilio.com"

// Config configures a Client. Field names follow the configuration keys
// sms.twilio_account_sid, sms.twilio_auth_token, sms.from and
// sms.twilio_base_url; the rest have defaults (zero means default).
type Config struct {
	// AccountSID is the Twilio account, "AC" + 32 hex digits.
	AccountSID string
	// AuthToken authenticates to Twilio (HTTP Basic, with AccountSID). A
	// secret: no error or log line of this package ever holds it.
	AuthToken string
	// From is the sender: an E.164 number of the account ("+61480000000"),
	// sent as From, or a messaging service sid ("MG" + 32 hex digits), sent
	// as MessagingServiceSid.
	From string
	// BaseURL is Twilio's API address. Default https://api.twilio.com;
	// tests and `pmsbridge dev` point it at sms/twiliotest.
	BaseURL string
	// Timeout bounds one HTTP request. Default 15s.
	Timeout time.Duration
	// LookupSkew is how much earlier than Attempt.Since a message may have
	// been created (by Twilio's clock) and still count as the earlier
	// attempt SendOnce looks for. Default 2 minutes: clocks differ, and a
	// message record is written just before its first attempt.
	LookupSkew time.Duration
	// LookupPages bounds how many pages (of 50 messages to the same number,
	// newest first) SendOnce reads before giving up the check as
	// inconclusive. Default 5.
	LookupPages int
}

// WithDefaults returns a copy of c with every unset field filled in.
func (c Config) WithDefaults() Config {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.Timeout == 0 {
		c.Timeout = 15 * time.Second
	}
	if c.LookupSkew == 0 {
		c.LookupSkew = 2 * time.Minute
	}
	if c.LookupPages == 0 {
		c.LookupPages = 5
	}
	return c
}

var (
	accountSIDRe = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	serviceSIDRe = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
)

// Validate reports every problem with c (after WithDefaults) at once. Its
// text never holds the auth token.
func (c Config) Validate() error {
	var errs []error
	if err := CheckAccountSID(c.AccountSID); err != nil {
		errs = append(errs, fmt.Errorf("account SID %w", err))
	}
	if c.AuthToken == "" {
		errs = append(errs, errors.New("auth token is required"))
	}
	if err := CheckFrom(c.From); err != nil {
		errs = append(errs, fmt.Errorf("from %w", err))
	}
	if err := CheckBaseURL(c.BaseURL); err != nil {
		errs = append(errs, fmt.Errorf("base URL %w", err))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout must be positive, got %s", c.Timeout))
	}
	if c.LookupSkew < 0 {
		errs = append(errs, fmt.Errorf("lookup skew must not be negative, got %s", c.LookupSkew))
	}
	if c.LookupPages < 1 {
		errs = append(errs, fmt.Errorf("lookup pages must be at least 1, got %d", c.LookupPages))
	}
	if len(errs) > 0 {
		return fmt.Errorf("sms config: %w", errors.Join(errs...))
	}
	return nil
}

// CheckAccountSID is the one rule for sms.twilio_account_sid: the
// configuration checks it at start, Validate again. Its message reads after
// the name of what is checked ("account SID …", "sms.twilio_account_sid:
// …"); so do CheckFrom's and CheckBaseURL's.
func CheckAccountSID(sid string) error {
	if !accountSIDRe.MatchString(sid) {
		return errors.New("must be AC followed by 32 hexadecimal digits (Twilio console → Account info)")
	}
	return nil
}

// CheckFrom is the one rule for sms.from: an E.164 number or a messaging
// service sid.
func CheckFrom(from string) error {
	if !e164Re.MatchString(from) && !serviceSIDRe.MatchString(from) {
		return errors.New("must be an E.164 number like +61480000000 or a messaging service sid (MG…)")
	}
	return nil
}

// CheckBaseURL is the one rule for sms.twilio_base_url (without its
// trailing slash, which WithDefaults trims): http(s), a host, nothing else.
func CheckBaseURL(base string) error {
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
		return errors.New("must be an http(s) address like https://api.twilio.com")
	}
	return nil
}

// usesService reports whether From is a messaging service sid.
func (c Config) usesService() bool { return serviceSIDRe.MatchString(c.From) }
