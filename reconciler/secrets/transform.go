package secrets

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/util/jsonpath"

	"github.com/osbgit/osbgit/manifest"
)

// BindingData is what a binding's Secret holds: the binding's
// secretTransforms applied to the broker's credentials (applyTransforms;
// addKeysFrom reads through r), then each credential turned into a key
// (credentialsToData). This is Service Catalog's order: transforms see the
// credentials (so a jsonPathExpression can reach into objects, and
// renameKey can fix a key that is not a valid Secret key before it is
// checked), and values are serialized last. It is the one place
// secretTransforms are applied.
func BindingData(ctx context.Context, creds map[string]any, transforms []manifest.SecretTransform, r Reader, defaultNamespace string) (map[string][]byte, error) {
	out, err := applyTransforms(ctx, creds, transforms, r, defaultNamespace)
	if err != nil {
		return nil, err
	}
	return credentialsToData(out)
}

// applyTransforms applies a ServiceBinding's secretTransforms to the
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
//     r (namespace defaulting to defaultNamespace, the binding's),
//     overwriting keys already present.
//   - removeKey deletes Key; a missing key is a no-op.
//
// A transform with no field or more than one field set, an empty key name,
// or a target key that is not a valid Secret key is an error. Errors name
// the transform's index and key, never a value (a JSONPath evaluation
// error's cause is not included, since client-go may quote the data).
func applyTransforms(ctx context.Context, creds map[string]any, transforms []manifest.SecretTransform, r Reader, defaultNamespace string) (map[string]any, error) {
	out := make(map[string]any, len(creds)+len(transforms))
	maps.Copy(out, creds)
	for i, t := range transforms {
		if err := applyOne(ctx, out, t, r, defaultNamespace); err != nil {
			return nil, fmt.Errorf("secretTransforms[%d]: %w", i, err)
		}
	}
	return out, nil
}

func applyOne(ctx context.Context, creds map[string]any, t manifest.SecretTransform, r Reader, defaultNamespace string) error {
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
		rk := t.RenameKey
		if rk.From == "" {
			return errors.New("renameKey: from is empty")
		}
		if err := validateKey(rk.To); err != nil {
			return fmt.Errorf("renameKey %q to %q: %w", rk.From, rk.To, err)
		}
		if v, ok := creds[rk.From]; ok && rk.From != rk.To {
			creds[rk.To] = v
			delete(creds, rk.From)
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
		if r == nil {
			return fmt.Errorf("addKeysFrom secret %s/%s: no secret store to read it from", ns, ref.Name)
		}
		data, err := r.Get(ctx, ns, ref.Name)
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

// credentialsToData turns the credentials object of an OSB bind response
// into Secret data: one key per top-level credential. A string becomes its
// bytes and a []byte (from a transform) is kept as is; anything else —
// numbers, booleans, objects, arrays, null — becomes compact JSON, without
// HTML escaping (so "<" stays "<"). Decode responses with json.Number
// (Decoder.UseNumber) to keep large integers exact. A key that is not a
// valid Secret key is an error naming the key; no error contains a value.
func credentialsToData(creds map[string]any) (map[string][]byte, error) {
	data := make(map[string][]byte, len(creds))
	for _, k := range slices.Sorted(maps.Keys(creds)) {
		if err := validateKey(k); err != nil {
			return nil, fmt.Errorf("credential %q: %w", k, err)
		}
		v, err := encodeValue(creds[k])
		if err != nil {
			return nil, fmt.Errorf("credential %q: %w", k, err)
		}
		data[k] = v
	}
	return data, nil
}

// encodeValue is credentialsToData for one value: a string as it is, any
// other value as its canonical JSON. Its error never carries the encoder's
// message, which may quote the value.
func encodeValue(v any) ([]byte, error) {
	switch v := v.(type) {
	case string:
		return []byte(v), nil
	case []byte:
		return append([]byte(nil), v...), nil
	}
	b, err := manifest.CanonicalValue(v)
	if err != nil {
		return nil, fmt.Errorf("value of type %T cannot be encoded as JSON", v)
	}
	return b, nil
}

// errInvalidKey marks a key that cannot be a Secret key.
var errInvalidKey = errors.New("invalid name")

// validateKey checks a Secret key: [-._a-zA-Z0-9]+, at most 253
// characters, not "." or "..", not starting with "..".
func validateKey(key string) error {
	if msgs := validation.IsConfigMapKey(key); len(msgs) > 0 {
		return fmt.Errorf("%w: key %q: %s", errInvalidKey, key, strings.Join(msgs, "; "))
	}
	return nil
}
