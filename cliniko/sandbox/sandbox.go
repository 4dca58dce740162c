// Package sandbox is an in-process Cliniko sandbox: an HTTP server that
// behaves as cliniko-api.md documents (shards, Basic auth with API keys, the
// User-Agent rule, 200 requests per minute per user in fixed windows,
// pagination, filters, roles, the three-step attachment upload with a fake
// file storage) plus a Go API to set up accounts, users and patients, to
// inject failures and latency, and to inspect what was uploaded. Tests of
// anything that talks to Cliniko run against it; `pmsbridge dev` mounts it
// with demo data (NewDemo) and its HTML pages, which link back to the app as
// Cliniko's custom patient button does.
//
// The API lives under /{shard}/v1 (the shard is in the path because there is
// no DNS for api.{shard}.cliniko.com): configure the client with BaseURL().
// The fake storage lives under /s3/, the HTML pages at / and /sandbox/.
package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Roles of Cliniko users. The sandbox enforces: scheduler may not list,
// read, upload or create attachments (403, empty body); receptionist and
// power_receptionist may list and upload but not read file content (the
// account setting "Can view patient file attachments" is off). Reading
// patients and /user is allowed for every role.
const (
	RoleAdministrator     = "administrator"
	RolePractitioner      = "practitioner"
	RoleReceptionist      = "receptionist"
	RolePowerReceptionist = "power_receptionist"
	RoleScheduler         = "scheduler"
)

// DefaultRateLimit is Cliniko's documented budget: requests per minute per
// user.
const DefaultRateLimit = 200

// firstID is where generated ids start (18 digits, like Cliniko's).
const firstID int64 = 836447129235883061

// Option configures a Sandbox.
type Option func(*Sandbox)

// WithRateLimit sets the requests per minute per user (default 200); 0 or
// less turns rate limiting off.
func WithRateLimit(perMinute int) Option { return func(s *Sandbox) { s.limit = perMinute } }

// WithClock sets the sandbox's clock (timestamps, rate-limit windows,
// presign expiry). Default time.Now.
func WithClock(now func() time.Time) Option { return func(s *Sandbox) { s.now = now } }

// WithRandSeed seeds the sandbox's random numbers (keys, upload ids,
// SetFailureRate). Default 1.
func WithRandSeed(seed uint64) Option {
	return func(s *Sandbox) { s.rnd = mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }
}

// WithAppURL sets the pmsbridge address the "Open in pmsbridge" button links
// to (like SetAppURL).
func WithAppURL(u string) Option { return func(s *Sandbox) { s.appURL = strings.TrimRight(u, "/") } }

// WithURL makes New start no server: the sandbox is to be mounted by the
// caller at u (for example "http://localhost:8080/cliniko", served with
// http.StripPrefix("/cliniko", sandbox)). Links and URLs it hands out start
// with u.
func WithURL(u string) Option { return func(s *Sandbox) { s.url = strings.TrimRight(u, "/") } }

// Account is a Cliniko account (a clinic). It lives on one shard.
type Account struct {
	ID    string
	Name  string
	Shard string
	s     *Sandbox
}

// User is a Cliniko user of an account.
type User struct {
	ID        string `json:"id"`
	AccountID string `json:"-"`
	Title     string `json:"title"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	Email     string `json:"email"`
	Role      string `json:"role"`
	Active    bool   `json:"-"`
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Phone is a patient's phone number.
type Phone struct {
	Type   string `json:"phone_type"`
	Number string `json:"number"`
}

// Patient is a Cliniko patient as the sandbox stores it. The JSON tags are
// Cliniko's field names (the seed file uses them). Empty Email, Sex,
// GenderIdentity and Gender are served as null; DateOfBirth is served as is
// (nil → null, "" → "").
type Patient struct {
	ID             string     `json:"id"`
	AccountID      string     `json:"-"`
	Title          string     `json:"title"`
	FirstName      string     `json:"first_name"`
	LastName       string     `json:"last_name"`
	Email          string     `json:"email"`
	DateOfBirth    *string    `json:"date_of_birth"`
	Sex            string     `json:"sex"`
	GenderIdentity string     `json:"gender_identity"`
	Gender         string     `json:"gender"`
	PhoneNumbers   []Phone    `json:"patient_phone_numbers"`
	ArchivedAt     *time.Time `json:"archived_at"`
	DeletedAt      *time.Time `json:"deleted_at"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	// Raw holds fields written into the patient's JSON exactly as given,
	// over the usual ones: for tests of payloads the fields above cannot
	// express (invalid UTF-8 in a string, a number where a string goes).
	Raw map[string]json.RawMessage `json:"-"`
}

