package bridge

import (
	"net/http"

	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// Deps are the services the HTTP side uses.
type Deps struct {
	Store   *store.Store
	Cliniko *cliniko.Client
	Jobs    *jobs.Client
	// Keys encrypts patients' short-lived PDF links.
	Keys *store.Keyring
	// Queues is the queue monitor (asynqmon) served under QueuesPath/ to
	// support staff; nil: none in this process.
	Queues http.Handler
}
