# Developer shortcuts. The README's two commands are the source of truth for
# set-up and tests; these wrap the longer ones.

.PHONY: test bench

# The whole test suite, as CI runs it.
test:
	./scripts/test

# Benchmarks and load scenarios on this machine; rewrites docs/benchmarks.md
# (a few minutes; needs redis-server).
bench:
	go run ./cmd/pmsbridge-bench -runs 5 -duration 4s -real200 -out docs/benchmarks.md
