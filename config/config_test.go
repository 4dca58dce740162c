package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge/config"
	"github.com/spf13/pflag"
)

const goodKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes

func flags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	config.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pmsbridge.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedence(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "region: nz\nhttp:\n  addr: \":1111\"\nworker:\n  concurrency: 3\nlog:\n  level: warn\nsync:\n  interval: 20m\n")
	tests := []struct {
		desc    string
		args    []string
		env     []string
		wantAdr string
		wantCon int
		wantLvl string
		wantReg string
	}{
		{desc: "defaults only", wantAdr: ":8080", wantCon: 10, wantLvl: "info"},
		{desc: "file over defaults", args: []string{"--config", file}, wantAdr: ":1111", wantCon: 3, wantLvl: "warn", wantReg: "nz"},
		{desc: "env over file", args: []string{"--config", file}, env: []string{"PMSBRIDGE_HTTP_ADDR=:2222", "PMSBRIDGE_REGION=uk"}, wantAdr: ":2222", wantCon: 3, wantLvl: "warn", wantReg: "uk"},
		{desc: "flag over env", args: []string{"--config", file, "--http-addr", ":3333", "--worker-concurrency", "7"}, env: []string{"PMSBRIDGE_HTTP_ADDR=:2222", "PMSBRIDGE_WORKER_CONCURRENCY=5"}, wantAdr: ":3333", wantCon: 7, wantLvl: "warn", wantReg: "nz"},
		{desc: "env without file", env: []string{"PMSBRIDGE_LOG_LEVEL=debug"}, wantAdr: ":8080", wantCon: 10, wantLvl: "debug"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			c, err := config.Load(flags(t, tc.args...), tc.env, config.Config{})
			if err != nil {
				t.Fatal(err)
			}
			got := []any{c.HTTP.Addr, c.Worker.Concurrency, c.Log.Level, c.Region}
			want := []any{tc.wantAdr, tc.wantCon, tc.wantLvl, tc.wantReg}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}

func TestLoadTypes(t *testing.T) {
	t.Parallel()
	c, err := config.Load(flags(t, "--http-extra-hosts", "a.example, b.example"), []string{"PMSBRIDGE_SYNC_INTERVAL=30m", "PMSBRIDGE_CLINIKO_TIMEOUT=5s"}, config.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"a.example", "b.example"}, c.HTTP.ExtraHosts); d != "" {
		t.Errorf("extra hosts (-want +got)\n%s", d)
	}
	if c.Sync.Interval != 30*time.Minute || c.Cliniko.Timeout != 5*time.Second {
		t.Errorf("durations: got %s and %s", c.Sync.Interval, c.Cliniko.Timeout)
	}
	c, err = config.Load(flags(t), []string{"PMSBRIDGE_HTTP_EXTRA_HOSTS=x.example,y.example"}, config.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"x.example", "y.example"}, c.HTTP.ExtraHosts); d != "" {
		t.Errorf("extra hosts from env (-want +got)\n%s", d)
	}
}

func TestUnknownFileKey(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "region: au\nhttp:\n  adress: \":1\"\n")
	_, err := config.Load(flags(t, "--config", file), nil, config.Config{})
	if err == nil || !strings.Contains(err.Error(), "http.adress") {
		t.Fatalf("want an error naming http.adress, got %v", err)
	}
}

func valid() config.Config {
	return config.Config{
		Region:  "au",
		Cliniko: config.Cliniko{UserAgent: "Physitrack pmsbridge (integrations@physitrack.com)"},
		Secrets: config.Secrets{EncryptionKey: goodKey},
	}.WithDefaults()
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc  string
		edit  func(*config.Config)
		wants []string // substrings, one per expected problem line
	}{
		{desc: "valid", edit: func(*config.Config) {}},
		{desc: "missing key and bad redis url", edit: func(c *config.Config) {
			c.Secrets.EncryptionKey = ""
			c.Redis.URL = "http://nope"
		}, wants: []string{"redis.url (PMSBRIDGE_REDIS_URL): scheme \"http\" is not supported", "secrets.encryption_key (PMSBRIDGE_SECRETS_ENCRYPTION_KEY): is required"}},
		{desc: "short key", edit: func(c *config.Config) { c.Secrets.EncryptionKey = "c2hvcnQ=" }, wants: []string{"must decode to 32 bytes, got 5"}},
		{desc: "bad region", edit: func(c *config.Config) { c.Region = "fr" }, wants: []string{"region (PMSBRIDGE_REGION): \"fr\" is not a known region"}},
		{desc: "user agent without email", edit: func(c *config.Config) { c.Cliniko.UserAgent = "pmsbridge" }, wants: []string{"cliniko.user_agent"}},
		{desc: "user agent bad email", edit: func(c *config.Config) { c.Cliniko.UserAgent = "pmsbridge (nobody)" }, wants: []string{"must be an email address"}},
		{desc: "base url without shard", edit: func(c *config.Config) { c.Cliniko.BaseURL = "https://api.cliniko.com/v1" }, wants: []string{"cliniko.base_url"}},
		{desc: "sentinel without master", edit: func(c *config.Config) { c.Redis.URL = "redis-sentinel://a:26379,b:26379" }, wants: []string{"needs ?master="}},
		{desc: "many at once", edit: func(c *config.Config) {
			c.Log.Level = "loud"
			c.Log.Format = "xml"
			c.Worker.Concurrency = -1
			c.Sync.Interval = time.Second
			c.HTTP.Addr = "nowhere"
			c.PublicURL = "ftp://x"
		}, wants: []string{"http.addr", "log.format", "log.level", "public_url", "sync.interval", "worker.concurrency"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			c := valid()
			tc.edit(&c)
			err := c.Validate()
			if len(tc.wants) == 0 {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			ve, ok := err.(*config.ValidationError)
			if !ok {
				t.Fatalf("want *ValidationError, got %v", err)
			}
			if len(ve.Problems) != len(tc.wants) {
				t.Errorf("want %d problems, got %d:\n%s", len(tc.wants), len(ve.Problems), err)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("no problem line contains %q:\n%s", w, err)
				}
			}
		})
	}
}

