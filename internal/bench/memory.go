package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/internal/loadgen"
	"github.com/physitrack/pmsbridge/internal/rig"
)

// MemoryResult is the peak resident memory of `pmsbridge run` processes.
type MemoryResult struct {
	IdleKiB         int // VmRSS just after start (receiver process)
	ReceiverPeakKiB int // VmHWM after the receiver load
	ReceiverLoad    loadgen.Result
	BurstPeakKiB    int // VmHWM after the upload burst (a second process)
	Burst           BurstRun
}

// memory measures the peak RSS of a real `pmsbridge run` process (the
// binary built from this tree, configured by PMSBRIDGE_* variables) under
// the receiver load, and of another one during an upload burst.
func (r *runner) memory(ctx context.Context) error {
	bin, err := r.binary(ctx, "")
	if err != nil {
		return err
	}
	res := &MemoryResult{}

	sb := sandbox.New()
	defer sb.Close()
	key, redisURL := rig.NewEncryptionKey(), r.freshDB()
	p, err := rig.Start(ctx, rig.ProcessConfig{Binary: bin, Mode: "run", RedisURL: redisURL, ClinikoURL: sb.BaseURL(), EncryptionKey: key})
	if err != nil {
		return err
	}
	defer p.Kill()
	idle, err := p.Memory()
	if err != nil {
		return err
	}
	res.IdleKiB = idle.RSSKiB
	st, closeStore, err := rig.OpenStore(redisURL, key)
	if err != nil {
		return err
	}
	defer closeStore()
	c, err := rig.SeedClinic(ctx, st, sb, rig.ClinicSpec{Name: "Memory Clinic", Practitioners: receiverClients, PatientsEach: receiverPatients, Link: true})
	if err != nil {
		return err
	}
	tokens, err := seedSessions(ctx, st, c)
	if err != nil {
		return err
	}
	hc := loadgen.NewHTTPClient(receiverClients)
	for i, pr := range c.Practitioners {
		for _, cid := range pr.ClinikoPatients {
			if err := linkedClick(ctx, hc, p.URL, tokens[i], cid); err != nil {
				return fmt.Errorf("warm-up: %w", err)
			}
		}
	}
	time.Sleep(2 * time.Second) // the warm-up's refresh jobs
	res.ReceiverLoad, err = loadgen.Run(ctx, loadgen.Options{Clients: receiverClients, Duration: 2 * r.o.Duration, MaxOps: 400000},
		func(ctx context.Context, client, i int) error {
			pr := c.Practitioners[client]
			return linkedClick(ctx, hc, p.URL, tokens[client], pr.ClinikoPatients[i%len(pr.ClinikoPatients)])
		})
	if err != nil {
		return err
	}
	m, err := p.Memory()
	if err != nil {
		return err
	}
	res.ReceiverPeakKiB = m.PeakKiB
	if code := p.Terminate(20 * time.Second); code != 0 {
		return fmt.Errorf("pmsbridge run exited %d after SIGTERM", code)
	}
	r.logf("  receiver: idle RSS %d KiB, peak %d KiB under %.0f req/s (p99 %s, %d errors)", res.IdleKiB, res.ReceiverPeakKiB,
		res.ReceiverLoad.Throughput(), loadgen.Ms(res.ReceiverLoad.Percentile(99)), res.ReceiverLoad.Errors)

	var peak int
	b, err := r.burstOnce(ctx, burstRPM, burstUploads, func(sb *sandbox.Sandbox) (burstTarget, func(), error) {
		key, redisURL := rig.NewEncryptionKey(), r.freshDB()
		p, err := rig.Start(ctx, rig.ProcessConfig{Binary: bin, Mode: "run", RedisURL: redisURL, ClinikoURL: sb.BaseURL(), EncryptionKey: key, RequestsPerMinute: burstRPM})
		if err != nil {
			return burstTarget{}, nil, err
		}
		st, closeStore, err := rig.OpenStore(redisURL, key)
		if err != nil {
			p.Kill()
			return burstTarget{}, nil, err
		}
		return burstTarget{url: p.URL, store: st}, func() {
			if m, err := p.Memory(); err == nil {
				peak = m.PeakKiB
			}
			p.Terminate(20 * time.Second)
			closeStore()
		}, nil
	})
	if err != nil {
		return err
	}
	res.Burst, res.BurstPeakKiB = b, peak
	r.logf("  burst: peak %d KiB; %s", peak, b)
	r.rep.Memory = res
	return nil
}
