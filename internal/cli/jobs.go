package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/config"
	"github.com/physitrack/pmsbridge/internal/app"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
	"github.com/physitrack/pmsbridge/support"
	"github.com/spf13/cobra"
)

// readOnly marks a command made by toolsCmd that only reads: it needs only
// redis.url (secrets.encryption_key is optional) instead of the whole
// configuration of `run`.
const readOnly = "pmsbridge.read-only"

// markReadOnly marks commands as readOnly and says so in their help.
func markReadOnly(cmds ...*cobra.Command) {
	for _, c := range cmds {
		c.Annotations = map[string]string{readOnly: "yes"}
		long := c.Long
		if long == "" {
			long = c.Short + "."
		}
		c.Long = long + "\n\nOnly reads: needs nothing but redis.url (secrets.encryption_key may be left out)."
	}
}

// toolsCmd makes a command that opens the support tools with the same
// configuration as `run` (only redis.url for commands marked readOnly).
func (e *env) toolsCmd(use, short, long string, args cobra.PositionalArgs, run func(cmd *cobra.Command, t *app.Tools, args []string) error) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Long: long, Args: args,
		RunE: func(cmd *cobra.Command, a []string) error {
			cfg, err := e.loadConfigFor(cmd, cmd.Annotations[readOnly] != "")
			if err != nil {
				return err
			}
			t, err := app.OpenTools(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer t.Close()
			return run(cmd, t, a)
		}}
	config.AddFlags(cmd.Flags())
	return cmd
}

