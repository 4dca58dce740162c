package twiliotest

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
	"github.com/physitrack/pmsbridge/sms"
)

const apiVersion = "2010-04-01"

// Twilio's documented test-credential numbers: To → error code.
var magicTo = map[string]int{
	"+15005550001": 21211, // invalid number
	"+15005550002": 21612, // cannot route
	"+15005550003": 21408, // no international permission
	"+15005550004": 21610, // blocked (unsubscribed)
	"+15005550009": 21614, // not SMS-capable
}

// twilioError is Twilio's error body.
type twilioError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

func writeError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(twilioError{Code: code, Message: msg,
		MoreInfo: "https://www.twilio.com/docs/errors/" + strconv.Itoa(code), Status: status})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Sandbox) routes() {
	s.mux = http.NewServeMux()
	base := "/" + apiVersion + "/Accounts/{account}/"
	s.mux.HandleFunc("POST "+base+"Messages.json", s.api("create_message", s.createMessage))
	s.mux.HandleFunc("GET "+base+"Messages.json", s.api("list_messages", s.listMessages))
	s.mux.HandleFunc("GET "+base+"Messages/{sid}", s.api("fetch_message", s.fetchMessage))
	s.mux.HandleFunc("/"+apiVersion+"/", s.api("unknown", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
	}))
	s.mux.Handle("GET /{$}", s.OutboxHandler())
}

// api wraps an operation: counting, Basic auth, the account in the path,
// injected failures.
func (s *Sandbox) api(op string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests[op]++
		sid, token, latency := s.sid, s.token, s.latency
		s.mu.Unlock()
		if latency > 0 {
			// Read the form first: the server notices a client that gave
			// up only once the request body has been read.
			_ = r.ParseForm()
			select {
			case <-time.After(latency):
			case <-r.Context().Done():
				return
			}
		}
		user, pass, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(sid)) != 1 || subtle.ConstantTimeCompare([]byte(pass), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
			writeError(w, http.StatusUnauthorized, 20003, "Authenticate")
			return
		}
		if acc := r.PathValue("account"); acc != "" && acc != sid {
			writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
			return
		}
		if status, retry, ok := s.takeFailure(op); ok {
			if retry > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int(retry/time.Second)))
			}
			code, msg := 20500, "Internal Server Error"
			switch status {
			case http.StatusTooManyRequests:
				code, msg = 20429, "Too Many Requests"
			case http.StatusServiceUnavailable:
				code, msg = 20503, "Service Unavailable"
			}
			writeError(w, status, code, msg)
			return
		}
		h(w, r)
	}
}

func (s *Sandbox) takeFailure(op string) (int, time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.fails {
		if f := &s.fails[i]; f.n > 0 && (f.op == "" || f.op == op) {
			f.n--
			status := f.status
			s.fails = slices.DeleteFunc(s.fails, func(f failRule) bool { return f.n <= 0 })
			var retry time.Duration
			if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
				retry = s.retryAfter
			}
			return status, retry, true
		}
	}
	return 0, 0, false
}

var (
	e164Re       = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	serviceSIDRe = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
	messageSIDRe = regexp.MustCompile(`^(SM|MM)[0-9a-fA-F]{32}$`)
)

