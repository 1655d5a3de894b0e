package manifest

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"reflect"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	yaml "go.yaml.in/yaml/v3"
)

// ignoredFields are fields Service Catalog's API server sets; manifests
// exported from a cluster carry them, so they are accepted and dropped
// rather than reported as unknown.
var ignoredFields = map[reflect.Type]map[string]bool{
	reflect.TypeFor[ClusterServiceBroker](): {"status": true},
	reflect.TypeFor[ServiceBroker]():        {"status": true},
	reflect.TypeFor[ServiceInstance]():      {"status": true},
	reflect.TypeFor[ServiceBinding]():       {"status": true},
	reflect.TypeFor[ServiceInstanceSpec](): {
		"userInfo": true, "clusterServiceClassRef": true, "clusterServicePlanRef": true,
		"serviceClassRef": true, "servicePlanRef": true,
	},
	reflect.TypeFor[ServiceBindingSpec](): {"userInfo": true},
}

// serverSideKinds are Service Catalog kinds created by its controller from
// broker catalogs; exported repos may contain them and they are skipped.
var serverSideKinds = map[string]bool{
	"ClusterServiceClass": true, "ClusterServicePlan": true, "ServiceClass": true, "ServicePlan": true,
}

func isOurKind(k string) bool {
	switch Kind(k) {
	case KindClusterServiceBroker, KindServiceBroker, KindServiceInstance, KindServiceBinding:
		return true
	}
	return false
}

// DecodeFile decodes the manifest documents of one file. file is the path
// used in diagnostics (slash separated, relative to the tree root). It is
// the cacheable step of Load: its result depends only on (file, data), so
// callers may keep it keyed by blob hash and file path.
//
// Multi-document files are supported, as are kubectl "List" documents
// (apiVersion v1, kind List, items). Documents of other apiVersions/kinds are
// skipped silently; unknown kinds of the servicecatalog.k8s.io group and our
// kinds at another version get a warning. A Config document is read only from
// osbgit.yaml at the root (see LoadConfig) and ignored elsewhere with a
// warning.
//
// The returned Diagnostics are the file-level ones (encoding, YAML syntax,
// size, skipped documents). Problems inside a decoded object (unknown field,
// wrong type, …) travel with the object and are reported by Assemble, so
// that they carry the object's defaulted namespace. An object with such
// problems is still returned with the fields that did decode, so references
// to it resolve and the planner can record the error on it.
func DecodeFile(file string, data []byte) (objs []Object, diags Diagnostics) {
	sink := &diagSink{file: file}
	defer func() {
		if p := recover(); p != nil {
			objs = nil
			sink.out = append(sink.out, Diagnostic{File: file, Severity: SeverityError,
				Message: fmt.Sprintf("internal error decoding file (please report): %v\n%s", p, firstLines(debug.Stack(), 12))})
			diags = sink.out
			diags.Sort()
		}
	}()
	if len(data) > MaxFileSize {
		sink.errorf(0, "", "file is %d bytes, larger than the %d byte limit", len(data), MaxFileSize)
		return nil, sink.out
	}
	if l, bad := invalidUTF8Line(data); bad {
		sink.errorf(l, "", "file is not valid UTF-8")
		return nil, sink.out
	}
	eachDocument(sink, data, func(root *yaml.Node) {
		objs = append(objs, decodeDocument(file, root, sink, true)...)
	})
	diags = sink.out
	diags.Sort()
	return objs, diags
}

