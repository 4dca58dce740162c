package jobs

import (
	"context"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the job metrics on /metrics.
type Metrics struct {
	jobs      *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	reconcile *reconcileMetrics
}

// NewMetrics registers the job metrics on reg. The failure-ledger size is
// read from st when /metrics is scraped.
func NewMetrics(reg prometheus.Registerer, st *store.Store) *Metrics {
	m := &Metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pmsbridge_jobs_total", Help: "Job attempts by type, outcome (done, retry, snoozed, failed) and cause.",
		}, []string{"type", "outcome", "cause"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pmsbridge_job_duration_seconds", Help: "Job attempt duration by type.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"type"}),
	}
	ledger := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pmsbridge_failure_ledger_entries", Help: "Entries in the failure ledger (failed jobs not yet fixed or deleted).",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n, err := st.CountFailures(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	})
	reg.MustRegister(m.jobs, m.duration, ledger)
	m.reconcile = newReconcileMetrics(reg)
	return m
}

func (m *Metrics) observe(typ, outcome string, cause pmsbridge.Cause, d time.Duration) {
	m.jobs.WithLabelValues(typ, outcome, string(cause)).Inc()
	m.duration.WithLabelValues(typ).Observe(d.Seconds())
}
