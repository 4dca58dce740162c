package store

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// The linked click in one round trip. A click on "Open in pmsbridge" for a
// patient already linked is the hottest request there is; answering it the
// ordinary way takes a round trip per record, each waiting for the answer
// before it (session → practitioner and key → link → patient → sharing).
// clickScript walks that chain inside Redis instead, in one EVALSHA:
//
//  1. the session, exactly as GetSession (sessionLua: idle and absolute
//     expiry, written back at most once a minute);
//  2. the practitioner (active) and the Cliniko user of their saved key,
//     returned raw, and decoded as PractitionerWithCliniko decodes them
//     (Login) only when the caller needs them: an allowed click does not;
//  3. the link of the Cliniko patient on the key's shard;
//  4. the patient record's plain fields (owner, individual shares and
//     subscription: nothing encrypted is read) and, for anyone but the
//     owner, the owner's record and the subscription's sharing groups;
//     then CanOpen's rule (clickRuleLua), whose answer the test
//     TestClickAgreesWithCanOpen compares with CanOpen's in every
//     situation of the sharing table;
//  5. for an allowed click, whether the patient's refresh debounce is
//     taken (EXISTS): only a click that finds it free queues a refresh, in
//     the background, which takes the debounce (jobs.Client.EnqueueRefresh)
//     as before. A repeat click within the debounce costs nothing more.
//
// The keys after the session's are computed inside the script from what
// it reads, so the script runs on a single Redis and under Sentinel but
// not on Redis Cluster (see the package comment).

// ClickOutcome says how far ResolveClick got.
type ClickOutcome int

// The outcomes of ResolveClick.
const (
	// ClickUndecided: the script stopped at the practitioner (inactive, no
	// Cliniko key, a record it could not read), or found a link it could
	// not judge in one step (the patient record or the sharing groups
	// missing or unreadable). The caller goes the ordinary way, which
	// answers these cases as it always has.
	ClickUndecided ClickOutcome = iota
	// ClickNotLinked: no link for the Cliniko patient in the practitioner's
	// subscription on their key's shard: an import.
	ClickNotLinked
	// ClickDecided: linked; PatientID is the patient and Access is CanOpen's
	// answer for them.
	ClickDecided
)

// ResolvedClick is what one Cliniko button click finds in Redis.
type ResolvedClick struct {
	// PractitionerID is the session's practitioner.
	PractitionerID string
	Outcome        ClickOutcome
	// PatientID and Access are set for ClickDecided: Access is CanOpen's
	// answer, but for an allowed click without the owner's name (nobody
	// reads it then).
	PatientID string
	Access    Access
	// RefreshDue says, for an allowed click, that the patient's refresh
	// debounce (DebounceRefresh) was not taken: a refresh may be due. It
	// is only looked at; the caller takes it when it queues the refresh.
	RefreshDue bool

	// The practitioner's record and the Cliniko user of their key, raw
	// (see Login); found says each exists.
	practitioner, user           []byte
	practitionerFound, userFound bool
}

// Allowed reports whether the click is decided and the practitioner may
// open the patient: it needs nothing more than PatientID.
func (rc ResolvedClick) Allowed() bool { return rc.Outcome == ClickDecided && rc.Access.Allowed }

// clickAccess is the access of the click script's reason: only the
// reasons that allow (owner, shared, group) open the patient, "denied"
// refuses, and anything else is an error, never an opening.
func clickAccess(reason string) (Access, error) {
	switch r := AccessReason(reason); r {
	case AccessOwner, AccessShared, AccessGroup:
		return Access{Allowed: true, Reason: r}, nil
	case AccessDenied:
		return Access{Reason: r}, nil
	default:
		return Access{}, fmt.Errorf("resolve click: unexpected access reason %q", reason)
	}
}

// Login returns the session's practitioner (check Active) and the Cliniko
// user of their saved key (ok false: none), decoded as
// PractitionerWithCliniko decodes them, for every outcome but an allowed
// click, which needs neither (decoding them costs as much as the round
// trip): then it returns ErrNotFound.
func (rc ResolvedClick) Login() (Practitioner, ClinikoUser, bool, error) {
	if rc.Allowed() {
		return Practitioner{}, ClinikoUser{}, false, fmt.Errorf("login of an allowed click: %w", ErrNotFound)
	}
	return decodePractitionerWithCliniko(rc.PractitionerID, rc.practitioner, rc.practitionerFound, rc.user, rc.userFound)
}

