package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/sms"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"gopkg.in/yaml.v3"
)

// Key describes one configuration key: its name, flag, default and whether
// it is secret.
type Key struct {
	Name  string // file key, e.g. "http.addr"
	Flag  string // command-line flag, e.g. "http-addr"
	Usage string
	// Default is the key's default value, nil when it has none. It is the
	// one place a default is written (WithDefaults, --help, the README's
	// table; the sample file is checked against it); defaults of keys
	// that configure a component come from that component's package.
	Default any
	// DefaultText describes a default that is computed rather than fixed.
	DefaultText string
	Required    bool
	Secret      bool
}

// Keys lists every configuration key, in the order --help, --print-config
// and the README show them.
var Keys = []Key{
	{Name: "region", Flag: "region", Usage: "region code of this deployment: au, nz, ca, ie, uk or us", Required: true},
	{Name: "public_url", Flag: "public-url", Usage: "public address of this deployment; its host is the one answered for", DefaultText: "https://{region}.physitrack.com"},
	{Name: "http.addr", Flag: "http-addr", Usage: "HTTP listen address", Default: ":8080"},
	{Name: "http.extra_hosts", Flag: "http-extra-hosts", Usage: "further host names to answer for (comma-separated)", Default: []string{}},
	{Name: "http.trusted_proxies", Flag: "http-trusted-proxies", Usage: "CIDRs of the reverse proxies in front (comma-separated); only their X-Forwarded-For is believed", Default: []string{}},
	{Name: "redis.url", Flag: "redis-url", Usage: "Redis URL: redis://, rediss:// (TLS) or redis-sentinel://[:pw@]s1:26379,s2:26379/0?master=name", Default: "redis://localhost:6379/0", Secret: true},
	{Name: "redis.ack_replicas", Flag: "redis-ack-replicas", Usage: "replicas that must hold an assigned programme before it is acknowledged (0: 1 with redis-sentinel://, else none; -1: never wait)", Default: 0},
	{Name: "cliniko.base_url", Flag: "cliniko-base-url", Usage: "Cliniko API address with {shard}", Default: cliniko.DefaultBaseURL},
	{Name: "cliniko.user_agent", Flag: "cliniko-user-agent", Usage: "User-Agent sent to Cliniko: \"Name (email)\", as Cliniko requires", Required: true},
	{Name: "cliniko.requests_per_minute", Flag: "cliniko-requests-per-minute", Usage: "Cliniko request budget per Cliniko user, shared by all processes", Default: cliniko.DefaultRequestsPerMinute},
	{Name: "cliniko.timeout", Flag: "cliniko-timeout", Usage: "timeout of one Cliniko request", Default: cliniko.DefaultTimeout},
	{Name: "secrets.encryption_key", Flag: "secrets-encryption-key", Usage: "base64 of 32 random bytes (openssl rand -base64 32); encrypts Cliniko keys and patient details", Required: true, Secret: true},
	{Name: "secrets.previous_encryption_keys", Flag: "secrets-previous-encryption-keys", Usage: "older encryption keys still accepted for reading after a rotation (comma-separated)", Default: []string{}, Secret: true},
	{Name: "webhooks.secret", Flag: "webhooks-secret", Usage: "HMAC secret of POST /webhooks/programmes (empty: the webhook answers 503)", Secret: true},
	{Name: "admin.token", Flag: "admin-token", Usage: "bearer token for /admin (empty: admin answers 503)", Secret: true},
	{Name: "admin.queues_actions", Flag: "admin-queues-actions", Usage: "let the queue monitor at /admin/queues/ (asynqmon) act on tasks: run, delete, archive, pause (false: it only shows them)", Default: false},
	{Name: "sync.interval", Flag: "sync-interval", Usage: "birth-year sync period (at least 1m)", Default: jobs.DefaultSyncInterval},
	{Name: "worker.concurrency", Flag: "worker-concurrency", Usage: "jobs one work process runs at once", Default: jobs.DefaultConcurrency},
	{Name: "log.format", Flag: "log-format", Usage: "log format: json or text", Default: "json"},
	{Name: "log.level", Flag: "log-level", Usage: "log level: debug, info, warn or error", Default: "info"},
	{Name: "regions.url_pattern", Flag: "regions-url-pattern", Usage: "how regional addresses are made, with {region} (the wrong-host page and the default public_url)", Default: "https://{region}.physitrack.com"},
	{Name: "mail.smtp_url", Flag: "mail-smtp-url", Usage: "SMTP server for codes by email: smtp://[user:pass@]host:port (STARTTLS when offered) or smtps:// (implicit TLS); empty: no email", Secret: true},
	{Name: "mail.from", Flag: "mail-from", Usage: "sender of code emails: \"Name <address>\" (required with mail.smtp_url)"},
	{Name: "sms.twilio_account_sid", Flag: "sms-twilio-account-sid", Usage: "Twilio account sid (AC…) for codes by SMS; SMS is on when sid, token and from are all set"},
	{Name: "sms.twilio_auth_token", Flag: "sms-twilio-auth-token", Usage: "Twilio auth token", Secret: true},
	{Name: "sms.from", Flag: "sms-from", Usage: "SMS sender: an E.164 number or a messaging service sid (MG…)"},
	{Name: "sms.twilio_base_url", Flag: "sms-twilio-base-url", Usage: "Twilio API address (tests point it at a fake)", Default: sms.DefaultBaseURL},
}

