package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/physitrack/pmsbridge/internal/apptest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"
)

// The operations kit: a Grafana dashboard and Prometheus alert rules.
const (
	dashboardFile = "../../deploy/grafana/pmsbridge.json"
	alertsFile    = "../../deploy/prometheus/alerts.yml"
)

// exportedMetrics lists the names of every metric in reg, from the
// collectors' descriptions: a vector with no observations yet is absent
// from a scrape but not from Describe. (Desc has no accessor for its name;
// its String form is the documented way to read it.)
func exportedMetrics(t *testing.T, reg prometheus.Collector) map[string]bool {
	t.Helper()
	ch := make(chan *prometheus.Desc)
	go func() { reg.Describe(ch); close(ch) }()
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	for d := range ch {
		m := fqName.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read the name of %s", d)
		}
		names[m[1]] = true
	}
	return names
}

// promqlMetrics parses a PromQL expression and returns the metric names it
// selects.
func promqlMetrics(expr string) ([]string, error) {
	e, err := parser.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == model.MetricNameLabel {
					name = m.Value
				}
			}
			names = append(names, name)
		}
		return nil
	})
	return names, nil
}

// checkExported reports the pmsbridge_* names the app does not export. A
// histogram's series (_bucket, _sum, _count) count as the histogram.
func checkExported(t *testing.T, where string, names []string, exported map[string]bool) {
	t.Helper()
	for _, n := range names {
		if !strings.HasPrefix(n, "pmsbridge_") || exported[n] {
			continue
		}
		base := n
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if !exported[base] {
			t.Errorf("%s: %s is not a metric the app exports", where, n)
		}
	}
}

