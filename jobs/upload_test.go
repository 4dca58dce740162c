package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/store"
)

// pdfText extracts a PDF's text with poppler's pdftotext (installed by the
// project's test command; its absence fails the test).
func pdfText(t *testing.T, pdf []byte) string {
	t.Helper()
	bin, err := exec.LookPath("pdftotext")
	if err != nil {
		t.Fatalf("pdftotext not found (install poppler-utils): %v", err)
	}
	in := filepath.Join(t.TempDir(), "in.pdf")
	if err := os.WriteFile(in, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	var out, stderr bytes.Buffer
	cmd := exec.Command(bin, "-enc", "UTF-8", in, "-")
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("pdftotext: %v: %s", err, stderr.String())
	}
	return out.String()
}

// attachmentsWith returns a Cliniko patient's attachments whose description
// carries marker.
func (b *bundle) attachmentsWith(clinikoID, marker string) []sandbox.Attachment {
	var out []sandbox.Attachment
	for _, a := range b.sb.Attachments(clinikoID) {
		if strings.Contains(a.Description, marker) {
			out = append(out, a)
		}
	}
	return out
}

// checkOneAttachment checks that programme version p is in Cliniko exactly
// once and that its PDF state records that attachment.
func (b *bundle) checkOneAttachment(t *testing.T, p pmsbridge.Programme, clinikoID string) sandbox.Attachment {
	t.Helper()
	got := b.attachmentsWith(clinikoID, AttachmentMarker(p.ID, p.Version))
	if len(got) != 1 {
		t.Fatalf("programme %s v%d: %d attachments in Cliniko, want 1", p.ID, p.Version, len(got))
	}
	st := b.pdfState(t, p)
	if st.State != pmsbridge.PDFUploaded || st.AttachmentID != got[0].ID {
		t.Errorf("PDF state %+v, want uploaded with attachment %s", st, got[0].ID)
	}
	return got[0]
}