func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (e *env) jobsCmd() *cobra.Command {
	root := &cobra.Command{Use: "jobs", Short: "Support: failed jobs — stats, list, show, replay, delete, recovered",
		Long: `Find failed jobs, see why they failed and whose they are, and replay them after
a fix.

Every permanent failure (and every job still retrying after 3 attempts) is kept
in pmsbridge's failure ledger until the job succeeds or you delete it, even
after asynq has dropped its own archived copy. Each job's history (attempts,
replays and by whom, the outcome) is kept for 30 days after its last event.

  pmsbridge jobs stats
  pmsbridge jobs failed [--cause C] [--type T] [--clinic C] [--practitioner P] [--since 24h] [--wide] [--json]
  pmsbridge jobs show ID
  pmsbridge jobs replay ID…     or   pmsbridge jobs replay --cause C [--clinic C] … [--yes]
  pmsbridge jobs delete ID… [--yes]
  pmsbridge jobs recovered      jobs that succeeded after a replay, for a day

--practitioner takes an email or a practitioner id; --clinic a subscription id
or a clinic's exact name. A name that matches nobody is an error (exit 2).

stats, failed, show and recovered only read: they need only redis.url. Patient
names are shown only when secrets.encryption_key is given.

` + confirmRule + `

Causes: ` + support.CauseList(),
		RunE: groupRunE}
	var asJSON bool
	stats := e.toolsCmd("stats", "Tasks per queue and type: pending, active, scheduled, retrying, failed, done today", "", cobra.NoArgs,
		func(cmd *cobra.Command, t *app.Tools, _ []string) error {
			st, err := t.Jobs.Stats(cmd.Context())
			if err != nil {
				return err
			}
			n, err := t.Store.CountFailures(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return e.printJSON(map[string]any{"stats": st, "failure_ledger": n})
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "QUEUE\tTYPE\tPENDING\tACTIVE\tSCHEDULED\tRETRYING\tFAILED\tDONE TODAY")
			for _, s := range st {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", s.Queue, s.Type, s.Pending, s.Active, s.Scheduled, s.Retrying, s.Failed, s.DoneToday)
			}
			tw.Flush()
			fmt.Fprintf(e.stdout, "\nFailure ledger: %s (pmsbridge jobs failed)\n", pmsbridge.Count(int(n), "entry", "entries"))
			return nil
		})
	stats.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var f listFlags
	failed := e.toolsCmd("failed", "List failed jobs (newest first), with their clinic, practitioner and Cliniko user", "", cobra.NoArgs,
		func(cmd *cobra.Command, t *app.Tools, _ []string) error {
			filter, err := f.resolve(cmd.Context(), t)
			if err != nil {
				return err
			}
			_, rows, err := support.Select(cmd.Context(), t.Store, filter)
			if err != nil {
				return err
			}
			if f.asJSON {
				return e.printJSON(map[string]any{"jobs": rows})
			}
			if len(rows) == 0 {
				fmt.Fprintln(e.stdout, "No failed jobs match.")
				return nil
			}
			e.jobTable(rows, t.Keys != nil, f.wide, false)
			fmt.Fprintf(e.stdout, "\n%s.%s See one with: pmsbridge jobs show ID\n", support.Summary(rows, "failed job", "failed jobs"), wholeIDs(f.wide))
			return nil
		})
	f.add(failed, "only")
	failed.Flags().BoolVar(&f.all, "all", false, "include jobs that are still being retried")

	var showJSON bool
	show := e.toolsCmd("show ID", "Show everything known about a job: why it failed, whose it is, its history, the patient's Cliniko calls", "", cobra.ExactArgs(1),
		func(cmd *cobra.Command, t *app.Tools, args []string) error {
			d, err := support.Show(cmd.Context(), t.Store, args[0], 20)
			if errors.Is(err, support.ErrUnknownJob) {
				return fmt.Errorf("no failed job %q in the failure ledger, and no history of it (list them with: pmsbridge jobs failed --all)", args[0])
			}
			if err != nil {
				return err
			}
			if showJSON {
				return e.printJSON(d)
			}
			e.showJob(d)
			return nil
		})
	show.Flags().BoolVar(&showJSON, "json", false, "print JSON: the job, its history and the patient's recent Cliniko calls")

	var r listFlags
	var replayYes *confirmer
	var replayBy string
	replay := e.toolsCmd("replay [ID…]", "Run failed jobs again: by id, or all matching --cause/--type/--clinic/--practitioner/--since",
		`Run failed jobs again with a fresh retry budget: one or more by id, or every
permanent failure matching --cause, --type, --clinic, --practitioner and --since.
Each job's history records the replay as the CLI's, by --by (default: your OS
user@host).

Asks first on a terminal when it replays several ids or by filter, saying how
many jobs and of which clinic; --yes replays without asking. Without a terminal
and without --yes it exits 2 and replays nothing; answering anything but "y"
exits 1 ("Nothing replayed."), as does a filter that matches no job.`, cobra.ArbitraryArgs,
		func(cmd *cobra.Command, t *app.Tools, args []string) error {
			ctx := store.ActingAs(cmd.Context(), store.Actor{Via: store.ViaCLI, Who: cliUser(replayBy)})
			list, rows, err := e.replayable(ctx, t, args, &r)
			if err != nil {
				return err
			}
			if len(list) == 0 {
				// Nothing done is not "done": a script's step that
				// replays nothing learns it from the exit code.
				if r.asJSON {
					if err := e.printJSON(map[string]int{"replayed": 0}); err != nil {
						return err
					}
				}
				return declinedError{"No failed jobs match; nothing replayed."}
			}
			if replayConfirms(args) {
				if err := replayYes.ask("Replay "+support.Summary(rows, "failed job", "failed jobs")+"?", "Nothing replayed."); err != nil {
					return err
				}
			}
			n, err := t.Jobs.ReplayList(ctx, list)
			if err != nil {
				return fmt.Errorf("replayed %s; %w", pmsbridge.Count(n, "job", "jobs"), err)
			}
			if r.asJSON {
				return e.printJSON(map[string]int{"replayed": n})
			}
			fmt.Fprintf(e.stdout, "Replayed %s. Watch them with: pmsbridge jobs failed --all, and pmsbridge jobs recovered\n", support.Summary(rows, "job", "jobs"))
			return nil
		})
	replay.PreRunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 && r.filtered() {
			return usageError{errors.New("give job ids or filters (--cause, --type, --clinic, --practitioner, --since, --search), not both")}
		}
		if len(args) == 0 && !r.filtered() {
			return usageError{errors.New("say what to replay: job ids, or --cause/--type/--clinic/--practitioner/--since/--search")}
		}
		if err := checkBy(replayBy); err != nil {
			return err
		}
		if replayConfirms(args) {
			return replayYes.canAsk(cmd)
		}
		return nil
	}
	r.add(replay, "replay every failed job of")
	replay.Flags().Lookup("json").Usage = "print {\"replayed\":N}"
	replay.Flags().StringVar(&replayBy, "by", "", "who is replaying, for the jobs' history (default: your OS user@host)")
	replayYes = e.addYes(replay, "replay")

	var delYes *confirmer
	var delBy string
	del := e.toolsCmd("delete ID…", "Give up on failed jobs: remove them from the failure ledger (and asynq's archive)",
		`Give up on failed jobs for good: their failure-ledger entries go, and so do
asynq's archived copies. Nothing is deleted unless every id is in the ledger.
Each job's history records the deletion, by --by (default: your OS user@host).

Always asks first on a terminal; --yes deletes without asking. Without a
terminal and without --yes it exits 2 and deletes nothing; answering anything
but "y" exits 1 ("Nothing deleted.").`, cobra.MinimumNArgs(1),
		func(cmd *cobra.Command, t *app.Tools, args []string) error {
			ctx := store.ActingAs(cmd.Context(), store.Actor{Via: store.ViaCLI, Who: cliUser(delBy)})
			for _, id := range args {
				_, err := t.Store.GetFailure(ctx, id)
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no failed job %q in the failure ledger; nothing deleted", id)
				}
				if err != nil {
					return err
				}
			}
			if err := delYes.ask(fmt.Sprintf("Delete %s for good?", pmsbridge.Count(len(args), "failed job", "failed jobs")), "Nothing deleted."); err != nil {
				return err
			}
			for _, id := range args {
				err := t.Jobs.Delete(ctx, id)
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no failed job %q in the failure ledger", id)
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "Deleted %s\n", id)
			}
			return nil
		})
	delYes = e.addYes(del, "delete")
	del.Flags().StringVar(&delBy, "by", "", "who is deleting, for the jobs' history (default: your OS user@host)")
	del.PreRunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkBy(delBy); err != nil {
			return err
		}
		return delYes.canAsk(cmd)
	}

	var rec listFlags
	recovered := e.toolsCmd("recovered", "List jobs that succeeded after a replay, in the last day (newest first)", "", cobra.NoArgs,
		func(cmd *cobra.Command, t *app.Tools, _ []string) error {
			filter, err := rec.resolve(cmd.Context(), t)
			if err != nil {
				return err
			}
			rows, err := support.SelectRecovered(cmd.Context(), t.Store, filter)
			if err != nil {
				return err
			}
			if rec.asJSON {
				return e.printJSON(map[string]any{"jobs": rows})
			}
			if len(rows) == 0 {
				fmt.Fprintln(e.stdout, "No job recovered after a replay in the last day matches.")
				return nil
			}
			e.jobTable(rows, t.Keys != nil, rec.wide, true)
			fmt.Fprintf(e.stdout, "\n%s recovered after a replay.%s See one with: pmsbridge jobs show ID\n", support.Summary(rows, "job", "jobs"), wholeIDs(rec.wide))
			return nil
		})
	rec.add(recovered, "only")

	markReadOnly(stats, failed, show, recovered)
	root.AddCommand(stats, failed, show, replay, del, recovered)
	return root
}

