package gitrepo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// NotesRef is where osbgit keeps the result of each manifest revision it
// reconciled: a git note on that commit (`git notes --ref osbgit show
// <commit>` prints it; `git fetch origin refs/notes/osbgit:refs/notes/osbgit`
// brings them into a clone).
const NotesRef = "refs/notes/osbgit"

// Note is a git note osbgit adds to a commit under NotesRef. A note already
// on that commit (another osbgit's, another cluster's, a person's) is kept:
// the text is appended to it after a blank line, as `git notes append`
// does, and a note that already holds the text is left as it is.
type Note struct {
	// Commit is the full hex hash of the annotated commit.
	Commit string
	// Text returns the note's text. statusCommit is the status commit
	// the same write pushed ("" when it pushed none). It is called once
	// per push attempt, since a retried status commit gets a new hash.
	Text func(statusCommit string) string
}

// maxNoteSize bounds an existing note osbgit reads to append to: a note of
// that size was not written by osbgit, and is left alone (the write fails)
// rather than read into memory.
const maxNoteSize = 1 << 20

// notesMessage is the message of osbgit's notes commits.
const notesMessage = "Notes added by osbgit\n"

// WriteNote adds n under NotesRef by itself: it fetches the remote's notes
// ref, builds a notes commit on it whose tree keeps every other note, and
// pushes it by compare-and-swap. When another writer moved the ref
// meanwhile, it fetches theirs and builds on it again, waiting between
// attempts like WriteStatus, up to the WithMaxPushAttempts bound. It never
// force-pushes. It returns the notes commit the ref points to afterwards.
// WriteStatus with ChangeSet.Note pushes the note together with the status
// commit instead.
func (r *Repo) WriteNote(ctx context.Context, n Note) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkOpen(); err != nil {
		return "", err
	}
	if err := r.checkWritableLocked(); err != nil {
		return "", r.newError("write", NotesRef, err)
	}
	h, err := r.writeNoteLocked(ctx, n, "")
	if err != nil {
		return "", r.newError("write", NotesRef, err)
	}
	return h.String(), nil
}

// writeNoteLocked implements WriteNote for status commit statusCommit.
// Caller holds r.mu.
func (r *Repo) writeNoteLocked(ctx context.Context, n Note, statusCommit string) (plumbing.Hash, error) {
	for attempt := 1; ; attempt++ {
		base, err := r.fetchNotesLocked(ctx)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		w := &treeWriter{r: r, pending: newPendingObjects(r.st)}
		u, ok, err := r.noteUpdate(w, base, n, statusCommit)
		if err != nil || !ok {
			return base, err
		}
		err = r.pushRefs(ctx, []refUpdate{u}, w.pending)
		if err == nil {
			return u.new, r.recordPushed(u)
		}
		var ce *ConflictError
		if !errors.As(err, &ce) {
			return plumbing.ZeroHash, err
		}
		if ce.Attempts = attempt; attempt >= r.set.maxAttempts {
			return plumbing.ZeroHash, ce
		}
		if err := sleepCtx(ctx, r.backoff(attempt)); err != nil {
			return plumbing.ZeroHash, err
		}
	}
}

// fetchNotesLocked brings the remote's notes ref (its head commit and tree,
// at the configured depth) into the local copy and returns its head, zero
// when the remote has none. A local repository is re-read instead. Caller
// holds r.mu.
func (r *Repo) fetchNotesLocked(ctx context.Context) (plumbing.Hash, error) {
	name := plumbing.ReferenceName(NotesRef)
	if r.src.kind != kindRemote {
		if err := r.reopenLocal(); err != nil {
			return plumbing.ZeroHash, err
		}
		return r.localRef(name)
	}
	rr, err := r.lsRemote(ctx)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("listing %s: %w", NotesRef, err)
	}
	h := rr.ref(name)
	switch {
	case h.IsZero():
		if err := r.st.RemoveReference(name); err != nil {
			return plumbing.ZeroHash, err
		}
		return h, nil
	case r.hasCommit(h):
		return h, r.st.SetReference(plumbing.NewHashReference(name, h))
	}
	if err := r.fetchSpecs(ctx, map[plumbing.ReferenceName]plumbing.Hash{name: h}); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("fetching %s: %w", NotesRef, err)
	}
	// The ref may have moved again between the listing and the fetch:
	// what was fetched is the base, and the push checks it is current.
	return r.localRef(name)
}

