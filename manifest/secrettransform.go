package manifest

// SecretTransform is one step of a ServiceBinding's spec.secretTransforms,
// as in Service Catalog v1beta1: exactly one field is set. Transforms are
// applied in order to the credentials a broker returned before they are
// written to the binding's Secret.
type SecretTransform struct {
	RenameKey   *RenameKeyTransform   `json:"renameKey,omitempty"`
	AddKey      *AddKeyTransform      `json:"addKey,omitempty"`
	AddKeysFrom *AddKeysFromTransform `json:"addKeysFrom,omitempty"`
	RemoveKey   *RemoveKeyTransform   `json:"removeKey,omitempty"`
}

// RenameKeyTransform renames credential key From to To.
type RenameKeyTransform struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// AddKeyTransform adds Key with a value given as bytes (Value, base64 in
// YAML), as a string (StringValue), or taken from the credentials with a
// JSONPath expression (JSONPathExpression, e.g. "{.host}:{.port}"). Exactly
// one of the three is set.
type AddKeyTransform struct {
	Key                string  `json:"key"`
	Value              []byte  `json:"value,omitempty"`
	StringValue        *string `json:"stringValue,omitempty"`
	JSONPathExpression *string `json:"jsonPathExpression,omitempty"`
}

// AddKeysFromTransform merges every key of another Secret into the
// credentials (keys already present are overwritten).
type AddKeysFromTransform struct {
	SecretRef *ObjectReference `json:"secretRef,omitempty"`
}

// RemoveKeyTransform drops Key from the credentials.
type RemoveKeyTransform struct {
	Key string `json:"key"`
}

// ObjectReference names an object, usually a Secret; an empty Namespace
// means the namespace of the referring resource.
type ObjectReference struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
}
