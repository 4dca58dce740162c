package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/config"
	"github.com/physitrack/pmsbridge/internal/redistest"
	"github.com/physitrack/pmsbridge/store"
)

// TestDurable: with no replica to confirm, Durable refuses after its
// timeout; with a replica following the primary it passes, and the write
// made before it is on the replica; with AckReplicas 0 it does nothing.
func TestDurable(t *testing.T) {
	t.Parallel()
	alone := setup(t, func(o *store.Options) { o.AckReplicas = 1; o.AckTimeout = 50 * time.Millisecond })
	start := time.Now()
	if err := alone.store.Durable(alone.ctx); !errors.Is(err, store.ErrNotReplicated) {
		t.Fatalf("no replica: %v, want ErrNotReplicated", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("gave up after %s, before its timeout", d)
	}
	if err := setup(t).store.Durable(alone.ctx); err != nil {
		t.Errorf("AckReplicas 0: %v", err)
	}

	s := redistest.StartSentinel(t, redistest.SentinelOptions{})
	ru, err := config.ParseRedisURL(s.URL(0))
	if err != nil {
		t.Fatal(err)
	}
	rdb := ru.Client()
	t.Cleanup(func() { rdb.Close() })
	st, err := store.New(rdb, store.Options{Keys: alone.keys, Argon2: cheapArgon2, AckReplicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetPDFState(alone.ctx, "prg_durable", 1, store.PDFState{State: pmsbridge.PDFPending}); err != nil {
		t.Fatal(err)
	}
	if err := st.Durable(alone.ctx); err != nil {
		t.Fatalf("with a replica: %v", err)
	}
	replica := s.Nodes()[1]
	rc := redistest.ClientAt(t, replica.Addr(), 0)
	if n, err := rc.HExists(alone.ctx, "pmsb:prg:prg_durable:pdf", "1").Result(); err != nil || !n {
		t.Errorf("the write before Durable is not on the replica: %v, %v", n, err)
	}
}

// BenchmarkDurable: what Durable adds to an acknowledged write, against
// one plain round trip (PING) on the same Sentinel topology on loopback.
//
//	go test ./store -run '^$' -bench Durable -count 5
func BenchmarkDurable(b *testing.B) {
	s := redistest.StartSentinel(b, redistest.SentinelOptions{})
	ru, err := config.ParseRedisURL(s.URL(0))
	if err != nil {
		b.Fatal(err)
	}
	rdb := ru.Client()
	b.Cleanup(func() { rdb.Close() })
	keys, err := store.NewKeyring(testKey(1))
	if err != nil {
		b.Fatal(err)
	}
	st, err := store.New(rdb, store.Options{Keys: keys, Argon2: cheapArgon2, AckReplicas: 1})
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	b.Run("ping", func(b *testing.B) {
		for b.Loop() {
			if err := rdb.Ping(ctx).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("durable", func(b *testing.B) {
		for b.Loop() {
			if err := st.Durable(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
