package deploy_test

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// No Docker engine runs where these tests run, so the Dockerfile is checked
// by parsing it (structure and policy), by running its exact `go build`
// command outside Docker, and by checking .dockerignore keeps every file
// that build reads.

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	Line  int    // 1-based line of its first line
	Cmd   string // upper case: FROM, RUN, ...
	Args  string // the rest, continuations joined with a space
	Stage int    // index of the stage it belongs to; -1 before the first FROM
}

type stage struct {
	Index int
	Name  string // the AS name, if any
	Base  string // image reference, build args resolved
	Insts []instruction
}

type dockerfile struct {
	Insts  []instruction
	Stages []stage
	// GlobalArgs are ARGs before the first FROM, with their defaults.
	GlobalArgs map[string]string
}

var dockerfileVarRe = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)

func expandVars(s string, vars map[string]string) string {
	return dockerfileVarRe.ReplaceAllStringFunc(s, func(m string) string {
		name := dockerfileVarRe.FindStringSubmatch(m)[1]
		return vars[name]
	})
}

func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := dockerfile{GlobalArgs: map[string]string{}}
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		start := i + 1
		var parts []string
		for {
			cont := strings.HasSuffix(l, "\\")
			parts = append(parts, strings.TrimSpace(strings.TrimSuffix(l, "\\")))
			if !cont {
				break
			}
			i++
			if i >= len(lines) {
				t.Fatalf("Dockerfile:%d: continuation at end of file", start)
			}
			l = strings.TrimSpace(lines[i])
			for l == "" || strings.HasPrefix(l, "#") { // comments inside a continuation are dropped
				i++
				if i >= len(lines) {
					t.Fatalf("Dockerfile:%d: continuation at end of file", start)
				}
				l = strings.TrimSpace(lines[i])
			}
		}
		full := strings.Join(parts, " ")
		cmd, args, _ := strings.Cut(full, " ")
		cmd = strings.ToUpper(cmd)
		if !slices.Contains([]string{"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY",
			"ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}, cmd) {
			t.Fatalf("Dockerfile:%d: unknown instruction %q", start, cmd)
		}
		in := instruction{Line: start, Cmd: cmd, Args: strings.TrimSpace(args), Stage: len(df.Stages) - 1}
		if cmd == "FROM" {
			f := strings.Fields(in.Args)
			var st stage
			st.Index = len(df.Stages)
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				f = f[1:]
			}
			if len(f) == 0 {
				t.Fatalf("Dockerfile:%d: FROM without an image", start)
			}
			st.Base = expandVars(f[0], df.GlobalArgs)
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.Name = f[2]
			} else if len(f) != 1 {
				t.Fatalf("Dockerfile:%d: malformed FROM %q", start, in.Args)
			}
			df.Stages = append(df.Stages, st)
			in.Stage = st.Index
		} else if cmd == "ARG" && in.Stage < 0 {
			name, def, _ := strings.Cut(in.Args, "=")
			df.GlobalArgs[name] = def
		} else if in.Stage < 0 {
			t.Fatalf("Dockerfile:%d: %s before the first FROM", start, cmd)
		}
		df.Insts = append(df.Insts, in)
		if in.Stage >= 0 {
			df.Stages[in.Stage].Insts = append(df.Stages[in.Stage].Insts, in)
		}
	}
	return df
}

// index of the first instruction in s matching cmd whose args contain sub;
// -1 if none.
func (s stage) index(cmd, sub string) int {
	for i, in := range s.Insts {
		if in.Cmd == cmd && strings.Contains(in.Args, sub) {
			return i
		}
	}
	return -1
}