// TestValidateReadOnly: the read-only support commands need only a valid
// redis.url; the encryption keys are optional but checked when given.
func TestValidateReadOnly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc  string
		cfg   config.Config
		wants []string
	}{
		{desc: "only redis.url", cfg: config.Config{Redis: config.Redis{URL: "redis://10.0.0.5:6379/2"}}},
		{desc: "nothing: the default redis.url", cfg: config.Config{}},
		{desc: "with a key", cfg: config.Config{Secrets: config.Secrets{EncryptionKey: goodKey}}},
		{desc: "the rest is not looked at", cfg: config.Config{Region: "fr", Log: config.Log{Level: "loud"}, Cliniko: config.Cliniko{UserAgent: "x"}}},
		{desc: "bad redis url", cfg: config.Config{Redis: config.Redis{URL: "http://nope"}}, wants: []string{"redis.url (PMSBRIDGE_REDIS_URL)"}},
		{desc: "bad keys", cfg: config.Config{Secrets: config.Secrets{EncryptionKey: "c2hvcnQ=", PreviousEncryptionKeys: []string{"!"}}},
			wants: []string{"secrets.encryption_key (PMSBRIDGE_SECRETS_ENCRYPTION_KEY): must decode to 32 bytes", "secrets.previous_encryption_keys (PMSBRIDGE_SECRETS_PREVIOUS_ENCRYPTION_KEYS): entry 1"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			err := tc.cfg.WithDefaults().ValidateReadOnly()
			if len(tc.wants) == 0 {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			var ve *config.ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) != len(tc.wants) {
				t.Fatalf("want %d problems, got %v", len(tc.wants), err)
			}
			for i, w := range tc.wants {
				if !strings.HasPrefix(ve.Problems[i], w) {
					t.Errorf("problem %d %q does not start with %q", i, ve.Problems[i], w)
				}
			}
		})
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	t.Parallel()
	c := valid()
	c.Redis.URL = "redis://:hunter2hunter2@redis.internal:6379/0"
	c.Webhooks.Secret = "webhook-secret-value-123"
	c.Admin.Token = "admin-token-value-456789"
	c.Secrets.EncryptionKey = goodKey
	out := c.Print()
	for _, s := range []string{"hunter2hunter2", "webhook-secret-value-123", "admin-token-value-456789", goodKey} {
		if strings.Contains(out, s) {
			t.Errorf("printed config contains a secret %q:\n%s", s, out)
		}
	}
	for _, s := range []string{"region: au", "webhooks.secret: (set)", "redis.url: redis://:xxxxx@redis.internal:6379/0", "http.addr: :8080", "sync.interval: 15m0s"} {
		if !strings.Contains(out, s) {
			t.Errorf("printed config lacks %q:\n%s", s, out)
		}
	}
	// Validation must not echo a bad secret either.
	c.Secrets.EncryptionKey = "not-base64-secret!!"
	if err := c.Validate(); err == nil || strings.Contains(err.Error(), "not-base64-secret") {
		t.Errorf("validation error echoes the secret or is missing: %v", err)
	}
}

func TestParseRedisURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want config.RedisURL
		err  string
	}{
		{in: "redis://localhost:6379/2", want: config.RedisURL{Scheme: "redis", Addrs: []string{"localhost:6379"}, DB: 2}},
		{in: "rediss://:pw@r.example/0", want: config.RedisURL{Scheme: "rediss", Addrs: []string{"r.example:6379"}, Password: "pw"}},
		{in: "redis-sentinel://:pw@s1:26379,s2/1?master=mymaster", want: config.RedisURL{Scheme: "redis-sentinel", Addrs: []string{"s1:26379", "s2:26379"}, MasterName: "mymaster", Password: "pw", DB: 1}},
		{in: "redis://", err: "has no host"},
		{in: "redis://h/abc", err: "database number"},
		{in: "mysql://h", err: "not supported"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := config.ParseRedisURL(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("want error with %q, got %v", tc.err, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}

func TestHosts(t *testing.T) {
	t.Parallel()
	c := valid()
	c.HTTP.ExtraHosts = []string{"Internal.Example:8443", "other.example"}
	if d := cmp.Diff([]string{"au.physitrack.com", "internal.example", "other.example"}, c.Hosts()); d != "" {
		t.Errorf("(-want +got)\n%s", d)
	}
	if !c.SecureCookies() {
		t.Error("https public_url must give secure cookies")
	}
}

func TestSampleConfigIsValid(t *testing.T) {
	t.Parallel()
	c, err := config.Load(flags(t, "--config", "pmsbridge.sample.yaml"), []string{"PMSBRIDGE_SECRETS_ENCRYPTION_KEY=" + goodKey}, config.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestAckReplicasFor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		desc string
		r    config.Redis
		want int
	}{
		{"automatic, sentinel", config.Redis{URL: "redis-sentinel://s1:26379/0?master=m"}, 1},
		{"automatic, one Redis", config.Redis{URL: "redis://localhost:6379/0"}, 0},
		{"never", config.Redis{URL: "redis-sentinel://s1:26379/0?master=m", AckReplicas: -1}, 0},
		{"two", config.Redis{URL: "redis://localhost:6379/0", AckReplicas: 2}, 2},
	} {
		if got := tc.r.AckReplicasFor(); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.desc, got, tc.want)
		}
	}
}
