package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge/store"
	"github.com/redis/go-redis/v9"
)

// Client enqueues tasks and looks at them. It is safe for concurrent use.
type Client struct {
	st   *store.Store
	c    *asynq.Client
	insp inspector
}

// NewClient builds a client on rdb (shared with the rest of the process),
// the Redis that st keeps its records in: st holds the refresh debounce and
// the done counters.
func NewClient(rdb redis.UniversalClient, st *store.Store) *Client {
	return &Client{st: st, c: asynq.NewClientFromRedisClient(rdb), insp: inspector{asynq.NewInspectorFromRedisClient(rdb)}}
}

// Inspector exposes asynq's inspector for tests and benchmarks (its calls
// take no context; the client's own calls go through one that does).
func (c *Client) Inspector() *asynq.Inspector { return c.insp.a }

// State is a task's state as support and pages see it.
type State string

// Task states.
const (
	StateNone     State = ""         // no such task
	StatePending  State = "pending"  // queued, scheduled, running or waiting to retry
	StateDone     State = "done"     // completed (while its record is kept)
	StateFailed   State = "failed"   // archived: failed for good
	StateRetrying State = "retrying" // failed at least once, will be tried again
)

// TaskState returns the state of the task id in queue, with the error text
// of its last failure.
func (c *Client) TaskState(ctx context.Context, queue, id string) (State, *asynq.TaskInfo, error) {
	info, err := c.insp.taskInfo(ctx, queue, id)
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return StateNone, nil, nil
	}
	if err != nil {
		return StateNone, nil, fmt.Errorf("task %s: %w", id, err)
	}
	switch info.State {
	case asynq.TaskStateArchived:
		return StateFailed, info, nil
	case asynq.TaskStateCompleted:
		return StateDone, info, nil
	case asynq.TaskStateRetry:
		return StateRetrying, info, nil
	default:
		return StatePending, info, nil
	}
}

// enqueue queues task under the deterministic id with its type's options
// (taskSpecs); see enqueueOnce.
func (c *Client) enqueue(ctx context.Context, task *asynq.Task, id string) (bool, error) {
	opts := TaskOptions(task.Type())
	if opts == nil {
		return false, fmt.Errorf("enqueue %s: unknown task type", task.Type())
	}
	return c.enqueueOnce(ctx, task, taskSpecs[task.Type()].queue, id, opts...)
}

// enqueueIfAbsent queues task under its deterministic id with its type's
// options (taskSpecs) unless a task with that id exists, in whatever state:
// unlike enqueue it never runs a retrying task early (that would defeat its
// backoff) and never replaces a failed one (support decides). It reports
// whether the task was added.
func (c *Client) enqueueIfAbsent(ctx context.Context, task *asynq.Task, id string) (bool, error) {
	opts := TaskOptions(task.Type())
	if opts == nil {
		return false, fmt.Errorf("enqueue %s: unknown task type", task.Type())
	}
	return c.add(ctx, task, append(opts, asynq.TaskID(id)))
}

// add enqueues task with opts (which name its id); a task with that id
// already there is no error: add reports false.
func (c *Client) add(ctx context.Context, task *asynq.Task, opts []asynq.Option) (bool, error) {
	_, err := c.c.EnqueueContext(ctx, task, opts...)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("enqueue %s: %w", task.Type(), err)
	}
	return true, nil
}

// enqueueOnce enqueues task with a deterministic id. If a task with that id
// already exists it is joined while it is still to run; a failed (archived)
// or finished one is replaced, because asynq keeps an archived task's id
// taken and would refuse the new one. It reports whether a task was added.
func (c *Client) enqueueOnce(ctx context.Context, task *asynq.Task, queue, id string, opts ...asynq.Option) (bool, error) {
	opts = append([]asynq.Option{asynq.Queue(queue), asynq.TaskID(id)}, opts...)
	for attempt := 0; attempt < 3; attempt++ {
		added, err := c.add(ctx, task, opts)
		if err != nil || added {
			return added, err
		}
		state, _, err := c.TaskState(ctx, queue, id)
		if err != nil {
			return false, err
		}
		switch state {
		case StatePending:
			return false, nil // join the one that is queued or running
		case StateRetrying:
			// Someone is waiting for it: try now rather than at the backoff
			// time. Rate limits still hold (the limiter answers, not Cliniko).
			_ = c.insp.runTask(ctx, queue, id)
			return false, nil
		case StateFailed, StateDone:
			if err := c.insp.deleteTask(ctx, queue, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
				return false, fmt.Errorf("replace task %s: %w", id, err)
			}
		}
		// StateNone: it went away between the two calls; try again.
	}
	return false, fmt.Errorf("enqueue %s: task id %s stayed taken", task.Type(), id)
}