// TestUploadPDF: an assigned programme lands once in the patient's Cliniko
// files as a PDF showing the patient's name and access code; running the
// task again (a redelivery) does nothing; a new version uploads a second
// PDF with the same code.
func TestUploadPDF(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startWorker(t, nil)
	prog := b.programme(t, "", b.patient, b.pr, "Knee rehab, week 1")
	id, err := b.jc.EnqueueUpload(b.ctx, uploadPayload(prog))
	if err != nil {
		t.Fatal(err)
	}
	b.waitDone(t, QueuePDF, id)
	a := b.checkOneAttachment(t, prog, sandbox.DemoPatientID)
	if !bytes.HasPrefix(a.Content, []byte("%PDF-")) || a.ContentType != "application/pdf" {
		t.Errorf("attachment is %s, starts %q; want a PDF", a.ContentType, a.Content[:min(8, len(a.Content))])
	}
	// A front desk reads the file's name and description in Cliniko: the
	// programme, its version and start date; no patient name; the marker a
	// short suffix.
	if want := "Knee rehab - week 1 (v1) 2026-11-22.pdf"; a.Filename != want || a.UserID != sandbox.DemoAdminUserID {
		t.Errorf("filename %q by user %s, want %q by %s", a.Filename, a.UserID, want, sandbox.DemoAdminUserID)
	}
	if want := "Home exercise programme: Knee rehab, week 1, version 1, starts 22 Nov 2026. " + AttachmentMarker(prog.ID, 1); a.Description != want {
		t.Errorf("description %q, want %q", a.Description, want)
	}
	text := pdfText(t, a.Content)
	for _, want := range []string{"Zoë O'Brien", prog.Code} {
		if !strings.Contains(text, want) {
			t.Errorf("PDF text lacks %q:\n%s", want, text)
		}
	}
	b.noFailure(t, id)

	// Redelivery: the handler runs again; nothing more reaches Cliniko.
	before := b.sb.Requests()
	for range 2 {
		if err := b.run(t, TypeUploadPDF, uploadPayload(prog)); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(before, b.sb.Requests()); diff != "" {
		t.Errorf("a redelivered upload called Cliniko (-before +after):\n%s", diff)
	}
	b.checkOneAttachment(t, prog, sandbox.DemoPatientID)

	// Version 2: a second attachment, the same code.
	v2 := b.programme(t, prog.ID, b.patient, b.pr, "Knee rehab, week 2")
	if v2.Version != 2 || v2.Code != prog.Code {
		t.Fatalf("version %d code %q, want 2 and %q", v2.Version, v2.Code, prog.Code)
	}
	id2, err := b.jc.EnqueueUpload(b.ctx, uploadPayload(v2))
	if err != nil {
		t.Fatal(err)
	}
	if id2 == id {
		t.Fatalf("version 2 has version 1's task id %s", id)
	}
	b.waitDone(t, QueuePDF, id2)
	a2 := b.checkOneAttachment(t, v2, sandbox.DemoPatientID)
	if a2.ID == a.ID || len(b.sb.Attachments(sandbox.DemoPatientID)) != 2 {
		t.Errorf("attachments %d, want 2 distinct", len(b.sb.Attachments(sandbox.DemoPatientID)))
	}
	if text := pdfText(t, a2.Content); !strings.Contains(text, prog.Code) {
		t.Errorf("version 2's PDF lacks the code %q", prog.Code)
	}
}

// TestUploadFindsLegacyAttachment: a version uploaded by an older release,
// whose description carries the old marker, is recognised: the upgrade
// records it and sends no second copy.
func TestUploadFindsLegacyAttachment(t *testing.T) {
	t.Parallel()
	b := setup(t)
	prog := b.programme(t, "", b.patient, b.pr, "Knee rehab")
	old, err := b.h.Cliniko.UploadAttachment(b.ctx, cliniko.Auth{Key: sandbox.DemoAdminKey}, sandbox.DemoPatientID,
		"programme-"+prog.ID+"-v1.pdf", "Home exercise programme: Knee rehab (version 1) "+LegacyAttachmentMarker(prog.ID, 1), []byte("%PDF-1.4\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.run(t, TypeUploadPDF, uploadPayload(prog)); err != nil {
		t.Fatal(err)
	}
	if n := len(b.sb.Attachments(sandbox.DemoPatientID)); n != 1 {
		t.Errorf("%d attachments, want the old one only", n)
	}
	if st := b.pdfState(t, prog); st.State != pmsbridge.PDFUploaded || st.AttachmentID != old.ID {
		t.Errorf("PDF state %+v, want uploaded as %s", st, old.ID)
	}
}

// TestUploadLostResponse: Cliniko creates the attachment but its answer is
// lost (a 502 from a proxy). The attempt fails and is retried; the retry
// finds the attachment by its marker and records it, making no second one.
func TestUploadLostResponse(t *testing.T) {
	t.Parallel()
	b := setup(t)
	prog := b.programme(t, "", b.patient, b.pr, "Shoulder")
	b.sb.DropResponseNext("create_attachment", 1)
	b.startWorker(t, nil)
	id, err := b.jc.EnqueueUpload(b.ctx, uploadPayload(prog))
	if err != nil {
		t.Fatal(err)
	}
	b.waitDone(t, QueuePDF, id)
	b.checkOneAttachment(t, prog, sandbox.DemoPatientID)
	if n := b.sb.RequestCount("create_attachment"); n != 1 {
		t.Errorf("create_attachment requests = %d, want 1", n)
	}
	if n := b.sb.RequestCount("list_attachments"); n != 2 {
		t.Errorf("list_attachments requests = %d, want 2 (one per attempt)", n)
	}
	b.noFailure(t, id)
}

// TestUploadWorkerDiesBeforeCreate: the worker stops (its context is
// cancelled) after the file reached storage but before the attachment was
// created; the next run uploads again and makes exactly one attachment.
// A lock left by a worker that died outright makes a redelivery wait
// (snooze), not upload in parallel.
func TestUploadWorkerDiesBeforeCreate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	prog := b.programme(t, "", b.patient, b.pr, "Hip")
	ctx, cancel := context.WithCancel(b.ctx)
	b.setOnCall(func(c cliniko.Call) {
		if c.Op == "storage_upload" && c.Err == nil {
			cancel()
		}
	})
	err := b.h.Mux().ProcessTask(ctx, newTask(TypeUploadPDF, uploadPayload(prog)))
	if err == nil || Decide(err) != Retry {
		t.Fatalf("cancelled run: %v (%v), want a retry", err, Decide(err))
	}
	b.setOnCall(nil)
	if n := len(b.sb.Attachments(sandbox.DemoPatientID)); n != 0 {
		t.Fatalf("%d attachments after the cancelled run, want 0", n)
	}
	if st := b.pdfState(t, prog); st.State == pmsbridge.PDFUploaded {
		t.Fatalf("state %+v after the cancelled run", st)
	}

	// A worker that died outright leaves its lock: a redelivery waits.
	lock, ok, err := b.st.LockUpload(b.ctx, prog.ID, prog.Version, time.Minute)
	if err != nil || !ok {
		t.Fatalf("take the dead worker's lock: %v, %v", ok, err)
	}
	if err := b.run(t, TypeUploadPDF, uploadPayload(prog)); Decide(err) != Snooze {
		t.Errorf("run while locked: %v, want a snooze", err)
	}
	if err := lock.Release(b.ctx); err != nil {
		t.Fatal(err)
	}

	if err := b.run(t, TypeUploadPDF, uploadPayload(prog)); err != nil {
		t.Fatal(err)
	}
	b.checkOneAttachment(t, prog, sandbox.DemoPatientID)
	if n := b.sb.RequestCount("storage_upload"); n != 2 {
		t.Errorf("storage uploads = %d, want 2", n)
	}
}

// TestUploadNotPossible: the cases where a PDF cannot go to Cliniko. A
// scheduler's key is refused (cliniko_forbidden, permanent, the state says
// why); nobody with a key gives no_cliniko_key; a patient without a link is
// "not linked", which is not a failure.
func TestUploadNotPossible(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc       string
		arrange    func(t *testing.T, b *bundle) (pmsbridge.Programme, string) // programme, Cliniko patient id
		wantTask   State
		wantState  store.PDFState
		wantLedger pmsbridge.Cause // "" for no entry
		wantReason string          // in the state's reason
	}{
		{"scheduler key, the owner has none", func(t *testing.T, b *bundle) (pmsbridge.Programme, string) {
			sched := b.practitioner(t, "sam@clinic.example", "Sam Scheduler", sandbox.DemoSchedulerKey)
			if err := b.st.DeleteClinikoKey(b.ctx, b.pr.ID); err != nil {
				t.Fatal(err)
			}
			return b.programme(t, "", b.patient, sched, "Ankle"), sandbox.DemoPatientID
		}, StateFailed, store.PDFState{State: pmsbridge.PDFFailed, Cause: pmsbridge.CauseClinikoForbidden}, pmsbridge.CauseClinikoForbidden, "role"},
		{"no key for assigner nor owner", func(t *testing.T, b *bundle) (pmsbridge.Programme, string) {
			if err := b.st.DeleteClinikoKey(b.ctx, b.pr.ID); err != nil {
				t.Fatal(err)
			}
			other := b.practitioner(t, "nokey@clinic.example", "No Key", "")
			return b.programme(t, "", b.patient, other, "Ankle"), sandbox.DemoPatientID
		}, StateFailed, store.PDFState{State: pmsbridge.PDFFailed, Cause: pmsbridge.CauseNoClinikoKey}, pmsbridge.CauseNoClinikoKey, "has a Cliniko API key"},
		{"not linked", func(t *testing.T, b *bundle) (pmsbridge.Programme, string) {
			b.unlink(t, b.patient.ID)
			return b.programme(t, "", b.patient, b.pr, "Ankle"), sandbox.DemoPatientID
		}, StateDone, store.PDFState{State: pmsbridge.PDFNotLinked, Cause: pmsbridge.CauseNotLinked}, "", "not linked"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			prog, clinikoID := tt.arrange(t, b)
			b.startWorker(t, nil)
			id, err := b.jc.EnqueueUpload(b.ctx, uploadPayload(prog))
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantTask == StateDone {
				b.waitDone(t, QueuePDF, id)
			} else if info := b.waitState(t, QueuePDF, id, tt.wantTask); info.Retried != 0 {
				t.Errorf("Retried = %d, want 0", info.Retried)
			}
			st := b.pdfState(t, prog)
			if !strings.Contains(st.Reason, tt.wantReason) {
				t.Errorf("PDF state's reason %q does not say %q", st.Reason, tt.wantReason)
			}
			if diff := cmp.Diff(tt.wantState, store.PDFState{State: st.State, Cause: st.Cause}); diff != "" {
				t.Errorf("PDF state (-want +got):\n%s", diff)
			}
			if tt.wantLedger == "" {
				b.noFailure(t, id)
			} else if f := b.failure(t, id); !f.Permanent || f.Cause != tt.wantLedger || f.ProgrammeID != prog.ID || f.Version != prog.Version {
				t.Errorf("ledger entry %+v, want permanent %s for %s v%d", f, tt.wantLedger, prog.ID, prog.Version)
			}
			if n := len(b.sb.Attachments(clinikoID)); n != 0 {
				t.Errorf("%d attachments, want none", n)
			}
		})
	}
}