type dashboard struct {
	Title         string `json:"title"`
	UID           string `json:"uid"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ H, W, X, Y int } `json:"gridPos"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// grafanaVar is a dashboard variable in a query: $name or ${name}.
var grafanaVar = regexp.MustCompile(`\$\{?(\w+)\}?`)

// grafanaBuiltins stand in for Grafana's own interval variables when a
// query is parsed.
var grafanaBuiltins = map[string]string{"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestOperationsKit: the Grafana dashboard is valid JSON of a dashboard
// whose queries are valid PromQL, the alert rules are a valid Prometheus
// rule file (groups, alert, expr, for, labels.severity,
// annotations.summary), both cover what operators watch, and every
// pmsbridge_* metric they name is one the app exports — read from the
// running app's registry.
func TestOperationsKit(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{}) // run mode: web and worker metrics
	exported := exportedMetrics(t, e.App.Registry())
	for _, sure := range []string{"pmsbridge_jobs_total", "pmsbridge_click_to_patient_seconds", "pmsbridge_ready", "go_goroutines"} {
		if !exported[sure] {
			t.Fatalf("the registry's descriptions lack %s: %v", sure, exported)
		}
	}

	t.Run("dashboard", func(t *testing.T) {
		raw, err := os.ReadFile(dashboardFile)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		dec := json.NewDecoder(bytes.NewReader(raw))
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("%s is not valid JSON: %v", dashboardFile, err)
		}
		if dec.More() {
			t.Fatalf("%s holds more than one JSON document", dashboardFile)
		}
		if d.Title == "" || d.UID == "" || d.SchemaVersion == 0 || len(d.Panels) == 0 {
			t.Fatalf("not a dashboard: title %q uid %q schemaVersion %d, %d panels", d.Title, d.UID, d.SchemaVersion, len(d.Panels))
		}
		vars := map[string]string{}
		for _, v := range d.Templating.List {
			vars[v.Name] = ".*"
		}
		if _, ok := vars["datasource"]; !ok {
			t.Errorf("no datasource variable: the dashboard would be tied to one Prometheus")
		}
		var named []string
		ids := map[int]bool{}
		for _, p := range d.Panels {
			where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
			if ids[p.ID] {
				t.Errorf("%s: duplicate id", where)
			}
			ids[p.ID] = true
			if p.Title == "" || p.Type == "" || p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("%s: needs a title, a type and a place on the 24-column grid: %+v", where, p.GridPos)
			}
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
				t.Errorf("%s: data source %+v, want the prometheus ${datasource} variable", where, p.Datasource)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: no queries", where)
			}
			for _, q := range p.Targets {
				expr := grafanaVar.ReplaceAllStringFunc(q.Expr, func(v string) string {
					name := grafanaVar.FindStringSubmatch(v)[1]
					if s, ok := grafanaBuiltins[name]; ok {
						return s
					}
					if s, ok := vars[name]; ok {
						return s
					}
					t.Errorf("%s query %s: unknown variable %s", where, q.RefID, v)
					return v
				})
				names, err := promqlMetrics(expr)
				if q.RefID == "" || err != nil {
					t.Errorf("%s query %q (refId %q): %v", where, q.Expr, q.RefID, err)
				}
				checkExported(t, where, names, exported)
				named = append(named, names...)
			}
		}
		for _, want := range []string{"pmsbridge_click_to_patient_seconds_bucket", "pmsbridge_jobs_total", "pmsbridge_failure_ledger_entries",
			"pmsbridge_cliniko_requests_total", "pmsbridge_cliniko_rate_limited_total", "pmsbridge_cliniko_limiter_wait_seconds_bucket",
			"pmsbridge_http_requests_total", "pmsbridge_ready"} {
			if !slices.Contains(named, want) {
				t.Errorf("the dashboard shows nothing from %s", want)
			}
		}
	})

	t.Run("alert rules", func(t *testing.T) {
		raw, err := os.ReadFile(alertsFile)
		if err != nil {
			t.Fatal(err)
		}
		var rf ruleFile
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		if err := dec.Decode(&rf); err != nil {
			t.Fatalf("%s is not a Prometheus rule file: %v", alertsFile, err)
		}
		if len(rf.Groups) == 0 {
			t.Fatal("no rule groups")
		}
		var named []string
		alerts := map[string]bool{}
		for _, g := range rf.Groups {
			if g.Name == "" || len(g.Rules) == 0 {
				t.Errorf("group %q: needs a name and rules", g.Name)
			}
			for _, r := range g.Rules {
				where := "alert " + r.Alert
				if r.Alert == "" || alerts[r.Alert] {
					t.Errorf("%s: missing or duplicate alert name", where)
				}
				alerts[r.Alert] = true
				names, err := promqlMetrics(r.Expr)
				if err != nil {
					t.Errorf("%s: expr: %v", where, err)
				}
				checkExported(t, where, names, exported)
				named = append(named, names...)
				if d, err := model.ParseDuration(r.For); err != nil || d <= 0 {
					t.Errorf("%s: for %q is not a duration (%v)", where, r.For, err)
				}
				if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
					t.Errorf("%s: labels.severity %q, want critical, warning or info", where, s)
				}
				if r.Annotations["summary"] == "" {
					t.Errorf("%s: no annotations.summary", where)
				}
				for k, text := range r.Annotations {
					// Prometheus expands annotations as Go templates with
					// $labels and $value defined.
					tmpl, err := template.New(k).Option("missingkey=zero").Parse("{{$labels := .Labels}}{{$value := .Value}}" + text)
					if err == nil {
						err = tmpl.Execute(new(bytes.Buffer), map[string]any{"Labels": map[string]string{"instance": "x"}, "Value": 1.0})
					}
					if err != nil {
						t.Errorf("%s: annotations.%s: %v", where, k, err)
					}
				}
			}
		}
		for _, want := range []string{"pmsbridge_failure_ledger_entries", "pmsbridge_cliniko_rate_limited_total", "pmsbridge_jobs_total", "pmsbridge_ready"} {
			if !slices.Contains(named, want) {
				t.Errorf("no alert watches %s", want)
			}
		}
	})
}
