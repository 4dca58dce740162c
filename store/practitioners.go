package store

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/argon2"
)

// MinPasswordLength is the shortest password accepted, in characters.
const MinPasswordLength = 10

// Practitioner is a login of the app, in one subscription.
type Practitioner struct {
	ID             string    `json:"id"` // "prac_…"
	SubscriptionID string    `json:"subscription_id"`
	Email          string    `json:"email"` // lower-cased, trimmed; unique in the region
	Name           string    `json:"name"`
	Active         bool      `json:"active"`
	CreatedAt      time.Time `json:"created_at"`
}

// NewPractitioner is the input of CreatePractitioner.
type NewPractitioner struct {
	SubscriptionID string
	Email          string
	Name           string
	Password       string
}

// practitionerRecord is what Redis holds: the practitioner and the hash.
type practitionerRecord struct {
	Practitioner
	PasswordHash string `json:"password_hash"`
}

// NormalizeEmail is the form in which emails are stored and compared.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

func validEmail(email string) bool {
	if len(email) > 254 {
		return false
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email {
		return false
	}
	_, domain, _ := strings.Cut(email, "@")
	return strings.Contains(domain, ".") && !strings.HasSuffix(domain, ".")
}

func passwordProblem(password string) string {
	if utf8.RuneCountInString(password) < MinPasswordLength {
		return fmt.Sprintf("password must be at least %d characters", MinPasswordLength)
	}
	if len(password) > 1024 {
		return "password must be at most 1024 bytes"
	}
	return ""
}

// CreatePractitioner creates an active practitioner. The subscription must
// exist, the email look valid, the name be non-empty and the password at
// least MinPasswordLength characters (ErrInvalid, listing every problem); an
// email already used in this region is ErrConflict.
func (s *Store) CreatePractitioner(ctx context.Context, np NewPractitioner) (Practitioner, error) {
	email := NormalizeEmail(np.Email)
	name := strings.TrimSpace(np.Name)
	var problems []string
	if _, err := s.GetSubscription(ctx, np.SubscriptionID); errors.Is(err, ErrNotFound) {
		problems = append(problems, "subscription does not exist")
	} else if err != nil {
		return Practitioner{}, fmt.Errorf("create practitioner: %w", err)
	}
	if !validEmail(email) {
		problems = append(problems, "email does not look valid")
	}
	if name == "" || len(name) > 200 {
		problems = append(problems, "name must be 1 to 200 characters")
	}
	if p := passwordProblem(np.Password); p != "" {
		problems = append(problems, p)
	}
	if len(problems) > 0 {
		return Practitioner{}, fmt.Errorf("create practitioner: %w", invalid("practitioner", problems...))
	}
	hash, err := s.gatedHash(ctx, np.Password)
	if err != nil {
		return Practitioner{}, fmt.Errorf("create practitioner: %w", err)
	}
	rec := practitionerRecord{
		Practitioner: Practitioner{
			ID: newID("prac"), SubscriptionID: np.SubscriptionID, Email: email,
			Name: name, Active: true, CreatedAt: s.now(),
		},
		PasswordHash: hash,
	}
	// The record first, then the unique email index: losing the race for
	// the email leaves only an unindexed record, which we delete.
	pracKey := s.key("prac", rec.ID)
	if err := s.rdb.Set(ctx, pracKey, mustJSON(rec), 0).Err(); err != nil {
		return Practitioner{}, fmt.Errorf("create practitioner: %w", err)
	}
	won, err := s.rdb.SetNX(ctx, s.emailKey(email), rec.ID, 0).Result()
	if err != nil || !won {
		s.rdb.Del(context.WithoutCancel(ctx), pracKey)
		if err != nil {
			return Practitioner{}, fmt.Errorf("create practitioner: %w", err)
		}
		return Practitioner{}, fmt.Errorf("create practitioner: email already taken: %w", ErrConflict)
	}
	if err := s.rdb.SAdd(ctx, s.key("sub", rec.SubscriptionID, "pracs"), rec.ID).Err(); err != nil {
		return Practitioner{}, fmt.Errorf("create practitioner: %w", err)
	}
	return rec.Practitioner, nil
}

func (s *Store) emailKey(email string) string { return s.key("pracemail", sha256Hex(email)) }

func (s *Store) getPractitionerRecord(ctx context.Context, id string) (practitionerRecord, error) {
	var rec practitionerRecord
	if !validID(id) {
		return rec, ErrNotFound
	}
	err := getJSON(ctx, s.rdb, s.key("prac", id), &rec)
	return rec, err
}

// GetPractitioner returns practitioner id.
func (s *Store) GetPractitioner(ctx context.Context, id string) (Practitioner, error) {
	rec, err := s.getPractitionerRecord(ctx, id)
	if err != nil {
		return Practitioner{}, fmt.Errorf("get practitioner %s: %w", id, err)
	}
	return rec.Practitioner, nil
}

func (s *Store) practitionerRecordByEmail(ctx context.Context, email string) (practitionerRecord, error) {
	id, err := s.rdb.Get(ctx, s.emailKey(NormalizeEmail(email))).Result()
	if errors.Is(err, redis.Nil) {
		return practitionerRecord{}, ErrNotFound
	}
	if err != nil {
		return practitionerRecord{}, err
	}
	return s.getPractitionerRecord(ctx, id)
}

// PractitionerByEmail returns the practitioner whose login is email (any
// case, surrounding space ignored).
func (s *Store) PractitionerByEmail(ctx context.Context, email string) (Practitioner, error) {
	rec, err := s.practitionerRecordByEmail(ctx, email)
	if err != nil {
		return Practitioner{}, fmt.Errorf("practitioner by email: %w", err)
	}
	return rec.Practitioner, nil
}

// ListPractitioners returns the practitioners of subscription subID, by name.
func (s *Store) ListPractitioners(ctx context.Context, subID string) ([]Practitioner, error) {
	if !validID(subID) {
		return nil, fmt.Errorf("list practitioners %q: %w", subID, ErrNotFound)
	}
	ids, err := s.rdb.SMembers(ctx, s.key("sub", subID, "pracs")).Result()
	if err != nil {
		return nil, fmt.Errorf("list practitioners %s: %w", subID, err)
	}
	recs, err := s.practitionerRecords(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("list practitioners %s: %w", subID, err)
	}
	out := make([]Practitioner, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.Practitioner)
	}
	slices.SortFunc(out, func(a, b Practitioner) int {
		if c := strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)); c != 0 {
			return c
		}
		return strings.Compare(a.Email, b.Email)
	})
	return out, nil
}

