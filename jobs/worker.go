package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Defaults of WorkerConfig and Deps (the worker.concurrency and
// sync.interval configuration keys take theirs from here).
const (
	// DefaultConcurrency is how many tasks one work process runs at once.
	DefaultConcurrency = 10
	// DefaultSyncInterval is the period of the birth-year sync.
	DefaultSyncInterval = 15 * time.Minute
)

// WorkerConfig configures a work process. The zero value of each field means
// its default.
type WorkerConfig struct {
	// Concurrency is how many tasks run at once across all queues. Default
	// DefaultConcurrency.
	Concurrency int
	// ImportConcurrency is how many import tasks run at once on the fast
	// import server. Default 4.
	ImportConcurrency int
	// ImportPollInterval is how often an idle worker looks for new import
	// tasks. asynq's default of 1 s would add up to a second to every click
	// on a new patient. Default 20ms.
	ImportPollInterval time.Duration
	// PollInterval is how often an idle worker looks for other tasks.
	// Default 500ms.
	PollInterval time.Duration
	// ShutdownTimeout is how long running tasks may finish on shutdown
	// before they are handed back to the queue. Default 8s.
	ShutdownTimeout time.Duration
	// Dial opens a Redis connection for the periodic scheduler alone. The
	// scheduler closes its connection when it stops; asynq (v0.26) refuses
	// to close a connection it was handed and logs that as an error, so it
	// gets one of its own. Default: a new client with the options of the
	// worker's client (which must then be a *redis.Client).
	Dial func() redis.UniversalClient
}

// WithDefaults returns a copy with every unset field at its default.
func (c WorkerConfig) WithDefaults() WorkerConfig {
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.ImportConcurrency == 0 {
		c.ImportConcurrency = 4
	}
	if c.ImportPollInterval == 0 {
		c.ImportPollInterval = 20 * time.Millisecond
	}
	if c.PollInterval == 0 {
		c.PollInterval = 500 * time.Millisecond
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 8 * time.Second
	}
	return c
}

// Worker is the job-running side of a process: a fast asynq server that only
// serves the interactive import queue with a short poll interval, a main
// server for every queue in strict priority, and the periodic scheduler.
type Worker struct {
	cfg     WorkerConfig
	log     *slog.Logger
	rdb     redis.UniversalClient
	fast    *asynq.Server
	main    *asynq.Server
	sched   *asynq.Scheduler // made by Start when there are periodic tasks
	handler asynq.Handler
	periods []periodic
}

type periodic struct {
	spec string
	task *asynq.Task
	opts []asynq.Option
}

// NewWorker builds a worker on rdb that runs handler (usually
// (*Handlers).Mux()) and reports failures to onError.
func NewWorker(rdb redis.UniversalClient, cfg WorkerConfig, handler asynq.Handler, onError asynq.ErrorHandler, log *slog.Logger) *Worker {
	cfg = cfg.WithDefaults()
	logger := asynqLogger{log.With("component", "asynq")}
	base := asynq.Config{
		RetryDelayFunc:           retryDelay,
		IsFailure:                isFailure,
		ErrorHandler:             onError,
		Logger:                   logger,
		LogLevel:                 asynqLogLevel(log),
		ShutdownTimeout:          cfg.ShutdownTimeout,
		DelayedTaskCheckInterval: time.Second,
	}
	fast := base
	fast.Concurrency = cfg.ImportConcurrency
	fast.Queues = map[string]int{QueueImport: 1}
	fast.TaskCheckInterval = cfg.ImportPollInterval
	main := base
	main.Concurrency = cfg.Concurrency
	main.Queues = Queues
	main.StrictPriority = true
	main.TaskCheckInterval = cfg.PollInterval
	return &Worker{
		cfg:     cfg,
		log:     log,
		rdb:     rdb,
		fast:    asynq.NewServerFromRedisClient(rdb, fast),
		main:    asynq.NewServerFromRedisClient(rdb, main),
		handler: handler,
	}
}

// dialer is asynq's RedisConnOpt for a connection that the scheduler owns:
// it closes it on shutdown.
type dialer func() redis.UniversalClient

func (d dialer) MakeRedisClient() any { return d() }

// schedulerConn is how the scheduler's own connection is opened.
func (w *Worker) schedulerConn() (dialer, error) {
	if w.cfg.Dial != nil {
		return w.cfg.Dial, nil
	}
	c, ok := w.rdb.(*redis.Client)
	if !ok {
		return nil, fmt.Errorf("the scheduler needs WorkerConfig.Dial for a %T", w.rdb)
	}
	return func() redis.UniversalClient { return redis.NewClient(c.Options()) }, nil
}

// Every registers a periodic task, run every interval by the scheduler
// with its type's options (taskSpecs). Every work process's scheduler
// enqueues it, so its handler must run once per period between them (the
// sync tick claims its period).
func (w *Worker) Every(interval time.Duration, task *asynq.Task) {
	w.periods = append(w.periods, periodic{spec: "@every " + interval.String(), task: task, opts: TaskOptions(task.Type())})
}

// Start starts the servers and the scheduler.
func (w *Worker) Start() error {
	if err := w.fast.Start(w.handler); err != nil {
		return fmt.Errorf("start import worker: %w", err)
	}
	if err := w.main.Start(w.handler); err != nil {
		w.fast.Shutdown()
		return fmt.Errorf("start worker: %w", err)
	}
	if len(w.periods) == 0 {
		return nil
	}
	conn, err := w.schedulerConn()
	if err != nil {
		w.Shutdown()
		return err
	}
	logger := asynqLogger{w.log.With("component", "asynq")}
	w.sched = asynq.NewScheduler(conn, &asynq.SchedulerOpts{Logger: logger, LogLevel: asynqLogLevel(w.log), Location: time.UTC})
	for _, p := range w.periods {
		if _, err := w.sched.Register(p.spec, p.task, p.opts...); err != nil {
			w.Shutdown()
			return fmt.Errorf("schedule %s: %w", p.task.Type(), err)
		}
	}
	if err := w.sched.Start(); err != nil {
		w.Shutdown()
		return fmt.Errorf("start scheduler: %w", err)
	}
	return nil
}

// Shutdown stops taking tasks, lets running ones finish for up to
// ShutdownTimeout and hands the rest back to their queues.
func (w *Worker) Shutdown() {
	if w.sched != nil {
		w.sched.Shutdown() // closes its own connection
	}
	done := make(chan struct{}, 2)
	go func() { w.fast.Shutdown(); done <- struct{}{} }()
	go func() { w.main.Shutdown(); done <- struct{}{} }()
	<-done
	<-done
}

// Ping checks that the worker's servers can reach Redis.
func (w *Worker) Ping(ctx context.Context) error {
	if err := w.main.Ping(); err != nil {
		return err
	}
	return w.fast.Ping()
}