// Attachment is a file on a patient, with its content.
type Attachment struct {
	ID                  string
	PatientID           string
	UserID              string
	Description         string
	Filename            string
	ContentType         string
	Size                int64
	Content             []byte
	ProcessingCompleted bool
	CreatedAt           time.Time
	UploadURL           string // the upload_url it was created from
}

type keyRec struct {
	key     string // as issued, for the HTML page
	userID  string
	shard   string
	revoked bool
}

type window struct {
	start time.Time
	count int
}

type failRule struct {
	op     string // "" = any API call
	n      int
	status int
}

// Sandbox is a running Cliniko sandbox. It is safe for concurrent use.
type Sandbox struct {
	mu  sync.Mutex
	srv *httptest.Server
	mux *http.ServeMux

	url    string // external base URL, no trailing slash
	appURL string
	now    func() time.Time
	rnd    *mrand.Rand
	limit  int
	secret []byte

	latency    time.Duration
	fails      []failRule
	drops      []failRule // DropResponseNext rules (status unused)
	failRate   float64
	failStatus int

	accounts       []*Account
	users          map[string]*User
	keys           map[string]*keyRec // by the key's part before the shard suffix
	patients       map[string]*Patient
	patientSeq     []string // ids in creation order
	attachments    map[string]*Attachment
	attachSeq      []string
	businesses     map[string]*Business
	businessSeq    []string            // ids in creation order
	presigns       map[string]*presign // by issued key (with ${filename})
	objects        map[string]*object  // uploaded temp objects, by final key
	usedURLs       map[string]bool
	nextID         int64
	nextBusinessID int64
	windows        map[string]*window
	rateLimited    int
	requests       map[string]int
}

// New starts a sandbox on a local port (unless WithURL was given). Close it
// when done.
func New(opts ...Option) *Sandbox {
	s := &Sandbox{
		now:            time.Now,
		limit:          DefaultRateLimit,
		users:          map[string]*User{},
		keys:           map[string]*keyRec{},
		patients:       map[string]*Patient{},
		attachments:    map[string]*Attachment{},
		presigns:       map[string]*presign{},
		objects:        map[string]*object{},
		usedURLs:       map[string]bool{},
		windows:        map[string]*window{},
		requests:       map[string]int{},
		nextID:         firstID,
		businesses:     map[string]*Business{},
		nextBusinessID: firstBusinessID,
	}
	WithRandSeed(1)(s)
	for _, o := range opts {
		o(s)
	}
	s.secret = make([]byte, 32)
	_, _ = rand.Read(s.secret)
	s.routes()
	if s.url == "" {
		s.srv = httptest.NewServer(s)
		s.url = s.srv.URL
	}
	return s
}

// Close stops the server (if New started one).
func (s *Sandbox) Close() {
	if s.srv != nil {
		s.srv.Close()
	}
}

// URL is the sandbox's address, e.g. "http://127.0.0.1:41234".
func (s *Sandbox) URL() string { return s.url }

// BaseURL is the Cliniko client's BaseURL for this sandbox:
// URL() + "/{shard}/v1".
func (s *Sandbox) BaseURL() string { return s.url + "/{shard}/v1" }

// APIURL is the API address of one shard, URL() + "/" + shard + "/v1".
func (s *Sandbox) APIURL(shard string) string { return s.url + "/" + shard + "/v1" }

