package config_test

import (
	"os"
	"strings"
	"testing"

	"github.com/physitrack/pmsbridge/config"
	"gopkg.in/yaml.v3"
)

// TestComposeFile checks docker-compose.yml, which cannot be run here: the
// services exist with the right commands, Redis keeps data safely, and every
// PMSBRIDGE_* variable names a real config key.
func TestComposeFile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Build       any               `yaml:"build"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Deploy      struct {
				Replicas int `yaml:"replicas"`
			} `yaml:"deploy"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("docker-compose.yml is not valid YAML: %v", err)
	}
	redis, ok := doc.Services["redis"]
	if !ok {
		t.Fatal("no redis service")
	}
	if !strings.HasPrefix(redis.Image, "redis:7") {
		t.Errorf("redis image %q: want redis 7 (asynq needs 6.2+)", redis.Image)
	}
	cmd := strings.Join(redis.Command, " ")
	for _, want := range []string{"--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("redis command %q lacks %q", cmd, want)
		}
	}
	known := map[string]bool{}
	for _, k := range config.Keys {
		known[config.EnvName(k.Name)] = true
	}
	for name, want := range map[string]string{"serve": "serve", "work": "work"} {
		s, ok := doc.Services[name]
		if !ok {
			t.Errorf("no %s service", name)
			continue
		}
		if s.Build == nil {
			t.Errorf("%s: not built from the Dockerfile", name)
		}
		if len(s.Command) != 1 || s.Command[0] != want {
			t.Errorf("%s: command %v, want [%s]", name, s.Command, want)
		}
		for env := range s.Environment {
			if !known[env] {
				t.Errorf("%s: environment %s is not a config key", name, env)
			}
		}
		for _, req := range []string{"PMSBRIDGE_REGION", "PMSBRIDGE_REDIS_URL", "PMSBRIDGE_CLINIKO_USER_AGENT", "PMSBRIDGE_SECRETS_ENCRYPTION_KEY"} {
			if _, ok := s.Environment[req]; !ok {
				t.Errorf("%s: lacks required %s", name, req)
			}
		}
		if !strings.HasPrefix(s.Environment["PMSBRIDGE_REDIS_URL"], "redis://redis:") {
			t.Errorf("%s: PMSBRIDGE_REDIS_URL %q does not point at the redis service", name, s.Environment["PMSBRIDGE_REDIS_URL"])
		}
	}
	if doc.Services["work"].Deploy.Replicas < 2 {
		t.Error("work should run several replicas")
	}
	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(df), "FROM ") < 2 || !strings.Contains(string(df), "./cmd/pmsbridge") {
		t.Error("Dockerfile should be multi-stage and build ./cmd/pmsbridge")
	}
}
