package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/internal/redistest"
	"github.com/physitrack/pmsbridge/internal/rig"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
	"github.com/redis/go-redis/v9"
)

// binary is the pmsbridge binary, built once for the package: these tests
// run the real program, as a script or a person would.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pmsbridge-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	binary, err = rig.Build(ctx, dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := redistest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is how a run of the binary ended.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %q\nstderr: %q", r.code, r.stdout, r.stderr)
}

// runBinary runs pmsbridge with exactly environ (nothing inherited) and
// stdin (nil: no stdin at all, /dev/null).
func runBinary(t *testing.T, environ []string, stdin io.Reader, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append([]string{}, environ...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	return finish(t, cmd, &out, &errb, cmd.Run())
}

func finish(t *testing.T, cmd *exec.Cmd, out, errb *bytes.Buffer, err error) result {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
	default:
		t.Fatalf("run %v: %v", cmd.Args, err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}
}

// runOnTerminal runs pmsbridge with a pseudo-terminal as stdin and types
// input into it (stdout and stderr are pipes, read separately).
func runOnTerminal(t *testing.T, environ []string, input string, args ...string) result {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("open a pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	cmd := exec.Command(binary, args...)
	cmd.Env = append([]string{}, environ...)
	cmd.Stdin = tty
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		tty.Close()
		t.Fatal(err)
	}
	tty.Close()
	// The terminal keeps the typed line until the program reads it (and
	// echoes it back, which nobody needs).
	go func() { _, _ = io.Copy(io.Discard, ptmx) }()
	if _, err := ptmx.Write([]byte(input)); err != nil {
		t.Fatalf("type into the terminal: %v", err)
	}
	return finish(t, cmd, &out, &errb, cmd.Wait())
}

// world is a Redis database seeded with a clinic and failure-ledger
// entries, and the environment that points pmsbridge at it.
type world struct {
	t       *testing.T
	rdb     *redis.Client
	st      *store.Store
	environ []string
	// failures are the seeded ledger entries, by task id.
	failures                   map[string]store.Failure
	forbidden1, forbidden2, nf string
	sub                        string
	ann, bob                   string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	url := redistest.URL(t)
	key := rig.NewEncryptionKey()
	st, closeStore, err := rig.OpenStore(url, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeStore)
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, rdb: redis.NewClient(opt), st: st, failures: map[string]store.Failure{},
		environ: []string{
			"PMSBRIDGE_REGION=au",
			"PMSBRIDGE_REDIS_URL=" + url,
			"PMSBRIDGE_CLINIKO_USER_AGENT=" + rig.UserAgent,
			"PMSBRIDGE_SECRETS_ENCRYPTION_KEY=" + key,
		}}
	t.Cleanup(func() { w.rdb.Close() })
	ctx := context.Background()
	sub, err := st.CreateSubscription(ctx, "Script Clinic")
	if err != nil {
		t.Fatal(err)
	}
	w.sub = sub.ID
	for _, email := range []string{"ann@script.example", "bob@script.example"} {
		p, err := st.CreatePractitioner(ctx, store.NewPractitioner{SubscriptionID: sub.ID, Email: email, Name: email, Password: rig.Password})
		if err != nil {
			t.Fatal(err)
		}
		if w.ann == "" {
			w.ann = p.ID
		} else {
			w.bob = p.ID
		}
	}
	if _, err := st.SetSharing(ctx, sub.ID, []string{w.ann}, nil); err != nil {
		t.Fatal(err)
	}
	add := func(clinikoID string, cause pmsbridge.Cause) string {
		p := jobs.ImportPayload{PractitionerID: w.ann, SubscriptionID: sub.ID, Shard: "au1", ClinikoPatientID: clinikoID}
		payload, _ := json.Marshal(p)
		f := store.Failure{TaskID: jobs.ImportTaskID(sub.ID, "au1", clinikoID), Queue: jobs.QueueImport, Type: jobs.TypeImportPatient,
			Permanent: true, Cause: cause, Reason: "seeded " + string(cause), PractitionerID: w.ann, ClinikoPatientID: clinikoID,
			Attempts: 1, Payload: payload}
		if err := st.RecordFailure(ctx, f); err != nil {
			t.Fatal(err)
		}
		got, err := st.GetFailure(ctx, f.TaskID)
		if err != nil {
			t.Fatal(err)
		}
		w.failures[f.TaskID] = got
		return f.TaskID
	}
	w.forbidden1 = add("1001", pmsbridge.CauseClinikoForbidden)
	w.forbidden2 = add("1002", pmsbridge.CauseClinikoForbidden)
	w.nf = add("1003", pmsbridge.CauseClinikoNotFound)
	return w
}

