package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"unique"

	yaml "go.yaml.in/yaml/v3"
)

// MarshalRecord renders a record as the file osbgit writes (RenderRecord):
// struct fields in declaration order, map keys sorted, conditions sorted by
// type, times in seconds UTC, two-space indent, one trailing newline. Equal
// records give equal bytes, so a pass that changes nothing meaningful
// writes nothing. The record is normalized in place (apiVersion/kind set,
// lists sorted).
func MarshalRecord(r Record) ([]byte, error) {
	b, err := RecordJSON(r)
	if err != nil {
		return nil, err
	}
	out, err := RenderRecord(b)
	if err != nil {
		return nil, fmt.Errorf("marshal record %s: %w", recordName(r), err)
	}
	return out, nil
}

// RenderRecord renders a record's RecordJSON as its file: indented JSON,
// which is also YAML, so every record (and every osbgit that reads YAML
// records) reads it with the one YAML decoder. encoding/json writes it: a
// YAML emitter (yaml.v3's) took ~360 µs a record, most of a cold
// converge's CPU over the plain program's (the converge line of make
// bench), where indenting JSON takes a few µs.
func RenderRecord(recordJSON []byte) ([]byte, error) {
	var buf bytes.Buffer
	// json.Indent first grows its buffer to twice the input, which holds
	// the indented record: one allocation.
	buf.Grow(2*len(recordJSON) + 1)
	if err := renderRecordTo(&buf, recordJSON); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// renderRecordTo is RenderRecord appending to buf.
func renderRecordTo(buf *bytes.Buffer, recordJSON []byte) error {
	if err := json.Indent(buf, recordJSON, "", "  "); err != nil {
		return fmt.Errorf("indent record: %w", err)
	}
	buf.WriteByte('\n')
	return nil
}

// RecordJSON is the JSON form MarshalRecord converts to YAML: r normalized
// (which it modifies) and encoded. Two records render to the same file
// exactly when their RecordJSON is equal, and it costs half as much, so
// callers comparing records compare this.
func RecordJSON(r Record) ([]byte, error) {
	if r == nil {
		return nil, errors.New("marshal record: nil record")
	}
	r.normalize()
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("marshal record %s: %w", recordName(r), err)
	}
	return b, nil
}

// recordName names r in messages: its path, else its ref.
func recordName(r Record) string {
	if p, err := r.RecordPath(); err == nil {
		return p
	}
	switch r := r.(type) {
	case *StatusRecord:
		return "of " + r.Ref.String()
	case *CatalogRecord:
		return "of the catalog of " + r.Broker.String()
	}
	return fmt.Sprintf("%T", r)
}

// JSONToYAML converts one JSON document to block-style YAML (for people:
// `osbgit catalog -o yaml`) with yaml.v3's
// emitter, keeping the object key order of the input (so struct order
// survives) and numbers exactly as written; strings with line breaks are
// written as literal blocks.
func JSONToYAML(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := jsonNode(dec, 0)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{n}}); err != nil {
		return nil, fmt.Errorf("encode YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode YAML: %w", err)
	}
	return buf.Bytes(), nil
}

func jsonNode(dec *json.Decoder, depth int) (*yaml.Node, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("JSON nested more than %d levels", MaxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("read JSON: %w", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("read JSON: %w", err)
				}
				k, _ := kt.(string)
				v, err := jsonNode(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("read JSON: %w", err)
			}
			return n, nil
		case '[':
			n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			for dec.More() {
				v, err := jsonNode(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("read JSON: %w", err)
			}
			return n, nil
		}
		return nil, fmt.Errorf("read JSON: unexpected %v", t)
	case string:
		n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: t}
		if strings.Contains(t, "\n") {
			n.Style = yaml.LiteralStyle
		}
		return n, nil
	case json.Number:
		tag := "!!int"
		if strings.ContainsAny(string(t), ".eE") {
			tag = "!!float"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: string(t)}, nil
	case bool:
		v := "false"
		if t {
			v = "true"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: v}, nil
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
	}
	return nil, fmt.Errorf("read JSON: unexpected token %v", tok)
}

