package cli

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// The confirmation rule, the same for every command that has one:
//
// A command asks before it acts when it acts on more than one thing, on
// things chosen by a filter, or throws something away for good: `jobs
// replay` with a filter or several ids, `jobs delete`, `admin sharing set`.
// The command line alone decides whether it asks (never what it would
// match), so a script missing --yes fails the first time it runs, not the
// day there is something to do.
//
//   - --yes: no question, it acts.
//   - stdin is a terminal: it asks on stderr; "y" or "yes" acts, anything
//     else (or the end of input) exits 1 and changes nothing.
//   - neither: it exits 2 with one line saying to add --yes, and changes
//     nothing. A "y" piped into it does not count: scripts say --yes.
//
// Exit 0 means the action was done.
const confirmRule = `Confirmation: a command that acts on several things, on things chosen by a
filter, or throws something away for good (jobs replay with a filter or
several ids, jobs delete, admin sharing set) asks first on a terminal. --yes
acts without asking. Without a terminal and without --yes it exits 2 and
changes nothing; answering anything but "y" exits 1. Exit 0 means done.`

// declinedError is a confirmation answered "no" (or input that ended): exit
// 1, with msg ("Nothing replayed.") as the only output.
type declinedError struct{ msg string }

func (e declinedError) Error() string { return e.msg }

// confirmer is the --yes flag and the question of one confirming command.
type confirmer struct {
	e   *env
	yes bool
	// verb says what the command does ("replay"), for the one-line error.
	verb string
}

// addYes registers --yes on cmd.
func (e *env) addYes(cmd *cobra.Command, verb string) *confirmer {
	c := &confirmer{e: e, verb: verb}
	cmd.Flags().BoolVar(&c.yes, "yes", false, verb+" without asking (needed when stdin is not a terminal)")
	return c
}

// stdinIsTerminal reports whether there is someone to ask.
func (e *env) stdinIsTerminal() bool {
	f, ok := e.stdin.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// canAsk fails with a usage error (exit 2) when the command must ask and
// cannot: no --yes and no terminal. Call it before anything is read or
// changed.
func (c *confirmer) canAsk(cmd *cobra.Command) error {
	if c.yes || c.e.stdinIsTerminal() {
		return nil
	}
	name := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
	return usageError{fmt.Errorf("%s asks for confirmation and stdin is not a terminal; nothing was done: add --yes to %s without asking", name, c.verb)}
}

// ask asks question on stderr unless --yes was given; anything but "y" or
// "yes" returns a declinedError with nothing ("Nothing replayed.").
func (c *confirmer) ask(question, nothing string) error {
	if c.yes {
		return nil
	}
	fmt.Fprintf(c.e.stderr, "%s [y/N] ", question)
	line, err := bufio.NewReader(c.e.stdin).ReadString('\n')
	if err != nil {
		fmt.Fprintln(c.e.stderr) // input ended: end the prompt's line
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return declinedError{nothing}
}
