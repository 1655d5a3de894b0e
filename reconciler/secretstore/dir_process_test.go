package secretstore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/osbgit/osbgit/reconciler/secrets"
)

// The Dir tests that need more than one process re-run the test binary as
// a child, in the mode named by envChild, on the store named by envStore.
const (
	envChild = "OSBGIT_DIRSTORE_CHILD"
	envStore = "OSBGIT_DIRSTORE_PATH"
	// race mode: which writer the child is (see raceSecret) and how many
	// operations it makes.
	envWriter = "OSBGIT_DIRSTORE_WRITER"
	envOps    = "OSBGIT_DIRSTORE_OPS"
	// crash mode: the operation ("put" of crashWant, or "delete") and the
	// crashStep at which the child stops, holding the Secret's lock, until
	// it is killed.
	envOp   = "OSBGIT_DIRSTORE_OP"
	envStep = "OSBGIT_DIRSTORE_STEP"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(envChild); mode != "" {
		os.Exit(runChild(mode))
	}
	os.Exit(m.Run())
}

func runChild(mode string) int {
	d, err := NewDir(os.Getenv(envStore))
	if err == nil {
		switch mode {
		case "race":
			err = childRace(d)
		case "crash":
			err = childCrash(d)
		case "createonce":
			err = childCreateOnce(d)
		default:
			err = fmt.Errorf("unknown child mode %q", mode)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// child is a running child process of the test binary.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr bytes.Buffer
	// done is closed when the child has exited, and then err is its
	// Wait's answer.
	done chan struct{}
	err  error
}

// startChild starts the test binary as a child in mode with env added.
// Its stdout is an os.Pipe, not a StdoutPipe, which Wait would close
// under a reader that has not read all yet; the test's end closes it, so
// what a child printed can be read after it exited.
func startChild(t *testing.T, mode string, env ...string) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: exec.Command(exe, "-test.run=^$"), done: make(chan struct{})}
	c.cmd.Env = append(append(os.Environ(), envChild+"="+mode), env...)
	c.cmd.Stderr = &c.stderr
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Stdout = w
	c.stdout = bufio.NewReader(out)
	err = c.cmd.Start()
	w.Close()
	if err != nil {
		out.Close()
		t.Fatal(err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.done
		out.Close()
	})
	return c
}

// line reads the child's next line of output; if there is none, the test
// fails with the child's stderr.
func (c *child) line(t *testing.T) string {
	t.Helper()
	line, err := c.stdout.ReadString('\n')
	if err != nil {
		<-c.done
		t.Fatalf("child: %v (exit: %v)\n%s", err, c.err, c.stderr.String())
	}
	return strings.TrimSuffix(line, "\n")
}

// raceSecret is what writer w ("A" or "B") puts at its i-th operation:
// each writer its own set of keys, all holding one value naming the
// writer and the operation, so a read mixing two Puts shows.
func raceSecret(w string, i int) secrets.Secret {
	v := []byte(fmt.Sprintf("%s-%04d-%s", w, i, strings.Repeat(w, 2000+i%7)))
	data := map[string][]byte{"user": v, "pass": v}
	if w == "A" {
		data["host"] = v
	} else {
		data["port"] = v
	}
	return secrets.BindingSecret(data, "ns", "b", w+strconv.Itoa(i))
}

// checkWhole says what is wrong with data read during the race, if
// anything: it must be one whole raceSecret.
func checkWhole(data map[string][]byte) error {
	v := data["user"]
	if len(v) < 7 {
		return fmt.Errorf("no whole value: %d keys", len(data))
	}
	w, i := string(v[:1]), 0
	if _, err := fmt.Sscanf(string(v[2:6]), "%04d", &i); err != nil {
		return fmt.Errorf("value of user is not a writer's: %q", v[:6])
	}
	if !cmp.Equal(data, raceSecret(w, i).Data) {
		keys := sortedKeys(data)
		heads := make([]string, len(keys))
		for n, k := range keys {
			heads[n] = fmt.Sprintf("%s=%.6s(%d bytes)", k, data[k], len(data[k]))
		}
		return fmt.Errorf("not one Put's Secret: %s", strings.Join(heads, " "))
	}
	return nil
}