// FormatDefault writes a key's default as --help, the README and the
// sample file show it ("" when it has none): durations as 15m or 15s.
func (k Key) FormatDefault() string {
	switch d := k.Default.(type) {
	case nil:
		return k.DefaultText
	case time.Duration:
		s := d.String()
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
		return s
	case []string:
		return strings.Join(d, ",")
	default:
		return fmt.Sprint(d)
	}
}

// AddFlags registers a flag for every key (plus --config) on fs.
func AddFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "YAML config file (keys as in config/pmsbridge.sample.yaml)")
	for _, k := range Keys {
		usage := k.Usage
		if k.DefaultText != "" {
			usage += " (default " + k.DefaultText + ")"
		}
		if k.Required {
			usage += " (required)"
		}
		switch d := k.Default.(type) {
		case int:
			fs.Int(k.Flag, d, usage)
		case bool:
			fs.Bool(k.Flag, d, usage)
		case time.Duration:
			fs.Duration(k.Flag, d, usage)
		case []string:
			fs.StringSlice(k.Flag, d, usage)
		case string:
			fs.String(k.Flag, d, usage)
		case nil:
			fs.String(k.Flag, "", usage)
		default:
			panic(fmt.Sprintf("config: key %s: a default of type %T has no flag type", k.Name, d))
		}
	}
}

// Load builds the configuration from defaults, the file named by --config,
// PMSBRIDGE_* environment variables and the flags that were set on fs, in
// that order of precedence. base supplies the defaults (e.g. dev mode's);
// environ is os.Environ() in production. It returns the config with defaults
// filled in, not yet validated.
func Load(fs *pflag.FlagSet, environ []string, base Config) (Config, error) {
	v := viper.New()
	// Defaults: the base config flattened, so every key is known to viper.
	for _, k := range Keys {
		v.SetDefault(k.Name, lookup(base, k.Name))
	}
	if fs != nil {
		if f := fs.Lookup("config"); f != nil && f.Value.String() != "" {
			if err := readFile(v, f.Value.String()); err != nil {
				return Config{}, err
			}
		}
	}
	env := map[string]string{}
	for _, kv := range environ {
		if i := strings.IndexByte(kv, '='); i > 0 {
			env[kv[:i]] = kv[i+1:]
		}
	}
	for _, k := range Keys {
		if val, ok := env[EnvName(k.Name)]; ok {
			v.Set(k.Name, val)
		}
	}
	if fs != nil {
		for _, k := range Keys {
			if f := fs.Lookup(k.Flag); f != nil && f.Changed {
				if sv, ok := f.Value.(pflag.SliceValue); ok {
					v.Set(k.Name, sv.GetSlice())
				} else {
					v.Set(k.Name, f.Value.String())
				}
			}
		}
	}
	var c Config
	err := v.Unmarshal(&c, func(dc *mapstructure.DecoderConfig) {
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
			trimSliceHook,
		)
		dc.WeaklyTypedInput = true
	})
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return c.WithDefaults(), nil
}

