package store

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/redis/go-redis/v9"
)

// DefaultEventTTL is how long ClaimEvent remembers an event id by default.
const DefaultEventTTL = 30 * 24 * time.Hour

// PDFState is the write-back state of one programme version's PDF.
type PDFState struct {
	State        pmsbridge.PDFState `json:"state"`
	Cause        pmsbridge.Cause    `json:"cause,omitempty"`
	Reason       string             `json:"reason,omitempty"`
	AttachmentID string             `json:"attachment_id,omitempty"`
	UpdatedAt    time.Time          `json:"updated_at"` // set to now when zero
}

// newCode returns pmsbridge.CodeLength letters a–z from crypto/rand,
// uniformly: bytes of 234 or more (26×9) are rejected instead of folded,
// which would favour the first letters.
func newCode() string {
	var out [pmsbridge.CodeLength]byte
	buf := make([]byte, 16)
	for n := 0; n < pmsbridge.CodeLength; {
		if _, err := rand.Read(buf); err != nil {
			panic(err)
		}
		for _, b := range buf {
			if b < 234 && n < pmsbridge.CodeLength {
				out[n] = 'a' + b%26
				n++
			}
		}
	}
	return string(out[:])
}

// createVersionScript adds a version to a programme hash, atomically on one
// key. KEYS[1] programme; ARGV version, sealed version, sealed code (as read
// from the hash for a later version, fresh for the first), patient id.
// Returns {1,""} when added, {0,sealed version} when that version already
// exists, {-1,latest} when it is not the next one, {-2,""} when the code
// changed under us (a concurrent first version, or Reencrypt).
var createVersionScript = redis.NewScript(`
local existing = redis.call('HGET', KEYS[1], 'v:' .. ARGV[1])
if existing then return {0, existing} end
local latest = tonumber(redis.call('HGET', KEYS[1], 'latest') or '0')
if tonumber(ARGV[1]) ~= latest + 1 then return {-1, tostring(latest)} end
if latest > 0 and redis.call('HGET', KEYS[1], 'code') ~= ARGV[3] then return {-2, ''} end
if latest == 0 then redis.call('HSET', KEYS[1], 'code', ARGV[3], 'patient', ARGV[4]) end
redis.call('HSET', KEYS[1], 'v:' .. ARGV[1], ARGV[2], 'latest', ARGV[1])
return {1, ''}
`)

