// Package store keeps pmsbridge's records in Redis: subscriptions and their
// sharing groups, practitioners and their logins, sessions, Cliniko keys,
// patients and their Cliniko links, sharing, programmes with their PDF sync
// state, webhook event claims, the failure ledger, the audit log, and what
// processes coordinate through (locks, debounces, period claims, counters,
// the Cliniko request budget's key).
//
// Every key starts with Options.Prefix ("pmsb:" by default), and no other
// package builds a Redis key: the layout below is the whole of it. Sensitive values
// (Cliniko API keys, patient names, contact details and birth data) are
// encrypted at rest with a Keyring; sessions are stored under the SHA-256 of
// their token; passwords are stored as argon2id hashes.
//
// The store works against redis.UniversalClient. Transactions (WATCH/MULTI)
// and Lua scripts only ever touch a single key, and multi-key reads and
// writes are pipelines, so a Cluster client works too. Records are the source
// of truth; set indexes (a practitioner's patients, a patient's shares) are
// written before the record when adding and after it when removing, and are
// checked against the records when read, so a crash between the two steps
// leaves at worst an index entry that readers ignore.
//
// Key layout (P is the prefix):
//
//	P subs                          zset  subscription ids by creation time
//	P sub:<sub>                     json  Subscription
//	P sub:<sub>:pracs               set   practitioner ids
//	P sub:<sub>:sharing             json  Sharing groups
//	P sub:<sub>:patients            set   patient ids
//	P sub:<sub>:sync:<shard>        str   periodic sync cursor (RFC 3339)
//	P prac:<prac>                   json  Practitioner and argon2id password hash
//	P prac:<prac>:owned             set   ids of patients the practitioner owns
//	P prac:<prac>:shared            set   ids of patients shared with the practitioner
//	P prac:<prac>:sessions          set   sha256 hex of the practitioner's session tokens
//	P prac:<prac>:cliniko           hash  key (encrypted), user (json), saved_at
//	P pracemail:<sha256(email)>     str   practitioner id (unique email index)
//	P cliniko:keys                  set   ids of practitioners with a saved key
//	P sess:<sha256(token)>          hash  pid, created, last, abs (unix ms), ip, ua
//	P login:acct:<sha256(email)>    zset  failed logins (score unix ms)
//	P login:ip:<ip>                 zset  failed logins from an address
//	P pat:<pat>                     json  patient record; details encrypted
//	P pat:<pat>:programmes          set   programme ids
//	P pat:<pat>:audit               list  newest first, capped
//	P links:<sub>:<shard>           hash  Cliniko patient id -> patient id
//	P prg:<prg>                     hash  code, patient, latest, v:<n> (json per version)
//	P prg:<prg>:pdf                 hash  <version> -> json PDFState
//	P code:<code>                   str   programme id (unique access code index)
//	P access:code:<code>            zset  failed programme openings for a code
//	P access:ip:<ip>                zset  failed programme openings from an address
//	P evt:<event id>                str   webhook event claim, with a TTL
//	P audit                         list  newest first, capped
//	P failure:<task id>             json  failure ledger entry (Failure)
//	P failures                      zset  ledger task ids (score: last failure, unix ms)
//
// Coordination between processes (coordination.go):
//
//	P lock:pdf:<prg>:v<n>           str   upload lock of a programme version (holder's token), TTL
//	P debounce:refresh:<pat>        str   a patient's refresh was queued lately, TTL
//	P sync:period:<unix start>      str   the sync period was claimed by a work process, TTL
//	P stats:done:<YYYY-MM-DD>       hash  "<queue>|<task type>" -> tasks done that day (UTC), 8 days
//	rate:P cliniko:<shard>:<user>   str   a Cliniko user's request budget (GCRA); "rate:" is
//	                                      the limiter's (redis_rate's), in front of the key this store names
//	                                      (ClinikoBudgetKey); <user> is "k:<16 hex of the key's
//	                                      sha256>" while the user is not known yet
//
// Not this store's: asynq keeps its queues, tasks, servers and scheduler
// under its own fixed "asynq:" namespace (asynq:{<queue>}:…, asynq:servers,
// …), whatever the prefix; the jobs package reaches them only through
// asynq. So a prefix separates pmsbridge's records on a shared Redis, but
// two deployments must not share one Redis, or they would share queues.
//
// Round trips on the hot paths: FindLink is one HGET; GetSession is one
// EVALSHA (a second one, EVAL, only when Redis has lost its script cache).
package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options configures a Store. The zero value of every field means its default.
type Options struct {
	// Prefix starts every key. Default "pmsb:".
	Prefix string
	// Now is the clock for everything time-based. Default time.Now.
	Now func() time.Time
	// Keys encrypts secrets and patient details at rest. Nil opens a store
	// for tools that only read what is not encrypted (the failure ledger,
	// the audit log): reading or writing an encrypted field (Cliniko keys,
	// patient details) then fails with ErrNoKey.
	Keys *Keyring
	// SessionIdle ends a session that has not been used for this long.
	// Default 12h.
	SessionIdle time.Duration
	// SessionAbsolute ends a session this long after it was created, however
	// much it is used. Default 7 days (168h).
	SessionAbsolute time.Duration
	// LoginMaxFailures is how many failed logins an account, or an IP
	// address, may have within LoginWindow; once it has that many, further
	// attempts are refused with a *LockedError, even with the right password,
	// until the oldest failure leaves the window. Default 10.
	LoginMaxFailures int
	// LoginWindow is the sliding window for LoginMaxFailures. Default 15m.
	LoginWindow time.Duration
	// AuditCap is how many entries the global audit log keeps. Default 10000.
	AuditCap int
	// PatientAuditCap is how many entries each patient's audit log keeps.
	// Default 200.
	PatientAuditCap int
	// AccessMaxFailures is how many wrong years of birth a programme code may
	// get within AccessWindow before it is locked. Default 5.
	AccessMaxFailures int
	// AccessMaxIPFailures is how many failed programme openings an IP address
	// may make within AccessWindow before it is locked. Default 30.
	AccessMaxIPFailures int
	// AccessWindow is the sliding window for programme-opening failures.
	// Default 1h.
	AccessWindow time.Duration
	// Argon2 sets the password hashing cost. Default: see Argon2Params.
	Argon2 Argon2Params
}

