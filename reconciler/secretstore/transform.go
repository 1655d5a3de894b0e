package secretstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	"k8s.io/client-go/util/jsonpath"

	"github.com/osbgit/osbgit/manifest"
)

// SecretFunc reads the data of Secret namespace/name; ReadFunc makes one
// from a Reader. addKeysFrom transforms use it.
type SecretFunc func(namespace, name string) (map[string][]byte, error)

// BindingData is what a binding's Secret holds: ApplyTransforms on the
// broker's credentials, then CredentialsToData. This is Service Catalog's
// order: transforms see the credentials (so a jsonPathExpression can reach
// into objects, and renameKey can fix a key that is not a valid Secret key
// before it is checked), and values are serialized last.
func BindingData(creds map[string]any, transforms []manifest.SecretTransform, readSecret SecretFunc, defaultNamespace string) (map[string][]byte, error) {
	out, err := ApplyTransforms(creds, transforms, readSecret, defaultNamespace)
	if err != nil {
		return nil, err
	}
	return CredentialsToData(out)
}

// ApplyTransforms applies a ServiceBinding's secretTransforms to the
// credentials, in order, as Service Catalog did, and returns the result (a
// new map; creds is not modified):
//
//   - renameKey moves From to To (overwriting To); a missing From is a
//     no-op.
//   - addKey sets Key to, in this order of precedence, the result of
//     JSONPathExpression (k8s.io/client-go/util/jsonpath, evaluated
//     against the credentials as transformed so far, e.g.
//     "{.host}:{.port}"; a missing field is an error), StringValue, or
//     Value (bytes).
//   - addKeysFrom merges every key of another Secret, read with
//     readSecret (namespace defaulting to defaultNamespace, the binding's),
//     overwriting keys already present.
//   - removeKey deletes Key; a missing key is a no-op.
//
// A transform with no field or more than one field set, an empty key name,
// or a target key that is not a valid Secret key is an error. Errors name
// the transform's index and key, never a value (a JSONPath evaluation
// error's cause is not included, since client-go may quote the data).
func ApplyTransforms(creds map[string]any, transforms []manifest.SecretTransform, readSecret SecretFunc, defaultNamespace string) (map[string]any, error) {
	out := make(map[string]any, len(creds)+len(transforms))
	maps.Copy(out, creds)
	for i, t := range transforms {
		if err := applyOne(out, t, readSecret, defaultNamespace); err != nil {
			return nil, fmt.Errorf("secretTransforms[%d]: %w", i, err)
		}
	}
	return out, nil
}

func applyOne(creds map[string]any, t manifest.SecretTransform, readSecret SecretFunc, defaultNamespace string) error {
	set := 0
	for _, isSet := range []bool{t.RenameKey != nil, t.AddKey != nil, t.AddKeysFrom != nil, t.RemoveKey != nil} {
		if isSet {
			set++
		}
	}
	if set != 1 {
		return fmt.Errorf("exactly one of renameKey, addKey, addKeysFrom, removeKey must be set (found %d)", set)
	}
	switch {
	case t.RenameKey != nil:
		r := t.RenameKey
		if r.From == "" {
			return errors.New("renameKey: from is empty")
		}
		if err := validateKey(r.To); err != nil {
			return fmt.Errorf("renameKey %q to %q: %w", r.From, r.To, err)
		}
		if v, ok := creds[r.From]; ok && r.From != r.To {
			creds[r.To] = v
			delete(creds, r.From)
		}
	case t.AddKey != nil:
		a := t.AddKey
		if err := validateKey(a.Key); err != nil {
			return fmt.Errorf("addKey %q: %w", a.Key, err)
		}
		switch {
		case a.JSONPathExpression != nil:
			v, err := evalJSONPath(*a.JSONPathExpression, creds)
			if err != nil {
				return fmt.Errorf("addKey %q: %w", a.Key, err)
			}
			creds[a.Key] = v
		case a.StringValue != nil:
			creds[a.Key] = *a.StringValue
		default:
			creds[a.Key] = append([]byte(nil), a.Value...)
		}
	case t.AddKeysFrom != nil:
		ref := t.AddKeysFrom.SecretRef
		if ref == nil || ref.Name == "" {
			return errors.New("addKeysFrom: secretRef.name is empty")
		}
		ns := ref.Namespace
		if ns == "" {
			ns = defaultNamespace
		}
		if readSecret == nil {
			return fmt.Errorf("addKeysFrom secret %s/%s: no secret store to read it from", ns, ref.Name)
		}
		data, err := readSecret(ns, ref.Name)
		if err != nil {
			return fmt.Errorf("addKeysFrom secret %s/%s: %w", ns, ref.Name, err)
		}
		for k, v := range data {
			creds[k] = append([]byte(nil), v...)
		}
	case t.RemoveKey != nil:
		if t.RemoveKey.Key == "" {
			return errors.New("removeKey: key is empty")
		}
		delete(creds, t.RemoveKey.Key)
	}
	return nil
}

// evalJSONPath evaluates a client-go JSONPath template against the
// credentials. Numbers print as they were written (json.Number), and byte
// values added by earlier transforms as text.
func evalJSONPath(expr string, creds map[string]any) (string, error) {
	j := jsonpath.New("jsonPathExpression")
	if err := j.Parse(expr); err != nil {
		// Parse errors only quote the expression, which is manifest text.
		return "", fmt.Errorf("invalid jsonPathExpression %q: %v", expr, err)
	}
	view, err := jsonView(creds)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := j.Execute(&buf, view); err != nil {
		return "", fmt.Errorf("jsonPathExpression %q does not evaluate against the credentials (a field is missing or has the wrong type)", expr)
	}
	return buf.String(), nil
}

// jsonView is the credentials as generic JSON with json.Number numbers, the
// form client-go's jsonpath prints naturally (a float64 would print large
// integers in exponent form).
func jsonView(creds map[string]any) (any, error) {
	plain := make(map[string]any, len(creds))
	for k, v := range creds {
		if b, ok := v.([]byte); ok {
			v = string(b)
		}
		plain[k] = v
	}
	raw, err := json.Marshal(plain)
	if err != nil {
		return nil, errors.New("credentials cannot be encoded as JSON for jsonPathExpression")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var view any
	if err := dec.Decode(&view); err != nil {
		return nil, errors.New("credentials cannot be decoded for jsonPathExpression")
	}
	return view, nil
}
