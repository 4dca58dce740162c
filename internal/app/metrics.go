package app

import (
	"context"

	"github.com/physitrack/pmsbridge/bridge"
	"github.com/prometheus/client_golang/prometheus"
)

// registerReady registers pmsbridge_ready: 1 while the checks behind
// /readyz pass (Redis answers; this process's workers are up), else 0,
// evaluated on each scrape. Alert rules cannot probe /readyz; they can
// watch this.
func registerReady(reg prometheus.Registerer, checks bridge.Checks) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pmsbridge_ready",
		Help: "1 when this process is ready (what /readyz checks: Redis answers and the process's workers are up), else 0; evaluated on each scrape.",
	}, func() float64 {
		if checks.Ready(context.Background()).Ready {
			return 1
		}
		return 0
	}))
}

// Registry is the process's Prometheus registry (what /metrics serves).
// Its Describe lists every metric the process exports, including vectors
// that have no observations yet and are absent from a scrape.
func (m *Main) Registry() *prometheus.Registry { return m.reg }