func firstLines(b []byte, n int) string {
	lines := strings.SplitN(string(b), "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

// yamlParserProblems are the messages of yaml.v3's parser (as opposed to
// its scanner). For those, yaml.v3 reports the 0-based line of the
// construct being parsed, so one is added to get the 1-based line.
var yamlParserProblems = map[string]bool{
	"did not find expected ',' or ']'": true, "did not find expected ',' or '}'": true,
	"did not find expected '-' indicator": true, "did not find expected <document start>": true,
	"did not find expected <stream-start>": true, "did not find expected key": true,
	"did not find expected node content": true, "found duplicate %TAG directive": true,
	"found duplicate %YAML directive": true, "found incompatible YAML document": true,
	"found undefined tag handle": true,
}

// splitYAMLError returns the 1-based line and message of a yaml.v3 error.
func splitYAMLError(err error) (int, string) {
	t := yamlErrorText(err)
	if i := strings.Index(t, ": "); i > 0 {
		var line int
		if _, e := fmt.Sscanf(t[:i], "%d", &line); e == nil {
			msg := t[i+2:]
			if yamlParserProblems[msg] {
				line++
			}
			return line, msg
		}
	}
	return 0, strings.TrimSpace(t)
}

// decodeDocument decodes one top-level (or List item) mapping.
func decodeDocument(file string, root *yaml.Node, sink *diagSink, allowList bool) []Object {
	if root.Kind != yaml.MappingNode {
		return nil // not a Kubernetes-style document: not ours
	}
	apiVersion, kind := typeOf(root)
	switch {
	case allowList && strings.HasSuffix(kind, "List") && (apiVersion == "v1" || apiVersion == APIVersion):
		var out []Object
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value != "items" || root.Content[i+1].Kind != yaml.SequenceNode {
				continue
			}
			for _, item := range root.Content[i+1].Content {
				out = append(out, decodeDocument(file, item, sink, false)...)
			}
		}
		return out
	case apiVersion == APIVersion && isOurKind(kind):
		if o := decodeObject(file, Kind(kind), root, sink); o != nil {
			return []Object{o}
		}
		return nil
	case apiVersion == APIVersion && serverSideKinds[kind]:
		sink.warnf(keyLine(root, "kind"), "kind", "%s documents are ignored: osbgit reads classes and plans from the broker's catalog (defaultProvisionParameters and the like are not applied)", kind)
	case apiVersion == APIVersion:
		sink.warnf(keyLine(root, "kind"), "kind", "unknown kind %q for %s; document ignored", kind, APIVersion)
	case apiVersion == ConfigAPIVersion && kind == string(KindConfig) && file != ConfigFileName:
		sink.warnf(root.Line, "", "Config is read only from %s at the repository root; document ignored", ConfigFileName)
	case isOurKind(kind) && apiVersion == "":
		// An error, not a warning: ignored, the document would read as a
		// resource removed (and, with prune, be deleted). An error makes
		// the file unreadable: nothing is deleted while it stands.
		sink.errorf(root.Line, "apiVersion", "%s without apiVersion (want %s)", kind, APIVersion)
	case isOurKind(kind) && looksLikeServiceCatalog(apiVersion):
		sink.errorf(keyLine(root, "apiVersion"), "apiVersion", "%q %s is not supported (want %s)", apiVersion, kind, APIVersion)
	}
	return nil
}

// looksLikeServiceCatalog reports whether apiVersion was meant to be
// Service Catalog's (another version, or misspelt: spaces, case), as
// opposed to another project's kind of the same name.
func looksLikeServiceCatalog(apiVersion string) bool {
	return strings.Contains(strings.ToLower(strings.Join(strings.Fields(apiVersion), "")), "servicecatalog")
}

// keyLine returns the line of key in mapping m, else m's line.
func keyLine(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i].Line
		}
	}
	return m.Line
}