func (s *Store) practitionerRecords(ctx context.Context, ids []string) ([]practitionerRecord, error) {
	keys := make([]string, 0, len(ids))
	for _, id := range ids {
		if validID(id) {
			keys = append(keys, s.key("prac", id))
		}
	}
	return getMany[practitionerRecord](ctx, s.rdb, keys)
}

func (s *Store) updatePractitioner(ctx context.Context, id string, fn func(*practitionerRecord) error) (practitionerRecord, error) {
	if !validID(id) {
		return practitionerRecord{}, ErrNotFound
	}
	return updateJSON(ctx, s.rdb, s.key("prac", id), fn)
}

// Deactivate stops practitioner id from logging in or opening any patient,
// and ends every session of theirs. Their patients stay theirs.
func (s *Store) Deactivate(ctx context.Context, id string) error {
	if _, err := s.updatePractitioner(ctx, id, func(r *practitionerRecord) error {
		r.Active = false
		return nil
	}); err != nil {
		return fmt.Errorf("deactivate %s: %w", id, err)
	}
	if err := s.DeleteSessionsOf(ctx, id); err != nil {
		return fmt.Errorf("deactivate %s: %w", id, err)
	}
	return nil
}

// Reactivate undoes Deactivate.
func (s *Store) Reactivate(ctx context.Context, id string) error {
	if _, err := s.updatePractitioner(ctx, id, func(r *practitionerRecord) error {
		r.Active = true
		return nil
	}); err != nil {
		return fmt.Errorf("reactivate %s: %w", id, err)
	}
	return nil
}

// SetPassword replaces the password of practitioner id and ends every
// session of theirs (the caller starts a new one when the practitioner
// changed it themselves).
func (s *Store) SetPassword(ctx context.Context, id, password string) error {
	if p := passwordProblem(password); p != "" {
		return fmt.Errorf("set password %s: %w", id, invalid("password", p))
	}
	hash, err := s.gatedHash(ctx, password)
	if err != nil {
		return fmt.Errorf("set password %s: %w", id, err)
	}
	if _, err := s.updatePractitioner(ctx, id, func(r *practitionerRecord) error {
		r.PasswordHash = hash
		return nil
	}); err != nil {
		return fmt.Errorf("set password %s: %w", id, err)
	}
	if err := s.DeleteSessionsOf(ctx, id); err != nil {
		return fmt.Errorf("set password %s: %w", id, err)
	}
	return nil
}

