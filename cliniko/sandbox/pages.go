package sandbox

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.New("").ParseFS(templateFS, "templates/*.html"))

type userView struct {
	Name, Email, Role, ID string
	Keys                  []string
	Revoked               []string
}

type patientView struct {
	ID, Name, DateOfBirth, Email, Mobile, UpdatedAt, Href string
	Archived                                              bool
}

type accountView struct {
	ID, Name, Shard, APIURL string
	Users                   []userView
	Patients                []patientView
	Businesses              []Business
}

type fileView struct {
	ID, Filename, Description, ContentType, CreatedAt, Href string
	Size                                                    int64
}

// prefix is the path the sandbox is mounted under ("" for its own server).
func (s *Sandbox) prefix() string {
	u, err := url.Parse(s.url)
	if err != nil {
		return ""
	}
	return strings.TrimRight(u.Path, "/")
}

func dobText(d *string) string {
	switch {
	case d == nil:
		return "null"
	case *d == "":
		return `"" (empty)`
	}
	return *d
}

func (s *Sandbox) patientViewLocked(p *Patient) patientView {
	v := patientView{ID: p.ID, Name: strings.TrimSpace(p.FirstName + " " + p.LastName), DateOfBirth: dobText(p.DateOfBirth),
		Email: p.Email, UpdatedAt: ts(p.UpdatedAt), Archived: p.ArchivedAt != nil || p.DeletedAt != nil,
		Href: s.prefix() + "/sandbox/patients/" + p.ID}
	for _, ph := range p.PhoneNumbers {
		if v.Mobile == "" || ph.Type == "Mobile" {
			v.Mobile = ph.Type + " " + ph.Number
			if ph.Type == "Mobile" {
				break
			}
		}
	}
	return v
}

func (s *Sandbox) render(w http.ResponseWriter, name string, data any) {
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		http.Error(w, "template: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(b.Bytes())
}

// indexPage lists accounts, their users (with API keys: it is a sandbox)
// and patients.
func (s *Sandbox) indexPage(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	var accts []accountView
	for _, a := range s.accounts {
		av := accountView{ID: a.ID, Name: a.Name, Shard: a.Shard, APIURL: s.APIURL(a.Shard)}
		for _, id := range s.businessSeq {
			if b := s.businesses[id]; b.AccountID == a.ID {
				av.Businesses = append(av.Businesses, *b)
			}
		}
		var users []*User
		for _, u := range s.users {
			if u.AccountID == a.ID {
				users = append(users, u)
			}
		}
		slices.SortFunc(users, func(x, y *User) int { return cmpID(x.ID, y.ID) })
		for _, u := range users {
			uv := userView{ID: u.ID, Name: strings.TrimSpace(strings.Join([]string{u.Title, u.FirstName, u.LastName}, " ")), Email: u.Email, Role: u.Role}
			for _, k := range s.keys {
				if k.userID == u.ID {
					if k.revoked {
						uv.Revoked = append(uv.Revoked, k.key)
					} else {
						uv.Keys = append(uv.Keys, k.key)
					}
				}
			}
			slices.Sort(uv.Keys)
			slices.Sort(uv.Revoked)
			av.Users = append(av.Users, uv)
		}
		for _, id := range s.patientSeq {
			if p := s.patients[id]; p.AccountID == a.ID {
				av.Patients = append(av.Patients, s.patientViewLocked(p))
			}
		}
		accts = append(accts, av)
	}
	s.mu.Unlock()
	s.render(w, "index.html", map[string]any{"Accounts": accts, "Prefix": s.prefix(), "BaseURL": s.BaseURL()})
}

// patientPage shows one patient, the "Open in pmsbridge" button (exactly
// what Cliniko's custom patient button sends), its files and a form to
// change the date of birth.
func (s *Sandbox) patientPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	p, ok := s.patients[id]
	if !ok {
		s.mu.Unlock()
		http.NotFound(w, r)
		return
	}
	pv := s.patientViewLocked(p)
	full := clonePatient(p)
	var acct string
	for _, a := range s.accounts {
		if a.ID == p.AccountID {
			acct = a.Name + " (" + a.Shard + ")"
		}
	}
	var files []fileView
	for _, aid := range s.attachSeq {
		if at := s.attachments[aid]; at.PatientID == id {
			files = append(files, fileView{ID: at.ID, Filename: at.Filename, Description: at.Description,
				ContentType: at.ContentType, CreatedAt: ts(at.CreatedAt), Size: at.Size,
				Href: s.prefix() + "/sandbox/attachments/" + at.ID + "/content"})
		}
	}
	open := s.appURL + "/cliniko_patient_import?patient_id=" + url.QueryEscape(id)
	s.mu.Unlock()
	dob := ""
	if full.DateOfBirth != nil {
		dob = *full.DateOfBirth
	}
	s.render(w, "patient.html", map[string]any{"P": pv, "Full": full, "Account": acct, "Files": files,
		"OpenURL": open, "DOB": dob, "Prefix": s.prefix()})
}

// editDateOfBirth sets the date of birth from the form (empty → null) and
// bumps updated_at, so the app's periodic sync has something to pick up.
func (s *Sandbox) editDateOfBirth(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	v := strings.TrimSpace(r.PostForm.Get("date_of_birth"))
	ok := s.EditPatient(id, func(p *Patient) {
		if v == "" {
			p.DateOfBirth = nil
		} else {
			p.DateOfBirth = &v
		}
	})
	if !ok {
		http.NotFound(w, r)
		return
	}
	http.Redirect(w, r, s.prefix()+"/sandbox/patients/"+id, http.StatusSeeOther)
}

// downloadPage serves an attachment's bytes to the HTML page (no API key:
// it is the sandbox's own UI).
func (s *Sandbox) downloadPage(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	at, ok := s.attachments[r.PathValue("id")]
	var content []byte
	var ct, name string
	if ok {
		content, ct, name = at.Content, at.ContentType, at.Filename
	}
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	serveFile(w, content, ct, name)
}
