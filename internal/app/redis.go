package app

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// minRedis is the oldest Redis asynq supports.
var minRedis = [2]int{6, 2}

// checkRedis waits (up to wait) for Redis to answer, refuses a Redis older
// than 6.2 and warns when it is not set up to keep queued work safe.
func checkRedis(ctx context.Context, rdb redis.UniversalClient, wait time.Duration, log *slog.Logger) error {
	deadline := time.Now().Add(wait)
	var info string
	for {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		var err error
		info, err = rdb.Info(c, "server", "persistence", "memory").Result()
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis (redis.url) does not answer: %v", redisErrText(err))
		}
		log.Warn("waiting for redis", "err", redisErrText(err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	fields := parseInfo(info)
	ver := fields["redis_version"]
	if !versionAtLeast(ver, minRedis) {
		return fmt.Errorf("redis %s is too old: pmsbridge (asynq) needs Redis %d.%d or newer", ver, minRedis[0], minRedis[1])
	}
	if fields["aof_enabled"] != "1" {
		log.Warn("redis has AOF off: queued jobs and records written in the last moments before a Redis crash would be lost; set appendonly yes and appendfsync everysec")
	}
	if p := fields["maxmemory_policy"]; p != "" && p != "noeviction" {
		log.Warn("redis maxmemory-policy is not noeviction: Redis may silently drop queued jobs and records under memory pressure; set maxmemory-policy noeviction", "policy", p)
	}
	log.Info("redis ok", "version", ver)
	return nil
}

// redisErrText strips anything after the address from a connection error,
// so a URL with credentials never reaches the log.
func redisErrText(err error) string {
	s := err.Error()
	if i := strings.Index(s, "@"); i >= 0 {
		return "connection failed"
	}
	return s
}

func parseInfo(info string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			m[k] = v
		}
	}
	return m
}

func versionAtLeast(v string, min [2]int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return major > min[0] || (major == min[0] && minor >= min[1])
}
