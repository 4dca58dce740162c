package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// MasterName is the name the test sentinels monitor the primary under (the
// ?master= of the redis-sentinel:// URL).
const MasterName = "pmsbridge"

// SentinelOptions shape a Sentinel topology. The zero value of each field
// means its default.
type SentinelOptions struct {
	// Replicas is how many replicas follow the primary. Default 1.
	Replicas int
	// DownAfter is how long a primary may stay silent before a sentinel
	// thinks it is down (down-after-milliseconds). Default 1s: production
	// uses 5–30 s; tests want the failover soon after a kill.
	DownAfter time.Duration
	// FailoverTimeout is sentinel's failover-timeout: also how long a
	// sentinel waits before it tries another failover of the same primary
	// (twice this). Default 5s.
	FailoverTimeout time.Duration
	// Args are further redis-server arguments for every data node (for
	// example "--min-replicas-to-write", "1").
	Args []string
}

func (o SentinelOptions) withDefaults() SentinelOptions {
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.DownAfter == 0 {
		o.DownAfter = time.Second
	}
	if o.FailoverTimeout == 0 {
		o.FailoverTimeout = 5 * time.Second
	}
	return o
}

// Sentinel is a Redis Sentinel topology owned by a test: a primary with AOF
// on, its replicas (AOF on too) and three sentinels with a quorum of two,
// every process a redis-server on a free port of 127.0.0.1 (Debian's
// redis-server binary runs a sentinel with --sentinel).
type Sentinel struct {
	opts      SentinelOptions
	dir       string
	mu        sync.Mutex
	nodes     []*Server
	sentinels []*Server
}

