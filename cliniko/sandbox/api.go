package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

func (s *Sandbox) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /{shard}/v1/user", s.api("get_user", s.getUser))
	m.HandleFunc("GET /{shard}/v1/patients", s.api("list_patients", s.listPatients))
	m.HandleFunc("GET /{shard}/v1/patients/{id}", s.api("get_patient", s.getPatient))
	m.HandleFunc("GET /{shard}/v1/patients/{id}/attachment_presigned_post", s.api("presign", s.presign))
	m.HandleFunc("GET /{shard}/v1/patient_attachments", s.api("list_attachments", s.listAttachments))
	m.HandleFunc("POST /{shard}/v1/patient_attachments", s.api("create_attachment", s.createAttachment))
	m.HandleFunc("GET /{shard}/v1/patient_attachments/{id}", s.api("get_attachment", s.getAttachment))
	m.HandleFunc("GET /{shard}/v1/patient_attachments/{id}/content", s.api("attachment_content", s.attachmentContent))
	m.HandleFunc("GET /{shard}/v1/businesses", s.api("list_businesses", s.listBusinesses))
	m.HandleFunc("GET /{shard}/v1/businesses/{id}", s.api("get_business", s.getBusiness))
	m.HandleFunc("POST /s3/{bucket}/{$}", s.storageUpload)
	m.HandleFunc("GET /{$}", s.indexPage)
	m.HandleFunc("GET /sandbox/patients/{id}", s.patientPage)
	m.HandleFunc("POST /sandbox/patients/{id}/date_of_birth", s.editDateOfBirth)
	m.HandleFunc("GET /sandbox/attachments/{id}/content", s.downloadPage)
	s.mux = m
}

// actor is the authenticated caller of an API request.
type actor struct {
	user    User
	account *Account
	shard   string
}

var userAgentRe = regexp.MustCompile(`^[^()]*[^()\s]\s+\(([^()\s@]+@[^()\s@]+\.[^()\s@]+)\)$`)

// api wraps an API handler with what every Cliniko request goes through:
// counting, latency, injected failures, the User-Agent rule, Basic auth
// (key on its own shard only) and the per-user rate limit.
func (s *Sandbox) api(op string, h func(http.ResponseWriter, *http.Request, actor)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.count(op)
		if s.delay(r.Context()) != nil {
			return
		}
		if status, ok := s.injectedFailure(op, true); ok {
			s.writeStatus(w, status)
			return
		}
		if !userAgentRe.MatchString(strings.TrimSpace(r.UserAgent())) {
			// Old API's answer (cliniko-api issue #177).
			writeJSON(w, http.StatusForbidden, map[string]string{"message": "Requires a user agent"})
			return
		}
		if acc := r.Header.Get("Accept"); acc != "" && !strings.Contains(acc, "json") && !strings.Contains(acc, "*/*") {
			writeJSON(w, http.StatusNotAcceptable, map[string]string{"message": "Only JSON is supported"})
			return
		}
		a, ok := s.authenticate(r)
		if !ok {
			// Cliniko's 401 body is undocumented; this is what a Rails
			// http_basic authenticate answers.
			w.Header().Set("WWW-Authenticate", `Basic realm="Application"`)
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte("HTTP Basic: Access denied.\n"))
			return
		}
		if reset, limited := s.overLimit(a.user.ID); limited {
			w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
			writeJSON(w, http.StatusTooManyRequests, map[string]string{"message": "Too many requests: the rate limit of this user was exceeded"})
			return
		}
		if s.dropResponse(op) {
			h(httptest.NewRecorder(), r, a) // done, but the answer is lost
			s.writeStatus(w, http.StatusBadGateway)
			return
		}
		h(w, r, a)
	}
}

// writeStatus answers an injected failure.
func (s *Sandbox) writeStatus(w http.ResponseWriter, status int) {
	switch {
	case status == http.StatusTooManyRequests:
		s.mu.Lock()
		reset := s.windowEndLocked()
		s.mu.Unlock()
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
		writeJSON(w, status, map[string]string{"message": "Too many requests: the rate limit of this user was exceeded"})
	case status == http.StatusForbidden:
		w.WriteHeader(status) // empty body, as Cliniko's role refusals
	case status >= 500:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, "<html><body><h1>%d %s</h1></body></html>\n", status, http.StatusText(status))
	default:
		writeJSON(w, status, map[string]string{"message": http.StatusText(status)})
	}
}

