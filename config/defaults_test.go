package config_test

import (
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge/config"
	"github.com/physitrack/pmsbridge/internal/gendoc"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// TestDefaultsAgree: every default is written once, in config.Keys, and
// WithDefaults, --help, the sample file and the README's table all say
// the same.
func TestDefaultsAgree(t *testing.T) {
	t.Parallel()
	filled := config.Config{}.WithDefaults()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	config.AddFlags(fs)
	sample := sampleValues(t)
	for _, k := range config.Keys {
		t.Run(k.Name, func(t *testing.T) {
			f := fs.Lookup(k.Flag)
			if f == nil {
				t.Fatalf("no flag --%s", k.Flag)
			}
			if k.Default == nil {
				if f.DefValue != "" {
					t.Errorf("--help shows default %q for a key without one", f.DefValue)
				}
				return
			}
			// WithDefaults fills the field with the key's default.
			got := fieldValue(t, filled, k.Name)
			if d := reflect.ValueOf(k.Default); d.Kind() != reflect.Slice && !reflect.DeepEqual(got, k.Default) {
				t.Errorf("WithDefaults gives %#v, Keys says %#v", got, k.Default)
			}
			// --help shows it.
			if got := flagDefault(t, f, k.Default); !reflect.DeepEqual(got, k.Default) {
				t.Errorf("--help shows %q, Keys says %#v", f.DefValue, k.Default)
			}
			// The sample file states it.
			raw, ok := sample[k.Name]
			if !ok {
				t.Fatalf("config/pmsbridge.sample.yaml does not show %s (default %s)", k.Name, k.FormatDefault())
			}
			if got := sampleText(raw); got != k.FormatDefault() {
				t.Errorf("the sample file says %q, Keys says %q", got, k.FormatDefault())
			}
		})
	}
}

// fieldValue reads a dotted key of c through --print-config's view of it.
func fieldValue(t *testing.T, c config.Config, key string) any {
	t.Helper()
	for _, kv := range c.Redacted() {
		if kv.Key == key {
			if s, ok := kv.Value.(string); ok {
				if d, err := time.ParseDuration(s); err == nil && strings.ContainsAny(s, "hms") {
					return d // Redacted prints durations as text
				}
			}
			return kv.Value
		}
	}
	t.Fatalf("no key %s in the printed configuration", key)
	return nil
}

// flagDefault parses a flag's default back into the type of want.
func flagDefault(t *testing.T, f *pflag.Flag, want any) any {
	t.Helper()
	switch want.(type) {
	case time.Duration:
		d, err := time.ParseDuration(f.DefValue)
		if err != nil {
			t.Fatalf("flag default %q: %v", f.DefValue, err)
		}
		return d
	case int:
		n, err := strconv.Atoi(f.DefValue)
		if err != nil {
			t.Fatalf("flag default %q: %v", f.DefValue, err)
		}
		return n
	case bool:
		b, err := strconv.ParseBool(f.DefValue)
		if err != nil {
			t.Fatalf("flag default %q: %v", f.DefValue, err)
		}
		return b
	case []string:
		if f.DefValue != "[]" {
			t.Fatalf("flag default %q, want an empty list", f.DefValue)
		}
		return []string{}
	default:
		return f.DefValue
	}
}

// sampleValues reads the sample file's keys, flattened to dotted names.
func sampleValues(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile("pmsbridge.sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			out[prefix+k] = v
		}
	}
	walk("", raw)
	return out
}

// sampleText writes a sample value as Key.FormatDefault would.
func sampleText(v any) string {
	if l, ok := v.([]any); ok {
		s := make([]string, len(l))
		for i, x := range l {
			s[i] = fmt.Sprint(x)
		}
		return strings.Join(s, ",")
	}
	return fmt.Sprint(v)
}

// readmeConfigTable renders config.Keys as the README's table.
func readmeConfigTable() string {
	var b strings.Builder
	b.WriteString("| key | default | meaning |\n| --- | --- | --- |\n")
	for _, k := range config.Keys {
		def := "—"
		switch {
		case k.Required:
			def = "— (required)"
		case k.FormatDefault() != "":
			def = "`" + k.FormatDefault() + "`"
		}
		b.WriteString("| `" + k.Name + "` | " + def + " | " + gendoc.Cell(k.Usage) + " |\n")
	}
	return b.String()
}

// TestREADMEConfigTable: the README's configuration table is config.Keys,
// defaults included. Run with -update to rewrite it.
func TestREADMEConfigTable(t *testing.T) {
	gendoc.Section(t, "../README.md", "configuration table", "go test ./config -run TestREADMEConfigTable -update", readmeConfigTable())
}
