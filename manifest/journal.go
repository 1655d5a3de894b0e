package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
)

// The write-ahead journal is the one file a pass pushes before its first
// broker call: the records of every resource it is about to create (with
// the IDs it reserved) or update, in <root>/writeahead.json. Until the
// pass's status commit lands, those records are only there; loaders lay
// them over the record files (Records.Journaled), so a pass that crashed
// after reserving IDs is resumed with the same IDs. The status commit
// writes every journaled record to its own file and removes the journal.
//
// One file instead of one record file per resource is for speed, under
// the rule of DEVELOPERS.md: Git compresses each new file on its own, and
// 2,000 record files cost a cold converge ~100 ms of its ~700 ms before
// the first call, where the plain program's one file of IDs costs ~20 ms
// (the converge line of make bench, issue 17).
//
// Record files are unchanged by it, so RecordFormatVersion is too. An
// osbgit older than the journal ignores the file (it is outside status/
// and catalog/): run it only after a pass has finished.
const (
	// KindWriteAheadJournal is the kind of the journal file.
	KindWriteAheadJournal = "WriteAheadJournal"
	// JournalFormatVersion is the journal's own format version.
	JournalFormatVersion = 1
	// JournalFile is the journal's file name in its record root.
	JournalFile = "writeahead.json"
	// MaxJournalSize bounds the journal a loader reads.
	MaxJournalSize = 256 << 20
)

// JournalPath is where root's write-ahead journal lives.
func (root RecordRoot) JournalPath() string { return string(root) + "/" + JournalFile }

// journalHeader is the journal file's first line; each record follows on
// a line of its own (RecordJSON), so a commit's diff shows one line per
// resource.
type journalHeader struct {
	APIVersion    string            `json:"apiVersion"`
	Kind          string            `json:"kind"`
	FormatVersion int               `json:"formatVersion"`
	Records       []json.RawMessage `json:"records"`
}

// MarshalJournal renders the journal holding recs, sorted by ref, and
// returns each record's line, its RecordJSON (for a caller that compares
// records with what the journal holds). The records are normalized in
// place, as RecordJSON does.
func MarshalJournal(recs []*StatusRecord) (data []byte, entries map[Ref][]byte, err error) {
	sorted := append([]*StatusRecord(nil), recs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Ref.Less(sorted[j].Ref) })
	// Encoding the records is most of the write-ahead push's CPU, and the
	// pass waits for it before its first call: it is spread over the
	// cores like decoding (nothing to read).
	lines := make([][]byte, len(sorted))
	errs := make([]error, len(sorted))
	DecodeRange(len(sorted), func(int) ([]byte, error) { return nil, nil }, func(i int, _ []byte, _ error) {
		lines[i], errs[i] = RecordJSON(sorted[i])
	})
	if err := errors.Join(errs...); err != nil {
		return nil, nil, fmt.Errorf("write-ahead journal: %w", err)
	}
	entries = make(map[Ref][]byte, len(sorted))
	size := 128 // the header and the end
	for _, b := range lines {
		size += len(b) + 4
	}
	var buf bytes.Buffer
	buf.Grow(size) // ~2 MB at 2,000 records: not grown by doubling
	fmt.Fprintf(&buf, "{\"apiVersion\": %q, \"kind\": %q, \"formatVersion\": %d, \"records\": [", ConfigAPIVersion, KindWriteAheadJournal, JournalFormatVersion)
	for i, b := range lines {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString("\n  ")
		buf.Write(b)
		entries[sorted[i].Ref] = b
	}
	buf.WriteString("\n]}\n")
	return buf.Bytes(), entries, nil
}

// DecodeJournal decodes the journal file p strictly: the header as
// MarshalJournal writes it (no unknown field, this format version), and
// each entry as UnmarshalStatusRecord decodes a record file, of a ref that
// has a record path, at most once. Errors name the file, the entry and
// its line. Unlike a record file's, an entry's ref is its own: the
// journal is osbgit's, sealed with the rest of its records.
func (root RecordRoot) DecodeJournal(p string, data []byte) ([]*StatusRecord, error) {
	if len(data) > MaxJournalSize {
		return nil, fmt.Errorf("%s: file larger than %d bytes", p, MaxJournalSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var h journalHeader
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", p, lineAt(data, dec.InputOffset()), err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s:%d: want one JSON document", p, lineAt(data, dec.InputOffset()))
	}
	switch {
	case h.APIVersion != ConfigAPIVersion:
		return nil, fmt.Errorf("%s:1: apiVersion: want %q, got %q", p, ConfigAPIVersion, h.APIVersion)
	case h.Kind != KindWriteAheadJournal:
		return nil, fmt.Errorf("%s:1: kind: want %s, got %q", p, KindWriteAheadJournal, h.Kind)
	case h.FormatVersion != JournalFormatVersion:
		return nil, fmt.Errorf("%s:1: formatVersion: want %d (this osbgit's), got %d", p, JournalFormatVersion, h.FormatVersion)
	}
	out := make([]*StatusRecord, 0, len(h.Records))
	seen := make(map[Ref]int, len(h.Records))
	offset := 0
	for i, raw := range h.Records {
		// Entries are sub-slices of data in order: find each to name its line.
		at := offset + max(bytes.Index(data[offset:], raw), 0)
		offset = at + len(raw)
		where := fmt.Sprintf("%s:%d: records[%d]", p, lineAt(data, int64(at)), i)
		rec, err := UnmarshalStatusRecord(where, raw)
		if err != nil {
			return nil, err
		}
		if _, err := root.StatusPath(rec.Ref); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if j, dup := seen[rec.Ref]; dup {
			return nil, fmt.Errorf("%s: %s is also records[%d]", where, rec.Ref, j)
		}
		seen[rec.Ref] = i
		out = append(out, rec)
	}
	return out, nil
}

// lineAt is the line of data's byte offset, from 1.
func lineAt(data []byte, offset int64) int {
	return bytes.Count(data[:min(int(offset), len(data))], []byte{'\n'}) + 1
}

// FoldJournal lays the records of root's journal file (data) over recs:
// each replaces its resource's record file, and recs.Journaled lists them.
// The loaders call it when the journal is among a revision's files.
func (root RecordRoot) FoldJournal(recs *Records, data []byte) error {
	p := root.JournalPath()
	entries, err := root.DecodeJournal(p, data)
	if err != nil {
		return err
	}
	recs.Journaled = make(map[Ref]bool, len(entries))
	for _, rec := range entries {
		recs.Status[rec.Ref] = rec
		recs.Journaled[rec.Ref] = true
	}
	recs.Warnings = append(recs.Warnings, fmt.Sprintf("%s: %d record(s) from the write-ahead journal of a pass whose status commit has not landed (still running, or interrupted): the next status commit writes them", p, len(entries)))
	return nil
}