// authenticate checks Basic auth: username is an API key (with or without
// its shard suffix), password empty. Shards don't know each other: a key
// used under another shard's path is unknown there (401).
func (s *Sandbox) authenticate(r *http.Request) (actor, bool) {
	key, _, ok := r.BasicAuth()
	if !ok || key == "" {
		return actor{}, false
	}
	pathShard := r.PathValue("shard")
	secret, suffix := splitKey(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	k, found := s.keys[secret]
	if !found {
		// A key without a suffix whose secret itself contains a hyphen.
		k, found = s.keys[key]
		suffix = ""
	}
	if !found || k.revoked || k.shard != pathShard || (suffix != "" && suffix != k.shard) {
		return actor{}, false
	}
	u, ok := s.users[k.userID]
	if !ok || !u.Active {
		return actor{}, false
	}
	for _, a := range s.accounts {
		if a.ID == u.AccountID {
			return actor{user: *u, account: a, shard: pathShard}, true
		}
	}
	return actor{}, false
}

// overLimit counts a request against the user's fixed one-minute window
// (aligned to the minute) and reports whether it is over the limit, with
// the window's end.
func (s *Sandbox) overLimit(userID string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.limit <= 0 {
		return time.Time{}, false
	}
	start := s.nowLocked().Truncate(time.Minute)
	win := s.windows[userID]
	if win == nil || !win.start.Equal(start) {
		win = &window{start: start}
		s.windows[userID] = win
	}
	win.count++
	if win.count > s.limit {
		s.rateLimited++
		return start.Add(time.Minute), true
	}
	return time.Time{}, false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func notFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
}

func forbidden(w http.ResponseWriter) { w.WriteHeader(http.StatusForbidden) }

func badRequest(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusBadRequest, map[string]string{"message": msg})
}

func invalid(w http.ResponseWriter, fields map[string]string) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed", "errors": fields})
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func tsPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ts(*t)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// --- users ---------------------------------------------------------------

func (s *Sandbox) getUser(w http.ResponseWriter, r *http.Request, a actor) {
	u := a.user
	writeJSON(w, http.StatusOK, map[string]any{
		"id": u.ID, "title": nullable(u.Title), "first_name": u.FirstName, "last_name": u.LastName,
		"email": u.Email, "role": u.Role, "time_zone": "Australia/Melbourne", "user_active": u.Active,
		"created_at": ts(u.CreatedAt), "updated_at": ts(u.UpdatedAt),
		"links": map[string]string{"self": s.link(a.shard, "/users/"+u.ID, nil)},
	})
}

// --- patients ------------------------------------------------------------

func (s *Sandbox) patientJSON(shard string, p *Patient) map[string]any {
	phones := make([]map[string]string, 0, len(p.PhoneNumbers))
	for _, ph := range p.PhoneNumbers {
		phones = append(phones, map[string]string{"phone_type": ph.Type, "number": ph.Number})
	}
	var dob any
	if p.DateOfBirth != nil {
		dob = *p.DateOfBirth
	}
	self := s.link(shard, "/patients/"+p.ID, nil)
	m := map[string]any{
		"id": p.ID, "title": nullable(p.Title), "first_name": p.FirstName, "last_name": p.LastName,
		"preferred_first_name": nil, "label": strings.TrimSpace(p.FirstName + " " + p.LastName),
		"email": nullable(p.Email), "date_of_birth": dob, "sex": nullable(p.Sex),
		"gender_identity": nullable(p.GenderIdentity), "gender": nullable(p.Gender), "pronouns": nil,
		"patient_phone_numbers": phones,
		"archived_at":           tsPtr(p.ArchivedAt), "deleted_at": tsPtr(p.DeletedAt),
		"created_at": ts(p.CreatedAt), "updated_at": ts(p.UpdatedAt),
		"appointments": map[string]any{"links": map[string]string{"self": self + "/appointments"}},
		"links":        map[string]string{"self": self},
	}
	for k, v := range p.Raw {
		m[k] = v
	}
	return m
}

// visiblePatientLocked returns a patient of the account that is neither
// archived nor deleted.
func (s *Sandbox) visiblePatientLocked(a actor, id string) *Patient {
	p := s.patients[id]
	if p == nil || p.AccountID != a.account.ID || p.ArchivedAt != nil || p.DeletedAt != nil {
		return nil
	}
	return p
}