// decodeObject strictly decodes one of our kinds.
func decodeObject(file string, kind Kind, root *yaml.Node, fileSink *diagSink) Object {
	var obj Object
	switch kind {
	case KindClusterServiceBroker:
		obj = &ClusterServiceBroker{}
	case KindServiceBroker:
		obj = &ServiceBroker{}
	case KindServiceInstance:
		obj = &ServiceInstance{}
	case KindServiceBinding:
		obj = &ServiceBinding{}
	default:
		return nil
	}
	ns, name := prescanMeta(root)
	ref := Ref{Kind: kind, Namespace: ns, Name: name}
	if kind.ClusterScoped() {
		ref.Namespace = ""
	}
	sink := &diagSink{file: file, ref: ref}
	lines := &fieldLines{}
	c := &converter{sink: sink, lines: lines, ignore: ignoredFields}
	ok := c.decodeInto(root, obj)
	b := obj.objBase()
	if !ok {
		// Too large or deep to decode: keep a stub with what the prescan
		// found, so the resource is reported as invalid rather than looking
		// deleted.
		if name == "" {
			fileSink.out = append(fileSink.out, sink.out...)
			return nil
		}
		*obj.GetMetadata() = metav1.ObjectMeta{Name: name, Namespace: ns}
		b.partial = true
	}
	b.Source = Source{File: file, Line: root.Line}
	b.lines = lines.freeze()
	keepSpecHash(obj)
	b.decodeDiags = sink.out
	for _, d := range sink.out {
		if d.Severity == SeverityError {
			if b.badFields == nil {
				b.badFields = map[string]bool{}
			}
			b.badFields[d.Field] = true
		}
	}
	return obj
}

// prescanMeta reads metadata.namespace/name as strings without decoding, so
// diagnostics raised while decoding already name the object.
func prescanMeta(root *yaml.Node) (ns, name string) {
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "metadata" || root.Content[i+1].Kind != yaml.MappingNode {
			continue
		}
		m := root.Content[i+1]
		for j := 0; j+1 < len(m.Content); j += 2 {
			k, v := m.Content[j], m.Content[j+1]
			if v.Kind != yaml.ScalarNode {
				continue
			}
			switch k.Value {
			case "namespace":
				ns = v.Value
			case "name":
				name = v.Value
			}
		}
	}
	return ns, name
}

// ---------------------------------------------------------------------------
// Config

// DecodeConfig decodes osbgit.yaml. Empty data gives DefaultConfig. Fields
// absent from the file get their defaults; an explicit value (even 0 or
// false) is kept. Unknown fields and invalid values are errors.
func DecodeConfig(file string, data []byte) (cfg *Config, diags Diagnostics) {
	cfg = DefaultConfig()
	sink := &diagSink{file: file}
	decoded := &Config{}
	lines, ok := decodeSingleDocument(sink, data, ConfigAPIVersion, KindConfig, decoded)
	if ok {
		has := lines.has
		def := DefaultConfig()
		if !has("path") || decoded.Path == "" {
			decoded.Path = def.Path
		}
		if !has("maxDeletions") {
			decoded.MaxDeletions = def.MaxDeletions
		}
		if !has("concurrency") {
			decoded.Concurrency = def.Concurrency
		}
		if decoded.CommitAuthor.Name == "" {
			decoded.CommitAuthor.Name = def.CommitAuthor.Name
		}
		if decoded.CommitAuthor.Email == "" {
			decoded.CommitAuthor.Email = def.CommitAuthor.Email
		}
		if decoded.CommitMessageTemplate == "" {
			decoded.CommitMessageTemplate = def.CommitMessageTemplate
		}
		if decoded.DefaultNamespace == "" {
			decoded.DefaultNamespace = def.DefaultNamespace
		}
		decoded.Source = Source{File: file, Line: lines.lookup("")}
		decoded.lines = lines
		cfg = decoded
		validateConfig(cfg, sink)
	}
	diags = sink.out
	diags.Sort()
	return cfg, diags
}

// LoadConfig reads osbgit.yaml at the root of fsys; a missing file gives
// DefaultConfig.
func LoadConfig(fsys fs.FS) (*Config, Diagnostics) {
	data, err := fs.ReadFile(fsys, ConfigFileName)
	if errors.Is(err, fs.ErrNotExist) {
		return DefaultConfig(), nil
	}
	if err != nil {
		return DefaultConfig(), Diagnostics{{File: ConfigFileName, Severity: SeverityError, Message: fmt.Sprintf("read config: %v", err)}}
	}
	return DecodeConfig(ConfigFileName, data)
}

