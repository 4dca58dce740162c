package twiliotest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge/sms/twiliotest"
)

var now = time.Date(2026, 11, 22, 10, 2, 0, 0, time.UTC)

func setup(t *testing.T, opts ...twiliotest.Option) *twiliotest.Sandbox {
	t.Helper()
	sb := twiliotest.New(append([]twiliotest.Option{twiliotest.WithClock(func() time.Time { return now })}, opts...)...)
	t.Cleanup(sb.Close)
	return sb
}

type answer struct {
	status int
	header http.Header
	json   map[string]any
	raw    string
}

func (a answer) code() int {
	c, _ := a.json["code"].(float64)
	return int(c)
}

// call makes one raw request as a Twilio client would.
func call(t *testing.T, method, u, sid, token string, form url.Values) answer {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if sid != "" {
		req.SetBasicAuth(sid, token)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	a := answer{status: res.StatusCode, header: res.Header, raw: string(b)}
	_ = json.Unmarshal(b, &a.json)
	return a
}

func messagesURL(sb *twiliotest.Sandbox) string {
	return sb.URL() + "/2010-04-01/Accounts/" + sb.AccountSID() + "/Messages.json"
}

func send(t *testing.T, sb *twiliotest.Sandbox, form url.Values) answer {
	t.Helper()
	return call(t, http.MethodPost, messagesURL(sb), sb.AccountSID(), sb.AuthToken(), form)
}

func TestAuth(t *testing.T) {
	t.Parallel()
	sb := setup(t)
	form := url.Values{"To": {"+61412345678"}, "From": {twiliotest.DemoFrom}, "Body": {"hi"}}
	for _, tc := range []struct{ desc, sid, token string }{
		{"no credentials", "", ""},
		{"wrong token", sb.AccountSID(), "nope"},
		{"wrong sid", "AC" + strings.Repeat("1", 32), sb.AuthToken()},
	} {
		a := call(t, http.MethodPost, messagesURL(sb), tc.sid, tc.token, form)
		if a.status != 401 || a.code() != 20003 || a.json["message"] != "Authenticate" ||
			a.json["more_info"] != "https://www.twilio.com/docs/errors/20003" || a.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: %d %s", tc.desc, a.status, a.raw)
		}
	}
	other := sb.URL() + "/2010-04-01/Accounts/AC" + strings.Repeat("2", 32) + "/Messages.json"
	if a := call(t, http.MethodPost, other, sb.AccountSID(), sb.AuthToken(), form); a.status != 404 || a.code() != 20404 {
		t.Errorf("another account's path: %d %s", a.status, a.raw)
	}
	if n := len(sb.Messages()); n != 0 {
		t.Fatalf("%d messages created", n)
	}
}

