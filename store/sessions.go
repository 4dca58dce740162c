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

// sessionRefresh is how often, at most, a used session's last-seen time and
// TTL are written back: between two writes GetSession only reads.
const sessionRefresh = time.Minute

// Session is a logged-in browser. Its token is given to the browser once, by
// CreateSession; Redis holds only the token's SHA-256.
type Session struct {
	PractitionerID string    `json:"practitioner_id"`
	CreatedAt      time.Time `json:"created_at"`
	// LastSeenAt is when the session was last used, to the minute (it is
	// written back at most once a minute).
	LastSeenAt time.Time `json:"last_seen_at"`
	// ExpiresAt is when the session ends if it is not used again: the
	// earlier of LastSeenAt+SessionIdle and CreatedAt+SessionAbsolute.
	ExpiresAt time.Time `json:"expires_at"`
	IP        string    `json:"ip"`
	UserAgent string    `json:"user_agent"`
}

func (s *Store) sessionKey(token string) string { return s.key("sess", sha256Hex(token)) }

// CreateSession starts a session for an active practitioner and returns its
// token: 32 random bytes, base64url without padding.
func (s *Store) CreateSession(ctx context.Context, practitionerID, ip, userAgent string) (string, Session, error) {
	rec, err := s.getPractitionerRecord(ctx, practitionerID)
	if err != nil {
		return "", Session{}, fmt.Errorf("create session for %s: %w", practitionerID, err)
	}
	if !rec.Active {
		return "", Session{}, fmt.Errorf("create session for %s: practitioner inactive: %w", practitionerID, ErrInvalid)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", Session{}, fmt.Errorf("create session: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	if len(userAgent) > 512 {
		userAgent = userAgent[:512]
	}
	now := s.now().Truncate(time.Millisecond)
	abs := now.Add(s.opts.SessionAbsolute)
	sess := Session{PractitionerID: practitionerID, CreatedAt: now, LastSeenAt: now, IP: ip, UserAgent: userAgent}
	sess.ExpiresAt = s.sessionExpiry(sess.LastSeenAt, abs)
	key := s.sessionKey(token)
	index := s.key("prac", practitionerID, "sessions")
	pipe := s.rdb.Pipeline()
	pipe.HSet(ctx, key, "pid", practitionerID, "created", now.UnixMilli(), "last", now.UnixMilli(),
		"abs", abs.UnixMilli(), "ip", ip, "ua", userAgent)
	pipe.PExpire(ctx, key, min(s.opts.SessionIdle, s.opts.SessionAbsolute))
	pipe.SAdd(ctx, index, sha256Hex(token))
	pipe.PExpire(ctx, index, s.opts.SessionAbsolute)
	card := pipe.SCard(ctx, index)
	if _, err := pipe.Exec(ctx); err != nil {
		return "", Session{}, fmt.Errorf("create session: %w", err)
	}
	if card.Val() > maxIndexedSessions {
		if err := s.pruneSessionIndex(ctx, index); err != nil {
			return "", Session{}, fmt.Errorf("create session: %w", err)
		}
	}
	// Deactivate sets the flag, then deletes the indexed sessions; we index,
	// then look at the flag again. Either way no session of an inactive
	// practitioner survives.
	rec, err = s.getPractitionerRecord(ctx, practitionerID)
	if err != nil || !rec.Active {
		s.rdb.Del(context.WithoutCancel(ctx), key)
		if err == nil {
			err = ErrInvalid
		}
		return "", Session{}, fmt.Errorf("create session for %s: practitioner inactive: %w", practitionerID, err)
	}
	return token, sess, nil
}

// maxIndexedSessions is the size of a practitioner's session index above
// which CreateSession drops the entries of sessions that expired.
const maxIndexedSessions = 32

func (s *Store) pruneSessionIndex(ctx context.Context, index string) error {
	hashes, err := s.rdb.SMembers(ctx, index).Result()
	if err != nil {
		return err
	}
	pipe := s.rdb.Pipeline()
	exists := make([]*redis.IntCmd, len(hashes))
	for i, h := range hashes {
		exists[i] = pipe.Exists(ctx, s.key("sess", h))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	var dead []any
	for i, h := range hashes {
		if exists[i].Val() == 0 {
			dead = append(dead, h)
		}
	}
	if len(dead) == 0 {
		return nil
	}
	return s.rdb.SRem(ctx, index, dead...).Err()
}

func (s *Store) sessionExpiry(last, abs time.Time) time.Time {
	if idle := last.Add(s.opts.SessionIdle); idle.Before(abs) {
		return idle
	}
	return abs
}

// sessionLua defines session(key, now, idle, refresh, ...): the session
// hash at key, as HMGET pid, last, abs and the further fields named, or nil
// when there is none or it has expired (then it is deleted). When the last
// write is a refresh period old it writes back the last-seen time and the
// TTL (the smaller of the idle and the absolute limit). now, idle and
// refresh are the ARGV strings (unix ms, ms, ms). GetSession and the click
// (ResolveClick, which needs no more than the practitioner) share it, so a
// session ends and slides the same way on either path.
const sessionLua = `
local function session(key, now_s, idle_s, refresh_s, ...)
  local v = redis.call('HMGET', key, 'pid', 'last', 'abs', ...)
  if not v[1] then return nil end
  local now, idle, refresh = tonumber(now_s), tonumber(idle_s), tonumber(refresh_s)
  local last, abs = tonumber(v[2]), tonumber(v[3])
  if now >= abs or now - last >= idle then
    redis.call('DEL', key)
    return nil
  end
  if now - last >= refresh then
    local ttl = idle
    if abs - now < ttl then ttl = abs - now end
    redis.call('HSET', key, 'last', now_s)
    redis.call('PEXPIRE', key, ttl)
    v[2] = now_s
  end
  return v
end
`

// getSessionScript reads a session (sessionLua). One key.
//
// KEYS[1] session; ARGV now ms, idle ms, refresh ms. Returns pid, last,
// abs, created, ip, ua.
var getSessionScript = redis.NewScript(sessionLua + `
return session(KEYS[1], ARGV[1], ARGV[2], ARGV[3], 'created', 'ip', 'ua') or false
`)

// GetSession returns the session of token, enforcing idle and absolute
// expiry; an unknown or expired token is ErrNotFound. Sessions of a
// practitioner are deleted when they are deactivated, so a session found
// belongs to an active practitioner. One round trip (EVALSHA); the Redis TTL
// is kept at the smaller of the idle and absolute limits, refreshed at most
// once a minute.
func (s *Store) GetSession(ctx context.Context, token string) (Session, error) {
	if token == "" || len(token) > 100 {
		return Session{}, fmt.Errorf("get session: %w", ErrNotFound)
	}
	now := s.now()
	vals, err := getSessionScript.Run(ctx, s.rdb, []string{s.sessionKey(token)},
		now.UnixMilli(), s.opts.SessionIdle.Milliseconds(), sessionRefresh.Milliseconds()).Slice()
	if errors.Is(err, redis.Nil) {
		return Session{}, fmt.Errorf("get session: %w", ErrNotFound)
	}
	if err != nil {
		return Session{}, fmt.Errorf("get session: %w", err)
	}
	str := func(i int) string {
		if i < len(vals) {
			if v, ok := vals[i].(string); ok {
				return v
			}
		}
		return ""
	}
	ms := func(i int) time.Time {
		n, _ := strconv.ParseInt(str(i), 10, 64)
		return time.UnixMilli(n).UTC()
	}
	sess := Session{PractitionerID: str(0), LastSeenAt: ms(1), CreatedAt: ms(3), IP: str(4), UserAgent: str(5)}
	sess.ExpiresAt = s.sessionExpiry(sess.LastSeenAt, ms(2))
	return sess, nil
}

// DeleteSession ends the session of token (logout). Deleting an unknown
// token is not an error.
func (s *Store) DeleteSession(ctx context.Context, token string) error {
	if token == "" || len(token) > 100 {
		return nil
	}
	key := s.sessionKey(token)
	pid, err := s.rdb.HGet(ctx, key, "pid").Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	pipe := s.rdb.Pipeline()
	pipe.Del(ctx, key)
	pipe.SRem(ctx, s.key("prac", pid, "sessions"), sha256Hex(token))
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteSessionsOf ends every session of practitioner practitionerID.
func (s *Store) DeleteSessionsOf(ctx context.Context, practitionerID string) error {
	if !validID(practitionerID) {
		return nil
	}
	index := s.key("prac", practitionerID, "sessions")
	hashes, err := s.rdb.SMembers(ctx, index).Result()
	if err != nil {
		return fmt.Errorf("delete sessions of %s: %w", practitionerID, err)
	}
	pipe := s.rdb.Pipeline()
	for _, h := range hashes {
		pipe.Del(ctx, s.key("sess", h))
		pipe.SRem(ctx, index, h)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("delete sessions of %s: %w", practitionerID, err)
	}
	return nil
}
