package support

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// Person is a practitioner on a row.
type Person struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

// Clinic is a subscription on a row.
type Clinic struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Patient is a patient on a row. Name is there only when the encryption
// key is (staff only: it is never logged).
type Patient struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// ClinikoUser is the Cliniko user whose API key the job's last failed
// attempt used, and the practitioner who saved that key.
type ClinikoUser struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	Role           string `json:"role"`
	PractitionerID string `json:"practitioner_id"`
}

// Job is a failed (or recovered) job as support sees it: the contract's
// fields (jobs.JobJSON, flat) and the people, each absent when unknown.
type Job struct {
	jobs.JobJSON
	Practitioner *Person      `json:"practitioner,omitempty"`
	Clinic       *Clinic      `json:"clinic,omitempty"`
	Patient      *Patient     `json:"patient,omitempty"`
	ClinikoUser  *ClinikoUser `json:"cliniko_user,omitempty"`
	// Replayed is the job's last replay while it is in the ledger or
	// recently recovered.
	Replayed *store.Replay `json:"replayed,omitempty"`
	// RecoveredAt is when a recently recovered job succeeded.
	RecoveredAt *time.Time `json:"recovered_at,omitempty"`
}

// Rows names the people of ledger entries: three Redis round trips
// whatever their number.
func Rows(ctx context.Context, st *store.Store, list []store.Failure) ([]Job, error) {
	var prIDs, subIDs, patIDs []string
	for _, f := range list {
		prIDs = append(prIDs, f.PractitionerID)
		subIDs = append(subIDs, f.SubscriptionID)
		patIDs = append(patIDs, f.PatientID)
	}
	prs, err := st.PractitionersByID(ctx, prIDs)
	if err != nil {
		return nil, err
	}
	pats, err := st.PatientLabels(ctx, patIDs)
	if err != nil {
		return nil, err
	}
	for _, p := range prs {
		subIDs = append(subIDs, p.SubscriptionID)
	}
	subs, err := st.SubscriptionsByID(ctx, subIDs)
	if err != nil {
		return nil, err
	}
	out := make([]Job, len(list))
	for i, f := range list {
		j := Job{JobJSON: jobs.ToJSON(f), Replayed: f.Replayed}
		subID := f.SubscriptionID
		if p, ok := prs[f.PractitionerID]; ok {
			j.Practitioner = &Person{ID: p.ID, Name: p.Name, Email: p.Email}
			if subID == "" {
				subID = p.SubscriptionID
			}
		}
		if p, ok := pats[f.PatientID]; ok {
			j.Patient = &Patient{ID: p.ID, Name: p.Name}
			if subID == "" {
				subID = p.SubscriptionID
			}
		}
		if sub, ok := subs[subID]; ok {
			j.Clinic = &Clinic{ID: sub.ID, Name: sub.Name}
		}
		if u := f.KeyUser; u != nil {
			j.ClinikoUser = &ClinikoUser{ID: u.ClinikoUserID, Name: u.Name, Role: u.Role, PractitionerID: u.PractitionerID}
		}
		out[i] = j
	}
	return out, nil
}

// RecoveredRows names the people of recently recovered jobs.
func RecoveredRows(ctx context.Context, st *store.Store, list []store.Recovered) ([]Job, error) {
	fs := make([]store.Failure, len(list))
	for i, r := range list {
		fs[i] = r.Failure
	}
	rows, err := Rows(ctx, st, fs)
	if err != nil {
		return nil, err
	}
	for i := range rows {
		at := list[i].RecoveredAt
		rows[i].RecoveredAt = &at
		rows[i].State = StateDone
	}
	return rows, nil
}

// States of a job shown by Show besides the ledger's failed and retrying.
const (
	StateDone    = "done"    // it succeeded and left the ledger
	StateDeleted = "deleted" // support gave up on it
)

// Detail is one job with its history (oldest first) and the recent Cliniko
// calls and events of its patient (newest first).
type Detail struct {
	Job
	History []store.JobEvent   `json:"history"`
	Audit   []store.AuditEntry `json:"audit"`
}