// ---------------------------------------------------------------------------
// Set

// Set is a loaded, defaulted repo: every object of our kinds, sorted by Ref
// within each kind. Objects with errors are included (the diagnostics name
// them, see Diagnostics.ErrorRefs) so that references to them resolve.
type Set struct {
	// Config is the repo config (defaults applied).
	Config                *Config
	ClusterServiceBrokers []*ClusterServiceBroker
	ServiceBrokers        []*ServiceBroker
	Instances             []*ServiceInstance
	Bindings              []*ServiceBinding
	// UnreadableFiles are manifest files that could not be fully read or
	// decoded (YAML syntax error, not UTF-8, too large, read error): objects
	// in them may be missing from the Set. While it is non-empty the planner
	// must not treat a resource missing from the Set as deleted. It also
	// lists osbgit.yaml when the config has errors and the manifest
	// directory when it cannot be walked. Load fills it; callers using
	// DecodeFile + Assemble set it with FileErrors (and must add the
	// directory themselves when it is missing).
	UnreadableFiles []string

	index map[Ref]Object
}

// FileErrors returns the sorted files that have a file-level error
// (diagnostic with an error severity and no object), i.e. the files whose
// objects may be incomplete.
func FileErrors(ds Diagnostics) []string {
	seen := map[string]bool{}
	var out []string
	for _, d := range ds {
		if d.Severity == SeverityError && d.Ref.Kind == "" && d.File != "" && !seen[d.File] {
			seen[d.File] = true
			out = append(out, d.File)
		}
	}
	sort.Strings(out)
	return out
}

// Get returns the object with ref.
func (s *Set) Get(ref Ref) (Object, bool) {
	if s == nil {
		return nil, false
	}
	o, ok := s.index[ref]
	return o, ok
}

// Objects returns every object: brokers, then instances, then bindings, each
// sorted by namespace and name.
func (s *Set) Objects() []Object {
	if s == nil {
		return nil
	}
	out := make([]Object, 0, len(s.index))
	for _, o := range s.ClusterServiceBrokers {
		out = append(out, o)
	}
	for _, o := range s.ServiceBrokers {
		out = append(out, o)
	}
	for _, o := range s.Instances {
		out = append(out, o)
	}
	for _, o := range s.Bindings {
		out = append(out, o)
	}
	return out
}

// Brokers returns all brokers, cluster-scoped first.
func (s *Set) Brokers() []Broker {
	if s == nil {
		return nil
	}
	out := make([]Broker, 0, len(s.ClusterServiceBrokers)+len(s.ServiceBrokers))
	for _, o := range s.ClusterServiceBrokers {
		out = append(out, o)
	}
	for _, o := range s.ServiceBrokers {
		out = append(out, o)
	}
	return out
}

// Broker returns the broker with ref, or nil.
func (s *Set) Broker(ref Ref) Broker {
	o, _ := s.Get(ref)
	b, _ := o.(Broker)
	return b
}

// Instance returns the instance namespace/name, or nil.
func (s *Set) Instance(namespace, name string) *ServiceInstance {
	o, _ := s.Get(Ref{Kind: KindServiceInstance, Namespace: namespace, Name: name})
	i, _ := o.(*ServiceInstance)
	return i
}

// BindingsOf returns the bindings whose instanceRef is inst.
func (s *Set) BindingsOf(inst Ref) []*ServiceBinding {
	var out []*ServiceBinding
	for _, b := range s.Bindings {
		if b.InstanceRef() == inst {
			out = append(out, b)
		}
	}
	return out
}

// Admission says whether the file of o may declare it: nil, or the error
// to report at o's file. It is the operator's tenancy policy
// (reconciler/policy), which Assemble uses to settle duplicates.
type Admission func(o Object) *Diagnostic

