package sandbox

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// presignTTL is how long an issued upload form is valid. Cliniko's is
// UNCONFIRMED; an hour is AWS's usual choice.
const presignTTL = time.Hour

// maxUpload bounds a stored file.
const maxUpload = 32 << 20

// presign is an upload form the sandbox issued.
type presign struct {
	fields    map[string]string
	accountID string
	patientID string
	userID    string
	expires   time.Time
}

// object is a file in the fake storage's temp area.
type object struct {
	key         string
	presignKey  string
	filename    string
	contentType string
	content     []byte
	accountID   string
	patientID   string
}

func (s *Sandbox) bucket(a *Account) string { return "cliniko-sandbox-" + a.Shard }

func (s *Sandbox) storageURL(a *Account) string { return s.url + "/s3/" + s.bucket(a) + "/" }

// roleMayUpload: receptionist and up (cliniko-api.md §6, §7); a scheduler
// gets 403 (UNCONFIRMED in Cliniko's docs: presumed).
func roleMayUpload(role string) bool { return role != RoleScheduler }

// roleMayReadContent: receptionists may see the list but not the files
// unless the account allows it (the sandbox's accounts do not).
func roleMayReadContent(role string) bool {
	return role == RoleAdministrator || role == RolePractitioner
}

func (s *Sandbox) presign(w http.ResponseWriter, r *http.Request, a actor) {
	if !roleMayUpload(a.user.Role) {
		forbidden(w)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.visiblePatientLocked(a, r.PathValue("id"))
	if p == nil {
		notFound(w)
		return
	}
	now := s.nowLocked()
	key := fmt.Sprintf("%s/patients/%s/attachments/temp/%s/${filename}", a.account.ID, p.ID, s.uuidLocked())
	date := now.Format("20060102T150405Z")
	cred := "AKIASANDBOXEXAMPLE/" + now.Format("20060102") + "/ap-southeast-2/s3/aws4_request"
	policy, _ := json.Marshal(map[string]any{
		"expiration": now.Add(presignTTL).Format("2006-01-02T15:04:05.000Z"),
		"conditions": []any{
			map[string]string{"bucket": s.bucket(a.account)},
			[]string{"starts-with", "$key", strings.TrimSuffix(key, "${filename}")},
			map[string]string{"acl": "private"},
			map[string]string{"success_action_status": "201"},
			map[string]string{"x-amz-algorithm": "AWS4-HMAC-SHA256"},
			map[string]string{"x-amz-credential": cred},
			map[string]string{"x-amz-date": date},
		},
	})
	pol := base64.StdEncoding.EncodeToString(policy)
	fields := map[string]string{
		"key": key, "policy": pol, "x-amz-credential": cred, "x-amz-algorithm": "AWS4-HMAC-SHA256",
		"x-amz-date": date, "x-amz-signature": s.sign(pol), "success_action_status": "201", "acl": "private",
	}
	s.presigns[key] = &presign{fields: fields, accountID: a.account.ID, patientID: p.ID,
		userID: a.user.ID, expires: now.Add(presignTTL)}
	writeJSON(w, http.StatusOK, map[string]any{"url": s.storageURL(a.account), "fields": fields})
}

func (s *Sandbox) sign(policy string) string {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(policy))
	return hex.EncodeToString(m.Sum(nil))
}

// s3Error is the storage's XML error body.
func s3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString("<Error><Code>")
	_ = xml.EscapeText(&b, []byte(code))
	b.WriteString("</Code><Message>")
	_ = xml.EscapeText(&b, []byte(msg))
	b.WriteString("</Message><RequestId>SANDBOX</RequestId></Error>")
	_, _ = w.Write(b.Bytes())
}