// childRace waits for its stdin to close (so both writers start
// together), then puts and deletes Secret ns/s, reading it back after each
// operation, and says "started" on stdout after the first. Its last
// operation is a Put.
func childRace(d *Dir) error {
	ctx := context.Background()
	w := os.Getenv(envWriter)
	n, err := strconv.Atoi(os.Getenv(envOps))
	if err != nil {
		return err
	}
	io.Copy(io.Discard, os.Stdin)
	for i := range n {
		if i%5 == 2 && i != n-1 {
			err = d.Delete(ctx, "ns", "s")
		} else {
			err = d.Put(ctx, "ns", "s", raceSecret(w, i))
		}
		if err != nil {
			return fmt.Errorf("writer %s, operation %d: %w", w, i, err)
		}
		if i == 0 {
			fmt.Println("started")
		}
		got, err := d.Get(ctx, "ns", "s")
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err == nil {
			err = checkWhole(got)
		}
		if err != nil {
			return fmt.Errorf("writer %s, read after operation %d: %w", w, i, err)
		}
	}
	return nil
}

// Two processes putting and deleting one Secret, each with its own keys:
// every read, theirs and a third process's, sees one Put's whole Secret or
// none, and the end state is one writer's last Put. Without the lock,
// reads see keys of two Puts (an update replaces keys one by one, a
// Delete removes them one by one).
func TestDirTwoProcessesWritingOneSecret(t *testing.T) {
	ops := 60
	if testing.Short() {
		ops = 20
	}
	d, root := newTestDir(t)
	var children []*child
	for _, w := range []string{"A", "B"} {
		children = append(children, startChild(t, "race", envStore+"="+root, envWriter+"="+w, envOps+"="+strconv.Itoa(ops)))
	}
	for _, c := range children {
		c.stdin.Close()
	}
	exited := make(chan struct{}, len(children))
	for _, c := range children {
		if line := c.line(t); line != "started" {
			t.Fatalf("writer said %q", line)
		}
		go func() { <-c.done; exited <- struct{}{} }()
	}
	ctx := context.Background()
	// The test process reads too, as a third process that only reads,
	// from when both writers have started, at most 2*ops times: a reader
	// that never pauses delays the writers (an flock has no writer
	// preference).
	reads, whole := 0, 0
	for running := len(children); running > 0; {
		if reads == 2*ops {
			<-exited
			running--
			continue
		}
		select {
		case <-exited:
			running--
			continue
		default:
		}
		got, err := d.Get(ctx, "ns", "s")
		reads++
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err == nil {
			err = checkWhole(got)
		}
		if err != nil {
			t.Fatalf("read %d: %v", reads, err)
		}
		whole++
	}
	for _, c := range children {
		if c.err != nil {
			t.Fatalf("writer: %v\n%s", c.err, c.stderr.String())
		}
	}
	t.Logf("%d reads by the test process during the race, %d of a whole Secret", reads, whole)
	got, err := d.Get(ctx, "ns", "s")
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(got, raceSecret("A", ops-1).Data) && !cmp.Equal(got, raceSecret("B", ops-1).Data) {
		t.Errorf("end state is not a writer's last Put: %v", checkWhole(got))
	}
	assertNoTemps(t, root)
	assertPrivate(t, root)
}

// assertPrivate checks that everything in the store is 0700 (directories)
// or 0600 (files).
func assertPrivate(t *testing.T, root string) {
	t.Helper()
	for rel, mode := range tree(t, root) {
		if mode != "drwx------" && mode != "-rw-------" {
			t.Errorf("%s: mode %s", rel, mode)
		}
	}
}

// childCreateOnce waits for its stdin to close (so all children start
// together), calls CreateOnce of Secret ns/s with key "key" holding its
// writer name, and prints the value of "key" it got back.
func childCreateOnce(d *Dir) error {
	w := os.Getenv(envWriter)
	io.Copy(io.Discard, os.Stdin)
	data, err := d.CreateOnce(context.Background(), "ns", "s", secrets.Secret{Data: map[string][]byte{"key": []byte(w)}})
	if err != nil {
		return fmt.Errorf("writer %s: %w", w, err)
	}
	fmt.Printf("%s\n", data["key"])
	return nil
}

