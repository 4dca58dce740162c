package support

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// Page is what the failures page shows for a query: the filter form with
// its choices, the failed jobs grouped by cause, the jobs recently
// recovered, and the chart.
type Page struct {
	Query Query
	// Problem is why the query could not be used (a *QueryError's
	// message); the page then lists nothing.
	Problem string
	Filter  Filter
	// Jobs are the failed jobs the query selects, newest first, and Groups
	// the same by cause (most jobs first), with support's words.
	Jobs    []Job
	Groups  []Group
	Summary string // "3 failed jobs of Demo Physio Clinic"
	// Recovered are the jobs the query selects that succeeded after a
	// replay in the last day.
	Recovered []Job
	// Chart is the failed attempts per hour of the last day, every clinic.
	Chart Chart
	// Choices of the filter form.
	Causes  []pmsbridge.CauseInfo
	Types   []string
	Clinics []store.Subscription
	Since   []SinceChoice
}

// Group is one cause's failed jobs.
type Group struct {
	Cause   pmsbridge.Cause
	Support pmsbridge.Support
	Jobs    []Job
	Summary string // "2 failed jobs of Demo Physio Clinic"
}

// SinceChoice is a choice of the "since" filter.
type SinceChoice struct{ Value, Label string }

// SinceChoices are the page's choices of "since" (the API and CLI take any
// time or duration).
var SinceChoices = []SinceChoice{{"", "any time"}, {"1h", "last hour"}, {"24h", "last 24 hours"}, {"168h", "last 7 days"}}

// ChartHours is how many hours the page's chart shows.
const ChartHours = 24

// LoadPage reads everything the failures page shows for q. A query that
// cannot be used is not an error: Problem says why and the lists are
// empty.
func LoadPage(ctx context.Context, st *store.Store, q Query, now time.Time) (Page, error) {
	p := Page{Query: q, Jobs: []Job{}, Recovered: []Job{}, Types: jobs.TaskTypes(), Since: SinceChoices}
	for _, c := range pmsbridge.Causes {
		p.Causes = append(p.Causes, c.Info())
	}
	var err error
	if p.Clinics, err = st.ListSubscriptions(ctx); err != nil {
		return p, err
	}
	slices.SortFunc(p.Clinics, func(a, b store.Subscription) int {
		return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
	})
	if p.Chart, err = FailureChart(ctx, st, now, ChartHours); err != nil {
		return p, err
	}
	p.Filter, err = q.Resolve(ctx, st, now)
	var qe *QueryError
	if errors.As(err, &qe) {
		p.Problem = qe.Error()
		return p, nil
	}
	if err != nil {
		return p, err
	}
	if _, p.Jobs, err = Select(ctx, st, p.Filter); err != nil {
		return p, err
	}
	if p.Recovered, err = SelectRecovered(ctx, st, p.Filter); err != nil {
		return p, err
	}
	p.Summary = Summary(p.Jobs, "failed job", "failed jobs")
	p.Groups = groupByCause(p.Jobs)
	return p, nil
}

// groupByCause groups rows by cause, the causes with most jobs first (the
// cause table's order between equals; causes this version does not know
// last).
func groupByCause(rows []Job) []Group {
	var groups []Group
	for _, r := range rows {
		c := pmsbridge.Cause(r.Cause)
		i := slices.IndexFunc(groups, func(g Group) bool { return g.Cause == c })
		if i < 0 {
			groups = append(groups, Group{Cause: c, Support: c.Info().Support})
			i = len(groups) - 1
		}
		groups[i].Jobs = append(groups[i].Jobs, r)
	}
	slices.SortStableFunc(groups, func(a, b Group) int {
		if d := len(b.Jobs) - len(a.Jobs); d != 0 {
			return d
		}
		return causeOrder(a.Cause, b.Cause)
	})
	for i := range groups {
		groups[i].Summary = Summary(groups[i].Jobs, "failed job", "failed jobs")
	}
	return groups
}
