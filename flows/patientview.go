package flows

import (
	"context"
	"errors"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// PatientView is everything a practitioner's page (and the patient JSON)
// shows about a patient: the record, who owns and shares them, the
// programmes with their PDFs and lock-outs, what assigning a programme now
// would do with its PDF, and the patient's tries at opening programmes.
type PatientView struct {
	Patient store.Patient
	// Viewer is the practitioner looking; Names the clinic's
	// practitioners' names by id (who assigned what).
	Viewer store.Practitioner
	Names  map[string]string
	// Clock is the clinic's time, in which the page shows every time.
	Clock      pmsbridge.ClinicTime
	Owner      store.Practitioner
	Mine       bool
	SharedWith []store.Practitioner
	// Colleagues are the active practitioners of the clinic other than the
	// owner (to share with or transfer to).
	Colleagues []store.Practitioner
	// Programmes are the patient's programmes, newest first, each with its
	// current version and the earlier ones.
	Programmes []ProgrammeRow
	// Outlook is what happens to a programme's PDF if pr assigns one now.
	Outlook PDFOutlook
	// ClinikoAccount is the Cliniko account the patient's link is in, as
	// recorded for the clinic (the zero value when not recorded).
	ClinikoAccount store.ClinikoAccount
	Attempts       []store.AuditEntry
	// AttemptCounts counts every try by kind (locked tries are listed at
	// most once per hour and device, but all counted).
	AttemptCounts map[string]int
}

// ProgrammeRow is one programme: its current version and the earlier ones
// (newest first), and its code's lock-out.
type ProgrammeRow struct {
	Current VersionView
	Earlier []VersionView
	Lock    store.AccessLock
}

// Versions are every version of the programme, the current first.
func (r ProgrammeRow) Versions() []VersionView { return append([]VersionView{r.Current}, r.Earlier...) }

// VersionView is one programme version with its PDF's state.
type VersionView struct {
	pmsbridge.Programme
	PDF store.PDFState
}

// PDFOutlook is what happens to the PDF of a programme assigned now by the
// practitioner looking: whose key sends it and what stands in the way
// (jobs.ChooseUploader), with names for the words.
type PDFOutlook struct {
	jobs.Uploader
	// Assigner is who would assign (the practitioner looking); Owner the
	// patient's owner; Sender whose key sends the PDF (zero when none).
	Assigner, Owner, Sender store.Practitioner
	// Role is the Cliniko role of the key that is tried when the role may
	// not upload (Cause cliniko_forbidden).
	Role string
}

// PatientView reads what pr's page about patient p shows (p as OpenPatient
// returned it: pr may open them).
func (f *Flows) PatientView(ctx context.Context, pr store.Practitioner, p store.Patient) (PatientView, error) {
	v := PatientView{Patient: p, Viewer: pr, Names: map[string]string{}, Mine: p.OwnerID == pr.ID, Clock: f.clinicTime(ctx, p.SubscriptionID)}
	ps, err := f.Store.ListPractitioners(ctx, p.SubscriptionID)
	if err != nil {
		return v, err
	}
	shared := map[string]bool{}
	for _, id := range p.SharedWith {
		shared[id] = true
	}
	for _, x := range ps {
		v.Names[x.ID] = x.Name
		if x.ID == p.OwnerID {
			v.Owner = x
		}
		if shared[x.ID] {
			v.SharedWith = append(v.SharedWith, x)
		}
		if x.ID != p.OwnerID && x.Active {
			v.Colleagues = append(v.Colleagues, x)
		}
	}
	if v.Programmes, err = f.programmeRows(ctx, p); err != nil {
		return v, err
	}
	var owner *store.Practitioner
	if v.Owner.ID != "" {
		owner = &v.Owner
	}
	if v.Outlook, err = f.pdfOutlook(ctx, pr, p, owner); err != nil {
		return v, err
	}
	if p.Link != nil {
		if a, ok, err := f.Store.SubscriptionClinikoAccount(ctx, p.SubscriptionID, p.Link.Shard); err != nil {
			return v, err
		} else if ok {
			v.ClinikoAccount = a
		}
	}
	if v.Attempts, v.AttemptCounts, err = f.Store.AccessAttemptsOf(ctx, p.ID, 50); err != nil {
		return v, err
	}
	return v, nil
}

// programmeRows groups the patient's programme versions by programme
// (ListProgrammes: newest programme first, highest version first).
func (f *Flows) programmeRows(ctx context.Context, p store.Patient) ([]ProgrammeRow, error) {
	progs, err := f.Store.ListProgrammes(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	var rows []ProgrammeRow
	states := map[string]map[int]store.PDFState{}
	for _, prog := range progs {
		st, ok := states[prog.ID]
		if !ok {
			if st, err = f.Store.PDFStates(ctx, prog.ID); err != nil {
				return nil, err
			}
			states[prog.ID] = st
		}
		vv := VersionView{Programme: prog, PDF: st[prog.Version]}
		if vv.PDF.State == "" {
			vv.PDF.State = pmsbridge.PDFPending
		}
		if n := len(rows); n > 0 && rows[n-1].Current.ID == prog.ID {
			rows[n-1].Earlier = append(rows[n-1].Earlier, vv)
			continue
		}
		lock, err := f.Store.CodeLock(ctx, prog.Code)
		if err != nil {
			return nil, err
		}
		rows = append(rows, ProgrammeRow{Current: vv, Lock: lock})
	}
	return rows, nil
}

// PDFOutlook says what happens to the PDF of a programme pr assigns to p
// now: the rule of the upload job (jobs.ChooseUploader), with the names
// that the words need.
func (f *Flows) PDFOutlook(ctx context.Context, pr store.Practitioner, p store.Patient) (PDFOutlook, error) {
	return f.pdfOutlook(ctx, pr, p, nil)
}

// pdfOutlook is PDFOutlook with the patient's owner as the caller read
// them already (PatientView, from the clinic's practitioners); nil: read
// here.
func (f *Flows) pdfOutlook(ctx context.Context, pr store.Practitioner, p store.Patient, owner *store.Practitioner) (PDFOutlook, error) {
	u, err := jobs.ChooseUploader(ctx, f.Store, pr.ID, p)
	if err != nil {
		return PDFOutlook{}, err
	}
	o := PDFOutlook{Uploader: u, Assigner: pr}
	switch {
	case p.OwnerID == pr.ID:
		o.Owner = pr
	case owner != nil:
		o.Owner = *owner
	default:
		if o.Owner, err = f.Store.GetPractitioner(ctx, p.OwnerID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return o, err
		}
	}
	switch u.PractitionerID {
	case "":
	case pr.ID:
		o.Sender = pr
	default:
		o.Sender = o.Owner
	}
	if u.Cause == pmsbridge.CauseClinikoForbidden {
		o.Role = u.User.Role
	}
	return o, nil
}

// UnlockProgramme lets the patient try their code again at once after too
// many wrong years (store.UnlockCode), and records who did it in the
// patient's audit log.
func (f *Flows) UnlockProgramme(ctx context.Context, pr store.Practitioner, p store.Patient, prog pmsbridge.Programme) error {
	if err := f.Store.UnlockCode(ctx, prog.Code); err != nil {
		return err
	}
	f.audit(ctx, pr.ID, p.ID, "programme.unlocked", prog.ID)
	return nil
}