// localRef reads a ref of the local copy (zero when missing). Caller
// holds r.mu.
func (r *Repo) localRef(name plumbing.ReferenceName) (plumbing.Hash, error) {
	ref, err := r.st.Reference(name)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return plumbing.ZeroHash, nil
	}
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return ref.Hash(), nil
}

// noteUpdate builds, on notes commit base (zero: none), the notes commit
// that adds n's text for statusCommit, and returns the ref update moving
// NotesRef to it; ok is false when the note already holds the text.
func (r *Repo) noteUpdate(w *treeWriter, base plumbing.Hash, n Note, statusCommit string) (u refUpdate, ok bool, err error) {
	if !plumbing.IsHash(n.Commit) || len(n.Commit) != 40 {
		return u, false, fmt.Errorf("%w: note target %q is not a full commit hash", ErrInvalidOptions, n.Commit)
	}
	target := strings.ToLower(n.Commit)
	var root plumbing.Hash
	if !base.IsZero() {
		c, err := object.GetCommit(r.st, base)
		if err != nil {
			return u, false, fmt.Errorf("%s points at %s, which is not a readable commit: %w", NotesRef, shortHash(base.String()), err)
		}
		root = c.TreeHash
	}
	path, old, err := r.findNote(root, target)
	if err != nil {
		return u, false, err
	}
	content := appendNote(old, n.Text(statusCommit))
	if content == nil {
		return u, false, nil
	}
	edits := &editNode{children: map[string]*editNode{}}
	node := edits
	for _, dir := range path[:len(path)-1] {
		next := &editNode{children: map[string]*editNode{}}
		node.children[dir] = next
		node = next
	}
	node.children[path[len(path)-1]] = &editNode{leaf: true, content: content}
	tree, _, err := w.apply(root, edits)
	if err != nil {
		return u, false, fmt.Errorf("building the notes tree: %w", err)
	}
	var parents []plumbing.Hash
	if !base.IsZero() {
		parents = append(parents, base)
	}
	head, err := r.storeCommit(w, tree, parents, notesMessage)
	if err != nil {
		return u, false, err
	}
	return refUpdate{name: plumbing.ReferenceName(NotesRef), old: base, new: head}, true, nil
}

// findNote looks up the note on commit target (lower-case hex) in notes
// tree root and returns its path, as tree entry names, and its content (nil
// when there is none). Git fans notes out into directories named by the
// next two hex digits ("ab/cdef…", "ab/cd/ef…") once there are many, and
// may mix levels; the note's path is where it is, or, for a new note, under
// the deepest existing fan-out directory of target, so git's layout is
// kept.
func (r *Repo) findNote(root plumbing.Hash, target string) ([]string, []byte, error) {
	var path []string
	rest := target
	h := root
	for !h.IsZero() {
		t, err := object.GetTree(r.st, h)
		if err != nil {
			return nil, nil, fmt.Errorf("reading the notes tree: %w", err)
		}
		h = plumbing.ZeroHash
		for _, e := range t.Entries {
			switch {
			case e.Name == rest:
				if !e.Mode.IsFile() {
					return nil, nil, fmt.Errorf("%s: the note on %s is not a file", NotesRef, shortHash(target))
				}
				content, err := r.readNote(e.Hash, target)
				return append(path, rest), content, err
			case len(rest) > 2 && e.Name == rest[:2] && !e.Mode.IsFile():
				h = e.Hash
			}
		}
		if !h.IsZero() {
			path = append(path, rest[:2])
			rest = rest[2:]
		}
	}
	return append(path, rest), nil, nil
}

