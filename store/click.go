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
//     returned raw and decoded here as PractitionerWithCliniko decodes
//     them;
//  3. the link of the Cliniko patient on the key's shard;
//  4. the patient record's plain fields (owner, individual shares and
//     subscription: nothing encrypted is read) and, for anyone but the
//     owner, the owner's record and the subscription's sharing groups;
//     then CanOpen's rule (clickRuleLua), whose answer the test
//     TestClickAgreesWithCanOpen compares with CanOpen's in every
//     situation of the sharing table.
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
	// Practitioner is the session's practitioner, as read (check Active).
	Practitioner Practitioner
	// ClinikoUser is the Cliniko user of their saved key; HasKey is false
	// when they have none.
	ClinikoUser ClinikoUser
	HasKey      bool
	Outcome     ClickOutcome
	// PatientID and Access are set for ClickDecided.
	PatientID string
	Access    Access
}

// clickRuleLua defines may_open(me, x, owner, group): design.md's sharing
// rule as CanOpen applies it, in CanOpen's order, for an active
// practitioner me (a decoded record) and patient record x, given the
// owner's decoded record (nil when missing or unreadable) and the
// subscription's patient-sharing group (a list of ids). It returns the
// AccessReason.
const clickRuleLua = `
local function has(list, id)
  if type(list) ~= 'table' then return false end
  for _, v in ipairs(list) do
    if v == id then return true end
  end
  return false
end
local function may_open(me, x, owner, group)
  if me.id == x.owner_id then return 'owner' end
  if has(x.shared_with, me.id) then return 'shared' end
  if owner and owner.active == true and owner.subscription_id == x.subscription_id
     and has(group, me.id) and has(group, owner.id) then
    return 'group'
  end
  return 'denied'
end
`

// clickScript resolves a click (see above). One declared key; the others
// are computed from the records.
//
// KEYS[1] session; ARGV now ms, idle ms, refresh ms, key prefix, Cliniko
// patient id. Returns {outcome, practitioner id, practitioner json, Cliniko
// user json, patient id, reason, owner id, owner name}, false where there
// is nothing; outcome is "none" (no session), "undecided", "unlinked" or
// "decided".
var clickScript = redis.NewScript(sessionLua + clickRuleLua + `
local function valid(id)
  return type(id) == 'string' and #id > 0 and #id <= 100 and not string.find(id, '[^A-Za-z0-9_-]')
end
local function decode(raw)
  if not raw then return nil end
  local ok, v = pcall(cjson.decode, raw)
  if ok and type(v) == 'table' then return v end
  return nil
end
local v = session(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
if not v then return {'none'} end
local P, cid, pid = ARGV[4], ARGV[5], v[1]
if not valid(pid) then return {'undecided', pid} end
local praw = redis.call('GET', P .. 'prac:' .. pid)
local uraw = redis.call('HGET', P .. 'prac:' .. pid .. ':cliniko', 'user')
local me, u = decode(praw), decode(uraw)
if not me or me.active ~= true or not u or not valid(u.shard) or not valid(me.subscription_id) or me.id ~= pid then
  return {'undecided', pid, praw or false, uraw or false}
end
local pat = redis.call('HGET', P .. 'links:' .. me.subscription_id .. ':' .. u.shard, cid)
if not pat then return {'unlinked', pid, praw, uraw} end
local x = valid(pat) and decode(redis.call('GET', P .. 'pat:' .. pat))
if not x or not valid(x.owner_id) or not valid(x.subscription_id) then
  return {'undecided', pid, praw, uraw}
end
if x.subscription_id ~= me.subscription_id then
  return {'decided', pid, praw, uraw, pat, 'denied'}
end
if x.owner_id == me.id then
  return {'decided', pid, praw, uraw, pat, 'owner', me.id, me.name or false}
end
local owner = decode(redis.call('GET', P .. 'prac:' .. x.owner_id))
local group = {}
local sraw = redis.call('GET', P .. 'sub:' .. x.subscription_id .. ':sharing')
if sraw then
  local sh = decode(sraw)
  if not sh then return {'undecided', pid, praw, uraw} end
  group = sh.patients
end
local name = false
if owner and type(owner.name) == 'string' then name = owner.name end
return {'decided', pid, praw, uraw, pat, may_open(me, x, owner, group), x.owner_id, name}
`)

// ResolveClick answers, in one Redis round trip, everything a click on
// "Open in pmsbridge" for Cliniko patient clinikoPatientID needs when the
// patient is already linked: the session of token (with GetSession's
// expiry and write-back), its practitioner and the Cliniko user of their
// key, the link on that key's shard, and whether the practitioner may open
// the patient (CanOpen's answer). An unknown or expired session, and a
// session whose practitioner no longer exists, are ErrNotFound, as
// GetSession and PractitionerWithCliniko have them; other errors are
// Redis's or a record that cannot be read.
//
// Only the patient's plain fields are read, nothing is decrypted; a denied
// colleague learns the owner's name from the owner's record in the same
// step.
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
	pid, _ := str(1)
	if !validID(pid) {
		return rc, fmt.Errorf("resolve click: get practitioner %s: %w", pid, ErrNotFound)
	}
	praw, pok := str(2)
	uraw, uok := str(3)
	rc.Practitioner, rc.ClinikoUser, rc.HasKey, err = decodePractitionerWithCliniko(pid, []byte(praw), pok, []byte(uraw), uok)
	if err != nil {
		return rc, fmt.Errorf("resolve click: %w", err)
	}
	switch outcome {
	case "unlinked":
		rc.Outcome = ClickNotLinked
	case "decided":
		rc.Outcome = ClickDecided
		rc.PatientID, _ = str(4)
		reason, _ := str(5)
		rc.Access = Access{Allowed: reason != string(AccessDenied), Reason: AccessReason(reason)}
		rc.Access.OwnerID, _ = str(6)
		rc.Access.OwnerName, _ = str(7)
	case "undecided":
	default:
		return rc, fmt.Errorf("resolve click: unexpected answer %q", outcome)
	}
	return rc, nil
}
