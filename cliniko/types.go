package cliniko

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// User is the Cliniko user an API key belongs to (GET /user).
type User struct {
	ID        string
	FirstName string
	LastName  string
	Email     string
	// Role is Cliniko's role string, e.g. "administrator", "practitioner",
	// "receptionist" (the full list is UNCONFIRMED in Cliniko's docs).
	Role string
	// Shard is the Cliniko shard of the key used ("au1", "uk2", ...).
	Shard  string
	Active bool
}

// RoleAdministrator is the role of a clinic's Cliniko administrators: the
// only role documented by its string, and the one that sees everything
// (other users, every patient).
const RoleAdministrator = "administrator"

// IsAdministrator reports whether a Cliniko role string is the
// administrator's (compared without regard to case).
func IsAdministrator(role string) bool {
	return strings.EqualFold(strings.TrimSpace(role), RoleAdministrator)
}

// Name is the user's full name for display.
func (u User) Name() string { return strings.TrimSpace(u.FirstName + " " + u.LastName) }

// Phone is one of a patient's phone numbers.
type Phone struct {
	Type   string // "Mobile", "Home", "Work", ...
	Number string
}

// Patient is a Cliniko patient, with the fields pmsbridge uses.
type Patient struct {
	ID        string
	FirstName string
	LastName  string
	Email     string // "" when Cliniko has none
	// DateOfBirth is Cliniko's raw value: nil when null or absent, "" kept as
	// "" (old payloads use it for "unset"), otherwise normally YYYY-MM-DD but
	// not validated here: the caller decides what is invalid.
	DateOfBirth    *string
	Sex            string
	GenderIdentity string
	Gender         string // deprecated by Cliniko in 2018, still returned
	PhoneNumbers   []Phone
	ArchivedAt     *time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Mobile returns the patient's first "Mobile" number, else the first number
// of any type, else "".
func (p Patient) Mobile() string {
	for _, n := range p.PhoneNumbers {
		if strings.EqualFold(n.Type, "Mobile") && n.Number != "" {
			return n.Number
		}
	}
	for _, n := range p.PhoneNumbers {
		if n.Number != "" {
			return n.Number
		}
	}
	return ""
}

// Attachment is a file on a patient in Cliniko.
type Attachment struct {
	ID          string
	PatientID   string
	Description string
	// Filename, ContentType and Size are empty until Cliniko has processed
	// the upload (ProcessingCompleted).
	Filename            string
	ContentType         string
	Size                int64
	ProcessingCompleted bool
	CreatedAt           time.Time
}

// Page is one page of a patient listing.
type Page struct {
	Patients []Patient
	// Total is Cliniko's total_entries for the whole query.
	Total int
	// Next is the absolute URL of the next page, "" on the last page.
	Next string
}

// --- wire decoding -------------------------------------------------------
//
// Cliniko's payloads vary: ids are strings but old examples use numbers,
// optional strings may be null, the total may be a string or spelled
// "total_entires". These types accept all of that.

// flexID decodes a JSON string or number into its decimal text, never via
// float64 (ids have 18+ digits).
type flexID string

func (f *flexID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*f = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexID(strings.TrimSpace(s))
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("id: %w", err)
		}
		*f = flexID(n.String())
	}
	return nil
}

// flexString decodes a string or null ("") and, defensively, a number or
// boolean as its JSON text.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*f = ""
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	if len(b) > 0 && (b[0] == '{' || b[0] == '[') {
		*f = "" // an object where a string was expected: ignore it
		return nil
	}
	*f = flexString(b)
	return nil
}

// flexInt decodes a number, a numeric string or null.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*f = 0
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		s = strings.TrimSpace(s)
		if s == "" {
			*f = 0
			return nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		fl, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return fmt.Errorf("number: %w", err)
		}
		n = int64(fl)
	}
	*f = flexInt(n)
	return nil
}

// flexBool decodes true/false, null (false) and "true"/"false".
type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(bytes.TrimSpace(b)), `"`)
	*f = flexBool(s == "true" || s == "1")
	return nil
}

// flexTime decodes an RFC 3339 time; null, "" and unparseable values give
// the zero time rather than failing the whole payload.
type flexTime struct{ t time.Time }

func (f *flexTime) UnmarshalJSON(b []byte) error {
	var s *string
	if err := json.Unmarshal(b, &s); err != nil || s == nil || *s == "" {
		f.t = time.Time{}
		return nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02 15:04:05 -0700", "2006-01-02"} {
		if t, err := time.Parse(layout, *s); err == nil {
			f.t = t.UTC()
			return nil
		}
	}
	f.t = time.Time{}
	return nil
}

func (f *flexTime) ptr() *time.Time {
	if f == nil || f.t.IsZero() {
		return nil
	}
	t := f.t
	return &t
}

type wireLinks struct {
	Self     string `json:"self"`
	Next     string `json:"next"`
	Previous string `json:"previous"`
}

type wireLinked struct {
	Links wireLinks `json:"links"`
}

type wireUser struct {
	ID         flexID     `json:"id"`
	FirstName  flexString `json:"first_name"`
	LastName   flexString `json:"last_name"`
	Email      flexString `json:"email"`
	Role       flexString `json:"role"`
	UserActive *flexBool  `json:"user_active"`
	Active     *flexBool  `json:"active"`
}

