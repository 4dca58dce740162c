package jobs

import (
	"context"

	"github.com/hibiken/asynq"
)

// inspector is asynq's Inspector with the caller's context honoured.
// asynq v0.26's Inspector has no methods that take a context (it runs its
// Redis calls with context.Background()), so each call here runs on its own
// goroutine and returns as soon as ctx is done: a page whose browser hung
// up, or a command cancelled by its user, is not held up by a slow Redis.
// An abandoned call still ends by itself within the Redis client's
// timeouts; a change it makes (a delete, a run) may then still happen,
// as with any Redis command whose reply was lost.
type inspector struct{ a *asynq.Inspector }

// inContext runs call unless ctx is done first.
func inContext[T any](ctx context.Context, call func() (T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := call()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

func (i inspector) taskInfo(ctx context.Context, queue, id string) (*asynq.TaskInfo, error) {
	return inContext(ctx, func() (*asynq.TaskInfo, error) { return i.a.GetTaskInfo(queue, id) })
}

func (i inspector) deleteTask(ctx context.Context, queue, id string) error {
	_, err := inContext(ctx, func() (struct{}, error) { return struct{}{}, i.a.DeleteTask(queue, id) })
	return err
}

func (i inspector) runTask(ctx context.Context, queue, id string) error {
	_, err := inContext(ctx, func() (struct{}, error) { return struct{}{}, i.a.RunTask(queue, id) })
	return err
}

func (i inspector) queues(ctx context.Context) ([]string, error) {
	return inContext(ctx, i.a.Queues)
}

// lister is one of the Inspector's List*Tasks methods.
type lister func(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)

func (i inspector) list(ctx context.Context, l lister, queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error) {
	return inContext(ctx, func() ([]*asynq.TaskInfo, error) { return l(queue, opts...) })
}
