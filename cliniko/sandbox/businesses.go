package sandbox

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Business is one of an account's businesses (a clinic location), as
// GET /businesses serves it. The JSON tags are Cliniko's field names (the
// seed file uses them).
type Business struct {
	ID           string `json:"id"`
	AccountID    string `json:"-"`
	BusinessName string `json:"business_name"`
	// DisplayName is the name shown to patients; served as business_name
	// when empty.
	DisplayName string `json:"display_name"`
	Country     string `json:"country"`      // e.g. "Australia"
	CountryCode string `json:"country_code"` // ISO 3166-1 alpha-2, e.g. "AU"
	// TimeZone is Cliniko's label ("Sydney"); served as the last part of
	// TimeZoneIdentifier when empty.
	TimeZone string `json:"time_zone"`
	// TimeZoneIdentifier is the IANA name ("Australia/Sydney"), served when
	// the account has advanced time-zone support; empty: served as null.
	TimeZoneIdentifier string    `json:"time_zone_identifier"`
	CreatedAt          time.Time `json:"created_at"`
	UpdatedAt          time.Time `json:"updated_at"`
}

// firstBusinessID is where generated business ids start: a range of their
// own, so adding businesses does not shift the ids of anything else.
const firstBusinessID int64 = 836447129235700001

// shardBusiness is the business a new account gets when none is given: in
// the country and time zone its shard is for (eu1 is Cliniko's European
// shard; Ireland stands for it).
var shardBusiness = map[string]Business{
	"au": {Country: "Australia", CountryCode: "AU", TimeZone: "Sydney", TimeZoneIdentifier: "Australia/Sydney"},
	"ca": {Country: "Canada", CountryCode: "CA", TimeZone: "Eastern Time (US & Canada)", TimeZoneIdentifier: "America/Toronto"},
	"uk": {Country: "United Kingdom", CountryCode: "GB", TimeZone: "London", TimeZoneIdentifier: "Europe/London"},
	"eu": {Country: "Ireland", CountryCode: "IE", TimeZone: "Dublin", TimeZoneIdentifier: "Europe/Dublin"},
}

// defaultBusiness is the one business of an account created without any.
func defaultBusiness(shard, name string) Business {
	b := shardBusiness[strings.TrimRight(shard, "0123456789")]
	if b.TimeZoneIdentifier == "" {
		b.TimeZone, b.TimeZoneIdentifier = "UTC", "Etc/UTC"
	}
	b.BusinessName = name
	return b
}

// AddBusiness adds a business (another location) to the account and returns
// it as stored: an id is generated when b.ID is empty, timestamps default to
// now.
func (a *Account) AddBusiness(b Business) Business {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addBusinessLocked(a.ID, b)
}

func (s *Sandbox) addBusinessLocked(accountID string, b Business) Business {
	if b.ID == "" {
		b.ID = s.newBusinessIDLocked()
	}
	b.AccountID = accountID
	if b.CreatedAt.IsZero() {
		b.CreatedAt = s.nowLocked()
	}
	if b.UpdatedAt.IsZero() {
		b.UpdatedAt = b.CreatedAt
	}
	b.CreatedAt, b.UpdatedAt = b.CreatedAt.UTC().Truncate(time.Second), b.UpdatedAt.UTC().Truncate(time.Second)
	if _, ok := s.businesses[b.ID]; !ok {
		s.businessSeq = append(s.businessSeq, b.ID)
	}
	cp := b
	s.businesses[b.ID] = &cp
	return b
}

// Businesses lists the account's businesses in creation order.
func (a *Account) Businesses() []Business {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Business
	for _, id := range s.businessSeq {
		if b := s.businesses[id]; b.AccountID == a.ID {
			out = append(out, *b)
		}
	}
	return out
}

// EditBusiness changes a business with fn (for example its time zone) and
// bumps its updated_at to now. It reports whether the business exists.
func (s *Sandbox) EditBusiness(id string, fn func(*Business)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.businesses[id]
	if !ok {
		return false
	}
	keepID, keepAccount := b.ID, b.AccountID
	fn(b)
	b.ID, b.AccountID = keepID, keepAccount
	b.UpdatedAt = s.nowLocked().Truncate(time.Second)
	return true
}

func (s *Sandbox) newBusinessIDLocked() string {
	for {
		id := strconv.FormatInt(s.nextBusinessID, 10)
		s.nextBusinessID++
		if s.businesses[id] == nil && s.patients[id] == nil && s.users[id] == nil && s.attachments[id] == nil && !s.accountExistsLocked(id) {
			return id
		}
	}
}

func (s *Sandbox) businessJSON(shard string, b *Business) map[string]any {
	display := b.DisplayName
	if display == "" {
		display = b.BusinessName
	}
	label := b.TimeZone
	if label == "" && b.TimeZoneIdentifier != "" {
		label = strings.ReplaceAll(b.TimeZoneIdentifier[strings.LastIndex(b.TimeZoneIdentifier, "/")+1:], "_", " ")
	}
	self := s.link(shard, "/businesses/"+b.ID, nil)
	return map[string]any{
		"id": b.ID, "business_name": b.BusinessName, "display_name": display, "label": display,
		"address_1": nil, "address_2": nil, "city": nil, "state": nil, "post_code": nil,
		"country": nullable(b.Country), "country_code": nullable(b.CountryCode),
		"time_zone": nullable(label), "time_zone_identifier": nullable(b.TimeZoneIdentifier),
		"show_in_online_bookings": true, "archived_at": nil,
		"created_at": ts(b.CreatedAt), "updated_at": ts(b.UpdatedAt),
		"practitioners": map[string]any{"links": map[string]string{"self": self + "/practitioners"}},
		"links":         map[string]string{"self": self},
	}
}

var businessFields = map[string]fieldKind{"created_at": kindTime, "updated_at": kindTime, "id": kindID}

func businessValue(b *Business, field string) (string, bool) {
	switch field {
	case "created_at":
		return ts(b.CreatedAt), true
	case "updated_at":
		return ts(b.UpdatedAt), true
	case "id":
		return b.ID, true
	}
	return "", false
}

// listBusinesses serves GET /businesses: the caller's account's
// businesses, paged like every list (any role may read them).
func (s *Sandbox) listBusinesses(w http.ResponseWriter, r *http.Request, a actor) {
	q := r.URL.Query()
	filters, pg, ok := parseList(w, q, businessFields)
	if !ok {
		return
	}
	s.mu.Lock()
	var list []*Business
	for _, id := range s.businessSeq {
		b := s.businesses[id]
		if b.AccountID == a.account.ID && matchAll(filters, func(f string) (string, bool) { return businessValue(b, f) }) {
			list = append(list, b)
		}
	}
	slices.SortStableFunc(list, func(x, y *Business) int { return cmpID(x.ID, y.ID) })
	items := make([]any, 0, pg.perPage)
	for _, b := range pageOf(list, pg) {
		items = append(items, s.businessJSON(a.shard, b))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"businesses": items, "total_entries": len(list),
		"links": pageLinks(s.link, a.shard, "/businesses", q, pg, len(list))})
}

// getBusiness serves GET /businesses/{id} (404 for another account's).
func (s *Sandbox) getBusiness(w http.ResponseWriter, r *http.Request, a actor) {
	s.mu.Lock()
	b := s.businesses[r.PathValue("id")]
	var body map[string]any
	if b != nil && b.AccountID == a.account.ID {
		body = s.businessJSON(a.shard, b)
	}
	s.mu.Unlock()
	if body == nil {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, body)
}