// AssembleOption configures Assemble.
type AssembleOption func(*assembly)

type assembly struct{ admit Admission }

// WithAdmission settles duplicates by the tenancy policy: of several
// copies of one kind/namespace/name, the copies whose file may not declare
// it are ignored, each with an error at its file, when another copy may.
// Without it a copy in another team's directory, careless or hostile,
// would block the owner's, as duplicates block every copy. When no copy
// may, all are kept: the resource is then blocked (duplicate and policy
// errors), never taken for removed.
func WithAdmission(a Admission) AssembleOption {
	return func(as *assembly) { as.admit = a }
}

// Assemble builds a Set from decoded objects (from DecodeFile, possibly
// cached): it applies defaults (namespace from cfg.DefaultNamespace, broker
// relist defaults, binding secretName, ServiceBroker auth secret namespace),
// reports each object's decode diagnostics, detects duplicates (same
// kind/namespace/name, each copy's diagnostic naming the other place;
// see WithAdmission), and runs the offline validation (Validate). objs are
// not modified: an object that defaulting or its diagnostics change is
// copied first; the others are taken as they are (a long-running process
// keeps every decoded object in its decode cache, and a copy of each was
// 7% of its heap). A nil cfg means DefaultConfig.
func Assemble(objs []Object, cfg *Config, opts ...AssembleOption) (*Set, Diagnostics) {
	if cfg == nil {
		cfg = DefaultConfig()
	}
	var as assembly
	for _, opt := range opts {
		opt(&as)
	}
	set := &Set{Config: cfg, index: make(map[Ref]Object, len(objs))}
	var diags Diagnostics
	sorted := append([]Object(nil), objs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i].GetSource(), sorted[j].GetSource()
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
	// decodeDiags are each object's decode diagnostics, reported below
	// unless the object is an ignored copy.
	decodeDiags := make(map[int]Diagnostics)
	for i, o := range sorted {
		if ref0 := o.GetRef(); ref0.Kind.ClusterScoped() && o.GetMetadata().Namespace != "" {
			diags = append(diags, Diagnostic{File: o.GetSource().File, Line: o.FieldLine("metadata.namespace"), Field: "metadata.namespace",
				Severity: SeverityWarning, Message: fmt.Sprintf("%s is cluster-scoped; namespace %q ignored", ref0.Kind, o.GetMetadata().Namespace), Ref: Ref{Kind: ref0.Kind, Name: ref0.Name}})
		}
		if needsCopy(o, cfg) {
			// Shared objects are never written, not even with the value
			// they hold: another pass may be reading them.
			o = o.shallowCopy()
			o.setRefNamespace(AssembledNamespace(o, cfg))
			applyDefaults(o)
			keepSpecHash(o) // the defaults are part of the spec
			ref := o.GetRef()
			for _, d := range o.objBase().decodeDiags {
				d.Ref = ref
				decodeDiags[i] = append(decodeDiags[i], d)
			}
			o.objBase().decodeDiags = nil
		}
		sorted[i] = o
	}
	var ignored map[int]Diagnostic
	if as.admit != nil {
		ignored = refusedCopies(sorted, as.admit)
	}
	for i, o := range sorted {
		if d, ok := ignored[i]; ok {
			// The copy's problems are its file's: tied to the resource,
			// they would block the copy that is kept.
			diags = append(diags, d)
			for _, dd := range decodeDiags[i] {
				dd.Ref = Ref{}
				diags = append(diags, dd)
			}
			continue
		}
		diags = append(diags, decodeDiags[i]...)
		base := o.objBase()
		ref := o.GetRef()
		if prev, dup := set.index[ref]; dup {
			ps, cs := prev.GetSource(), base.Source
			diags = append(diags,
				Diagnostic{File: cs.File, Line: cs.Line, Field: "metadata.name", Severity: SeverityError, Ref: ref,
					Message: fmt.Sprintf("duplicate %s: also defined at %s", ref, ps)},
				Diagnostic{File: ps.File, Line: ps.Line, Field: "metadata.name", Severity: SeverityError, Ref: ref,
					Message: fmt.Sprintf("duplicate %s: also defined at %s", ref, cs)})
			continue
		}
		set.index[ref] = o
	}
	for _, o := range set.index {
		switch v := o.(type) {
		case *ClusterServiceBroker:
			set.ClusterServiceBrokers = append(set.ClusterServiceBrokers, v)
		case *ServiceBroker:
			set.ServiceBrokers = append(set.ServiceBrokers, v)
		case *ServiceInstance:
			set.Instances = append(set.Instances, v)
		case *ServiceBinding:
			set.Bindings = append(set.Bindings, v)
		}
	}
	sortByRef(set.ClusterServiceBrokers)
	sortByRef(set.ServiceBrokers)
	sortByRef(set.Instances)
	sortByRef(set.Bindings)
	diags = append(diags, Validate(set)...)
	diags.Sort()
	return set, diags
}

