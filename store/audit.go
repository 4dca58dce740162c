package store

import (
	"context"
	"fmt"
	"time"
)

// AuditEntry records one action on behalf of a practitioner, typically a
// Cliniko call. Detail must hold no secrets and no patient details.
type AuditEntry struct {
	At             time.Time `json:"at"` // set to now when zero
	PractitionerID string    `json:"practitioner_id"`
	PatientID      string    `json:"patient_id"` // may be empty
	Op             string    `json:"op"`         // e.g. "cliniko.get_patient"
	Status         int       `json:"status"`     // e.g. the HTTP status
	Detail         string    `json:"detail"`
}

// Audit appends e to the global log and, when it names a patient, to that
// patient's log; both are capped (AuditCap, PatientAuditCap) and newest
// first, and a patient's log goes PatientAuditTTL after its last entry.
// One round trip.
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	if e.Op == "" {
		return fmt.Errorf("audit: %w", invalid("audit entry", "op is required"))
	}
	if e.At.IsZero() {
		e.At = s.now()
	}
	e.At = e.At.UTC()
	b := mustJSON(e)
	pipe := s.rdb.Pipeline()
	pipe.LPush(ctx, s.key("audit"), b)
	pipe.LTrim(ctx, s.key("audit"), 0, int64(s.opts.AuditCap)-1)
	if validID(e.PatientID) {
		k := s.key("pat", e.PatientID, "audit")
		pipe.LPush(ctx, k, b)
		pipe.LTrim(ctx, k, 0, int64(s.opts.PatientAuditCap)-1)
		pipe.PExpire(ctx, k, s.opts.PatientAuditTTL)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("audit %s: %w", e.Op, err)
	}
	return nil
}

// AuditOf returns the n newest entries of patient patientID's log (all kept
// entries when n <= 0), newest first.
func (s *Store) AuditOf(ctx context.Context, patientID string, n int) ([]AuditEntry, error) {
	if !validID(patientID) {
		return []AuditEntry{}, nil
	}
	out, err := s.auditList(ctx, s.key("pat", patientID, "audit"), n)
	if err != nil {
		return nil, fmt.Errorf("audit of %s: %w", patientID, err)
	}
	return out, nil
}

// AuditRecent returns the n newest entries of the global log (all kept
// entries when n <= 0), newest first.
func (s *Store) AuditRecent(ctx context.Context, n int) ([]AuditEntry, error) {
	out, err := s.auditList(ctx, s.key("audit"), n)
	if err != nil {
		return nil, fmt.Errorf("recent audit: %w", err)
	}
	return out, nil
}

func (s *Store) auditList(ctx context.Context, key string, n int) ([]AuditEntry, error) {
	stop := int64(n) - 1
	if n <= 0 {
		stop = -1
	}
	vals, err := s.rdb.LRange(ctx, key, 0, stop).Result()
	if err != nil {
		return nil, err
	}
	out := make([]AuditEntry, 0, len(vals))
	for _, v := range vals {
		var e AuditEntry
		if err := jsonUnmarshal([]byte(v), &e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}
