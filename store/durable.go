package store

import (
	"context"
	"errors"
	"fmt"
)

// ErrNotReplicated is Durable's error when too few replicas confirmed the
// writes in time: they are on the primary and may still reach the replicas,
// but a failover now could lose them, so the caller must not acknowledge
// them (answer "try again"; the work is idempotent).
var ErrNotReplicated = errors.New("not confirmed by enough Redis replicas")

// Durable waits until every write whose reply this process has received
// is held by at least Options.AckReplicas replicas (Redis WAIT), or fails
// with ErrNotReplicated after Options.AckTimeout. Redis replication is
// asynchronous: a write acknowledged by the primary alone is lost if the
// primary fails before passing it on, and so is one made on a primary that
// a failover has just demoted. Call it after the writes of something that is
// acknowledged to a user (an assigned programme, an accepted webhook) and
// before answering. With AckReplicas 0 it does nothing.
//
// WAIT only counts the writes of its own connection, and go-redis spreads
// commands over a pool, so Durable writes a marker and waits for it on one
// connection: the replication stream is ordered, so a replica that holds the
// marker holds every write the primary acknowledged before it.
func (s *Store) Durable(ctx context.Context) error {
	if s.opts.AckReplicas <= 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	pipe.Incr(ctx, s.key("ack"))
	wait := pipe.Do(ctx, "WAIT", s.opts.AckReplicas, s.opts.AckTimeout.Milliseconds())
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("durable: %w", err)
	}
	n, err := wait.Int()
	if err != nil {
		return fmt.Errorf("durable: %w", err)
	}
	if n < s.opts.AckReplicas {
		return fmt.Errorf("durable: %d of %d replicas in %s: %w", n, s.opts.AckReplicas, s.opts.AckTimeout, ErrNotReplicated)
	}
	return nil
}
