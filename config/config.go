// Package config defines pmsbridge's configuration: the Config struct, its
// defaults, loading with viper (defaults < YAML file < PMSBRIDGE_* environment
// < flags), validation that reports every problem at once, and the region
// table. Config is passed to the rest of the program as a value; nothing reads
// it from a global.
package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/mail"
	"github.com/physitrack/pmsbridge/sms"
	"github.com/physitrack/pmsbridge/store"
)

// Config is the whole configuration of one pmsbridge deployment (one region).
// The yaml/mapstructure names are the public config names of design.md.
type Config struct {
	// Region is this deployment's region code: au, nz, ca, ie, uk or us. Required.
	Region string `mapstructure:"region"`
	// PublicURL is the address users reach this deployment at. Default: the
	// region's host from Regions.URLPattern (https://{region}.physitrack.com).
	PublicURL string `mapstructure:"public_url"`

	HTTP     HTTP     `mapstructure:"http"`
	Redis    Redis    `mapstructure:"redis"`
	Cliniko  Cliniko  `mapstructure:"cliniko"`
	Secrets  Secrets  `mapstructure:"secrets"`
	Webhooks Webhooks `mapstructure:"webhooks"`
	Admin    Admin    `mapstructure:"admin"`
	Sync     Sync     `mapstructure:"sync"`
	Worker   Worker   `mapstructure:"worker"`
	Log      Log      `mapstructure:"log"`
	Regions  Regions  `mapstructure:"regions"`
	Mail     Mail     `mapstructure:"mail"`
	SMS      SMS      `mapstructure:"sms"`
}

// HTTP configures the web server.
type HTTP struct {
	// Addr is the listen address. Default ":8080" (Keys holds every default).
	Addr string `mapstructure:"addr"`
	// ExtraHosts are further host names this deployment answers for, beside
	// the host of public_url (e.g. an internal load-balancer name).
	ExtraHosts []string `mapstructure:"extra_hosts"`
	// TrustedProxies are the CIDRs (or single addresses) of the reverse
	// proxies in front of this deployment. Only from those peers is
	// X-Forwarded-For believed; the client is its right-most address that
	// is not a trusted proxy. Empty: the connection's own address.
	TrustedProxies []string `mapstructure:"trusted_proxies"`
}

// Redis configures the one Redis that holds queues and records.
type Redis struct {
	// URL is redis://[:password@]host:port/db, rediss://… (TLS) or
	// redis-sentinel://[:password@]host1:port,host2:port/db?master=name.
	// Default "redis://localhost:6379/0".
	URL string `mapstructure:"url"`
	// AckReplicas is how many replicas must hold an assigned programme (form
	// or webhook) before pmsbridge acknowledges it (Redis WAIT): replication
	// is asynchronous, and a failover loses what only the old primary held.
	// Default 0: automatic, 1 with redis-sentinel:// and none otherwise;
	// -1: never wait. See AckReplicasFor.
	AckReplicas int `mapstructure:"ack_replicas"`
}

// AckReplicasFor is the effective redis.ack_replicas: how many replicas
// to wait for (0: none).
func (r Redis) AckReplicasFor() int {
	switch {
	case r.AckReplicas > 0:
		return r.AckReplicas
	case r.AckReplicas < 0:
		return 0
	case strings.HasPrefix(r.URL, "redis-sentinel://"):
		return 1
	default:
		return 0
	}
}

// Cliniko configures the Cliniko API client.
type Cliniko struct {
	// BaseURL is the API address with a {shard} placeholder. Default
	// cliniko.DefaultBaseURL.
	BaseURL string `mapstructure:"base_url"`
	// UserAgent identifies us to Cliniko: "Name (email)". Required.
	UserAgent string `mapstructure:"user_agent"`
	// RequestsPerMinute is the request budget per Cliniko user, shared by
	// every process. Default cliniko.DefaultRequestsPerMinute.
	RequestsPerMinute int `mapstructure:"requests_per_minute"`
	// Timeout bounds one HTTP request to Cliniko. Default
	// cliniko.DefaultTimeout.
	Timeout time.Duration `mapstructure:"timeout"`
}

// Secrets holds the keys that encrypt sensitive fields at rest.
type Secrets struct {
	// EncryptionKey is 32 random bytes, base64-encoded (AES-256-GCM). Required.
	EncryptionKey string `mapstructure:"encryption_key"`
	// PreviousEncryptionKeys are older keys still accepted for decryption
	// while records are re-encrypted after a rotation.
	PreviousEncryptionKeys []string `mapstructure:"previous_encryption_keys"`
}