// UnmarshalRecord decodes a record file strictly: exactly one document of
// apiVersion osbgit.dev/v1alpha1 and kind StatusRecord or CatalogRecord, of
// a format version up to RecordFormatVersion (older ones are upgraded), no
// unknown field. file is used in messages ("file:line: field: message").
// The result is *StatusRecord or *CatalogRecord, normalized as
// MarshalRecord leaves it (format version current, times in UTC), so
// normalizing it again changes nothing.
//
// A status record exactly as this osbgit writes it (RenderRecord) is
// decoded by encoding/json, which wrote it (decodeWrittenStatusRecord).
// Every other record — an older format version, a catalog record, one
// written by hand or by an older osbgit as YAML, or any file with an
// error — goes the way manifests go: yaml.v3 parses the document (it
// wrote the YAML ones: sigs.k8s.io/yaml reads YAML 1.1, where the plain
// yes and no yaml.v3 writes for those strings are booleans), upgrades
// apply, and the decoder of yamlconv.go checks every field against the Go
// type, decodes it with encoding/json, and names file, line and field in
// its errors.
func UnmarshalRecord(file string, data []byte) (Record, error) {
	return unmarshalRecord(file, data, recordUpgrades)
}

// unmarshalRecord is UnmarshalRecord with a table of upgrades (tests try
// other tables); the latest format version is len(upgrades).
func unmarshalRecord(file string, data []byte, upgrades []func(*yaml.Node) error) (Record, error) {
	if len(upgrades) == RecordFormatVersion {
		if sr, ok := decodeWrittenStatusRecord(data); ok {
			return sr, nil
		}
	}
	return unmarshalRecordYAML(file, data, upgrades)
}

// unmarshalRecordYAML is unmarshalRecord's path for every record: through
// yaml.v3 and the converter.
func unmarshalRecordYAML(file string, data []byte, upgrades []func(*yaml.Node) error) (Record, error) {
	root, err := singleDocument(file, data)
	if err != nil {
		return nil, err
	}
	apiVersion, kind := typeOf(root)
	if apiVersion != ConfigAPIVersion {
		return nil, fmt.Errorf("%s:%d: apiVersion: want %q, got %q", file, root.Line, ConfigAPIVersion, apiVersion)
	}
	var rec Record
	switch kind {
	case KindStatusRecord:
		rec = &StatusRecord{}
	case KindCatalogRecord:
		rec = &CatalogRecord{}
	default:
		return nil, fmt.Errorf("%s:%d: kind: want %s or %s, got %q", file, root.Line, KindStatusRecord, KindCatalogRecord, kind)
	}
	version, err := formatVersionOf(file, root, len(upgrades))
	if err != nil {
		return nil, err
	}
	if err := upgradeRecord(file, root, version, upgrades); err != nil {
		return nil, err
	}
	sink := &diagSink{file: file}
	c := &converter{sink: sink, maxNodes: maxRecordNodes}
	c.decodeInto(root, rec)
	if err := sink.out.Err(); err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	rec.normalize()
	if sr, ok := rec.(*StatusRecord); ok {
		sr.intern()
	}
	return rec, nil
}

// writtenStatusRecordPrefix starts every status record RenderRecord writes.
var writtenStatusRecordPrefix = []byte("{\n  \"apiVersion\": \"" + ConfigAPIVersion + "\",\n  \"kind\": \"" + KindStatusRecord + "\",\n")

// decodeWrittenStatusRecord decodes data with encoding/json when it is a
// status record byte for byte as MarshalRecord writes the value it
// decodes to, and reports whether it was. The byte comparison is what
// makes this the same decoder as the YAML path for these files: whatever
// encoding/json alone would let through — a key in another case or given
// twice, an unknown field (dropped, so missing from the re-encoding),
// another format version, anything not normalized — fails it, and those
// files go the YAML path, which accepts them or names the error as before.
//
// It exists for speed, under the rule of DEVELOPERS.md: the YAML path
// costs ~150 µs and 47 KB a status record, this one ~40 µs and 5 KB (go
// test -bench RecordDecode ./manifest). That is what keeps `osbgit
// status` over the 10,000 + 10,000 repo under issue 20's 2 s (make bench,
// the status line) and the no-op pass within its ratio and peak RSS
// (the noop-pass line).
func decodeWrittenStatusRecord(data []byte) (*StatusRecord, bool) {
	if !bytes.HasPrefix(data, writtenStatusRecordPrefix) || len(data) > MaxRecordSize {
		return nil, false
	}
	sr := &StatusRecord{}
	if err := json.Unmarshal(data, sr); err != nil {
		return nil, false
	}
	compact, err := RecordJSON(sr)
	if err != nil {
		return nil, false
	}
	buf := writtenRecordBuffers.Get().(*bytes.Buffer)
	defer writtenRecordBuffers.Put(buf)
	buf.Reset()
	if renderRecordTo(buf, compact) != nil || !bytes.Equal(buf.Bytes(), data) {
		return nil, false
	}
	sr.intern()
	return sr, true
}