// TestUploadUsesOwnersKey: when the assigning practitioner has no key, the
// patient owner's key uploads the PDF.
func TestUploadUsesOwnersKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	assigner := b.practitioner(t, "nokey@clinic.example", "No Key", "")
	prog := b.programme(t, "", b.patient, assigner, "Wrist")
	if err := b.run(t, TypeUploadPDF, uploadPayload(prog)); err != nil {
		t.Fatal(err)
	}
	a := b.checkOneAttachment(t, prog, sandbox.DemoPatientID)
	if a.UserID != sandbox.DemoAdminUserID {
		t.Errorf("uploaded by Cliniko user %s, want the owner's (%s)", a.UserID, sandbox.DemoAdminUserID)
	}
}

// unlink removes a patient's Cliniko link from its record (the store has no
// operation for it; patients made in the app have no link).
func (b *bundle) unlink(t *testing.T, patientID string) {
	t.Helper()
	key := "pmsb:pat:" + patientID
	raw, err := b.rdb.Get(b.ctx, key).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]json.RawMessage
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	delete(rec, "link")
	raw, _ = json.Marshal(rec)
	if err := b.rdb.Set(b.ctx, key, raw, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if p := b.getPatient(t, patientID); p.Link != nil {
		t.Fatal("patient still linked")
	}
}

