package support

import (
	"context"
	"fmt"
	"html"
	"html/template"
	"slices"
	"strings"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/store"
)

// Chart is failed attempts per hour by cause, for the failures page.
type Chart struct {
	Hours []store.HourCount // oldest first, one per hour
	// Causes are the causes with failures in the chart's hours, in the
	// cause table's order, with their totals and colours.
	Causes []CauseTotal
	// Max is the tallest hour's count; Top is the axis' top (Max rounded
	// up to 1, 2 or 5 × a power of ten).
	Max, Top int
	// Total is every failed attempt in the chart.
	Total int
}

// CauseTotal is one cause's failed attempts in a chart.
type CauseTotal struct {
	Cause pmsbridge.Cause
	Total int
	Color string
}

// FailureChart reads the failed attempts of the hours hours up to now
// (the current hour included).
func FailureChart(ctx context.Context, st *store.Store, now time.Time, hours int) (Chart, error) {
	if hours < 1 {
		hours = 1
	}
	to := now.UTC().Truncate(time.Hour)
	counts, err := st.FailuresPerHour(ctx, to.Add(-time.Duration(hours-1)*time.Hour), to)
	if err != nil {
		return Chart{}, err
	}
	return NewChart(counts), nil
}

// palette colours causes by their place in the cause table (unknown causes
// get the last colour).
var palette = []string{"#c0392b", "#d35400", "#8e44ad", "#2c3e50", "#f39c12", "#16a085", "#7f8c8d", "#2980b9", "#27ae60", "#e84393", "#6c5ce7", "#b7950b", "#00838f", "#555555"}

func causeColor(c pmsbridge.Cause) string {
	i := slices.Index(pmsbridge.Causes, c)
	if i < 0 || i >= len(palette)-1 {
		return palette[len(palette)-1]
	}
	return palette[i]
}

// causeOrder sorts causes as the cause table does, unknown ones last by
// name.
func causeOrder(a, b pmsbridge.Cause) int {
	ia, ib := slices.Index(pmsbridge.Causes, a), slices.Index(pmsbridge.Causes, b)
	switch {
	case ia < 0 && ib < 0:
		return strings.Compare(string(a), string(b))
	case ia < 0:
		return 1
	case ib < 0:
		return -1
	}
	return ia - ib
}

// NewChart sums hourly counts into a chart.
func NewChart(hours []store.HourCount) Chart {
	c := Chart{Hours: hours}
	totals := map[pmsbridge.Cause]int{}
	for _, h := range hours {
		n := 0
		for cause, k := range h.ByCause {
			totals[cause] += k
			n += k
		}
		c.Max = max(c.Max, n)
		c.Total += n
	}
	for cause, n := range totals {
		c.Causes = append(c.Causes, CauseTotal{Cause: cause, Total: n, Color: causeColor(cause)})
	}
	slices.SortFunc(c.Causes, func(a, b CauseTotal) int { return causeOrder(a.Cause, b.Cause) })
	c.Top = niceTop(c.Max)
	return c
}

// niceTop rounds n up to 1, 2 or 5 times a power of ten (at least 1).
func niceTop(n int) int {
	for p := 1; ; p *= 10 {
		for _, m := range []int{1, 2, 5} {
			if m*p >= n {
				return m * p
			}
		}
	}
}

// The chart's drawing box, in SVG user units; it scales to its container.
const (
	chartW, chartH = 720, 200
	padL, padR     = 36, 8
	padT, padB     = 10, 24
)

// SVG draws the chart as an inline SVG (no script, no external assets):
// a stacked bar per hour, a <title> on every bar segment that says the
// hour, the cause and the count, the hours on the x axis every 6 hours
// (UTC), and a legend with each cause's total.
func (c Chart) SVG() template.HTML {
	var b strings.Builder
	n := len(c.Hours)
	label := fmt.Sprintf("Failed attempts per hour by cause: %s in the last %s", pmsbridge.Count(c.Total, "failed attempt", "failed attempts"), pmsbridge.Count(n, "hour", "hours"))
	fmt.Fprintf(&b, `<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="100%%" role="img" aria-label="%s">`, chartW, chartH, html.EscapeString(label))
	fmt.Fprintf(&b, `<title>%s</title>`, html.EscapeString(label))
	plotW, plotH := float64(chartW-padL-padR), float64(chartH-padT-padB)
	base := float64(padT) + plotH
	// The axis: 0 and the top.
	fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#999" stroke-width="1"/>`, padL, base, chartW-padR, base)
	fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="11" text-anchor="end" fill="#555">0</text>`, padL-4, base)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" text-anchor="end" fill="#555">%d</text>`, padL-4, padT+9, c.Top)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#ddd" stroke-width="1" stroke-dasharray="3 3"/>`, padL, padT, chartW-padR, padT)
	if n > 0 {
		slot := plotW / float64(n)
		barW := max(slot-2, 1)
		for i, h := range c.Hours {
			x := float64(padL) + float64(i)*slot + (slot-barW)/2
			y := base
			for _, ct := range c.Causes {
				k := h.ByCause[ct.Cause]
				if k == 0 {
					continue
				}
				hh := plotH * float64(k) / float64(c.Top)
				y -= hh
				tip := fmt.Sprintf("%s–%s UTC: %s %s", h.Hour.UTC().Format("Jan 2 15:04"), h.Hour.UTC().Add(time.Hour).Format("15:04"), pmsbridge.Count(k, "failed attempt", "failed attempts"), ct.Cause)
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" data-cause="%s" data-count="%d"><title>%s</title></rect>`,
					x, y, barW, hh, ct.Color, html.EscapeString(string(ct.Cause)), k, html.EscapeString(tip))
			}
			if h.Hour.UTC().Hour()%6 == 0 {
				fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" text-anchor="middle" fill="#555">%s</text>`, x+barW/2, chartH-8, h.Hour.UTC().Format("15:04"))
			}
		}
	}
	if c.Total == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13" text-anchor="middle" fill="#555">No failed attempts in the last %s.</text>`, chartW/2, chartH/2, pmsbridge.Count(n, "hour", "hours"))
	}
	b.WriteString(`</svg>`)
	if len(c.Causes) > 0 {
		b.WriteString(`<ul class="chart-legend">`)
		for _, ct := range c.Causes {
			fmt.Fprintf(&b, `<li><svg width="10" height="10" aria-hidden="true"><rect width="10" height="10" fill="%s"/></svg> <span title="%s">%s</span> %d</li>`,
				ct.Color, html.EscapeString(causeTitle(ct.Cause)), html.EscapeString(string(ct.Cause)), ct.Total)
		}
		b.WriteString(`</ul>`)
	}
	return template.HTML(b.String()) // every value from outside was escaped above
}
