package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/config"
	"github.com/physitrack/pmsbridge/internal/app"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
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
	root := &cobra.Command{Use: "jobs", Short: "Support: failed jobs — stats, list, show, replay, delete",
		Long: `Find failed jobs, see why they failed, and replay them after a fix.

Every permanent failure (and every job still retrying after 3 attempts) is kept
in pmsbridge's failure ledger until the job succeeds or you delete it, even
after asynq has dropped its own archived copy.

  pmsbridge jobs stats
  pmsbridge jobs failed [--cause C] [--type T] [--practitioner P] [--since 24h] [--json]
  pmsbridge jobs show ID
  pmsbridge jobs replay ID            or   pmsbridge jobs replay --cause C [--type T] [--yes]
  pmsbridge jobs delete ID… [--yes]

stats, failed and show only read: they need only redis.url.

` + confirmRule + `

Causes: ` + causeList(),
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
			fmt.Fprintf(e.stdout, "\nFailure ledger: %d entr%s (pmsbridge jobs failed)\n", n, map[bool]string{true: "y", false: "ies"}[n == 1])
			return nil
		})
	stats.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var f struct {
		typ, cause, practitioner, since string
		all, asJSON                     bool
	}
	failed := e.toolsCmd("failed", "List failed jobs (newest first)", "", cobra.NoArgs,
		func(cmd *cobra.Command, t *app.Tools, _ []string) error {
			filter := store.FailureFilter{Type: f.typ, Cause: pmsbridge.Cause(f.cause), PractitionerID: f.practitioner, PermanentOnly: !f.all}
			if f.cause != "" && !filter.Cause.Valid() {
				return usageError{fmt.Errorf("unknown cause %q; causes are: %s", f.cause, causeList())}
			}
			if f.since != "" {
				since, err := parseSince(f.since)
				if err != nil {
					return usageError{err}
				}
				filter.Since = since
			}
			list, err := t.Store.ListFailures(cmd.Context(), filter)
			if err != nil {
				return err
			}
			out := make([]jobs.JobJSON, 0, len(list))
			for _, x := range list {
				out = append(out, jobs.ToJSON(x))
			}
			if f.asJSON {
				return e.printJSON(map[string]any{"jobs": out})
			}
			if len(out) == 0 {
				fmt.Fprintln(e.stdout, "No failed jobs match.")
				return nil
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTYPE\tSTATE\tCAUSE\tATTEMPTS\tLAST FAILED\tREASON")
			for _, j := range out {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", j.ID, j.Type, j.State, j.Cause, j.Attempts, j.LastFailedAt.Local().Format("2006-01-02 15:04"), clip(j.Reason, 70))
			}
			tw.Flush()
			fmt.Fprintf(e.stdout, "\n%d job(s). See one with: pmsbridge jobs show ID\n", len(out))
			return nil
		})
	failed.Flags().StringVar(&f.typ, "type", "", "only this task type (e.g. programme:upload_pdf)")
	failed.Flags().StringVar(&f.cause, "cause", "", "only this cause (e.g. cliniko_unauthorized)")
	failed.Flags().StringVar(&f.practitioner, "practitioner", "", "only this practitioner id")
	failed.Flags().StringVar(&f.since, "since", "", "only failures since a time (RFC 3339) or a duration ago (e.g. 24h)")
	failed.Flags().BoolVar(&f.all, "all", false, "include jobs that are still being retried")
	failed.Flags().BoolVar(&f.asJSON, "json", false, "print the {\"jobs\":[…]} JSON document")

	var showJSON bool
	show := e.toolsCmd("show ID", "Show everything known about a failed job, with the patient's Cliniko calls", "", cobra.ExactArgs(1),
		func(cmd *cobra.Command, t *app.Tools, args []string) error {
			x, err := t.Store.GetFailure(cmd.Context(), args[0])
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no failed job %q in the failure ledger (list them with: pmsbridge jobs failed --all)", args[0])
			}
			if err != nil {
				return err
			}
			var audit []store.AuditEntry
			if x.PatientID != "" {
				audit, _ = t.Store.AuditOf(cmd.Context(), x.PatientID, 20)
			}
			j := jobs.ToJSON(x)
			if showJSON {
				return e.printJSON(struct {
					jobs.JobJSON
					Audit []store.AuditEntry `json:"audit"`
				}{j, audit})
			}
			help := x.Cause.Info().Support
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			for _, kv := range [][2]string{{"id", j.ID}, {"type", j.Type}, {"queue", j.Queue}, {"state", j.State}, {"cause", j.Cause + " (" + help.Title + ")"}, {"reason", j.Reason},
				{"what it means", help.Means}, {"how to fix", help.Fix},
				{"practitioner", j.PractitionerID}, {"patient", j.PatientID}, {"programme", j.ProgrammeID}, {"attempts", fmt.Sprint(j.Attempts)},
				{"first failed", j.FirstFailedAt.Local().Format(time.RFC3339)}, {"last failed", j.LastFailedAt.Local().Format(time.RFC3339)}} {
				if kv[1] != "" {
					fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
				}
			}
			tw.Flush()
			if len(audit) > 0 {
				fmt.Fprintln(e.stdout, "\nRecent Cliniko calls and events for this patient (newest first):")
				tw = tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
				for _, a := range audit {
					fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\n", a.At.Local().Format("2006-01-02 15:04:05"), a.Op, a.Status, a.Detail)
				}
				tw.Flush()
			}
			fmt.Fprintf(e.stdout, "\nReplay it with: pmsbridge jobs replay %s\n", j.ID)
			return nil
		})
	show.Flags().BoolVar(&showJSON, "json", false, "print JSON")

	var r struct {
		cause, typ, practitioner string
		asJSON                   bool
	}
	var replayYes *confirmer
	replay := e.toolsCmd("replay [ID…]", "Run failed jobs again: by id, or all matching --cause/--type/--practitioner",
		`Run failed jobs again with a fresh retry budget: one or more by id, or every
permanent failure matching --cause, --type and --practitioner.

Asks first on a terminal when it replays several ids or by filter; --yes
replays without asking. Without a terminal and without --yes it exits 2 and
replays nothing; answering anything but "y" exits 1 ("Nothing replayed.").`, cobra.ArbitraryArgs,
		func(cmd *cobra.Command, t *app.Tools, args []string) error {
			filter := jobs.ReplayFilter{IDs: args, Type: r.typ, PractitionerID: r.practitioner}
			if r.cause != "" {
				filter.Causes = []pmsbridge.Cause{pmsbridge.Cause(r.cause)}
			}
			list, err := t.Jobs.Matching(cmd.Context(), filter)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("a job id is not in the failure ledger (list them with: pmsbridge jobs failed)")
			}
			if err != nil {
				return err
			}
			if len(list) == 0 {
				fmt.Fprintln(e.stdout, "No failed jobs match; nothing replayed.")
				return nil
			}
			if replayConfirms(args) {
				if err := replayYes.ask(fmt.Sprintf("Replay %s?", plural(len(list), "failed job", "failed jobs")), "Nothing replayed."); err != nil {
					return err
				}
			}
			n := 0
			for _, x := range list {
				if err := t.Jobs.Replay(cmd.Context(), x); err != nil {
					return fmt.Errorf("replayed %d; %s: %w", n, x.TaskID, err)
				}
				n++
			}
			if r.asJSON {
				return e.printJSON(map[string]int{"replayed": n})
			}
			fmt.Fprintf(e.stdout, "Replayed %d job(s). Watch them with: pmsbridge jobs failed --all\n", n)
			return nil
		})
	replay.PreRunE = func(cmd *cobra.Command, args []string) error {
		if r.cause != "" && !pmsbridge.Cause(r.cause).Valid() {
			return usageError{fmt.Errorf("unknown cause %q; causes are: %s", r.cause, causeList())}
		}
		filtered := r.cause != "" || r.typ != "" || r.practitioner != ""
		if len(args) > 0 && filtered {
			return usageError{errors.New("give job ids or filters (--cause, --type, --practitioner), not both")}
		}
		if len(args) == 0 && !filtered {
			return usageError{errors.New("say what to replay: job ids, or --cause/--type/--practitioner")}
		}
		if replayConfirms(args) {
			return replayYes.canAsk(cmd)
		}
		return nil
	}
	replay.Flags().StringVar(&r.cause, "cause", "", "replay every failed job with this cause")
	replay.Flags().StringVar(&r.typ, "type", "", "replay every failed job of this type")
	replay.Flags().StringVar(&r.practitioner, "practitioner", "", "replay every failed job of this practitioner")
	replayYes = e.addYes(replay, "replay")
	replay.Flags().BoolVar(&r.asJSON, "json", false, "print {\"replayed\":N}")

	var delYes *confirmer
	del := e.toolsCmd("delete ID…", "Give up on failed jobs: remove them from the failure ledger (and asynq's archive)",
		`Give up on failed jobs for good: their failure-ledger entries go, and so do
asynq's archived copies. Nothing is deleted unless every id is in the ledger.

Always asks first on a terminal; --yes deletes without asking. Without a
terminal and without --yes it exits 2 and deletes nothing; answering anything
but "y" exits 1 ("Nothing deleted.").`, cobra.MinimumNArgs(1),
		func(cmd *cobra.Command, t *app.Tools, args []string) error {
			for _, id := range args {
				_, err := t.Store.GetFailure(cmd.Context(), id)
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no failed job %q in the failure ledger; nothing deleted", id)
				}
				if err != nil {
					return err
				}
			}
			if err := delYes.ask(fmt.Sprintf("Delete %s for good?", plural(len(args), "failed job", "failed jobs")), "Nothing deleted."); err != nil {
				return err
			}
			for _, id := range args {
				err := t.Jobs.Delete(cmd.Context(), id)
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
	del.PreRunE = func(cmd *cobra.Command, _ []string) error { return delYes.canAsk(cmd) }
	markReadOnly(stats, failed, show)
	root.AddCommand(stats, failed, show, replay, del)
	return root
}

func causeList() string {
	var s []string
	for _, c := range pmsbridge.Causes {
		s = append(s, string(c))
	}
	return strings.Join(s, ", ")
}

func parseSince(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("--since %q: give a time like 2026-11-22T10:00:00Z or a duration like 24h", s)
	}
	return time.Now().Add(-d), nil
}

// replayConfirms reports whether a replay asks first: by filter (no ids) or
// several ids.
func replayConfirms(ids []string) bool { return len(ids) != 1 }

// plural says "1 failed job" or "3 failed jobs".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func readLine(r io.Reader) (string, error) {
	if r == nil {
		return "", nil
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}
