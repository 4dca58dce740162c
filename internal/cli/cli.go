// Package cli is pmsbridge's command line: it parses commands and flags with
// cobra, loads the configuration, starts the app and turns the outcome into
// an exit code (0 done, 1 failed, 2 bad usage or configuration).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/physitrack/pmsbridge/config"
	"github.com/physitrack/pmsbridge/internal/app"
	"github.com/spf13/cobra"
)

// Exit codes.
const (
	ExitOK     = 0
	ExitFailed = 1
	ExitUsage  = 2
)

// usageError marks errors that exit with status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// Version is the build's version, set with -ldflags "-X …/cli.Version=v1.2.3";
// otherwise taken from the module build info.
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
		return v
	}
	return "(unknown)"
}

type env struct {
	ctx     context.Context
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	environ []string
}

// Execute runs the command line args and returns the exit code.
func Execute(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, environ []string) int {
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, environ: environ}
	root := e.rootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ue usageError
	var ve *config.ValidationError
	var de declinedError
	switch {
	case errors.As(err, &de):
		fmt.Fprintln(stderr, de.msg)
		return ExitFailed
	case errors.As(err, &ve):
		fmt.Fprintln(stderr, "pmsbridge: the configuration has problems:")
		for _, p := range ve.Problems {
			fmt.Fprintln(stderr, "  "+p)
		}
		return ExitUsage
	case errors.As(err, &ue), isCobraUsage(err):
		fmt.Fprintln(stderr, "pmsbridge:", err)
		return ExitUsage
	default:
		fmt.Fprintln(stderr, "pmsbridge:", err)
		return ExitFailed
	}
}

// groupRunE is the RunE of commands that only hold subcommands. Without it
// cobra prints the help and exits 0 for an unknown subcommand, so a typo in
// a script would look like success.
func groupRunE(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())}
	}
	return cmd.Help()
}

func isCobraUsage(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "unknown command") || strings.HasPrefix(s, "unknown flag") ||
		strings.HasPrefix(s, "unknown shorthand") || strings.Contains(s, "flag needs an argument") ||
		strings.HasPrefix(s, "invalid argument") || strings.Contains(s, "accepts ") || strings.Contains(s, "requires at least")
}

func (e *env) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "pmsbridge",
		Short: "Connects the exercise-prescription platform to clinics' practice management systems (Cliniko)",
		Long: `pmsbridge connects the exercise-prescription platform to the practice management
system (PMS) that clinics already run. The first PMS is Cliniko.

Try it with no set-up at all:

  pmsbridge dev          everything in one process with an embedded Redis, a
                         Cliniko sandbox and demo data; prints a URL and a login

In production, against a real Redis (6.2 or newer):

  pmsbridge serve        the web side (Cliniko button, pages, webhook, admin)
  pmsbridge work         the job workers and the scheduler
  pmsbridge run          both in one process

Support and administration (same configuration as run):

  pmsbridge jobs …       failed jobs: stats, list, show, replay, delete
  pmsbridge admin …      subscriptions, practitioners, sharing

Configuration: defaults < YAML file (--config) < PMSBRIDGE_* environment
variables < flags. See config/pmsbridge.sample.yaml and the README.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(e.devCmd(), e.serverCmd(app.ModeServe), e.serverCmd(app.ModeWork), e.serverCmd(app.ModeRun), e.versionCmd())
	root.AddCommand(e.jobsCmd(), e.adminCmd())
	return root
}

func (e *env) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(e.stdout, "pmsbridge", version())
			return nil
		},
	}
}

var modeHelp = map[app.Mode][2]string{
	app.ModeServe: {"Serve the web side: Cliniko button, pages, webhook, admin, health and metrics",
		"Serve HTTP against the Redis of redis.url. Several serve processes can share one Redis.\nJobs are run by `pmsbridge work` processes on the same Redis."},
	app.ModeWork: {"Run the job workers and the periodic scheduler",
		"Run imports, PDF uploads and the birth-year sync from the queues in Redis.\nStart as many work processes as you need; they share the work and the Cliniko request budget."},
	app.ModeRun: {"Serve HTTP and run the workers in one process",
		"serve and work together, against the Redis of redis.url."},
}

func (e *env) serverCmd(mode app.Mode) *cobra.Command {
	var printConfig bool
	cmd := &cobra.Command{
		Use:   string(mode),
		Short: modeHelp[mode][0],
		Long:  modeHelp[mode][1] + "\n\nRequired: " + requiredKeys() + " (flags, PMSBRIDGE_* or --config).",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := e.loadConfig(cmd)
			if err != nil {
				return err
			}
			if printConfig {
				fmt.Fprint(e.stdout, cfg.Print())
				return nil
			}
			return e.runApp(cmd.Context(), app.Options{Mode: mode, Config: cfg, Version: version(), Out: e.stdout})
		},
	}
	config.AddFlags(cmd.Flags())
	cmd.Flags().BoolVar(&printConfig, "print-config", false, "print the effective configuration (secrets hidden) and exit")
	return cmd
}

// requiredKeys lists the configuration keys without which nothing starts.
func requiredKeys() string {
	var names []string
	for _, k := range config.Keys {
		if k.Required {
			names = append(names, k.Name)
		}
	}
	return strings.Join(names, ", ")
}

// loadConfig loads and validates the configuration for a command.
func (e *env) loadConfig(cmd *cobra.Command) (config.Config, error) {
	return e.loadConfigFor(cmd, false)
}

// loadConfigFor loads the configuration; readOnly validates only what the
// read-only support commands need (redis.url, and the keys when given).
func (e *env) loadConfigFor(cmd *cobra.Command, readOnly bool) (config.Config, error) {
	cfg, err := config.Load(cmd.Flags(), e.environ, config.Config{})
	if err != nil {
		return cfg, usageError{err}
	}
	validate := cfg.Validate
	if readOnly {
		validate = cfg.ValidateReadOnly
	}
	if err := validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func (e *env) devCmd() *cobra.Command {
	var printConfig bool
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Try pmsbridge with no set-up: embedded Redis, Cliniko sandbox, demo data",
		Long: `Start everything in one process: an in-memory Redis, a Cliniko sandbox with demo
