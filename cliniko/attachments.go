package cliniko

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"path"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/physitrack/pmsbridge"
)

// ListAttachments returns every attachment of a patient:
// GET /patient_attachments?q[]=patient_id:=ID&per_page=100, one request per
// page of 100. Callers use it to check whether a file was already uploaded
// before uploading again (Cliniko has no idempotency keys).
func (c *Client) ListAttachments(ctx context.Context, a Auth, patientID string) ([]Attachment, error) {
	const op = "list_attachments"
	if err := checkID(op, "the patient id", patientID); err != nil {
		return nil, err
	}
	shard, err := c.shard(op, a)
	if err != nil {
		return nil, err
	}
	base := c.baseURL(shard)
	q := url.Values{}
	q.Add("q[]", "patient_id:="+patientID)
	q.Set("per_page", "100")
	next := base + "/patient_attachments?" + q.Encode()
	seen := map[string]bool{}
	var out []Attachment
	for next != "" && !seen[next] {
		seen[next] = true
		cur := next
		res, err := c.do(ctx, a, shard, request{op: op, method: http.MethodGet, url: cur,
			path: "/patient_attachments", patientID: patientID, limited: true, retries: c.cfg.GetRetries})
		if err != nil {
			return nil, err
		}
		var w wireAttachmentPage
		if err := json.Unmarshal(res.body, &w); err != nil {
			return nil, decodeError(op, res.status, err)
		}
		for _, wa := range w.Attachments {
			at := wa.attachment()
			if at.PatientID == "" {
				at.PatientID = patientID
			}
			out = append(out, at)
		}
		next = ""
		if w.Links.Next != "" {
			if next, err = sameOrigin(op, base, cur, w.Links.Next); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// presignedPost is Cliniko's answer to step 1 of an upload.
type presignedPost struct {
	URL    string            `json:"url"`
	Fields map[string]string `json:"fields"`
}

// postResponse is the storage's XML answer to step 2.
type postResponse struct {
	Location string `xml:"Location"`
	Bucket   string `xml:"Bucket"`
	Key      string `xml:"Key"`
}

// maxDescription is Cliniko's limit for an attachment description.
const maxDescription = 255

// UploadAttachment adds a file to a patient's files in Cliniko, in the three
// documented steps (3 HTTP calls, 2 of them against the Cliniko budget):
//
//  1. GET /patients/{id}/attachment_presigned_post: a storage URL and the
//     signed form fields;
//  2. POST the file to the storage URL as multipart/form-data: every field
//     echoed unchanged (in a fixed order: "key" first, then the rest by
//     name), the "file" part last, and no Cliniko credentials;
//  3. POST /patient_attachments {patient_id, upload_url, description}, where
//     upload_url is the storage URL followed by the storage's Key
//     (un-encoded).
//
// Step 1 is a GET and is retried like every GET. Step 2 is retried once on a
// 5xx or network error: it writes the same object under the same key, so a
// repeat is harmless. Step 3 is never retried (a repeat would create a
// second attachment); a caller that gets an error from it should list the
// patient's attachments before trying again.
//
// The filename is reduced to ASCII letters, digits, spaces, '.', '-', '_'
// and parentheses: what people name files in Cliniko's own upload, and
// safe in the storage key and upload_url (Cliniko's handling of other
// characters there is UNCONFIRMED).
func (c *Client) UploadAttachment(ctx context.Context, a Auth, patientID, filename, description string, content []byte) (Attachment, error) {
	if err := checkID("presign", "the patient id", patientID); err != nil {
		return Attachment{}, err
	}
	shard, err := c.shard("presign", a)
	if err != nil {
		return Attachment{}, err
	}
	base := c.baseURL(shard)
	filename = safeFilename(filename)

	// Step 1: presigned post.
	p := "/patients/" + patientID + "/attachment_presigned_post"
	res, err := c.do(ctx, a, shard, request{op: "presign", method: http.MethodGet, url: base + p, path: p,
		patientID: patientID, limited: true, retries: c.cfg.GetRetries})
	if err != nil {
		return Attachment{}, err
	}
	var pp presignedPost
	if err := json.Unmarshal(res.body, &pp); err != nil {
		return Attachment{}, decodeError("presign", res.status, err)
	}
	su, err := url.Parse(pp.URL)
	if err != nil || (su.Scheme != "https" && su.Scheme != "http") || su.Host == "" || len(pp.Fields) == 0 {
		return Attachment{}, decodeError("presign", res.status, fmt.Errorf("presigned post without a usable url or fields"))
	}

	// Step 2: upload to storage.
	body, ctype, err := multipartBody(pp.Fields, filename, content)
	if err != nil {
		return Attachment{}, &Error{Op: "storage_upload", Cause: pmsbridge.CauseInternal, Err: err}
	}
	res, err = c.do(ctx, a, shard, request{op: "storage_upload", method: http.MethodPost, url: pp.URL,
		path: su.Path, patientID: patientID, body: body, contentType: ctype, accept: "application/xml",
		noAuth: true, retries: 1})
	if err != nil {
		return Attachment{}, err
	}
	var pr postResponse
	key := ""
	if xml.Unmarshal(res.body, &pr) == nil {
		key = strings.TrimSpace(pr.Key)
	}
	if key == "" {
		// No XML (a storage configured without success_action_status=201):
		// the key is the one we sent, with ${filename} filled in as the
		// storage does.
		key = strings.ReplaceAll(pp.Fields["key"], "${filename}", filename)
	}

	// Step 3: create the attachment record.
	uploadURL := pp.URL
	if !strings.HasSuffix(uploadURL, "/") {
		// Cliniko's url ends in "/"; effect of a doubled slash is UNCONFIRMED,
		// so we add one only when it is missing.
		uploadURL += "/"
	}
	uploadURL += strings.TrimPrefix(key, "/")
	return c.createAttachment(ctx, a, shard, patientID, uploadURL, description)
}

// createAttachment is step 3 of an upload: POST /patient_attachments. It is
// never retried.
func (c *Client) createAttachment(ctx context.Context, a Auth, shard, patientID, uploadURL, description string) (Attachment, error) {
	const op = "create_attachment"
	description = truncateRunes(description, maxDescription)
	rb, err := json.Marshal(map[string]string{
		"patient_id":  patientID,
		"upload_url":  uploadURL,
		"description": description,
	})
	if err != nil {
		return Attachment{}, &Error{Op: op, Cause: pmsbridge.CauseInternal, Err: err}
	}
	res, err := c.do(ctx, a, shard, request{op: op, method: http.MethodPost,
		url: c.baseURL(shard) + "/patient_attachments", path: "/patient_attachments", patientID: patientID,
		body: rb, limited: true})
	if err != nil {
		return Attachment{}, err
	}
	var wa wireAttachment
	if err := json.Unmarshal(res.body, &wa); err != nil || wa.ID == "" {
		// The attachment was created; only its answer is unreadable.
		// Transient, and the caller's listing check will find it.
		return Attachment{}, decodeError(op, res.status, err)
	}
	at := wa.attachment()
	if at.PatientID == "" {
		at.PatientID = patientID
	}
	if at.Description == "" {
		at.Description = description
	}
	return at, nil
}

// multipartBody writes the storage form: fields first ("key" first, then by
// name, so the body is the same for the same input), file part last (the
// storage ignores anything after the file).
func multipartBody(fields map[string]string, filename string, content []byte) ([]byte, string, error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	names := make([]string, 0, len(fields))
	for k := range fields {
		if k != "key" && k != "file" {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	if _, ok := fields["key"]; ok {
		names = append([]string{"key"}, names...)
	}
	for _, k := range names {
		if err := w.WriteField(k, fields[k]); err != nil {
			return nil, "", fmt.Errorf("write field: %w", err)
		}
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, filename))
	h.Set("Content-Type", contentType(filename))
	part, err := w.CreatePart(h)
	if err != nil {
		return nil, "", fmt.Errorf("create file part: %w", err)
	}
	if _, err := part.Write(content); err != nil {
		return nil, "", fmt.Errorf("write file part: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, "", fmt.Errorf("close form: %w", err)
	}
	return buf.Bytes(), w.FormDataContentType(), nil
}

func contentType(filename string) string {
	switch strings.ToLower(path.Ext(filename)) {
	case ".pdf":
		return "application/pdf"
	case ".png":
		return "image/png"
	case ".jpg", ".jpeg":
		return "image/jpeg"
	case ".txt":
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

// safeFilename keeps ASCII letters, digits, spaces, '.', '-', '_' and
// parentheses, replacing anything else with '_', and never returns "".
func safeFilename(name string) string {
	name = path.Base(strings.ReplaceAll(name, `\`, "/"))
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_', r == ' ', r == '(', r == ')':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := strings.Trim(b.String(), ". ")
	if s == "" || s == "_" {
		s = "file"
	}
	if len(s) > 120 {
		s = s[len(s)-120:]
	}
	return s
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}
