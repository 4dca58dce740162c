package sandbox_test

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
)

const ua = "sandbox tests (dev@pmsbridge.example)"

var now = time.Date(2026, 11, 22, 10, 0, 30, 0, time.UTC)

func setup(t *testing.T, opts ...sandbox.Option) *sandbox.Sandbox {
	t.Helper()
	sb := sandbox.NewDemo(append([]sandbox.Option{sandbox.WithClock(func() time.Time { return now })}, opts...)...)
	t.Cleanup(sb.Close)
	return sb
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

// call makes one raw request, as a Cliniko client would.
func call(t *testing.T, method, u, key, userAgent string, body io.Reader, ctype string) answer {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.SetBasicAuth(key, "")
	}
	if userAgent != "" {
		req.Header.Set("User-Agent", userAgent)
	}
	req.Header.Set("Accept", "application/json")
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{status: res.StatusCode, header: res.Header, body: b}
}

func TestAPIRules(t *testing.T) {
	sb := setup(t)
	au1 := sb.APIURL("au1")
	tests := []struct {
		desc, method, url, key, ua string
		wantStatus                 int
		wantBody                   string
	}{
		{"no user agent", "GET", au1 + "/user", sandbox.DemoAdminKey, "", 403, `{"message":"Requires a user agent"}`},
		{"user agent without email", "GET", au1 + "/user", sandbox.DemoAdminKey, "curl/8.0", 403, `{"message":"Requires a user agent"}`},
		{"no auth", "GET", au1 + "/user", "", ua, 401, "HTTP Basic: Access denied."},
		{"key on another shard", "GET", sb.APIURL("uk2") + "/user", sandbox.DemoAdminKey, ua, 401, "HTTP Basic: Access denied."},
		{"uk2 key on au1", "GET", au1 + "/user", sandbox.DemoUK2AdminKey, ua, 401, "HTTP Basic: Access denied."},
		{"not searchable", "GET", au1 + "/patients?q[]=" + url.QueryEscape("archived_at:*"), sandbox.DemoAdminKey, ua, 400, `{"message":"This column is not searchable."}`},
		{"per_page over 100", "GET", au1 + "/patients?per_page=101", sandbox.DemoAdminKey, ua, 400, `{"message":"per_page must be between 1 and 100"}`},
		{"archived patient", "GET", au1 + "/patients/" + sandbox.DemoArchivedPatientID, sandbox.DemoAdminKey, ua, 404, `{"message":"Not Found"}`},
		{"scheduler lists attachments", "GET", au1 + "/patient_attachments", sandbox.DemoSchedulerKey, ua, 403, ""},
		{"scheduler presign", "GET", au1 + "/patients/1001/attachment_presigned_post", sandbox.DemoSchedulerKey, ua, 403, ""},
		{"scheduler reads a patient", "GET", au1 + "/patients/1001", sandbox.DemoSchedulerKey, ua, 200, ""},
		{"unknown path", "GET", au1 + "/nothing", sandbox.DemoAdminKey, ua, 404, `{"message":"Not Found"}`},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			a := call(t, tt.method, tt.url, tt.key, tt.ua, nil, "")
			got := []any{a.status}
			want := []any{tt.wantStatus}
			if tt.wantBody != "" || tt.wantStatus == 403 {
				got, want = append(got, strings.TrimSpace(string(a.body))), append(want, tt.wantBody)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("[status body] (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPatientListing(t *testing.T) {
	sb := setup(t)
	a := call(t, "GET", sb.APIURL("au1")+"/patients?per_page=5&sort=updated_at", sandbox.DemoAdminKey, ua, nil, "")
	var page struct {
		Patients []struct {
			ID          string  `json:"id"`
			DateOfBirth *string `json:"date_of_birth"`
		} `json:"patients"`
		Total int               `json:"total_entries"`
		Links map[string]string `json:"links"`
	}
	if err := json.Unmarshal(a.body, &page); err != nil {
		t.Fatal(err)
	}
	if page.Total != 11 || len(page.Patients) != 5 || page.Patients[0].ID != "1001" {
		t.Errorf("total %d, %d patients, first %v", page.Total, len(page.Patients), page.Patients)
	}
	wantNext := sb.APIURL("au1") + "/patients?page=2&per_page=5&sort=updated_at"
	if diff := cmp.Diff(map[string]string{"self": sb.APIURL("au1") + "/patients?page=1&per_page=5&sort=updated_at", "next": wantNext}, page.Links); diff != "" {
		t.Errorf("links (-want +got):\n%s", diff)
	}
	a = call(t, "GET", sb.APIURL("au1")+"/patients?q[]="+url.QueryEscape("updated_at:>=2025-06-01T10:45:00Z")+"&sort=updated_at:desc", sandbox.DemoAdminKey, ua, nil, "")
	_ = json.Unmarshal(a.body, &page)
	var ids []string
	for _, p := range page.Patients {
		ids = append(ids, p.ID)
	}
	if diff := cmp.Diff([]string{"836447129235882009", "836447129235882008"}, ids); diff != "" {
		t.Errorf("filtered (-want +got):\n%s", diff)
	}
}

func TestRateLimitWindows(t *testing.T) {
	clock := now
	sb := setup(t, sandbox.WithRateLimit(2))
	sb.SetClock(func() time.Time { return clock })
	get := func(key string) answer { return call(t, "GET", sb.APIURL("au1")+"/user", key, ua, nil, "") }
	var got []int
	for range 3 {
		got = append(got, get(sandbox.DemoAdminKey).status)
	}
	got = append(got, get(sandbox.DemoPractitionerKey).status) // another user has its own budget
	a := get(sandbox.DemoAdminKey)
	got = append(got, a.status)
	clock = clock.Add(30 * time.Second) // next window
	got = append(got, get(sandbox.DemoAdminKey).status)
	if diff := cmp.Diff([]int{200, 200, 429, 200, 429, 200}, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	if r, want := a.header.Get("X-RateLimit-Reset"), time.Date(2026, 11, 22, 10, 1, 0, 0, time.UTC).Unix(); r != itoa(int(want)) {
		t.Errorf("X-RateLimit-Reset = %q", r)
	}
	if sb.RateLimited() != 2 {
		t.Errorf("RateLimited() = %d", sb.RateLimited())
	}
}

// upload runs presign and the storage POST with a form built by edit.
func storagePost(t *testing.T, sb *sandbox.Sandbox, edit func(fields map[string]string, w *multipart.Writer), auth string) (answer, string, map[string]string) {
	t.Helper()
	a := call(t, "GET", sb.APIURL("au1")+"/patients/1001/attachment_presigned_post", sandbox.DemoAdminKey, ua, nil, "")
	var pp struct {
		URL    string            `json:"url"`
		Fields map[string]string `json:"fields"`
	}
	if err := json.Unmarshal(a.body, &pp); err != nil || a.status != 200 {
		t.Fatalf("presign: %d %s", a.status, a.body)
	}
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	edit(pp.Fields, w)
	_ = w.Close()
	req, _ := http.NewRequest("POST", pp.URL, &buf)
	req.Header.Set("Content-Type", w.FormDataContentType())
	if auth != "" {
		req.SetBasicAuth(auth, "")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{status: res.StatusCode, body: b}, pp.URL, pp.Fields
}

func writeFields(fields map[string]string, w *multipart.Writer, skip string) {
	for k, v := range fields {
		if k != skip {
			_ = w.WriteField(k, v)
		}
	}
}

func writeFile(w *multipart.Writer) {
	f, _ := w.CreateFormFile("file", "scan.pdf")
	_, _ = f.Write([]byte("%PDF-1.4"))
}

func TestStorage(t *testing.T) {
	tests := []struct {
		desc       string
		edit       func(map[string]string, *multipart.Writer)
		auth       string
		wantStatus int
		wantInBody string
	}{
		{"all fields, file last", func(f map[string]string, w *multipart.Writer) { writeFields(f, w, ""); writeFile(w) }, "", 201, "<Key>1/patients/1001/attachments/temp/"},
		{"x-amz-date dropped", func(f map[string]string, w *multipart.Writer) { writeFields(f, w, "x-amz-date"); writeFile(w) }, "", 400, "x-amz-date"},
		{"file not last", func(f map[string]string, w *multipart.Writer) {
			writeFields(f, w, "acl")
			writeFile(w)
			_ = w.WriteField("acl", f["acl"])
		}, "", 400, "last field"},
		{"field changed", func(f map[string]string, w *multipart.Writer) {
			f["acl"] = "public-read"
			writeFields(f, w, "")
			writeFile(w)
		}, "", 403, "Policy Condition failed"},
		{"Cliniko auth sent to storage", func(f map[string]string, w *multipart.Writer) { writeFields(f, w, ""); writeFile(w) }, sandbox.DemoAdminKey, 400, "Only one auth mechanism"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			sb := setup(t)
			a, _, _ := storagePost(t, sb, tt.edit, tt.auth)
			if a.status != tt.wantStatus || !strings.Contains(string(a.body), tt.wantInBody) {
				t.Errorf("got %d %s; want %d containing %q", a.status, a.body, tt.wantStatus, tt.wantInBody)
			}
		})
	}
}

func TestCreateAttachmentOnce(t *testing.T) {
	sb := setup(t)
	a, storageURL, _ := storagePost(t, sb, func(f map[string]string, w *multipart.Writer) { writeFields(f, w, ""); writeFile(w) }, "")
	var pr struct {
		Key      string `xml:"Key"`
		Location string `xml:"Location"`
	}
	if err := xmlUnmarshal(a.body, &pr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(pr.Location, "%2F") {
		t.Errorf("Location %q is not percent-encoded", pr.Location)
	}
	create := func(uploadURL string) answer {
		body, _ := json.Marshal(map[string]string{"patient_id": "1001", "upload_url": uploadURL, "description": "Scan"})
		return call(t, "POST", sb.APIURL("au1")+"/patient_attachments", sandbox.DemoAdminKey, ua, bytes.NewReader(body), "application/json")
	}
	got := []int{create(pr.Location).status, create(storageURL + pr.Key).status, create(storageURL + pr.Key).status}
	if diff := cmp.Diff([]int{422, 201, 422}, got); diff != "" {
		t.Errorf("Location, then Key, then Key again (-want +got):\n%s", diff)
	}
	at := sb.Attachments("1001")
	if len(at) != 1 || at[0].Filename != "scan.pdf" || string(at[0].Content) != "%PDF-1.4" {
		t.Fatalf("attachments %+v", at)
	}
	c := call(t, "GET", sb.APIURL("au1")+"/patient_attachments/"+at[0].ID+"/content", sandbox.DemoAdminKey, ua, nil, "")
	r := call(t, "GET", sb.APIURL("au1")+"/patient_attachments/"+at[0].ID+"/content", sandbox.DemoReceptionistKey, ua, nil, "")
	if c.status != 200 || string(c.body) != "%PDF-1.4" || r.status != 403 {
		t.Errorf("content: admin %d %q, receptionist %d", c.status, c.body, r.status)
	}
}

func TestHTMLPages(t *testing.T) {
	sb := setup(t)
	sb.SetAppURL("https://au.physitrack.example")
	get := func(p string) string {
		t.Helper()
		res, err := http.Get(sb.URL() + p)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			t.Fatalf("GET %s: %d", p, res.StatusCode)
		}
		return string(b)
	}
	index := get("/")
	for _, want := range []string{"Cliniko sandbox", "Demo Physio Clinic", "Harbour Street Physiotherapy", "Zoë", sandbox.DemoAdminKey} {
		if !strings.Contains(index, want) {
			t.Errorf("index lacks %q", want)
		}
	}
	page := get("/sandbox/patients/1001")
	if !strings.Contains(page, `href="https://au.physitrack.example/cliniko_patient_import?patient_id=1001"`) {
		t.Errorf("patient page lacks the Open in pmsbridge link")
	}
	res, err := http.PostForm(sb.URL()+"/sandbox/patients/1001/date_of_birth", url.Values{"date_of_birth": {"1985-03-15"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	p, _ := sb.Patient("1001")
	if p.DateOfBirth == nil || *p.DateOfBirth != "1985-03-15" || !p.UpdatedAt.Equal(now.Truncate(time.Second)) {
		t.Errorf("after edit: dob %v updated %s", p.DateOfBirth, p.UpdatedAt)
	}
}

func TestDemoSeed(t *testing.T) {
	sb := setup(t)
	accts := sb.Accounts()
	var got []string
	for _, a := range accts {
		got = append(got, a.Shard+" "+a.Name+" "+itoa(len(a.Patients()))+" patients")
	}
	if diff := cmp.Diff([]string{"au1 Demo Physio Clinic 12 patients", "uk2 Harbour Street Physiotherapy 2 patients"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestMounted serves the sandbox under a path prefix of another server.
func TestMounted(t *testing.T) {
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	sb := sandbox.NewDemo(sandbox.WithURL(srv.URL + "/cliniko"))
	t.Cleanup(sb.Close)
	mux.Handle("/cliniko/", http.StripPrefix("/cliniko", sb))
	if got, want := sb.BaseURL(), srv.URL+"/cliniko/{shard}/v1"; got != want {
		t.Errorf("BaseURL() = %q, want %q", got, want)
	}
	a := call(t, "GET", sb.APIURL("au1")+"/patients?per_page=1", sandbox.DemoAdminKey, ua, nil, "")
	if a.status != 200 || !strings.Contains(string(a.body), `"next":"`+srv.URL+`/cliniko/au1/v1/patients?page=2`) {
		t.Errorf("got %d %s", a.status, a.body)
	}
	res, err := http.Get(srv.URL + "/cliniko/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(b), `href="/cliniko/sandbox/patients/1001"`) {
		t.Errorf("index links do not carry the prefix")
	}
}

func TestDemoAdmin(t *testing.T) {
	sb := setup(t)
	u := sb.DemoAdmin()
	got := []string{u.ID, u.Title, u.FirstName, u.LastName, u.Email, u.Role}
	if diff := cmp.Diff([]string{"1", "Dr", "Demo", "Practitioner", "demo@clinic.example", "administrator"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestDropResponseNext: the dropped call takes effect (the attachment is
// made) but its answer is a 502; the next call answers normally.
func TestDropResponseNext(t *testing.T) {
	sb := setup(t)
	a, storageURL, _ := storagePost(t, sb, func(f map[string]string, w *multipart.Writer) { writeFields(f, w, ""); writeFile(w) }, "")
	var pr struct {
		Key string `xml:"Key"`
	}
	if err := xmlUnmarshal(a.body, &pr); err != nil {
		t.Fatal(err)
	}
	sb.DropResponseNext("create_attachment", 1)
	body, _ := json.Marshal(map[string]string{"patient_id": "1001", "upload_url": storageURL + pr.Key, "description": "Scan"})
	got := call(t, "POST", sb.APIURL("au1")+"/patient_attachments", sandbox.DemoAdminKey, ua, bytes.NewReader(body), "application/json")
	if got.status != http.StatusBadGateway {
		t.Errorf("dropped create: status %d, want 502", got.status)
	}
	if n := len(sb.Attachments("1001")); n != 1 {
		t.Errorf("attachments after the dropped create = %d, want 1", n)
	}
	if u := call(t, "GET", sb.APIURL("au1")+"/user", sandbox.DemoAdminKey, ua, nil, ""); u.status != 200 {
		t.Errorf("next call: status %d, want 200", u.status)
	}
}