// CreateProgramme stores a version of a programme.
//
// With p.ID empty it makes a new programme: a fresh "prg_…" id, a fresh
// access code unique in the region, version 1. With p.ID set (the webhook's
// id) it adds a version: p.Version must be the next one (0 means "the next
// one"); a version that already exists is returned as stored with created
// false, so redelivered webhooks are harmless; a gap is ErrInvalid. The
// first version of a given id gets a fresh code; later ones keep it (p.Code
// is ignored). The patient must exist and stay the same across versions.
func (s *Store) CreateProgramme(ctx context.Context, p pmsbridge.Programme) (pmsbridge.Programme, bool, error) {
	fail := func(err error) (pmsbridge.Programme, bool, error) {
		return pmsbridge.Programme{}, false, fmt.Errorf("create programme: %w", err)
	}
	var problems []string
	if p.ID != "" && !validID(p.ID) {
		problems = append(problems, "bad programme id")
	}
	if p.Version < 0 {
		problems = append(problems, "version must be positive")
	}
	if strings.TrimSpace(p.Title) == "" {
		problems = append(problems, "title is required")
	}
	if !validID(p.PatientID) {
		problems = append(problems, "bad patient id")
	} else if n, err := s.rdb.Exists(ctx, s.key("pat", p.PatientID)).Result(); err != nil {
		return fail(err)
	} else if n == 0 {
		problems = append(problems, "unknown patient")
	}
	if len(problems) > 0 {
		return fail(invalid("programme", problems...))
	}
	if p.ID == "" {
		p.ID = newID("prg")
		if p.Version > 1 {
			return fail(invalid("programme", "a new programme starts at version 1"))
		}
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = s.now()
	}
	p.CreatedAt = p.CreatedAt.UTC()
	key := s.key("prg", p.ID)
	head, err := s.rdb.HMGet(ctx, key, "code", "patient", "latest").Result()
	if err != nil {
		return fail(err)
	}
	sealedCode, _ := head[0].(string)
	patient, _ := head[1].(string)
	latest, _ := strconv.Atoi(fmt.Sprint(head[2]))
	var ownCode string // a code this call reserved, released if unused
	if sealedCode != "" {
		if patient != p.PatientID {
			return fail(invalid("programme", "the programme belongs to another patient"))
		}
		if p.Version == 0 {
			p.Version = latest + 1
		}
		if p.Code, err = s.openCode(p.ID, sealedCode); err != nil {
			return fail(err)
		}
	} else {
		if p.Version == 0 {
			p.Version = 1
		}
		if p.Version == 1 {
			if ownCode, err = s.reserveCode(ctx, p.ID); err != nil {
				return fail(err)
			}
			p.Code = ownCode
			if sealedCode, err = s.keys.Encrypt([]byte(ownCode), codeAAD(p.ID)); err != nil {
				return fail(err)
			}
		}
	}
	release := func() {
		if ownCode != "" {
			s.rdb.Del(context.WithoutCancel(ctx), s.codeIndexKey(s.keys.MAC("code", ownCode)))
		}
	}
	sealed, err := s.keys.Encrypt(mustJSON(p), versionAAD(p.ID, p.Version))
	if err != nil {
		release()
		return fail(err)
	}
	if err := s.rdb.SAdd(ctx, s.key("pat", p.PatientID, "programmes"), p.ID).Err(); err != nil {
		release()
		return fail(err)
	}
	res, err := createVersionScript.Run(ctx, s.rdb, []string{key},
		p.Version, sealed, sealedCode, p.PatientID).Slice()
	if err != nil || len(res) != 2 {
		release()
		if err == nil {
			err = errors.New("unexpected script reply")
		}
		return fail(err)
	}
	status, _ := res[0].(int64)
	payload, _ := res[1].(string)
	switch status {
	case 1:
		return p, true, nil
	case 0:
		release()
		got, err := s.openVersion(p.ID, p.Version, payload)
		if err != nil {
			return fail(err)
		}
		return got, false, nil
	case -2:
		release()
		return fail(fmt.Errorf("programme %s changed concurrently: %w", p.ID, ErrConflict))
	default:
		release()
		return fail(invalid("programme", fmt.Sprintf("version %d does not follow version %s", p.Version, payload)))
	}
}

// reserveCode takes a fresh access code for programme id in the region-wide
// code index (keyed by the code's MAC, never the code), retrying on
// collisions, also with codes indexed under a previous key.
func (s *Store) reserveCode(ctx context.Context, id string) (string, error) {
	for range 20 {
		code := newCode()
		macs := s.keys.MACs("code", code)
		if len(macs) > 1 {
			n, err := s.rdb.Exists(ctx, s.codeIndexKeys(macs[1:])...).Result()
			if err != nil {
				return "", err
			}
			if n > 0 {
				continue
			}
		}
		ok, err := s.rdb.SetNX(ctx, s.codeIndexKey(macs[0]), id, 0).Result()
		if err != nil {
			return "", err
		}
		if ok {
			return code, nil
		}
	}
	return "", fmt.Errorf("no free access code after 20 tries: %w", ErrConflict)
}

// codeIndexKey is the code index entry of a code's MAC.
func (s *Store) codeIndexKey(mac string) string { return s.key("code", mac) }

func (s *Store) codeIndexKeys(macs []string) []string {
	out := make([]string, len(macs))
	for i, m := range macs {
		out[i] = s.codeIndexKey(m)
	}
	return out
}

func codeAAD(programmeID string) string { return "programme-code:" + programmeID }