// Webhooks configures the platform's programme webhook.
type Webhooks struct {
	// Secret signs webhook bodies (HMAC-SHA256). Empty disables the webhook
	// endpoint (it answers 503).
	Secret string `mapstructure:"secret"`
}

// Admin configures support access.
type Admin struct {
	// Token is the bearer token for /admin. Empty disables /admin (503).
	Token string `mapstructure:"token"`
	// QueuesActions lets the queue monitor (asynqmon, /admin/queues/) act
	// on tasks; false (the default) keeps it read-only.
	QueuesActions bool `mapstructure:"queues_actions"`
}

// Sync configures the periodic birth-year sync from Cliniko.
type Sync struct {
	// Interval between two syncs. Default jobs.DefaultSyncInterval; at
	// least 1m.
	Interval time.Duration `mapstructure:"interval"`
}

// Worker configures the job workers.
type Worker struct {
	// Concurrency is how many jobs one work process runs at once. Default
	// jobs.DefaultConcurrency.
	Concurrency int `mapstructure:"concurrency"`
}

// Log configures logging.
type Log struct {
	// Format is "json" or "text". Default "json" ("text" in dev).
	Format string `mapstructure:"format"`
	// Level is debug, info, warn or error. Default "info".
	Level string `mapstructure:"level"`
}

// Mail configures email to patients (their programme code).
type Mail struct {
	// SMTPURL is smtp://[user:pass@]host:port (STARTTLS when the server
	// offers it) or smtps://[user:pass@]host:port (implicit TLS). Empty: no
	// email is sent. It may hold a password: a secret.
	SMTPURL string `mapstructure:"smtp_url"`
	// From is the sender, "Name <address>". Required when SMTPURL is set.
	From string `mapstructure:"from"`
}

// SMS configures text messages to patients through Twilio's REST API.
type SMS struct {
	// TwilioAccountSID is the Twilio account ("AC" + 32 hex digits). SMS is
	// configured when it, TwilioAuthToken and From are all set.
	TwilioAccountSID string `mapstructure:"twilio_account_sid"`
	// TwilioAuthToken authenticates to Twilio. A secret.
	TwilioAuthToken string `mapstructure:"twilio_auth_token"`
	// From is an E.164 number (+61…) or a messaging service sid (MG…).
	From string `mapstructure:"from"`
	// TwilioBaseURL is Twilio's API address. Default https://api.twilio.com
	// (tests point it at the sandbox).
	TwilioBaseURL string `mapstructure:"twilio_base_url"`
}

// Configured reports whether SMS can be sent.
func (s SMS) Configured() bool {
	return s.TwilioAccountSID != "" && s.TwilioAuthToken != "" && s.From != ""
}

// Configured reports whether email can be sent.
func (m Mail) Configured() bool { return m.SMTPURL != "" }

// Regions describes the platform's regional deployments.
type Regions struct {
	// URLPattern makes a region's public address from its code.
	// Default "https://{region}.physitrack.com".
	URLPattern string `mapstructure:"url_pattern"`
}

// RegionCodes lists the platform's regions in display order.
var RegionCodes = []string{"au", "nz", "ca", "ie", "uk", "us"}

// RegionNames gives each region's name for pages.
var RegionNames = map[string]string{
	"au": "Australia", "nz": "New Zealand", "ca": "Canada",
	"ie": "Ireland", "uk": "United Kingdom", "us": "United States",
}

// RegionTimeZones gives each region's default clinic time zone (IANA): a
// subscription created without a time zone shows its times in it.
var RegionTimeZones = map[string]string{
	"au": "Australia/Sydney", "nz": "Pacific/Auckland", "ca": "America/Toronto",
	"ie": "Europe/Dublin", "uk": "Europe/London", "us": "America/New_York",
}

// TimeZone is this deployment's default clinic time zone (IANA), from
// RegionTimeZones; "" when the region is unknown (Validate refuses that).
func (c Config) TimeZone() string { return RegionTimeZones[c.Region] }

// RegionURL returns the public address of a region.
func (c Config) RegionURL(region string) string {
	return strings.ReplaceAll(c.Regions.URLPattern, "{region}", region)
}

