package redistest_test

import (
	"context"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge/config"
	"github.com/physitrack/pmsbridge/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// TestSentinelFailoverAndKill drives the topology the way the failover
// tests do: the app's own client (config's redis-sentinel:// URL) writes,
// a requested failover and a SIGKILL of the primary each promote the
// replica, the client writes again on the new primary, and a killed node
// rejoins as a replica that has the data.
func TestSentinelFailoverAndKill(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := redistest.StartSentinel(t, redistest.SentinelOptions{})
	ru, err := config.ParseRedisURL(s.URL(0))
	if err != nil {
		t.Fatalf("config does not accept %s: %v", s.URL(0), err)
	}
	rdb := ru.Client().(*redis.Client)
	defer rdb.Close()
	if err := rdb.Set(ctx, "before", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.Wait(ctx, 1, time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 = %d, %v: the replica does not follow", n, err)
	}

	p, err := s.Failover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p.New == p.Old || p.New == "" {
		t.Fatalf("failover kept the primary: %+v", p)
	}
	if err := rdb.Set(ctx, "after-failover", "1", 0).Err(); err != nil {
		t.Fatalf("write after the failover: %v", err)
	}
	if n, err := rdb.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 after the failover = %d, %v: the old primary does not follow", n, err)
	}
	if got, _ := s.PrimaryAddr(ctx); got != p.New {
		t.Fatalf("sentinels name %s, failover reported %s", got, p.New)
	}

	killed, p2, err := s.KillPrimary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if killed.Addr() != p.New || p2.New == p.New {
		t.Fatalf("killed %s, promotion %+v", killed.Addr(), p2)
	}
	for _, k := range []string{"before", "after-failover"} {
		if n, err := rdb.Exists(ctx, k).Result(); err != nil || n != 1 {
			t.Errorf("%s after two failovers: exists=%d, %v", k, n, err)
		}
	}
	if err := s.Rejoin(ctx, killed); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, "after-rejoin", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.Wait(ctx, 1, time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 after the rejoin = %d, %v", n, err)
	}
}
