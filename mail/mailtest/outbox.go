package mailtest

import (
	"bytes"
	"html/template"
	"net/http"
	"slices"
	"strings"
)

var outboxPage = template.Must(template.New("outbox").Funcs(template.FuncMap{"join": strings.Join}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Outbox (email) – pmsbridge dev</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 60rem; padding: 0 1rem; color: #1a1a1a; }
article { border: 1px solid #ccc; border-radius: 6px; padding: .75rem 1rem; margin: 1rem 0; }
h2 { font-size: 1.05rem; margin: 0 0 .4rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1rem; margin: 0 0 .5rem; font-size: .9rem; }
dt { color: #555; }
pre { white-space: pre-wrap; background: #f6f6f6; padding: .75rem; border-radius: 4px; margin: 0; }
.note { color: #8a4b00; }
</style>
</head>
<body>
<h1>Outbox (email)</h1>
<p>Every email the development mail server accepted, newest first; one entry per Message-ID, as a
patient's mailbox shows it. Nothing here left this machine.</p>
{{if not .}}<p>No email yet.</p>{{end}}
{{range .}}<article>
<h2>{{if .Subject}}{{.Subject}}{{else}}(no subject){{end}}</h2>
<dl>
<dt>To</dt><dd>{{join .To ", "}}</dd>
<dt>From</dt><dd>{{.Header.Get "From"}}</dd>
<dt>Received</dt><dd>{{.Received.Format "2006-01-02 15:04:05 MST"}}</dd>
<dt>Message-ID</dt><dd>{{.MessageID}}</dd>
{{if gt .Deliveries 1}}<dt>Delivered</dt><dd class="note">{{.Deliveries}} times (a resend with the same Message-ID: shown once)</dd>{{end}}
</dl>
<pre>{{.Text}}</pre>
</article>
{{end}}
</body>
</html>
`))

// Handler serves the outbox page: the mailbox view (one entry per
// Message-ID) of every recipient, newest first, with subject, recipients,
// time and decoded text. Mount it anywhere (it ignores the path).
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		entries := s.Mailbox("")
		slices.Reverse(entries)
		var b bytes.Buffer
		if err := outboxPage.Execute(&b, entries); err != nil {
			http.Error(w, "outbox: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(b.Bytes())
	})
}