func (s *Sandbox) getPatient(w http.ResponseWriter, r *http.Request, a actor) {
	s.mu.Lock()
	p := s.visiblePatientLocked(a, r.PathValue("id"))
	var body map[string]any
	if p != nil {
		body = s.patientJSON(a.shard, p)
	}
	s.mu.Unlock()
	if p == nil {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// patientFields are the searchable columns of /patients (cliniko-api.md §5).
// archived_at is deliberately not searchable here: whether
// q[]=archived_at:* works on /patients is UNCONFIRMED, so code must not rely
// on it.
var patientFields = map[string]fieldKind{
	"created_at": kindTime, "updated_at": kindTime, "date_of_birth": kindDate, "id": kindID,
	"email": kindString, "first_name": kindString, "last_name": kindString, "old_reference_id": kindString,
}

func patientValue(p *Patient, field string) (string, bool) {
	switch field {
	case "created_at":
		return ts(p.CreatedAt), true
	case "updated_at":
		return ts(p.UpdatedAt), true
	case "date_of_birth":
		if p.DateOfBirth == nil || *p.DateOfBirth == "" {
			return "", false
		}
		return *p.DateOfBirth, true
	case "id":
		return p.ID, true
	case "email":
		return p.Email, p.Email != ""
	case "first_name":
		return p.FirstName, true
	case "last_name":
		return p.LastName, true
	}
	return "", false
}

var patientSorts = []string{"created_at", "updated_at", "id", "first_name", "last_name"}

func (s *Sandbox) listPatients(w http.ResponseWriter, r *http.Request, a actor) {
	q := r.URL.Query()
	filters, pg, ok := parseList(w, q, patientFields)
	if !ok {
		return
	}
	sorts, msg := parseSort(q, patientSorts)
	if msg != "" {
		badRequest(w, msg)
		return
	}
	s.mu.Lock()
	var list []*Patient
	for _, id := range s.patientSeq {
		p := s.patients[id]
		if p.AccountID != a.account.ID || p.ArchivedAt != nil || p.DeletedAt != nil {
			continue
		}
		if matchAll(filters, func(f string) (string, bool) { return patientValue(p, f) }) {
			list = append(list, p)
		}
	}
	slices.SortStableFunc(list, func(x, y *Patient) int {
		for _, srt := range sorts {
			xv, _ := patientValue(x, srt.field)
			yv, _ := patientValue(y, srt.field)
			c := compareValues(patientFields[srt.field], xv, yv)
			if srt.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return cmpID(x.ID, y.ID)
	})
	items := make([]any, 0, pg.perPage)
	for _, p := range pageOf(list, pg) {
		items = append(items, s.patientJSON(a.shard, p))
	}
	s.mu.Unlock()
	body := map[string]any{"patients": items, "total_entries": len(list),
		"links": pageLinks(s.link, a.shard, "/patients", q, pg, len(list))}
	writeJSON(w, http.StatusOK, body)
}

// --- paging, filters, sorting ---------------------------------------------

type paging struct{ page, perPage int }

// parseList reads a list request's filters on fields and its paging; on a
// bad query it answers 400 and reports false.
func parseList(w http.ResponseWriter, q url.Values, fields map[string]fieldKind) ([]filter, paging, bool) {
	filters, msg := parseFilters(q, fields)
	if msg == "" {
		var pg paging
		if pg, msg = parsePaging(q); msg == "" {
			return filters, pg, true
		}
	}
	badRequest(w, msg)
	return nil, paging{}, false
}

func parsePaging(q map[string][]string) (paging, string) {
	pg := paging{page: 1, perPage: 50}
	if v := first(q, "per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return pg, "per_page must be between 1 and 100"
		}
		pg.perPage = n
	}
	if v := first(q, "page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return pg, "page must be a positive number"
		}
		pg.page = n
	}
	return pg, ""
}

func first(q map[string][]string, k string) string {
	if v := q[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func pageOf[T any](list []T, pg paging) []T {
	from := (pg.page - 1) * pg.perPage
	if from >= len(list) {
		return nil
	}
	return list[from:min(from+pg.perPage, len(list))]
}

// pageLinks builds links.self/next/previous, absolute, keeping the query.
func pageLinks(link func(string, string, url.Values) string, shard, path string, q url.Values, pg paging, total int) map[string]string {
	at := func(page int) string {
		c := url.Values{}
		for k, v := range q {
			c[k] = slices.Clone(v)
		}
		c["page"] = []string{strconv.Itoa(page)}
		c["per_page"] = []string{strconv.Itoa(pg.perPage)}
		return link(shard, path, c)
	}
	links := map[string]string{"self": at(pg.page)}
	if pg.page*pg.perPage < total {
		links["next"] = at(pg.page + 1)
	}
	if pg.page > 1 {
		links["previous"] = at(pg.page - 1)
	}
	return links
}

type fieldKind int

const (
	kindString fieldKind = iota
	kindTime
	kindDate
	kindID
	kindNumber
	kindBool
)

type filter struct {
	field, op, value string
	kind             fieldKind
}

var filterRe = regexp.MustCompile(`^([a-z_]+):(>=|<=|!=|!\?|~~|=|>|<|~|\?|\*)(.*)$`)

var opsByKind = map[fieldKind][]string{
	kindString: {"=", "!=", "~", "~~", "?", "!?"},
	kindTime:   {">=", ">", "<=", "<", "?", "!?", "*"},
	kindDate:   {"=", ">=", ">", "<=", "<", "?", "!?"},
	kindID:     {"=", "!=", ">=", ">", "<=", "<", "?", "!?"},
	kindNumber: {"=", "!=", ">=", ">", "<=", "<", "?", "!?"},
	kindBool:   {"=", "!="},
}

// parseFilters reads q[]=field:<op>value (and the old single q=).
func parseFilters(q map[string][]string, fields map[string]fieldKind) ([]filter, string) {
	var out []filter
	for _, raw := range append(slices.Clone(q["q[]"]), q["q"]...) {
		m := filterRe.FindStringSubmatch(raw)
		if m == nil {
			return nil, "Invalid search query."
		}
		kind, ok := fields[m[1]]
		if !ok {
			return nil, "This column is not searchable."
		}
		if !slices.Contains(opsByKind[kind], m[2]) {
			return nil, "Invalid search operator for this column."
		}
		f := filter{field: m[1], op: m[2], value: m[3], kind: kind}
		if kind == kindTime && f.op != "?" && f.op != "!?" && f.op != "*" {
			if _, ok := parseTime(f.value); !ok {
				return nil, "Invalid date time in search query."
			}
		}
		out = append(out, f)
	}
	return out, ""
}

func parseTime(v string) (time.Time, bool) {
	for _, l := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(l, v); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

func matchAll(fs []filter, get func(string) (string, bool)) bool {
	for _, f := range fs {
		v, present := get(f.field)
		if !matchOne(f, v, present) {
			return false
		}
	}
	return true
}

func matchOne(f filter, v string, present bool) bool {
	switch f.op {
	case "?":
		return present
	case "!?":
		return !present
	case "*":
		return true
	}
	if !present && f.op != "!=" {
		return false
	}
	switch f.kind {
	case kindString:
		switch f.op {
		case "=":
			return strings.EqualFold(v, f.value)
		case "!=":
			return !strings.EqualFold(v, f.value)
		case "~":
			return strings.Contains(strings.ToLower(v), strings.ToLower(f.value))
		case "~~":
			return likeMatch(strings.ToLower(f.value), strings.ToLower(v))
		}
	case kindID, kindNumber, kindBool:
		if f.op == "=" {
			return slices.Contains(strings.Split(f.value, ","), v)
		}
		if f.op == "!=" {
			return v != f.value
		}
		return cmpOp(f.op, compareValues(f.kind, v, f.value))
	case kindDate:
		if f.op == "=" && strings.Contains(f.value, "*") {
			return likeMatch(strings.ReplaceAll(f.value, "*", "_"), v)
		}
		return cmpOp(f.op, strings.Compare(v, f.value))
	case kindTime:
		return cmpOp(f.op, compareValues(kindTime, v, f.value))
	}
	return false
}

func cmpOp(op string, c int) bool {
	switch op {
	case "=":
		return c == 0
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	}
	return false
}

func compareValues(kind fieldKind, a, b string) int {
	switch kind {
	case kindTime:
		ta, _ := parseTime(a)
		tb, _ := parseTime(b)
		return ta.Compare(tb)
	case kindID, kindNumber:
		return cmpID(a, b)
	}
	return strings.Compare(strings.ToLower(a), strings.ToLower(b))
}

// likeMatch is SQL LIKE: % any run, _ any one character.
func likeMatch(pattern, s string) bool {
	re := "^" + strings.NewReplacer("%", ".*", "_", ".").Replace(regexp.QuoteMeta(pattern)) + "$"
	m, _ := regexp.MatchString(re, s)
	return m
}

type sortKey struct {
	field string
	desc  bool
}

func parseSort(q map[string][]string, allowed []string) ([]sortKey, string) {
	v := first(q, "sort")
	if v == "" {
		v = "created_at"
	}
	var out []sortKey
	for _, part := range strings.Split(v, ",") {
		f, dir, _ := strings.Cut(strings.TrimSpace(part), ":")
		if !slices.Contains(allowed, f) || (dir != "" && dir != "asc" && dir != "desc") {
			return nil, "Invalid sort."
		}
		out = append(out, sortKey{field: f, desc: dir == "desc"})
	}
	if o := first(q, "order"); o == "desc" && len(out) == 1 { // deprecated, still honoured
		out[0].desc = true
	}
	return out, ""
}
