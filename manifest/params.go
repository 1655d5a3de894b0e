package manifest

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/osbgit/osbgit/osbclient/osbwire"
)

// SecretKey names one key of a Secret: what a parametersFrom entry reads
// (from the namespace of the object that names it).
type SecretKey struct {
	Namespace, Name, Key string
}

// SecretValue is one parametersFrom value as read before planning: the
// key's bytes, or why they could not be read (no secret store, a missing
// Secret or key, a store error; never holding the value).
type SecretValue struct {
	Value []byte
	Err   error
}

// SecretValues are the parametersFrom values read before planning
// (ParameterSecrets lists what to read), so that resolving parameters does
// no I/O.
type SecretValues map[SecretKey]SecretValue

// ParameterSecrets lists, sorted and each once, the Secret keys that the
// parametersFrom entries of the set's instances and bindings read.
func ParameterSecrets(set *Set) []SecretKey {
	if set == nil {
		return nil
	}
	var out []SecretKey
	add := func(namespace string, from []ParametersFromSource) {
		for _, src := range from {
			if ref := src.SecretKeyRef; ref != nil {
				out = append(out, SecretKey{Namespace: namespace, Name: ref.Name, Key: ref.Key})
			}
		}
	}
	for _, i := range set.Instances {
		add(i.Namespace, i.Spec.ParametersFrom)
	}
	for _, b := range set.Bindings {
		add(b.Namespace, b.Spec.ParametersFrom)
	}
	slices.SortFunc(out, func(a, b SecretKey) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name), strings.Compare(a.Key, b.Key))
	})
	return slices.Compact(out)
}

// ResolveParameters merges an object's inline parameters with its
// parametersFrom sources (read from namespace, the object's namespace). Each
// source must hold a JSON object; its top-level keys are added, and a key
// given twice (inline and in a source, or in two sources) is an error, as in
// Service Catalog. secretKeys lists, sorted, the top-level keys that came
// from Secrets so that diffs and logs can redact them (RedactParameters).
// Errors name the source and key but never contain a secret value; a
// source whose value is not in secrets, or could not be read, is an error
// matching ErrSecretUnreadable. params is not modified; numbers stay
// json.Number. Without sources the result is params itself (an empty map
// for nil): callers must not modify it. It does no I/O.
func ResolveParameters(namespace string, params map[string]any, from []ParametersFromSource, secrets SecretValues) (out map[string]any, secretKeys []string, err error) {
	if len(from) == 0 {
		if params == nil {
			params = map[string]any{}
		}
		return params, nil, nil
	}
	out = make(map[string]any, len(params))
	origin := map[string]string{}
	for k, v := range params {
		out[k] = v
		origin[k] = "spec.parameters"
	}
	for i, src := range from {
		where := fmt.Sprintf("spec.parametersFrom[%d]", i)
		if src.SecretKeyRef == nil {
			return nil, nil, fmt.Errorf("%s: secretKeyRef is required", where)
		}
		ref := src.SecretKeyRef
		v, ok := secrets[SecretKey{Namespace: namespace, Name: ref.Name, Key: ref.Key}]
		if !ok {
			return nil, nil, fmt.Errorf("%s: %w: no secret store to read Secret %s/%s", where, ErrSecretUnreadable, namespace, ref.Name)
		}
		if v.Err != nil {
			return nil, nil, fmt.Errorf("%s: read key %q of Secret %s/%s: %w", where, ref.Key, namespace, ref.Name, unreadable{v.Err})
		}
		dec := json.NewDecoder(bytes.NewReader(v.Value))
		dec.UseNumber()
		var obj map[string]any
		if derr := dec.Decode(&obj); derr != nil || obj == nil || dec.More() {
			return nil, nil, fmt.Errorf("%s: key %q of Secret %s/%s must hold a JSON object", where, ref.Key, namespace, ref.Name)
		}
		for _, k := range sortedKeys(obj) {
			if prev, dup := origin[k]; dup {
				return nil, nil, fmt.Errorf("%s: parameter %q is also set by %s", where, k, prev)
			}
			origin[k] = where
			out[k] = obj[k]
			secretKeys = append(secretKeys, k)
		}
	}
	sort.Strings(secretKeys)
	return out, secretKeys, nil
}

// ErrSecretUnreadable marks a parametersFrom Secret that could not be read
// (no secret store, missing Secret or key, store error), as opposed to one
// whose content is wrong.
var ErrSecretUnreadable = errors.New("secret unreadable")

// unreadable marks a secret store's error as ErrSecretUnreadable without
// changing its message.
type unreadable struct{ err error }

func (u unreadable) Error() string        { return u.err.Error() }
func (u unreadable) Unwrap() error        { return u.err }
func (u unreadable) Is(target error) bool { return target == ErrSecretUnreadable }

// RedactedValue replaces secret-sourced parameter values in output.
const RedactedValue = "<redacted>"

// RedactParameters returns a copy of params with the values of secretKeys
// replaced by RedactedValue (what Service Catalog showed for parameters from
// secrets).
func RedactParameters(params map[string]any, secretKeys []string) map[string]any {
	out := make(map[string]any, len(params))
	for k, v := range params {
		out[k] = v
	}
	for _, k := range secretKeys {
		if _, ok := out[k]; ok {
			out[k] = RedactedValue
		}
	}
	return out
}

// SchemaKind selects one of a plan's parameter schemas.
type SchemaKind int

