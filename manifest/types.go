// Package manifest holds the Go types of the manifest kinds osbgit reads from
// Git (Kubernetes Service Catalog servicecatalog.k8s.io/v1beta1 style plus the
// osbgit.dev/v1alpha1 Config), the loader that decodes them from any io/fs
// tree with file:line diagnostics, offline and catalog-aware validation, and
// the formats of the status and catalog records osbgit commits under .osbgit/.
//
// The package never calls the network: catalogs and secret values are passed
// in by the caller.
package manifest

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// APIVersion is the apiVersion of the broker, instance and binding kinds. It
// is Service Catalog's, so manifests written for it load unchanged.
const APIVersion = "servicecatalog.k8s.io/v1beta1"

// ConfigAPIVersion is the apiVersion of osbgit's own kinds (Config, records).
const ConfigAPIVersion = "osbgit.dev/v1alpha1"

// Kind names a manifest kind. It is the value of a document's "kind" field.
type Kind string

// The manifest kinds osbgit understands.
const (
	KindClusterServiceBroker Kind = "ClusterServiceBroker"
	KindServiceBroker        Kind = "ServiceBroker"
	KindServiceInstance      Kind = "ServiceInstance"
	KindServiceBinding       Kind = "ServiceBinding"
	// KindConfig is the repo configuration in osbgit.yaml (ConfigAPIVersion).
	KindConfig Kind = "Config"
)

// ClusterScoped reports whether objects of kind k have no namespace.
func (k Kind) ClusterScoped() bool { return k == KindClusterServiceBroker || k == KindConfig }