func (w wireUser) user(shard string) User {
	active := true // absent: assume active (the key works, after all)
	if w.UserActive != nil {
		active = bool(*w.UserActive)
	} else if w.Active != nil {
		active = bool(*w.Active)
	}
	return User{
		ID: string(w.ID), FirstName: string(w.FirstName), LastName: string(w.LastName),
		Email: string(w.Email), Role: string(w.Role), Shard: shard, Active: active,
	}
}

type wirePhone struct {
	PhoneType flexString `json:"phone_type"`
	Number    flexString `json:"number"`
}

type wirePatient struct {
	ID             flexID          `json:"id"`
	FirstName      flexString      `json:"first_name"`
	LastName       flexString      `json:"last_name"`
	Email          flexString      `json:"email"`
	DateOfBirth    json.RawMessage `json:"date_of_birth"`
	Sex            flexString      `json:"sex"`
	GenderIdentity flexString      `json:"gender_identity"`
	Gender         flexString      `json:"gender"`
	Phones         []wirePhone     `json:"patient_phone_numbers"`
	ArchivedAt     flexTime        `json:"archived_at"`
	CreatedAt      flexTime        `json:"created_at"`
	UpdatedAt      flexTime        `json:"updated_at"`
}

func (w wirePatient) patient() Patient {
	p := Patient{
		ID: string(w.ID), FirstName: string(w.FirstName), LastName: string(w.LastName),
		Email: string(w.Email), Sex: string(w.Sex), GenderIdentity: string(w.GenderIdentity),
		Gender: string(w.Gender), ArchivedAt: w.ArchivedAt.ptr(),
		CreatedAt: w.CreatedAt.t, UpdatedAt: w.UpdatedAt.t,
	}
	// date_of_birth stays raw: null/absent → nil, "" → "", anything else as
	// text (a number, defensively, as its digits).
	if raw := bytes.TrimSpace(w.DateOfBirth); len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
		var s flexString
		if json.Unmarshal(raw, &s) == nil {
			v := string(s)
			p.DateOfBirth = &v
		}
	}
	for _, ph := range w.Phones {
		p.PhoneNumbers = append(p.PhoneNumbers, Phone{Type: string(ph.PhoneType), Number: string(ph.Number)})
	}
	return p
}

type wirePatientPage struct {
	Patients     []wirePatient `json:"patients"`
	TotalEntries *flexInt      `json:"total_entries"`
	TotalEntires *flexInt      `json:"total_entires"` // typo in Cliniko's old examples
	Links        wireLinks     `json:"links"`
}

type wireAttachment struct {
	ID                  flexID     `json:"id"`
	PatientID           flexID     `json:"patient_id"`
	Description         flexString `json:"description"`
	Filename            flexString `json:"filename"`
	ContentType         flexString `json:"content_type"`
	Size                flexInt    `json:"size"`
	ProcessingCompleted flexBool   `json:"processing_completed"`
	CreatedAt           flexTime   `json:"created_at"`
	Patient             wireLinked `json:"patient"`
}

func (w wireAttachment) attachment() Attachment {
	a := Attachment{
		ID: string(w.ID), PatientID: string(w.PatientID), Description: string(w.Description),
		Filename: string(w.Filename), ContentType: string(w.ContentType), Size: int64(w.Size),
		ProcessingCompleted: bool(w.ProcessingCompleted), CreatedAt: w.CreatedAt.t,
	}
	if a.PatientID == "" && w.Patient.Links.Self != "" {
		// The record links to its patient: ".../patients/{id}".
		if u, err := url.Parse(w.Patient.Links.Self); err == nil {
			a.PatientID = path.Base(u.Path)
		}
	}
	return a
}

type wireAttachmentPage struct {
	Attachments  []wireAttachment `json:"patient_attachments"`
	TotalEntries *flexInt         `json:"total_entries"`
	TotalEntires *flexInt         `json:"total_entires"`
	Links        wireLinks        `json:"links"`
}

func total(a, b *flexInt) int {
	if a != nil {
		return int(*a)
	}
	if b != nil {
		return int(*b)
	}
	return 0
}

// decodePatientPage decodes a GET /patients answer.
func decodePatientPage(body []byte) (Page, error) {
	var w wirePatientPage
	if err := json.Unmarshal(body, &w); err != nil {
		return Page{}, fmt.Errorf("decode patients page: %w", err)
	}
	pg := Page{Total: total(w.TotalEntries, w.TotalEntires), Next: w.Links.Next, Patients: make([]Patient, 0, len(w.Patients))}
	for _, p := range w.Patients {
		pg.Patients = append(pg.Patients, p.patient())
	}
	return pg, nil
}

// decodePatient decodes a GET /patients/{id} answer.
func decodePatient(body []byte) (Patient, error) {
	var w wirePatient
	if err := json.Unmarshal(body, &w); err != nil {
		return Patient{}, fmt.Errorf("decode patient: %w", err)
	}
	if w.ID == "" {
		return Patient{}, fmt.Errorf("decode patient: no id")
	}
	return w.patient(), nil
}