// Schema kinds.
const (
	// SchemaInstanceCreate is schemas.service_instance.create: parameters of
	// a new instance.
	SchemaInstanceCreate SchemaKind = iota
	// SchemaInstanceUpdate is schemas.service_instance.update: parameters
	// of an existing instance.
	SchemaInstanceUpdate
	// SchemaBindingCreate is schemas.service_binding.create.
	SchemaBindingCreate
)

// PlanSchema returns the plan's schema of kind k, or nil when it declares
// none.
func PlanSchema(p osbwire.Plan, k SchemaKind) json.RawMessage {
	ip := schemaOf(p.Schemas, int(k))
	if ip == nil || len(bytes.TrimSpace(ip.Parameters)) == 0 || string(bytes.TrimSpace(ip.Parameters)) == "null" {
		return nil
	}
	return ip.Parameters
}

// ParameterError is one way parameters violate a schema.
type ParameterError struct {
	// Path is the location inside the parameters in field-path syntax
	// ("size", "network.cidrs[1]"); "" for the parameters object itself.
	Path string
	// Message says what is wrong.
	Message string
	// Missing is set for "required" failures: the missing properties.
	Missing []string
}

// Field returns the manifest field path: spec.parameters.<Path>.
func (e ParameterError) Field() string {
	if e.Path == "" {
		return "spec.parameters"
	}
	if strings.HasPrefix(e.Path, "[") {
		return "spec.parameters" + e.Path
	}
	return "spec.parameters." + e.Path
}

var (
	schemaCache   sync.Map // [32]byte -> *compiledSchema
	schemaPrinter = message.NewPrinter(language.Und)
)

type compiledSchema struct {
	sch *jsonschema.Schema
	err error
}

// noLoader refuses every external $ref: a broker's schema must not make
// osbgit read local files or the network.
type noLoader struct{}

// Load implements jsonschema.URLLoader by refusing.
func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("external schema references are not loaded (%s)", url)
}

// CompileSchema compiles a plan parameter schema (JSON Schema; draft-04, as
// OSB requires, unless $schema says otherwise). External $refs are refused.
// Results are cached by content.
func CompileSchema(schema json.RawMessage) (*jsonschema.Schema, error) {
	key := sha256.Sum256(schema)
	if v, ok := schemaCache.Load(key); ok {
		c := v.(*compiledSchema)
		return c.sch, c.err
	}
	c := &compiledSchema{}
	c.sch, c.err = compileSchema(schema)
	schemaCache.Store(key, c)
	return c.sch, c.err
}

func compileSchema(schema json.RawMessage) (sch *jsonschema.Schema, err error) {
	defer func() {
		if p := recover(); p != nil {
			sch, err = nil, fmt.Errorf("compile schema: internal error: %v", p)
		}
	}()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil, fmt.Errorf("parse schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft4)
	c.UseLoader(noLoader{})
	const loc = "osbgit:///plan-schema.json"
	if err := c.AddResource(loc, doc); err != nil {
		return nil, fmt.Errorf("load schema: %w", err)
	}
	sch, err = c.Compile(loc)
	if err != nil {
		return nil, fmt.Errorf("compile schema: %w", err)
	}
	return sch, nil
}

// ValidateParameters checks params against a plan schema and returns every
// violation (leaf errors, sorted by path). The error is for a schema that
// does not compile.
func ValidateParameters(schema json.RawMessage, params map[string]any) ([]ParameterError, error) {
	sch, err := CompileSchema(schema)
	if err != nil {
		return nil, err
	}
	var v any = map[string]any{}
	if params != nil {
		// Round-trip through JSON so values have the types the validator
		// expects (json.Number, map[string]any, []any).
		b, merr := json.Marshal(params)
		if merr != nil {
			return nil, fmt.Errorf("encode parameters: %w", merr)
		}
		if v, merr = jsonschema.UnmarshalJSON(bytes.NewReader(b)); merr != nil {
			return nil, fmt.Errorf("decode parameters: %w", merr)
		}
	}
	verr := sch.Validate(v)
	if verr == nil {
		return nil, nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(verr, &ve) {
		return []ParameterError{{Message: verr.Error()}}, nil
	}
	var out []ParameterError
	seen := map[string]bool{}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		pe := ParameterError{Path: instancePath(v, e.InstanceLocation), Message: e.ErrorKind.LocalizedString(schemaPrinter)}
		if r, ok := e.ErrorKind.(*kind.Required); ok {
			pe.Missing = append([]string(nil), r.Missing...)
		}
		k := pe.Path + "\x00" + pe.Message
		if !seen[k] {
			seen[k] = true
			out = append(out, pe)
		}
	}
	walk(ve)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Message < out[j].Message
	})
	return out, nil
}

// instancePath renders JSON pointer tokens as a field path, using the value
// to tell array indexes from object keys.
func instancePath(root any, tokens []string) string {
	p := ""
	cur := root
	for _, t := range tokens {
		switch c := cur.(type) {
		case []any:
			i, err := strconv.Atoi(t)
			if err == nil && i >= 0 && i < len(c) {
				p = joinIndex(p, i)
				cur = c[i]
				continue
			}
			p = joinField(p, t)
			cur = nil
		case map[string]any:
			p = joinField(p, t)
			cur = c[t]
		default:
			p = joinField(p, t)
			cur = nil
		}
	}
	return p
}