// replayable is what a replay runs: the ledger entries of ids, or those
// the filters select (permanent failures only), with their rows.
func (e *env) replayable(ctx context.Context, t *app.Tools, ids []string, f *listFlags) ([]store.Failure, []support.Job, error) {
	if len(ids) == 0 {
		filter, err := f.resolve(ctx, t)
		if err != nil {
			return nil, nil, err
		}
		return support.Select(ctx, t.Store, filter)
	}
	list, err := t.Jobs.Matching(ctx, jobs.ReplayFilter{IDs: ids})
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, fmt.Errorf("a job id is not in the failure ledger (list them with: pmsbridge jobs failed)")
	}
	if err != nil {
		return nil, nil, err
	}
	rows, err := support.Rows(ctx, t.Store, list)
	return list, rows, err
}

// listFlags are the filters of the listing and replaying commands.
type listFlags struct {
	typ, cause, clinic, practitioner, since, search string
	all, asJSON, wide                               bool
}

// add registers the filters on cmd; verb starts their help ("only", "replay
// every failed job of").
func (f *listFlags) add(cmd *cobra.Command, verb string) {
	fl := cmd.Flags()
	fl.StringVar(&f.typ, "type", "", verb+" this task type (e.g. programme:upload_pdf)")
	fl.StringVar(&f.cause, "cause", "", verb+" this cause (e.g. cliniko_unauthorized)")
	fl.StringVar(&f.clinic, "clinic", "", verb+" this clinic: a subscription id or the clinic's exact name")
	fl.StringVar(&f.practitioner, "practitioner", "", verb+" this practitioner: an email or a practitioner id")
	fl.StringVar(&f.since, "since", "", verb+" failures since a time (RFC 3339) or a duration ago (e.g. 24h)")
	fl.StringVar(&f.search, "search", "", verb+" jobs whose id, reason, clinic, practitioner, patient or Cliniko user contains this text")
	fl.BoolVar(&f.asJSON, "json", false, "print the {\"jobs\":[…]} JSON document")
	if !strings.HasPrefix(verb, "replay") {
		fl.BoolVar(&f.wide, "wide", false, "show whole ids, the state and the reason")
	}
}

