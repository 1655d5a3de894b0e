package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// SpecHash is the hex sha256 of the canonical JSON of an object's kind and
// defaulted spec (plus its deletion policy). The status record keeps the
// hash of the spec last acted on, so a Failed resource is retried only when
// its manifest changes, and metadata-only edits (labels, comments, moving
// the file) do not count as changes.
func SpecHash(o Object) (string, error) {
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

// BrokerSpecHash is the hex sha256 of the parts of a broker spec that decide
// what catalog the broker returns and how it is reached: url, authInfo,
// caBundle, insecureSkipTLSVerify and catalogRestrictions. The relist fields
// are left out (relistRequests is compared on its own, and changing
// relistDuration must not force a relist). A catalog record fetched with a
// different hash is stale.
func BrokerSpecHash(b Broker) (string, error) {
	s := b.GetBrokerSpec()
	return hashJSON(struct {
		URL                   string               `json:"url"`
		AuthInfo              *BrokerAuthInfo      `json:"authInfo,omitempty"`
		CABundle              []byte               `json:"caBundle,omitempty"`
		InsecureSkipTLSVerify bool                 `json:"insecureSkipTLSVerify,omitempty"`
		CatalogRestrictions   *CatalogRestrictions `json:"catalogRestrictions,omitempty"`
	}{s.URL, s.AuthInfo, s.CABundle, s.InsecureSkipTLSVerify, s.CatalogRestrictions})
}

func hashJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("hash: %w", err)
	}
	c, err := CanonicalJSON(b)
	if err != nil {
		return "", fmt.Errorf("hash: %w", err)
	}
	sum := sha256.Sum256(c)
	return hex.EncodeToString(sum[:]), nil
}
