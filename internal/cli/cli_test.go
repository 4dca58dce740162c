package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge/internal/apptest"
	"github.com/physitrack/pmsbridge/internal/cli"
)

func run(t *testing.T, environ []string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Execute(context.Background(), args, strings.NewReader(""), &out, &errb, environ)
	return code, out.String(), errb.String()
}

func TestServeReportsEveryConfigProblem(t *testing.T) {
	t.Parallel()
	code, _, stderr := run(t, []string{"PMSBRIDGE_REGION=au", "PMSBRIDGE_CLINIKO_USER_AGENT=pmsbridge (ops@pmsbridge.example)", "PMSBRIDGE_REDIS_URL=redis//nohost"}, "serve")
	if code != cli.ExitUsage {
		t.Errorf("exit code %d, want %d", code, cli.ExitUsage)
	}
	for _, want := range []string{"secrets.encryption_key (PMSBRIDGE_SECRETS_ENCRYPTION_KEY): is required", "redis.url (PMSBRIDGE_REDIS_URL):"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if n := strings.Count(stderr, "\n  "); n != 2 {
		t.Errorf("want exactly 2 problem lines, got %d:\n%s", n, stderr)
	}
}

func TestPrintConfigHidesSecrets(t *testing.T) {
	t.Parallel()
	env := []string{"PMSBRIDGE_REGION=uk", "PMSBRIDGE_CLINIKO_USER_AGENT=pmsbridge (ops@pmsbridge.example)",
		"PMSBRIDGE_SECRETS_ENCRYPTION_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"PMSBRIDGE_ADMIN_TOKEN=super-secret-admin-token", "PMSBRIDGE_REDIS_URL=redis://:pw-in-url@redis.internal:6379/1"}
	code, stdout, stderr := run(t, env, "run", "--print-config", "--worker-concurrency", "4")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, secret := range []string{"super-secret-admin-token", "pw-in-url", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="} {
		if strings.Contains(stdout, secret) {
			t.Errorf("printed config shows a secret %q", secret)
		}
	}
	for _, want := range []string{"region: uk", "public_url: https://uk.physitrack.com", "worker.concurrency: 4", "admin.token: (set)", "redis.url: redis://:xxxxx@redis.internal:6379/1"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("printed config lacks %q:\n%s", want, stdout)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc string
		args []string
		want string
	}{
		{"unknown command", []string{"serv"}, "unknown command"},
		{"unknown flag", []string{"serve", "--nope"}, "unknown flag"},
		{"bad flag value", []string{"serve", "--worker-concurrency", "many"}, "invalid argument"},
		{"unknown config file", []string{"serve", "--config", "/nonexistent/pmsbridge.yaml"}, "does not exist"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			code, _, stderr := run(t, nil, tc.args...)
			if code != cli.ExitUsage || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 and %q", code, stderr, tc.want)
			}
		})
	}
}

func TestVersionAndHelp(t *testing.T) {
	t.Parallel()
	if code, out, _ := run(t, nil, "version"); code != 0 || !strings.HasPrefix(out, "pmsbridge ") {
		t.Errorf("version: exit %d, %q", code, out)
	}
	code, out, _ := run(t, nil, "--help")
	if code != 0 {
		t.Fatalf("help exit %d", code)
	}
	for _, want := range []string{"pmsbridge dev", "pmsbridge serve", "pmsbridge work", "pmsbridge run", "pmsbridge jobs", "pmsbridge admin"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

// writeConfig writes a YAML config file for a test and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pmsbridge.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDevReadsConfiguration: `pmsbridge dev` reads --config, PMSBRIDGE_*
// and flags over its own zero-set-up defaults, like every command.
func TestDevReadsConfiguration(t *testing.T) {
	t.Parallel()
	t.Run("print-config", func(t *testing.T) {
		file := writeConfig(t, "worker:\n  concurrency: 3\nlog:\n  format: json\n")
		code, out, errOut := run(t, []string{"PMSBRIDGE_LOG_LEVEL=debug"}, "dev", "--config", file, "--http-addr", "127.0.0.1:0", "--print-config")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{
			"worker.concurrency: 3\n", "log.format: json\n", // file
			"log.level: debug\n",       // environment
			"http.addr: 127.0.0.1:0\n", // flag
			"region: au\n",             // dev's defaults
			"cliniko.user_agent: pmsbridge dev (dev@pmsbridge.example)\n",
			"secrets.encryption_key: (set)\n",
			"redis.url: (not used: dev runs its own in-memory Redis)\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("dev --print-config lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("bad value", func(t *testing.T) {
		code, _, errOut := run(t, []string{"PMSBRIDGE_LOG_LEVEL=loud"}, "dev", "--http-addr", "127.0.0.1:0")
		if code != cli.ExitUsage || !strings.Contains(errOut, "log.level (PMSBRIDGE_LOG_LEVEL): must be debug, info, warn or error") {
			t.Errorf("exit %d, stderr %q; want exit 2 naming log.level", code, errOut)
		}
	})
	t.Run("running", func(t *testing.T) {
		const (
			fileSecret = "file-webhook-secret-0123456789"
			envToken   = "env-admin-token-0123456789"
		)
		file := writeConfig(t, "log:\n  format: json\nwebhooks:\n  secret: "+fileSecret+"\n")
		env := []string{"PMSBRIDGE_LOG_LEVEL=debug", "PMSBRIDGE_ADMIN_TOKEN=" + envToken}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var out, errb apptest.SyncBuffer
		done := make(chan int, 1)
		go func() {
			done <- cli.Execute(ctx, []string{"dev", "--config", file, "--http-addr", "127.0.0.1:0"}, strings.NewReader(""), &out, &errb, env)
		}()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(out.String(), "Nothing is kept") {
			select {
			case code := <-done:
				t.Fatalf("dev exited %d: %s", code, errb.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("no dev banner after 20s:\n%s\n%s", out.String(), errb.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		banner := out.String()
		if !strings.Contains(banner, "(token "+envToken+")") || !strings.Contains(banner, "Webhook secret:   "+fileSecret) {
			t.Errorf("banner does not show the admin token from the environment and the webhook secret from the file:\n%s", banner)
		}
		_, rest, _ := strings.Cut(banner, " App:")
		appURL := strings.Fields(rest)[0]
		req, _ := http.NewRequest(http.MethodGet, appURL+"/admin/api/stats", nil)
		req.Header.Set("Authorization", "Bearer "+envToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("admin API with the token from PMSBRIDGE_ADMIN_TOKEN: %d, want 200", resp.StatusCode)
		}
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("dev exit %d after a clean stop", code)
		}
		logs := strings.TrimSpace(errb.String())
		var debug bool
		for _, line := range strings.Split(logs, "\n") {
			var rec struct{ Level, Msg string }
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("log line is not JSON (log.format from the file): %q", line)
			}
			debug = debug || rec.Level == "DEBUG"
		}
		if !debug || !strings.Contains(logs, `"msg":"pmsbridge started"`) {
			t.Errorf("want debug logs (PMSBRIDGE_LOG_LEVEL) and the start line:\n%s", logs)
		}
	})
}