// buildCommand returns the builder stage's `go build` command: its
// environment assignments and its argv (from "go" on).
func buildCommand(t *testing.T, s stage) (env map[string]string, argv []string) {
	t.Helper()
	i := s.index("RUN", "go build")
	if i < 0 {
		t.Fatalf("builder stage %q: no RUN with go build", s.Name)
	}
	words, err := shellWords(s.Insts[i].Args)
	if err != nil {
		t.Fatalf("Dockerfile:%d: %v", s.Insts[i].Line, err)
	}
	// The RUN may chain commands with &&; take the one with go build.
	var seg []string
	for _, w := range append(words, "&&") {
		if w == "&&" {
			if len(seg) > 0 && slices.Contains(seg, "build") {
				break
			}
			seg = nil
			continue
		}
		seg = append(seg, w)
	}
	env = map[string]string{}
	for len(seg) > 0 && strings.Contains(seg[0], "=") && !strings.HasPrefix(seg[0], "-") {
		k, v, _ := strings.Cut(seg[0], "=")
		env[k] = v
		seg = seg[1:]
	}
	if len(seg) < 2 || seg[0] != "go" || seg[1] != "build" {
		t.Fatalf("Dockerfile:%d: cannot find `go build` in %q", s.Insts[i].Line, s.Insts[i].Args)
	}
	return env, seg
}

// shellWords splits a POSIX shell command line into words, honouring single
// and double quotes and backslashes, and keeping "&&" as its own word. It
// does not expand variables; `$VAR` stays in the word.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.ContainsRune("\"\\$`", rune(s[i+1])) {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '&' && i+1 < len(s) && s[i+1] == '&' && !inWord:
			words = append(words, "&&")
			i++
		case c == ';' || c == '|' || c == '&' || c == '`' || c == '(' || c == ')':
			return nil, fmt.Errorf("shell operator %q not supported here", c)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// TestDockerfileStructure: a multi-stage build with a golang:1.26 builder
// that downloads modules in their own layer before copying the source, a
// static, version-stamped build of ./cmd/osbgit, and a distroless, non-root
// final stage that runs /osbgit.
func TestDockerfileStructure(t *testing.T) {
	df := parseDockerfile(t)
	if len(df.Stages) < 2 {
		t.Fatalf("%d stages, want a builder and a final stage", len(df.Stages))
	}
	b := df.Stages[0]
	if !strings.HasPrefix(b.Base, "golang:1.26") {
		t.Errorf("builder FROM %q, want golang:1.26 (go.mod says go 1.26)", b.Base)
	}
	if b.Name == "" {
		t.Errorf("builder stage has no AS name")
	}
	mods := b.index("COPY", "go.mod")
	download := b.index("RUN", "go mod download")
	src := b.index("COPY", ". .")
	build := b.index("RUN", "go build")
	switch {
	case mods < 0 || !strings.Contains(b.Insts[mods].Args, "go.sum"):
		t.Errorf("builder: no `COPY go.mod go.sum` before the source")
	case download < 0:
		t.Errorf("builder: no RUN go mod download")
	case src < 0 || build < 0:
		t.Errorf("builder: no `COPY . .` and go build")
	case !(mods < download && download < src && src < build):
		t.Errorf("builder: want COPY go.mod go.sum, RUN go mod download, COPY . ., RUN go build in that order (got %d, %d, %d, %d)", mods, download, src, build)
	}
	if v := b.index("ARG", "VERSION"); v < 0 || v > build {
		t.Errorf("builder: ARG VERSION not declared before go build")
	}
	env, argv := buildCommand(t, b)
	if env["CGO_ENABLED"] != "0" {
		t.Errorf("go build without CGO_ENABLED=0 (env %v)", env)
	}
	if !slices.Contains(argv, "-trimpath") {
		t.Errorf("go build without -trimpath: %q", argv)
	}
	ld := ""
	for i, a := range argv {
		if a == "-ldflags" && i+1 < len(argv) {
			ld = argv[i+1]
		} else if v, ok := strings.CutPrefix(a, "-ldflags="); ok {
			ld = v
		}
	}
	ldf := strings.Fields(ld)
	for _, want := range []string{"-s", "-w", "main.version=${VERSION}"} {
		if !slices.Contains(ldf, want) {
			t.Errorf("go build -ldflags %q: missing %s", ld, want)
		}
	}
	if !slices.Contains(argv, "./cmd/osbgit") {
		t.Errorf("go build does not build ./cmd/osbgit: %q", argv)
	}

	f := df.Stages[len(df.Stages)-1]
	if !strings.HasPrefix(f.Base, "gcr.io/distroless/static") || !strings.HasSuffix(f.Base, ":nonroot") {
		t.Errorf("final FROM %q, want gcr.io/distroless/static:nonroot", f.Base)
	}
	for _, in := range f.Insts {
		switch in.Cmd {
		case "RUN":
			t.Errorf("Dockerfile:%d: RUN in the final stage: distroless has no shell", in.Line)
		case "ADD":
			t.Errorf("Dockerfile:%d: ADD in the final stage; use COPY --from", in.Line)
		}
	}
	var user string
	for _, in := range f.Insts {
		if in.Cmd == "USER" {
			user = in.Args
		}
	}
	if user != "65532:65532" {
		t.Errorf("final stage USER %q, want 65532:65532 (distroless nonroot)", user)
	}
	if e := f.index("ENTRYPOINT", ""); e < 0 || f.Insts[e].Args != `["/osbgit"]` {
		t.Errorf(`final stage ENTRYPOINT: want exec form ["/osbgit"]`)
	}
	if i := f.index("COPY", "/osbgit"); i < 0 || !strings.Contains(f.Insts[i].Args, "--from="+b.Name) {
		t.Errorf("final stage does not COPY --from=%s the binary to /osbgit", b.Name)
	}
	if i := f.index("ENV", "OSBGIT_CACHE_DIR=/var/cache/osbgit"); i < 0 {
		t.Errorf("final stage: no ENV OSBGIT_CACHE_DIR=/var/cache/osbgit")
	} else if !knownEnv("sync", "OSBGIT_CACHE_DIR") {
		t.Errorf("OSBGIT_CACHE_DIR is not the twin of a flag")
	}
	if i := f.index("COPY", "/var/cache/osbgit"); i < 0 || !strings.Contains(f.Insts[i].Args, "--chown=65532:65532") {
		t.Errorf("final stage: /var/cache/osbgit not created owned by 65532")
	}
	labels := ""
	for _, in := range f.Insts {
		if in.Cmd == "LABEL" {
			labels += " " + in.Args
		}
	}
	for _, l := range []string{"title", "description", "source", "version", "revision"} {
		if !strings.Contains(labels, "org.opencontainers.image."+l+"=") {
			t.Errorf("final stage: no OCI label org.opencontainers.image.%s", l)
		}
	}
	if !strings.Contains(labels, `org.opencontainers.image.version="${VERSION}"`) || f.index("ARG", "VERSION") < 0 {
		t.Errorf("final stage: the version label must come from ARG VERSION (redeclared in the stage)")
	}
}