// Argon2Params is the cost of argon2id password hashing. Stored hashes carry
// their own parameters, so changing these affects only new hashes.
type Argon2Params struct {
	// Time is the number of passes. Default 2.
	Time uint32
	// MemoryKiB is the memory used per hash, in KiB. Default 19456 (19 MiB,
	// OWASP's recommended minimum for argon2id).
	MemoryKiB uint32
	// Threads is the degree of parallelism. Default 1.
	Threads uint8
}

// withDefaults returns a copy of o with every zero field set to its default.
func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = "pmsb:"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SessionIdle == 0 {
		o.SessionIdle = 12 * time.Hour
	}
	if o.SessionAbsolute == 0 {
		o.SessionAbsolute = 7 * 24 * time.Hour
	}
	if o.LoginMaxFailures == 0 {
		o.LoginMaxFailures = 10
	}
	if o.LoginWindow == 0 {
		o.LoginWindow = 15 * time.Minute
	}
	if o.AuditCap == 0 {
		o.AuditCap = 10000
	}
	if o.PatientAuditCap == 0 {
		o.PatientAuditCap = 200
	}
	if o.AccessMaxFailures == 0 {
		o.AccessMaxFailures = 5
	}
	if o.AccessMaxIPFailures == 0 {
		o.AccessMaxIPFailures = 30
	}
	if o.AccessWindow == 0 {
		o.AccessWindow = time.Hour
	}
	if o.Argon2.Time == 0 {
		o.Argon2.Time = 2
	}
	if o.Argon2.MemoryKiB == 0 {
		o.Argon2.MemoryKiB = 19456
	}
	if o.Argon2.Threads == 0 {
		o.Argon2.Threads = 1
	}
	return o
}

