package osbtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/osbgit/osbgit/osbclient/osbwire"
)

// checkParams validates parameters against a plan's parameter schema (nil:
// no schema, anything goes), answering 400 with every violation. A schema
// that does not compile is a broken catalog: 500. Call with b.mu held.
func (b *Broker) checkParams(what, planID string, s *osbwire.InputParametersSchema, params map[string]any, res *result) bool {
	if b.cfg.IgnoreParameterSchemas || s == nil || len(bytes.TrimSpace(s.Parameters)) == 0 {
		return true
	}
	sch, err := b.compileSchema(s.Parameters)
	if err != nil {
		res.fail(http.StatusInternalServerError, "", "the %s parameter schema of plan %s does not compile: %v", what, planID, err)
		return false
	}
	if params == nil {
		params = map[string]any{}
	}
	raw, _ := json.Marshal(params)
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		res.fail(http.StatusBadRequest, "", "parameters cannot be decoded: %v", err)
		return false
	}
	verr := sch.Validate(inst)
	if verr == nil {
		return true
	}
	res.fail(http.StatusBadRequest, "", "parameters do not match the %s schema of plan %s: %s", what, planID, redactValues(describeSchemaError(verr), params))
	return false
}

// redactValues replaces the string parameter values quoted in a validation
// message (e.g. a pattern mismatch) with <redacted>: parameters may hold
// secrets, and error descriptions end up in platform logs and records.
func redactValues(msg string, params any) string {
	values := appendLeaves(nil, params)
	// Longest first, so a value containing another is replaced whole.
	sort.Slice(values, func(i, j int) bool { return len(values[i]) > len(values[j]) })
	for _, v := range values {
		msg = strings.ReplaceAll(msg, "'"+v+"'", "<redacted>")
		msg = strings.ReplaceAll(msg, strconv.Quote(v), "<redacted>")
	}
	return msg
}

// compileSchema compiles (and caches) a plan's parameter schema. External
// references are refused, as the spec forbids them.
func (b *Broker) compileSchema(raw json.RawMessage) (sch *jsonschema.Schema, err error) {
	key := string(raw)
	if sch, ok := b.schemas[key]; ok {
		return sch, nil
	}
	defer func() {
		if p := recover(); p != nil {
			sch, err = nil, fmt.Errorf("internal error: %v", p)
		}
	}()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft4)
	c.UseLoader(refuseLoader{})
	const loc = "osbtest:///plan-schema.json"
	if err := c.AddResource(loc, doc); err != nil {
		return nil, err
	}
	if sch, err = c.Compile(loc); err != nil {
		return nil, err
	}
	b.schemas[key] = sch
	return sch, nil
}

// refuseLoader refuses to load external schema references.
type refuseLoader struct{}

func (refuseLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("external schema reference %s is not allowed", url)
}

// describeSchemaError renders a validation error as one line listing every
// leaf violation with its location, e.g. "at /size: got string, want integer".
func describeSchemaError(err error) string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err.Error()
	}
	var leaves []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		// The first line of a leaf's Error() is "at '<location>': <message>"
		// (optionally prefixed); keep it compact.
		msg := strings.TrimSpace(strings.SplitN(e.Error(), "\n", 2)[0])
		msg = strings.TrimPrefix(msg, "jsonschema validation failed with ")
		leaves = append(leaves, "at /"+strings.Join(e.InstanceLocation, "/")+": "+stripLocation(msg))
	}
	walk(ve)
	sort.Strings(leaves)
	return strings.Join(leaves, "; ")
}

// stripLocation removes a leading "at '...': " or "'...'" prefix that the
// validator puts before the message.
func stripLocation(msg string) string {
	if i := strings.Index(msg, "': "); i >= 0 && (strings.HasPrefix(msg, "at '") || strings.HasPrefix(msg, "'")) {
		return msg[i+3:]
	}
	return msg
}

// instanceSchema returns the plan's service_instance create (update=false) or
// update schema, or nil.
func instanceSchema(p *osbwire.Plan, update bool) *osbwire.InputParametersSchema {
	if p == nil || p.Schemas == nil || p.Schemas.ServiceInstance == nil {
		return nil
	}
	if update {
		return p.Schemas.ServiceInstance.Update
	}
	return p.Schemas.ServiceInstance.Create
}

// bindingSchema returns the plan's service_binding create schema, or nil.
func bindingSchema(p *osbwire.Plan) *osbwire.InputParametersSchema {
	if p == nil || p.Schemas == nil || p.Schemas.ServiceBinding == nil {
		return nil
	}
	return p.Schemas.ServiceBinding.Create
}
