package bridge

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
	"github.com/physitrack/pmsbridge/support"
)

// The admin API's job routes: the same filters, rows and histories as
// `pmsbridge jobs` (package support), so the CLI's --json and the API print
// the same documents.

// jobQuery reads a job listing's filters from the query string: type,
// cause, practitioner (email or id; practitioner_id is the same), clinic
// (subscription id or exact name; subscription_id is the same), since, and
// state=failed (default) or all.
func jobQuery(q url.Values) (support.Query, string) {
	out := support.Query{Type: q.Get("type"), Cause: q.Get("cause"), Since: q.Get("since"), Search: q.Get("search")}
	var problem string
	out.Practitioner, problem = either(q, "practitioner", "practitioner_id")
	if problem != "" {
		return out, problem
	}
	out.Clinic, problem = either(q, "clinic", "subscription_id")
	if problem != "" {
		return out, problem
	}
	switch q.Get("state") {
	case "", "failed":
	case "all":
		out.All = true
	default:
		return out, "state must be failed or all"
	}
	return out, ""
}

// either reads one of two names for the same parameter.
func either(q url.Values, name, alias string) (string, string) {
	a, b := q.Get(name), q.Get(alias)
	if a != "" && b != "" && a != b {
		return "", "give " + name + " or " + alias + ", not both"
	}
	if a == "" {
		a = b
	}
	return a, ""
}

// resolveJobQuery resolves q, answering 400 for a bad filter.
func (s *Server) resolveJobQuery(w http.ResponseWriter, r *http.Request, q support.Query) (support.Filter, bool) {
	f, err := q.Resolve(r.Context(), s.deps.Store, s.cfg.Now())
	var qe *support.QueryError
	switch {
	case errors.As(err, &qe):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return f, false
	case err != nil:
		s.errorJSON(w, r, err)
		return f, false
	}
	return f, true
}

// apiJobs lists the failure ledger with the query's filters.
func (s *Server) apiJobs(w http.ResponseWriter, r *http.Request) {
	s.listJobs(w, r, func(ctx context.Context, f support.Filter) ([]support.Job, error) {
		_, rows, err := support.Select(ctx, s.deps.Store, f)
		return rows, err
	})
}

// apiRecovered lists the jobs that succeeded after a replay in the last
// day, with the listing's filters (since: recovered since).
func (s *Server) apiRecovered(w http.ResponseWriter, r *http.Request) {
	s.listJobs(w, r, func(ctx context.Context, f support.Filter) ([]support.Job, error) {
		return support.SelectRecovered(ctx, s.deps.Store, f)
	})
}

// listJobs answers {"jobs":[…]} with the rows that list finds for the
// query's filters (400 for a bad filter).
func (s *Server) listJobs(w http.ResponseWriter, r *http.Request, list func(context.Context, support.Filter) ([]support.Job, error)) {
	q, problem := jobQuery(r.URL.Query())
	if problem != "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": problem})
		return
	}
	f, ok := s.resolveJobQuery(w, r, q)
	if !ok {
		return
	}
	rows, err := list(r.Context(), f)
	if err != nil {
		s.errorJSON(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": rows})
}

// apiJob shows one job: in the ledger, recently recovered, or known only by
// its history (succeeded or deleted); 404 when nothing is known of it.
func (s *Server) apiJob(w http.ResponseWriter, r *http.Request) {
	d, err := support.Show(r.Context(), s.deps.Store, r.PathValue("id"), 20)
	if errors.Is(err, support.ErrUnknownJob) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found"})
		return
	}
	if err != nil {
		s.errorJSON(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) apiDeleteJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ctx := store.ActingAs(r.Context(), store.Actor{Via: store.ViaAPI, Who: r.URL.Query().Get("by")})
	if p := store.WhoProblem(r.URL.Query().Get("by")); p != "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "by must be " + p})
		return
	}
	if _, err := s.deps.Store.GetFailure(ctx, id); err != nil {
		s.errorJSON(w, r, err)
		return
	}
	if err := s.deps.Jobs.Delete(ctx, id); err != nil {
		s.errorJSON(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"deleted": id})
}

