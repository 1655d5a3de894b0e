package manifest

import (
	"crypto/sha1" //nolint:gosec // Git's object name, not a security measure
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// SpecHash is the hex sha256 of the canonical JSON of an object's kind and
// defaulted spec (plus its deletion policy). The status record keeps the
// hash of the spec last acted on, so a Failed resource is retried only when
// its manifest changes, and metadata-only edits (labels, comments, moving
// the file) do not count as changes.
//
// An object keeps the hash taken when it was decoded (or assembled with
// defaults): a pass hashes every object, and a long-running process's
// objects come from its decode cache unchanged, pass after pass (at
// 200,000 resources hashing was a third of a full pass's CPU).
func SpecHash(o Object) (string, error) {
	if h := o.objBase().specHash; h != "" {
		return h, nil
	}
	return specHash(o)
}

// keepSpecHash stores o's SpecHash in o (nothing when it fails: SpecHash
// then reports the error).
func keepSpecHash(o Object) {
	o.objBase().specHash, _ = specHash(o)
}

func specHash(o Object) (string, error) {
	var spec any
	switch v := o.(type) {
	case *ClusterServiceBroker:
		spec = v.Spec
	case *ServiceBroker:
		spec = v.Spec
	case *ServiceInstance:
		spec = v.Spec
	case *ServiceBinding:
		spec = v.Spec
	default:
		return "", fmt.Errorf("spec hash: unsupported object %T", o)
	}
	return hashJSON(struct {
		Kind           Kind   `json:"kind"`
		DeletionPolicy string `json:"deletionPolicy"`
		Spec           any    `json:"spec"`
	}{o.GetRef().Kind, DeletionPolicy(o), spec})
}

func hashJSON(v any) (string, error) {
	c, err := CanonicalValue(v)
	if err != nil {
		return "", fmt.Errorf("hash: %w", err)
	}
	sum := sha256.Sum256(c)
	return hex.EncodeToString(sum[:]), nil
}

// GitBlobHash is the Git object name of a blob holding data (what `git
// hash-object` prints), so a file read from a working tree can be compared
// with a blob recorded from a commit.
func GitBlobHash(data []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(data))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}
