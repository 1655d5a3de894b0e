package osbtest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// DefaultCredentialSeed is the credential seed of a broker whose Config
// leaves CredentialSeed empty.
const DefaultCredentialSeed = "osbtest"

// DefaultCredentials returns the credentials a broker with the given seed
// hands out for binding bindingID of instance instanceID when no Behavior
// overrides them. They are deterministic (the same inputs give the same
// values, so tests can predict them) but look random, and they mix value
// types — a number, a bool, an array, a nested object — so that credential
// encoding (one Secret key per credential, non-strings as JSON) is exercised:
//
//	{"uri": "postgres://u-…:…@db.osbtest.invalid:5432/db_…", "username": "u-…",
//	 "password": "…", "host": "db.osbtest.invalid", "port": 5432,
//	 "hosts": ["db-0.osbtest.invalid", "db-1.osbtest.invalid"],
//	 "database": "db_…", "ssl": true, "options": {"sslmode": "require"}}
//
// Numbers are float64, as encoding/json decodes them, so the result compares
// equal to what a client decodes.
func DefaultCredentials(seed, instanceID, bindingID string) map[string]any {
	if seed == "" {
		seed = DefaultCredentialSeed
	}
	h := func(parts ...string) string {
		sum := sha256.New()
		for _, p := range parts {
			sum.Write([]byte(p))
			sum.Write([]byte{0})
		}
		return hex.EncodeToString(sum.Sum(nil))
	}
	user := "u-" + h(seed, "user", instanceID, bindingID)[:12]
	pass := h(seed, "password", instanceID, bindingID)[:32]
	db := "db_" + h(seed, "database", instanceID)[:10]
	const host = "db.osbtest.invalid"
	return map[string]any{
		"uri":      "postgres://" + user + ":" + pass + "@" + host + ":5432/" + db,
		"username": user,
		"password": pass,
		"host":     host,
		"port":     float64(5432),
		"hosts":    []any{"db-0.osbtest.invalid", "db-1.osbtest.invalid"},
		"database": db,
		"ssl":      true,
		"options":  map[string]any{"sslmode": "require"},
	}
}

// normalizeMap returns a deep copy of m in the form encoding/json decodes
// into (numbers float64, slices []any, objects map[string]any); nil stays
// nil. Values that cannot be encoded are dropped.
func normalizeMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return map[string]any{}
	}
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return out
}

// copyValue deep-copies a JSON-like value.
func copyValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		return copyMap(t)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = copyValue(e)
		}
		return out
	}
	return v
}

// copyMap deep-copies a JSON-like object (nil stays nil).
func copyMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = copyValue(v)
	}
	return out
}
