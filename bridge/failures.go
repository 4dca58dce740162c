package bridge

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
	"github.com/physitrack/pmsbridge/support"
)

// The support pages of failed jobs (package support gives what they show):
// the failures page with its filters, chart and recently recovered jobs,
// a job's page with its history, and replay and delete, which ask for
// confirmation — saying how many jobs and of which clinics — before they
// act on more than one named job (delete: always).

// pageQuery reads the filters of the failures page (or of a form posted
// from it).
func pageQuery(v url.Values) support.Query {
	return support.Query{Cause: v.Get("cause"), Type: v.Get("type"), Clinic: v.Get("clinic"),
		Practitioner: v.Get("practitioner"), Since: v.Get("since"), Search: v.Get("search")}
}

// queryValues are q's non-empty filters, for an address.
func queryValues(q support.Query) url.Values {
	v := url.Values{}
	for k, x := range map[string]string{"cause": q.Cause, "type": q.Type, "clinic": q.Clinic, "practitioner": q.Practitioner, "since": q.Since, "search": q.Search} {
		if x != "" {
			v.Set(k, x)
		}
	}
	return v
}

// failuresPage is what the failures page template gets.
type failuresPage struct {
	support.Page
	Filtered bool
	Notice   string
	Stats    []jobs.Stat
}

func (s *Server) adminHome(w http.ResponseWriter, r *http.Request) {
	q := pageQuery(r.URL.Query())
	p, err := support.LoadPage(r.Context(), s.deps.Store, q, s.cfg.Now())
	if err != nil {
		s.Error(w, r, err)
		return
	}
	stats, _ := s.deps.Jobs.Stats(r.Context())
	s.page(w, r, http.StatusOK, "admin", "Failed jobs", failuresPage{Page: p, Filtered: q != (support.Query{}), Stats: stats,
		Notice: adminNotice(r.URL.Query().Get("notice"), r.URL.Query().Get("n"), s.clinicName(r, r.URL.Query().Get("where")))})
}

// clinicName is the name of subscription id, for a notice ("" when there
// is none): the name comes from the store, never from the address.
func (s *Server) clinicName(r *http.Request, id string) string {
	if id == "" {
		return ""
	}
	sub, err := s.deps.Store.GetSubscription(r.Context(), id)
	if err != nil {
		return ""
	}
	return sub.Name
}

func (s *Server) adminJobPage(w http.ResponseWriter, r *http.Request) {
	d, err := support.Show(r.Context(), s.deps.Store, r.PathValue("id"), 30)
	if errors.Is(err, support.ErrUnknownJob) {
		s.notFound(w, r)
		return
	}
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.page(w, r, http.StatusOK, "admin_job", "Job "+support.ShortID(d.ID), d)
}

// confirmPage asks before a replay or a deletion: what, how many, where.
type confirmPage struct {
	Action   string        // "/admin/replay" or "/admin/delete"
	Verb     string        // "Replay" or "Delete"
	Question string        // "Replay 3 failed jobs of Demo Physio Clinic?"
	Changed  bool          // the selection is not what the page showed: ask again
	Jobs     []support.Job // the first confirmShown of them
	More     int           // how many more there are
	IDs      []string
	Query    support.Query
	Count    int
	Back     string
}