// refusedCopies finds, among the assembled objs, each copy of a
// duplicated ref that admit refuses while another copy is admitted, and
// returns, by index, the error to report at its file instead of the
// duplicate (WithAdmission). The error names no resource: it must not
// block the admitted copy.
func refusedCopies(objs []Object, admit Admission) map[int]Diagnostic {
	copies := make(map[Ref]int, len(objs))
	for _, o := range objs {
		copies[o.GetRef()]++
	}
	refusals := map[int]*Diagnostic{}
	admitted := map[Ref]Source{}
	for i, o := range objs {
		ref := o.GetRef()
		if copies[ref] < 2 {
			continue
		}
		if d := admit(o); d != nil {
			refusals[i] = d
		} else if _, ok := admitted[ref]; !ok {
			admitted[ref] = o.GetSource()
		}
	}
	out := map[int]Diagnostic{}
	for i, d := range refusals {
		ref := objs[i].GetRef()
		if at, ok := admitted[ref]; ok {
			out[i] = Diagnostic{File: d.File, Line: d.Line, Field: d.Field, Severity: SeverityError,
				Message: fmt.Sprintf("%s; %s is declared at %s, which may: this copy is ignored", d.Message, ref, at)}
		}
	}
	return out
}

func sortByRef[T Object](s []T) {
	sort.Slice(s, func(i, j int) bool { return s[i].GetRef().Less(s[j].GetRef()) })
}

// needsCopy reports whether Assemble changes o: its namespace, its
// defaults or its decode diagnostics (moved to the Set's).
func needsCopy(o Object, cfg *Config) bool {
	if len(o.objBase().decodeDiags) > 0 || o.GetMetadata().Namespace != AssembledNamespace(o, cfg) {
		return true
	}
	switch v := o.(type) {
	case *ServiceInstance:
		return false
	case *ServiceBinding:
		return v.Spec.SecretName == ""
	}
	return true // brokers: few, and their defaults are many
}

// applyDefaults fills defaulted fields, copying any shared nested value it
// changes (the object is a shallow copy of a possibly cached original;
// needsCopy knows which objects it changes).
func applyDefaults(o Object) {
	switch v := o.(type) {
	case *ClusterServiceBroker:
		defaultBrokerSpec(&v.Spec, "")
	case *ServiceBroker:
		defaultBrokerSpec(&v.Spec, v.Namespace)
	case *ServiceBinding:
		v.Spec.SecretName = v.CredentialsSecretName()
	}
}

// AssembledNamespace is the namespace Assemble gives o: none for a
// cluster-scoped kind, else its metadata.namespace or cfg's default. For
// those who must know an object's Ref before it is assembled.
func AssembledNamespace(o Object, cfg *Config) string {
	if o.GetRef().Kind.ClusterScoped() {
		return ""
	}
	return cfg.NamespaceOrDefault(o.GetMetadata().Namespace)
}