// StartSentinel starts a topology and waits until every sentinel knows the
// primary, its replicas and the other sentinels, so that both a requested
// failover and one after a kill can happen. It is stopped when the test
// ends.
func StartSentinel(t testing.TB, o SentinelOptions) *Sentinel {
	t.Helper()
	s, err := LaunchSentinel(t.TempDir(), o)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// LaunchSentinel starts a topology outside a test, with its files under
// dir; the caller stops it.
func LaunchSentinel(dir string, o SentinelOptions) (*Sentinel, error) {
	s := &Sentinel{opts: o.withDefaults(), dir: dir}
	if err := s.launch(); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Sentinel) launch() error {
	nodeDir := func(name string) (string, error) {
		d := filepath.Join(s.dir, name)
		return d, os.MkdirAll(d, 0o755)
	}
	d, err := nodeDir("node0")
	if err != nil {
		return err
	}
	primary, err := start(d, true, s.opts.Args...)
	if err != nil {
		return fmt.Errorf("primary: %w", err)
	}
	s.nodes = append(s.nodes, primary)
	for i := 1; i <= s.opts.Replicas; i++ {
		d, err := nodeDir("node" + strconv.Itoa(i))
		if err != nil {
			return err
		}
		args := append(slices.Clone(s.opts.Args), "--replicaof", "127.0.0.1", strconv.Itoa(primary.Port))
		r, err := start(d, true, args...)
		if err != nil {
			return fmt.Errorf("replica %d: %w", i, err)
		}
		s.nodes = append(s.nodes, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, r := range s.nodes[1:] {
		if err := waitReplicaLinked(ctx, r.Addr()); err != nil {
			return err
		}
	}
	for i := 0; i < 3; i++ {
		d, err := nodeDir("sentinel" + strconv.Itoa(i))
		if err != nil {
			return err
		}
		sen, err := s.startSentinel(d, primary.Port)
		if err != nil {
			return fmt.Errorf("sentinel %d: %w", i, err)
		}
		s.sentinels = append(s.sentinels, sen)
	}
	return s.waitKnown(ctx)
}

// startSentinel starts one sentinel monitoring the primary on port. A
// sentinel rewrites its configuration file, so each has its own.
func (s *Sentinel) startSentinel(dir string, primaryPort int) (*Server, error) {
	var sen *Server
	err := onFreePort(func(port int) error {
		conf := filepath.Join(dir, "sentinel.conf")
		body := strings.Join([]string{
			"port " + strconv.Itoa(port),
			"bind 127.0.0.1",
			"dir " + dir,
			"protected-mode no",
			"loglevel warning",
			"sentinel monitor " + MasterName + " 127.0.0.1 " + strconv.Itoa(primaryPort) + " 2",
			"sentinel down-after-milliseconds " + MasterName + " " + strconv.FormatInt(s.opts.DownAfter.Milliseconds(), 10),
			"sentinel failover-timeout " + MasterName + " " + strconv.FormatInt(s.opts.FailoverTimeout.Milliseconds(), 10),
			"sentinel parallel-syncs " + MasterName + " 1",
		}, "\n") + "\n"
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			return err
		}
		cmd, err := spawn(port, []string{conf, "--sentinel"})
		if err != nil {
			return err
		}
		sen = &Server{Dir: dir, Port: port, cmd: cmd}
		return nil
	})
	return sen, err
}

// waitReplicaLinked waits until the replica at addr has finished its sync
// with its primary.
func waitReplicaLinked(ctx context.Context, addr string) error {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	for {
		info, err := c.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replica %s did not link to its primary: %v (%v)", addr, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitKnown waits until every sentinel sees the other two and every replica
// as healthy.
func (s *Sentinel) waitKnown(ctx context.Context) error {
	want := len(s.nodes) - 1
	for _, sen := range s.sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: sen.Addr()})
		err := func() error {
			defer c.Close()
			for {
				others, err1 := c.Sentinels(ctx, MasterName).Result()
				replicas, err2 := c.Replicas(ctx, MasterName).Result()
				healthy := 0
				for _, r := range replicas {
					if !strings.Contains(r["flags"], "down") && !strings.Contains(r["flags"], "disconnected") {
						healthy++
					}
				}
				if err1 == nil && err2 == nil && len(others) == 2 && healthy == want {
					return nil
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("sentinel %s: knows %d other sentinels and %d healthy replicas, want 2 and %d: %v", sen.Addr(), len(others), healthy, want, errors.Join(ctx.Err(), err1, err2))
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// URL is the redis-sentinel:// URL of database db, as config.ParseRedisURL
// accepts it.
func (s *Sentinel) URL(db int) string {
	addrs := make([]string, len(s.sentinels))
	for i, sen := range s.sentinels {
		addrs[i] = sen.Addr()
	}
	return fmt.Sprintf("redis-sentinel://%s/%d?master=%s", strings.Join(addrs, ","), db, MasterName)
}

// Nodes are the data nodes (the primary first at start).
func (s *Sentinel) Nodes() []*Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Server(nil), s.nodes...)
}

// PrimaryAddr asks the sentinels (the first that answers) for the
// primary's address.
func (s *Sentinel) PrimaryAddr(ctx context.Context) (string, error) {
	var errs []error
	for _, sen := range s.sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: sen.Addr()})
		a, err := c.GetMasterAddrByName(ctx, MasterName).Result()
		c.Close()
		if err == nil && len(a) == 2 {
			return net.JoinHostPort(a[0], a[1]), nil
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("no sentinel names a primary: %w", errors.Join(errs...))
}

// Primary returns the data node that the sentinels name as the primary.
func (s *Sentinel) Primary(ctx context.Context) (*Server, error) {
	addr, err := s.PrimaryAddr(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range s.Nodes() {
		if n.Addr() == addr {
			return n, nil
		}
	}
	return nil, fmt.Errorf("the sentinels name %s, which is none of the data nodes", addr)
}

// Promotion is what a failover did.
type Promotion struct {
	Old, New string // the primary's address before and after
	// Took is from the request (or the kill) until every sentinel names the
	// new primary and it accepts writes.
	Took time.Duration
}

// Failover asks a sentinel for a failover (SENTINEL FAILOVER) and waits
// until a new primary is promoted, every sentinel names it, it accepts a
// write, and the old primary follows it as a replica again.
func (s *Sentinel) Failover(ctx context.Context) (Promotion, error) {
	old, err := s.PrimaryAddr(ctx)
	if err != nil {
		return Promotion{}, err
	}
	start := time.Now()
	c := redis.NewSentinelClient(&redis.Options{Addr: s.sentinels[0].Addr()})
	defer c.Close()
	for {
		err := c.Failover(ctx, MasterName).Err()
		if err == nil {
			break
		}
		// NOGOODSLAVE while a replica is still being (re)discovered; INPROG
		// while an earlier failover runs.
		if !strings.Contains(err.Error(), "NOGOODSLAVE") && !strings.Contains(err.Error(), "INPROG") {
			return Promotion{}, fmt.Errorf("sentinel failover: %w", err)
		}
		select {
		case <-ctx.Done():
			return Promotion{}, fmt.Errorf("sentinel failover: %w (%w)", err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	p, err := s.waitPromoted(ctx, old, start)
	if err != nil {
		return p, err
	}
	if err := waitReplicaLinked(ctx, old); err != nil {
		return p, fmt.Errorf("old primary %s did not follow the new one: %w", old, err)
	}
	return p, s.waitKnown(ctx)
}

// KillPrimary kills the primary with SIGKILL and waits until the sentinels
// agree it is down and have promoted a replica that accepts writes. The
// killed node stays down; Rejoin brings it back as a replica.
func (s *Sentinel) KillPrimary(ctx context.Context) (*Server, Promotion, error) {
	n, err := s.Primary(ctx)
	if err != nil {
		return nil, Promotion{}, err
	}
	start := time.Now()
	n.Stop()
	p, err := s.waitPromoted(ctx, n.Addr(), start)
	return n, p, err
}

// Rejoin restarts a killed data node (same port and data directory) as a
// replica of the current primary, as a supervisor restarting it would, and
// waits until it has synced and the sentinels count it healthy again.
func (s *Sentinel) Rejoin(ctx context.Context, n *Server) error {
	primary, err := s.PrimaryAddr(ctx)
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(primary)
	n.mu.Lock()
	n.Args = append(slices.Clone(s.opts.Args), "--replicaof", "127.0.0.1", port)
	n.mu.Unlock()
	if err := n.launch(); err != nil {
		return fmt.Errorf("rejoin %s: %w", n.Addr(), err)
	}
	if err := waitReplicaLinked(ctx, n.Addr()); err != nil {
		return err
	}
	return s.waitKnown(ctx)
}

// waitPromoted waits until every sentinel names a primary other than old
// and that node accepts a write.
func (s *Sentinel) waitPromoted(ctx context.Context, old string, start time.Time) (Promotion, error) {
	p := Promotion{Old: old}
	for {
		addr, agreed := "", true
		for _, sen := range s.sentinels {
			c := redis.NewSentinelClient(&redis.Options{Addr: sen.Addr()})
			a, err := c.GetMasterAddrByName(ctx, MasterName).Result()
			c.Close()
			if err != nil || len(a) != 2 {
				agreed = false
				break
			}
			got := net.JoinHostPort(a[0], a[1])
			if got == old || addr != "" && got != addr {
				agreed = false
				break
			}
			addr = got
		}
		if agreed && addr != "" && writable(ctx, addr) {
			p.New, p.Took = addr, time.Since(start)
			return p, nil
		}
		select {
		case <-ctx.Done():
			return p, fmt.Errorf("no new primary after %s: %w", time.Since(start).Round(time.Millisecond), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// writable reports whether the node at addr is a primary that takes a
// write.
func writable(ctx context.Context, addr string) bool {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return c.Set(cctx, "redistest:failover:probe", time.Now().UnixNano(), time.Minute).Err() == nil
}

// Stop kills every process of the topology.
func (s *Sentinel) Stop() {
	for _, sen := range s.sentinels {
		sen.Stop()
	}
	for _, n := range s.Nodes() {
		n.Stop()
	}
}