// SetAppURL sets the pmsbridge address the HTML pages' "Open in pmsbridge"
// button links to. Empty (the default) makes the link relative,
// "/cliniko_patient_import?patient_id=N", which suits a sandbox mounted in
// the app's own server.
func (s *Sandbox) SetAppURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appURL = strings.TrimRight(u, "/")
}

// SetClock replaces the clock.
func (s *Sandbox) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// SetRateLimit sets the requests per minute per user; 0 or less turns rate
// limiting off.
func (s *Sandbox) SetRateLimit(perMinute int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit = perMinute
}

// SetLatency delays every answer (API and storage) by d; a client with a
// shorter timeout sees a timeout.
func (s *Sandbox) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// FailNext makes the next n API calls (any operation; not the storage)
// answer status. A 429 carries X-RateLimit-Reset like a real one.
func (s *Sandbox) FailNext(n, status int) { s.FailNextOp("", n, status) }

// FailNextOp makes the next n calls of one operation answer status. op is
// one of the names RequestCount uses; "storage_upload" fails the storage.
func (s *Sandbox) FailNextOp(op string, n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails = append(s.fails, failRule{op: op, n: n, status: status})
}

// DropResponseNext makes the next n calls of one API operation (op as in
// RequestCount; "" means any API call) take effect as usual — an attachment
// is created, a patient read — but lose their answer: the client gets a 502
// instead, as when a proxy or the network fails after Cliniko acted. Tests
// use it to check that a retry does not repeat what was already done.
func (s *Sandbox) DropResponseNext(op string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drops = append(s.drops, failRule{op: op, n: n})
}

// dropResponse reports whether a DropResponseNext rule takes this call.
func (s *Sandbox) dropResponse(op string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.drops {
		if f := &s.drops[i]; f.n > 0 && (f.op == op || f.op == "") {
			f.n--
			s.drops = slices.DeleteFunc(s.drops, func(f failRule) bool { return f.n <= 0 })
			return true
		}
	}
	return false
}

// SetFailureRate makes a share p (0..1) of API calls answer status, chosen
// with the sandbox's seeded random numbers. p = 0 turns it off.
func (s *Sandbox) SetFailureRate(p float64, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failRate, s.failStatus = p, status
}

// RateLimited is how many 429s the sandbox has answered because a user went
// over the rate limit (injected failures not included).
func (s *Sandbox) RateLimited() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rateLimited
}

// RequestCount is how many requests an operation received: "get_user",
// "list_patients", "get_patient", "presign", "storage_upload",
// "create_attachment", "list_attachments", "get_attachment",
// "attachment_content", "list_businesses", "get_business", "unknown".
func (s *Sandbox) RequestCount(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[op]
}

// Requests returns the request counts of every operation.
func (s *Sandbox) Requests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.requests))
	for k, v := range s.requests {
		out[k] = v
	}
	return out
}

// AddAccount creates an account on shard with the businesses given; with
// none, it gets one business named name, in the country and time zone of
// its shard (au: Australia/Sydney, ca: America/Toronto, uk:
// Europe/London, eu: Europe/Dublin; another shard: Etc/UTC), as every
// Cliniko account has at least one.
func (s *Sandbox) AddAccount(shard, name string, businesses ...Business) *Account {
	s.mu.Lock()
	defer s.mu.Unlock()
	shard = strings.ToLower(shard)
	a := s.addAccountLocked(s.newIDLocked(), shard, name)
	if len(businesses) == 0 {
		businesses = []Business{defaultBusiness(shard, name)}
	}
	for _, b := range businesses {
		s.addBusinessLocked(a.ID, b)
	}
	return a
}

func (s *Sandbox) addAccountLocked(id, shard, name string) *Account {
	a := &Account{ID: id, Name: name, Shard: shard, s: s}
	s.accounts = append(s.accounts, a)
	return a
}

// Accounts lists the accounts in creation order.
func (s *Sandbox) Accounts() []*Account {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.accounts)
}

