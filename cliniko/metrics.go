package cliniko

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the client's Prometheus metrics. Create them once per process
// with NewMetrics and pass them to every Client with WithMetrics.
type Metrics struct {
	requests    *prometheus.CounterVec
	rateLimited prometheus.Counter
	limiterWait prometheus.Histogram
	duration    *prometheus.HistogramVec
}

// NewMetrics creates the client's metrics and registers them with reg (when
// reg is not nil):
//
//	pmsbridge_cliniko_requests_total{op,status}        HTTP calls made ("error" when no answer)
//	pmsbridge_cliniko_rate_limited_total               429 answers received from Cliniko
//	pmsbridge_cliniko_limiter_wait_seconds             time spent waiting for our own limiter
//	pmsbridge_cliniko_request_duration_seconds{op}     duration of one HTTP call
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pmsbridge_cliniko_requests_total",
			Help: "HTTP calls to Cliniko (and its file storage), by operation and status (\"error\" when there was no answer).",
		}, []string{"op", "status"}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pmsbridge_cliniko_rate_limited_total",
			Help: "429 Too Many Requests answers received from Cliniko.",
		}),
		limiterWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pmsbridge_cliniko_limiter_wait_seconds",
			Help:    "Time a Cliniko request waited for a slot in the shared per-user request budget.",
			Buckets: []float64{0.001, 0.01, 0.05, 0.1, 0.3, 1, 3, 10, 30, 60},
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pmsbridge_cliniko_request_duration_seconds",
			Help:    "Duration of one HTTP call to Cliniko (and its file storage), by operation.",
			Buckets: prometheus.DefBuckets,
		}, []string{"op"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.rateLimited, m.limiterWait, m.duration)
	}
	return m
}

func (m *Metrics) observe(c Call) {
	if m == nil {
		return
	}
	status := "error"
	if c.Status != 0 {
		status = strconv.Itoa(c.Status)
	}
	m.requests.WithLabelValues(c.Op, status).Inc()
	if c.Status == 429 {
		m.rateLimited.Inc()
	}
	m.duration.WithLabelValues(c.Op).Observe(c.Duration.Seconds())
}

func (m *Metrics) observeWait(d time.Duration) {
	if m == nil {
		return
	}
	m.limiterWait.Observe(d.Seconds())
}