// TestUploadBurst: 60 programmes assigned at once by one practitioner
// (Cliniko calls at the client's full rate, against the sandbox's fixed
// one-minute windows) all land exactly once, and Cliniko never answers 429.
// The sandbox's clock runs 15 times faster than real time, so its minute is
// 4 s and its 200 per minute is 3000 per real minute, the client's budget:
// the burst crosses several window boundaries in a few seconds.
func TestUploadBurst(t *testing.T) {
	t.Parallel()
	const speed = 15
	realStart := time.Now()
	base := realStart.Truncate(time.Minute).Add(50 * time.Second)
	clock := func() time.Time { return base.Add(speed * time.Since(realStart)) }
	b := setup(t, func(o *options) {
		o.sandbox = append(o.sandbox, sandbox.WithClock(clock), sandbox.WithRateLimit(sandbox.DefaultRateLimit))
		o.cliniko.RequestsPerMinute = sandbox.DefaultRateLimit * speed
		o.deps = func(d *Deps) {
			// The PDF itself is TestUploadPDF's business; keep the burst
			// about Cliniko's budget.
			d.Render = func(doc PDFDocument) ([]byte, error) {
				return []byte("%PDF-1.4\n% " + doc.Programme.ID + "\n%%EOF\n"), nil
			}
		}
	})
	clinikoIDs := []string{sandbox.DemoPatientID, "1002", "836447129235882001", "836447129235882002", "836447129235882003", "836447129235882004"}
	patients := []store.Patient{b.patient}
	for _, cid := range clinikoIDs[1:] {
		patients = append(patients, b.importDirect(t, b.pr, cid))
	}
	const uploads = 60
	progs := make([]pmsbridge.Programme, uploads)
	for i := range progs {
		progs[i] = b.programme(t, "", patients[i%len(patients)], b.pr, "Programme")
	}
	b.startWorker(t, nil)
	var wg sync.WaitGroup
	for _, p := range progs {
		wg.Go(func() {
			if _, err := b.jc.EnqueueUpload(b.ctx, uploadPayload(p)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	waitFor(t, 40*time.Second, "60 uploads", func() bool {
		for _, p := range progs {
			if st, _ := b.st.PDFStateOf(b.ctx, p.ID, p.Version); st.State != pmsbridge.PDFUploaded {
				return false
			}
		}
		return true
	})
	for i, p := range progs {
		b.checkOneAttachment(t, p, clinikoIDs[i%len(clinikoIDs)])
	}
	if n := b.sb.RateLimited(); n != 0 {
		t.Errorf("Cliniko answered %d 429s, want none", n)
	}
	if n := b.sb.RequestCount("create_attachment"); n != uploads {
		t.Errorf("create_attachment requests = %d, want %d", n, uploads)
	}
	t.Logf("Cliniko requests: %v", b.sb.Requests())
}

// TestUploadRetriesExhausted: when Cliniko stays unavailable until the
// retries are used up, asynq archives the upload; the ledger says so and
// the PDF state is failed (not pending for ever).
func TestUploadRetriesExhausted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	prog := b.programme(t, "", b.patient, b.pr, "Elbow")
	b.sb.FailNextOp("list_attachments", 3, 503) // the call and its 2 GET retries
	b.startWorker(t, nil)
	id := UploadTaskID(prog.ID, prog.Version)
	if _, err := b.jc.enqueueOnce(b.ctx, newTask(TypeUploadPDF, uploadPayload(prog)), QueuePDF, id, asynq.MaxRetry(0)); err != nil {
		t.Fatal(err)
	}
	b.waitState(t, QueuePDF, id, StateFailed)
	if f := b.failure(t, id); !f.Permanent || f.Cause != pmsbridge.CauseClinikoUnavailable {
		t.Errorf("ledger entry %+v, want a permanent cliniko_unavailable failure", f)
	}
	if st := b.pdfState(t, prog); st.State != pmsbridge.PDFFailed || st.Cause != pmsbridge.CauseClinikoUnavailable {
		t.Errorf("PDF state %+v, want failed with cliniko_unavailable", st)
	}
}

// TestUploadLateFailureKeepsUploaded: an attempt that ends for good after
// another attempt of the same version uploaded it (a redelivered task that
// found the upload lock taken at its retry limit) must not turn the
// version's state back to failed: the attachment exists, and a "send
// again" on a failed state would be offered for it.
func TestUploadLateFailureKeepsUploaded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	prog := b.programme(t, "", b.patient, b.pr, "Hip")
	if err := b.run(t, TypeUploadPDF, uploadPayload(prog)); err != nil {
		t.Fatal(err)
	}
	a := b.checkOneAttachment(t, prog, sandbox.DemoPatientID)
	late := &busyError{what: "upload of this programme version"}
	b.h.HandleError(b.ctx, newTask(TypeUploadPDF, uploadPayload(prog)), permanent(late))
	if st := b.pdfState(t, prog); st.State != pmsbridge.PDFUploaded || st.AttachmentID != a.ID {
		t.Errorf("PDF state after a late failure %+v, want uploaded with attachment %s", st, a.ID)
	}
}

// TestUploadLockLostBeforeCreate: the upload's lock changes hands while
// the upload runs (a Redis failover lost it, and a worker on the new
// primary took the task): the first run creates no attachment and waits
// (snooze); the lock's new holder keeps its lock.
func TestUploadLockLostBeforeCreate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	prog := b.programme(t, "", b.patient, b.pr, "Ankle")
	lockKey := "pmsb:lock:" + UploadTaskID(prog.ID, prog.Version)
	b.setOnCall(func(c cliniko.Call) {
		if c.Op == "list_attachments" {
			b.rdb.Set(context.Background(), lockKey, "another-worker", time.Minute)
		}
	})
	if err := b.run(t, TypeUploadPDF, uploadPayload(prog)); Decide(err) != Snooze {
		t.Fatalf("run whose lock was taken: %v, want a snooze", err)
	}
	b.setOnCall(nil)
	if n := len(b.sb.Attachments(sandbox.DemoPatientID)); n != 0 || b.sb.RequestCount("create_attachment") != 0 {
		t.Fatalf("%d attachments, %d create calls; want none", n, b.sb.RequestCount("create_attachment"))
	}
	if got := b.rdb.Get(b.ctx, lockKey).Val(); got != "another-worker" {
		t.Errorf("lock %q after the run, want the other worker's", got)
	}
	b.rdb.Del(b.ctx, lockKey)
	if err := b.run(t, TypeUploadPDF, uploadPayload(prog)); err != nil {
		t.Fatal(err)
	}
	b.checkOneAttachment(t, prog, sandbox.DemoPatientID)
}

// TestUploadPrefersAKeyThatMayUpload: a Scheduler assigns; the owner's key
// may upload files, so it sends the PDF (the Scheduler's is passed over).
func TestUploadPrefersAKeyThatMayUpload(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sched := b.practitioner(t, "sam@clinic.example", "Sam Scheduler", sandbox.DemoSchedulerKey)
	prog := b.programme(t, "", b.patient, sched, "Ankle")
	if err := b.run(t, TypeUploadPDF, uploadPayload(prog)); err != nil {
		t.Fatal(err)
	}
	if a := b.checkOneAttachment(t, prog, sandbox.DemoPatientID); a.UserID != sandbox.DemoAdminUserID {
		t.Errorf("uploaded by Cliniko user %s, want the owner's (%s)", a.UserID, sandbox.DemoAdminUserID)
	}
}

// TestChooseUploader: whose key sends a patient's PDF, and why none can.
func TestChooseUploader(t *testing.T) {
	t.Parallel()
	demo := store.NewClinikoAccount("au1", []store.ClinikoBusiness{{ID: sandbox.DemoBusinessID, Name: "Demo Physio Clinic"}}, time.Now())
	other := store.NewClinikoAccount("au1", []store.ClinikoBusiness{{ID: "999", Name: "Other Clinic"}}, time.Now())
	user := func(role string, acct store.ClinikoAccount) store.ClinikoUser {
		return store.ClinikoUser{ID: "7", Name: "Someone", Role: role, Shard: acct.Shard, Account: acct}
	}
	uk := store.ClinikoUser{ID: "8", Name: "Olivia", Role: "administrator", Shard: "uk2"}
	for _, tc := range []struct {
		desc            string
		assigner, owner *store.ClinikoUser // nil: no key
		wantWho         string             // "assigner", "owner" or ""
		wantCause       pmsbridge.Cause
		wantSkipped     []pmsbridge.Cause
	}{
		{"the assigner's", ptr(user("practitioner", demo)), ptr(user("administrator", demo)), "assigner", "", nil},
		{"the owner's when the assigner has none", nil, ptr(user("administrator", demo)), "owner", "", []pmsbridge.Cause{pmsbridge.CauseNoClinikoKey}},
		{"the owner's over a Scheduler's", ptr(user("scheduler", demo)), ptr(user("receptionist", demo)), "owner", "", []pmsbridge.Cause{pmsbridge.CauseClinikoForbidden}},
		{"a Scheduler's when nobody else has one", ptr(user("scheduler", demo)), nil, "assigner", pmsbridge.CauseClinikoForbidden,
			[]pmsbridge.Cause{pmsbridge.CauseClinikoForbidden, pmsbridge.CauseNoClinikoKey}},
		{"not another account's", ptr(user("administrator", other)), ptr(user("practitioner", demo)), "owner", "", []pmsbridge.Cause{pmsbridge.CauseClinikoNotFound}},
		{"not another region's", &uk, nil, "", pmsbridge.CauseNoClinikoKey, []pmsbridge.Cause{pmsbridge.CauseClinikoUnauthorized, pmsbridge.CauseNoClinikoKey}},
		{"nobody's", nil, nil, "", pmsbridge.CauseNoClinikoKey, []pmsbridge.Cause{pmsbridge.CauseNoClinikoKey, pmsbridge.CauseNoClinikoKey}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			if _, err := b.st.AdoptClinikoAccount(b.ctx, b.sub.ID, demo); err != nil {
				t.Fatal(err)
			}
			assigner := b.practitioner(t, "assigner@clinic.example", "Assigner", "")
			for id, u := range map[string]*store.ClinikoUser{assigner.ID: tc.assigner, b.pr.ID: tc.owner} {
				if err := b.st.DeleteClinikoKey(b.ctx, id); err != nil {
					t.Fatal(err)
				}
				if u != nil {
					if err := b.st.SetClinikoKey(b.ctx, id, "MS0somekeyofthetest0000000000-"+u.Shard, *u); err != nil {
						t.Fatal(err)
					}
				}
			}
			got, err := ChooseUploader(b.ctx, b.st, assigner.ID, b.patient)
			if err != nil {
				t.Fatal(err)
			}
			who := map[string]string{assigner.ID: "assigner", b.pr.ID: "owner"}[got.PractitionerID]
			var skipped []pmsbridge.Cause
			for _, s := range got.Skipped {
				skipped = append(skipped, s.Why)
			}
			if who != tc.wantWho || got.Cause != tc.wantCause || got.Owner != (who == "owner") || !slices.Equal(skipped, tc.wantSkipped) {
				t.Errorf("chose %q (owner %v), cause %q, skipped %v; want %q, %q, %v", who, got.Owner, got.Cause, skipped, tc.wantWho, tc.wantCause, tc.wantSkipped)
			}
		})
	}
}