// snapshot is every key of the world's database with its serialized value.
func (w *world) snapshot() map[string]string {
	w.t.Helper()
	ctx := context.Background()
	keys, err := w.rdb.Keys(ctx, "*").Result()
	if err != nil {
		w.t.Fatal(err)
	}
	snap := map[string]string{}
	for _, k := range keys {
		v, err := w.rdb.Dump(ctx, k).Result()
		if err != nil {
			w.t.Fatalf("dump %s: %v", k, err)
		}
		snap[k] = v
	}
	return snap
}

// taskState is asynq's state of a seeded task ("none" when asynq has no
// such task).
func (w *world) taskState(id string) string {
	w.t.Helper()
	insp := asynq.NewInspectorFromRedisClient(w.rdb)
	info, err := insp.GetTaskInfo(jobs.QueueImport, id)
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return "none"
	}
	if err != nil {
		w.t.Fatal(err)
	}
	return info.State.String()
}

// replayed reports whether a seeded entry was replayed: back to a fresh
// retry budget, and its task queued.
func (w *world) replayed(id string) bool {
	w.t.Helper()
	f, err := w.st.GetFailure(context.Background(), id)
	if err != nil {
		w.t.Fatalf("%s: %v", id, err)
	}
	return !f.Permanent && f.Attempts == 0 && w.taskState(id) == "pending"
}

func (w *world) untouched(id string) {
	w.t.Helper()
	f, err := w.st.GetFailure(context.Background(), id)
	if err != nil {
		w.t.Fatalf("%s: %v", id, err)
	}
	if diff := cmp.Diff(w.failures[id], f); diff != "" {
		w.t.Errorf("ledger entry %s changed (-seeded +now):\n%s", id, diff)
	}
	if s := w.taskState(id); s != "none" {
		w.t.Errorf("%s is %s in asynq, want no task", id, s)
	}
}

// oneLine checks that s is exactly one line that says to add --yes.
func oneLine(t *testing.T, r result) {
	t.Helper()
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") || !strings.Contains(r.stderr, "--yes") {
		t.Errorf("stderr should be one line saying to add --yes; %s", r)
	}
}

// TestConfirmingCommandsWithoutTerminal: a script (no terminal, no --yes)
// running any command that would ask gets exit 2 and one line saying to
// add --yes, and nothing changes in Redis — whatever the command would
// match, and even with a "y" piped in.
func TestConfirmingCommandsWithoutTerminal(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	before := w.snapshot()
	for _, tc := range []struct {
		desc  string
		stdin io.Reader
		args  []string
	}{
		{"replay by cause", nil, []string{"jobs", "replay", "--cause", "cliniko_forbidden"}},
		{"replay by cause matching nothing", nil, []string{"jobs", "replay", "--cause", "cliniko_invalid"}},
		{"replay by type", nil, []string{"jobs", "replay", "--type", jobs.TypeImportPatient}},
		{"replay by practitioner", nil, []string{"jobs", "replay", "--practitioner", w.ann}},
		{"replay several ids", nil, []string{"jobs", "replay", w.forbidden1, w.nf}},
		{"replay by cause, json", nil, []string{"jobs", "replay", "--cause", "cliniko_forbidden", "--json"}},
		{"replay by cause, y piped in", strings.NewReader("y\n"), []string{"jobs", "replay", "--cause", "cliniko_forbidden"}},
		{"delete one", nil, []string{"jobs", "delete", w.nf}},
		{"delete several", nil, []string{"jobs", "delete", w.forbidden1, w.forbidden2}},
		{"delete, y piped in", strings.NewReader("yes\n"), []string{"jobs", "delete", w.nf}},
		{"admin sharing set", nil, []string{"admin", "sharing", "set", w.sub, "--patients", w.ann + "," + w.bob}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r := runBinary(t, w.environ, tc.stdin, tc.args...)
			if r.code != 2 {
				t.Errorf("want exit 2; %s", r)
			}
			oneLine(t, r)
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
		})
	}
	if diff := cmp.Diff(before, w.snapshot()); diff != "" {
		t.Errorf("Redis changed (-before +after):\n%s", diff)
	}
	for id := range w.failures {
		w.untouched(id)
	}
}

