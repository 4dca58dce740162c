package bridge

import (
	"net/http"

	"github.com/physitrack/pmsbridge/flows"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// Deps are the services the HTTP side uses: the workflows, and for what is
// no workflow (logins, sessions, patient access, support's pages and API)
// the store and the jobs client directly.
type Deps struct {
	Flows *flows.Flows
	Store *store.Store
	Jobs  *jobs.Client
	// Keys encrypts patients' short-lived PDF links.
	Keys *store.Keyring
	// Queues is the queue monitor (asynqmon) served under QueuesPath/ to
	// support staff; nil: none in this process.
	Queues http.Handler
}
