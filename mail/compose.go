package mail

import (
	"bytes"
	"errors"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"

	"github.com/physitrack/pmsbridge"
)

// CodeEmail is what the email that gives a patient their programme code
// says. It holds no year of birth and no programme content by design: the
// email must not help someone who reads it in passing to open the
// programme, and its subject and headers must carry no health details.
type CodeEmail struct {
	// Clinic is the clinic's name: the sender's display name and in the
	// text. Required.
	Clinic string
	// Practitioner is the name of the practitioner who prescribed the
	// programme, shown in the text. Optional.
	Practitioner string
	// Code is the programme's 8-letter access code. Required.
	Code string
	// AccessURL is where the patient enters the code: public_url + "/access".
	// Required.
	AccessURL string
}

// Compose returns the code email addressed to to, with the given stable
// Message-ID (see Message). The subject is "Your access code from
// <clinic>"; the text tells the patient where to go, the code to enter, and
// that they will be asked for the year they were born (never the year
// itself).
func (c CodeEmail) Compose(to, messageID string) (Message, error) {
	c.Clinic, c.Practitioner = oneLine(c.Clinic), oneLine(c.Practitioner)
	switch {
	case c.Clinic == "":
		return Message{}, errors.New("mail: the code email needs the clinic's name")
	case !pmsbridge.ValidCode(c.Code):
		return Message{}, errors.New("mail: the code must be 8 lower-case letters")
	case !strings.HasPrefix(c.AccessURL, "https://") && !strings.HasPrefix(c.AccessURL, "http://"):
		return Message{}, errors.New("mail: the access address must be an http(s) URL")
	}
	var text, html bytes.Buffer
	if err := codeText.Execute(&text, c); err != nil {
		return Message{}, err
	}
	if err := codeHTML.Execute(&html, c); err != nil {
		return Message{}, err
	}
	return Message{
		To:        to,
		FromName:  c.Clinic,
		Subject:   "Your access code from " + c.Clinic,
		Text:      text.String(),
		HTML:      html.String(),
		MessageID: messageID,
	}, nil
}

// The wording is for a patient with no technical background: short lines,
// numbered steps, no jargon.
var codeText = texttemplate.Must(texttemplate.New("text").Parse(`Hello,

{{if .Practitioner}}{{.Practitioner}} at {{.Clinic}}{{else}}{{.Clinic}}{{end}} has prepared an exercise programme for you.

To open it:

1. Go to {{.AccessURL}}
2. Enter this code: {{.Code}}
3. When asked for your year of birth, enter the year you were born, in four digits.

Please keep this email. The same code opens your programme whenever it is updated.

If you have questions about your exercises, please contact {{.Clinic}}.
If you were not expecting this email, you can ignore it.
`))

var codeHTML = htmltemplate.Must(htmltemplate.New("html").Parse(`<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: Arial, Helvetica, sans-serif; font-size: 16px; line-height: 1.5; color: #1a1a1a; max-width: 560px; margin: 0 auto; padding: 16px;">
<p>Hello,</p>
<p>{{if .Practitioner}}{{.Practitioner}} at {{.Clinic}}{{else}}{{.Clinic}}{{end}} has prepared an exercise programme for you.</p>
<p>To open it:</p>
<ol>
<li>Go to <a href="{{.AccessURL}}">{{.AccessURL}}</a></li>
<li>Enter this code: <strong style="font-family: 'Courier New', monospace; font-size: 22px; letter-spacing: 2px;">{{.Code}}</strong></li>
<li>When asked for your year of birth, enter the year you were born, in four digits.</li>
</ol>
<p>Please keep this email. The same code opens your programme whenever it is updated.</p>
<p>If you have questions about your exercises, please contact {{.Clinic}}.<br>
If you were not expecting this email, you can ignore it.</p>
</body>
</html>
`))