// TestDockerBuildCommand runs the Dockerfile's own `go build` command (the
// exact flags, VERSION set) outside Docker and checks the result: a static
// ELF (no interpreter, no shared libraries), stripped, built with
// CGO_ENABLED=0 and -trimpath, that reports the stamped version.
func TestDockerBuildCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/osbgit; skipped with -short")
	}
	df := parseDockerfile(t)
	env, argv := buildCommand(t, df.Stages[0])
	const version = "v9.8.7-dockerfile-test"
	vars := map[string]string{"VERSION": version, "TARGETOS": "", "TARGETARCH": ""}
	out := filepath.Join(t.TempDir(), "osbgit")
	var args []string
	for i := 1; i < len(argv); i++ { // argv[0] is "go"
		a := expandVars(argv[i], vars)
		if a == "-o" && i+1 < len(argv) {
			args = append(args, "-o", out)
			i++
			continue
		}
		args = append(args, a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = repoRoot
	// The Docker build context has no .git (.dockerignore): no VCS stamp.
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+expandVars(v, vars))
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}

	ef, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("binary has a program interpreter: not static")
		}
	}
	if libs, _ := ef.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("binary links shared libraries %v", libs)
	}
	if _, err := ef.Symbols(); !errors.Is(err, elf.ErrNoSymbols) {
		t.Errorf("binary has a symbol table: -s not applied (%v)", err)
	}

	bi, err := buildinfo.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("build settings CGO_ENABLED=%q -trimpath=%q, want 0 and true", settings["CGO_ENABLED"], settings["-trimpath"])
	}
	if bi.Path != "github.com/osbgit/osbgit/cmd/osbgit" {
		t.Errorf("main package %q", bi.Path)
	}

	vcmd := exec.CommandContext(ctx, out, "version")
	vcmd.Env = []string{"HOME=" + t.TempDir()}
	got, err := vcmd.Output()
	if err != nil {
		t.Fatalf("osbgit version: %v", err)
	}
	if strings.TrimSpace(string(got)) != "osbgit "+version {
		t.Errorf("osbgit version printed %q, want %q: -X main.version does not stamp the version", got, "osbgit "+version)
	}
}