func (f *listFlags) filtered() bool {
	return f.typ != "" || f.cause != "" || f.clinic != "" || f.practitioner != "" || f.since != "" || f.search != ""
}

// resolve checks the filters and looks up the clinic and practitioner they
// name; a bad one is a usage error (exit 2) that changes nothing.
func (f *listFlags) resolve(ctx context.Context, t *app.Tools) (support.Filter, error) {
	q := support.Query{Cause: f.cause, Type: f.typ, Clinic: f.clinic, Practitioner: f.practitioner, Since: f.since, Search: f.search, All: f.all}
	filter, err := q.Resolve(ctx, t.Store, time.Now())
	var qe *support.QueryError
	if errors.As(err, &qe) {
		return filter, usageError{err}
	}
	return filter, err
}

// jobTable prints rows as a table: ids shortened unless wide; the patient
// column only when names can be decrypted; recovered lists say who
// replayed and when the job recovered instead of its attempts.
func (e *env) jobTable(rows []support.Job, patients, wide, recovered bool) {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	cols := []string{"ID", "TYPE", "CAUSE", "CLINIC", "PRACTITIONER", "CLINIKO KEY OF"}
	if patients {
		cols = append(cols, "PATIENT")
	}
	if recovered {
		cols = append(cols, "REPLAYED BY", "RECOVERED")
	} else {
		cols = append(cols, "ATTEMPTS", "LAST FAILED")
	}
	if wide {
		cols = append(cols, "STATE", "REASON")
	}
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
	for _, j := range rows {
		id := j.ID
		if !wide {
			id = support.ShortID(id)
		}
		cells := []string{id, j.Type, j.Cause, "-", "-", orDash(j.UserText())}
		if j.Clinic != nil {
			cells[3] = j.Clinic.Name
		}
		if p := j.Practitioner; p != nil {
			cells[4] = p.Name + " <" + p.Email + ">"
		} else if j.PractitionerID != "" {
			cells[4] = j.PractitionerID
		}
		if patients {
			name := "-"
			if j.Patient != nil && j.Patient.Name != "" {
				name = j.Patient.Name
			}
			cells = append(cells, name)
		}
		if recovered {
			by, at := "-", "-"
			if j.Replayed != nil {
				by = j.Replayed.By.String()
			}
			if j.RecoveredAt != nil {
				at = j.RecoveredAt.Local().Format("2006-01-02 15:04")
			}
			cells = append(cells, by, at)
		} else {
			cells = append(cells, fmt.Sprint(j.Attempts), j.LastFailedAt.Local().Format("2006-01-02 15:04"))
		}
		if wide {
			cells = append(cells, j.State, j.Reason)
		}
		for i, c := range cells {
			cells[i] = cell(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
}

// showJob prints one job: what, why, whose, its history, the patient's
// recent Cliniko calls and what to do next.
func (e *env) showJob(d support.Detail) {
	help := pmsbridge.Cause(d.Cause).Info().Support
	var cause, practitioner, clinic, patient, keyOf, replayed, recovered, programme string
	if d.Cause != "" {
		cause = d.Cause + " (" + help.Title + ")"
	}
	if p := d.Practitioner; p != nil {
		practitioner = fmt.Sprintf("%s <%s> (%s)", p.Name, p.Email, p.ID)
	} else {
		practitioner = d.PractitionerID
	}
	if c := d.Clinic; c != nil {
		clinic = fmt.Sprintf("%s (%s)", c.Name, c.ID)
	}
	if p := d.Patient; p != nil {
		patient = p.ID
		if p.Name != "" {
			patient = p.Name + " (" + p.ID + ")"
		}
	} else {
		patient = d.PatientID
	}
	if u := d.ClinikoUser; u != nil {
		keyOf = fmt.Sprintf("%s, Cliniko user %s, key saved by %s", d.UserText(), u.ID, u.PractitionerID)
	}
	if x := d.Replayed; x != nil {
		replayed = x.At.Local().Format(time.RFC3339) + " by " + x.By.String()
	}
	if d.RecoveredAt != nil {
		recovered = d.RecoveredAt.Local().Format(time.RFC3339)
	}
	if d.ProgrammeID != "" {
		programme = fmt.Sprintf("%s version %d", d.ProgrammeID, d.Version)
	}
	kvs := [][2]string{{"id", d.ID}, {"type", d.Type}, {"queue", d.Queue}, {"state", d.State}, {"cause", cause}, {"reason", d.Reason}}
	if d.Cause != "" {
		kvs = append(kvs, [2]string{"what it means", help.Means}, [2]string{"how to fix", help.Fix})
	}
	kvs = append(kvs, [][2]string{{"clinic", clinic}, {"practitioner", practitioner}, {"patient", patient}, {"Cliniko key of", keyOf}, {"programme", programme}}...)
	if d.State == "failed" || d.State == "retrying" {
		kvs = append(kvs, [2]string{"attempts", fmt.Sprint(d.Attempts)})
	}
	if !d.LastFailedAt.IsZero() {
		kvs = append(kvs, [2]string{"first failed", d.FirstFailedAt.Local().Format(time.RFC3339)}, [2]string{"last failed", d.LastFailedAt.Local().Format(time.RFC3339)})
	}
	kvs = append(kvs, [2]string{"replayed", replayed}, [2]string{"recovered", recovered})
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	for _, kv := range kvs {
		if kv[1] != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", kv[0], cell(kv[1]))
		}
	}
	tw.Flush()
	if len(d.History) > 0 {
		fmt.Fprintln(e.stdout, "\nHistory (oldest first):")
		tw = tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		for _, ev := range d.History {
			fmt.Fprintf(tw, "  %s\t%s\n", ev.At.Local().Format("2006-01-02 15:04:05"), cell(support.EventText(ev)))
		}
		tw.Flush()
	}
	if len(d.Audit) > 0 {
		fmt.Fprintln(e.stdout, "\nRecent Cliniko calls and events for this patient (newest first):")
		tw = tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		for _, a := range d.Audit {
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\n", a.At.Local().Format("2006-01-02 15:04:05"), a.Op, a.Status, cell(a.Detail))
		}
		tw.Flush()
	}
	if d.State == "failed" || d.State == "retrying" {
		fmt.Fprintf(e.stdout, "\nReplay it with: pmsbridge jobs replay %s\n", d.ID)
	}
}

// cliUser is who a CLI replay or deletion is recorded as: --by, else the
// OS user@host.
func cliUser(by string) string {
	if by = strings.TrimSpace(by); by != "" {
		return by
	}
	name := ""
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if host, err := os.Hostname(); err == nil && host != "" {
		if name == "" {
			return "unknown user@" + host
		}
		return name + "@" + host
	}
	return name
}

// checkBy refuses a --by that could not be shown as given.
func checkBy(by string) error {
	if p := store.WhoProblem(by); p != "" {
		return usageError{fmt.Errorf("--by must be %s", p)}
	}
	return nil
}

func wholeIDs(wide bool) string {
	if wide {
		return ""
	}
	return " Whole ids: --wide or --json."
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// cell makes outside text safe for a table row: no tabs, line breaks or
// other control characters.
func cell(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return ' '
		}
		return r
	}, s)
}

// replayConfirms reports whether a replay asks first: by filter (no ids) or
// several ids.
func replayConfirms(ids []string) bool { return len(ids) != 1 }

func readLine(r io.Reader) (string, error) {
	if r == nil {
		return "", nil
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}
