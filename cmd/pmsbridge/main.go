// Command pmsbridge connects an exercise-prescription platform to the
// practice management systems that clinics run (Cliniko first). Run
// `pmsbridge --help` for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	// The time-zone database in the binary: clinic times work on a machine
	// or container without /usr/share/zoneinfo (about 450 KB).
	_ "time/tzdata"

	"github.com/physitrack/pmsbridge/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Environ())
	stop()
	os.Exit(code)
}
