package cliniko

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/internal/redistest"
	"github.com/physitrack/pmsbridge/store"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

func ptr[T any](v T) *T { return &v }

// BudgetForTests is a request budget on a fresh Redis database, with its
// keys named by the store as in production. It is exported for the
// package's external tests.
func BudgetForTests(tb testing.TB) Budget {
	tb.Helper()
	rdb := redistest.Client(tb)
	kr, err := store.NewKeyring(bytes.Repeat([]byte{1}, store.KeySize))
	if err != nil {
		tb.Fatal(err)
	}
	st, err := store.New(rdb, store.Options{Keys: kr})
	if err != nil {
		tb.Fatal(err)
	}
	return Budget{Redis: rdb, Key: st.ClinikoBudgetKey}
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "cliniko", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodePatientPageOldExample(t *testing.T) {
	pg, err := decodePatientPage(readFixture(t, "patients_old_example.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := Page{
		Total: 230,
		Next:  "https://api.au1.cliniko.com/v1/patients?page=2",
		Patients: []Patient{
			{
				ID: "1", FirstName: "Jamie", LastName: "Example", DateOfBirth: ptr(""),
				Sex: "Female to Male", Gender: "Male",
				PhoneNumbers: []Phone{{Type: "Home", Number: "0398765432"}, {Type: "Mobile", Number: "61444444444"}},
				CreatedAt:    time.Date(2014, 1, 1, 0, 0, 0, 0, time.UTC),
				UpdatedAt:    time.Date(2014, 1, 2, 3, 4, 5, 0, time.UTC),
			},
			{
				ID: "836447129235883061", FirstName: "Ana", LastName: "Ng", Email: "ana@example.com",
				DateOfBirth: ptr("1990-02-14"),
				CreatedAt:   time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
				UpdatedAt:   time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
			},
		},
	}
	if diff := cmp.Diff(want, pg); diff != "" {
		t.Errorf("page (-want +got):\n%s", diff)
	}
	if got := pg.Patients[0].Mobile(); got != "61444444444" {
		t.Errorf("Mobile() = %q, want the Mobile number", got)
	}
}

func TestDecodePatientCurrent(t *testing.T) {
	p, err := decodePatient(readFixture(t, "patient_current.json"))
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "1001" || p.DateOfBirth != nil || p.Email != "" || p.Mobile() != "61400000000" {
		t.Errorf("got %+v", p)
	}
}

func TestDecodeIDs(t *testing.T) {
	tests := []struct {
		desc, in, want string
	}{
		{"18-digit string", `"836447129235883061"`, "836447129235883061"},
		{"18-digit number, not via float", `836447129235883061`, "836447129235883061"},
		{"short number", `42`, "42"},
		{"null", `null`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			var id flexID
			if err := id.UnmarshalJSON([]byte(tt.in)); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(id)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSafeFilename(t *testing.T) {
	tests := []struct{ in, want string }{
		{"programme-v1.pdf", "programme-v1.pdf"},
		{"Knee rehab – Zoë.pdf", "Knee rehab _ Zo_.pdf"},
		{"Knee rehab - week 1 (v2) 2026-11-30.pdf", "Knee rehab - week 1 (v2) 2026-11-30.pdf"},
		{" spaced .pdf ", "spaced .pdf"},
		{"../../etc/passwd", "passwd"},
		{"", "file"},
		{"...", "file"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := safeFilename(tt.in); got != tt.want {
				t.Errorf("safeFilename(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestCreateAttachmentBadUploadURL sends step 3 with upload URLs Cliniko
// did not issue (the public client always builds the right one).
func TestCreateAttachmentBadUploadURL(t *testing.T) {
	sb := sandbox.NewDemo()
	t.Cleanup(sb.Close)
	c, err := New(Config{BaseURL: sb.BaseURL(), UserAgent: "pmsbridge tests (dev@pmsbridge.example)", RequestsPerMinute: 6000},
		BudgetForTests(t))
	if err != nil {
		t.Fatal(err)
	}
	a := Auth{Key: sandbox.DemoAdminKey, UserID: sandbox.DemoAdminUserID}
	ctx := context.Background()
	tests := []struct{ desc, url string }{
		{"foreign bucket", "https://evil.example/bucket/1/patients/1001/attachments/temp/x/a.pdf"},
		{"storage step skipped", sb.URL() + "/s3/cliniko-sandbox-au1/1/patients/1001/attachments/temp/abc/a.pdf"},
		{"percent-encoded key (Location, not Key)", sb.URL() + "/s3/cliniko-sandbox-au1/1%2Fpatients%2F1001%2Fa.pdf"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			_, err := c.createAttachment(ctx, a, "au1", sandbox.DemoPatientID, tt.url, "x")
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want *Error", err)
			}
			want := &Error{Op: "create_attachment", Status: 422, Cause: pmsbridge.CauseClinikoInvalid,
				Message: "Validation Failed", Fields: map[string]string{"temp_attachment_url": "is invalid"}}
			if diff := cmp.Diff(want, e); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if n := sb.RequestCount("create_attachment"); n != len(tests) {
		t.Errorf("create_attachment requests = %d, want %d (never retried)", n, len(tests))
	}
}

// BenchmarkLimiterAllow measures what the shared limiter adds to each
// request: one Lua script round trip to a local Redis.
func BenchmarkLimiterAllow(b *testing.B) {
	l := newLimiter(BudgetForTests(b), 1_000_000_000, time.Now)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := l.take(ctx, "au1:"+strconv.Itoa(i%64)); err != nil {
			b.Fatal(err)
		}
	}
}