// Processes calling CreateOnce on one store at once, each with its own
// data, all get the data of one of them, the one the store then holds.
func TestDirCreateOnceFromSeveralProcesses(t *testing.T) {
	d, root := newTestDir(t)
	var children []*child
	for _, w := range []string{"A", "B", "C"} {
		children = append(children, startChild(t, "createonce", envStore+"="+root, envWriter+"="+w))
	}
	for _, c := range children {
		c.stdin.Close()
	}
	got := make([]string, len(children))
	for i, c := range children {
		got[i] = c.line(t)
		<-c.done
		if c.err != nil {
			t.Fatalf("writer: %v\n%s", c.err, c.stderr.String())
		}
	}
	stored, err := d.Get(context.Background(), "ns", "s")
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v != string(stored["key"]) || len(stored) != 1 {
			t.Errorf("child %d got %q, the store holds %q", i, v, stored)
		}
	}
	assertNoTemps(t, root)
	assertPrivate(t, root)
}

// crashWant is what the crash child puts.
var crashWant = secrets.BindingSecret(map[string][]byte{"user": []byte("new-user"), "pass": []byte("new-pass"), "port": []byte("new-port")}, "ns", "b", "new")

// crashOld is the Secret already there for the update and delete cases.
var crashOld = secrets.BindingSecret(map[string][]byte{"user": []byte("old-user"), "pass": []byte("old-pass"), "host": []byte("old-host")}, "ns", "b", "old")

// childCrash runs one Put of crashWant or one Delete of ns/s, and at
// crash step envStep says so on stdout, then waits to be killed.
func childCrash(d *Dir) error {
	step := os.Getenv(envStep)
	crashHook = func(s string) {
		if s == step {
			fmt.Printf("reached %s\n", s)
			io.Copy(io.Discard, os.Stdin) // until killed (or the test is gone)
			os.Exit(3)
		}
	}
	var err error
	switch op := os.Getenv(envOp); op {
	case "put":
		err = d.Put(context.Background(), "ns", "s", crashWant)
	case "delete":
		err = d.Delete(context.Background(), "ns", "s")
	default:
		err = fmt.Errorf("unknown operation %q", op)
	}
	return fmt.Errorf("finished without reaching %q: %v", step, err)
}

