package cliniko_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/prometheus/client_golang/prometheus"
)

const testUA = "pmsbridge tests (dev@pmsbridge.example)"

// fixedNow is the sandbox clock of most tests: mid-minute, so a rate-limit
// window's end is known.
var fixedNow = time.Date(2026, 11, 22, 10, 0, 30, 0, time.UTC)

type bundle struct {
	sb     *sandbox.Sandbox
	client *cliniko.Client
	admin  cliniko.Auth

	mu    sync.Mutex
	calls []cliniko.Call
}

func (b *bundle) Calls() []cliniko.Call {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]cliniko.Call(nil), b.calls...)
}

// setup starts a demo sandbox (fixed clock, no rate limit unless sbOpts say
// otherwise) and a client on a fresh Redis database.
func setup(t *testing.T, cfg cliniko.Config, sbOpts ...sandbox.Option) *bundle {
	t.Helper()
	opts := append([]sandbox.Option{sandbox.WithClock(func() time.Time { return fixedNow }), sandbox.WithRateLimit(0)}, sbOpts...)
	b := &bundle{sb: sandbox.NewDemo(opts...)}
	t.Cleanup(b.sb.Close)
	cfg.BaseURL = b.sb.BaseURL()
	if cfg.UserAgent == "" {
		cfg.UserAgent = testUA
	}
	if cfg.RequestsPerMinute == 0 {
		cfg.RequestsPerMinute = 60000
	}
	if cfg.RetryBackoff == 0 {
		cfg.RetryBackoff = time.Millisecond
	}
	c, err := cliniko.New(cfg, cliniko.BudgetForTests(t),
		cliniko.WithClock(func() time.Time { return fixedNow }),
		cliniko.WithObserver(func(_ context.Context, c cliniko.Call) {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.calls = append(b.calls, c)
		}))
	if err != nil {
		t.Fatal(err)
	}
	b.client = c
	b.admin = cliniko.Auth{Key: sandbox.DemoAdminKey, UserID: sandbox.DemoAdminUserID}
	return b
}

