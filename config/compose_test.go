package config_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
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
			Ports       []string          `yaml:"ports"`
			Volumes     []string          `yaml:"volumes"`
			Networks    map[string]struct {
				IPv4Address string `yaml:"ipv4_address"`
			} `yaml:"networks"`
			Deploy struct {
				Replicas int `yaml:"replicas"`
			} `yaml:"deploy"`
		} `yaml:"services"`
		Networks map[string]struct {
			IPAM struct {
				Config []struct {
					Subnet string `yaml:"subnet"`
				} `yaml:"config"`
			} `yaml:"ipam"`
		} `yaml:"networks"`
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
	checkProxy(t, doc.Services["proxy"].Image, doc.Services["proxy"].Ports, doc.Services["proxy"].Volumes,
		doc.Services["proxy"].Networks["default"].IPv4Address, doc.Services["serve"].Ports,
		doc.Services["serve"].Environment["PMSBRIDGE_HTTP_TRUSTED_PROXIES"], doc.Networks["default"].IPAM.Config)
	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(df), "FROM ") < 2 || !strings.Contains(string(df), "./cmd/pmsbridge") {
		t.Error("Dockerfile should be multi-stage and build ./cmd/pmsbridge")
	}
}

// checkProxy checks the TLS proxy in front of serve: only the proxy is
// published, it has a fixed address, serve trusts that address (and not
// the whole network), and its configuration sets X-Forwarded-For to the
// address it saw.
func checkProxy(t *testing.T, image string, ports, volumes []string, proxyAddr string, servePorts []string, trusted string, subnets []struct {
	Subnet string `yaml:"subnet"`
}) {
	t.Helper()
	if !strings.HasPrefix(image, "caddy:") && !strings.HasPrefix(image, "nginx:") {
		t.Fatalf("proxy image %q: want a Caddy or nginx proxy in front of serve", image)
	}
	if !slices.ContainsFunc(ports, func(p string) bool { return strings.HasSuffix(p, ":443") }) {
		t.Errorf("proxy ports %v: want 443 published", ports)
	}
	if len(servePorts) != 0 {
		t.Errorf("serve publishes %v: only the proxy may be reachable from outside (a direct client would be counted as the Docker gateway)", servePorts)
	}
	addr, err := netip.ParseAddr(proxyAddr)
	if err != nil {
		t.Fatalf("proxy ipv4_address %q: %v (serve must know the proxy's address)", proxyAddr, err)
	}
	if len(subnets) != 1 {
		t.Fatalf("the default network has %d subnets, want one holding the proxy's fixed address", len(subnets))
	}
	if net, err := netip.ParsePrefix(subnets[0].Subnet); err != nil || !net.Contains(addr) {
		t.Errorf("the proxy's address %s is not in the network %q", addr, subnets[0].Subnet)
	}
	if trusted == "" {
		t.Fatal("serve lacks PMSBRIDGE_HTTP_TRUSTED_PROXIES")
	}
	trustsProxy := false
	for _, entry := range strings.Split(trusted, ",") {
		p, err := config.ParseTrustedProxy(entry)
		if err != nil {
			t.Errorf("PMSBRIDGE_HTTP_TRUSTED_PROXIES entry %q: %v", entry, err)
			continue
		}
		trustsProxy = trustsProxy || p.Contains(addr)
		if p.Bits() < 32 {
			t.Errorf("PMSBRIDGE_HTTP_TRUSTED_PROXIES trusts %s: every container there could make up client addresses; trust the proxy alone", p)
		}
	}
	if !trustsProxy {
		t.Errorf("PMSBRIDGE_HTTP_TRUSTED_PROXIES %q does not hold the proxy's address %s", trusted, addr)
	}
	var conf string
	for _, v := range volumes {
		host, target, _ := strings.Cut(v, ":")
		if strings.HasPrefix(target, "/etc/caddy/Caddyfile") || strings.HasPrefix(target, "/etc/nginx/") {
			conf = host
		}
	}
	b, err := os.ReadFile(filepath.Join("..", conf))
	if conf == "" || err != nil {
		t.Fatalf("the proxy's configuration %q: %v", conf, err)
	}
	text := string(b)
	if !strings.Contains(text, "serve:8080") || !strings.Contains(text, "X-Forwarded-For") {
		t.Errorf("%s does not pass requests to serve:8080 with X-Forwarded-For set:\n%s", conf, text)
	}
}