// A process killed at any step of Put or Delete, holding the Secret's
// lock, leaves a state the next process's Put repairs: it is not blocked
// by the dead process's lock, and the Secret ends complete, private and
// without leftovers.
func TestDirKilledMidWriteIsRepaired(t *testing.T) {
	ctx := context.Background()
	id := idOf("ns", "s")
	exists := func(t *testing.T, root, rel string) bool {
		_, err := os.Lstat(filepath.Join(root, "ns", rel))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		return err == nil
	}
	tests := []struct {
		step  string
		op    string
		setup func(t *testing.T, d *Dir, root string)
		// left checks the state the kill left.
		left func(t *testing.T, d *Dir, root string) error
	}{
		{
			step: stepCreateDirMade, op: "put",
			left: func(t *testing.T, d *Dir, root string) error {
				if !exists(t, root, id.newDir()) || exists(t, root, "s") {
					return errors.New("want the hidden directory only")
				}
				return nil
			},
		},
		{
			step: stepCreateWritten, op: "put",
			left: func(t *testing.T, d *Dir, root string) error {
				if !exists(t, root, filepath.Join(id.newDir(), "user")) || exists(t, root, "s") {
					return errors.New("want the hidden directory, written")
				}
				return nil
			},
		},
		{
			step: stepCreateRenamed, op: "put",
			left: func(t *testing.T, d *Dir, root string) error {
				got, err := d.Get(ctx, "ns", "s")
				if err != nil || !cmp.Equal(got, crashWant.Data) {
					return fmt.Errorf("want the Secret in place: %v %v", got, err)
				}
				return nil
			},
		},
		{
			step: stepUpdateTempWritten, op: "put",
			setup: func(t *testing.T, d *Dir, root string) { mustPut(t, d, crashOld) },
			left: func(t *testing.T, d *Dir, root string) error {
				entries, err := os.ReadDir(filepath.Join(root, "ns", "s"))
				if err != nil {
					return err
				}
				for _, e := range entries {
					if strings.HasPrefix(e.Name(), tmpPrefix) {
						return nil
					}
				}
				return errors.New("want a temp file in the Secret")
			},
		},
		{
			step: stepUpdateKeyReplaced, op: "put",
			setup: func(t *testing.T, d *Dir, root string) { mustPut(t, d, crashOld) },
			left: func(t *testing.T, d *Dir, root string) error {
				got, err := d.Get(ctx, "ns", "s")
				if err != nil || string(got["pass"]) != "new-pass" || string(got["user"]) != "old-user" {
					return fmt.Errorf("want keys old and new: %q %v", got, err)
				}
				return nil
			},
		},
		{
			step: stepLeftoverEmptied, op: "put",
			setup: func(t *testing.T, d *Dir, root string) {
				mustWrite(t, filepath.Join(root, "ns", "s", tmpPrefix+"X"), "old-pass")
			},
			left: func(t *testing.T, d *Dir, root string) error {
				if entries, err := os.ReadDir(filepath.Join(root, "ns", "s")); err != nil || len(entries) != 0 {
					return fmt.Errorf("want an empty directory: %v %v", entries, err)
				}
				return nil
			},
		},
		{
			step: stepDeleteRenamed, op: "delete",
			setup: func(t *testing.T, d *Dir, root string) { mustPut(t, d, crashOld) },
			left: func(t *testing.T, d *Dir, root string) error {
				if _, err := d.Get(ctx, "ns", "s"); !errors.Is(err, ErrNotFound) || !exists(t, root, id.delDir()) {
					return fmt.Errorf("want the Secret gone, its hidden directory left: %v", err)
				}
				return nil
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			d, root := newTestDir(t)
			if tt.setup != nil {
				tt.setup(t, d, root)
			}
			c := startChild(t, "crash", envStore+"="+root, envOp+"="+tt.op, envStep+"="+tt.step)
			if line := c.line(t); line != "reached "+tt.step {
				t.Fatalf("child said %q", line)
			}
			// The child holds the Secret's lock: a writer gives up when
			// its context ends.
			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			store, err := d.openStore(false)
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			if unlock, err := d.lock(cancelled, store, id.stripe(), true); !errors.Is(err, context.Canceled) {
				if err == nil {
					unlock()
				}
				t.Errorf("lock held by the child: err = %v, want context.Canceled", err)
			}
			if err := c.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			<-c.done
			if err := tt.left(t, d, root); err != nil {
				t.Fatalf("state after the kill: %v", err)
			}
			assertNextPutRepairs(t, root)
		})
	}
}

// assertNextPutRepairs checks that the next process's Put of crashWant
// succeeds and leaves it complete, private and without leftovers.
func assertNextPutRepairs(t *testing.T, root string) {
	t.Helper()
	ctx := context.Background()
	next, err := NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Put(ctx, "ns", "s", crashWant); err != nil {
		t.Fatalf("next Put: %v", err)
	}
	got, err := next.Get(ctx, "ns", "s")
	if err != nil || !cmp.Equal(got, crashWant.Data) {
		t.Errorf("Get after the next Put = %q, %v", got, err)
	}
	meta, err := os.ReadFile(filepath.Join(root, "ns", "s", metaFile))
	if err != nil || !strings.Contains(string(meta), `"new"`) {
		t.Errorf("metadata = %s, %v", meta, err)
	}
	assertNoTemps(t, root)
	assertPrivate(t, root)
}

func mustPut(t *testing.T, d *Dir, s secrets.Secret) {
	t.Helper()
	if err := d.Put(context.Background(), "ns", "s", s); err != nil {
		t.Fatal(err)
	}
}