// TestConfirmingCommandsWithYes: with --yes the same commands act without
// a terminal and exit 0; one job replayed by its id does not ask.
func TestConfirmingCommandsWithYes(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()

	r := runBinary(t, w.environ, nil, "jobs", "replay", "--cause", "cliniko_forbidden", "--yes", "--json")
	var doc map[string]int
	if err := json.Unmarshal([]byte(r.stdout), &doc); r.code != 0 || err != nil || !cmp.Equal(doc, map[string]int{"replayed": 2}) {
		t.Fatalf("replay --cause --yes --json (%v); %s", err, r)
	}
	if !w.replayed(w.forbidden1) || !w.replayed(w.forbidden2) {
		t.Errorf("replay --cause --yes did not queue both forbidden imports")
	}
	w.untouched(w.nf)

	// Nothing matching is nothing done: exit 1, for the script to see.
	r = runBinary(t, w.environ, nil, "jobs", "replay", "--cause", "cliniko_invalid", "--yes")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "No failed jobs match; nothing replayed.") {
		t.Errorf("replay --yes of a filter matching nothing; %s", r)
	}
	r = runBinary(t, w.environ, nil, "jobs", "replay", "--cause", "cliniko_invalid", "--yes", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &doc); r.code != 1 || err != nil || !cmp.Equal(doc, map[string]int{"replayed": 0}) {
		t.Errorf("replay --yes --json of a filter matching nothing (%v); %s", err, r)
	}

	r = runBinary(t, w.environ, nil, "jobs", "replay", w.nf)
	if r.code != 0 || !strings.Contains(r.stdout, "Replayed 1 job") {
		t.Fatalf("replay of one id without a terminal; %s", r)
	}
	if !w.replayed(w.nf) {
		t.Errorf("replay ID did not queue the import")
	}

	r = runBinary(t, w.environ, nil, "jobs", "delete", w.forbidden1, w.nf, "--yes")
	if r.code != 0 || !strings.Contains(r.stdout, "Deleted "+w.forbidden1) || !strings.Contains(r.stdout, "Deleted "+w.nf) {
		t.Fatalf("delete --yes; %s", r)
	}
	for _, id := range []string{w.forbidden1, w.nf} {
		if _, err := w.st.GetFailure(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s still in the ledger after delete --yes (%v)", id, err)
		}
	}

	r = runBinary(t, w.environ, nil, "admin", "sharing", "set", w.sub, "--patients", w.ann+","+w.bob, "--yes")
	if r.code != 0 {
		t.Fatalf("sharing set --yes; %s", r)
	}
	if sh, err := w.st.GetSharing(ctx, w.sub); err != nil || len(sh.Patients) != 2 {
		t.Errorf("sharing after set --yes: %+v %v, want both practitioners", sh, err)
	}
}

// TestConfirmationOnTerminal: on a terminal the command asks; "n" or the
// end of input exits 1 with "Nothing …" and changes nothing; "y" acts.
func TestConfirmationOnTerminal(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	before := w.snapshot()
	for _, tc := range []struct {
		desc, input string
		args        []string
		question    string
		nothing     string
	}{
		{"replay, no", "n\n", []string{"jobs", "replay", "--cause", "cliniko_forbidden"}, "Replay 2 failed jobs of Script Clinic? [y/N]", "Nothing replayed."},
		{"replay, just enter", "\n", []string{"jobs", "replay", w.forbidden1, w.nf}, "Replay 2 failed jobs of Script Clinic? [y/N]", "Nothing replayed."},
		{"replay, end of input", "\x04", []string{"jobs", "replay", "--cause", "cliniko_forbidden"}, "Replay 2 failed jobs of Script Clinic? [y/N]", "Nothing replayed."},
		{"delete, no", "no\n", []string{"jobs", "delete", w.nf}, "Delete 1 failed job for good? [y/N]", "Nothing deleted."},
		{"sharing, end of input", "\x04", []string{"admin", "sharing", "set", w.sub, "--patients", w.bob}, "patients: " + w.ann + " → " + w.bob, "Nothing changed."},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r := runOnTerminal(t, w.environ, tc.input, tc.args...)
			if r.code != 1 || !strings.Contains(r.stderr, tc.question) || !strings.HasSuffix(r.stderr, tc.nothing+"\n") || r.stdout != "" {
				t.Errorf("want exit 1, the question %q and %q; %s", tc.question, tc.nothing, r)
			}
		})
	}
	if diff := cmp.Diff(before, w.snapshot()); diff != "" {
		t.Errorf("Redis changed (-before +after):\n%s", diff)
	}

	r := runOnTerminal(t, w.environ, "y\n", "jobs", "replay", "--cause", "cliniko_forbidden")
	if r.code != 0 || !strings.Contains(r.stdout, "Replayed 2 job") {
		t.Fatalf("replay answered y; %s", r)
	}
	if !w.replayed(w.forbidden1) || !w.replayed(w.forbidden2) {
		t.Errorf("replay answered y did not queue both imports")
	}
	w.untouched(w.nf)
}