// Ref identifies one manifest object: kind, namespace and name. Cluster-scoped
// kinds (ClusterServiceBroker) have an empty Namespace. After Assemble every
// namespaced object has a non-empty Namespace (defaulted), so a Ref is a
// stable map key across passes.
type Ref struct {
	Kind      Kind   `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// String renders the ref for messages: "ServiceInstance default/db" or
// "ClusterServiceBroker ups-broker".
func (r Ref) String() string {
	if r.Namespace == "" {
		return string(r.Kind) + " " + r.Name
	}
	return string(r.Kind) + " " + r.Namespace + "/" + r.Name
}

// Less orders refs by kind, namespace, then name; Set and Diagnostics use it
// for deterministic output.
func (r Ref) Less(o Ref) bool {
	if r.Kind != o.Kind {
		return kindOrder(r.Kind) < kindOrder(o.Kind)
	}
	if r.Namespace != o.Namespace {
		return r.Namespace < o.Namespace
	}
	return r.Name < o.Name
}

// kindOrder puts dependencies first: brokers, then instances, then bindings.
func kindOrder(k Kind) int {
	switch k {
	case KindConfig:
		return 0
	case KindClusterServiceBroker:
		return 1
	case KindServiceBroker:
		return 2
	case KindServiceInstance:
		return 3
	case KindServiceBinding:
		return 4
	}
	return 5
}

// Source is where a decoded object came from: the file path (slash separated,
// relative to the root of the fs.FS it was loaded from) and the 1-based line
// of the document start (for a List item, the item's line).
type Source struct {
	File string `json:"file"`
	Line int    `json:"line"`
	// Blob is the Git blob hash of File at the revision read ("" for a
	// working tree): old values of a changed resource are read from the
	// blob its record says was last applied (StatusRecord.Applied).
	Blob string `json:"blob,omitempty"`
}

// SetBlob records, on objects DecodeFile just returned (not yet shared),
// the Git blob they were decoded from.
func SetBlob(objs []Object, blob string) {
	for _, o := range objs {
		o.objBase().Source.Blob = blob
	}
}

// String renders "file:line".
func (s Source) String() string { return fmt.Sprintf("%s:%d", s.File, s.Line) }

// Annotations osbgit reads on instances and bindings.
const (
	// AnnotationDeletionPolicy set to DeletionPolicyRetain makes removing the
	// manifest forget the resource instead of deprovisioning/unbinding it
	// (like `svcat deprovision --abandon`).
	AnnotationDeletionPolicy = "osbgit.dev/deletion-policy"
	// DeletionPolicyRetain keeps the broker resource when its manifest goes.
	DeletionPolicyRetain = "Retain"
	// DeletionPolicyDelete is the default: a removed manifest is deleted at
	// the broker (when prune is on).
	DeletionPolicyDelete = "Delete"
)

// Object is implemented by every decoded manifest kind (pointer receivers):
// *ClusterServiceBroker, *ServiceBroker, *ServiceInstance, *ServiceBinding.
// Objects returned by DecodeFile may be cached and shared between passes, so
// callers must treat them as immutable; Assemble copies before defaulting.
type Object interface {
	// GetRef is the object's kind/namespace/name (namespace as defaulted by
	// Assemble, or as written for objects straight from DecodeFile).
	GetRef() Ref
	// GetSource is the file and line of the document.
	GetSource() Source
	// GetMetadata is the object's metadata.
	GetMetadata() *metav1.ObjectMeta
	// FieldLine returns the line of a field path such as
	// "spec.parameters.size" or "spec.secretTransforms[0].addKey", falling
	// back to the nearest enclosing field, then the document start.
	FieldLine(path string) int

	// shallowCopy returns a copy that can be defaulted without touching the
	// original.
	shallowCopy() Object
	objBase() *objectBase
	setRefNamespace(ns string)
}

// objectBase carries what every decoded object has besides its API fields:
// where it came from and the line of each field path.
type objectBase struct {
	// Source is the file and document-start line of the object.
	Source Source `json:"-"`
	lines  *fieldLines
	// decodeDiags are the problems found decoding this object; Assemble
	// reports them with the object's defaulted Ref.
	decodeDiags Diagnostics
	// badFields are the field paths that failed to decode (and were left
	// out), so validation does not pile follow-up errors on them.
	badFields map[string]bool
	// partial marks an object whose document was too large or deep to
	// decode: only its kind, name and namespace are known. It is kept so
	// the resource is not mistaken for deleted; validation skips it.
	partial bool
	// specHash is SpecHash of the object as it is (see there); "" when
	// not taken.
	specHash string
}

// GetSource implements Object.
func (b *objectBase) GetSource() Source { return b.Source }

func (b *objectBase) objBase() *objectBase { return b }

// FieldLine implements Object.
func (b *objectBase) FieldLine(path string) int {
	if b.lines != nil {
		if l := b.lines.lookup(path); l > 0 {
			return l
		}
	}
	return b.Source.Line
}

// ObjectReference (namespace + name) is declared in secrettransform.go.

// LocalObjectReference names an object in the referrer's namespace.
type LocalObjectReference struct {
	Name string `json:"name"`
}

// SecretKeyReference names one key of a Secret in the referrer's namespace.
type SecretKeyReference struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// ParametersFromSource is one entry of spec.parametersFrom: the value of the
// referenced Secret key must be a JSON object, whose top-level keys are merged
// into the parameters (a key present twice across sources is an error).
type ParametersFromSource struct {
	SecretKeyRef *SecretKeyReference `json:"secretKeyRef,omitempty"`
}

// ---------------------------------------------------------------------------
// Brokers

// RelistBehavior says when a broker's catalog is fetched again.
type RelistBehavior string

// Relist behaviours (Service Catalog's).
const (
	// RelistDuration relists every spec.relistDuration (default 15m).
	RelistDuration RelistBehavior = "Duration"
	// RelistManual relists only when the broker spec or relistRequests change.
	RelistManual RelistBehavior = "Manual"
)

// DefaultRelistDuration is the relistDuration applied when none is given.
const DefaultRelistDuration = "15m"

// BrokerSpec is the spec of both ClusterServiceBroker and ServiceBroker.
type BrokerSpec struct {
	// URL is the broker's base URL (http or https, with a host).
	URL string `json:"url"`
	// AuthInfo says how to authenticate; nil means no authentication.
	AuthInfo *BrokerAuthInfo `json:"authInfo,omitempty"`
	// InsecureSkipTLSVerify disables TLS verification (discouraged).
	InsecureSkipTLSVerify bool `json:"insecureSkipTLSVerify,omitempty"`
	// CABundle is a PEM CA bundle (base64 in YAML) used to verify the
	// broker's certificate.
	CABundle []byte `json:"caBundle,omitempty"`
	// RelistBehavior is Duration (default) or Manual.
	RelistBehavior RelistBehavior `json:"relistBehavior,omitempty"`
	// RelistDuration is the relist period for RelistDuration; defaulted to
	// 15m by Assemble.
	RelistDuration *metav1.Duration `json:"relistDuration,omitempty"`
	// RelistRequests is a counter users bump to force a relist.
	RelistRequests int64 `json:"relistRequests,omitempty"`
	// CatalogRestrictions filter which services and plans of the broker's
	// catalog can be used (see ParseSelector for the syntax).
	CatalogRestrictions *CatalogRestrictions `json:"catalogRestrictions,omitempty"`
}

// BrokerAuthInfo is a union: exactly one of Basic or Bearer.
type BrokerAuthInfo struct {
	// Basic: the Secret holds keys "username" and "password".
	Basic *SecretAuthConfig `json:"basic,omitempty"`
	// Bearer: the Secret holds key "token".
	Bearer *SecretAuthConfig `json:"bearer,omitempty"`
}

// SecretRef is the Secret the broker authenticates with, and whether it
// holds a bearer token (else a username and password); nil when the
// broker names none. Nil-safe. The one choice both the client (which
// reads it) and the Secret check (which watches it) make.
func (ai *BrokerAuthInfo) SecretRef() (ref *ObjectReference, bearer bool) {
	switch {
	case ai == nil:
		return nil, false
	case ai.Basic != nil && ai.Basic.SecretRef != nil:
		return ai.Basic.SecretRef, false
	case ai.Bearer != nil && ai.Bearer.SecretRef != nil:
		return ai.Bearer.SecretRef, true
	}
	return nil, false
}

// SecretAuthConfig points at the Secret holding broker credentials. For a
// ClusterServiceBroker SecretRef.Namespace is required; for a ServiceBroker it
// is always the broker's own namespace (Assemble sets it, as Service Catalog
// did; another value is ignored with a warning).
type SecretAuthConfig struct {
	SecretRef *ObjectReference `json:"secretRef,omitempty"`
	// ignoredNamespace is a ServiceBroker's secretRef.namespace naming
	// another namespace. Service Catalog's type had no such field and
	// dropped it, reading the Secret from the broker's own namespace, so
	// osbgit does the same and Validate warns.
	ignoredNamespace string
}

// Secret keys read for broker authentication.
const (
	BasicAuthUsernameKey = "username"
	BasicAuthPasswordKey = "password"
	BearerTokenKey       = "token"
)

// CatalogRestrictions are Service Catalog's selector strings restricting which
// classes (services) and plans of a broker are usable, e.g.
// "spec.externalName in (mysql, redis)" or "spec.free==true". All selectors
// of a list must hold (AND).
type CatalogRestrictions struct {
	ServiceClass []string `json:"serviceClass,omitempty"`
	ServicePlan  []string `json:"servicePlan,omitempty"`
}

// ClusterServiceBroker is a cluster-scoped broker: its classes are usable by
// instances in every namespace through the clusterServiceClass… fields.
type ClusterServiceBroker struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              BrokerSpec `json:"spec"`
	objectBase        `json:"-"`
}

// ServiceBroker is a namespaced broker: its classes are usable by instances in
// its namespace through the serviceClass… fields.
type ServiceBroker struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              BrokerSpec `json:"spec"`
	objectBase        `json:"-"`
}

// Broker is implemented by *ClusterServiceBroker and *ServiceBroker.
type Broker interface {
	Object
	// GetBrokerSpec returns the (shared) broker spec.
	GetBrokerSpec() *BrokerSpec
}

// ---------------------------------------------------------------------------
// Instances

// PlanReference selects the class (OSB service) and plan of an instance. Exactly
// one form is used, its class and plan fields together:
//
//   - clusterServiceClassExternalName + clusterServicePlanExternalName: the
//     catalog's service name and plan name (cluster brokers)
//   - clusterServiceClassExternalID + clusterServicePlanExternalID: the
//     catalog's service id and plan id
//   - clusterServiceClassName + clusterServicePlanName: Service Catalog's
//     Kubernetes object names, which it derived from the external IDs (see
//     K8sNameForExternalID)
//   - serviceClass… / servicePlan… : the same three forms for namespaced
//     ServiceBrokers in the instance's namespace.
//
// As in Service Catalog the plan field may be omitted when the class has
// exactly one plan (checked against the catalog).
type PlanReference struct {
	ClusterServiceClassExternalName string `json:"clusterServiceClassExternalName,omitempty"`
	ClusterServicePlanExternalName  string `json:"clusterServicePlanExternalName,omitempty"`
	ClusterServiceClassExternalID   string `json:"clusterServiceClassExternalID,omitempty"`
	ClusterServicePlanExternalID    string `json:"clusterServicePlanExternalID,omitempty"`
	ClusterServiceClassName         string `json:"clusterServiceClassName,omitempty"`
	ClusterServicePlanName          string `json:"clusterServicePlanName,omitempty"`
	ServiceClassExternalName        string `json:"serviceClassExternalName,omitempty"`
	ServicePlanExternalName         string `json:"servicePlanExternalName,omitempty"`
	ServiceClassExternalID          string `json:"serviceClassExternalID,omitempty"`
	ServicePlanExternalID           string `json:"servicePlanExternalID,omitempty"`
	ServiceClassName                string `json:"serviceClassName,omitempty"`
	ServicePlanName                 string `json:"servicePlanName,omitempty"`
}

// ServiceInstanceSpec is the desired state of an instance. Server-set fields
// of Service Catalog (userInfo, clusterServiceClassRef, clusterServicePlanRef,
// serviceClassRef, servicePlanRef) are accepted by the loader and dropped.
type ServiceInstanceSpec struct {
	PlanReference `json:",inline"`

	// ClusterServiceBrokerName pins the cluster broker whose catalog the class
	// is resolved in (osbgit extension): needed when two brokers offer a
	// class of the same name.
	ClusterServiceBrokerName string `json:"clusterServiceBrokerName,omitempty"`
	// ServiceBrokerName pins a namespaced broker in the instance's namespace.
	ServiceBrokerName string `json:"serviceBrokerName,omitempty"`

	// Parameters is an arbitrary JSON object sent to the broker. Numbers are
	// json.Number so that they round-trip exactly.
	Parameters map[string]any `json:"parameters,omitempty"`
	// ParametersFrom merges JSON objects stored in Secrets into Parameters.
	ParametersFrom []ParametersFromSource `json:"parametersFrom,omitempty"`
	// ExternalID is the OSB instance_id to use; empty means osbgit generates
	// one (and records it write-ahead in the status record).
	ExternalID string `json:"externalID,omitempty"`
	// UpdateRequests is a counter users bump to force an update (e.g. after
	// a parametersFrom Secret changed).
	UpdateRequests int64 `json:"updateRequests,omitempty"`
}

// ServiceInstance is a provisioned (or to be provisioned) service instance.
type ServiceInstance struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ServiceInstanceSpec `json:"spec"`
	objectBase        `json:"-"`
}

// ---------------------------------------------------------------------------
// Bindings

// ServiceBindingSpec is the desired state of a binding. Service Catalog's
// server-set spec.userInfo is accepted by the loader and dropped.
type ServiceBindingSpec struct {
	// InstanceRef names the ServiceInstance (same namespace) to bind to.
	InstanceRef LocalObjectReference `json:"instanceRef"`
	// SecretName is the Secret receiving the credentials; Assemble defaults
	// it to metadata.name.
	SecretName string `json:"secretName,omitempty"`
	// Parameters is an arbitrary JSON object sent with the bind request.
	Parameters map[string]any `json:"parameters,omitempty"`
	// ParametersFrom merges JSON objects stored in Secrets into Parameters.
	ParametersFrom []ParametersFromSource `json:"parametersFrom,omitempty"`
	// ExternalID is the OSB binding_id; empty means osbgit generates one.
	ExternalID string `json:"externalID,omitempty"`
	// SecretTransforms are applied in order to the returned credentials
	// before they are written to the Secret.
	SecretTransforms []SecretTransform `json:"secretTransforms,omitempty"`
}

// ServiceBinding is a binding of a ServiceInstance whose credentials go to a
// Secret.
type ServiceBinding struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ServiceBindingSpec `json:"spec"`
	objectBase        `json:"-"`
}

// ---------------------------------------------------------------------------
// Object plumbing

// GetRef implements Object.
func (o *ClusterServiceBroker) GetRef() Ref {
	return Ref{Kind: KindClusterServiceBroker, Name: o.Name}
}

// GetRef implements Object.
func (o *ServiceBroker) GetRef() Ref {
	return Ref{Kind: KindServiceBroker, Namespace: o.Namespace, Name: o.Name}
}

// GetRef implements Object.
func (o *ServiceInstance) GetRef() Ref {
	return Ref{Kind: KindServiceInstance, Namespace: o.Namespace, Name: o.Name}
}

// GetRef implements Object.
func (o *ServiceBinding) GetRef() Ref {
	return Ref{Kind: KindServiceBinding, Namespace: o.Namespace, Name: o.Name}
}

// GetMetadata implements Object.
func (o *ClusterServiceBroker) GetMetadata() *metav1.ObjectMeta { return &o.ObjectMeta }

// GetMetadata implements Object.
func (o *ServiceBroker) GetMetadata() *metav1.ObjectMeta { return &o.ObjectMeta }

// GetMetadata implements Object.
func (o *ServiceInstance) GetMetadata() *metav1.ObjectMeta { return &o.ObjectMeta }

// GetMetadata implements Object.
func (o *ServiceBinding) GetMetadata() *metav1.ObjectMeta { return &o.ObjectMeta }

// GetBrokerSpec implements Broker.
func (o *ClusterServiceBroker) GetBrokerSpec() *BrokerSpec { return &o.Spec }

// GetBrokerSpec implements Broker.
func (o *ServiceBroker) GetBrokerSpec() *BrokerSpec { return &o.Spec }

func (o *ClusterServiceBroker) shallowCopy() Object { c := *o; return &c }
func (o *ServiceBroker) shallowCopy() Object        { c := *o; return &c }
func (o *ServiceInstance) shallowCopy() Object      { c := *o; return &c }
func (o *ServiceBinding) shallowCopy() Object       { c := *o; return &c }

func (o *ClusterServiceBroker) setRefNamespace(string) { o.Namespace = "" }
func (o *ServiceBroker) setRefNamespace(ns string)     { o.Namespace = ns }
func (o *ServiceInstance) setRefNamespace(ns string)   { o.Namespace = ns }
func (o *ServiceBinding) setRefNamespace(ns string)    { o.Namespace = ns }

// DeletionPolicy returns the object's osbgit.dev/deletion-policy annotation,
// DeletionPolicyDelete when absent.
func DeletionPolicy(o Object) string {
	if v, ok := o.GetMetadata().Annotations[AnnotationDeletionPolicy]; ok && v != "" {
		return v
	}
	return DeletionPolicyDelete
}

// PinnedBroker returns the broker an instance pins with
// clusterServiceBrokerName or serviceBrokerName, and false when none.
func (o *ServiceInstance) PinnedBroker() (Ref, bool) {
	switch {
	case o.Spec.ClusterServiceBrokerName != "":
		return Ref{Kind: KindClusterServiceBroker, Name: o.Spec.ClusterServiceBrokerName}, true
	case o.Spec.ServiceBrokerName != "":
		return Ref{Kind: KindServiceBroker, Namespace: o.Namespace, Name: o.Spec.ServiceBrokerName}, true
	}
	return Ref{}, false
}

// InstanceRef returns the Ref of the instance a binding points to.
func (o *ServiceBinding) InstanceRef() Ref {
	return Ref{Kind: KindServiceInstance, Namespace: o.Namespace, Name: o.Spec.InstanceRef.Name}
}

// ---------------------------------------------------------------------------
// Config

// ConfigFileName is the repo config file, read from the root of the tree.
const ConfigFileName = "osbgit.yaml"

// Config is the repo configuration in osbgit.yaml (apiVersion
// osbgit.dev/v1alpha1, kind Config). Every field is optional; DecodeConfig
// applies the defaults below for fields that are absent, and command-line
// flags override.
type Config struct {
	metav1.TypeMeta `json:",inline"`
	// ClusterID is sent as context.clusterid; empty lets the reconciler
	// derive one.
	ClusterID string `json:"clusterID,omitempty"`
	// Path is the directory (relative to the repo root) holding manifests;
	// default "." (the whole repo).
	Path string `json:"path,omitempty"`
	// Prune allows deleting resources whose manifest is gone; default false.
	Prune bool `json:"prune,omitempty"`
	// MaxDeletions caps deletions per pass; default 10. 0 forbids deletions.
	MaxDeletions int `json:"maxDeletions"`
	// StatusBranch is where .osbgit/ records are committed; empty means the
	// reconciled branch itself.
	StatusBranch string `json:"statusBranch,omitempty"`
	// CommitAuthor is the author of status commits.
	CommitAuthor CommitAuthor `json:"commitAuthor"`
	// CommitMessageTemplate is a text/template for status commit messages;
	// the default ends with a "[skip ci]" trailer so CI does not loop.
	CommitMessageTemplate string `json:"commitMessageTemplate,omitempty"`
	// Concurrency is the per-broker limit of concurrent calls; default 8.
	Concurrency int `json:"concurrency"`
	// DriftCheckInterval is how often resources are compared with the broker
	// (GET instance/binding where retrievable); 0 (the default) disables it.
	DriftCheckInterval metav1.Duration `json:"driftCheckInterval"`
	// DefaultNamespace is the namespace of namespaced objects whose
	// metadata.namespace is empty; default "default".
	DefaultNamespace string `json:"defaultNamespace,omitempty"`

	objectBase `json:"-"`
}

// CommitAuthor is the Git identity of status commits.
type CommitAuthor struct {
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
}

// Config defaults.
const (
	DefaultMaxDeletions          = 10
	DefaultConcurrency           = 8
	DefaultNamespace             = "default"
	DefaultCommitAuthorName      = "osbgit"
	DefaultCommitAuthorEmail     = "osbgit@noreply.osbgit.dev"
	DefaultCommitMessageTemplate = "osbgit: {{.Summary}}\n\n[skip ci]"
)

// DefaultConfig returns the configuration used when osbgit.yaml is absent.
func DefaultConfig() *Config {
	return &Config{
		TypeMeta:              metav1.TypeMeta{APIVersion: ConfigAPIVersion, Kind: string(KindConfig)},
		Path:                  ".",
		MaxDeletions:          DefaultMaxDeletions,
		CommitAuthor:          CommitAuthor{Name: DefaultCommitAuthorName, Email: DefaultCommitAuthorEmail},
		CommitMessageTemplate: DefaultCommitMessageTemplate,
		Concurrency:           DefaultConcurrency,
		DefaultNamespace:      DefaultNamespace,
	}
}

// NamespaceOrDefault returns ns, or the configured default namespace when ns
// is empty. A nil Config means DefaultConfig.
func (c *Config) NamespaceOrDefault(ns string) string {
	if ns != "" {
		return ns
	}
	if c != nil && c.DefaultNamespace != "" {
		return c.DefaultNamespace
	}
	return DefaultNamespace
}