// writtenRecordBuffers hold decodeWrittenStatusRecord's re-encodings: a
// pass decodes every record of the repository on all cores, and a fresh
// buffer for each is garbage that raises the pass's peak RSS.
var writtenRecordBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// intern makes the values status records share (kinds, namespaces, the
// broker, phases, class and plan names and IDs, operation and condition
// texts, Secret keys, the observed revision) one copy each
// (unique.Make): a pass holds every record of the repository, and without
// it the no-op pass of make bench goes over its peak RSS limit (issue 17:
// "noop-pass: ... peak RSS 308 MB (limit 300 MB)" at full scale).
func (r *StatusRecord) intern() {
	in := func(ss ...*string) {
		for _, s := range ss {
			*s = unique.Make(*s).Value()
		}
	}
	in(&r.APIVersion, &r.Kind, (*string)(&r.Ref.Kind), &r.Ref.Namespace, (*string)(&r.Phase),
		(*string)(&r.Broker.Kind), &r.Broker.Namespace, &r.Broker.Name, &r.BrokerURL, &r.DeletionPolicy, &r.ObservedRevision)
	for _, p := range []*Properties{&r.Properties, r.InProgress} {
		if p != nil {
			in(&p.ClassExternalName, &p.ClassExternalID, &p.PlanExternalName, &p.PlanExternalID)
		}
	}
	if lo := r.LastOperation; lo != nil {
		in((*string)(&lo.Type), (*string)(&lo.State), &lo.ServiceID, &lo.PlanID)
	}
	for i := range r.Conditions {
		c := &r.Conditions[i]
		in((*string)(&c.Type), (*string)(&c.Status), &c.Reason, &c.Message)
	}
	if sr := r.SecretRef; sr != nil {
		in(&sr.Namespace)
		for i := range sr.Keys {
			in(&sr.Keys[i])
		}
	}
	// Applied is SpecSource once the broker confirmed: nearly always the
	// same file and blob, then held once.
	if a, s := r.Applied, r.SpecSource; a != nil && s != nil {
		if a.File == s.File {
			a.File = s.File
		}
		if a.Blob == s.Blob {
			a.Blob = s.Blob
		}
	}
}

// UnmarshalStatusRecord is UnmarshalRecord for a status record.
func UnmarshalStatusRecord(file string, data []byte) (*StatusRecord, error) {
	r, err := UnmarshalRecord(file, data)
	if err != nil {
		return nil, err
	}
	sr, ok := r.(*StatusRecord)
	if !ok {
		return nil, fmt.Errorf("%s: kind: want %s", file, KindStatusRecord)
	}
	return sr, nil
}

// UnmarshalCatalogRecord is UnmarshalRecord for a catalog record.
func UnmarshalCatalogRecord(file string, data []byte) (*CatalogRecord, error) {
	r, err := UnmarshalRecord(file, data)
	if err != nil {
		return nil, err
	}
	cr, ok := r.(*CatalogRecord)
	if !ok {
		return nil, fmt.Errorf("%s: kind: want %s", file, KindCatalogRecord)
	}
	return cr, nil
}

// singleDocument parses data as exactly one YAML mapping document.
func singleDocument(file string, data []byte) (root *yaml.Node, err error) {
	if len(data) > MaxRecordSize {
		return nil, fmt.Errorf("%s: file larger than %d bytes", file, MaxRecordSize)
	}
	if l, ok := invalidUTF8Line(data); ok {
		return nil, fmt.Errorf("%s:%d: not valid UTF-8", file, l)
	}
	defer func() {
		if p := recover(); p != nil {
			root, err = nil, fmt.Errorf("%s: YAML parser failure: %v", file, p)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty document", file)
		}
		line, msg := splitYAMLError(err)
		return nil, fmt.Errorf("%s:%d: invalid YAML: %s", file, line, msg)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: want exactly one YAML document", file)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: want a mapping document", file, max(doc.Line, 1))
	}
	return doc.Content[0], nil
}

