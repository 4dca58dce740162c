package jobs

import (
	"context"
	"errors"
	"testing"
)

// TestInContext: an inspector call returns as soon as its context is done,
// however long asynq's own call takes, and returns asynq's answer
// otherwise.
func TestInContext(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	got := make(chan error, 1)
	go func() {
		_, err := inContext(ctx, func() (int, error) {
			close(started)
			<-release // asynq's call, stuck on a slow Redis
			return 1, nil
		})
		got <- err
	}()
	<-started
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled call: %v, want context.Canceled", err)
	}
	close(release)

	v, err := inContext(context.Background(), func() (int, error) { return 7, nil })
	if v != 7 || err != nil {
		t.Errorf("call = %d, %v; want 7, nil", v, err)
	}
	if _, err := inContext(ctx, func() (int, error) { t.Error("called with a done context"); return 0, nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("done context: %v", err)
	}
}

// TestTaskStateHonoursContext: the click path's look at a task stops with
// its request.
func TestTaskStateHonoursContext(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(b.ctx)
	cancel()
	if _, _, err := b.jc.TaskState(ctx, QueueImport, "import:x"); !errors.Is(err, context.Canceled) {
		t.Errorf("TaskState with a cancelled context: %v, want context.Canceled", err)
	}
	if st, _, err := b.jc.TaskState(b.ctx, QueueImport, "import:x"); err != nil || st != StateNone {
		t.Errorf("TaskState = %q, %v; want none", st, err)
	}
}