// dockerignore is the parsed .dockerignore: patterns in order, each possibly
// an exception (!pattern), matched as Docker's patternmatcher does (a path is
// excluded if it or a parent directory matches; the last match wins).
type dockerignore []struct {
	re     *regexp.Regexp
	negate bool
	src    string
}

func parseDockerignore(t *testing.T) dockerignore {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var di dockerignore
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		neg := strings.HasPrefix(l, "!")
		p := filepath.ToSlash(filepath.Clean(strings.TrimPrefix(strings.TrimPrefix(l, "!"), "/")))
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(".*")
				i++
			case p[i] == '*':
				re.WriteString("[^/]*")
			case p[i] == '?':
				re.WriteString("[^/]")
			case p[i] == '[':
				t.Fatalf(".dockerignore: character classes in %q not supported by this test", l)
			default:
				re.WriteString(regexp.QuoteMeta(p[i : i+1]))
			}
		}
		re.WriteString("$")
		di = append(di, struct {
			re     *regexp.Regexp
			negate bool
			src    string
		}{regexp.MustCompile(re.String()), neg, l})
	}
	return di
}

// excluded reports whether path (slash-separated, relative to the context)
// is left out of the build context, and by which pattern.
func (di dockerignore) excluded(path string) (bool, string) {
	var candidates []string
	for p := path; p != "." && p != "/" && p != ""; p = filepath.ToSlash(filepath.Dir(p)) {
		candidates = append(candidates, p)
	}
	out, by := false, ""
	for _, pat := range di {
		for _, c := range candidates {
			if pat.re.MatchString(c) {
				out, by = !pat.negate, pat.src
				break
			}
		}
	}
	return out, by
}

// TestDockerignoreKeepsBuildInputs: every file `go build ./cmd/osbgit` reads
// (Go and assembly sources, embedded files of every package of this module
// it imports, go.mod, go.sum) reaches the build context, and what must not
// (.git, bin, tests) does not.
func TestDockerignoreKeepsBuildInputs(t *testing.T) {
	di := parseDockerignore(t)
	for _, p := range []string{".git/HEAD", "bin/osbgit", "demo/x", ".cache/y", "osbclient/client_test.go"} {
		if ex, _ := di.excluded(p); !ex {
			t.Errorf(".dockerignore lets %s into the build context", p)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "list", "-e", "-deps", "-json", "./cmd/osbgit")
	cmd.Dir = repoRoot
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	need := []string{"go.mod", "go.sum"}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath string
			Dir        string
			Module     *struct{ Main bool }
			GoFiles    []string
			CgoFiles   []string
			SFiles     []string
			HFiles     []string
			SysoFiles  []string
			EmbedFiles []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || !p.Module.Main {
			continue
		}
		rel, err := filepath.Rel(root, p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, list := range [][]string{p.GoFiles, p.CgoFiles, p.SFiles, p.HFiles, p.SysoFiles, p.EmbedFiles} {
			for _, f := range list {
				need = append(need, filepath.ToSlash(filepath.Join(rel, f)))
			}
		}
	}
	if !slices.Contains(need, "cmd/osbgit/main.go") {
		t.Fatalf("go list did not report cmd/osbgit/main.go: %v", need)
	}
	for _, f := range need {
		if ex, by := di.excluded(f); ex {
			t.Errorf(".dockerignore pattern %q excludes %s, which the image build needs", by, f)
		}
	}
}
