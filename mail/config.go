package mail

import (
	"crypto/x509"
	"errors"
	"fmt"
	stdmail "net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Default ports when mail.smtp_url names none: 587 (message submission,
// RFC 6409) for smtp://, 465 (submission over implicit TLS, RFC 8314) for
// smtps://.
const (
	DefaultSubmissionPort  = 587
	DefaultImplicitTLSPort = 465
)

// Config configures a Sender. Field names follow the configuration keys
// mail.smtp_url and mail.from; the rest have defaults (zero means default).
type Config struct {
	// SMTPURL is smtp://[user:pass@]host[:port] (STARTTLS whenever the
	// server offers it) or smtps://[user:pass@]host[:port] (TLS from the
	// first byte). The password is a secret: no error or log line of this
	// package ever holds it.
	SMTPURL string
	// From is the sender, "Name <address>". Each message may set its own
	// display name (the clinic's); the address is always this one.
	From string
	// Timeout bounds one delivery: connecting, TLS, login and the whole
	// SMTP conversation, each command getting at most this long. Default
	// 30s.
	Timeout time.Duration
	// RootCAs are the certificate authorities trusted for the server's
	// certificate. Nil means the system's roots; tests and `pmsbridge dev`
	// pass the self-signed root of their local server.
	RootCAs *x509.CertPool
	// HELO is the name given in EHLO. Default "localhost" (the machine's own
	// name says nothing useful to a submission server and may leak an
	// internal host name).
	HELO string
}

// WithDefaults returns a copy of c with every unset field filled in.
func (c Config) WithDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	if c.HELO == "" {
		c.HELO = "localhost"
	}
	return c
}

// Validate reports every problem with c (after WithDefaults) at once. Its
// text never holds the URL (which may hold a password).
func (c Config) Validate() error {
	var errs []error
	if err := CheckSMTPURL(c.SMTPURL); err != nil {
		errs = append(errs, fmt.Errorf("SMTP URL %w", err))
	}
	if err := CheckFrom(c.From); err != nil {
		errs = append(errs, fmt.Errorf("from %w", err))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout must be positive, got %s", c.Timeout))
	}
	if strings.ContainsAny(c.HELO, " \r\n\t") {
		errs = append(errs, errors.New("HELO name must be one word"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("mail config: %w", errors.Join(errs...))
	}
	return nil
}

// server is the parsed mail.smtp_url.
type server struct {
	host     string
	port     int
	implicit bool // smtps://
	user     string
	password string
	hasAuth  bool
}

// CheckSMTPURL is the one rule for mail.smtp_url: the configuration
// checks it at start, Validate again. Its messages read after the name of
// what is checked ("SMTP URL …", "mail.smtp_url: …") and never echo the
// URL (which may hold a password).
func CheckSMTPURL(raw string) error {
	_, err := parseServer(raw)
	return err
}

// CheckFrom is the one rule for mail.from, "Name <address@domain>"; its
// messages read after the name of what is checked.
func CheckFrom(raw string) error {
	_, err := parseFrom(raw)
	return err
}

// parseServer reads mail.smtp_url. Its errors never echo the URL.
func parseServer(raw string) (server, error) {
	if raw == "" {
		return server{}, errors.New("is required: smtp://[user:pass@]host:587 or smtps://[user:pass@]host:465")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return server{}, errors.New("is not a valid URL: use smtp://[user:pass@]host:587 or smtps://[user:pass@]host:465")
	}
	var s server
	switch u.Scheme {
	case "smtp":
		s.port = DefaultSubmissionPort
	case "smtps":
		s.port, s.implicit = DefaultImplicitTLSPort, true
	default:
		return server{}, errors.New("must start with smtp:// (STARTTLS when offered) or smtps:// (implicit TLS)")
	}
	s.host = u.Hostname()
	if s.host == "" {
		return server{}, errors.New("has no host: use smtp://[user:pass@]host:587")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return server{}, errors.New("has a bad port")
		}
		s.port = n
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return server{}, errors.New("must be just scheme, optional user:password, host and port")
	}
	if u.User != nil {
		s.user = u.User.Username()
		s.password, _ = u.User.Password()
		s.hasAuth = s.user != ""
	}
	return s, nil
}

// from is the parsed mail.from.
type from struct {
	name    string
	address string
	domain  string
}

func parseFrom(raw string) (from, error) {
	if raw == "" {
		return from{}, errors.New("is required: \"Clinic name <codes@your.domain>\"")
	}
	a, err := stdmail.ParseAddress(raw)
	if err != nil {
		return from{}, errors.New("must look like \"Name <address@domain>\"")
	}
	at := strings.LastIndexByte(a.Address, '@')
	if at < 1 || at == len(a.Address)-1 {
		return from{}, errors.New("must look like \"Name <address@domain>\"")
	}
	return from{name: a.Name, address: a.Address, domain: a.Address[at+1:]}, nil
}
