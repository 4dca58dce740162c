package twiliotest

import (
	"bytes"
	"html/template"
	"net/http"
	"slices"
)

var outboxPage = template.Must(template.New("outbox").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Outbox (SMS) – pmsbridge dev</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 60rem; padding: 0 1rem; color: #1a1a1a; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .4rem .6rem; border-bottom: 1px solid #ddd; }
td.body { white-space: pre-wrap; max-width: 30rem; }
th { font-size: .9rem; color: #555; }
</style>
</head>
<body>
<h1>Outbox (SMS)</h1>
<p>Every text message the development Twilio sandbox accepted, newest first. Nothing here left this
machine.</p>
{{if not .}}<p>No text messages yet.</p>{{else}}
<table>
<thead><tr><th>Created</th><th>To</th><th>From</th><th>Status</th><th>Segments</th><th>Text</th></tr></thead>
<tbody>
{{range .}}<tr>
<td>{{.DateCreated.Format "2006-01-02 15:04:05 MST"}}</td>
<td>{{.To}}</td>
<td>{{if .From}}{{.From}}{{else}}{{.MessagingServiceSID}}{{end}}</td>
<td>{{.Status}}</td>
<td>{{.NumSegments}}</td>
<td class="body">{{.Body}}</td>
</tr>
{{end}}</tbody>
</table>
{{end}}
</body>
</html>
`))

// OutboxHandler serves the outbox page: every message created, newest
// first, with time, recipient, sender, status, segments and text. Mount it
// anywhere (it ignores the path); the sandbox also serves it at "/".
func (s *Sandbox) OutboxHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		msgs := s.Messages()
		slices.Reverse(msgs)
		var b bytes.Buffer
		if err := outboxPage.Execute(&b, msgs); err != nil {
			http.Error(w, "outbox: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(b.Bytes())
	})
}
