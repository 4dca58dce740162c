// Package store keeps pmsbridge's records in Redis: subscriptions and their
// sharing groups, practitioners and their logins, sessions, Cliniko keys,
// patients and their Cliniko links, sharing, programmes with their PDF sync
// state and the messages that send patients their codes, webhook event
// claims, the failure ledger, the audit log, and what processes coordinate
// through (locks, debounces, period claims, counters,
// the Cliniko request budget's key).
//
// Every key starts with Options.Prefix ("pmsb:" by default), and no other
// package builds a Redis key: the layout below is the whole of it. Sensitive values
// (Cliniko API keys, patient names, contact details and birth data,
// programme versions with their titles, notes and exercise texts, and
// access codes) are encrypted at rest with a Keyring ("sealed" below);
// sessions are stored under the SHA-256 of their token; passwords are
// stored as argon2id hashes.
//
// Access codes never appear in clear, not even in key names: the code
// index and every key built from a code use mac(code), an HMAC under a key
// derived from the current encryption key (Keyring.MAC). A rotation
// changes it, so look-ups try the MAC under every key of the ring, and
// Reencrypt moves each index entry to the current key's MAC (as it
// re-seals the values), after which the old key can be dropped. Lock-out
// counters and notes keyed by a code's MAC are not moved: they last an
// hour at most, so a rotation forgets the current hour's tries of a code.
//
// The store runs on one Redis, alone or under Sentinel (a
// redis.UniversalClient on redis:// or redis-sentinel://), and not on Redis
// Cluster. The linked click (click.go) is one Lua script that reads keys it
// computes from what it reads: the session names the practitioner, whose
// key names the Cliniko shard, whose link names the patient, whose record
// names the owner. Such keys cannot be declared to the script up front nor
// share a hash slot, and Cluster refuses a script that touches keys of
// other slots. (Elsewhere transactions and scripts touch a single key, or
// keys sharing the hash tag {lim}, and multi-key reads are pipelines.) A
// Cluster-safe click would need every key of a subscription under one hash
// tag and the subscription named in the session cookie: another key
// layout. A region's data fits one Redis (docs/benchmarks.md, capacity),
// so none is planned.
//
// Attempt limits (logins, programme openings) are counted and decided in
// one Lua step that reserves a slot in every counter of the attempt, or in
// none; the counters are sorted sets of attempts by time, so a window
// slides. A client is the address bridge works out (http.trusted_proxies;
// an IPv6 /64). Records are the source
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
//	P sub:<sub>:sync:<shard>        str   the subscription shard's periodic sync watermark (RFC 3339);
//	                                      older versions kept one per practitioner, <shard>-<prac>, no longer read
//	P sub:<sub>:cliniko             hash  shard -> json ClinikoAccount its linked patients come from
//	P clinicref:<ref>               str   subscription id of a clinic reference (ClinicRef: patients' addresses)
//	P prac:<prac>                   json  Practitioner and argon2id password hash
//	P prac:<prac>:owned             set   ids of patients the practitioner owns
//	P prac:<prac>:shared            set   ids of patients shared with the practitioner
//	P prac:<prac>:sessions          set   sha256 hex of the practitioner's session tokens
//	P prac:<prac>:cliniko           hash  key (encrypted), user (json), saved_at
//	P pracemail:<sha256(email)>     str   practitioner id (unique email index)
//	P cliniko:keys                  set   ids of practitioners with a saved key
//	P sess:<sha256(token)>          hash  pid, created, last, abs (unix ms), ip, ua
//	P {lim}:login:acct:<sha256(email)>  zset  login attempts (score unix ms)
//	P {lim}:login:client:<client>       zset  login attempts from a client
//	P {lim}:admin:client:<client>       zset  support login attempts from a client
//	P adminsess:<sha256(token)>         hash  support login: gen, created, abs (unix ms), ip
//	P pat:<pat>                     json  patient record; details encrypted
//	P pat:<pat>:programmes          set   programme ids
//	P pat:<pat>:audit               list  Cliniko calls and actions, newest first, capped; TTL PatientAuditTTL
//	P pat:<pat>:access              list  tries at opening the patient's programmes, newest first, capped; TTL PatientAuditTTL
//	P pat:<pat>:access:count        hash  op -> number of tries of that kind; TTL PatientAuditTTL
//	P pat:<pat>:pdf_failed          set   "<prg>:<n>" of programme versions whose PDF failed for good
//	P links:<sub>:<shard>           hash  Cliniko patient id -> patient id
//	P prg:<prg>                     hash  code (sealed), patient, latest, v:<n> (sealed json per version)
//	P prg:<prg>:pdf                 hash  <version> -> json PDFState
//	P prg:<prg>:messages            zset  ids of the programme's code messages, by request time (unix ms)
//	P msg:<msg>                     json  Message: one code message request (masked address only; messages.go)
//	P {lim}:resend:pat:<pat>            zset  code resends asked for a patient (score unix ms)
//	P code:<mac(code)>              str   programme id (unique access code index)
//	P {lim}:access:code:<mac(code)>     zset  programme opening attempts for a code
//	P {lim}:access:client:<client>      zset  programme opening attempts from a client
//	P access:locked:<mac(code)>:<client> hash  locked tries of a code from a client in the window (from, n, pat)
//	P evt:<event id>                str   webhook event claim, with a TTL
//	P audit                         list  newest first, capped
//	P failure:<task id>             json  failure ledger entry (Failure)
//	P failures                      zset  ledger task ids (score: last failure, unix ms)
//	P history:<task id>             list  the job's history (JobEvent), newest first: failed attempts
//	                                      (repeats merged), replays and by whom, success, deletion;
//	                                      capped (JobHistoryCap), TTL JobHistoryTTL from the last event
//	P recovered                     zset  task ids of jobs that succeeded after a replay (score: when,
//	                                      unix ms); those older than RecoveredFor are dropped
//	P recovered:<task id>           json  the ledger entry when the job succeeded (Recovered), TTL RecoveredFor
//
// The click script (click.go, ResolveClick) declares one key and computes
// the others inside Redis from the records it reads, in this order:
//
//	KEYS[1] = P sess:<sha256(token)>  the session: read, its last-seen time
//	                                  and TTL written back at most once a
//	                                  minute, deleted when expired (sessionLua,
//	                                  shared with GetSession)
//	P prac:<pid>                      the session's practitioner (pid from the session)
//	P prac:<pid>:cliniko  user        the Cliniko user of their key: its shard
//	P links:<sub>:<shard>  <cliniko id>  the link (sub from the practitioner)
//	P pat:<pat>                       the patient's plain fields: owner_id,
//	                                  shared_with, subscription_id (nothing
//	                                  encrypted is read)
//	P prac:<owner>                    the owner (active, subscription, name); not
//	P sub:<sub>:sharing               read for the owner's own click
//	P debounce:refresh:<pat>          allowed clicks: EXISTS, whether a refresh is due
//
// It writes nothing but the session. The refresh debounce of a linked
// click is taken afterwards, in the background, when the script found it
// free.
//
// Coordination between processes (coordination.go):
//
//	P lock:pdf:<prg>:v<n>           str   upload lock of a programme version (holder's token), TTL
//	P lock:msg:<msg>                str   send lock of a code message (holder's token), TTL
//	P debounce:refresh:<pat>        str   a patient's refresh was queued lately, TTL
//	P stats:done:<YYYY-MM-DD>       hash  "<queue>|<task type>" -> tasks done that day (UTC), 8 days
//	P stats:failures:<YYYY-MM-DDTHH> hash  cause -> failed attempts recorded that hour (UTC), 8 days
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
// Round trips on the hot paths: a click on a linked patient is one EVALSHA
// (ResolveClick: session, practitioner, key, link, patient and sharing);
// GetSession, the session of every other page, is one EVALSHA too, and
// FindLink one HGET. A script costs a second round trip (EVAL) only when
// Redis has lost its script cache.
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
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/physitrack/pmsbridge"
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
	// LoginMaxFailures is how many failed logins an account, or a client
	// address, may have within LoginWindow (attempts being checked count
	// too); once it has that many, further attempts are refused with a
	// *LockedError, even with the right password, until the oldest failure
	// leaves the window. Default 10.
	LoginMaxFailures int
	// LoginWindow is the sliding window for LoginMaxFailures. Default 15m.
	LoginWindow time.Duration
	// AuditCap is how many entries the global audit log keeps. Default 10000.
	AuditCap int
	// PatientAuditCap is how many entries each patient's audit log keeps.
	// Default 200.
	PatientAuditCap int
	// PatientAuditTTL is how long a patient's logs (Cliniko calls and
	// actions, tries at opening programmes) are kept after their last
	// entry: memory grows with the patients active lately, not with every
	// patient ever seen. Default 180 days.
	PatientAuditTTL time.Duration
	// AccessMaxFailures is how many wrong years of birth a programme code may
	// get within AccessWindow before it is locked. Default 5.
	AccessMaxFailures int
	// AccessMaxIPFailures is how many failed programme openings a client
	// address may make within AccessWindow before it is locked. Default 30.
	AccessMaxIPFailures int
	// AccessWindow is the sliding window for programme-opening failures.
	// Default 1h.
	AccessWindow time.Duration
	// Argon2 sets the password hashing cost. Default: see Argon2Params.
	Argon2 Argon2Params
	// PasswordChecks is how many password hashes may run at once in this
	// process (each takes Argon2.MemoryKiB and a CPU). Default GOMAXPROCS:
	// a one-thread argon2id check keeps a CPU busy, so more at once would
	// finish no sooner and only hold more memory.
	PasswordChecks int
	// PasswordCheckQueue is how many more logins may wait for a hash slot
	// (waiting holds no hash memory); beyond that Authenticate returns
	// ErrBusy at once. Default 4 × PasswordChecks; negative: none wait.
	PasswordCheckQueue int
	// PasswordCheckWait is how long a waiting login waits at most before
	// ErrBusy. Default 2s.
	PasswordCheckWait time.Duration
	// AckReplicas is how many replicas must hold a write before Durable
	// lets it be acknowledged to a user (durable.go). Default 0: no wait.
	AckReplicas int
	// AckTimeout bounds Durable's wait for the replicas. Default 1s.
	AckTimeout time.Duration
	// JobHistoryCap is how many events a job's history keeps (repeated
	// failed attempts count once). Default 100.
	JobHistoryCap int
	// JobHistoryTTL is how long a job's history is kept after its last
	// event. Default 30 days (720h).
	JobHistoryTTL time.Duration
	// RecoveredFor is how long a job that succeeded after a replay is
	// listed as recently recovered. Default 24h.
	RecoveredFor time.Duration
	// ResendMax is how many times a patient's code may be sent again (by
	// any channel, for any of their programmes) within ResendWindow.
	// Default 5.
	ResendMax int
	// ResendWindow is the sliding window for ResendMax. Default 1h.
	ResendWindow time.Duration
	// DefaultTimeZone is the clinic time zone (IANA) of subscriptions
	// created without one, and of those stored before subscriptions had
	// one: the region's (config.Config.TimeZone). Default "UTC".
	DefaultTimeZone string
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
	if o.PatientAuditTTL == 0 {
		o.PatientAuditTTL = 180 * 24 * time.Hour
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
	if o.AckTimeout == 0 {
		o.AckTimeout = time.Second
	}
	if o.JobHistoryCap == 0 {
		o.JobHistoryCap = 100
	}
	if o.JobHistoryTTL == 0 {
		o.JobHistoryTTL = 30 * 24 * time.Hour
	}
	if o.RecoveredFor == 0 {
		o.RecoveredFor = 24 * time.Hour
	}
	if o.ResendMax == 0 {
		o.ResendMax = 5
	}
	if o.ResendWindow == 0 {
		o.ResendWindow = time.Hour
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
	if o.PasswordChecks == 0 {
		o.PasswordChecks = runtime.GOMAXPROCS(0)
	}
	if o.PasswordCheckQueue == 0 {
		o.PasswordCheckQueue = 4 * o.PasswordChecks
	}
	if o.PasswordCheckWait == 0 {
		o.PasswordCheckWait = 2 * time.Second
	}
	if o.DefaultTimeZone == "" {
		o.DefaultTimeZone = "UTC"
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
		"LoginWindow": o.LoginWindow, "AccessWindow": o.AccessWindow, "ResendWindow": o.ResendWindow,
		"JobHistoryTTL": o.JobHistoryTTL, "RecoveredFor": o.RecoveredFor,
	} {
		if d < time.Second {
			problems = append(problems, name+" must be at least 1s")
		}
	}
	for name, n := range map[string]int{
		"LoginMaxFailures": o.LoginMaxFailures, "AuditCap": o.AuditCap,
		"PatientAuditCap": o.PatientAuditCap, "AccessMaxFailures": o.AccessMaxFailures,
		"AccessMaxIPFailures": o.AccessMaxIPFailures, "PasswordChecks": o.PasswordChecks,
		"ResendMax": o.ResendMax, "JobHistoryCap": o.JobHistoryCap,
	} {
		if n < 1 {
			problems = append(problems, name+" must be positive")
		}
	}
	if o.Argon2.MemoryKiB < 8*uint32(o.Argon2.Threads) {
		problems = append(problems, "Argon2.MemoryKiB must be at least 8 per thread")
	}
	if _, err := pmsbridge.LoadTimeZone(o.DefaultTimeZone); err != nil {
		problems = append(problems, "DefaultTimeZone: "+err.Error())
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
	hashes    *hashGate
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
	return &Store{rdb: rdb, opts: opts, keys: opts.Keys,
		hashes: newHashGate(opts.PasswordChecks, opts.PasswordCheckQueue, opts.PasswordCheckWait)}, nil
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

// watchRetry runs fn as an optimistic transaction on key (WATCH key; fn
// reads through tx and writes in tx.TxPipelined), running it again when
// another writer changed key first, at most maxTxRetries times.
func watchRetry(ctx context.Context, rdb redis.UniversalClient, key string, fn func(*redis.Tx) error) error {
	for range maxTxRetries {
		err := rdb.Watch(ctx, fn, key)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
	}
	return fmt.Errorf("too much contention: %w", ErrConflict)
}

// updateJSON applies fn to the JSON record at key under WATCH, retrying when
// another writer got there first. fn's error aborts the update.
func updateJSON[T any](ctx context.Context, rdb redis.UniversalClient, key string, fn func(*T) error) (T, error) {
	var out T
	err := watchRetry(ctx, rdb, key, func(tx *redis.Tx) error {
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
	})
	return out, err
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

// delIfScript deletes a string key only if it still holds an expected
// value: a lock's holder token (Lock.Release), a code index entry's
// programme id (Reencrypt). KEYS[1]; ARGV value. Returns 1 when deleted.
var delIfScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)