// AddUser adds a user with a role and returns it with a new API key
// ("<random>-<shard>").
func (a *Account) AddUser(first, last, email, role string) (User, string) {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	u := &User{ID: s.newIDLocked(), AccountID: a.ID, FirstName: first, LastName: last,
		Email: email, Role: role, Active: true, CreatedAt: s.nowLocked(), UpdatedAt: s.nowLocked()}
	s.users[u.ID] = u
	key := s.randomKeyLocked() + "-" + a.Shard
	s.addKeyLocked(key, u.ID, a.Shard)
	return *u, key
}

// AddKey gives an existing user another API key (for example an au1 key
// without suffix, as issued before sharding).
func (a *Account) AddKey(userID, key string) {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addKeyLocked(key, userID, a.Shard)
}

func (s *Sandbox) addKeyLocked(key, userID, shard string) {
	secret, _ := splitKey(key)
	s.keys[secret] = &keyRec{key: key, userID: userID, shard: shard}
}

// AddPatient adds a patient to the account and returns it as stored: an id
// is generated when p.ID is empty, timestamps default to now.
func (a *Account) AddPatient(p Patient) Patient {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addPatientLocked(a.ID, p)
}

func (s *Sandbox) addPatientLocked(accountID string, p Patient) Patient {
	if p.ID == "" {
		p.ID = s.newIDLocked()
	}
	p.AccountID = accountID
	now := s.nowLocked()
	if p.CreatedAt.IsZero() {
		p.CreatedAt = now
	}
	if p.UpdatedAt.IsZero() {
		p.UpdatedAt = p.CreatedAt
	}
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC().Truncate(time.Second), p.UpdatedAt.UTC().Truncate(time.Second)
	p.PhoneNumbers = slices.Clone(p.PhoneNumbers)
	if _, ok := s.patients[p.ID]; !ok {
		s.patientSeq = append(s.patientSeq, p.ID)
	}
	cp := p
	s.patients[p.ID] = &cp
	return p
}

// Patients lists the account's patients (archived ones included), in
// creation order.
func (a *Account) Patients() []Patient {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Patient
	for _, id := range s.patientSeq {
		if p := s.patients[id]; p.AccountID == a.ID {
			out = append(out, clonePatient(p))
		}
	}
	return out
}

// Users lists the account's users.
func (a *Account) Users() []User {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []User
	for _, u := range s.users {
		if u.AccountID == a.ID {
			out = append(out, *u)
		}
	}
	slices.SortFunc(out, func(x, y User) int { return cmpID(x.ID, y.ID) })
	return out
}

// Patient returns a patient by id (archived ones included).
func (s *Sandbox) Patient(id string) (Patient, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.patients[id]
	if !ok {
		return Patient{}, false
	}
	return clonePatient(p), true
}

// RevokeKey makes key stop working (401).
func (s *Sandbox) RevokeKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	secret, _ := splitKey(key)
	if k, ok := s.keys[secret]; ok {
		k.revoked = true
	}
}

// SetRole changes a user's role.
func (s *Sandbox) SetRole(userID, role string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.users[userID]; ok {
		u.Role = role
		u.UpdatedAt = s.nowLocked()
	}
}

// EditPatient changes a patient with fn and bumps its updated_at to now. It
// reports whether the patient exists.
func (s *Sandbox) EditPatient(id string, fn func(*Patient)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.patients[id]
	if !ok {
		return false
	}
	keepID, keepAccount := p.ID, p.AccountID
	fn(p)
	p.ID, p.AccountID = keepID, keepAccount
	p.UpdatedAt = s.nowLocked().UTC().Truncate(time.Second)
	return true
}

// ArchivePatient archives a patient: hidden from /patients, 404 by id.
func (s *Sandbox) ArchivePatient(id string) bool {
	return s.stampPatient(id, func(p *Patient, now *time.Time) { p.ArchivedAt = now })
}