func TestCreateMessage(t *testing.T) {
	t.Parallel()
	sb := setup(t)
	a := send(t, sb, url.Values{"To": {"+61412345678"}, "From": {twiliotest.DemoFrom}, "Body": {"Your code is qwertyui"}})
	if a.status != 201 {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	sid, _ := a.json["sid"].(string)
	if !regexp.MustCompile(`^SM[0-9a-f]{32}$`).MatchString(sid) {
		t.Errorf("sid %q", sid)
	}
	want := map[string]any{
		"account_sid": sb.AccountSID(), "api_version": "2010-04-01", "body": "Your code is qwertyui",
		"date_created": "Sun, 22 Nov 2026 10:02:00 +0000", "date_sent": nil, "date_updated": "Sun, 22 Nov 2026 10:02:00 +0000",
		"direction": "outbound-api", "error_code": nil, "error_message": nil, "from": twiliotest.DemoFrom,
		"messaging_service_sid": nil, "num_media": "0", "num_segments": "1", "price": nil, "price_unit": "USD",
		"sid": sid, "status": "queued", "to": "+61412345678",
		"uri":              "/2010-04-01/Accounts/" + sb.AccountSID() + "/Messages/" + sid + ".json",
		"subresource_uris": map[string]any{"media": "/2010-04-01/Accounts/" + sb.AccountSID() + "/Messages/" + sid + "/Media.json"},
	}
	if d := cmp.Diff(want, a.json); d != "" {
		t.Errorf("201 body (-want +got):\n%s", d)
	}
	if _, err := time.Parse(time.RFC1123Z, a.json["date_created"].(string)); err != nil {
		t.Errorf("date_created is not RFC 2822: %v", err)
	}
	// Sent at once (the queue is not held): fetching shows it.
	f := call(t, http.MethodGet, sb.URL()+"/2010-04-01/Accounts/"+sb.AccountSID()+"/Messages/"+sid+".json", sb.AccountSID(), sb.AuthToken(), nil)
	if f.status != 200 || f.json["status"] != "sent" || f.json["date_sent"] != "Sun, 22 Nov 2026 10:02:00 +0000" {
		t.Errorf("fetch: %d %s", f.status, f.raw)
	}
	missing := call(t, http.MethodGet, sb.URL()+"/2010-04-01/Accounts/"+sb.AccountSID()+"/Messages/SM"+strings.Repeat("0", 32)+".json", sb.AccountSID(), sb.AuthToken(), nil)
	if missing.status != 404 || missing.code() != 20404 {
		t.Errorf("fetch unknown: %d %s", missing.status, missing.raw)
	}
}

func TestCreateThroughMessagingService(t *testing.T) {
	t.Parallel()
	sb := setup(t)
	a := send(t, sb, url.Values{"To": {"+61412345678"}, "MessagingServiceSid": {twiliotest.DemoMessagingServiceSID}, "Body": {"hi"}})
	if a.status != 201 || a.json["status"] != "accepted" || a.json["from"] != nil || a.json["messaging_service_sid"] != twiliotest.DemoMessagingServiceSID {
		t.Fatalf("%d %s", a.status, a.raw)
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	sb := setup(t)
	sb.Unsubscribe("+61400111222")
	ok := url.Values{"To": {"+61412345678"}, "From": {twiliotest.DemoFrom}, "Body": {"hi"}}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for kk, vv := range ok {
			f[kk] = vv
		}
		if v == "" {
			f.Del(k)
		} else {
			f.Set(k, v)
		}
		return f
	}
	tests := []struct {
		desc string
		form url.Values
		code int
	}{
		{"no To", with("To", ""), 21604},
		{"no From and no service", with("From", ""), 21603},
		{"no Body", with("Body", ""), 21602},
		{"Body too long", with("Body", strings.Repeat("a", 1601)), 21617},
		{"From not a number", with("From", "Clinic"), 21212},
		{"From not the account's", with("From", "+15005550007"), 21606},
		{"bad messaging service", url.Values{"To": {"+61412345678"}, "MessagingServiceSid": {"MG123"}, "Body": {"hi"}}, 21705},
		{"unknown messaging service", url.Values{"To": {"+61412345678"}, "MessagingServiceSid": {"MG" + strings.Repeat("a", 32)}, "Body": {"hi"}}, 21701},
		{"To not E.164", with("To", "0412 345 678"), 21211},
		{"To not a valid number", with("To", "+61412345"), 21211},
		{"To in Ofcom's drama range", with("To", "+447700900123"), 21211},
		{"To a landline", with("To", "+61293744000"), 21614},
		{"To unsubscribed", with("To", "+61400111222"), 21610},
		{"magic invalid", with("To", "+15005550001"), 21211},
		{"magic unroutable", with("To", "+15005550002"), 21612},
		{"magic no permission", with("To", "+15005550003"), 21408},
		{"magic blocked", with("To", "+15005550004"), 21610},
		{"magic not SMS-capable", with("To", "+15005550009"), 21614},
	}
	for _, tc := range tests {
		a := send(t, sb, tc.form)
		if a.status != 400 || a.code() != tc.code || int(a.json["status"].(float64)) != 400 ||
			a.json["more_info"] != "https://www.twilio.com/docs/errors/"+strconv.Itoa(tc.code) || a.json["message"] == "" {
			t.Errorf("%s: %d %s, want 400 code %d", tc.desc, a.status, a.raw, tc.code)
		}
	}
	if n := len(sb.Messages()); n != 0 {
		t.Fatalf("%d messages created", n)
	}
	sb.Resubscribe("+61400111222")
	if a := send(t, sb, with("To", "+61400111222")); a.status != 201 {
		t.Fatalf("after START: %d %s", a.status, a.raw)
	}
}

func TestListFiltersAndPages(t *testing.T) {
	t.Parallel()
	clock := now
	sb := setup(t, twiliotest.WithClock(func() time.Time { return clock }))
	sb.AddSender("+61480000000")
	for i := range 5 { // day 1: five to A from DemoFrom
		clock = now.Add(time.Duration(i) * time.Minute)
		send(t, sb, url.Values{"To": {"+61412345678"}, "From": {twiliotest.DemoFrom}, "Body": {"a" + strconv.Itoa(i)}})
	}
	clock = now.Add(24 * time.Hour) // day 2: one to A from the other number, one to B
	send(t, sb, url.Values{"To": {"+61412345678"}, "From": {"+61480000000"}, "Body": {"a5"}})
	send(t, sb, url.Values{"To": {"+61400222333"}, "From": {twiliotest.DemoFrom}, "Body": {"b0"}})
	sb.HoldQueue(true) // one still queued, no date_sent
	send(t, sb, url.Values{"To": {"+61412345678"}, "From": {twiliotest.DemoFrom}, "Body": {"a6"}})

	list := func(q url.Values) answer {
		return call(t, http.MethodGet, messagesURL(sb)+"?"+q.Encode(), sb.AccountSID(), sb.AuthToken(), nil)
	}
	bodies := func(a answer) []string {
		var out []string
		for _, m := range a.json["messages"].([]any) {
			out = append(out, m.(map[string]any)["body"].(string))
		}
		return out
	}
	tests := []struct {
		desc string
		q    url.Values
		want []string
	}{
		{"everything, newest first", url.Values{}, []string{"a6", "b0", "a5", "a4", "a3", "a2", "a1", "a0"}},
		{"To", url.Values{"To": {"+61412345678"}}, []string{"a6", "a5", "a4", "a3", "a2", "a1", "a0"}},
		{"To and From", url.Values{"To": {"+61412345678"}, "From": {"+61480000000"}}, []string{"a5"}},
		{"DateSent>= day 2 (a queued message has no date_sent)", url.Values{"DateSent>": {"2026-11-23"}}, []string{"b0", "a5"}},
		{"DateSent<= day 1", url.Values{"DateSent<": {"2026-11-22"}, "To": {"+61412345678"}}, []string{"a4", "a3", "a2", "a1", "a0"}},
		{"DateSent = day 2", url.Values{"DateSent": {"2026-11-23"}, "To": {"+61400222333"}}, []string{"b0"}},
	}
	for _, tc := range tests {
		a := list(tc.q)
		if a.status != 200 {
			t.Fatalf("%s: %d %s", tc.desc, a.status, a.raw)
		}
		if d := cmp.Diff(tc.want, bodies(a)); d != "" {
			t.Errorf("%s (-want +got):\n%s", tc.desc, d)
		}
	}
	// The raw query form Twilio documents: DateSent>=YYYY-MM-DD.
	raw := call(t, http.MethodGet, messagesURL(sb)+"?DateSent%3E=2026-11-23&To=%2B61412345678", sb.AccountSID(), sb.AuthToken(), nil)
	if d := cmp.Diff([]string{"a5"}, bodies(raw)); d != "" {
		t.Errorf("DateSent>= as sent on the wire (-want +got):\n%s", d)
	}

	// Pages of 3 through next_page_uri.
	var got []string
	next := "/2010-04-01/Accounts/" + sb.AccountSID() + "/Messages.json?To=%2B61412345678&PageSize=3"
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		a := call(t, http.MethodGet, sb.URL()+next, sb.AccountSID(), sb.AuthToken(), nil)
		if a.status != 200 || int(a.json["page_size"].(float64)) != 3 || int(a.json["page"].(float64)) != pages {
			t.Fatalf("page %d: %d %s", pages, a.status, a.raw)
		}
		for _, k := range []string{"first_page_uri", "uri", "start", "end", "previous_page_uri", "next_page_uri"} {
			if _, ok := a.json[k]; !ok {
				t.Errorf("envelope lacks %s", k)
			}
		}
		got = append(got, bodies(a)...)
		next, _ = a.json["next_page_uri"].(string)
	}
	if d := cmp.Diff([]string{"a6", "a5", "a4", "a3", "a2", "a1", "a0"}, got); d != "" {
		t.Errorf("pages (-want +got):\n%s", d)
	}
	for _, bad := range []url.Values{{"PageSize": {"0"}}, {"PageSize": {"1001"}}, {"PageToken": {"nope"}}, {"DateSent>": {"yesterday"}}} {
		if a := list(bad); a.status != 400 {
			t.Errorf("%v: %d", bad, a.status)
		}
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	sb := setup(t)
	form := url.Values{"To": {"+61412345678"}, "From": {twiliotest.DemoFrom}, "Body": {"hi"}}
	sb.SetRetryAfter(7 * time.Second)
	sb.FailNext(1, 429)
	sb.FailNextOp("create_message", 1, 503)
	sb.FailNextOp("list_messages", 1, 500)
	if a := send(t, sb, form); a.status != 429 || a.code() != 20429 || a.header.Get("Retry-After") != "7" {
		t.Errorf("first: %d %s %q", a.status, a.raw, a.header.Get("Retry-After"))
	}
	if a := send(t, sb, form); a.status != 503 || a.code() != 20503 {
		t.Errorf("second: %d %s", a.status, a.raw)
	}
	if a := call(t, http.MethodGet, messagesURL(sb), sb.AccountSID(), sb.AuthToken(), nil); a.status != 500 || a.code() != 20500 {
		t.Errorf("list: %d %s", a.status, a.raw)
	}
	sb.DropResponseNext(1)
	if a := send(t, sb, form); a.status != 502 {
		t.Errorf("dropped: %d %s", a.status, a.raw)
	}
	if a := send(t, sb, form); a.status != 201 {
		t.Errorf("after the faults: %d %s", a.status, a.raw)
	}
	if n := len(sb.Messages()); n != 2 {
		t.Fatalf("%d messages, want 2 (the dropped one was created)", n)
	}
	if got := sb.RequestCount("create_message"); got != 4 {
		t.Errorf("%d create requests", got)
	}
}

// TestRefuse: a number refused with a Twilio code gets that code (and no
// message) until the refusals are cleared.
func TestRefuse(t *testing.T) {
	t.Parallel()
	sb := setup(t)
	form := url.Values{"To": {"+61412345678"}, "From": {twiliotest.DemoFrom}, "Body": {"hi"}}
	for _, code := range []int{21211, 21612} {
		sb.Refuse("+61412345678", code)
		if a := send(t, sb, form); a.status != 400 || a.code() != code {
			t.Errorf("refused with %d: %d %s", code, a.status, a.raw)
		}
	}
	other := url.Values{"To": {"+61412345679"}, "From": {twiliotest.DemoFrom}, "Body": {"hi"}}
	if a := send(t, sb, other); a.status != 201 {
		t.Errorf("another number: %d %s", a.status, a.raw)
	}
	sb.ClearRefusals()
	if a := send(t, sb, form); a.status != 201 {
		t.Errorf("after ClearRefusals: %d %s", a.status, a.raw)
	}
	if n := len(sb.MessagesTo("+61412345678")); n != 1 {
		t.Errorf("%d messages to the refused number, want 1 (after clearing)", n)
	}
}

func TestOutboxPage(t *testing.T) {
	t.Parallel()
	sb := setup(t, twiliotest.WithURL("http://localhost:8080/dev/twilio"))
	srv := httptest.NewServer(http.StripPrefix("/dev/twilio", sb))
	t.Cleanup(srv.Close)
	api := srv.URL + "/dev/twilio/2010-04-01/Accounts/" + sb.AccountSID() + "/Messages.json"
	a := call(t, http.MethodPost, api, sb.AccountSID(), sb.AuthToken(),
		url.Values{"To": {"+61412345678"}, "From": {twiliotest.DemoFrom}, "Body": {"<Harbour> code qwertyui"}})
	if a.status != 201 {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	res, err := http.Get(srv.URL + "/dev/twilio/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	page := string(b)
	for _, want := range []string{"61412345678", "&lt;Harbour&gt; code qwertyui", "2026-11-22 10:02:00 UTC", "15005550006", "sent"} {
		if !strings.Contains(page, want) {
			t.Errorf("outbox lacks %q", want)
		}
	}
	if sb.URL() != "http://localhost:8080/dev/twilio" {
		t.Errorf("URL %q", sb.URL())
	}
}
