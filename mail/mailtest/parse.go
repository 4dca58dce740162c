package mailtest

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
)

// Message is one accepted delivery.
type Message struct {
	// Seq numbers deliveries from 1 in order of arrival.
	Seq int
	// Received is when the server accepted it.
	Received time.Time
	// From and To are the envelope (MAIL FROM, RCPT TO).
	From string
	To   []string
	// TLS says whether the connection was encrypted; AuthUser who logged in.
	TLS      bool
	AuthUser string
	// ReplyLost is true when the server dropped the connection instead of
	// confirming (DropReplyNext): delivered, but the client did not know.
	ReplyLost bool

	// Raw is the message as received.
	Raw []byte
	// Header is the parsed header; Subject is decoded (RFC 2047) and
	// MessageID has no angle brackets.
	Header    mail.Header
	Subject   string
	MessageID string
	// Text and HTML are the decoded text/plain and text/html parts (the
	// first of each).
	Text string
	HTML string
	// ParseError says what could not be parsed, if anything.
	ParseError string
}

var wordDecoder = mime.WordDecoder{CharsetReader: func(charset string, input io.Reader) (io.Reader, error) {
	// Everything pmsbridge sends is UTF-8; other charsets are passed through.
	return input, nil
}}

// parse reads a raw message into a Message (envelope fields left empty).
func parse(raw []byte) Message {
	m := Message{Raw: raw}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		m.ParseError = err.Error()
		return m
	}
	m.Header = msg.Header
	if s, err := wordDecoder.DecodeHeader(msg.Header.Get("Subject")); err == nil {
		m.Subject = s
	} else {
		m.Subject = msg.Header.Get("Subject")
	}
	m.MessageID = strings.Trim(strings.TrimSpace(msg.Header.Get("Message-Id")), "<>")
	if err := m.walk(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body); err != nil {
		m.ParseError = err.Error()
	}
	return m
}

// walk finds the text and HTML parts, descending into multiparts.
func (m *Message) walk(contentType, encoding string, body io.Reader) error {
	if contentType == "" {
		contentType = "text/plain"
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return err
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			// NextPart decodes quoted-printable itself and drops the header.
			if err := m.walk(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p); err != nil {
				return err
			}
		}
	}
	b, err := io.ReadAll(decode(encoding, body))
	if err != nil {
		return err
	}
	switch {
	case mt == "text/plain" && m.Text == "":
		m.Text = string(b)
	case mt == "text/html" && m.HTML == "":
		m.HTML = string(b)
	}
	return nil
}

func decode(encoding string, r io.Reader) io.Reader {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, r) // skips line breaks itself
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	}
	return r
}
