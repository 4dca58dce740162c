package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// CheckAdminLogin counts a support login (the admin token typed into the
// login page) from client and runs check, the comparison with the token,
// only if the client is not locked out: like Authenticate, attempts are
// counted per client in one step before the check, LoginMaxFailures
// within LoginWindow, so of any number of simultaneous attempts at most
// that many are checked; the rest get a *LockedError. A failed check is
// ErrBadCredentials and stays counted; a success is not counted.
func (s *Store) CheckAdminLogin(ctx context.Context, client string, check func() bool) error {
	var keys []limitKey
	if client != "" {
		keys = append(keys, limitKey{scope: "client", key: s.limitKeyOf("admin", "client", client), max: s.opts.LoginMaxFailures})
	}
	res, err := s.reserve(ctx, keys, s.opts.LoginWindow)
	if err != nil {
		return fmt.Errorf("admin login: %w", err)
	}
	if !check() {
		return fmt.Errorf("admin login: %w", ErrBadCredentials)
	}
	if err := s.release(ctx, res); err != nil {
		return fmt.Errorf("admin login: %w", err)
	}
	return nil
}

func (s *Store) adminSessionKey(token string) string { return s.key("adminsess", sha256Hex(token)) }

// CreateAdminSession starts a support login in a browser that lasts ttl
// (by the store's clock) and returns its token: 32 random bytes, base64url.
// Redis holds only the token's SHA-256. generation names the admin token
// the login was made with: a session is valid only while the same
// generation is asked for, so replacing the admin token ends every one.
func (s *Store) CreateAdminSession(ctx context.Context, generation, client string, ttl time.Duration) (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("create admin session: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	now := s.now()
	key := s.adminSessionKey(token)
	pipe := s.rdb.Pipeline()
	pipe.HSet(ctx, key, "gen", generation, "created", now.UnixMilli(), "abs", now.Add(ttl).UnixMilli(), "ip", client)
	pipe.PExpire(ctx, key, ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return "", fmt.Errorf("create admin session: %w", err)
	}
	return token, nil
}

// AdminSessionValid reports whether token is a live support login of
// generation generation (not expired by the store's clock, not logged out).
func (s *Store) AdminSessionValid(ctx context.Context, token, generation string) (bool, error) {
	if token == "" || len(token) > 100 {
		return false, nil
	}
	v, err := s.rdb.HMGet(ctx, s.adminSessionKey(token), "gen", "abs").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("admin session: %w", err)
	}
	gen, _ := v[0].(string)
	absText, _ := v[1].(string)
	abs, err := strconv.ParseInt(absText, 10, 64)
	if gen == "" || err != nil {
		return false, nil
	}
	return gen == generation && s.now().UnixMilli() < abs, nil
}

// DeleteAdminSession ends a support login (logout). Unknown tokens are not
// an error.
func (s *Store) DeleteAdminSession(ctx context.Context, token string) error {
	if token == "" || len(token) > 100 {
		return nil
	}
	if err := s.rdb.Del(ctx, s.adminSessionKey(token)).Err(); err != nil {
		return fmt.Errorf("delete admin session: %w", err)
	}
	return nil
}