func (s *Sandbox) createMessage(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, 20001, "Unable to parse the request body")
		return
	}
	to, from, service, body := r.PostForm.Get("To"), r.PostForm.Get("From"), r.PostForm.Get("MessagingServiceSid"), r.PostForm.Get("Body")
	s.mu.Lock()
	ownsFrom, ownsService, unsubscribed := s.senders[from], s.services[service], s.unsubscribed[to]
	refused := s.refused[to]
	s.mu.Unlock()
	bad := func(code int, msg string) { writeError(w, http.StatusBadRequest, code, msg) }
	switch {
	case to == "":
		bad(21604, "A 'To' phone number is required.")
	case from == "" && service == "":
		bad(21603, "A 'From' phone number is required.")
	case service != "" && !serviceSIDRe.MatchString(service):
		bad(21705, "The Messaging Service Sid "+service+" is invalid.")
	case service != "" && !ownsService:
		bad(21701, "The Messaging Service Sid "+service+" does not exist or does not belong to this account.")
	case from != "" && !e164Re.MatchString(from):
		bad(21212, "The 'From' number "+from+" is not a valid phone number, shortcode, or alphanumeric sender ID.")
	case from != "" && !ownsFrom:
		bad(21606, "The 'From' phone number provided ("+from+") is not a valid message-capable Twilio phone number for this destination/account.")
	case strings.TrimSpace(body) == "" && len(r.PostForm["MediaUrl"]) == 0:
		bad(21602, "Message body is required.")
	case len([]rune(body)) > 1600:
		bad(21617, "The concatenated message body exceeds the 1600 character limit.")
	default:
		if code, ok := magicTo[to]; ok {
			bad(code, magicMessage(code, to))
			return
		}
		if refused != 0 {
			bad(refused, magicMessage(refused, to))
			return
		}
		if code := checkTo(to); code != 0 {
			bad(code, magicMessage(code, to))
			return
		}
		if unsubscribed {
			bad(21610, "Attempt to send to unsubscribed recipient")
			return
		}
		m := s.create(to, from, service, body)
		if s.takeDrop() {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		writeJSON(w, http.StatusCreated, s.resource(m))
	}
}

func magicMessage(code int, to string) string {
	switch code {
	case 21211:
		return "The 'To' number " + to + " is not a valid phone number."
	case 21612:
		return "The 'To' phone number: " + to + ", is not currently reachable using the 'From' phone number via SMS."
	case 21408:
		return "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: " + to + "."
	case 21610:
		return "Attempt to send to unsubscribed recipient"
	case 21614:
		return "'To' number " + to + " is not a valid mobile number"
	}
	return "Invalid request"
}

// checkTo judges a To number the way Twilio's validation does: E.164 and
// valid (21211), and not a landline (21614).
func checkTo(to string) int {
	if !e164Re.MatchString(to) {
		return 21211
	}
	n, err := phonenumbers.Parse(to, "")
	if err != nil || !phonenumbers.IsValidNumber(n) {
		return 21211
	}
	if phonenumbers.GetNumberType(n) == phonenumbers.FIXED_LINE {
		return 21614
	}
	return 0
}

func (s *Sandbox) create(to, from, service, body string) *Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	_, _, segments := sms.Segments(body)
	m := &Message{SID: newSID("SM"), AccountSID: s.sid, To: to, From: from, MessagingServiceSID: service,
		Body: body, Status: "queued", DateCreated: now, DateUpdated: now, NumSegments: segments}
	if from == "" {
		m.Status = "accepted" // a messaging service picks the sender later
	}
	s.messages = append(s.messages, m)
	created := *m
	if !s.hold {
		m.Status, m.DateSent = "sent", now
	}
	return &created
}

func (s *Sandbox) takeDrop() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drops > 0 {
		s.drops--
		return true
	}
	return false
}

// resource is Twilio's Message resource JSON.
func (s *Sandbox) resource(m *Message) map[string]any {
	uri := "/" + apiVersion + "/Accounts/" + m.AccountSID + "/Messages/" + m.SID
	return map[string]any{
		"account_sid":           m.AccountSID,
		"api_version":           apiVersion,
		"body":                  m.Body,
		"date_created":          rfc2822(m.DateCreated),
		"date_sent":             rfc2822(m.DateSent),
		"date_updated":          rfc2822(m.DateUpdated),
		"direction":             "outbound-api",
		"error_code":            nil,
		"error_message":         nil,
		"from":                  nullable(m.From),
		"messaging_service_sid": nullable(m.MessagingServiceSID),
		"num_media":             "0",
		"num_segments":          strconv.Itoa(m.NumSegments),
		"price":                 nil,
		"price_unit":            "USD",
		"sid":                   m.SID,
		"status":                m.Status,
		"subresource_uris":      map[string]string{"media": uri + "/Media.json"},
		"to":                    m.To,
		"uri":                   uri + ".json",
	}
}

