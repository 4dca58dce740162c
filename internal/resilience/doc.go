// Package resilience holds the resilience tests (issues 8 and 16): each
// starts real processes — a private redis-server with AOF on (or a Sentinel
// topology: primary, replica, three sentinels), the pmsbridge binary built
// from this tree and run as child processes, and the Cliniko sandbox — then
// breaks something (SIGKILL mid-upload, a Redis restart, a flaky Cliniko,
// SIGTERM during a burst, a Redis failover requested or forced by killing
// the primary under load) and checks the outcome: every acknowledged
// programme version lands in the patient's Cliniko files exactly once. They
// run with the normal `go test ./...`; `make chaos` runs the failovers at
// full load.
package resilience