// DeletePatient marks a patient deleted: hidden from /patients, 404 by id.
func (s *Sandbox) DeletePatient(id string) bool {
	return s.stampPatient(id, func(p *Patient, now *time.Time) { p.DeletedAt = now })
}

// stampPatient sets a patient's time field (via set) and updated_at to now.
func (s *Sandbox) stampPatient(id string, set func(p *Patient, now *time.Time)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.patients[id]
	if !ok {
		return false
	}
	now := s.nowLocked().UTC().Truncate(time.Second)
	set(p, &now)
	p.UpdatedAt = now
	return true
}

// Attachments returns a patient's attachments with their content, oldest
// first.
func (s *Sandbox) Attachments(patientID string) []Attachment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Attachment
	for _, id := range s.attachSeq {
		if a := s.attachments[id]; a.PatientID == patientID {
			c := *a
			c.Content = slices.Clone(a.Content)
			out = append(out, c)
		}
	}
	return out
}

func clonePatient(p *Patient) Patient {
	c := *p
	c.PhoneNumbers = slices.Clone(p.PhoneNumbers)
	c.Raw = maps.Clone(p.Raw)
	if p.DateOfBirth != nil {
		d := *p.DateOfBirth
		c.DateOfBirth = &d
	}
	return c
}

func (s *Sandbox) nowLocked() time.Time { return s.now().UTC() }

// newIDLocked returns the next free 18-digit id.
func (s *Sandbox) newIDLocked() string {
	for {
		id := strconv.FormatInt(s.nextID, 10)
		s.nextID++
		if s.patients[id] == nil && s.users[id] == nil && s.attachments[id] == nil && s.businesses[id] == nil && !s.accountExistsLocked(id) {
			return id
		}
	}
}

func (s *Sandbox) accountExistsLocked(id string) bool {
	for _, a := range s.accounts {
		if a.ID == id {
			return true
		}
	}
	return false
}

const keyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func (s *Sandbox) randomKeyLocked() string {
	b := make([]byte, 40)
	for i := range b {
		b[i] = keyAlphabet[s.rnd.IntN(len(keyAlphabet))]
	}
	return "MS0" + string(b)
}

func (s *Sandbox) uuidLocked() string {
	b := make([]byte, 16)
	for i := range b {
		b[i] = byte(s.rnd.IntN(256))
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// splitKey splits an API key into its secret part and its shard suffix (""
// when it has none).
func splitKey(key string) (secret, shard string) {
	i := strings.LastIndex(key, "-")
	if i < 0 {
		return key, ""
	}
	return key[:i], strings.ToLower(key[i+1:])
}

// cmpID orders numeric ids (any length) numerically.
func cmpID(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// ServeHTTP serves the API, the storage and the HTML pages, so the sandbox
// can also be mounted in another server (see WithURL).
func (s *Sandbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.mux.Handler(r); pattern == "" {
		s.count("unknown")
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Sandbox) count(op string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[op]++
}

// delay sleeps for the configured latency, honouring the request's context.
func (s *Sandbox) delay(ctx context.Context) error {
	s.mu.Lock()
	d := s.latency
	s.mu.Unlock()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// injectedFailure returns the status to answer if a FailNext rule or the
// failure rate says this call fails.
func (s *Sandbox) injectedFailure(op string, api bool) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.fails {
		f := &s.fails[i]
		if f.n > 0 && (f.op == op || (f.op == "" && api)) {
			f.n--
			status := f.status
			s.fails = slices.DeleteFunc(s.fails, func(f failRule) bool { return f.n <= 0 })
			return status, true
		}
	}
	if api && s.failRate > 0 && s.rnd.Float64() < s.failRate {
		return s.failStatus, true
	}
	return 0, false
}

// windowEndLocked is the end of the current rate-limit window.
func (s *Sandbox) windowEndLocked() time.Time {
	return s.nowLocked().Truncate(time.Minute).Add(time.Minute)
}

// link builds an absolute API link.
func (s *Sandbox) link(shard, path string, q url.Values) string {
	u := s.APIURL(shard) + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}
