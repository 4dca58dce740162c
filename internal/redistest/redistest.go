// Package redistest starts private redis-server processes for tests. A test
// package calls Main from its TestMain; each test then takes a fresh, empty
// logical database with Client or URL, so tests can run in parallel on one
// server. A missing redis-server binary is a test failure, not a skip: the
// project's test command installs it.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Databases is how many logical databases the shared server offers; each test
// that calls Client or URL uses one.
const Databases = 4096

// Server is a redis-server process owned by a test.
type Server struct {
	Dir  string // data directory (AOF and RDB files live here)
	Port int
	AOF  bool
	// Args are further redis-server arguments (a replica's --replicaof,
	// for example), used by every launch.
	Args []string
	cmd  *exec.Cmd
	mu   sync.Mutex
}

var (
	shared   *Server
	nextDB   atomic.Int64
	startErr error
)

// Main starts one redis-server for the whole test package, runs the tests and
// stops it. Use it as: func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }.
func Main(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pmsbridge-redis-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "redistest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	shared, startErr = start(dir, false)
	if startErr != nil {
		fmt.Fprintln(os.Stderr, "redistest:", startErr)
		return 1
	}
	defer shared.Stop()
	return m.Run()
}

// Start starts a redis-server that belongs to one test (for tests that stop,
// restart or break Redis). It is stopped when the test ends.
func Start(t testing.TB, aof bool) *Server {
	t.Helper()
	s, err := start(t.TempDir(), aof)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// URL is a redis:// URL for database db of the server.
func (s *Server) URL(db int) string { return fmt.Sprintf("redis://%s/%d", s.Addr(), db) }

// Stop kills the server (SIGKILL: with AOF on, what was acknowledged survives
// the next Restart).
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// Restart stops the server and starts it again on the same port and data
// directory.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.launch(); err != nil {
		t.Fatalf("redistest: restart: %v", err)
	}
}

// Launch starts a redis-server outside a test (the benchmark command uses
// it), with its data in dir; the caller stops it.
func Launch(dir string, aof bool) (*Server, error) { return start(dir, aof) }

func start(dir string, aof bool, args ...string) (*Server, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, fmt.Errorf("redis-server is not installed (install the Debian package redis-server, or run the README's test command, which does): %w", err)
	}
	s := &Server{Dir: dir, AOF: aof, Args: args}
	if err := onFreePort(func(port int) error {
		s.Port = port
		return s.launch()
	}); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) launch() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	aof := "no"
	if s.AOF {
		aof = "yes"
	}
	args := []string{
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1",
		"--dir", s.Dir, "--databases", strconv.Itoa(Databases),
		"--save", "", "--appendonly", aof, "--appendfsync", "everysec",
		"--maxmemory-policy", "noeviction", "--protected-mode", "no",
		"--loglevel", "warning",
		// A replica's first sync starts at once rather than after 5 s.
		"--repl-diskless-sync-delay", "0",
	}
	cmd, err := spawn(s.Port, append(args, s.Args...))
	if err != nil {
		return err
	}
	s.cmd = cmd
	return nil
}

// onFreePort calls try with a free port of 127.0.0.1 until it succeeds,
// five times at most (another process may take a port between the check
// and the server's bind), and returns the last error.
func onFreePort(try func(port int) error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		port, perr := freePort()
		if perr != nil {
			return perr
		}
		if err = try(port); err == nil {
			return nil
		}
	}
	return err
}

// spawn starts redis-server with args (a data node's flags, or a sentinel's
// configuration file) and waits until it answers PING on port of
// 127.0.0.1. If it does not within 10 s, it is killed and the error holds
// the start of its log.
func spawn(port int, args []string) (*exec.Cmd, error) {
	cmd := exec.Command("redis-server", args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	var logs strings.Builder
	var logMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			logMu.Lock()
			if logs.Len() < 4096 {
				logs.WriteString(sc.Text() + "\n")
			}
			logMu.Unlock()
		}
	}()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return cmd, nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			logMu.Lock()
			defer logMu.Unlock()
			return nil, fmt.Errorf("redis-server did not answer on port %d: %v\n%s", port, err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// URL takes a fresh, empty database on the package's shared server and
// returns its redis:// URL. It needs Main in TestMain.
func URL(t testing.TB) string {
	t.Helper()
	if shared == nil {
		t.Fatal("redistest: no shared server; call redistest.Main from TestMain")
	}
	db := int(nextDB.Add(1)) % Databases
	rdb := redis.NewClient(&redis.Options{Addr: shared.Addr(), DB: db})
	defer rdb.Close()
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatalf("redistest: flush db %d: %v", db, err)
	}
	return shared.URL(db)
}

// Client takes a fresh, empty database on the package's shared server and
// returns a client for it, closed when the test ends.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(URL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// Shared returns the package's shared server (nil without Main).
func Shared() *Server { return shared }

// ClientAt returns a plain client for database db of the Redis at addr
// (one node of a topology, for example), closed when the test ends.
func ClientAt(t testing.TB, addr string, db int) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, DB: db})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}
