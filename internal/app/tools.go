package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/physitrack/pmsbridge/config"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
	"github.com/redis/go-redis/v9"
)

// Tools are what the support and admin commands use: the store and the job
// client on the configured Redis, without serving or working.
type Tools struct {
	Store *store.Store
	Jobs  *jobs.Client
	// Keys decrypt patient details and Cliniko keys; nil when
	// secrets.encryption_key was not given (the read-only commands run
	// without it, and then show nothing that is encrypted).
	Keys *store.Keyring
	rdb  redis.UniversalClient
}

// OpenTools connects to Redis with cfg (validated, with Validate or
// ValidateReadOnly). Without secrets.encryption_key the store has no keys:
// encrypted fields fail with store.ErrNoKey.
func OpenTools(ctx context.Context, cfg config.Config) (*Tools, error) {
	ru, err := config.ParseRedisURL(cfg.Redis.URL)
	if err != nil {
		return nil, fmt.Errorf("redis.url: %w", err)
	}
	// go-redis prints its own dial failures ("redis: … pool.go:…") on
	// stderr; a command reports the failure itself, in one line.
	setRedisLogger(slog.New(slog.DiscardHandler))
	rdb := ru.Client()
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(c).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis (redis.url %s) does not answer: %s", ru.Redacted(), redisErrText(err))
	}
	var keys *store.Keyring
	if cfg.Secrets.EncryptionKey != "" {
		if keys, err = keyring(cfg.Secrets); err != nil {
			rdb.Close()
			return nil, err
		}
	}
	st, err := store.New(rdb, store.Options{Keys: keys, DefaultTimeZone: cfg.TimeZone()})
	if err != nil {
		rdb.Close()
		return nil, err
	}
	return &Tools{Store: st, Jobs: jobs.NewClient(rdb, st), Keys: keys, rdb: rdb}, nil
}

// Close closes the Redis connection.
func (t *Tools) Close() error { return t.rdb.Close() }