// clickRuleLua defines may_open(me, x, owner, group): design.md's sharing
// rule as CanOpen applies it, in CanOpen's order, for an active
// practitioner me and patient x (tables of the record fields the rule
// reads), given the owner (nil when missing or unreadable) and the
// subscription's patient-sharing group (a list of ids). It returns the
// AccessReason.
const clickRuleLua = `
local function has(list, id)
  for _, v in ipairs(list) do
    if v == id then return true end
  end
  return false
end
local function may_open(me, x, owner, group)
  if me.id == x.owner_id then return 'owner' end
  if has(x.shared_with, me.id) then return 'shared' end
  if owner and owner.active and owner.subscription_id == x.subscription_id
     and has(group, me.id) and has(group, owner.id) then
    return 'group'
  end
  return 'denied'
end
`

// clickReadLua defines how the script reads records: not with cjson,
// which builds every field of a record (a patient's sealed details, a
// practitioner's password hash) and costs Redis more than the rest of the
// script, but by finding the few fields it needs in the JSON that
// encoding/json writes for them: keys in struct order without spaces, the
// top-level fields the script reads before any nested object that repeats
// a key (a patient's link), and every quote inside a string value escaped,
// so a value can never pass for a key. A string value holding an escape is
// not read this way (field gives nil): ids never hold one, and a name that
// does is read with cjson. TestClickRecordLayout checks these assumptions
// on the records' Go types; anything the script cannot read makes it
// leave the click to the ordinary way, which decodes in Go.
const clickReadLua = `
local function field(raw, key)
  local _, e = string.find(raw, '"' .. key .. '":"', 1, true)
  if not e then return nil end
  local q = string.find(raw, '"', e + 1, true)
  if not q then return nil end
  local v = string.sub(raw, e + 1, q - 1)
  if string.find(v, '\\', 1, true) then return nil end
  return v
end
local function ids(raw, key)
  local _, e = string.find(raw, '"' .. key .. '":[', 1, true)
  if not e then return nil end
  local q = string.find(raw, ']', e + 1, true)
  if not q then return nil end
  local out = {}
  for id in string.gmatch(string.sub(raw, e + 1, q - 1), '"([^"]*)"') do out[#out + 1] = id end
  return out
end
local function readable(raw)
  local ok, v = pcall(cjson.decode, raw)
  if ok and type(v) == 'table' then return v end
  return nil
end
local function practitioner(raw)
  if not raw then return nil end
  return {raw = raw, id = field(raw, 'id'), subscription_id = field(raw, 'subscription_id'),
    active = string.find(raw, '"active":true', 1, true) ~= nil}
end
local function name_of(p)
  if not p then return false end
  local n = field(p.raw, 'name')
  if n then return n end
  local v = readable(p.raw)
  if v and type(v.name) == 'string' then return v.name end
  return false
end
local function patient(raw)
  if not raw then return nil end
  return {owner_id = field(raw, 'owner_id'), subscription_id = field(raw, 'subscription_id'),
    shared_with = ids(raw, 'shared_with') or {}}
end
local function shard_of(raw)
  return raw and field(raw, 'shard')
end
local function group_of(raw)
  if not raw then return {} end
  local g = ids(raw, 'patients')
  if g then return g end
  if readable(raw) then return {} end
  return nil
end
local function valid(id)
  return type(id) == 'string' and #id > 0 and #id <= 100 and not string.find(id, '[^A-Za-z0-9_-]')
end
`