// TestReadOnlyCommandsNeedOnlyRedisURL: jobs stats, failed and show run
// with nothing but PMSBRIDGE_REDIS_URL (no region, no Cliniko user agent,
// no encryption key); commands that change things still need the whole
// configuration.
func TestReadOnlyCommandsNeedOnlyRedisURL(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	var onlyRedis []string
	for _, kv := range w.environ {
		if strings.HasPrefix(kv, "PMSBRIDGE_REDIS_URL=") {
			onlyRedis = append(onlyRedis, kv)
		}
	}

	r := runBinary(t, onlyRedis, nil, "jobs", "failed", "--json")
	var doc struct {
		Jobs []jobs.JobJSON `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); r.code != 0 || err != nil || len(doc.Jobs) != len(w.failures) {
		t.Fatalf("jobs failed --json with only redis.url (%v); %s", err, r)
	}
	for _, j := range doc.Jobs {
		if _, ok := w.failures[j.ID]; !ok {
			t.Errorf("jobs failed lists %s, which was not seeded", j.ID)
		}
	}
	if r := runBinary(t, onlyRedis, nil, "jobs", "failed", "--wide", "--cause", "cliniko_forbidden"); r.code != 0 || !strings.Contains(r.stdout, w.forbidden1) || strings.Contains(r.stdout, w.nf) {
		t.Errorf("jobs failed --cause with only redis.url; %s", r)
	}
	// Without the encryption key the rows name the clinic and the
	// practitioner, not patients (no PATIENT column).
	r = runBinary(t, onlyRedis, nil, "jobs", "failed", "--clinic", "Script Clinic", "--practitioner", "ann@script.example")
	if r.code != 0 || !strings.Contains(r.stdout, "Script Clinic") || !strings.Contains(r.stdout, "<ann@script.example>") || strings.Contains(r.stdout, "PATIENT") ||
		!strings.Contains(r.stdout, "3 failed jobs of Script Clinic.") {
		t.Errorf("jobs failed --clinic --practitioner with only redis.url; %s", r)
	}
	if r := runBinary(t, onlyRedis, nil, "jobs", "recovered"); r.code != 0 || !strings.Contains(r.stdout, "No job recovered") {
		t.Errorf("jobs recovered with only redis.url; %s", r)
	}
	if r := runBinary(t, onlyRedis, nil, "jobs", "show", w.nf); r.code != 0 || !strings.Contains(r.stdout, "cliniko_not_found") {
		t.Errorf("jobs show with only redis.url; %s", r)
	}
	if r := runBinary(t, onlyRedis, nil, "jobs", "stats"); r.code != 0 || !strings.Contains(r.stdout, "Failure ledger: 3 entries") {
		t.Errorf("jobs stats with only redis.url; %s", r)
	}

	// A bad key is still a configuration problem (exit 2, one line).
	r = runBinary(t, append(onlyRedis, "PMSBRIDGE_SECRETS_ENCRYPTION_KEY=c2hvcnQ="), nil, "jobs", "failed")
	if r.code != 2 || !strings.Contains(r.stderr, "secrets.encryption_key (PMSBRIDGE_SECRETS_ENCRYPTION_KEY): must decode to 32 bytes") {
		t.Errorf("jobs failed with a bad key; %s", r)
	}
	// Replaying needs what run needs.
	r = runBinary(t, onlyRedis, nil, "jobs", "replay", w.nf)
	if r.code != 2 || !strings.Contains(r.stderr, "secrets.encryption_key") || !strings.Contains(r.stderr, "cliniko.user_agent") {
		t.Errorf("jobs replay with only redis.url; %s", r)
	}
	w.untouched(w.nf)
}

// TestRedisDownIsOneLine: with Redis unreachable a command prints one
// clean line (no go-redis pool messages) and exits 1.
func TestRedisDownIsOneLine(t *testing.T) {
	t.Parallel()
	port, err := rig.FreePort() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("redis://:secret-pw@127.0.0.1:%d/0", port)
	full := []string{"PMSBRIDGE_REGION=au", "PMSBRIDGE_REDIS_URL=" + url, "PMSBRIDGE_CLINIKO_USER_AGENT=" + rig.UserAgent,
		"PMSBRIDGE_SECRETS_ENCRYPTION_KEY=" + rig.NewEncryptionKey()}
	for _, args := range [][]string{
		{"jobs", "failed"},
		{"jobs", "stats"},
		{"jobs", "replay", "--cause", "cliniko_forbidden", "--yes"},
		{"admin", "subscription", "list"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := runBinary(t, full, nil, args...)
			if r.code != 1 || r.stdout != "" {
				t.Errorf("want exit 1 and no output; %s", r)
			}
			if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "pmsbridge: redis (redis.url redis://:xxxxx@127.0.0.1:") ||
				!strings.Contains(r.stderr, "does not answer") {
				t.Errorf("want one line saying Redis does not answer; %s", r)
			}
			if strings.Contains(r.stderr, "secret-pw") {
				t.Errorf("the Redis password reached stderr")
			}
		})
	}
}