// replayRequest is POST /admin/api/jobs/replay: ids, or filters (as the
// listing's); dry_run counts without replaying; by names who asks, for the
// jobs' history.
type replayRequest struct {
	IDs            []string `json:"ids"`
	Cause          string   `json:"cause"`
	Type           string   `json:"type"`
	PractitionerID string   `json:"practitioner_id"`
	Practitioner   string   `json:"practitioner"`
	SubscriptionID string   `json:"subscription_id"`
	Clinic         string   `json:"clinic"`
	Since          string   `json:"since"`
	Search         string   `json:"search"`
	DryRun         bool     `json:"dry_run"`
	By             string   `json:"by"`
}

// replayAnswer says how many jobs and where: {"replayed":N} (or, for a dry
// run, "dry_run":true and "matched":N), a summary for a confirmation ("3
// failed jobs of Demo Physio Clinic"), the count per clinic, and the ids.
type replayAnswer struct {
	Replayed *int                  `json:"replayed,omitempty"`
	DryRun   bool                  `json:"dry_run,omitempty"`
	Matched  *int                  `json:"matched,omitempty"`
	Summary  string                `json:"summary"`
	Clinics  []support.ClinicCount `json:"clinics"`
	IDs      []string              `json:"ids"`
}

func (s *Server) apiReplay(w http.ResponseWriter, r *http.Request) {
	var in replayRequest
	if !decodeBody(w, r, &in) {
		return
	}
	if p := store.WhoProblem(in.By); p != "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "by must be " + p})
		return
	}
	ctx := store.ActingAs(r.Context(), store.Actor{Via: store.ViaAPI, Who: in.By})
	q := url.Values{"type": {in.Type}, "cause": {in.Cause}, "since": {in.Since}, "search": {in.Search}, "practitioner": {in.Practitioner},
		"practitioner_id": {in.PractitionerID}, "clinic": {in.Clinic}, "subscription_id": {in.SubscriptionID}}
	query, problem := jobQuery(q)
	if problem != "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": problem})
		return
	}
	hasFilter := query != (support.Query{})
	switch {
	case len(in.IDs) > 0 && hasFilter:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "give ids or filters (cause, type, clinic, practitioner, since, search), not both"})
		return
	case len(in.IDs) == 0 && !hasFilter:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "give ids, or filters (cause, type, clinic, practitioner, since, search) to replay"})
		return
	}
	var list []store.Failure
	var rows []support.Job
	if hasFilter {
		f, ok := s.resolveJobQuery(w, r, query)
		if !ok {
			return
		}
		var err error
		if list, rows, err = support.Select(ctx, s.deps.Store, f); err != nil {
			s.errorJSON(w, r, err)
			return
		}
	} else {
		var err error
		list, err = s.deps.Jobs.Matching(ctx, jobs.ReplayFilter{IDs: in.IDs})
		if errors.Is(err, store.ErrNotFound) {
			writeJSON(w, http.StatusNotFound, map[string]any{"error": "a job id is not in the failure ledger", "replayed": 0})
			return
		}
		if err == nil {
			rows, err = support.Rows(ctx, s.deps.Store, list)
		}
		if err != nil {
			s.errorJSON(w, r, err)
			return
		}
	}
	out := replayAnswer{Summary: support.Summary(rows, "failed job", "failed jobs"), Clinics: support.Clinics(rows), IDs: []string{}}
	for _, x := range list {
		out.IDs = append(out.IDs, x.TaskID)
	}
	if in.DryRun {
		n := len(list)
		out.DryRun, out.Matched = true, &n
		writeJSON(w, http.StatusOK, out)
		return
	}
	n, err := s.deps.Jobs.ReplayList(ctx, list)
	out.Replayed = &n
	if err != nil {
		s.logger(r.Context()).Error("admin api replay", "replayed", n, "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "internal error", "replayed": n})
		return
	}
	writeJSON(w, http.StatusOK, out)
}