// Authenticate checks a login. Wrong email, wrong password and an inactive
// practitioner are all ErrBadCredentials, in about the same time. When the
// process is already running PasswordChecks hashes (and PasswordCheckQueue
// attempts wait), the attempt is ErrBusy, unchecked and not counted.
//
// Attempts are counted per account and per client address (client may be
// empty) in one step before the password is checked: once either has
// LoginMaxFailures attempts within LoginWindow, further attempts are
// refused with a *LockedError (errors.Is ErrLocked) without being checked,
// even with the right password, until the oldest failure leaves the
// window. So of any number of simultaneous attempts at most
// LoginMaxFailures are checked. A failure stays counted; a success is
// not counted and clears the account's failures (not the client's).
func (s *Store) Authenticate(ctx context.Context, email, password, client string) (Practitioner, error) {
	email = NormalizeEmail(email)
	acct := s.limitKeyOf("login", "acct", sha256Hex(email))
	keys := []limitKey{{scope: "account", key: acct, max: s.opts.LoginMaxFailures}}
	if client != "" {
		keys = append(keys, limitKey{scope: "client", key: s.limitKeyOf("login", "client", client), max: s.opts.LoginMaxFailures})
	}
	res, err := s.reserve(ctx, keys, s.opts.LoginWindow)
	if err != nil {
		return Practitioner{}, fmt.Errorf("authenticate: %w", err)
	}
	// Not checked after all: the attempt does not count.
	unchecked := func(err error) (Practitioner, error) {
		if rerr := s.release(ctx, res); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return Practitioner{}, fmt.Errorf("authenticate: %w", err)
	}
	rec, err := s.practitionerRecordByEmail(ctx, email)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return unchecked(err)
	}
	found := err == nil
	done, err := s.hashes.acquire(ctx, true)
	if err != nil {
		return unchecked(err)
	}
	hash := rec.PasswordHash
	if !found {
		hash = s.dummyPasswordHash()
	}
	ok := verifyPassword(hash, password)
	done()
	if !found || !ok || !rec.Active {
		return Practitioner{}, fmt.Errorf("authenticate: %w", ErrBadCredentials)
	}
	if err := s.release(ctx, res, acct); err != nil {
		return Practitioner{}, fmt.Errorf("authenticate: %w", err)
	}
	return rec.Practitioner, nil
}

// gatedHash hashes a new password in one of the process's hash slots,
// waiting for one as long as ctx allows.
func (s *Store) gatedHash(ctx context.Context, password string) (string, error) {
	done, err := s.hashes.acquire(ctx, false)
	if err != nil {
		return "", err
	}
	defer done()
	return s.hashPassword(password), nil
}

// hashPassword returns a PHC-style argon2id hash:
// $argon2id$v=19$m=<KiB>,t=<passes>,p=<threads>$<salt>$<hash>.
func (s *Store) hashPassword(password string) string {
	p := s.opts.Argon2
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		panic(err)
	}
	sum := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, 32)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(sum))
}

// dummyPasswordHash is compared against when the email is unknown, so that
// unknown and known emails take the same time.
func (s *Store) dummyPasswordHash() string {
	s.dummyOnce.Do(func() {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		s.dummyHash = s.hashPassword(base64.RawStdEncoding.EncodeToString(b))
	})
	return s.dummyHash
}

func verifyPassword(encoded, password string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var version int
	var mem, passes uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &passes, &threads); err != nil {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, passes, mem, threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// PractitionersByID returns the practitioners among ids that exist, by id,
// with one Redis round trip (support rows name everyone they show).
func (s *Store) PractitionersByID(ctx context.Context, ids []string) (map[string]Practitioner, error) {
	recs, err := s.practitionerRecords(ctx, sortedUnique(ids))
	if err != nil {
		return nil, fmt.Errorf("practitioners by id: %w", err)
	}
	out := make(map[string]Practitioner, len(recs))
	for _, r := range recs {
		out[r.ID] = r.Practitioner
	}
	return out, nil
}