func TestShardFromKey(t *testing.T) {
	tests := []struct {
		desc, key, want string
		wantErr         bool
	}{
		{desc: "no suffix is au1", key: "MS0xabcdef", want: "au1"},
		{desc: "au2", key: "MS0xabc-au2", want: "au2"},
		{desc: "upper case", key: "MS0xabc-UK2", want: "uk2"},
		{desc: "last hyphen counts", key: "a-b-ca1", want: "ca1"},
		{desc: "two digits", key: "k-eu12", want: "eu12"},
		{desc: "three digits", key: "k-au123", wantErr: true},
		{desc: "not a shard", key: "k-x1y", wantErr: true},
		{desc: "host injection", key: "k-au1.evil.example", wantErr: true},
		{desc: "empty suffix", key: "k-", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			got, err := cliniko.ShardFromKey(tt.key)
			if tt.wantErr {
				if !errors.Is(err, cliniko.ErrBadShard) {
					t.Fatalf("err = %v, want ErrBadShard", err)
				}
				if strings.Contains(err.Error(), tt.key) {
					t.Errorf("error text %q contains the key", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ShardFromKey(%q) = %q, %v; want %q", tt.key, got, err, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		desc    string
		cfg     cliniko.Config
		wantErr string
	}{
		{desc: "defaults with a user agent", cfg: cliniko.Config{UserAgent: testUA}},
		{desc: "no user agent", cfg: cliniko.Config{}, wantErr: "user agent is required"},
		{desc: "user agent without email", cfg: cliniko.Config{UserAgent: "pmsbridge"}, wantErr: "Name (email)"},
		{desc: "user agent with a bad email", cfg: cliniko.Config{UserAgent: "pmsbridge (dev@localhost)"}, wantErr: "email"},
		{desc: "base URL without shard", cfg: cliniko.Config{UserAgent: testUA, BaseURL: "https://api.cliniko.com/v1"}, wantErr: "{shard}"},
		{desc: "base URL not http", cfg: cliniko.Config{UserAgent: testUA, BaseURL: "ftp://{shard}.example/v1"}, wantErr: "http(s)"},
		{desc: "sandbox style URL", cfg: cliniko.Config{UserAgent: testUA, BaseURL: "http://127.0.0.1:1234/{shard}/v1"}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			err := tt.cfg.WithDefaults().Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("err = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
	got := cliniko.Config{}.WithDefaults()
	want := cliniko.Config{BaseURL: cliniko.DefaultBaseURL, RequestsPerMinute: 200, Timeout: 15 * time.Second,
		GetRetries: 2, RetryBackoff: 250 * time.Millisecond}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestGetUser(t *testing.T) {
	b := setup(t, cliniko.Config{})
	acct := b.sb.AddAccount("au1", "Legacy Clinic")
	legacy, _ := acct.AddUser("Lee", "Legacy", "lee@legacy.example", sandbox.RolePractitioner)
	acct.AddKey(legacy.ID, "MS0legacykeywithoutshardsuffix")
	tests := []struct {
		desc string
		key  string
		want cliniko.User
	}{
		{desc: "au1 administrator", key: sandbox.DemoAdminKey, want: cliniko.User{ID: "1", FirstName: "Demo",
			LastName: "Practitioner", Email: "demo@clinic.example", Role: "administrator", Shard: "au1", Active: true}},
		{desc: "scheduler may read /user", key: sandbox.DemoSchedulerKey, want: cliniko.User{ID: "4", FirstName: "Sam",
			LastName: "Scheduler", Email: "scheduler@clinic.example", Role: "scheduler", Shard: "au1", Active: true}},
		{desc: "uk2 account", key: sandbox.DemoUK2AdminKey, want: cliniko.User{ID: "836447129235881101", FirstName: "Olivia",
			LastName: "Bennett", Email: "olivia@harbour.example", Role: "administrator", Shard: "uk2", Active: true}},
		{desc: "key without suffix is au1", key: "MS0legacykeywithoutshardsuffix", want: cliniko.User{ID: legacy.ID, FirstName: "Lee",
			LastName: "Legacy", Email: "lee@legacy.example", Role: "practitioner", Shard: "au1", Active: true}},
		{desc: "suffix may be omitted from a suffixed key", key: strings.TrimSuffix(sandbox.DemoAdminKey, "-au1"),
			want: cliniko.User{ID: "1", FirstName: "Demo", LastName: "Practitioner", Email: "demo@clinic.example",
				Role: "administrator", Shard: "au1", Active: true}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			got, err := b.client.GetUser(context.Background(), cliniko.Auth{Key: tt.key})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	u, _ := b.client.GetUser(context.Background(), b.admin)
	if u.Name() != "Demo Practitioner" {
		t.Errorf("Name() = %q", u.Name())
	}
}

func TestGetPatient(t *testing.T) {
	b := setup(t, cliniko.Config{})
	tests := []struct {
		desc      string
		id        string
		wantFirst string
		wantDOB   *string
		wantEmail string
		wantPhone string
	}{
		{desc: "short au1 id, diacritics", id: "1001", wantFirst: "Zoë", wantDOB: ptr("1985-03-14"), wantEmail: "zoe.obrien@patient.example", wantPhone: "61400111222"},
		{desc: "18-digit id", id: "836447129235882001", wantFirst: "Łukasz", wantDOB: ptr("1990-07-21"), wantEmail: "lukasz@patient.example", wantPhone: "61400333444"},
		{desc: "null email, home phone only", id: "836447129235882002", wantFirst: "Γιώργος", wantDOB: ptr("1969-01-30"), wantPhone: "61295554444"},
		{desc: "null date of birth", id: "836447129235882005", wantFirst: "花子", wantDOB: nil, wantEmail: "hanako@patient.example", wantPhone: "61400555666"},
		{desc: "empty date of birth", id: "836447129235882006", wantFirst: "민준", wantDOB: ptr(""), wantEmail: "minjun.kim@patient.example", wantPhone: "61390001111"},
		{desc: "invalid date of birth kept raw", id: "836447129235882008", wantFirst: "Siobhán", wantDOB: ptr("0000-00-00"), wantEmail: "siobhan@patient.example", wantPhone: "61400777888"},
		{desc: "Arabic", id: "836447129235882007", wantFirst: "فاطمة", wantDOB: ptr("1988-08-08"), wantEmail: "fatima@patient.example", wantPhone: "61400666777"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			p, err := b.client.GetPatient(context.Background(), b.admin, tt.id)
			if err != nil {
				t.Fatal(err)
			}
			got := []any{p.ID, p.FirstName, p.DateOfBirth, p.Email, p.Mobile(), p.ArchivedAt == nil, p.UpdatedAt.IsZero()}
			want := []any{tt.id, tt.wantFirst, tt.wantDOB, tt.wantEmail, tt.wantPhone, true, false}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("[id first dob email mobile notArchived zeroUpdated] (-want +got):\n%s", diff)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestCauses drives every cause code through the real sandbox.
func TestCauses(t *testing.T) {
	ctx := context.Background()
	admin := cliniko.Auth{Key: sandbox.DemoAdminKey, UserID: sandbox.DemoAdminUserID}
	getPatient := func(id string) func(*bundle, cliniko.Auth) error {
		return func(b *bundle, a cliniko.Auth) error { _, err := b.client.GetPatient(ctx, a, id); return err }
	}
	getUser := func(b *bundle, a cliniko.Auth) error { _, err := b.client.GetUser(ctx, a); return err }
	upload := func(b *bundle, a cliniko.Auth) error {
		_, err := b.client.UploadAttachment(ctx, a, sandbox.DemoPatientID, "p.pdf", "Programme", []byte("%PDF-1.4"))
		return err
	}
	tests := []struct {
		desc       string
		cfg        cliniko.Config
		arrange    func(*sandbox.Sandbox)
		auth       cliniko.Auth
		call       func(*bundle, cliniko.Auth) error
		wantCause  pmsbridge.Cause
		wantStatus int
		wantOp     string
		// requests of wantOp the sandbox received (retries included)
		wantRequests int
		wantRetryAt  time.Time
		wantIs       error
	}{
		{desc: "revoked key", arrange: func(sb *sandbox.Sandbox) { sb.RevokeKey(sandbox.DemoAdminKey) },
			auth: admin, call: getUser, wantCause: pmsbridge.CauseClinikoUnauthorized, wantStatus: 401, wantOp: "get_user", wantRequests: 1},
		{desc: "unknown key", auth: cliniko.Auth{Key: "MS0nosuchkey-au1"}, call: getUser,
			wantCause: pmsbridge.CauseClinikoUnauthorized, wantStatus: 401, wantOp: "get_user", wantRequests: 1},
		{desc: "wrong shard", auth: cliniko.Auth{Key: strings.TrimSuffix(sandbox.DemoAdminKey, "-au1") + "-au2"}, call: getUser,
			wantCause: pmsbridge.CauseClinikoUnauthorized, wantStatus: 401, wantOp: "get_user", wantRequests: 1},
		{desc: "bad shard suffix: nothing sent", auth: cliniko.Auth{Key: "MS0abc-x1y"}, call: getUser,
			wantCause: pmsbridge.CauseClinikoUnauthorized, wantOp: "get_user", wantRequests: 0, wantIs: cliniko.ErrBadShard},
		{desc: "scheduler may not upload", auth: cliniko.Auth{Key: sandbox.DemoSchedulerKey, UserID: "4"}, call: upload,
			wantCause: pmsbridge.CauseClinikoForbidden, wantStatus: 403, wantOp: "presign", wantRequests: 1},
		{desc: "role changed to scheduler", arrange: func(sb *sandbox.Sandbox) { sb.SetRole("1", sandbox.RoleScheduler) },
			auth: admin, call: upload, wantCause: pmsbridge.CauseClinikoForbidden, wantStatus: 403, wantOp: "presign", wantRequests: 1},
		{desc: "archived patient", auth: admin, call: getPatient(sandbox.DemoArchivedPatientID),
			wantCause: pmsbridge.CauseClinikoNotFound, wantStatus: 404, wantOp: "get_patient", wantRequests: 1},
		{desc: "patient of another account", auth: admin, call: getPatient("836447129235881201"),
			wantCause: pmsbridge.CauseClinikoNotFound, wantStatus: 404, wantOp: "get_patient", wantRequests: 1},
		{desc: "not an id: nothing sent", auth: admin, call: getPatient("1001/../users"),
			wantCause: pmsbridge.CauseInvalidPayload, wantOp: "get_patient", wantRequests: 0},
		{desc: "429 injected: RetryAt from X-RateLimit-Reset, not retried", arrange: func(sb *sandbox.Sandbox) { sb.FailNext(1, 429) },
			auth: admin, call: getUser, wantCause: pmsbridge.CauseClinikoRateLimited, wantStatus: 429, wantOp: "get_user", wantRequests: 1,
			wantRetryAt: time.Date(2026, 11, 22, 10, 1, 0, 0, time.UTC)},
		{desc: "429 from the sandbox's own limit", arrange: func(sb *sandbox.Sandbox) {
			sb.SetRateLimit(1)
			_, _ = sb.Patient("1001")
		}, auth: admin, call: func(b *bundle, a cliniko.Auth) error {
			if err := getUser(b, a); err != nil {
				return fmt.Errorf("first call: %w", err)
			}
			return getUser(b, a)
		}, wantCause: pmsbridge.CauseClinikoRateLimited, wantStatus: 429, wantOp: "get_user", wantRequests: 2,
			wantRetryAt: time.Date(2026, 11, 22, 10, 1, 0, 0, time.UTC)},
		{desc: "5xx exhausts GET retries", cfg: cliniko.Config{GetRetries: 2}, arrange: func(sb *sandbox.Sandbox) { sb.FailNext(3, 502) },
			auth: admin, call: getPatient("1001"), wantCause: pmsbridge.CauseClinikoUnavailable, wantStatus: 502, wantOp: "get_patient", wantRequests: 3},
		{desc: "POST never retried", arrange: func(sb *sandbox.Sandbox) { sb.FailNextOp("create_attachment", 1, 503) },
			auth: admin, call: upload, wantCause: pmsbridge.CauseClinikoUnavailable, wantStatus: 503, wantOp: "create_attachment", wantRequests: 1},
		{desc: "storage retried once only", arrange: func(sb *sandbox.Sandbox) { sb.FailNextOp("storage_upload", 2, 500) },
			auth: admin, call: upload, wantCause: pmsbridge.CauseClinikoUnavailable, wantStatus: 500, wantOp: "storage_upload", wantRequests: 2},
		// The timeout leaves a loaded machine ample time for each request to
		// reach the sandbox (which counts it) before the client gives up.
		{desc: "timeout, retried, then given up", cfg: cliniko.Config{Timeout: 400 * time.Millisecond, GetRetries: 1},
			arrange: func(sb *sandbox.Sandbox) { sb.SetLatency(5 * time.Second) }, auth: admin, call: getUser,
			wantCause: pmsbridge.CauseClinikoUnavailable, wantOp: "get_user", wantRequests: 2, wantIs: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.cfg)
			if tt.arrange != nil {
				tt.arrange(b.sb)
			}
			err := tt.call(b, tt.auth)
			var e *cliniko.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want a *cliniko.Error", err)
			}
			got := []any{e.Op, e.Status, pmsbridge.CauseOf(err), b.sb.RequestCount(tt.wantOp), e.RetryAt}
			want := []any{tt.wantOp, tt.wantStatus, tt.wantCause, tt.wantRequests, tt.wantRetryAt}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("[op status cause requests retryAt] (-want +got):\n%s", diff)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.wantIs)
			}
			if e.Temporary() != tt.wantCause.Transient() {
				t.Errorf("Temporary() = %v for %s", e.Temporary(), tt.wantCause)
			}
			for _, secret := range []string{tt.auth.Key, "Zoë", "O'Brien"} {
				if secret != "" && (strings.Contains(err.Error(), secret) || strings.Contains(pmsbridge.MessageOf(err), secret)) {
					t.Errorf("error text leaks %q: %v", secret, err)
				}
			}
			if pmsbridge.MessageOf(err) == "" {
				t.Error("no user-safe message")
			}
		})
	}
}

func TestGetRetriesThenSucceeds(t *testing.T) {
	b := setup(t, cliniko.Config{GetRetries: 2})
	b.sb.FailNext(2, 503)
	p, err := b.client.GetPatient(context.Background(), b.admin, "1001")
	if err != nil {
		t.Fatal(err)
	}
	if p.FirstName != "Zoë" {
		t.Errorf("got %q", p.FirstName)
	}
	var statuses []int
	for _, c := range b.Calls() {
		statuses = append(statuses, c.Status)
	}
	if diff := cmp.Diff([]int{503, 503, 200}, statuses); diff != "" {
		t.Errorf("observed statuses (-want +got):\n%s", diff)
	}
}

func TestUnauthorizedMessage(t *testing.T) {
	b := setup(t, cliniko.Config{})
	b.sb.RevokeKey(sandbox.DemoAdminKey)
	_, err := b.client.GetUser(context.Background(), b.admin)
	want := "Cliniko did not accept the API key: it may have been revoked, or it belongs to another Cliniko region."
	if got := pmsbridge.MessageOf(err); got != want {
		t.Errorf("MessageOf = %q, want %q", got, want)
	}
}

func TestPatientsUpdatedSince(t *testing.T) {
	b := setup(t, cliniko.Config{})
	acct := b.sb.AddAccount("au3", "Busy Clinic")
	_, key := acct.AddUser("Busy", "Admin", "busy@clinic.example", sandbox.RoleAdministrator)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 252 {
		p := acct.AddPatient(sandbox.Patient{FirstName: fmt.Sprintf("P%03d", i), LastName: "Test",
			CreatedAt: base, UpdatedAt: base.Add(time.Duration(251-i) * time.Minute)}) // reverse order of creation
		ids = append(ids, p.ID)
	}
	b.sb.ArchivePatient(ids[0]) // hidden from the listing (its updated_at becomes fixedNow)
	old := acct.AddPatient(sandbox.Patient{FirstName: "Old", LastName: "Change", UpdatedAt: base.Add(-time.Hour)})
	_ = old

	var pages []cliniko.Page
	for pg, err := range b.client.PatientsUpdatedSince(context.Background(), cliniko.Auth{Key: key}, base.Add(-time.Second)) {
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, pg)
	}
	var sizes, totals []int
	var seen []string
	var last time.Time
	for i, pg := range pages {
		sizes, totals = append(sizes, len(pg.Patients)), append(totals, pg.Total)
		if (pg.Next != "") != (i < len(pages)-1) {
			t.Errorf("page %d: Next = %q", i, pg.Next)
		}
		for _, p := range pg.Patients {
			if p.UpdatedAt.Before(last) {
				t.Errorf("not sorted by updated_at: %s after %s", p.UpdatedAt, last)
			}
			last = p.UpdatedAt
			seen = append(seen, p.ID)
		}
	}
	// Each page after the first asks again from the second before the last
	// change read (so its total counts only what is left), which lists the
	// patient changed in that second again: 2 repeats, 251 patients.
	distinct := len(slices.Compact(slices.Sorted(slices.Values(seen))))
	if diff := cmp.Diff([]any{[]int{100, 100, 53}, []int{251, 152, 53}, 253, 251}, []any{sizes, totals, len(seen), distinct}); diff != "" {
		t.Errorf("[sizes totals listed distinct] (-want +got):\n%s", diff)
	}
	if n := b.sb.RequestCount("list_patients"); n != 3 {
		t.Errorf("list_patients requests = %d, want 3", n)
	}
	if seen[0] != ids[251] || seen[len(seen)-1] != ids[1] {
		t.Errorf("first/last = %s/%s, want %s/%s", seen[0], seen[len(seen)-1], ids[251], ids[1])
	}

	t.Run("only changes after the watermark", func(t *testing.T) {
		b.sb.EditPatient(ids[5], func(p *sandbox.Patient) { p.DateOfBirth = ptr("1980-01-01") })
		var got []string
		for pg, err := range b.client.PatientsUpdatedSince(context.Background(), cliniko.Auth{Key: key}, base.Add(300*time.Minute)) {
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pg.Patients {
				got = append(got, p.ID+" "+*p.DateOfBirth)
			}
		}
		if diff := cmp.Diff([]string{ids[5] + " 1980-01-01"}, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})

	t.Run("stopping early sends no further request", func(t *testing.T) {
		before := b.sb.RequestCount("list_patients")
		for range b.client.PatientsUpdatedSince(context.Background(), cliniko.Auth{Key: key}, base.Add(-time.Second)) {
			break
		}
		if n := b.sb.RequestCount("list_patients") - before; n != 1 {
			t.Errorf("requests = %d, want 1", n)
		}
	})

	t.Run("error ends the sequence", func(t *testing.T) {
		b.sb.FailNext(10, 401)
		var n int
		var gotErr error
		for _, err := range b.client.PatientsUpdatedSince(context.Background(), cliniko.Auth{Key: key}, base) {
			n++
			gotErr = err
		}
		if n != 1 || pmsbridge.CauseOf(gotErr) != pmsbridge.CauseClinikoUnauthorized {
			t.Errorf("yields = %d, last err = %v", n, gotErr)
		}
		b.sb.FailNext(0, 0)
	})
}

func TestUploadAttachment(t *testing.T) {
	b := setup(t, cliniko.Config{})
	ctx := context.Background()
	pdf := []byte("%PDF-1.4\n% programme\n")
	at, err := b.client.UploadAttachment(ctx, b.admin, sandbox.DemoPatientID, "Knee rehab v1.pdf", "Knee rehab, week 1", pdf)
	if err != nil {
		t.Fatal(err)
	}
	want := cliniko.Attachment{ID: at.ID, PatientID: sandbox.DemoPatientID, Description: "Knee rehab, week 1",
		Filename: "Knee rehab v1.pdf", ContentType: "application/pdf", Size: int64(len(pdf)),
		ProcessingCompleted: true, CreatedAt: fixedNow.Truncate(time.Second)}
	if diff := cmp.Diff(want, at); diff != "" {
		t.Errorf("attachment (-want +got):\n%s", diff)
	}
	if len(at.ID) != 18 {
		t.Errorf("id %q is not an 18-digit id", at.ID)
	}
	stored := b.sb.Attachments(sandbox.DemoPatientID)
	if len(stored) != 1 || string(stored[0].Content) != string(pdf) {
		t.Fatalf("sandbox has %d attachments (content ok: %v)", len(stored), len(stored) == 1 && string(stored[0].Content) == string(pdf))
	}
	if !strings.HasPrefix(stored[0].UploadURL, b.sb.URL()+"/s3/") || strings.Contains(stored[0].UploadURL, "%2F") {
		t.Errorf("upload_url %q is not presign url + raw key", stored[0].UploadURL)
	}
	var ops []string
	for _, c := range b.Calls() {
		ops = append(ops, fmt.Sprintf("%s %s %d", c.Op, c.Method, c.Status))
		if c.PatientID != sandbox.DemoPatientID {
			t.Errorf("%s: PatientID = %q", c.Op, c.PatientID)
		}
		if strings.Contains(c.Path, "?") || strings.Contains(c.Path, sandbox.DemoAdminKey) {
			t.Errorf("%s: path %q", c.Op, c.Path)
		}
	}
	if diff := cmp.Diff([]string{"presign GET 200", "storage_upload POST 201", "create_attachment POST 201"}, ops); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}

	list, err := b.client.ListAttachments(ctx, b.admin, sandbox.DemoPatientID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]cliniko.Attachment{want}, list); diff != "" {
		t.Errorf("listing (-want +got):\n%s", diff)
	}

	t.Run("storage failure once is retried", func(t *testing.T) {
		b.sb.FailNextOp("storage_upload", 1, 503)
		if _, err := b.client.UploadAttachment(ctx, b.admin, sandbox.DemoPatientID, "b.pdf", "B", pdf); err != nil {
			t.Fatal(err)
		}
		if n := len(b.sb.Attachments(sandbox.DemoPatientID)); n != 2 {
			t.Errorf("attachments = %d, want 2", n)
		}
	})

	t.Run("receptionist may upload", func(t *testing.T) {
		_, err := b.client.UploadAttachment(ctx, cliniko.Auth{Key: sandbox.DemoReceptionistKey, UserID: "3"},
			"836447129235882004", "c.pdf", "C", pdf)
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestListAttachmentsPaged(t *testing.T) {
	b := setup(t, cliniko.Config{})
	ctx := context.Background()
	const n = 103
	for i := range n {
		if _, err := b.client.UploadAttachment(ctx, b.admin, "836447129235882001", fmt.Sprintf("f%d.pdf", i), "x", []byte("%PDF")); err != nil {
			t.Fatal(err)
		}
	}
	before := b.sb.RequestCount("list_attachments")
	list, err := b.client.ListAttachments(ctx, b.admin, "836447129235882001")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != n || list[0].Filename != "f0.pdf" || list[n-1].Filename != fmt.Sprintf("f%d.pdf", n-1) {
		t.Errorf("got %d attachments", len(list))
	}
	if got := b.sb.RequestCount("list_attachments") - before; got != 2 {
		t.Errorf("list requests = %d, want 2 pages", got)
	}
	other, err := b.client.ListAttachments(ctx, b.admin, "1002")
	if err != nil || len(other) != 0 {
		t.Errorf("other patient: %d attachments, %v", len(other), err)
	}
}

func TestMetrics(t *testing.T) {
	sb := sandbox.NewDemo(sandbox.WithRateLimit(0))
	t.Cleanup(sb.Close)
	reg := prometheus.NewRegistry()
	m := cliniko.NewMetrics(reg)
	c, err := cliniko.New(cliniko.Config{BaseURL: sb.BaseURL(), UserAgent: testUA, RequestsPerMinute: 60000, GetRetries: -1},
		cliniko.BudgetForTests(t), cliniko.WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	a := cliniko.Auth{Key: sandbox.DemoAdminKey, UserID: "1"}
	_, _ = c.GetUser(context.Background(), a)
	sb.FailNext(1, 429)
	_, _ = c.GetUser(context.Background(), a)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			name := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.GetCounter() != nil:
				got[name] = fmt.Sprint(m.GetCounter().GetValue())
			case m.GetHistogram() != nil:
				got[name] = fmt.Sprintf("count %d", m.GetHistogram().GetSampleCount())
			}
		}
	}
	want := map[string]string{
		"pmsbridge_cliniko_requests_total{op=get_user,status=200}": "1",
		"pmsbridge_cliniko_requests_total{op=get_user,status=429}": "1",
		"pmsbridge_cliniko_rate_limited_total{}":                   "1",
		"pmsbridge_cliniko_limiter_wait_seconds{}":                 "count 2",
		"pmsbridge_cliniko_request_duration_seconds{op=get_user}":  "count 2",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}

// TestResilienceToRandomFailures: with a third of Cliniko's answers failing
// with 503 (seeded), GET retries carry almost every read through.
func TestResilienceToRandomFailures(t *testing.T) {
	b := setup(t, cliniko.Config{GetRetries: 3})
	b.sb.SetFailureRate(0.3, 503)
	var failed int
	for range 40 {
		if _, err := b.client.GetPatient(context.Background(), b.admin, "1001"); err != nil {
			if pmsbridge.CauseOf(err) != pmsbridge.CauseClinikoUnavailable {
				t.Fatalf("unexpected cause: %v", err)
			}
			failed++
		}
	}
	if failed > 2 {
		t.Errorf("%d of 40 reads failed despite retries", failed)
	}
}