func versionAAD(programmeID string, version int) string {
	return "programme:" + programmeID + ":v" + strconv.Itoa(version)
}

// openCode reads a programme hash's sealed code. A plain code is from
// before codes were encrypted (Reencrypt seals it).
func (s *Store) openCode(programmeID, field string) (string, error) {
	if pmsbridge.ValidCode(field) {
		return field, nil
	}
	b, err := s.keys.Decrypt(field, codeAAD(programmeID))
	if err != nil {
		return "", fmt.Errorf("code of %s: %w", programmeID, err)
	}
	return string(b), nil
}

// openVersion reads a sealed programme version: title, notes and exercise
// texts are clinical text, encrypted at rest like patient details. Plain
// JSON is from before versions were encrypted (Reencrypt seals it).
func (s *Store) openVersion(programmeID string, version int, field string) (pmsbridge.Programme, error) {
	var p pmsbridge.Programme
	plain := []byte(field)
	if !strings.HasPrefix(field, "{") {
		var err error
		if plain, err = s.keys.Decrypt(field, versionAAD(programmeID, version)); err != nil {
			return p, fmt.Errorf("programme %s v%d: %w", programmeID, version, err)
		}
	}
	if err := json.Unmarshal(plain, &p); err != nil {
		return p, fmt.Errorf("programme %s v%d: %w", programmeID, version, err)
	}
	return p, nil
}

// versionField is the field of a programme hash that holds version n.
func versionField(n int) string { return "v:" + strconv.Itoa(n) }

// versionOfField is the version a programme hash's field holds; ok is
// false for the other fields (code, patient, latest).
func versionOfField(f string) (n int, ok bool) {
	v, ok := strings.CutPrefix(f, "v:")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	return n, err == nil
}

// programmeVersions decodes every version held in programme id's hash,
// highest first.
func (s *Store) programmeVersions(id string, h map[string]string) ([]pmsbridge.Programme, error) {
	var out []pmsbridge.Programme
	for f, v := range h {
		version, ok := versionOfField(f)
		if !ok {
			continue
		}
		p, err := s.openVersion(id, version, v)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b pmsbridge.Programme) int { return b.Version - a.Version })
	return out, nil
}

// GetProgramme returns version version of programme id; version 0 means the
// latest.
func (s *Store) GetProgramme(ctx context.Context, id string, version int) (pmsbridge.Programme, error) {
	var p pmsbridge.Programme
	if !validID(id) || version < 0 {
		return p, fmt.Errorf("get programme %q: %w", id, ErrNotFound)
	}
	if version == 0 {
		h, err := s.rdb.HGetAll(ctx, s.key("prg", id)).Result()
		if err != nil {
			return p, fmt.Errorf("get programme %s: %w", id, err)
		}
		vs, err := s.programmeVersions(id, h)
		if err != nil {
			return p, fmt.Errorf("get programme %s: %w", id, err)
		}
		if len(vs) == 0 {
			return p, fmt.Errorf("get programme %s: %w", id, ErrNotFound)
		}
		return vs[0], nil
	}
	field, err := s.rdb.HGet(ctx, s.key("prg", id), versionField(version)).Result()
	if errors.Is(err, redis.Nil) {
		return p, fmt.Errorf("get programme %s v%d: %w", id, version, ErrNotFound)
	}
	if err != nil {
		return p, fmt.Errorf("get programme %s v%d: %w", id, version, err)
	}
	return s.openVersion(id, version, field)
}

// Byline is who a programme version comes from, as its PDF names them.
type Byline struct {
	Practitioner string // the prescribing practitioner's name
	Clinic       string // the patient's subscription's (clinic's) name
	// Clock is the clinic's time, in which the PDF's dates are printed.
	Clock pmsbridge.ClinicTime
}

