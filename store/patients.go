package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/redis/go-redis/v9"
)

// MaxPatientFieldBytes is the most a patient's text field (a name, the
// email, the mobile, the gender, the raw birth date) may hold, in bytes.
const MaxPatientFieldBytes = 500

// Patient is a patient of a subscription. Names, contact details, gender
// and birth data are encrypted at rest.
type Patient struct {
	ID             string `json:"id"` // "pat_…"
	SubscriptionID string `json:"subscription_id"`
	OwnerID        string `json:"owner_id"`
	// SharedWith lists the practitioners the patient is shared with
	// individually, sorted. Changed by Share, Unshare and Transfer only.
	SharedWith  []string `json:"shared_with"`
	FirstName   string   `json:"first_name"`
	LastName    string   `json:"last_name"`
	Email       string   `json:"email"`
	Mobile      string   `json:"mobile"`
	Gender      string   `json:"gender"`
	YearOfBirth int      `json:"year_of_birth"` // 0 when unknown
	// BirthYearStatus says how far YearOfBirth can be trusted; with
	// mismatch, ClinikoYear holds Cliniko's differing year.
	BirthYearStatus pmsbridge.BirthYearStatus `json:"birth_year_status"`
	// BirthYearSource says where YearOfBirth comes from.
	BirthYearSource pmsbridge.BirthYearSource `json:"birth_year_source"`
	// BirthYearRaw is Cliniko's raw date of birth, kept when it is invalid.
	BirthYearRaw string `json:"birth_year_raw"`
	// ClinikoYear is Cliniko's year when it differs from a manual one.
	ClinikoYear int       `json:"cliniko_year"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	// Link is the patient's Cliniko link; nil for a patient made in the app.
	Link *Link `json:"link"`
}

// Name is the patient's full name for display, e.g. "Zoë O'Brien".
func (p Patient) Name() string { return strings.TrimSpace(p.FirstName + " " + p.LastName) }

// Link ties a Cliniko patient, in a subscription and on a Cliniko shard, to
// our patient. Links are per subscription: two clinics never collide.
type Link struct {
	SubscriptionID    string    `json:"subscription_id"`
	Shard             string    `json:"shard"`
	ClinikoPatientID  string    `json:"cliniko_patient_id"`
	PatientID         string    `json:"patient_id"`
	LastSyncedAt      time.Time `json:"last_synced_at"`
	ArchivedInCliniko bool      `json:"archived_in_cliniko"`
}

// patientRecord is what Redis holds for a patient.
type patientRecord struct {
	ID              string                    `json:"id"`
	SubscriptionID  string                    `json:"subscription_id"`
	OwnerID         string                    `json:"owner_id"`
	SharedWith      []string                  `json:"shared_with,omitempty"`
	BirthYearStatus pmsbridge.BirthYearStatus `json:"birth_year_status"`
	BirthYearSource pmsbridge.BirthYearSource `json:"birth_year_source"`
	CreatedAt       time.Time                 `json:"created_at"`
	UpdatedAt       time.Time                 `json:"updated_at"`
	Link            *Link                     `json:"link,omitempty"`
	Details         string                    `json:"details"` // Keyring ciphertext of patientDetails
}

// patientDetails is the encrypted part of a patient.
type patientDetails struct {
	FirstName    string `json:"f"`
	LastName     string `json:"l"`
	Email        string `json:"e"`
	Mobile       string `json:"m"`
	Gender       string `json:"g"`
	YearOfBirth  int    `json:"y"`
	BirthYearRaw string `json:"r"`
	ClinikoYear  int    `json:"c"`
}

func patientAAD(id string) string { return "patient:" + id }

func (s *Store) encodePatient(p Patient) (patientRecord, error) {
	d := patientDetails{
		FirstName: p.FirstName, LastName: p.LastName, Email: p.Email, Mobile: p.Mobile, Gender: p.Gender,
		YearOfBirth: p.YearOfBirth, BirthYearRaw: p.BirthYearRaw, ClinikoYear: p.ClinikoYear,
	}
	enc, err := s.keys.Encrypt(mustJSON(d), patientAAD(p.ID))
	if err != nil {
		return patientRecord{}, err
	}
	return patientRecord{
		ID: p.ID, SubscriptionID: p.SubscriptionID, OwnerID: p.OwnerID, SharedWith: p.SharedWith,
		BirthYearStatus: p.BirthYearStatus, BirthYearSource: p.BirthYearSource,
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt, Link: p.Link, Details: enc,
	}, nil
}

func (s *Store) decodePatient(r patientRecord) (Patient, error) {
	plain, err := s.keys.Decrypt(r.Details, patientAAD(r.ID))
	if err != nil {
		return Patient{}, err
	}
	var d patientDetails
	if err := json.Unmarshal(plain, &d); err != nil {
		return Patient{}, err
	}
	shared := r.SharedWith
	if shared == nil {
		shared = []string{}
	}
	return Patient{
		ID: r.ID, SubscriptionID: r.SubscriptionID, OwnerID: r.OwnerID, SharedWith: shared,
		FirstName: d.FirstName, LastName: d.LastName, Email: d.Email, Mobile: d.Mobile, Gender: d.Gender,
		YearOfBirth: d.YearOfBirth, BirthYearStatus: r.BirthYearStatus, BirthYearSource: r.BirthYearSource,
		BirthYearRaw: d.BirthYearRaw, ClinikoYear: d.ClinikoYear,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, Link: r.Link,
	}, nil
}

// patientProblems checks the fields callers may set. Messages never quote
// the values.
func patientProblems(p Patient) []string {
	var problems []string
	for name, v := range map[string]string{
		"first name": p.FirstName, "last name": p.LastName, "email": p.Email,
		"mobile": p.Mobile, "gender": p.Gender, "raw birth date": p.BirthYearRaw,
	} {
		if len(v) > MaxPatientFieldBytes {
			problems = append(problems, name+" is too long")
		}
	}
	switch p.BirthYearStatus {
	case "", pmsbridge.BirthYearOK, pmsbridge.BirthYearMissing, pmsbridge.BirthYearInvalid, pmsbridge.BirthYearMismatch:
	default:
		problems = append(problems, "unknown birth year status")
	}
	switch p.BirthYearSource {
	case "", pmsbridge.BirthYearFromCliniko, pmsbridge.BirthYearManual:
	default:
		problems = append(problems, "unknown birth year source")
	}
	if p.YearOfBirth < 0 || p.YearOfBirth > 9999 || p.ClinikoYear < 0 || p.ClinikoYear > 9999 {
		problems = append(problems, "year out of range")
	}
	slices.Sort(problems)
	return problems
}

// GetPatient returns patient id, decrypted.
func (s *Store) GetPatient(ctx context.Context, id string) (Patient, error) {
	if !validID(id) {
		return Patient{}, fmt.Errorf("get patient %q: %w", id, ErrNotFound)
	}
	var rec patientRecord
	if err := getJSON(ctx, s.rdb, s.key("pat", id), &rec); err != nil {
		return Patient{}, fmt.Errorf("get patient %s: %w", id, err)
	}
	p, err := s.decodePatient(rec)
	if err != nil {
		return Patient{}, fmt.Errorf("get patient %s: %w", id, err)
	}
	return p, nil
}

// UpdatePatient changes patient id with fn, optimistically: fn may run more
// than once when another writer changes the patient meanwhile, so it must
// only modify its argument. fn's error aborts the update and is returned.
// Fields that have their own methods are kept as they were: ID,
// SubscriptionID, CreatedAt (fixed), OwnerID and SharedWith (Share, Unshare,
// Transfer) and Link (MarkLinkSynced, MarkLinkArchived).
func (s *Store) UpdatePatient(ctx context.Context, id string, fn func(*Patient) error) (Patient, error) {
	p, err := s.updatePatient(ctx, id, true, func(p *Patient) error {
		keep := *p
		if err := fn(p); err != nil {
			return err
		}
		p.ID, p.SubscriptionID, p.CreatedAt = keep.ID, keep.SubscriptionID, keep.CreatedAt
		p.OwnerID, p.SharedWith, p.Link = keep.OwnerID, keep.SharedWith, keep.Link
		return nil
	})
	if err != nil {
		return Patient{}, fmt.Errorf("update patient %s: %w", id, err)
	}
	return p, nil
}

// updatePatient is UpdatePatient without the field protection; touch sets
// UpdatedAt.
func (s *Store) updatePatient(ctx context.Context, id string, touch bool, fn func(*Patient) error) (Patient, error) {
	if !validID(id) {
		return Patient{}, ErrNotFound
	}
	var out Patient
	_, err := updateJSON(ctx, s.rdb, s.key("pat", id), func(rec *patientRecord) error {
		p, err := s.decodePatient(*rec)
		if err != nil {
			return err
		}
		if err := fn(&p); err != nil {
			return err
		}
		if problems := patientProblems(p); len(problems) > 0 {
			return invalid("patient", problems...)
		}
		if touch {
			p.UpdatedAt = s.now()
		}
		if *rec, err = s.encodePatient(p); err != nil {
			return err
		}
		out = p
		return nil
	})
	return out, err
}

func (s *Store) linksKey(subID, shard string) string { return s.key("links", subID, shard) }

// FindLink returns the id of our patient linked to a Cliniko patient of a
// subscription on a shard, or ErrNotFound. One round trip (HGET): it runs on
// every click of the Cliniko button. Its errors leave the Cliniko patient id
// out: it identifies a person, and errors are logged.
func (s *Store) FindLink(ctx context.Context, subID, shard, clinikoID string) (string, error) {
	if !validID(subID) || !validID(shard) || !validID(clinikoID) {
		return "", fmt.Errorf("find link: %w", ErrNotFound)
	}
	id, err := s.rdb.HGet(ctx, s.linksKey(subID, shard), clinikoID).Result()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("find link %s/%s: %w", subID, shard, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("find link %s/%s: %w", subID, shard, err)
	}
	return id, nil
}

// LinkedPatientsOf returns the links of a subscription on a shard as a map
// from Cliniko patient id to our patient id, for the periodic sync.
func (s *Store) LinkedPatientsOf(ctx context.Context, subID, shard string) (map[string]string, error) {
	if !validID(subID) || !validID(shard) {
		return map[string]string{}, nil
	}
	m, err := s.rdb.HGetAll(ctx, s.linksKey(subID, shard)).Result()
	if err != nil {
		return nil, fmt.Errorf("linked patients of %s/%s: %w", subID, shard, err)
	}
	return m, nil
}

// SampleLinkedPatient returns the Cliniko id of one of a subscription's
// linked patients on shard that Cliniko still showed at the last look (not
// archived there), to check a new key against; ok is false when there is
// none. At most a few records are read, in one round trip.
func (s *Store) SampleLinkedPatient(ctx context.Context, subID, shard string) (clinikoID string, ok bool, err error) {
	if !validID(subID) || !validID(shard) {
		return "", false, nil
	}
	pairs, err := s.rdb.HRandFieldWithValues(ctx, s.linksKey(subID, shard), 5).Result()
	if err != nil {
		return "", false, fmt.Errorf("sample linked patient of %s/%s: %w", subID, shard, err)
	}
	clinikoIDs := make(map[string]string, len(pairs))
	keys := make([]string, 0, len(pairs))
	for _, kv := range pairs {
		if validID(kv.Value) {
			clinikoIDs[kv.Value] = kv.Key
			keys = append(keys, s.key("pat", kv.Value))
		}
	}
	// The link is a plain field of the record: one pipeline, nothing
	// decrypted.
	recs, err := getMany[patientRecord](ctx, s.rdb, keys)
	if err != nil {
		return "", false, fmt.Errorf("sample linked patient of %s/%s: %w", subID, shard, err)
	}
	for _, r := range recs {
		if r.Link != nil && !r.Link.ArchivedInCliniko {
			return clinikoIDs[r.ID], true, nil
		}
	}
	return "", false, nil
}

// ImportPatient returns the patient linked to a Cliniko patient, creating it
// from p (its details and birth-year fields; ids, owner, times and link are
// set here) when there is none. Concurrent imports of one Cliniko patient
// make exactly one patient: the patient and its indexes are written first,
// then the link is set only if absent; the losers delete their copy and
// return the winner's patient with created false. The importer, ownerID, must be an active
// practitioner of the subscription, and owns the patient it creates.
func (s *Store) ImportPatient(ctx context.Context, subID, shard, clinikoID, ownerID string, p Patient) (Patient, bool, error) {
	if !validID(subID) || !validID(shard) || !validID(clinikoID) {
		return Patient{}, false, fmt.Errorf("import patient: %w", invalid("import", "bad subscription, shard or Cliniko patient id"))
	}
	if id, err := s.FindLink(ctx, subID, shard, clinikoID); err == nil {
		got, err := s.GetPatient(ctx, id)
		if err != nil {
			return Patient{}, false, fmt.Errorf("import patient: %w", err)
		}
		return got, false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return Patient{}, false, fmt.Errorf("import patient: %w", err)
	}
	owner, err := s.getPractitionerRecord(ctx, ownerID)
	if errors.Is(err, ErrNotFound) || (err == nil && (owner.SubscriptionID != subID || !owner.Active)) {
		return Patient{}, false, fmt.Errorf("import patient: %w", invalid("import", "importer is not an active practitioner of the subscription"))
	}
	if err != nil {
		return Patient{}, false, fmt.Errorf("import patient: %w", err)
	}
	if problems := patientProblems(p); len(problems) > 0 {
		return Patient{}, false, fmt.Errorf("import patient: %w", invalid("patient", problems...))
	}
	now := s.now()
	p.ID = newID("pat")
	p.SubscriptionID, p.OwnerID, p.SharedWith = subID, ownerID, []string{}
	p.CreatedAt, p.UpdatedAt = now, now
	p.Link = &Link{SubscriptionID: subID, Shard: shard, ClinikoPatientID: clinikoID, PatientID: p.ID, LastSyncedAt: now}
	rec, err := s.encodePatient(p)
	if err != nil {
		return Patient{}, false, fmt.Errorf("import patient: %w", err)
	}
	// The record and its indexes go first, the link last: the link is what
	// makes the patient found, so once it is set the patient is complete
	// (listed for its owner and its subscription, which Reencrypt walks).
	patKey := s.key("pat", p.ID)
	subIdx, ownedIdx := s.key("sub", subID, "patients"), s.key("prac", ownerID, "owned")
	discard := func() {
		bg := context.WithoutCancel(ctx)
		pipe := s.rdb.Pipeline()
		pipe.Del(bg, patKey)
		pipe.SRem(bg, subIdx, p.ID)
		pipe.SRem(bg, ownedIdx, p.ID)
		_, _ = pipe.Exec(bg)
	}
	pipe := s.rdb.Pipeline()
	pipe.Set(ctx, patKey, mustJSON(rec), 0)
	pipe.SAdd(ctx, subIdx, p.ID)
	pipe.SAdd(ctx, ownedIdx, p.ID)
	if _, err := pipe.Exec(ctx); err != nil {
		discard()
		return Patient{}, false, fmt.Errorf("import patient: %w", err)
	}
	won, err := s.rdb.HSetNX(ctx, s.linksKey(subID, shard), clinikoID, p.ID).Result()
	if err != nil {
		// The reply was lost, not necessarily the write: ask which patient
		// the link names before dropping ours, or a link set by this very
		// call would point at nothing.
		cur, gerr := s.rdb.HGet(context.WithoutCancel(ctx), s.linksKey(subID, shard), clinikoID).Result()
		switch {
		case gerr == nil && cur == p.ID:
			return p, true, nil
		case gerr == nil || errors.Is(gerr, redis.Nil):
			discard()
		}
		return Patient{}, false, fmt.Errorf("import patient: %w", err)
	}
	if !won {
		discard()
		winner, err := s.FindLink(ctx, subID, shard, clinikoID)
		if err != nil {
			return Patient{}, false, fmt.Errorf("import patient: %w", err)
		}
		got, err := s.GetPatient(ctx, winner)
		if err != nil {
			return Patient{}, false, fmt.Errorf("import patient: %w", err)
		}
		return got, false, nil
	}
	return p, true, nil
}

// MarkLinkSynced records that patient id was refreshed from Cliniko at at.
func (s *Store) MarkLinkSynced(ctx context.Context, id string, at time.Time) error {
	return s.updateLink(ctx, "mark link synced", id, func(l *Link) { l.LastSyncedAt = at.UTC() })
}

// MarkLinkArchived records whether the Cliniko patient of patient id is
// archived in Cliniko.
func (s *Store) MarkLinkArchived(ctx context.Context, id string, archived bool) error {
	return s.updateLink(ctx, "mark link archived", id, func(l *Link) { l.ArchivedInCliniko = archived })
}

func (s *Store) updateLink(ctx context.Context, what, id string, fn func(*Link)) error {
	_, err := s.updatePatient(ctx, id, false, func(p *Patient) error {
		if p.Link == nil {
			return invalid("patient", "not linked to Cliniko")
		}
		fn(p.Link)
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, id, err)
	}
	return nil
}

// ListPatientsVisibleTo returns every patient practitioner pr may open (see
// CanOpen): owned, shared individually, or owned by an active member of the
// same patient-sharing group. Sorted by last name, then first name. An
// inactive practitioner sees none. Three round trips at most.
func (s *Store) ListPatientsVisibleTo(ctx context.Context, pr Practitioner) ([]Patient, error) {
	fail := func(err error) ([]Patient, error) {
		return nil, fmt.Errorf("list patients visible to %s: %w", pr.ID, err)
	}
	if !validID(pr.ID) {
		return fail(ErrNotFound)
	}
	pipe := s.rdb.Pipeline()
	getPrac := pipe.Get(ctx, s.key("prac", pr.ID))
	owned := pipe.SMembers(ctx, s.key("prac", pr.ID, "owned"))
	shared := pipe.SMembers(ctx, s.key("prac", pr.ID, "shared"))
	var getSharing *redis.StringCmd
	if validID(pr.SubscriptionID) {
		getSharing = pipe.Get(ctx, s.key("sub", pr.SubscriptionID, "sharing"))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fail(err)
	}
	var me practitionerRecord
	if b, err := getPrac.Bytes(); err != nil {
		return fail(ErrNotFound)
	} else if err := json.Unmarshal(b, &me); err != nil {
		return fail(err)
	}
	if !me.Active {
		return []Patient{}, nil
	}
	group := []string{}
	if getSharing != nil {
		sh, err := decodeSharing(me.SubscriptionID, getSharing)
		if err != nil {
			return fail(err)
		}
		group = sh.Patients
	}
	candidates := map[string]bool{}
	for _, id := range append(owned.Val(), shared.Val()...) {
		candidates[id] = true
	}
	activeOwners := map[string]bool{}
	if slices.Contains(group, me.ID) {
		var others []string
		for _, id := range group {
			if id != me.ID {
				others = append(others, id)
			}
		}
		pipe := s.rdb.Pipeline()
		pracs := make([]*redis.StringCmd, len(others))
		sets := make([]*redis.StringSliceCmd, len(others))
		for i, id := range others {
			pracs[i] = pipe.Get(ctx, s.key("prac", id))
			sets[i] = pipe.SMembers(ctx, s.key("prac", id, "owned"))
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return fail(err)
		}
		for i, id := range others {
			var o practitionerRecord
			if b, err := pracs[i].Bytes(); err != nil || json.Unmarshal(b, &o) != nil {
				continue
			}
			if !o.Active || o.SubscriptionID != me.SubscriptionID {
				continue
			}
			activeOwners[id] = true
			for _, pid := range sets[i].Val() {
				candidates[pid] = true
			}
		}
	}
	keys := make([]string, 0, len(candidates))
	for id := range candidates {
		if validID(id) {
			keys = append(keys, s.key("pat", id))
		}
	}
	recs, err := getMany[patientRecord](ctx, s.rdb, keys)
	if err != nil {
		return fail(err)
	}
	out := make([]Patient, 0, len(recs))
	for _, r := range recs {
		// Indexes only propose; the records decide.
		if r.SubscriptionID != me.SubscriptionID {
			continue
		}
		if r.OwnerID != me.ID && !slices.Contains(r.SharedWith, me.ID) && !activeOwners[r.OwnerID] {
			continue
		}
		p, err := s.decodePatient(r)
		if err != nil {
			return fail(err)
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Patient) int {
		if c := strings.Compare(strings.ToLower(a.LastName), strings.ToLower(b.LastName)); c != 0 {
			return c
		}
		if c := strings.Compare(strings.ToLower(a.FirstName), strings.ToLower(b.FirstName)); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// PatientLabel is what support rows show of a patient: their subscription
// and, when the store has the encryption key, their name (Named false
// without it, or when the details cannot be decrypted).
type PatientLabel struct {
	ID             string
	SubscriptionID string
	Name           string
	Named          bool
}

// PatientLabels returns the labels of the patients among ids that exist,
// by id, with one Redis round trip. Without encryption keys it still
// returns every patient's subscription, with no names.
func (s *Store) PatientLabels(ctx context.Context, ids []string) (map[string]PatientLabel, error) {
	keys := []string{}
	for _, id := range sortedUnique(ids) {
		if validID(id) {
			keys = append(keys, s.key("pat", id))
		}
	}
	recs, err := getMany[patientRecord](ctx, s.rdb, keys)
	if err != nil {
		return nil, fmt.Errorf("patient labels: %w", err)
	}
	out := make(map[string]PatientLabel, len(recs))
	for _, r := range recs {
		l := PatientLabel{ID: r.ID, SubscriptionID: r.SubscriptionID}
		if s.keys != nil {
			if p, err := s.decodePatient(r); err == nil {
				l.Name, l.Named = p.Name(), true
			}
		}
		out[r.ID] = l
	}
	return out, nil
}
