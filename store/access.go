package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"
)

// AccessReason says why a practitioner may or may not open a patient.
type AccessReason string

// The reasons of CanOpen.
const (
	AccessOwner  AccessReason = "owner"  // the practitioner owns the patient
	AccessShared AccessReason = "shared" // the patient is shared with them individually
	AccessGroup  AccessReason = "group"  // both are in the patient-sharing group, owner active
	AccessDenied AccessReason = "denied" // none of the above, or the practitioner is inactive
)

// Access is the answer of CanOpen. When denied within the practitioner's own
// subscription, OwnerID and OwnerName name the owner so the page can say whom
// to ask; for another subscription's patient they are empty.
type Access struct {
	Allowed   bool
	Reason    AccessReason
	OwnerID   string
	OwnerName string
}

// CanOpen applies design.md's sharing rules: practitioner pr may open
// patient x when pr owns x; or x is shared with pr individually (same
// subscription, pr active); or pr and x's owner are both in the
// subscription's patient-sharing group and the owner is still active. An
// inactive practitioner may open nothing. pr's active state is re-read from
// Redis, with the owner and the sharing group, in one round trip.
func (s *Store) CanOpen(ctx context.Context, pr Practitioner, x Patient) (Access, error) {
	denied := Access{Reason: AccessDenied}
	if !validID(pr.ID) || !validID(x.OwnerID) || !validID(x.SubscriptionID) {
		return denied, nil
	}
	pipe := s.rdb.Pipeline()
	getMe := pipe.Get(ctx, s.key("prac", pr.ID))
	getOwner := pipe.Get(ctx, s.key("prac", x.OwnerID))
	getSharing := pipe.Get(ctx, s.key("sub", x.SubscriptionID, "sharing"))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return denied, fmt.Errorf("can open %s: %w", x.ID, err)
	}
	var me, owner practitionerRecord
	if b, err := getMe.Bytes(); err != nil || json.Unmarshal(b, &me) != nil {
		return denied, nil
	}
	ownerKnown := false
	if b, err := getOwner.Bytes(); err == nil && json.Unmarshal(b, &owner) == nil {
		ownerKnown = true
	}
	sh, err := decodeSharing(x.SubscriptionID, getSharing)
	if err != nil {
		return denied, fmt.Errorf("can open %s: %w", x.ID, err)
	}
	if me.SubscriptionID != x.SubscriptionID {
		return denied, nil
	}
	a := Access{Allowed: true, OwnerID: x.OwnerID}
	if ownerKnown {
		a.OwnerName = owner.Name
	}
	switch {
	case !me.Active:
		a.Allowed, a.Reason = false, AccessDenied
	case me.ID == x.OwnerID:
		a.Reason = AccessOwner
	case slices.Contains(x.SharedWith, me.ID):
		a.Reason = AccessShared
	case ownerKnown && owner.Active && owner.SubscriptionID == x.SubscriptionID &&
		slices.Contains(sh.Patients, me.ID) && slices.Contains(sh.Patients, owner.ID):
		a.Reason = AccessGroup
	default:
		a.Allowed, a.Reason = false, AccessDenied
	}
	return a, nil
}

// colleague loads practitioner id and checks that it is an active
// practitioner of subscription subID.
func (s *Store) colleague(ctx context.Context, id, subID string) (practitionerRecord, error) {
	rec, err := s.getPractitionerRecord(ctx, id)
	if errors.Is(err, ErrNotFound) || (err == nil && rec.SubscriptionID != subID) {
		return rec, invalid("practitioner", "not a practitioner of the patient's subscription")
	}
	if err != nil {
		return rec, err
	}
	if !rec.Active {
		return rec, invalid("practitioner", "practitioner is inactive")
	}
	return rec, nil
}

// Share shares patient patientID with practitioner practitionerID, an
// active colleague in the same subscription (ErrInvalid otherwise, also for
// the owner). Sharing twice is not an error.
func (s *Store) Share(ctx context.Context, patientID, practitionerID string) error {
	fail := func(err error) error { return fmt.Errorf("share %s with %s: %w", patientID, practitionerID, err) }
	x, err := s.GetPatient(ctx, patientID)
	if err != nil {
		return fail(err)
	}
	if _, err := s.colleague(ctx, practitionerID, x.SubscriptionID); err != nil {
		return fail(err)
	}
	if practitionerID == x.OwnerID {
		return fail(invalid("share", "the practitioner already owns the patient"))
	}
	// Index first, record second: the record decides.
	if err := s.rdb.SAdd(ctx, s.key("prac", practitionerID, "shared"), patientID).Err(); err != nil {
		return fail(err)
	}
	if _, err := s.updatePatient(ctx, patientID, true, func(p *Patient) error {
		if p.OwnerID == practitionerID {
			return invalid("share", "the practitioner already owns the patient")
		}
		p.SharedWith = sortedUnique(append(p.SharedWith, practitionerID))
		return nil
	}); err != nil {
		return fail(err)
	}
	return nil
}

