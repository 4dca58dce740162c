// Command pmsbridge-bench runs pmsbridge's benchmarks and load scenarios on
// this machine and writes the results as Markdown (docs/benchmarks.md via
// `make bench`). It needs Go and redis-server; it starts everything else
// itself, on 127.0.0.1 only.
//
//	go run ./cmd/pmsbridge-bench [-runs 5] [-duration 4s] [-only receiver,click,import,pdf,burst,memory,limiter,login,codes] [-real200] [-out docs/benchmarks.md]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/physitrack/pmsbridge/internal/bench"
)

func main() {
	runs := flag.Int("runs", 5, "runs of each scenario (medians are reported)")
	duration := flag.Duration("duration", 4*time.Second, "length of one throughput run")
	only := flag.String("only", "", "comma-separated scenarios to run: receiver, click, import, pdf, burst, memory, limiter, login, codes (default all)")
	real200 := flag.Bool("real200", false, "also run one upload burst at the real 200 requests/minute (about a minute)")
	out := flag.String("out", "docs/benchmarks.md", "where to write the report")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (load generator and in-process app) to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "pmsbridge-bench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "pmsbridge-bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o := bench.Options{Runs: *runs, Duration: *duration, Real200: *real200}
	if *only != "" {
		o.Only = strings.Split(*only, ",")
	}
	rep, err := bench.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pmsbridge-bench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
	rep.Finished = time.Now()
	command := "go run ./cmd/pmsbridge-bench " + strings.Join(os.Args[1:], " ")
	md := rep.Markdown(strings.TrimSpace(command)) + keptSections(*out)
	if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "pmsbridge-bench:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "wrote", *out)
}

// keptSections returns the sections of the report file at path that other
// commands write (between "<!-- kept: name -->" and "<!-- /kept: name -->",
// e.g. the failover figures of make chaos), so rewriting the file keeps them.
func keptSections(path string) string {
	old, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var out strings.Builder
	rest := string(old)
	for {
		i := strings.Index(rest, "<!-- kept: ")
		if i < 0 {
			return out.String()
		}
		name, _, ok := strings.Cut(rest[i+len("<!-- kept: "):], " -->")
		end := "<!-- /kept: " + name + " -->"
		j := strings.Index(rest[i:], end)
		if !ok || j < 0 {
			return out.String()
		}
		out.WriteString("\n" + rest[i:i+j+len(end)] + "\n")
		rest = rest[i+j+len(end):]
	}
}