// clickScript resolves a click (see above). One declared key; the others
// are computed from the records.
//
// KEYS[1] session; ARGV now ms, idle ms, refresh ms, key prefix, Cliniko
// patient id. Returns {outcome, practitioner id, practitioner json, Cliniko
// user json, patient id, reason, owner id, owner name, refresh due}, false
// where there is nothing; outcome is "none" (no session), "undecided",
// "unlinked" or "decided". An allowed click returns no records and no
// owner's name (its caller needs none).
var clickScript = redis.NewScript(sessionLua + clickRuleLua + clickReadLua + `
local v = session(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
if not v then return {'none'} end
local P, cid, pid = ARGV[4], ARGV[5], v[1]
if not valid(pid) then return {'undecided', pid} end
local praw = redis.call('GET', P .. 'prac:' .. pid)
local uraw = redis.call('HGET', P .. 'prac:' .. pid .. ':cliniko', 'user')
local me = practitioner(praw)
local shard = shard_of(uraw)
if not me or not me.active or me.id ~= pid or not valid(me.subscription_id) or not valid(shard) then
  return {'undecided', pid, praw or false, uraw or false}
end
local pat = redis.call('HGET', P .. 'links:' .. me.subscription_id .. ':' .. shard, cid)
if not pat then return {'unlinked', pid, praw, uraw} end
local x = valid(pat) and patient(redis.call('GET', P .. 'pat:' .. pat))
if not x or not valid(x.owner_id) or not valid(x.subscription_id) then
  return {'undecided', pid, praw, uraw}
end
local function allowed(reason, owner_id)
  local due = redis.call('EXISTS', P .. 'debounce:refresh:' .. pat) == 0
  return {'decided', pid, false, false, pat, reason, owner_id, false, due and 1 or 0}
end
if x.subscription_id ~= me.subscription_id then
  return {'decided', pid, praw, uraw, pat, 'denied'}
end
if x.owner_id == me.id then
  return allowed('owner', me.id)
end
local owner = practitioner(redis.call('GET', P .. 'prac:' .. x.owner_id))
local group = group_of(redis.call('GET', P .. 'sub:' .. x.subscription_id .. ':sharing'))
if not group then return {'undecided', pid, praw, uraw} end
local reason = may_open(me, x, owner, group)
if reason == 'denied' then
  return {'decided', pid, praw, uraw, pat, reason, x.owner_id, name_of(owner)}
end
return allowed(reason, x.owner_id)
`)

// ResolveClick answers, in one Redis round trip, everything a click on
// "Open in pmsbridge" for Cliniko patient clinikoPatientID needs when the
// patient is already linked: the session of token (with GetSession's
// expiry and write-back), its practitioner and the Cliniko user of their
// key, the link on that key's shard, and whether the practitioner may open
// the patient (CanOpen's answer). An unknown or expired session, and a
// session whose practitioner no longer exists, are ErrNotFound, as
// GetSession and PractitionerWithCliniko have them; other errors are
// Redis's. The records are decoded by Login, when needed.
//
// Only the patient's plain fields are read, nothing is decrypted; a denied
// colleague learns the owner's name from the owner's record in the same
// step. It writes nothing but the session.
func (s *Store) ResolveClick(ctx context.Context, token, clinikoPatientID string) (ResolvedClick, error) {
	var rc ResolvedClick
	if token == "" || len(token) > 100 {
		return rc, fmt.Errorf("resolve click: %w", ErrNotFound)
	}
	if !validID(clinikoPatientID) {
		return rc, fmt.Errorf("resolve click: %w", invalid("click", "bad Cliniko patient id"))
	}
	now := s.now()
	vals, err := clickScript.Run(ctx, s.rdb, []string{s.sessionKey(token)},
		now.UnixMilli(), s.opts.SessionIdle.Milliseconds(), sessionRefresh.Milliseconds(),
		s.opts.Prefix, clinikoPatientID).Slice()
	if err != nil {
		return rc, fmt.Errorf("resolve click: %w", err)
	}
	str := func(i int) (string, bool) {
		if i < len(vals) {
			v, ok := vals[i].(string)
			return v, ok
		}
		return "", false
	}
	outcome, _ := str(0)
	if outcome == "none" {
		return rc, fmt.Errorf("resolve click: session: %w", ErrNotFound)
	}
	rc.PractitionerID, _ = str(1)
	var praw, uraw string
	praw, rc.practitionerFound = str(2)
	uraw, rc.userFound = str(3)
	rc.practitioner, rc.user = []byte(praw), []byte(uraw)
	switch outcome {
	case "unlinked":
		rc.Outcome = ClickNotLinked
	case "decided":
		rc.Outcome = ClickDecided
		rc.PatientID, _ = str(4)
		reason, _ := str(5)
		if rc.Access, err = clickAccess(reason); err != nil {
			return ResolvedClick{}, err
		}
		rc.Access.OwnerID, _ = str(6)
		rc.Access.OwnerName, _ = str(7)
		if len(vals) > 8 {
			due, _ := vals[8].(int64)
			rc.RefreshDue = due == 1
		}
		if rc.Allowed() {
			return rc, nil
		}
	case "undecided":
	default:
		return rc, fmt.Errorf("resolve click: unexpected answer %q", outcome)
	}
	if !validID(rc.PractitionerID) || !rc.practitionerFound {
		return rc, fmt.Errorf("resolve click: get practitioner %s: %w", rc.PractitionerID, ErrNotFound)
	}
	return rc, nil
}
