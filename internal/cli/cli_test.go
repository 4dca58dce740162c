package cli_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

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