// readNote reads the note blob h of commit target, refusing one over
// maxNoteSize.
func (r *Repo) readNote(h plumbing.Hash, target string) ([]byte, error) {
	b, err := object.GetBlob(r.st, h)
	if err != nil {
		return nil, fmt.Errorf("reading the note on %s: %w", shortHash(target), err)
	}
	if b.Size > maxNoteSize {
		return nil, fmt.Errorf("%s: the note on %s is %d bytes (over %d): not appending to it", NotesRef, shortHash(target), b.Size, maxNoteSize)
	}
	rd, err := b.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	content, err := io.ReadAll(io.LimitReader(rd, maxNoteSize))
	if err != nil {
		return nil, fmt.Errorf("reading the note on %s: %w", shortHash(target), err)
	}
	if content == nil {
		content = []byte{}
	}
	return content, nil
}

// appendNote returns note old (nil: none) with text appended after a blank
// line, or nil when old already holds text.
func appendNote(old []byte, text string) []byte {
	t := []byte(strings.TrimRight(text, "\n") + "\n")
	if old == nil {
		return t
	}
	if bytes.Contains(old, t) {
		return nil
	}
	trimmed := bytes.TrimRight(old, "\n")
	if len(trimmed) == 0 {
		return t
	}
	out := append(append([]byte{}, trimmed...), '\n', '\n')
	return append(out, t...)
}

// noteWrite carries a note through a status write (ChangeSet.Note): added
// to each push attempt while the notes ref accepts it, dropped from the
// status push when it is what makes the push fail (the notes ref moved, or
// the server refuses notes), then written by itself after the status
// commit. A note never fails a status write: its error is kept in
// WriteResult.NoteErr.
type noteWrite struct {
	note *Note
	// inPush is the update of the current attempt (zero name: none).
	inPush refUpdate
	// alone: the note is written after the status push, by itself.
	alone bool
	// pushed is the notes commit pushed with the status commit.
	pushed plumbing.Hash
}

// add returns updates with the notes update for status commit
// statusCommit (zero: none) added, built on the remote's notes ref.
func (nw *noteWrite) add(ctx context.Context, r *Repo, w *treeWriter, statusCommit plumbing.Hash, updates []refUpdate) []refUpdate {
	nw.inPush = refUpdate{}
	if nw.note == nil || nw.alone {
		return updates
	}
	base, err := r.fetchNotesLocked(ctx)
	if err != nil {
		nw.alone = true
		return updates
	}
	u, ok, err := r.noteUpdate(w, base, *nw.note, hashString(statusCommit))
	if err != nil {
		nw.alone = true
		return updates
	}
	if !ok {
		// Already there (a retry after a partial push).
		nw.note = nil
		return updates
	}
	nw.inPush = u
	return append(updates, u)
}

// rejected reports whether push error err is the note's doing (the notes
// ref moved, or the server refused that ref alone): the push is then tried
// again at once, without the note. A push refused as a whole (a hook) is
// not: it fails as it would without a note.
func (nw *noteWrite) rejected(err error) bool {
	if nw.inPush.name == "" {
		return false
	}
	var ce *ConflictError
	var re *RejectedError
	switch {
	case errors.As(err, &ce):
		if ce.Branch != NotesRef {
			return false
		}
	case errors.As(err, &re):
		if len(re.Refs) != 1 || re.Refs[0] != NotesRef {
			return false
		}
	default:
		return false
	}
	nw.alone = true
	return true
}

// succeeded records the notes commit of a successful status push.
func (nw *noteWrite) succeeded() {
	if nw.inPush.name != "" {
		nw.pushed = nw.inPush.new
		nw.note = nil
	}
}

// finish writes a note left out of the status push by itself, and sets
// res's note fields. Caller holds r.mu.
func (nw *noteWrite) finish(ctx context.Context, r *Repo, res *WriteResult) {
	if !nw.pushed.IsZero() {
		res.NoteCommit = nw.pushed.String()
	}
	if nw.note == nil {
		return
	}
	status := ""
	if res.Changed {
		status = res.Commit
	}
	h, err := r.writeNoteLocked(ctx, *nw.note, status)
	if err != nil {
		res.NoteErr = r.newError("write", NotesRef, err)
		return
	}
	res.NoteCommit = hashString(h)
}

// hashString is h in hex, "" for the zero hash.
func hashString(h plumbing.Hash) string {
	if h.IsZero() {
		return ""
	}
	return h.String()
}