// BylineOf reads the byline of programme version prog of patient p. A name
// that cannot be read is left empty: the PDF is still made without it.
func (s *Store) BylineOf(ctx context.Context, prog pmsbridge.Programme, p Patient) Byline {
	var b Byline
	if pr, err := s.GetPractitioner(ctx, prog.PractitionerID); err == nil {
		b.Practitioner = pr.Name
	}
	if sub, err := s.GetSubscription(ctx, p.SubscriptionID); err == nil {
		b.Clinic, b.Clock = sub.Name, sub.ClinicTime()
	}
	return b
}

// ListProgrammes returns every version of every programme of patient
// patientID, grouped by programme: programmes newest first (by the creation
// of their first version), and within one programme the highest version
// first. Two round trips.
func (s *Store) ListProgrammes(ctx context.Context, patientID string) ([]pmsbridge.Programme, error) {
	if !validID(patientID) {
		return []pmsbridge.Programme{}, nil
	}
	ids, err := s.rdb.SMembers(ctx, s.key("pat", patientID, "programmes")).Result()
	if err != nil {
		return nil, fmt.Errorf("list programmes of %s: %w", patientID, err)
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, 0, len(ids))
	ids = slices.DeleteFunc(ids, func(id string) bool { return !validID(id) })
	for _, id := range ids {
		cmds = append(cmds, pipe.HGetAll(ctx, s.key("prg", id)))
	}
	if len(cmds) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("list programmes of %s: %w", patientID, err)
		}
	}
	var groups [][]pmsbridge.Programme
	for i, c := range cmds {
		vs, err := s.programmeVersions(ids[i], c.Val())
		if err != nil {
			return nil, fmt.Errorf("list programmes of %s: %w", patientID, err)
		}
		if len(vs) > 0 && vs[0].PatientID == patientID {
			groups = append(groups, vs)
		}
	}
	slices.SortFunc(groups, func(a, b []pmsbridge.Programme) int {
		if c := b[len(b)-1].CreatedAt.Compare(a[len(a)-1].CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a[0].ID, b[0].ID)
	})
	out := []pmsbridge.Programme{}
	for _, g := range groups {
		out = append(out, g...)
	}
	return out, nil
}

// LatestByCode returns the latest version of the programme with access code
// code; ErrNotFound for an unknown or malformed code. Two round trips.
func (s *Store) LatestByCode(ctx context.Context, code string) (pmsbridge.Programme, error) {
	if !pmsbridge.ValidCode(code) {
		return pmsbridge.Programme{}, fmt.Errorf("programme by code: %w", ErrNotFound)
	}
	id, err := s.programmeIDByCode(ctx, code)
	if err != nil {
		return pmsbridge.Programme{}, fmt.Errorf("programme by code: %w", err)
	}
	return s.GetProgramme(ctx, id, 0)
}

// programmeIDByCode looks a well-formed code up in the code index, under
// the MAC of every key of the keyring (during a rotation, entries not yet
// moved by Reencrypt are under a previous key) and, for data from before
// the index was keyed, the code itself; ErrNotFound when no programme has
// it. One round trip.
func (s *Store) programmeIDByCode(ctx context.Context, code string) (string, error) {
	keys := append(s.codeIndexKeys(s.keys.MACs("code", code)), s.key("code", code))
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.Get(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return "", err
	}
	for _, c := range cmds {
		if id, err := c.Result(); err == nil && id != "" {
			return id, nil
		}
	}
	return "", ErrNotFound
}

// codeMAC names a code in keys built from it (lock-out counters, notes of
// locked tries): its MAC under the current key, never the code.
func (s *Store) codeMAC(code string) string { return s.keys.MAC("code", code) }