// Records are the records found under .osbgit/ of a tree.
type Records struct {
	// Status maps a resource to its record.
	Status map[Ref]*StatusRecord
	// Catalogs maps a broker to its cached catalog.
	Catalogs map[Ref]*CatalogRecord
	// Journaled lists the resources whose Status record comes from the
	// write-ahead journal (RecordRoot.JournalPath) of a pass whose status
	// commit has not landed: their record files are older or missing, so
	// the next status commit writes each and removes the journal. It is
	// nil when there is no journal.
	Journaled map[Ref]bool
	// Warnings are the files that were ignored or corrected while loading
	// (see LoadRecordFiles), one sentence each, for the log.
	Warnings []string
}

// CatalogsByKey returns the cached catalogs keyed as Catalogs expects
// (CatalogKey of the broker).
func (r *Records) CatalogsByKey() Catalogs {
	out := Catalogs{}
	if r == nil {
		return out
	}
	for ref, cr := range r.Catalogs {
		c := cr.Catalog
		out[CatalogKey(ref)] = &c
	}
	return out
}

// LoadRecords reads every *.yaml record under .osbgit/status and
// .osbgit/catalog of fsys, and the write-ahead journal. A missing .osbgit/
// gives empty Records. Files are taken as LoadRecordFiles says; all errors
// are returned joined.
func LoadRecords(fsys fs.FS) (*Records, error) { return LegacyRecordRoot.LoadRecords(fsys) }

// LoadRecords is LoadRecords of the records under root.
func (root RecordRoot) LoadRecords(fsys fs.FS) (*Records, error) {
	var files []string
	for _, dir := range []string{root.StatusDir(), root.CatalogDir()} {
		err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if p == dir && errors.Is(err, fs.ErrNotExist) {
					return fs.SkipDir
				}
				return err
			}
			if !d.IsDir() {
				files = append(files, p)
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("read records under %s: %w", dir, err)
		}
	}
	if _, err := fs.Stat(fsys, root.JournalPath()); err == nil {
		files = append(files, root.JournalPath())
	}
	return root.LoadRecordFiles(files, func(p string) ([]byte, error) { return fs.ReadFile(fsys, p) })
}

// LoadRecordFiles is LoadRecords over a list of paths (relative to the repo
// root) and a function reading one: RecordPaths picks the record files,
// which are read one at a time in that order and decoded (DecodeRecordFile)
// by up to GOMAXPROCS goroutines, and CollectRecords gathers them; a
// write-ahead journal among paths is laid over them (FoldJournal). The
// result and the errors do not depend on the goroutines.
func LoadRecordFiles(paths []string, read func(path string) ([]byte, error)) (*Records, error) {
	return LegacyRecordRoot.LoadRecordFiles(paths, read)
}

// LoadRecordFiles is LoadRecordFiles of the records under root.
func (root RecordRoot) LoadRecordFiles(paths []string, read func(path string) ([]byte, error)) (*Records, error) {
	files, warnings := root.RecordPaths(paths)
	out := make([]RecordFile, len(files))
	DecodeRange(len(files), func(i int) ([]byte, error) { return read(files[i]) }, func(i int, data []byte, err error) {
		if err != nil {
			out[i] = RecordFile{Err: fmt.Errorf("read record: %w", err)}
			return
		}
		out[i] = root.DecodeRecordFile(files[i], data)
	})
	recs, err := CollectRecords(out, warnings)
	if slices.Contains(paths, root.JournalPath()) {
		data, rerr := read(root.JournalPath())
		if rerr == nil {
			rerr = root.FoldJournal(recs, data)
		}
		err = errors.Join(err, rerr)
	}
	return recs, err
}

// RecordPaths picks the record files among paths: the *.yaml and *.yml
// files under .osbgit/status and .osbgit/catalog, status records first,
// each part sorted. A record's path decides whose record it is
// (RecordRefOf), so a file there at a path osbgit never writes (an invalid
// name, a wrong depth) is left out, with a warning (sorted) for the log.
func RecordPaths(paths []string) (files, warnings []string) {
	return LegacyRecordRoot.RecordPaths(paths)
}