// ErrUnknownJob: the job is neither in the ledger nor recently recovered,
// and has no history (it never failed, or its history has expired).
var ErrUnknownJob = errors.New("no such job in the failure ledger or in the job histories")

// Show returns everything known about a job: its ledger entry, or its
// recovered entry, or (a job that succeeded without a replay, or was
// deleted) only its history; auditN bounds the audit entries.
func Show(ctx context.Context, st *store.Store, taskID string, auditN int) (Detail, error) {
	var d Detail
	hist, err := st.JobHistory(ctx, taskID)
	if err != nil {
		return d, err
	}
	d.History = hist
	f, err := st.GetFailure(ctx, taskID)
	switch {
	case err == nil:
		rows, err := Rows(ctx, st, []store.Failure{f})
		if err != nil {
			return d, err
		}
		d.Job = rows[0]
	case !errors.Is(err, store.ErrNotFound):
		return d, err
	default:
		r, err := st.GetRecovered(ctx, taskID)
		switch {
		case err == nil:
			rows, err := RecoveredRows(ctx, st, []store.Recovered{r})
			if err != nil {
				return d, err
			}
			d.Job = rows[0]
		case !errors.Is(err, store.ErrNotFound):
			return d, err
		case len(hist) == 0:
			return d, fmt.Errorf("%s: %w", taskID, ErrUnknownJob)
		default:
			d.Job = Job{JobJSON: jobs.JobJSON{ID: taskID, State: StateDone}}
			if hist[len(hist)-1].Kind == store.EventDeleted {
				d.State = StateDeleted
			}
		}
	}
	d.Audit = []store.AuditEntry{}
	if d.PatientID != "" {
		if audit, err := st.AuditOf(ctx, d.PatientID, auditN); err == nil {
			d.Audit = audit
		}
	}
	return d, nil
}

// EventText says what an event of a job's history was, in one line
// (without its time): "attempts 1–3 failed: cliniko_unavailable (…), key
// of Sam Scheduler (Scheduler); retried".
func EventText(e store.JobEvent) string {
	switch e.Kind {
	case store.EventFailed:
		var b strings.Builder
		switch {
		case e.Count > 1 && e.LastAttempt > e.Attempt:
			fmt.Fprintf(&b, "attempts %d–%d failed", e.Attempt, e.LastAttempt)
		case e.Count > 1:
			fmt.Fprintf(&b, "failed %s", pmsbridge.Count(e.Count, "time", "times"))
		default:
			fmt.Fprintf(&b, "attempt %d failed", e.Attempt)
		}
		fmt.Fprintf(&b, ": %s", e.Cause)
		if e.Reason != "" {
			fmt.Fprintf(&b, " (%s)", strings.TrimSuffix(e.Reason, "."))
		}
		if u := e.KeyUser; u != nil {
			fmt.Fprintf(&b, ", with the Cliniko key of %s", userText(u.Name, u.Role))
		}
		if e.Permanent {
			b.WriteString("; failed for good")
		} else {
			b.WriteString("; retried")
		}
		return b.String()
	case store.EventReplayed:
		return "replayed by " + actorText(e.By)
	case store.EventReplayFailed:
		return "replay could not queue the job: " + e.Reason
	case store.EventSucceeded:
		return "succeeded"
	case store.EventDeleted:
		return "deleted by " + actorText(e.By)
	}
	return string(e.Kind)
}

func actorText(a *store.Actor) string {
	if a == nil {
		return store.Actor{}.String()
	}
	return a.String()
}

// userText is a Cliniko user as rows show them: "Sam Scheduler
// (Scheduler)" (Cliniko gives roles in lower case).
func userText(name, role string) string {
	if r := []rune(role); len(r) > 0 {
		role = strings.ToUpper(string(r[:1])) + string(r[1:])
	}
	switch {
	case name == "" && role == "":
		return "an unnamed Cliniko user"
	case name == "":
		return "a Cliniko " + role
	case role == "":
		return name
	}
	return name + " (" + role + ")"
}