// OpenProgramme is the patient's door: it returns the latest version of the
// programme with access code code when yearOfBirth is the patient's year of
// birth. A wrong code or year, and a patient without a year on record, are
// all ErrBadCredentials.
//
// Attempts are counted per code (AccessMaxFailures) and per client address
// (AccessMaxIPFailures; client may be empty) within AccessWindow, in one
// step before anything is checked: at the limit every attempt, even a
// right one, is refused with a *LockedError without being checked, until
// the oldest failure leaves the window. Of any number of simultaneous
// attempts at most the limit are checked. A failure stays counted; a
// success does not count.
//
// The Attempt says what to write to the patient's access log
// (RecordAttempt), whatever the outcome.
func (s *Store) OpenProgramme(ctx context.Context, code string, yearOfBirth int, client string) (pmsbridge.Programme, Attempt, error) {
	code = strings.ToLower(strings.TrimSpace(code))
	att := Attempt{client: client, TriesLeft: -1}
	if pmsbridge.ValidCode(code) {
		att.code = code
	}
	var keys []limitKey
	if att.code != "" {
		keys = append(keys, s.codeLimit(code))
	}
	if client != "" {
		keys = append(keys, limitKey{scope: "client", key: s.limitKeyOf("access", "client", client), max: s.opts.AccessMaxIPFailures})
	}
	res, err := s.reserve(ctx, keys, s.opts.AccessWindow)
	if err != nil {
		if errors.Is(err, ErrLocked) {
			att.Op = AccessLocked
		}
		return pmsbridge.Programme{}, att, fmt.Errorf("open programme: %w", err)
	}
	unchecked := func(err error) (pmsbridge.Programme, Attempt, error) {
		if rerr := s.release(ctx, res); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return pmsbridge.Programme{}, Attempt{}, fmt.Errorf("open programme: %w", err)
	}
	att.Op = AccessFailed
	p, err := s.LatestByCode(ctx, code)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return unchecked(err)
	}
	if err == nil {
		x, err := s.GetPatient(ctx, p.PatientID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return unchecked(err)
		}
		if err == nil {
			att.PatientID = x.ID
			switch {
			case x.YearOfBirth == 0:
				att.Op = AccessNoYear
			case x.YearOfBirth == yearOfBirth:
				att.Op = AccessOpened
			}
		}
	}
	if att.Op != AccessOpened {
		att.TriesLeft = res.left(keys)
		return pmsbridge.Programme{}, att, fmt.Errorf("open programme: %w", ErrBadCredentials)
	}
	if err := s.release(ctx, res); err != nil {
		return pmsbridge.Programme{}, att, fmt.Errorf("open programme: %w", err)
	}
	return p, att, nil
}

// codeLimit is the lock-out counter of a programme code's tries.
func (s *Store) codeLimit(code string) limitKey {
	return limitKey{scope: "code", key: s.limitKeyOf("access", "code", s.codeMAC(code)), max: s.opts.AccessMaxFailures}
}

// AccessLock is where a programme code's lock-out stands.
type AccessLock struct {
	// Failures are the wrong tries within the window (AccessWindow).
	Failures int
	// Max is how many wrong tries lock the code (AccessMaxFailures).
	Max int
	// Until is when the code opens again; zero when it is not locked.
	Until time.Time
}

// Locked reports whether the code is locked now.
func (l AccessLock) Locked() bool { return !l.Until.IsZero() }

// CodeLock reads a programme code's lock-out without counting a try (for
// the practitioner's page).
func (s *Store) CodeLock(ctx context.Context, code string) (AccessLock, error) {
	if !pmsbridge.ValidCode(code) {
		return AccessLock{Max: s.opts.AccessMaxFailures}, nil
	}
	k := s.codeLimit(code)
	n, until, err := s.lockOf(ctx, k, s.opts.AccessWindow)
	if err != nil {
		return AccessLock{}, fmt.Errorf("lock of a code: %w", err)
	}
	return AccessLock{Failures: n, Max: k.max, Until: until}, nil
}

// UnlockCode forgets a programme code's wrong tries, so the patient can
// try again at once (a practitioner's decision; the caller audits it).
// The tries counted against the patient's device address are kept.
func (s *Store) UnlockCode(ctx context.Context, code string) error {
	if !pmsbridge.ValidCode(code) {
		return nil
	}
	if err := s.rdb.Del(ctx, s.codeLimit(code).key).Err(); err != nil {
		return fmt.Errorf("unlock a code: %w", err)
	}
	return nil
}

