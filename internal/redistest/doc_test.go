package redistest_test

import (
	"context"
	"os"
	"testing"

	"github.com/physitrack/pmsbridge/internal/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

func TestFreshDatabasePerTest(t *testing.T) {
	ctx := context.Background()
	a, b := redistest.Client(t), redistest.Client(t)
	if err := a.Set(ctx, "k", "a", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("second database sees the first one's key: n=%d err=%v", n, err)
	}
}

func TestRestartKeepsAOFData(t *testing.T) {
	ctx := context.Background()
	s := redistest.Start(t, true)
	rdb := clientFor(t, s)
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// appendfsync everysec: ask for an explicit rewrite-free fsync window.
	if err := rdb.Do(ctx, "BGREWRITEAOF").Err(); err != nil {
		t.Fatal(err)
	}
	waitAOF(t, rdb)
	s.Restart(t)
	if got, err := rdb.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("after restart: got %q, %v; want v", got, err)
	}
}
