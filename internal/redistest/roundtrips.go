package redistest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// RoundTrips records the round trips a go-redis client makes, so a test can
// assert how many Redis round trips a piece of code waits for by what it
// does, not by how long it takes: every command sent on its own is one
// round trip, every pipeline or transaction is one. Add it with Watch.
type RoundTrips struct {
	mu        sync.Mutex
	recording bool
	trips     []Trip
	hold      func(Trip) bool
	held      []Trip
	release   chan struct{}
}

// Trip is one round trip: its commands, each written as its name in lower
// case and its first argument (usually the key, or a script's sha), e.g.
// "get pmsb:prac:prac_x" or "evalsha 3f2a…".
type Trip []string

func (t Trip) String() string { return "[" + strings.Join(t, "; ") + "]" }

// Watch adds a RoundTrips hook to c. It records nothing until Record.
func Watch(c redis.UniversalClient) *RoundTrips {
	r := &RoundTrips{}
	c.AddHook(r)
	return r
}

// Record starts recording afresh.
func (r *RoundTrips) Record() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recording, r.trips = true, nil
}

// Stop stops recording and returns the round trips made since Record, in
// the order they were sent. Held ones are not among them (see Hold).
func (r *RoundTrips) Stop() []Trip {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recording = false
	return r.trips
}

// Hold makes every round trip for which match is true wait, unsent and
// unrecorded, until release is called (or its context ends): code that
// waits for such a round trip before going on cannot go on. Held lists
// the round trips held.
func (r *RoundTrips) Hold(match func(Trip) bool) (release func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := make(chan struct{})
	r.hold, r.release = match, ch
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			r.hold = nil
			r.mu.Unlock()
			close(ch)
		})
	}
}

// Held returns the round trips Hold has held so far.
func (r *RoundTrips) Held() []Trip {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Trip(nil), r.held...)
}

// seen records trip t or, when it is to be held, returns the channel to
// wait on.
func (r *RoundTrips) seen(t Trip) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if handshake(t) {
		return nil
	}
	if r.hold != nil && r.hold(t) {
		r.held = append(r.held, t)
		return r.release
	}
	if r.recording {
		r.trips = append(r.trips, t)
	}
	return nil
}

func (r *RoundTrips) wait(ctx context.Context, t Trip) error {
	if ch := r.seen(t); ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// handshake reports whether t is go-redis setting up a new connection
// (HELLO, AUTH, SELECT, CLIENT SETINFO…): the pool's cost, not the
// code's.
func handshake(t Trip) bool {
	for _, c := range t {
		name, _, _ := strings.Cut(c, " ")
		switch name {
		case "hello", "auth", "select", "client", "readonly":
		default:
			return false
		}
	}
	return true
}

func describe(cmd redis.Cmder) string {
	args := cmd.Args()
	s := strings.ToLower(cmd.Name())
	if len(args) > 1 {
		a := fmt.Sprint(args[1])
		if len(a) > 60 { // a script's text
			a = a[:60] + "…"
		}
		s += " " + a
	}
	return s
}

// DialHook is redis.Hook's: connections are not round trips of a command.
func (r *RoundTrips) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return next(ctx, network, addr)
	}
}

// ProcessHook is redis.Hook's: one command, one round trip.
func (r *RoundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if err := r.wait(ctx, Trip{describe(cmd)}); err != nil {
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook is redis.Hook's: one pipeline (or MULTI/EXEC), one
// round trip.
func (r *RoundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		t := make(Trip, len(cmds))
		for i, c := range cmds {
			t[i] = describe(c)
		}
		if err := r.wait(ctx, t); err != nil {
			return err
		}
		return next(ctx, cmds)
	}
}
