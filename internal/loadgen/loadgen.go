// Package loadgen is a small closed-loop load generator for the benchmark
// command: a fixed number of clients each run one operation after another
// until a time limit or a request count is reached, and every operation's
// latency is kept for percentiles. It only measures; what an operation does
// (usually one HTTP request to 127.0.0.1) is up to the caller.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Options bound a run. At least one of Duration and MaxOps must be set.
type Options struct {
	// Clients is how many operations run at once. Default 1.
	Clients int
	// Duration stops the run after this long (0: no time limit).
	Duration time.Duration
	// MaxOps stops the run after this many operations in all (0: no limit).
	MaxOps int
}

// Op is one operation of client number client (0..Clients-1), its i-th.
type Op func(ctx context.Context, client, i int) error

// Result is what a run measured.
type Result struct {
	Ops       int             // operations that succeeded
	Errors    int             // operations that returned an error
	FirstErr  error           // the first error, for the report
	Elapsed   time.Duration   // wall time of the run
	Latencies []time.Duration // of the successful operations, sorted
}

// Throughput is successful operations per second.
func (r Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// Percentile returns the p-th percentile (0..100) of the latencies
// (nearest rank), 0 without any.
func (r Result) Percentile(p float64) time.Duration {
	return Percentile(r.Latencies, p)
}

// Percentile returns the p-th percentile (0..100, nearest rank) of sorted.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

// Run runs op on o.Clients clients until ctx ends, o.Duration passes or
// o.MaxOps operations have started.
func Run(ctx context.Context, o Options, op Op) (Result, error) {
	if o.Clients <= 0 {
		o.Clients = 1
	}
	if o.Duration <= 0 && o.MaxOps <= 0 {
		return Result{}, errors.New("loadgen: set Duration or MaxOps")
	}
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	var (
		started atomic.Int64
		mu      sync.Mutex
		res     Result
		wg      sync.WaitGroup
	)
	lat := make([][]time.Duration, o.Clients)
	begin := time.Now()
	for c := 0; c < o.Clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				if ctx.Err() != nil {
					return
				}
				if o.MaxOps > 0 && started.Add(1) > int64(o.MaxOps) {
					return
				}
				t0 := time.Now()
				err := op(ctx, c, i)
				d := time.Since(t0)
				if err != nil {
					if ctx.Err() != nil {
						return // cut off by the time limit: not counted
					}
					mu.Lock()
					res.Errors++
					if res.FirstErr == nil {
						res.FirstErr = err
					}
					mu.Unlock()
					continue
				}
				lat[c] = append(lat[c], d)
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(begin)
	for _, l := range lat {
		res.Latencies = append(res.Latencies, l...)
	}
	slices.Sort(res.Latencies)
	res.Ops = len(res.Latencies)
	return res, nil
}

// NewHTTPClient returns a client for loopback load: enough idle connections
// for every load client, no redirects followed (the caller looks at them),
// and a timeout so a stuck server cannot stall a run.
func NewHTTPClient(clients int) *http.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        clients * 2,
		MaxIdleConnsPerHost: clients * 2,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Median returns the median of xs (the mean of the middle two for an even
// count), 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Ms formats a duration in milliseconds with two decimals.
func Ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// Burst runs op(0..n-1) on n goroutines that all wait at a start barrier
// and are released together, and returns the time from the release until
// the last op returned: the shape of a flood of simultaneous requests
// (limits under concurrency, memory under a burst).
func Burst(n int, op func(i int)) time.Duration {
	start := make(chan struct{})
	var ready, done sync.WaitGroup
	ready.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			op(i)
		}()
	}
	ready.Wait()
	t0 := time.Now()
	close(start)
	done.Wait()
	return time.Since(t0)
}