// rfc2822 formats a time as Twilio does ("Thu, 24 Aug 2023 05:01:45
// +0000"); the zero time is null.
func rfc2822(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC1123Z)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *Sandbox) fetchMessage(w http.ResponseWriter, r *http.Request) {
	sid, ok := strings.CutSuffix(r.PathValue("sid"), ".json")
	if !ok || !messageSIDRe.MatchString(sid) {
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	s.mu.Lock()
	var found *Message
	for _, m := range s.messages {
		if m.SID == sid {
			c := *m
			found = &c
		}
	}
	s.mu.Unlock()
	if found == nil {
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	writeJSON(w, http.StatusOK, s.resource(found))
}

// dateFilter is one DateSent condition.
type dateFilter struct {
	op   string // "=", "<=", ">="
	date time.Time
}

func (f dateFilter) match(sent time.Time) bool {
	if sent.IsZero() {
		return false // not sent yet: no date to compare
	}
	d := time.Date(sent.Year(), sent.Month(), sent.Day(), 0, 0, 0, 0, time.UTC)
	switch f.op {
	case "<=":
		return !d.After(f.date)
	case ">=":
		return !d.Before(f.date)
	}
	return d.Equal(f.date)
}

// parseDate reads a DateSent value: YYYY-MM-DD (documented), or an RFC 2822
// time, whose UTC date is used.
func parseDate(v string) (time.Time, bool) {
	if t, err := time.Parse("2006-01-02", v); err == nil {
		return t, true
	}
	if t, err := time.Parse(time.RFC1123Z, v); err == nil {
		t = t.UTC()
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC), true
	}
	return time.Time{}, false
}

func (s *Sandbox) listMessages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var filters []dateFilter
	// "DateSent>=2026-11-22" arrives as key "DateSent>" with value
	// "2026-11-22"; "DateSent<=…" as "DateSent<".
	for key, op := range map[string]string{"DateSent": "=", "DateSent<": "<=", "DateSent>": ">="} {
		if v := q.Get(key); v != "" {
			d, ok := parseDate(v)
			if !ok {
				writeError(w, http.StatusBadRequest, 20001, "Invalid value for "+key+": use YYYY-MM-DD")
				return
			}
			filters = append(filters, dateFilter{op: op, date: d})
		}
	}
	pageSize := 50
	if v := q.Get("PageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, 20001, "PageSize must be between 1 and 1000")
			return
		}
		pageSize = n
	}
	offset, page := 0, 0
	if tok := q.Get("PageToken"); tok != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(tok, "PA"))
		if !strings.HasPrefix(tok, "PA") || err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, 20001, "Invalid PageToken")
			return
		}
		offset = n
		page, _ = strconv.Atoi(q.Get("Page"))
	}
	to, from := q.Get("To"), q.Get("From")

	s.mu.Lock()
	var all []Message
	for _, m := range s.messages {
		if (to != "" && m.To != to) || (from != "" && m.From != from) {
			continue
		}
		if !slices.ContainsFunc(filters, func(f dateFilter) bool { return !f.match(m.DateSent) }) {
			all = append(all, *m)
		}
	}
	s.mu.Unlock()
	// Most recent first.
	slices.Reverse(all)
	slices.SortStableFunc(all, func(a, b Message) int { return b.DateCreated.Compare(a.DateCreated) })

	end := min(offset+pageSize, len(all))
	pageMsgs := []map[string]any{}
	if offset < len(all) {
		for i := range all[offset:end] {
			pageMsgs = append(pageMsgs, s.resource(&all[offset+i]))
		}
	}
	uri := func(p, off int) string {
		v := url.Values{}
		for k, vs := range q {
			if k != "Page" && k != "PageToken" && k != "PageSize" {
				v[k] = vs
			}
		}
		v.Set("PageSize", strconv.Itoa(pageSize))
		v.Set("Page", strconv.Itoa(p))
		if off > 0 {
			v.Set("PageToken", fmt.Sprintf("PA%d", off))
		}
		return r.URL.Path + "?" + v.Encode()
	}
	env := map[string]any{
		"messages":          pageMsgs,
		"page":              page,
		"page_size":         pageSize,
		"start":             offset,
		"end":               max(offset, end-1),
		"uri":               uri(page, offset),
		"first_page_uri":    uri(0, 0),
		"next_page_uri":     nil,
		"previous_page_uri": nil,
	}
	if end < len(all) {
		env["next_page_uri"] = uri(page+1, end)
	}
	if offset > 0 {
		env["previous_page_uri"] = uri(max(page-1, 0), max(offset-pageSize, 0))
	}
	writeJSON(w, http.StatusOK, env)
}
