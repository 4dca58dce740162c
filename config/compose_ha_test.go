package config_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/physitrack/pmsbridge/config"
	"gopkg.in/yaml.v3"
)

// TestComposeHAFile checks docker-compose.ha.yml, which cannot be run
// here: one primary and at least one replica that keep data safely, three
// sentinels with a quorum of two watching the primary under the master name
// of the URL, and serve plus two workers on that redis-sentinel:// URL,
// whose PMSBRIDGE_* variables are all real config keys.
func TestComposeHAFile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../docker-compose.ha.yml")
	if err != nil {
		t.Fatal(err)
	}
	type service struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Deploy      struct {
			Replicas int `yaml:"replicas"`
		} `yaml:"deploy"`
		Restart string `yaml:"restart"`
	}
	var doc struct {
		Services map[string]service `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("docker-compose.ha.yml is not valid YAML: %v", err)
	}

	var primary string
	var replicas, sentinels []string
	monitor := regexp.MustCompile(`sentinel monitor (\S+) (\S+) 6379 (\d+)`)
	var masterName string
	for name, s := range doc.Services {
		cmd := strings.Join(s.Command, " ")
		switch {
		case strings.Contains(cmd, "--sentinel"):
			sentinels = append(sentinels, name)
			m := monitor.FindStringSubmatch(cmd)
			if m == nil {
				t.Errorf("%s: no 'sentinel monitor <name> <host> 6379 <quorum>' line", name)
				continue
			}
			if m[3] != "2" {
				t.Errorf("%s: quorum %s, want 2 of 3", name, m[3])
			}
			if masterName != "" && m[1] != masterName {
				t.Errorf("%s monitors %q, another sentinel %q", name, m[1], masterName)
			}
			masterName = m[1]
			if _, ok := doc.Services[m[2]]; !ok {
				t.Errorf("%s monitors host %q, which is no service", name, m[2])
			}
			primary = m[2]
		case strings.HasPrefix(cmd, "redis-server"):
			for _, want := range []string{"--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"} {
				if !strings.Contains(cmd, want) {
					t.Errorf("%s: command %q lacks %q", name, cmd, want)
				}
			}
			if !strings.HasPrefix(s.Image, "redis:7") {
				t.Errorf("%s: image %q, want redis 7 (asynq needs 6.2+)", name, s.Image)
			}
			if strings.Contains(cmd, "--replicaof") {
				replicas = append(replicas, name)
			}
		}
		if s.Restart == "" && s.Deploy.Replicas == 0 {
			t.Errorf("%s: no restart policy (a killed node must come back)", name)
		}
	}
	if len(sentinels) != 3 {
		t.Errorf("sentinels %v, want 3", sentinels)
	}
	if primary == "" {
		t.Fatal("no sentinel names the primary")
	}
	if len(replicas) < 1 {
		t.Error("no replica (a service with --replicaof)")
	}
	for _, r := range replicas {
		if !strings.Contains(strings.Join(doc.Services[r].Command, " "), "--replicaof "+primary+" 6379") {
			t.Errorf("replica %s does not follow %s", r, primary)
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
		if s.Build == nil || len(s.Command) != 1 || s.Command[0] != want {
			t.Errorf("%s: built %v, command %v; want built from the Dockerfile, [%s]", name, s.Build != nil, s.Command, want)
		}
		for env := range s.Environment {
			if !known[env] {
				t.Errorf("%s: environment %s is not a config key", name, env)
			}
		}
		ru, err := config.ParseRedisURL(s.Environment["PMSBRIDGE_REDIS_URL"])
		if err != nil || ru.Scheme != "redis-sentinel" {
			t.Errorf("%s: PMSBRIDGE_REDIS_URL %q is not a redis-sentinel:// URL: %v", name, s.Environment["PMSBRIDGE_REDIS_URL"], err)
			continue
		}
		if ru.MasterName != masterName {
			t.Errorf("%s: master %q, the sentinels watch %q", name, ru.MasterName, masterName)
		}
		var hosts []string
		for _, a := range ru.Addrs {
			host, port, _ := strings.Cut(a, ":")
			if port != "26379" {
				t.Errorf("%s: sentinel address %s is not on 26379", name, a)
			}
			hosts = append(hosts, host)
		}
		slices.Sort(hosts)
		slices.Sort(sentinels)
		if !slices.Equal(hosts, sentinels) {
			t.Errorf("%s: the URL lists %v, the sentinels are %v", name, hosts, sentinels)
		}
	}
	if doc.Services["work"].Deploy.Replicas < 2 {
		t.Error("work should run at least two replicas")
	}
}
