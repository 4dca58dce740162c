package sandbox

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
)

// The demo seed's API keys (seed.json). They are fixed so that `pmsbridge
// dev` can print them; they only ever work against a sandbox.
const (
	// DemoAdminKey belongs to "Dr Demo Practitioner" (demo@clinic.example),
	// administrator of "Demo Physio Clinic" on au1, user id "1".
	DemoAdminKey = "MS0xZGVtb2FkbWluc2FuZGJveGtleTAwMDAwMDAx-au1"
	// DemoPractitionerKey belongs to "Priya Raman", practitioner, user id "2".
	DemoPractitionerKey = "MS0yZGVtb3ByYWN0aXRpb25lcmtleTAwMDAwMDAy-au1"
	// DemoReceptionistKey belongs to "Rosa Reception", receptionist, user id "3".
	DemoReceptionistKey = "MS0zZGVtb3JlY2VwdGlvbmlzdGtleTAwMDAwMDAz-au1"
	// DemoSchedulerKey belongs to "Sam Scheduler", scheduler (may not touch
	// attachments), user id "4".
	DemoSchedulerKey = "MS00ZGVtb3NjaGVkdWxlcmtleTAwMDAwMDAwMDA0-au1"
	// DemoUK2AdminKey belongs to "Olivia Bennett", administrator of "Harbour
	// Street Physiotherapy" on uk2.
	DemoUK2AdminKey = "MS0xaGFyYm91cnN0cmVldGFkbWlua2V5MDAwMDAx-uk2"

	// DemoAdminUserID is the Cliniko user id of DemoAdminKey's user.
	DemoAdminUserID = "1"
	// DemoPatientID is Zoë O'Brien on au1 (short, pre-2020 style id).
	DemoPatientID = "1001"
	// DemoArchivedPatientID is Amelia Archer, archived (404 by id).
	DemoArchivedPatientID = "836447129235882010"
	// DemoBusinessID is the one business of "Demo Physio Clinic" (au1,
	// Australia/Sydney).
	DemoBusinessID = "101"
	// DemoUK2BusinessID is the one business of "Harbour Street
	// Physiotherapy" (uk2, Europe/London).
	DemoUK2BusinessID = "836447129235881301"
)

//go:embed seed.json
var demoSeed []byte

// DemoSeed returns the embedded demo seed (seed.json).
func DemoSeed() []byte { return bytes.Clone(demoSeed) }

// seedFile is the seed format: accounts with users (and their keys) and
// patients in Cliniko's own field names.
type seedFile struct {
	Accounts []struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		Shard string `json:"shard"`
		Users []struct {
			User
			APIKey string `json:"api_key"`
		} `json:"users"`
		Patients   []Patient  `json:"patients"`
		Businesses []Business `json:"businesses"`
	} `json:"accounts"`
}

// Seed loads accounts, businesses, users, keys and patients from a seed
// document (the format of seed.json). An account without businesses gets
// one, as with AddAccount.
func (s *Sandbox) Seed(data []byte) error {
	var f seedFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return fmt.Errorf("sandbox seed: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, fa := range f.Accounts {
		id := fa.ID
		if id == "" {
			id = s.newIDLocked()
		}
		a := s.addAccountLocked(id, strings.ToLower(fa.Shard), fa.Name)
		if len(fa.Businesses) == 0 {
			fa.Businesses = []Business{defaultBusiness(a.Shard, a.Name)}
		}
		for _, b := range fa.Businesses {
			s.addBusinessLocked(a.ID, b)
		}
		for _, fu := range fa.Users {
			u := fu.User
			if u.ID == "" {
				u.ID = s.newIDLocked()
			}
			u.AccountID, u.Active = a.ID, true
			u.CreatedAt, u.UpdatedAt = s.nowLocked(), s.nowLocked()
			s.users[u.ID] = &u
			key := fu.APIKey
			if key == "" {
				key = s.randomKeyLocked() + "-" + a.Shard
			}
			s.addKeyLocked(key, u.ID, a.Shard)
		}
		for _, p := range fa.Patients {
			s.addPatientLocked(a.ID, p)
		}
	}
	return nil
}

// NewDemo starts a sandbox loaded with the demo seed: "Demo Physio Clinic"
// on au1 (one business in Australia/Sydney, DemoBusinessID; an
// administrator, a practitioner, a receptionist and a scheduler; twelve
// patients with names in many scripts, one archived, dates of birth that are
// null, "" and invalid; most with an email address and a mobile, one with a
// mobile only (小明 王: a code goes by SMS), one with an email only, one
// with a landline only (Γιώργος: the practitioner hands the code over)) and
// "Harbour Street Physiotherapy" on uk2 (one business in Europe/London; UK
// mobiles in real ranges: Ofcom's 07700 900xxx drama range is refused as
// not in service).
func NewDemo(opts ...Option) *Sandbox {
	s := New(opts...)
	if err := s.Seed(demoSeed); err != nil {
		panic(err) // the embedded seed is tested
	}
	return s
}

// DemoAdmin returns the demo seed's administrator, "Dr Demo Practitioner"
// (the user of DemoAdminKey); the zero User if the demo seed is not loaded.
func (s *Sandbox) DemoAdmin() User {
	u, _ := s.User(DemoAdminUserID)
	return u
}

// User returns a user by id.
func (s *Sandbox) User(id string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return User{}, false
	}
	return *u, true
}