// Unshare undoes Share. Unsharing what is not shared is not an error.
func (s *Store) Unshare(ctx context.Context, patientID, practitionerID string) error {
	fail := func(err error) error { return fmt.Errorf("unshare %s with %s: %w", patientID, practitionerID, err) }
	if _, err := s.updatePatient(ctx, patientID, true, func(p *Patient) error {
		p.SharedWith = slices.DeleteFunc(p.SharedWith, func(id string) bool { return id == practitionerID })
		return nil
	}); err != nil {
		return fail(err)
	}
	if validID(practitionerID) {
		if err := s.rdb.SRem(ctx, s.key("prac", practitionerID, "shared"), patientID).Err(); err != nil {
			return fail(err)
		}
	}
	return nil
}

// SharedWith returns the ids of the practitioners patient patientID is
// shared with individually, sorted.
func (s *Store) SharedWith(ctx context.Context, patientID string) ([]string, error) {
	x, err := s.GetPatient(ctx, patientID)
	if err != nil {
		return nil, fmt.Errorf("shared with: %w", err)
	}
	return x.SharedWith, nil
}

// Transfer makes practitioner newOwnerID, an active colleague in the same
// subscription, the owner of patient patientID (ErrInvalid otherwise). The
// old owner keeps access only if another rule allows it; an individual share
// with the new owner is dropped, as owning supersedes it.
func (s *Store) Transfer(ctx context.Context, patientID, newOwnerID string) error {
	x, err := s.GetPatient(ctx, patientID)
	if err != nil {
		return fmt.Errorf("transfer %s to %s: %w", patientID, newOwnerID, err)
	}
	return s.transfer(ctx, x, newOwnerID)
}

// transfer is Transfer of patient x, as just read.
func (s *Store) transfer(ctx context.Context, x Patient, newOwnerID string) error {
	patientID := x.ID
	fail := func(err error) error { return fmt.Errorf("transfer %s to %s: %w", patientID, newOwnerID, err) }
	if _, err := s.colleague(ctx, newOwnerID, x.SubscriptionID); err != nil {
		return fail(err)
	}
	if x.OwnerID == newOwnerID {
		return nil
	}
	if err := s.rdb.SAdd(ctx, s.key("prac", newOwnerID, "owned"), patientID).Err(); err != nil {
		return fail(err)
	}
	var oldOwner string
	if _, err := s.updatePatient(ctx, patientID, true, func(p *Patient) error {
		oldOwner = p.OwnerID
		p.OwnerID = newOwnerID
		p.SharedWith = slices.DeleteFunc(p.SharedWith, func(id string) bool { return id == newOwnerID })
		return nil
	}); err != nil {
		return fail(err)
	}
	pipe := s.rdb.Pipeline()
	if oldOwner != newOwnerID && validID(oldOwner) {
		pipe.SRem(ctx, s.key("prac", oldOwner, "owned"), patientID)
	}
	pipe.SRem(ctx, s.key("prac", newOwnerID, "shared"), patientID)
	if _, err := pipe.Exec(ctx); err != nil {
		return fail(err)
	}
	return nil
}

// TransferBySupport is Transfer on behalf of support (the admin API and
// `pmsbridge admin patient transfer`): newOwnerID must be an active
// colleague in the patient's subscription who does not own the patient
// yet (ErrInvalid otherwise: there would be nothing to do), and the
// transfer is written to the patient's audit log. It returns the previous
// owner.
func (s *Store) TransferBySupport(ctx context.Context, patientID, newOwnerID string) (string, error) {
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("transfer %s to %s: %w", patientID, newOwnerID, err)
	}
	x, err := s.GetPatient(ctx, patientID)
	if err != nil {
		return fail(err)
	}
	if x.OwnerID == newOwnerID {
		return fail(invalid("transfer", "the practitioner already owns the patient"))
	}
	if err := s.transfer(ctx, x, newOwnerID); err != nil {
		return "", err
	}
	if err := s.Audit(ctx, AuditEntry{PatientID: patientID, Op: "patient.transferred",
		Detail: "to " + newOwnerID + " from " + x.OwnerID + " by support"}); err != nil {
		return fail(err)
	}
	return x.OwnerID, nil
}