// Hosts returns the host names this deployment answers for (lower case,
// without port).
func (c Config) Hosts() []string {
	var hs []string
	if u, err := url.Parse(c.PublicURL); err == nil && u.Hostname() != "" {
		hs = append(hs, strings.ToLower(u.Hostname()))
	}
	for _, h := range c.HTTP.ExtraHosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if hh, _, err := net.SplitHostPort(h); err == nil {
			h = hh
		}
		if h != "" {
			hs = append(hs, h)
		}
	}
	return hs
}

// SecureCookies reports whether cookies must carry the Secure flag.
func (c Config) SecureCookies() bool { return strings.HasPrefix(c.PublicURL, "https://") }

// WithDefaults returns a copy of c with every unset field given its
// default: the Default of its entry in Keys (the one place defaults are
// written), and for public_url the region's address.
func (c Config) WithDefaults() Config {
	v := reflect.ValueOf(&c).Elem()
	for _, k := range Keys {
		if k.Default == nil {
			continue
		}
		f := fieldOf(v, k.Name)
		d := reflect.ValueOf(k.Default)
		if f.IsValid() && f.IsZero() && d.Kind() != reflect.Slice {
			f.Set(d.Convert(f.Type()))
		}
	}
	if c.PublicURL == "" && c.Region != "" {
		c.PublicURL = c.RegionURL(c.Region)
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	c.SMS.TwilioBaseURL = strings.TrimRight(c.SMS.TwilioBaseURL, "/")
	return c
}

// fieldOf is the field of v (a Config) named by a dotted config key, found
// by the mapstructure tags; the zero Value when there is none.
func fieldOf(v reflect.Value, key string) reflect.Value {
	for _, part := range strings.Split(key, ".") {
		if v.Kind() != reflect.Struct {
			return reflect.Value{}
		}
		t, found := v.Type(), false
		for i := range t.NumField() {
			if t.Field(i).Tag.Get("mapstructure") == part {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			return reflect.Value{}
		}
	}
	return v
}

// ValidationError lists every problem found in a configuration.
type ValidationError struct{ Problems []string }

func (e *ValidationError) Error() string {
	return "invalid configuration:\n  " + strings.Join(e.Problems, "\n  ")
}

var regionSet = func() map[string]bool {
	m := map[string]bool{}
	for _, r := range RegionCodes {
		m[r] = true
	}
	return m
}()

// Validate reports every problem with c (after WithDefaults) at once, one
// line each, naming the config key and its environment variable. Secret
// values are never echoed.
func (c Config) Validate() error {
	var p problems
	add := p.add
	if c.Region == "" {
		add("region", "is required: one of %s", strings.Join(RegionCodes, ", "))
	} else if !regionSet[c.Region] {
		add("region", "%q is not a known region: use one of %s", c.Region, strings.Join(RegionCodes, ", "))
	}
	if !strings.Contains(c.Regions.URLPattern, "{region}") {
		add("regions.url_pattern", "must contain {region}")
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("public_url", "%q is not an http(s) address like https://au.physitrack.com", c.PublicURL)
	} else if u.Path != "" || u.RawQuery != "" {
		add("public_url", "must be just scheme and host (no path): %q", c.PublicURL)
	}
	if _, port, err := net.SplitHostPort(c.HTTP.Addr); err != nil || port == "" {
		add("http.addr", "%q is not a listen address like :8080 or 127.0.0.1:8080", c.HTTP.Addr)
	}
	c.checkRedis(&p)
	if err := cliniko.CheckBaseURL(c.Cliniko.BaseURL); err != nil {
		add("cliniko.base_url", "%v", err)
	}
	if err := cliniko.CheckUserAgent(c.Cliniko.UserAgent); err != nil {
		add("cliniko.user_agent", "%v", err)
	}
	if c.Cliniko.RequestsPerMinute < 1 || c.Cliniko.RequestsPerMinute > 100000 {
		add("cliniko.requests_per_minute", "must be between 1 and 100000, got %d", c.Cliniko.RequestsPerMinute)
	}
	if c.Cliniko.Timeout < time.Second || c.Cliniko.Timeout > 5*time.Minute {
		add("cliniko.timeout", "must be between 1s and 5m, got %s", c.Cliniko.Timeout)
	}
	c.checkSecrets(&p, true)
	if c.Webhooks.Secret != "" && len(c.Webhooks.Secret) < 16 {
		add("webhooks.secret", "is too short: use at least 16 characters (or leave empty to disable the webhook)")
	}
	if c.Admin.Token != "" && len(c.Admin.Token) < 16 {
		add("admin.token", "is too short: use at least 16 characters (or leave empty to disable /admin)")
	}
	if c.Sync.Interval < time.Minute {
		add("sync.interval", "must be at least 1m, got %s", c.Sync.Interval)
	}
	if c.Worker.Concurrency < 1 || c.Worker.Concurrency > 1000 {
		add("worker.concurrency", "must be between 1 and 1000, got %d", c.Worker.Concurrency)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		add("log.format", "must be json or text, got %q", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	for i, cidr := range c.HTTP.TrustedProxies {
		if _, err := ParseTrustedProxy(cidr); err != nil {
			add("http.trusted_proxies", "entry %d: %v", i+1, err)
		}
	}
	if c.Mail.SMTPURL != "" {
		if err := mail.CheckSMTPURL(c.Mail.SMTPURL); err != nil {
			add("mail.smtp_url", "%v", err)
		}
		if c.Mail.From == "" {
			add("mail.from", "is required when mail.smtp_url is set: \"Clinic name <codes@your.domain>\"")
		}
	}
	if c.Mail.From != "" {
		if err := mail.CheckFrom(c.Mail.From); err != nil {
			add("mail.from", "%v", err)
		}
	}
	if c.SMS.TwilioAccountSID != "" || c.SMS.TwilioAuthToken != "" || c.SMS.From != "" {
		if err := sms.CheckAccountSID(c.SMS.TwilioAccountSID); err != nil {
			add("sms.twilio_account_sid", "%v", err)
		}
		if c.SMS.TwilioAuthToken == "" {
			add("sms.twilio_auth_token", "is required when SMS is configured")
		}
		if err := sms.CheckFrom(c.SMS.From); err != nil {
			add("sms.from", "%v", err)
		}
	}
	if err := sms.CheckBaseURL(c.SMS.TwilioBaseURL); err != nil {
		add("sms.twilio_base_url", "%v", err)
	}
	return p.err()
}

// ValidateReadOnly checks what the read-only support commands (jobs stats,
// failed, show) need: a valid redis.url. The encryption keys are optional
// there (without them nothing encrypted can be shown) but must be valid
// when given. The rest of the configuration is not looked at.
func (c Config) ValidateReadOnly() error {
	var p problems
	c.checkRedis(&p)
	c.checkSecrets(&p, false)
	return p.err()
}

// problems collects validation problems, one line each, naming the config
// key and its environment variable.
type problems []string

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, fmt.Sprintf("%s (%s): %s", key, EnvName(key), fmt.Sprintf(format, args...)))
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	sort.Strings(p)
	return &ValidationError{Problems: p}
}

func (c Config) checkRedis(p *problems) {
	if _, err := ParseRedisURL(c.Redis.URL); err != nil {
		p.add("redis.url", "%v", err)
	}
	if c.Redis.AckReplicas < -1 || c.Redis.AckReplicas > 16 {
		p.add("redis.ack_replicas", "must be between -1 (never wait) and 16 (0: automatic), got %d", c.Redis.AckReplicas)
	}
}

// checkSecrets checks the encryption keys; required says whether
// secrets.encryption_key must be set.
func (c Config) checkSecrets(p *problems, required bool) {
	if c.Secrets.EncryptionKey == "" {
		if required {
			p.add("secrets.encryption_key", "is required: 32 random bytes, base64-encoded (make one with: openssl rand -base64 32)")
		}
	} else if _, err := store.ParseKey(c.Secrets.EncryptionKey); err != nil {
		p.add("secrets.encryption_key", "%v%s", err, makeKeyHint)
	}
	for i, k := range c.Secrets.PreviousEncryptionKeys {
		if _, err := store.ParseKey(k); err != nil {
			p.add("secrets.previous_encryption_keys", "entry %d: %v%s", i+1, err, makeKeyHint)
		}
	}
}

// ParseTrustedProxy reads one entry of http.trusted_proxies: a CIDR such as
// 10.0.0.0/8 or fd00::/8, or a single address (taken as /32 or /128).
func ParseTrustedProxy(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR like 10.0.0.0/8", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or a CIDR like 10.0.0.0/8", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// makeKeyHint follows a problem with an encryption key.
const makeKeyHint = " (make one with: openssl rand -base64 32)"

// EnvName returns the environment variable for a config key.
func EnvName(key string) string {
	return "PMSBRIDGE_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}