// selection reads what a replay or delete form names: ids, or the page's
// filters (bulk). ok is false when the answer was written.
func (s *Server) selection(w http.ResponseWriter, r *http.Request) (list []store.Failure, rows []support.Job, q support.Query, ok bool) {
	ids := r.PostForm["id"]
	q = pageQuery(r.PostForm)
	switch {
	case len(ids) > 0:
		var err error
		list, err = s.deps.Jobs.Matching(r.Context(), jobs.ReplayFilter{IDs: ids})
		if errors.Is(err, store.ErrNotFound) {
			http.Redirect(w, r, "/admin/?notice=gone", http.StatusSeeOther)
			return nil, nil, q, false
		}
		if err == nil {
			rows, err = support.Rows(r.Context(), s.deps.Store, list)
		}
		if err != nil {
			s.Error(w, r, err)
			return nil, nil, q, false
		}
	case r.PostForm.Get("bulk") == "1":
		f, err := q.Resolve(r.Context(), s.deps.Store, s.cfg.Now())
		var qe *support.QueryError
		if errors.As(err, &qe) {
			http.Redirect(w, r, "/admin/?"+queryValues(q).Encode(), http.StatusSeeOther)
			return nil, nil, q, false
		}
		if err == nil {
			list, rows, err = support.Select(r.Context(), s.deps.Store, f)
		}
		if err != nil {
			s.Error(w, r, err)
			return nil, nil, q, false
		}
	}
	if len(list) == 0 {
		v := queryValues(q)
		v.Set("notice", "nothing")
		http.Redirect(w, r, "/admin/?"+v.Encode(), http.StatusSeeOther)
		return nil, nil, q, false
	}
	return list, rows, q, true
}

// confirmShown is how many jobs a confirmation lists (it counts them all).
const confirmShown = 50

// confirmed reports whether the form confirms exactly this many jobs; if
// not, it shows the confirmation page.
func (s *Server) confirmed(w http.ResponseWriter, r *http.Request, c confirmPage) bool {
	got := r.PostForm.Get("confirm")
	if got == itoa(c.Count) {
		return true
	}
	c.Changed = got != ""
	c.Back = "/admin/?" + queryValues(c.Query).Encode()
	if len(c.Jobs) > confirmShown {
		c.Jobs, c.More = c.Jobs[:confirmShown], len(c.Jobs)-confirmShown
	}
	s.page(w, r, http.StatusOK, "admin_confirm", c.Verb+"?", c)
	return false
}

// done sends the browser back to the failures page with the filters it
// had and a notice.
func (s *Server) done(w http.ResponseWriter, r *http.Request, q support.Query, notice string, rows []support.Job) {
	v := queryValues(q)
	v.Set("notice", notice)
	v.Set("n", itoa(len(rows)))
	if cs := support.Clinics(rows); len(cs) == 1 && cs[0].ID != "" {
		v.Set("where", cs[0].ID)
	}
	http.Redirect(w, r, "/admin/?"+v.Encode(), http.StatusSeeOther)
}

// adminReplay replays one job at once (a row's button), or several — a
// group, or everything the filters show — after a confirmation that says
// how many and where.
func (s *Server) adminReplay(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	list, rows, q, ok := s.selection(w, r)
	if !ok {
		return
	}
	if len(r.PostForm["id"]) != 1 {
		c := confirmPage{Action: "/admin/replay", Verb: "Replay", Question: "Replay " + support.Summary(rows, "failed job", "failed jobs") + "?",
			Jobs: rows, IDs: r.PostForm["id"], Query: q, Count: len(list)}
		if !s.confirmed(w, r, c) {
			return
		}
	}
	if _, err := s.deps.Jobs.ReplayList(r.Context(), list); err != nil {
		s.Error(w, r, err)
		return
	}
	s.done(w, r, q, "replayed", rows)
}

// adminDelete gives up on jobs, always after a confirmation.
func (s *Server) adminDelete(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	list, rows, q, ok := s.selection(w, r)
	if !ok {
		return
	}
	c := confirmPage{Action: "/admin/delete", Verb: "Delete", Question: "Delete " + support.Summary(rows, "failed job", "failed jobs") + " for good?",
		Jobs: rows, IDs: r.PostForm["id"], Query: q, Count: len(list)}
	if !s.confirmed(w, r, c) {
		return
	}
	for _, f := range list {
		if err := s.deps.Jobs.Delete(r.Context(), f.TaskID); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.Error(w, r, err)
			return
		}
	}
	s.done(w, r, q, "deleted", rows)
}