// matches reports whether any of the row's words contains search (any
// case).
func (j Job) matches(search string) bool {
	fields := []string{j.ID, j.Type, j.Cause, j.Reason, j.PractitionerID, j.PatientID, j.ProgrammeID, j.UserText()}
	if p := j.Practitioner; p != nil {
		fields = append(fields, p.Name, p.Email)
	}
	if c := j.Clinic; c != nil {
		fields = append(fields, c.ID, c.Name)
	}
	if p := j.Patient; p != nil {
		fields = append(fields, p.Name)
	}
	for _, f := range fields {
		if f != "" && containsFold(f, search) {
			return true
		}
	}
	return false
}

// containsFold reports whether s contains sub, ignoring case.
func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

// UserText is the row's Cliniko user in words ("" when none was used).
func (j Job) UserText() string {
	if j.ClinikoUser == nil {
		return ""
	}
	return userText(j.ClinikoUser.Name, j.ClinikoUser.Role)
}

// ClinicCount is how many of a set of jobs are a clinic's.
type ClinicCount struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Jobs int    `json:"jobs"`
}

// Clinics counts rows per clinic, most first ("" id: no clinic known).
func Clinics(rows []Job) []ClinicCount {
	var out []ClinicCount
	for _, r := range rows {
		c := ClinicCount{}
		if r.Clinic != nil {
			c.ID, c.Name = r.Clinic.ID, r.Clinic.Name
		}
		i := slices.IndexFunc(out, func(x ClinicCount) bool { return x.ID == c.ID })
		if i < 0 {
			out = append(out, c)
			i = len(out) - 1
		}
		out[i].Jobs++
	}
	slices.SortStableFunc(out, func(a, b ClinicCount) int {
		if a.Jobs != b.Jobs {
			return b.Jobs - a.Jobs
		}
		return strings.Compare(a.Name, b.Name)
	})
	if out == nil {
		out = []ClinicCount{}
	}
	return out
}

// Summary says how many jobs and where, for a confirmation: "3 jobs of
// Demo Physio Clinic", "4 jobs across 2 clinics (Demo Physio Clinic: 3,
// Other Clinic: 1)", "1 job" (no clinic known); one and many are the
// noun ("failed job", "failed jobs").
func Summary(rows []Job, one, many string) string {
	s := pmsbridge.Count(len(rows), one, many)
	cs := Clinics(rows)
	switch {
	case len(cs) == 0:
		return s
	case len(cs) == 1 && cs[0].ID != "":
		return s + " of " + cs[0].Name
	case len(cs) == 1:
		return s
	}
	parts := make([]string, len(cs))
	for i, c := range cs {
		name := c.Name
		if c.ID == "" {
			name = "no clinic"
		}
		parts[i] = fmt.Sprintf("%s: %d", name, c.Jobs)
	}
	return fmt.Sprintf("%s across %d clinics (%s)", s, len(cs), strings.Join(parts, ", "))
}

// randomPart is the random tail of our ids (store's newID: kind_ and 24
// base32 letters).
var randomPart = regexp.MustCompile(`\b([a-z]+)_([a-z2-7]{6})[a-z2-7]{18}\b`)

// ShortID shortens the random parts of the ids inside a job id for a
// table: "pdf:prg_gumyupbsxhkq4nlw7ivexzta:v1" → "pdf:prg_gumyup…:v1". It is
// for reading only: commands take whole ids (--wide and --json show them).
func ShortID(id string) string { return randomPart.ReplaceAllString(id, "${1}_${2}…") }

// IDParts splits a job id for a page that shortens it in the middle: head
// ends with the last random id inside it (which the page cuts short), tail
// is what follows ("pdf:prg_gumyupbsxhkq4nlw7ivexzta" and ":v1"). An id
// with no random part is all head.
func IDParts(id string) (head, tail string) {
	locs := randomPart.FindAllStringIndex(id, -1)
	if len(locs) == 0 {
		return id, ""
	}
	end := locs[len(locs)-1][1]
	return id[:end], id[end:]
}

// causeTitle is a cause's short name for support.
func causeTitle(c pmsbridge.Cause) string { return c.Info().Support.Title }