// CredentialsSecretName is the Secret the binding's credentials go to:
// spec.secretName, by default (as Assemble sets it) metadata.name.
func (b *ServiceBinding) CredentialsSecretName() string {
	if b.Spec.SecretName == "" {
		return b.Name
	}
	return b.Spec.SecretName
}

func defaultBrokerSpec(s *BrokerSpec, namespace string) {
	if s.RelistBehavior == "" {
		s.RelistBehavior = RelistDuration
	}
	if s.RelistDuration == nil && s.RelistBehavior == RelistDuration {
		d := metav1.Duration{Duration: 15 * time.Minute}
		s.RelistDuration = &d
	}
	if namespace != "" && s.AuthInfo != nil {
		ai := *s.AuthInfo
		fix := func(c *SecretAuthConfig) *SecretAuthConfig {
			if c == nil || c.SecretRef == nil || c.SecretRef.Namespace == namespace {
				return c
			}
			cc := *c
			r := *c.SecretRef
			cc.ignoredNamespace = r.Namespace
			r.Namespace = namespace
			cc.SecretRef = &r
			return &cc
		}
		ai.Basic, ai.Bearer = fix(ai.Basic), fix(ai.Bearer)
		s.AuthInfo = &ai
	}
}

// Load reads every manifest under dir of fsys (dir "" means the Config's
// path, default the root), skipping hidden directories and files (.osbgit/,
// .git/, …) and symlinks, and returns the assembled Set with all diagnostics
// (config, files, objects, offline validation), sorted. osbgit.yaml at the
// root is read as the Config. The same code serves os.DirFS of a working
// tree and a Git commit's tree. opts are Assemble's.
func Load(fsys fs.FS, dir string, opts ...AssembleOption) (*Set, Diagnostics) {
	cfg, diags := LoadConfig(fsys)
	fromConfig := dir == ""
	if fromConfig {
		dir = cfg.Path
	}
	dir = path.Clean(strings.TrimPrefix(dir, "./"))
	if !fs.ValidPath(dir) {
		if !fromConfig { // else validateConfig already reported it
			diags = append(diags, Diagnostic{File: dir, Severity: SeverityError, Message: fmt.Sprintf("manifest path %q must be relative to the repository root, without ..", dir)})
		}
		diags.Sort()
		set, _ := Assemble(nil, cfg, opts...)
		set.UnreadableFiles = append(FileErrors(diags), dir)
		return set, diags
	}
	var objs []Object
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			diags = append(diags, Diagnostic{File: p, Severity: SeverityError, Message: fmt.Sprintf("read: %v", err)})
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		name := d.Name()
		if p != dir && strings.HasPrefix(name, ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || !isManifestFile(name) || p == ConfigFileName {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			diags = append(diags, Diagnostic{File: p, Severity: SeverityWarning, Message: "symbolic link ignored"})
			return nil
		}
		data, rerr := fs.ReadFile(fsys, p)
		if rerr != nil {
			diags = append(diags, Diagnostic{File: p, Severity: SeverityError, Message: fmt.Sprintf("read: %v", rerr)})
			return nil
		}
		o, ds := DecodeFile(p, data)
		SetBlob(o, GitBlobHash(data))
		objs = append(objs, o...)
		diags = append(diags, ds...)
		return nil
	})
	if err != nil {
		diags = append(diags, Diagnostic{File: dir, Severity: SeverityError, Message: fmt.Sprintf("read manifest directory: %v", err)})
	}
	set, ds := Assemble(objs, cfg, opts...)
	set.UnreadableFiles = FileErrors(diags)
	diags = append(diags, ds...)
	diags.Sort()
	return set, diags
}

func isManifestFile(name string) bool {
	l := strings.ToLower(name)
	return strings.HasSuffix(l, ".yaml") || strings.HasSuffix(l, ".yml")
}
