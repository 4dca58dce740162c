// Package resilience holds the resilience tests (issue 8): each starts real
// processes — a private redis-server with AOF on, the pmsbridge binary built
// from this tree and run as a child process, and the Cliniko sandbox — then
// breaks something (SIGKILL mid-upload, a Redis restart, a flaky Cliniko,
// SIGTERM during a burst) and checks the outcome: every programme version
// lands in the patient's Cliniko files exactly once. They run with the
// normal `go test ./...`.
package resilience