patients, an SMTP server and a Twilio sandbox for the codes sent to patients, the
web side and the workers. It prints the address to open, a demo login and the
outbox pages that show every email and text message "sent". Nothing is kept after
it stops, and nothing leaves the machine. Not for production.

It needs no configuration, and reads it like every command (defaults < --config
file < PMSBRIDGE_* < flags), with its own defaults: http.addr 127.0.0.1:8080,
region au, log.format text, fresh random secrets. redis.url, cliniko.base_url,
public_url, mail.* and sms.* are not used: dev runs its own Redis, Cliniko
sandbox, SMTP server and Twilio sandbox on localhost.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cmd.Flags(), e.environ, app.DevConfig(devAddr))
			if err != nil {
				return usageError{err}
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			if printConfig {
				kvs := cfg.Redacted()
				for i, kv := range kvs {
					if v, ok := app.DevFixed[kv.Key]; ok {
						kvs[i].Value = v
					}
				}
				fmt.Fprint(e.stdout, config.Format(kvs))
				return nil
			}
			return e.runApp(cmd.Context(), app.Options{Mode: app.ModeDev, Config: cfg, Version: version(), Out: e.stdout})
		},
	}
	config.AddFlags(cmd.Flags())
	// --help shows dev's own defaults (Load takes them from DevConfig).
	dev := app.DevConfig(devAddr)
	for flag, v := range map[string]string{"http-addr": dev.HTTP.Addr, "region": dev.Region, "log-format": dev.Log.Format} {
		cmd.Flags().Lookup(flag).DefValue = v
	}
	for _, k := range config.Keys {
		f := cmd.Flags().Lookup(k.Flag)
		if _, fixed := app.DevFixed[k.Name]; fixed {
			f.Usage += " (not used by dev)"
		}
		f.Usage = strings.Replace(f.Usage, "(required)", "(dev has its own)", 1)
	}
	cmd.Flags().BoolVar(&printConfig, "print-config", false, "print the effective configuration (secrets hidden) and exit")
	return cmd
}

// devAddr is dev's default listen address.
const devAddr = "127.0.0.1:8080"

func (e *env) runApp(ctx context.Context, opts app.Options) error {
	if opts.LogOut == nil {
		opts.LogOut = e.stderr
	}
	m, err := app.New(ctx, opts)
	if err != nil {
		return err
	}
	defer m.Close()
	return m.Run(ctx)
}