func (o Options) validate() error {
	var problems []string
	if strings.ContainsAny(o.Prefix, " \r\n\t{}") {
		problems = append(problems, "Prefix must not contain spaces or braces")
	}
	for name, d := range map[string]time.Duration{
		"SessionIdle": o.SessionIdle, "SessionAbsolute": o.SessionAbsolute,
		"LoginWindow": o.LoginWindow, "AccessWindow": o.AccessWindow,
	} {
		if d < time.Second {
			problems = append(problems, name+" must be at least 1s")
		}
	}
	for name, n := range map[string]int{
		"LoginMaxFailures": o.LoginMaxFailures, "AuditCap": o.AuditCap,
		"PatientAuditCap": o.PatientAuditCap, "AccessMaxFailures": o.AccessMaxFailures,
		"AccessMaxIPFailures": o.AccessMaxIPFailures,
	} {
		if n < 1 {
			problems = append(problems, name+" must be positive")
		}
	}
	if o.Argon2.MemoryKiB < 8*uint32(o.Argon2.Threads) {
		problems = append(problems, "Argon2.MemoryKiB must be at least 8 per thread")
	}
	if len(problems) > 0 {
		return &ValidationError{What: "store options", Problems: problems}
	}
	return nil
}

// Store is the Redis-backed record store. It is safe for concurrent use.
type Store struct {
	rdb  redis.UniversalClient
	opts Options
	keys *Keyring

	dummyOnce sync.Once
	dummyHash string
}

// New returns a Store on rdb. It does not talk to Redis.
func New(rdb redis.UniversalClient, opts Options) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("store: nil redis client")
	}
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return &Store{rdb: rdb, opts: opts, keys: opts.Keys}, nil
}

// Ping checks that Redis answers, for readiness probes.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping redis: %w", err)
	}
	return nil
}

// now is the injected clock in UTC, without a monotonic reading.
func (s *Store) now() time.Time { return s.opts.Now().UTC().Round(0) }

// key joins parts under the prefix.
func (s *Store) key(parts ...string) string { return s.opts.Prefix + strings.Join(parts, ":") }

// maxTxRetries bounds optimistic (WATCH) retries.
const maxTxRetries = 20

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns kind_ followed by 24 characters of crypto-random base32.
func newID(kind string) string {
	b := make([]byte, 15)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return kind + "_" + idEncoding.EncodeToString(b)
}

// validID reports whether id is safe to use inside a key: 1–100 characters of
// letters, digits, '_' and '-'.
func validID(id string) bool {
	if id == "" || len(id) > 100 {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
		default:
			return false
		}
	}
	return true
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// getJSON reads a JSON record; a missing key is ErrNotFound.
func getJSON(ctx context.Context, c redis.Cmdable, key string, v any) error {
	b, err := c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain structs are marshalled here
	}
	return b
}

// getMany reads JSON records with one pipeline. Missing keys are skipped;
// the values found come in the order of keys. (Pipelined GETs rather than
// MGET, so that keys on different Cluster slots work.)
func getMany[T any](ctx context.Context, rdb redis.UniversalClient, keys []string) ([]T, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	pipe := rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.Get(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]T, 0, len(keys))
	for _, c := range cmds {
		b, err := c.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var v T
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// updateJSON applies fn to the JSON record at key under WATCH, retrying when
// another writer got there first. fn's error aborts the update.
func updateJSON[T any](ctx context.Context, rdb redis.UniversalClient, key string, fn func(*T) error) (T, error) {
	var out T
	for range maxTxRetries {
		err := rdb.Watch(ctx, func(tx *redis.Tx) error {
			var v T
			if err := getJSON(ctx, tx, key, &v); err != nil {
				return err
			}
			if err := fn(&v); err != nil {
				return err
			}
			_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, mustJSON(v), 0)
				return nil
			})
			if err == nil {
				out = v
			}
			return err
		}, key)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		return out, err
	}
	return out, fmt.Errorf("too much contention: %w", ErrConflict)
}

// sortedUnique returns the sorted distinct non-empty strings of in.
func sortedUnique(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := make([]string, 0, len(in))
	for _, s := range in {
		s = strings.TrimSpace(s)
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// swapFieldScript sets a hash field only if it still holds an expected
// value. KEYS[1] hash; ARGV field, expected, new. Returns 1 when swapped.
var swapFieldScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return 1
end
return 0
`)
