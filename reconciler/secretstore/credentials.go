package secretstore

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// CredentialsToData turns the credentials object of an OSB bind response
// into Secret data: one key per top-level credential. A string becomes its
// bytes and a []byte (from a transform) is kept as is; anything else —
// numbers, booleans, objects, arrays, null — becomes compact JSON, without
// HTML escaping (so "<" stays "<"). Decode responses with json.Number
// (Decoder.UseNumber) to keep large integers exact. A key that is not a
// valid Secret key is an error naming the key; no error contains a value.
func CredentialsToData(creds map[string]any) (map[string][]byte, error) {
	data := make(map[string][]byte, len(creds))
	for _, k := range sortedKeys(creds) {
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

// encodeValue is CredentialsToData for one value. Its error never carries
// the encoder's message, which may quote the value.
func encodeValue(v any) ([]byte, error) {
	switch v := v.(type) {
	case string:
		return []byte(v), nil
	case []byte:
		return append([]byte(nil), v...), nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("value of type %T cannot be encoded as JSON", v)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