// setPDFStateScript writes a version's PDF state unless it is already
// uploaded: an upload happens once per version, so nothing that comes later
// (a permanent failure recorded by a slower attempt, a replay resetting the
// state to pending) may hide the attachment that exists. KEYS[1] the pdf
// hash; ARGV version, json, new state. Returns 1 when written.
var setPDFStateScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and ARGV[3] ~= 'uploaded' and cjson.decode(cur).state == 'uploaded' then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`)

// SetPDFState records the PDF sync state of version version of programme
// programmeID. Once a version is PDFUploaded it stays so: any other state
// is then ignored (only a new upload record replaces it).
func (s *Store) SetPDFState(ctx context.Context, programmeID string, version int, st PDFState) error {
	switch st.State {
	case pmsbridge.PDFPending, pmsbridge.PDFUploaded, pmsbridge.PDFFailed, pmsbridge.PDFNotLinked:
	default:
		return fmt.Errorf("set pdf state of %s v%d: %w", programmeID, version, invalid("pdf state", "unknown state"))
	}
	if !validID(programmeID) || version < 1 {
		return fmt.Errorf("set pdf state: %w", invalid("pdf state", "bad programme id or version"))
	}
	if st.UpdatedAt.IsZero() {
		st.UpdatedAt = s.now()
	}
	st.UpdatedAt = st.UpdatedAt.UTC()
	// The owed-work index (owed.go): in before the record says pending,
	// out after it says anything else.
	owed := PDFOwedID(programmeID, version)
	if st.State == pmsbridge.PDFPending {
		if err := s.MarkOwed(ctx, OwedPDF, owed); err != nil {
			return fmt.Errorf("set pdf state of %s v%d: %w", programmeID, version, err)
		}
	}
	written, err := setPDFStateScript.Run(ctx, s.rdb, []string{s.key("prg", programmeID, "pdf")},
		version, mustJSON(st), string(st.State)).Int()
	if err != nil {
		return fmt.Errorf("set pdf state of %s v%d: %w", programmeID, version, err)
	}
	if written == 1 {
		if err := s.indexFailedPDF(ctx, programmeID, version, st.State == pmsbridge.PDFFailed); err != nil {
			return fmt.Errorf("set pdf state of %s v%d: %w", programmeID, version, err)
		}
	}
	if st.State != pmsbridge.PDFPending {
		// A leftover entry (this failing) is dropped by the reconciler.
		_ = s.ClearOwed(ctx, OwedPDF, owed)
	}
	return nil
}

// programmePatient is the id of the patient programme id belongs to (its
// hash's patient field); "" when there is no such programme.
func (s *Store) programmePatient(ctx context.Context, id string) (string, error) {
	patient, err := s.rdb.HGet(ctx, s.key("prg", id), "patient").Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return patient, err
}

// indexFailedPDF adds a programme version to its patient's set of failed
// PDFs, or takes it out (the patients page flags them without reading
// every programme).
func (s *Store) indexFailedPDF(ctx context.Context, programmeID string, version int, failed bool) error {
	patient, err := s.programmePatient(ctx, programmeID)
	if err != nil || !validID(patient) {
		return err
	}
	member := programmeID + ":" + strconv.Itoa(version)
	if failed {
		return s.rdb.SAdd(ctx, s.key("pat", patient, "pdf_failed"), member).Err()
	}
	return s.rdb.SRem(ctx, s.key("pat", patient, "pdf_failed"), member).Err()
}

// FailedPDFCounts returns, for each of the patients ids, how many of their
// programme versions' PDFs failed for good (0 for those with none). One
// round trip.
func (s *Store) FailedPDFCounts(ctx context.Context, ids []string) (map[string]int, error) {
	out := make(map[string]int, len(ids))
	pipe := s.rdb.Pipeline()
	cmds := make(map[string]*redis.IntCmd, len(ids))
	for _, id := range ids {
		if validID(id) {
			cmds[id] = pipe.SCard(ctx, s.key("pat", id, "pdf_failed"))
		}
	}
	if len(cmds) == 0 {
		return out, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("failed pdf counts: %w", err)
	}
	for id, c := range cmds {
		out[id] = int(c.Val())
	}
	return out, nil
}

// PDFStateOf returns the PDF sync state of a programme version; ErrNotFound
// when none was recorded.
func (s *Store) PDFStateOf(ctx context.Context, programmeID string, version int) (PDFState, error) {
	var st PDFState
	if !validID(programmeID) {
		return st, fmt.Errorf("pdf state of %q: %w", programmeID, ErrNotFound)
	}
	b, err := s.rdb.HGet(ctx, s.key("prg", programmeID, "pdf"), strconv.Itoa(version)).Bytes()
	if errors.Is(err, redis.Nil) {
		return st, fmt.Errorf("pdf state of %s v%d: %w", programmeID, version, ErrNotFound)
	}
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil {
		return st, fmt.Errorf("pdf state of %s v%d: %w", programmeID, version, err)
	}
	return st, nil
}

// PDFStates returns the PDF sync states of every version of a programme
// that has one, by version.
func (s *Store) PDFStates(ctx context.Context, programmeID string) (map[int]PDFState, error) {
	out := map[int]PDFState{}
	if !validID(programmeID) {
		return out, nil
	}
	h, err := s.rdb.HGetAll(ctx, s.key("prg", programmeID, "pdf")).Result()
	if err != nil {
		return nil, fmt.Errorf("pdf states of %s: %w", programmeID, err)
	}
	for f, v := range h {
		n, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		var st PDFState
		if err := json.Unmarshal([]byte(v), &st); err != nil {
			return nil, fmt.Errorf("pdf states of %s: %w", programmeID, err)
		}
		out[n] = st
	}
	return out, nil
}

// ClaimEvent records webhook event eventID as seen, for ttl (DefaultEventTTL
// when 0). first is true only for the first claim; later claims within ttl
// get false. One round trip (SET NX).
func (s *Store) ClaimEvent(ctx context.Context, eventID string, ttl time.Duration) (bool, error) {
	if eventID == "" || len(eventID) > 200 {
		return false, fmt.Errorf("claim event: %w", invalid("event", "id must be 1 to 200 characters"))
	}
	if ttl <= 0 {
		ttl = DefaultEventTTL
	}
	first, err := s.rdb.SetNX(ctx, s.key("evt", eventID), s.now().Format(time.RFC3339), ttl).Result()
	if err != nil {
		return false, fmt.Errorf("claim event: %w", err)
	}
	return first, nil
}

// ReleaseEvent forgets a claim, for when the work after ClaimEvent failed
// and the sender should be able to deliver the event again.
// ConfirmEvent keeps a claimed event for ttl (default DefaultEventTTL) once
// its work is safely stored. Claims are first taken for a short time, so an
// event whose handler died between the claim and the confirmation is
// accepted again when it is delivered again.
func (s *Store) ConfirmEvent(ctx context.Context, eventID string, ttl time.Duration) error {
	if eventID == "" || len(eventID) > 200 {
		return fmt.Errorf("confirm event: %w", invalid("event", "id must be 1 to 200 characters"))
	}
	if ttl <= 0 {
		ttl = DefaultEventTTL
	}
	ok, err := s.rdb.Expire(ctx, s.key("evt", eventID), ttl).Result()
	if err != nil {
		return fmt.Errorf("confirm event: %w", err)
	}
	if !ok {
		return fmt.Errorf("confirm event: the claim expired: %w", ErrNotFound)
	}
	return nil
}

func (s *Store) ReleaseEvent(ctx context.Context, eventID string) error {
	if eventID == "" || len(eventID) > 200 {
		return nil
	}
	if err := s.rdb.Del(ctx, s.key("evt", eventID)).Err(); err != nil {
		return fmt.Errorf("release event: %w", err)
	}
	return nil
}
