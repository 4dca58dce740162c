package redistest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge/internal/redistest"
	"github.com/redis/go-redis/v9"
)

func clientFor(t *testing.T, s *redistest.Server) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func waitAOF(t *testing.T, rdb *redis.Client) {
	t.Helper()
	for i := 0; i < 100; i++ {
		info, err := rdb.Info(context.Background(), "persistence").Result()
		if err == nil && strings.Contains(info, "aof_rewrite_in_progress:0") && strings.Contains(info, "aof_rewrite_scheduled:0") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("AOF rewrite did not finish")
}