// storageUpload is the fake S3 POST-object endpoint: every issued field must
// come back unchanged, nothing may be added, the file part must be last,
// and no Authorization header may be sent (S3 refuses two auth mechanisms).
func (s *Sandbox) storageUpload(w http.ResponseWriter, r *http.Request) {
	s.count("storage_upload")
	if s.delay(r.Context()) != nil {
		return
	}
	if status, ok := s.injectedFailure("storage_upload", false); ok {
		s3Error(w, status, "InternalError", "We encountered an internal error. Please try again.")
		return
	}
	if r.Header.Get("Authorization") != "" {
		s3Error(w, http.StatusBadRequest, "InvalidArgument", "Only one auth mechanism allowed; only the X-Amz-Algorithm form field or the Authorization header may be specified")
		return
	}
	mr, err := r.MultipartReader()
	if err != nil {
		s3Error(w, http.StatusPreconditionFailed, "PreconditionFailed", "Bucket POST must be of the enclosure-type multipart/form-data")
		return
	}
	got := map[string]string{}
	var file []byte
	var filename, ctype string
	sawFile := false
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			s3Error(w, http.StatusBadRequest, "MalformedPOSTRequest", "The body of your POST request is not well-formed multipart/form-data.")
			return
		}
		if sawFile {
			s3Error(w, http.StatusBadRequest, "InvalidArgument", "The file must be the last field in the form (found "+part.FormName()+" after it)")
			return
		}
		name := part.FormName()
		data, err := io.ReadAll(io.LimitReader(part, maxUpload+1))
		if err != nil {
			s3Error(w, http.StatusBadRequest, "IncompleteBody", "The request body terminated unexpectedly")
			return
		}
		if name == "file" {
			if len(data) > maxUpload {
				s3Error(w, http.StatusBadRequest, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
				return
			}
			sawFile, file, filename, ctype = true, data, part.FileName(), part.Header.Get("Content-Type")
			continue
		}
		if _, dup := got[name]; dup {
			s3Error(w, http.StatusBadRequest, "InvalidArgument", "Field "+name+" given twice")
			return
		}
		got[name] = string(data)
	}
	if !sawFile {
		s3Error(w, http.StatusBadRequest, "InvalidArgument", "POST requires exactly one file upload per request.")
		return
	}
	if filename == "" {
		filename = "file"
	}
	bucket := r.PathValue("bucket")

	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.presigns[got["key"]]
	if !ok {
		s3Error(w, http.StatusForbidden, "AccessDenied", "Invalid according to Policy: Policy Condition failed: [\"starts-with\", \"$key\", …]")
		return
	}
	if s.nowLocked().After(p.expires) {
		s3Error(w, http.StatusForbidden, "AccessDenied", "Invalid according to Policy: Policy expired.")
		return
	}
	for _, k := range slices.Sorted(maps.Keys(p.fields)) {
		v, present := got[k]
		if !present {
			s3Error(w, http.StatusBadRequest, "InvalidArgument", "Bucket POST must contain a field named '"+k+"'.")
			return
		}
		if v != p.fields[k] {
			if k == "x-amz-signature" || k == "policy" {
				s3Error(w, http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
			} else {
				s3Error(w, http.StatusForbidden, "AccessDenied", "Invalid according to Policy: Policy Condition failed: [\"eq\", \"$"+k+"\", …]")
			}
			return
		}
	}
	for k := range got {
		if _, issued := p.fields[k]; !issued && !strings.HasPrefix(strings.ToLower(k), "x-ignore-") {
			s3Error(w, http.StatusForbidden, "AccessDenied", "Invalid according to Policy: Extra input fields: "+k)
			return
		}
	}
	if s.sign(got["policy"]) != got["x-amz-signature"] {
		s3Error(w, http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
		return
	}
	var acct *Account
	for _, a := range s.accounts {
		if a.ID == p.accountID {
			acct = a
		}
	}
	if acct == nil || s.bucket(acct) != bucket {
		s3Error(w, http.StatusForbidden, "AccessDenied", "Invalid according to Policy: Policy Condition failed: [\"eq\", \"$bucket\", …]")
		return
	}
	key := strings.ReplaceAll(got["key"], "${filename}", filename)
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	s.objects[key] = &object{key: key, presignKey: got["key"], filename: filename, contentType: ctype,
		content: file, accountID: p.accountID, patientID: p.patientID}
	sum := md5.Sum(file)
	loc := s.storageURL(acct) + url.QueryEscape(key)
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString("<PostResponse><Location>")
	_ = xml.EscapeText(&b, []byte(loc))
	b.WriteString("</Location><Bucket>")
	_ = xml.EscapeText(&b, []byte(bucket))
	b.WriteString("</Bucket><Key>")
	_ = xml.EscapeText(&b, []byte(key))
	b.WriteString("</Key><ETag>\"" + hex.EncodeToString(sum[:]) + "\"</ETag></PostResponse>")
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Location", loc)
	w.Header().Set("ETag", "\""+hex.EncodeToString(sum[:])+"\"")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(b.Bytes())
}

// createAttachment is POST /patient_attachments: upload_url must be the
// storage URL + the Key of an object uploaded for this patient, not used
// before.
func (s *Sandbox) createAttachment(w http.ResponseWriter, r *http.Request, a actor) {
	if !roleMayUpload(a.user.Role) {
		forbidden(w)
		return
	}
	var body struct {
		PatientID   json.RawMessage `json:"patient_id"`
		UploadURL   string          `json:"upload_url"`
		Description *string         `json:"description"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		badRequest(w, "The request body is not valid JSON.")
		return
	}
	pid := strings.Trim(string(bytes.TrimSpace(body.PatientID)), `"`)
	desc := ""
	if body.Description != nil {
		desc = *body.Description
	}
	if len([]rune(desc)) > 255 {
		invalid(w, map[string]string{"description": "is too long (maximum is 255 characters)"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.visiblePatientLocked(a, pid)
	if p == nil {
		invalid(w, map[string]string{"patient": "must exist"})
		return
	}
	prefix := s.storageURL(a.account)
	key, ok := strings.CutPrefix(body.UploadURL, prefix)
	obj := s.objects[key]
	if !ok || obj == nil || s.usedURLs[body.UploadURL] || obj.accountID != a.account.ID || obj.patientID != p.ID {
		invalid(w, map[string]string{"temp_attachment_url": "is invalid"})
		return
	}
	s.usedURLs[body.UploadURL] = true
	delete(s.objects, key) // processed: the temp object is removed
	now := s.nowLocked().Truncate(time.Second)
	ct := obj.contentType
	if mt, _, err := mime.ParseMediaType(ct); err == nil {
		ct = mt
	}
	if ct == "" || ct == "application/octet-stream" {
		ct = http.DetectContentType(obj.content)
		if i := strings.Index(ct, ";"); i >= 0 {
			ct = ct[:i]
		}
	}
	at := &Attachment{ID: s.newIDLocked(), PatientID: p.ID, UserID: a.user.ID, Description: desc,
		Filename: path.Base(obj.filename), ContentType: ct, Size: int64(len(obj.content)),
		Content: obj.content, ProcessingCompleted: true, CreatedAt: now, UploadURL: body.UploadURL}
	s.attachments[at.ID] = at
	s.attachSeq = append(s.attachSeq, at.ID)
	w.Header().Set("Location", s.link(a.shard, "/patient_attachments/"+at.ID, nil))
	writeJSON(w, http.StatusCreated, s.attachmentJSON(a.shard, at))
}

func (s *Sandbox) attachmentJSON(shard string, at *Attachment) map[string]any {
	self := s.link(shard, "/patient_attachments/"+at.ID, nil)
	created := ts(at.CreatedAt)
	return map[string]any{
		"id": at.ID, "content_type": at.ContentType, "description": at.Description,
		"filename": at.Filename, "size": at.Size, "processing_completed": at.ProcessingCompleted,
		"processed_at": created, "pinned_at": nil, "archived_at": nil,
		"created_at": created, "updated_at": created,
		"content": map[string]any{"links": map[string]string{"self": self + "/content"}},
		"patient": map[string]any{"links": map[string]string{"self": s.link(shard, "/patients/"+at.PatientID, nil)}},
		"user":    map[string]any{"links": map[string]string{"self": s.link(shard, "/users/"+at.UserID, nil)}},
		"links":   map[string]string{"self": self},
	}
}

var attachmentFields = map[string]fieldKind{
	"archived_at": kindTime, "content_type": kindString, "created_at": kindTime,
	"description": kindString, "filename": kindString, "id": kindID, "patient_id": kindID,
	"processed_at": kindTime, "size": kindNumber, "updated_at": kindTime, "user_id": kindID,
}

func attachmentValue(at *Attachment, field string) (string, bool) {
	switch field {
	case "content_type":
		return at.ContentType, at.ContentType != ""
	case "created_at", "processed_at", "updated_at":
		return ts(at.CreatedAt), true
	case "description":
		return at.Description, at.Description != ""
	case "filename":
		return at.Filename, at.Filename != ""
	case "id":
		return at.ID, true
	case "patient_id":
		return at.PatientID, true
	case "size":
		return strconv.FormatInt(at.Size, 10), true
	case "user_id":
		return at.UserID, true
	}
	return "", false // archived_at: the sandbox never archives attachments
}

func (s *Sandbox) accountAttachmentLocked(a actor, id string) *Attachment {
	at := s.attachments[id]
	if at == nil {
		return nil
	}
	if p := s.patients[at.PatientID]; p == nil || p.AccountID != a.account.ID {
		return nil
	}
	return at
}

func (s *Sandbox) listAttachments(w http.ResponseWriter, r *http.Request, a actor) {
	if !roleMayUpload(a.user.Role) {
		forbidden(w)
		return
	}
	q := r.URL.Query()
	filters, pg, ok := parseList(w, q, attachmentFields)
	if !ok {
		return
	}
	s.mu.Lock()
	var list []*Attachment
	for _, id := range s.attachSeq {
		at := s.accountAttachmentLocked(a, id)
		if at != nil && matchAll(filters, func(f string) (string, bool) { return attachmentValue(at, f) }) {
			list = append(list, at)
		}
	}
	items := make([]any, 0, pg.perPage)
	for _, at := range pageOf(list, pg) {
		items = append(items, s.attachmentJSON(a.shard, at))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"patient_attachments": items, "total_entries": len(list),
		"links": pageLinks(s.link, a.shard, "/patient_attachments", q, pg, len(list))})
}

func (s *Sandbox) getAttachment(w http.ResponseWriter, r *http.Request, a actor) {
	if !roleMayUpload(a.user.Role) {
		forbidden(w)
		return
	}
	s.mu.Lock()
	at := s.accountAttachmentLocked(a, r.PathValue("id"))
	var body map[string]any
	if at != nil {
		body = s.attachmentJSON(a.shard, at)
	}
	s.mu.Unlock()
	if at == nil {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// attachmentContent serves the bytes directly (whether Cliniko redirects to
// a signed storage URL instead is UNCONFIRMED).
func (s *Sandbox) attachmentContent(w http.ResponseWriter, r *http.Request, a actor) {
	if !roleMayReadContent(a.user.Role) {
		forbidden(w)
		return
	}
	s.mu.Lock()
	at := s.accountAttachmentLocked(a, r.PathValue("id"))
	var content []byte
	var ct, name string
	if at != nil {
		content, ct, name = at.Content, at.ContentType, at.Filename
	}
	s.mu.Unlock()
	if at == nil {
		notFound(w)
		return
	}
	serveFile(w, content, ct, name)
}

func serveFile(w http.ResponseWriter, content []byte, ct, name string) {
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	w.Header().Set("Content-Length", strconv.Itoa(len(content)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(content)
}
