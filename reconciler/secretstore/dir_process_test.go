package secretstore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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
// under a reader that has not read all yet.
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
		out.Close()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.done
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
func raceSecret(w string, i int) Secret {
	v := []byte(fmt.Sprintf("%s-%04d-%s", w, i, strings.Repeat(w, 2000+i%7)))
	data := map[string][]byte{"user": v, "pass": v}
	if w == "A" {
		data["host"] = v
	} else {
		data["port"] = v
	}
	return BindingSecret(data, "ns", "b", w+strconv.Itoa(i))
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