// RecordPaths is RecordPaths under root: files outside root's status and
// catalog directories (another deployment's) are left out silently.
func (root RecordRoot) RecordPaths(paths []string) (files, warnings []string) {
	for _, dir := range []string{root.StatusDir(), root.CatalogDir()} {
		start := len(files)
		for _, p := range paths {
			if !strings.HasPrefix(p, dir+"/") || !(strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
				continue
			}
			if _, _, ok := root.RecordRefOf(p); !ok {
				warnings = append(warnings, fmt.Sprintf("%s: ignored: not a record path (records are %s/<namespace>/<kind>/<name>.yaml and %s/[<namespace>/]<name>.yaml, with valid names)", p, root.StatusDir(), root.CatalogDir()))
				continue
			}
			files = append(files, p)
		}
		sort.Strings(files[start:])
	}
	sort.Strings(warnings)
	return files, warnings
}

// RecordFile is what DecodeRecordFile made of one file: its record, or the
// error that makes it unusable, and a warning for the log. It depends only
// on the path and the content, so it may be cached by both and shared:
// callers must not modify the record (the executor works on copies).
type RecordFile struct {
	Record  Record
	Warning string
	Err     error
}

// DecodeRecordFile decodes the record at path p, one of RecordPaths'
// files. The path decides whose record it is (RecordRefOf): the ref it
// holds is only a copy, and one that differs is replaced by the path's,
// with a warning. So no content can make osbgit treat a file as another
// resource's record, or write that resource's record anywhere but where it
// was read. (Ignoring such a file instead would turn a one-field edit into
// a forgotten resource, provisioned again.) A record that does not decode
// strictly (UnmarshalRecord), or whose kind does not match its directory,
// is an error.
func DecodeRecordFile(p string, data []byte) RecordFile {
	return LegacyRecordRoot.DecodeRecordFile(p, data)
}

// DecodeRecordFile is DecodeRecordFile under root.
func (root RecordRoot) DecodeRecordFile(p string, data []byte) RecordFile {
	ref, status, ok := root.RecordRefOf(p)
	if !ok {
		return RecordFile{Err: fmt.Errorf("%s: not a record path", p)}
	}
	rec, err := UnmarshalRecord(p, data)
	if err != nil {
		return RecordFile{Err: err}
	}
	var held *Ref
	switch r := rec.(type) {
	case *StatusRecord:
		if !status {
			return RecordFile{Err: fmt.Errorf("%s: kind: want %s in %s/", p, KindCatalogRecord, root.CatalogDir())}
		}
		held = &r.Ref
	case *CatalogRecord:
		if status {
			return RecordFile{Err: fmt.Errorf("%s: kind: want %s in %s/", p, KindStatusRecord, root.StatusDir())}
		}
		held = &r.Broker
	}
	out := RecordFile{Record: rec}
	if *held != ref {
		out.Warning = fmt.Sprintf("%s: the record names %q, but its path makes it the record of %s: taken as the latter's", p, held.String(), ref)
		*held = ref
	}
	return out
}

// CollectRecords gathers decoded files (in RecordPaths' order) into
// Records: warnings first, then the files' own; the files' errors are
// returned joined, and the other files are still taken.
func CollectRecords(files []RecordFile, warnings []string) (*Records, error) {
	recs := &Records{Status: make(map[Ref]*StatusRecord, len(files)), Catalogs: map[Ref]*CatalogRecord{}, Warnings: warnings}
	var errs []error
	for _, f := range files {
		if f.Warning != "" {
			recs.Warnings = append(recs.Warnings, f.Warning)
		}
		switch r := f.Record.(type) {
		case *StatusRecord:
			recs.Status[r.Ref] = r
		case *CatalogRecord:
			recs.Catalogs[r.Broker] = r
		}
		if f.Err != nil {
			errs = append(errs, f.Err)
		}
	}
	return recs, errors.Join(errs...)
}

// DecodeRange reads items 0..n-1 in order on the calling goroutine (reads
// may share a lock, e.g. one Git repository) and hands each to decode on up
// to GOMAXPROCS worker goroutines; decode must be safe for concurrent use
// with distinct i. YAML decoding dominates loading a large repository, and
// this spreads it over the cores while reads stay serial. The loader of
// records uses it, and so do callers decoding a revision's blobs.
func DecodeRange(n int, read func(i int) ([]byte, error), decode func(i int, data []byte, err error)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			data, err := read(i)
			decode(i, data, err)
		}
		return
	}
	type item struct {
		i    int
		data []byte
		err  error
	}
	ch := make(chan item, 4*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range ch {
				decode(it.i, it.data, it.err)
			}
		}()
	}
	for i := range n {
		data, err := read(i)
		ch <- item{i, data, err}
	}
	close(ch)
	wg.Wait()
}
