package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The kinds of programme openings in a patient's access log
// (AuditEntry.Op).
const (
	AccessOpened = "access.opened"  // right code and year
	AccessFailed = "access.failed"  // wrong year of birth
	AccessNoYear = "access.no_year" // the patient has no year of birth on record
	AccessLocked = "access.locked"  // refused unchecked: too many tries
)

// Attempt is one try at opening a programme, as OpenProgramme saw it, for
// the patient's access log. Op is "" when there is nothing to write (an
// error of ours); PatientID is "" until known (unknown codes have none).
type Attempt struct {
	Op        string
	PatientID string
	// TriesLeft is, after a failed try that was checked, how many more tries
	// the lock-outs allow (of the code, and of the client address, whichever
	// is fewer); -1 when unknown. It says nothing about whether the code
	// exists: every well-formed code has its counter, made-up or real.
	TriesLeft int
	code      string
	client    string
}

// lockedNoteScript counts locked tries of one code from one client in a
// window (by the injected clock) and says whether this is the first (to be
// written to the log) and which patient an earlier one found. One key: a
// hash with the window's start from (unix ms), the count n and the patient
// id pat. KEYS[1]; ARGV now ms, window ms. Returns {n, pat}.
var lockedNoteScript = redis.NewScript(`
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local from = tonumber(redis.call('HGET', KEYS[1], 'from') or '-1')
if from < 0 or now - from >= window then
  redis.call('HSET', KEYS[1], 'from', ARGV[1], 'n', 0)
  redis.call('PEXPIRE', KEYS[1], window)
end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
return {n, redis.call('HGET', KEYS[1], 'pat') or ''}
`)

// RecordAttempt writes a try at opening a programme to its patient's
// access log (newest first, PatientAuditCap entries), kept apart from the
// Cliniko calls and actions in AuditOf so that strangers cannot push those
// out. Locked tries are written at most once per code and client per
// AccessWindow; every try is counted (AccessCountsOf). Tries of unknown
// codes are not written anywhere.
func (s *Store) RecordAttempt(ctx context.Context, a Attempt) error {
	if a.Op == "" || (a.PatientID == "" && a.code == "") {
		return nil
	}
	write, note, remember := true, "", false
	if a.Op == AccessLocked {
		note = s.key("access", "locked", s.codeMAC(a.code), a.client)
		out, err := lockedNoteScript.Run(ctx, s.rdb, []string{note}, s.now().UnixMilli(), s.opts.AccessWindow.Milliseconds()).Slice()
		if err != nil || len(out) != 2 {
			return fmt.Errorf("record access attempt: %w", errors.Join(err, errors.New("unexpected script reply")))
		}
		n, _ := out[0].(int64)
		pat, _ := out[1].(string)
		write = n == 1
		if a.PatientID == "" {
			a.PatientID = pat
		}
		if a.PatientID == "" {
			// Find whose code it is (a locked try was not looked up); the
			// note remembers it for the next tries.
			id, err := s.programmeIDByCode(ctx, a.code)
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			if err == nil {
				a.PatientID, err = s.programmePatient(ctx, id)
			}
			if err != nil {
				return fmt.Errorf("record access attempt: %w", err)
			}
			remember = a.PatientID != ""
		}
	}
	if !validID(a.PatientID) {
		return nil
	}
	pipe := s.rdb.Pipeline()
	if remember {
		pipe.HSet(ctx, note, "pat", a.PatientID)
	}
	counts := s.key("pat", a.PatientID, "access", "count")
	pipe.HIncrBy(ctx, counts, a.Op, 1)
	pipe.PExpire(ctx, counts, s.opts.PatientAuditTTL)
	if write {
		k := s.key("pat", a.PatientID, "access")
		pipe.LPush(ctx, k, mustJSON(AuditEntry{At: s.now(), PatientID: a.PatientID, Op: a.Op}))
		pipe.LTrim(ctx, k, 0, int64(s.opts.PatientAuditCap)-1)
		pipe.PExpire(ctx, k, s.opts.PatientAuditTTL)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("record access attempt: %w", err)
	}
	return nil
}

// AccessAttemptsOf returns the n newest entries of patient patientID's
// access log (all kept when n <= 0), newest first, and how many tries of
// each kind were made in all (locked tries are listed at most once per
// code and client per AccessWindow, but all are counted).
func (s *Store) AccessAttemptsOf(ctx context.Context, patientID string, n int) ([]AuditEntry, map[string]int, error) {
	counts := map[string]int{}
	if !validID(patientID) {
		return []AuditEntry{}, counts, nil
	}
	list, err := s.auditList(ctx, s.key("pat", patientID, "access"), n)
	if err != nil {
		return nil, nil, fmt.Errorf("access attempts of %s: %w", patientID, err)
	}
	h, err := s.rdb.HGetAll(ctx, s.key("pat", patientID, "access", "count")).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("access attempts of %s: %w", patientID, err)
	}
	for op, v := range h {
		if c, err := strconv.Atoi(v); err == nil && strings.HasPrefix(op, "access.") {
			counts[op] = c
		}
	}
	return list, counts, nil
}
