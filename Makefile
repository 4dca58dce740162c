# Developer shortcuts. The README's two commands are the source of truth for
# set-up and tests; these wrap the longer ones.

.PHONY: test bench chaos

# The whole test suite, as CI runs it.
test:
	./scripts/test

# Benchmarks and load scenarios on this machine; rewrites docs/benchmarks.md
# (a few minutes; needs redis-server).
bench:
	go run ./cmd/pmsbridge-bench -runs 5 -duration 4s -real200 -out docs/benchmarks.md

# Redis failover under load at full scale (README, Operations): a primary,
# a replica and three sentinels, pmsbridge serve x2 and work x2, clicks from
# four practitioners and 100 programme assignments, through SENTINEL
# FAILOVER and, in a second run, SIGKILL of the primary. Prints the FIGURES
# lines recorded in docs/benchmarks.md (about a minute; ./scripts/test runs
# a smaller load). PMSBRIDGE_CHAOS_ACK=-1 measures what the replica wait
# prevents (reports lost assignments instead of failing).
chaos:
	PMSBRIDGE_CHAOS=full go test -count=1 -v -timeout 15m -run 'TestFailoverUnderLoad|TestPrimaryKilledUnderLoad' ./internal/resilience/