func trimSliceHook(from, to reflect.Type, data any) (any, error) {
	if to.Kind() != reflect.Slice || to.Elem().Kind() != reflect.String {
		return data, nil
	}
	if ss, ok := data.([]string); ok {
		out := ss[:0:0]
		for _, s := range ss {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out, nil
	}
	return data, nil
}

func readFile(v *viper.Viper, path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("config file %s does not exist", path)
	}
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("config file %s is not valid YAML: %v", path, err)
	}
	known := map[string]bool{}
	for _, k := range Keys {
		known[k.Name] = true
	}
	var unknown []string
	for _, k := range flatten("", raw) {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("config file %s has unknown keys: %s", path, strings.Join(unknown, ", "))
	}
	for _, k := range flatten("", raw) {
		v.Set(k, get(raw, k))
	}
	return nil
}

func flatten(prefix string, m map[string]any) []string {
	var out []string
	for k, val := range m {
		name := k
		if prefix != "" {
			name = prefix + "." + k
		}
		if sub, ok := val.(map[string]any); ok {
			out = append(out, flatten(name, sub)...)
		} else {
			out = append(out, name)
		}
	}
	return out
}

func get(m map[string]any, key string) any {
	parts := strings.Split(key, ".")
	var cur any = m
	for _, p := range parts {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

// lookup returns the value of a dotted key in c, as its Go value (nil for
// an unknown key): the field fieldOf finds, as WithDefaults does.
func lookup(c Config, key string) any {
	f := fieldOf(reflect.ValueOf(c), key)
	if !f.IsValid() {
		return nil
	}
	return f.Interface()
}

// Redacted returns the effective configuration as YAML-ready ordered pairs,
// with secrets replaced by "(set)" or "(not set)".
func (c Config) Redacted() []KeyValue {
	var out []KeyValue
	for _, k := range Keys {
		val := lookup(c, k.Name)
		if k.Secret {
			empty := val == nil || reflect.ValueOf(val).IsZero() || (reflect.ValueOf(val).Kind() == reflect.Slice && reflect.ValueOf(val).Len() == 0)
			if k.Name == "redis.url" {
				if r, err := ParseRedisURL(c.Redis.URL); err == nil {
					val = r.Redacted()
				} else {
					val = "(unparseable)"
				}
			} else if empty {
				val = "(not set)"
			} else {
				val = "(set)"
			}
		}
		if d, ok := val.(time.Duration); ok {
			val = d.String()
		}
		out = append(out, KeyValue{Key: k.Name, Value: val})
	}
	return out
}

// KeyValue is one entry of a printed configuration.
type KeyValue struct {
	Key   string
	Value any
}

// Print writes the redacted configuration in YAML-like "key: value" lines.
func (c Config) Print() string { return Format(c.Redacted()) }

// Format writes key-value pairs as Print does.
func Format(kvs []KeyValue) string {
	var b strings.Builder
	for _, kv := range kvs {
		switch v := kv.Value.(type) {
		case []string:
			fmt.Fprintf(&b, "%s: [%s]\n", kv.Key, strings.Join(v, ", "))
		default:
			fmt.Fprintf(&b, "%s: %v\n", kv.Key, v)
		}
	}
	return b.String()
}
