package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/osbgit/osbgit/osbclient/osbwire"
)

// Record kinds (apiVersion ConfigAPIVersion) of the files under .osbgit/.
const (
	KindStatusRecord  = "StatusRecord"
	KindCatalogRecord = "CatalogRecord"
)

// Directories of the records, relative to the repo root.
const (
	RecordDir  = ".osbgit"
	StatusDir  = ".osbgit/status"
	CatalogDir = ".osbgit/catalog"
	// ClusterScopeDir is the namespace directory used for cluster-scoped
	// objects; "_" cannot start a Kubernetes namespace name, so it never
	// collides with one.
	ClusterScopeDir = "_cluster"
)

// MaxNameLength is the longest metadata.name osbgit accepts. Kubernetes
// allows 253 characters, but a resource's record is the file <name>.yaml,
// and a file name longer than 255 bytes makes every later git clone of the
// repository fail.
const MaxNameLength = 255 - len(".yaml")

// NameProblem says why name cannot be the metadata.name of a broker,
// instance or binding ("" when it can): it must be a DNS-1123 subdomain
// (Kubernetes' rule) of at most MaxNameLength characters. Validation
// refuses such names and StatusPath and CatalogPath refuse to build a path
// from them, so both agree on which resources can have a record.
func NameProblem(name string) string {
	var problems []string
	tooLong := len(name) > MaxNameLength
	if tooLong {
		problems = append(problems, fmt.Sprintf("must be no more than %d characters (osbgit records it in the file <name>.yaml, and a file name must fit in 255 bytes)", MaxNameLength))
	}
	for _, p := range validation.IsDNS1123Subdomain(name) {
		if tooLong && strings.HasPrefix(p, "must be no more than") {
			continue
		}
		problems = append(problems, p)
	}
	return strings.Join(problems, "; ")
}

// namespaceProblem says why ns cannot be a namespace ("" when it can).
func namespaceProblem(ns string) string {
	return strings.Join(validation.IsDNS1123Label(ns), "; ")
}

// ErrNoRecordPath is wrapped by the errors of StatusPath and CatalogPath:
// the ref is not one a valid manifest can have, so it has no record.
var ErrNoRecordPath = errors.New("no record path")

// Kinds that have status records and cached catalogs.
var (
	statusRecordKinds  = []Kind{KindClusterServiceBroker, KindServiceBroker, KindServiceInstance, KindServiceBinding}
	catalogRecordKinds = []Kind{KindClusterServiceBroker, KindServiceBroker}
)

// statusKindOf is the kind whose status records live in the kind
// directory dir ("" for none).
func statusKindOf(dir string) Kind {
	for _, k := range statusRecordKinds {
		if strings.ToLower(string(k)) == dir {
			return k
		}
	}
	return ""
}

// checkRecordRef reports why ref cannot have a record: a kind without
// records, a namespace where the kind has none (or none where it needs
// one), or a name or namespace validation refuses.
func checkRecordRef(ref Ref, kinds []Kind) error {
	if !slices.Contains(kinds, ref.Kind) {
		return fmt.Errorf("%w for %s: kind %q has none", ErrNoRecordPath, ref, ref.Kind)
	}
	switch {
	case ref.Kind.ClusterScoped() && ref.Namespace != "":
		return fmt.Errorf("%w for %s: %s is cluster-scoped", ErrNoRecordPath, ref, ref.Kind)
	case !ref.Kind.ClusterScoped():
		if msg := namespaceProblem(ref.Namespace); msg != "" {
			return fmt.Errorf("%w for %s: invalid namespace %q: %s", ErrNoRecordPath, ref, ref.Namespace, msg)
		}
	}
	if msg := NameProblem(ref.Name); msg != "" {
		return fmt.Errorf("%w for %s: invalid name %q: %s", ErrNoRecordPath, ref, ref.Name, msg)
	}
	return nil
}

// recordFile joins dir and the record file of ref's name, and checks the result
// is a clean path naming a file directly in dir. checkRecordRef already
// guarantees it; this is the last line should a name rule ever loosen.
func recordFile(ref Ref, dir string) (string, error) {
	p := dir + "/" + ref.Name + ".yaml"
	if path.Clean(p) != p || path.Dir(p) != dir || len(path.Base(p)) > 255 {
		return "", fmt.Errorf("%w for %s: %q is not a file of %s/", ErrNoRecordPath, ref, p, dir)
	}
	return p, nil
}

// RecordRoot is the directory (relative to the repo root) where one
// deployment keeps its status records (<root>/status/) and cached catalogs
// (<root>/catalog/). A repository served by one deployment uses
// LegacyRecordRoot, .osbgit itself; deployments sharing a repository each
// have a root of their own under it (gitrepo.RecordsDir of their cluster
// ID), so none reads, writes or prunes another's records.
type RecordRoot string

// LegacyRecordRoot is the root of a deployment without a cluster ID:
// .osbgit/status/ and .osbgit/catalog/, the layout osbgit always had.
const LegacyRecordRoot RecordRoot = RecordDir

// StatusDir is the directory of the root's status records.
func (root RecordRoot) StatusDir() string { return string(root) + "/status" }

// CatalogDir is the directory of the root's cached catalogs.
func (root RecordRoot) CatalogDir() string { return string(root) + "/catalog" }

// StatusPath is where the record of ref lives:
// .osbgit/status/<namespace or _cluster>/<lowercase kind>/<name>.yaml. It
// refuses (ErrNoRecordPath) a ref whose kind has no status record or whose
// namespace or name validation refuses, so a path it returns never leaves
// its own <namespace>/<kind>/ directory and always fits a file system;
// callers skip such a ref (validation has reported it).
func StatusPath(ref Ref) (string, error) { return LegacyRecordRoot.StatusPath(ref) }

// StatusPath is StatusPath under root: <root>/status/<namespace or
// _cluster>/<lowercase kind>/<name>.yaml.
func (root RecordRoot) StatusPath(ref Ref) (string, error) {
	if err := checkRecordRef(ref, statusRecordKinds); err != nil {
		return "", err
	}
	ns := ref.Namespace
	if ns == "" {
		ns = ClusterScopeDir
	}
	return recordFile(ref, root.StatusDir()+"/"+ns+"/"+strings.ToLower(string(ref.Kind)))
}

// CatalogPath is where the cached catalog of a broker lives:
// .osbgit/catalog/<name>.yaml for a ClusterServiceBroker and
// .osbgit/catalog/<namespace>/<name>.yaml for a ServiceBroker. Like
// StatusPath it refuses (ErrNoRecordPath) any other ref.
func CatalogPath(broker Ref) (string, error) { return LegacyRecordRoot.CatalogPath(broker) }

// CatalogPath is CatalogPath under root: <root>/catalog/[<namespace>/]<name>.yaml.
func (root RecordRoot) CatalogPath(broker Ref) (string, error) {
	if err := checkRecordRef(broker, catalogRecordKinds); err != nil {
		return "", err
	}
	if broker.Namespace == "" {
		return recordFile(broker, root.CatalogDir())
	}
	return recordFile(broker, root.CatalogDir()+"/"+broker.Namespace)
}

// RecordRefOf is the inverse of StatusPath and CatalogPath: the resource
// (status true) or broker (status false) whose record lives at p. ok is
// false for every other path, which osbgit never writes and never reads.
func RecordRefOf(p string) (ref Ref, status, ok bool) { return LegacyRecordRoot.RecordRefOf(p) }

// RecordRefOf is RecordRefOf under root: ok is false for a path outside
// root, such as another deployment's record.
func (root RecordRoot) RecordRefOf(p string) (ref Ref, status, ok bool) {
	rest, under := strings.CutPrefix(p, string(root)+"/")
	if !under {
		return Ref{}, false, false
	}
	parts := strings.Split(rest, "/")
	name, isYAML := strings.CutSuffix(parts[len(parts)-1], ".yaml")
	if !isYAML {
		return Ref{}, false, false
	}
	var want string
	var err error
	switch {
	case len(parts) == 4 && parts[0] == "status":
		ns := parts[1]
		if ns == ClusterScopeDir {
			ns = ""
		}
		ref, status = Ref{Kind: statusKindOf(parts[2]), Namespace: ns, Name: name}, true
		want, err = root.StatusPath(ref)
	case len(parts) == 2 && parts[0] == "catalog":
		ref = Ref{Kind: KindClusterServiceBroker, Name: name}
		want, err = root.CatalogPath(ref)
	case len(parts) == 3 && parts[0] == "catalog":
		ref = Ref{Kind: KindServiceBroker, Namespace: parts[1], Name: name}
		want, err = root.CatalogPath(ref)
	default:
		return Ref{}, false, false
	}
	if err != nil || want != p {
		return Ref{}, false, false
	}
	return ref, status, true
}

// Record is a file under .osbgit/: *StatusRecord or *CatalogRecord.
type Record interface {
	// RecordPath is the record's path relative to the repo root; an error
	// (ErrNoRecordPath) when its ref cannot have a record.
	RecordPath() (string, error)
	normalize()
}

// ---------------------------------------------------------------------------
// Status records

// Phase is where a resource is in osbgit's state machine. The planner decides
// from (manifest, record, catalog) and the executor resumes from it after a
// crash. For bindings Provisioning means "binding" and Deprovisioning
// "unbinding".
type Phase string

// Phases.
const (
	// PhasePending: write-ahead. The ExternalID (and InProgress target) is
	// reserved and committed, but the create call may or may not have been
	// made (a crash can happen right after the push). The next pass repeats
	// the create with the same ID; the broker's idempotency (200 for an
	// identical request) makes that safe.
	PhasePending Phase = "Pending"
	// PhaseProvisioning: the create was accepted asynchronously (202); poll
	// LastOperation.
	PhaseProvisioning Phase = "Provisioning"
	// PhaseUpdating: an update was accepted asynchronously; poll with
	// LastOperation.PlanID (the pre-update plan).
	PhaseUpdating Phase = "Updating"
	// PhaseReady: the broker holds the resource as recorded.
	PhaseReady Phase = "Ready"
	// PhaseFailed: the last operation failed terminally (Failed condition
	// says why). Retried only when the desired state changes (SpecHash,
	// ParameterChecksum, plan or UpdateRequests). Provisioned tells whether
	// the broker may still hold a resource.
	PhaseFailed Phase = "Failed"
	// PhaseDeprovisioning: a delete is in flight (async) or must be retried.
	PhaseDeprovisioning Phase = "Deprovisioning"
	// PhaseOrphanMitigation: a failed create may have left a resource at the
	// broker; a delete must be sent (and polled) before anything else.
	PhaseOrphanMitigation Phase = "OrphanMitigation"
)

// ConditionType is the type of a status condition.
type ConditionType string

// Condition types (Service Catalog's).
const (
	ConditionReady            ConditionType = "Ready"
	ConditionFailed           ConditionType = "Failed"
	ConditionOrphanMitigation ConditionType = "OrphanMitigation"
)

// ConditionStatus is True, False or Unknown.
type ConditionStatus string

// Condition statuses.
const (
	ConditionTrue    ConditionStatus = "True"
	ConditionFalse   ConditionStatus = "False"
	ConditionUnknown ConditionStatus = "Unknown"
)

// Condition is one aspect of a resource's state, as in Kubernetes.
type Condition struct {
	Type   ConditionType   `json:"type"`
	Status ConditionStatus `json:"status"`
	// Reason is a CamelCase machine-readable cause, e.g. ProvisionedSuccessfully.
	Reason string `json:"reason,omitempty"`
	// Message is for humans; never a credential.
	Message string `json:"message,omitempty"`
	// LastTransitionTime is when Status last changed (not when the condition
	// was last written): SetCondition keeps it so rewrites are byte-identical.
	LastTransitionTime metav1.Time `json:"lastTransitionTime"`
}

// SetCondition sets c in conds (replacing the condition of the same type) and
// returns the result sorted by type. LastTransitionTime is kept from the
// existing condition when Status is unchanged, else set to now (truncated to
// seconds, UTC), so re-recording an unchanged state changes no byte.
func SetCondition(conds []Condition, c Condition, now time.Time) []Condition {
	out := make([]Condition, 0, len(conds)+1)
	found := false
	for _, old := range conds {
		if old.Type != c.Type {
			out = append(out, old)
			continue
		}
		found = true
		if old.Status == c.Status && !old.LastTransitionTime.IsZero() {
			c.LastTransitionTime = old.LastTransitionTime
		} else {
			c.LastTransitionTime = metav1.NewTime(now.UTC().Truncate(time.Second))
		}
		out = append(out, c)
	}
	if !found {
		c.LastTransitionTime = metav1.NewTime(now.UTC().Truncate(time.Second))
		out = append(out, c)
	}
	sortConditions(out)
	return out
}

// RemoveCondition drops the condition of type t.
func RemoveCondition(conds []Condition, t ConditionType) []Condition {
	var out []Condition
	for _, c := range conds {
		if c.Type != t {
			out = append(out, c)
		}
	}
	return out
}

// FindCondition returns the condition of type t, or nil.
func FindCondition(conds []Condition, t ConditionType) *Condition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// IsConditionTrue reports whether the condition of type t has status True.
func IsConditionTrue(conds []Condition, t ConditionType) bool {
	c := FindCondition(conds, t)
	return c != nil && c.Status == ConditionTrue
}

func sortConditions(cs []Condition) {
	less := func(i, j int) bool { return cs[i].Type < cs[j].Type }
	if !sort.SliceIsSorted(cs, less) {
		sort.SliceStable(cs, less)
	}
}

// OperationType is the OSB operation a LastOperation describes.
type OperationType string

// Operation types.
const (
	OperationProvision   OperationType = "provision"
	OperationUpdate      OperationType = "update"
	OperationDeprovision OperationType = "deprovision"
	OperationBind        OperationType = "bind"
	OperationUnbind      OperationType = "unbind"
)

// OperationState mirrors OSB last_operation states.
type OperationState string

// Operation states.
const (
	OperationInProgress OperationState = "in progress"
	OperationSucceeded  OperationState = "succeeded"
	OperationFailed     OperationState = "failed"
)

// LastOperation is the last OSB operation started on the resource: enough to
// poll it after a restart, and to honour maximum_polling_duration.
type LastOperation struct {
	// Type is provision, update, deprovision, bind or unbind.
	Type OperationType `json:"type"`
	// State is "in progress" while it runs (AsyncOpInProgress is then true),
	// then succeeded or failed.
	State OperationState `json:"state,omitempty"`
	// Operation is the broker's opaque operation key from the 202 body; sent
	// back as ?operation= when polling.
	Operation string `json:"operation,omitempty"`
	// StartTime is when the operation was started (seconds, UTC); with the
	// plan's maximum_polling_duration it gives the polling deadline.
	StartTime metav1.Time `json:"startTime"`
	// ServiceID is the service_id sent (and to send when polling).
	ServiceID string `json:"serviceID,omitempty"`
	// PlanID is the plan_id used at the start: for an update the pre-update
	// plan, which is what last_operation polls must carry.
	PlanID string `json:"planID,omitempty"`
	// OrphanMitigation marks a delete sent to mitigate a possibly orphaned
	// create (it does not mean the user asked for a deletion).
	OrphanMitigation bool `json:"orphanMitigation,omitempty"`
}

// Properties describe a provisioned (or targeted) plan and parameters.
type Properties struct {
	ClassExternalName string `json:"classExternalName,omitempty"`
	ClassExternalID   string `json:"classExternalID,omitempty"`
	PlanExternalName  string `json:"planExternalName,omitempty"`
	PlanExternalID    string `json:"planExternalID,omitempty"`
	// ParameterChecksum is ParameterChecksum() of the resolved parameters
	// (parametersFrom included) sent or to send.
	ParameterChecksum string `json:"parameterChecksum,omitempty"`
	// UpdateRequests is the manifest's updateRequests the state corresponds to.
	UpdateRequests int64 `json:"updateRequests,omitempty"`
}

// SecretRef says where a binding's credentials were written (never the
// values): namespace, Secret name and the keys written, sorted.
type SecretRef struct {
	Namespace string   `json:"namespace,omitempty"`
	Name      string   `json:"name"`
	Keys      []string `json:"keys,omitempty"`
}

// RecordError is written on the record of a resource whose manifest is
// invalid (or that cannot be resolved against the catalog): the resource is
// left alone and the message says why.
type RecordError struct {
	Message string `json:"message"`
}

// StatusRecord is .osbgit/status/<ns>/<kind>/<name>.yaml: what Service
// Catalog kept in .status, for one instance or binding (brokers may have one
// too, holding only conditions). It never holds a credential.
//
// The planner compares it with the manifest and the catalog: e.g. no record
// → create (after writing a Pending record); Pending → repeat the create with
// the same ID; Provisioning/Updating/Deprovisioning/OrphanMitigation with
// AsyncOpInProgress → poll; Ready and Properties differ from the desired
// ones → update; manifest gone → delete (prune, maxDeletions,
// DeletionPolicy).
type StatusRecord struct {
	// APIVersion is osbgit.dev/v1alpha1.
	APIVersion string `json:"apiVersion"`
	// Kind is StatusRecord.
	Kind string `json:"kind"`
	// FormatVersion is RecordFormatVersion (see there); records read from
	// an older format have been upgraded to it.
	FormatVersion int `json:"formatVersion"`
	// Ref is the resource (kind/namespace/name); it matches the file path.
	Ref Ref `json:"ref"`
	// Phase is the state machine position (see Phase).
	Phase Phase `json:"phase,omitempty"`
	// ExternalID is the OSB instance_id or binding_id; written (write-ahead)
	// before the first call that uses it.
	ExternalID string `json:"externalID,omitempty"`
	// PredecessorExternalID (bindings) is the binding a rotation replaces
	// (OSB predecessor_binding_id): set, with the new binding's
	// ExternalID, before the rotation's bind is sent, and cleared once the
	// predecessor is unbound. While it is set the rotation is unfinished
	// (a crash, a failed or asynchronous unbind) and later passes finish
	// it, so the old binding and its credentials are never forgotten at
	// the broker.
	PredecessorExternalID string `json:"predecessorExternalID,omitempty"`
	// PredecessorOperation is the asynchronous unbind of
	// PredecessorExternalID the broker accepted: later passes poll it
	// instead of sending the DELETE again.
	PredecessorOperation *LastOperation `json:"predecessorOperation,omitempty"`
	// Broker is the broker the resource lives at.
	Broker Ref `json:"broker,omitzero"`
	// BrokerURL is the broker's URL when it last answered for the
	// resource: a different URL in the manifest means the broker moved,
	// and a 404 there is not taken for a lost resource.
	BrokerURL string `json:"brokerURL,omitempty"`
	// InstanceName (bindings) is the bound ServiceInstance in the same
	// namespace, kept so unbind-before-deprovision ordering works after
	// both manifests are gone.
	InstanceName string `json:"instanceName,omitempty"`
	// InstanceExternalID (bindings) is the instance_id of the bound instance.
	InstanceExternalID string `json:"instanceExternalID,omitempty"`
	// Properties is what the broker actually holds: class/plan (ids are the
	// service_id/plan_id for later calls, also for unbind) and the checksum
	// of the parameters sent. Empty until a create succeeded.
	Properties `json:",inline"`
	// InProgress is the target of the create or update in flight (or
	// reserved, in Pending): applied to Properties when it succeeds.
	InProgress *Properties `json:"inProgress,omitempty"`
	// Provisioned is true once the broker may hold the resource (a create
	// was sent and not known to have failed cleanly): deleting it then needs
	// a DELETE call; false means the record can simply be dropped.
	Provisioned bool `json:"provisioned,omitempty"`
	// DashboardURL is the instance's dashboard_url.
	DashboardURL string `json:"dashboardURL,omitempty"`
	// AsyncOpInProgress is true while LastOperation is being polled.
	AsyncOpInProgress bool `json:"asyncOpInProgress,omitempty"`
	// LastOperation is the last OSB operation started.
	LastOperation *LastOperation `json:"lastOperation,omitempty"`
	// Retry is set while the calls on the resource end without the
	// broker's verdict (5xx, 408, a timeout, a connection error, a
	// malformed answer, 422 ConcurrencyError): passes repeat the call from
	// Retry.At, even with the manifest unchanged. Nil after a verdict: a
	// failure then stays until the manifest changes (or, for a delete,
	// `osbgit retry`). An osbgit that does not know the field ignores it
	// and only retries less.
	Retry *Retry `json:"retry,omitempty"`
	// Lost is set when the broker answered 404 for the resource (to an
	// update, or to a bind against this instance): it no longer holds it
	// (restored from an old backup, or in-memory). The next pass
	// provisions it again with the same ID and binds its bindings again,
	// as for a drift GET answered 404; the create's write-ahead clears it.
	Lost *Lost `json:"lost,omitempty"`
	// Conditions are Ready, Failed and OrphanMitigation, sorted by type.
	Conditions []Condition `json:"conditions,omitempty"`
	// SpecHash is SpecHash() of the manifest last acted on: a Failed
	// resource is retried only when it changes.
	SpecHash string `json:"specHash,omitempty"`
	// SpecSource is where the manifest last acted on was (file, line, Git
	// blob), written with SpecHash.
	SpecSource *Source `json:"specSource,omitempty"`
	// Applied is SpecSource once the broker confirmed the action (a
	// create or update succeeded, or the resource was adopted): the
	// manifest whose plan and parameters the broker holds. Diffs read
	// the old values of a changed resource from this blob.
	Applied *Source `json:"applied,omitempty"`
	// DeletionPolicy is the manifest's osbgit.dev/deletion-policy when last
	// seen (Retain or empty), needed once the manifest is gone.
	DeletionPolicy string `json:"deletionPolicy,omitempty"`
	// SecretRef (bindings) is where the credentials were written.
	SecretRef *SecretRef `json:"secretRef,omitempty"`
	// ObservedRevision is the manifest commit the last action on this
	// resource was planned from. It is not bumped by passes that leave the
	// resource alone (that would rewrite every record on every commit).
	ObservedRevision string `json:"observedRevision,omitempty"`
	// Error is set while the manifest is invalid or unresolvable.
	Error *RecordError `json:"error,omitempty"`
}

// NewStatusRecord returns an empty record for ref with apiVersion, kind
// and format version set.
func NewStatusRecord(ref Ref) *StatusRecord {
	return &StatusRecord{APIVersion: ConfigAPIVersion, Kind: KindStatusRecord, FormatVersion: RecordFormatVersion, Ref: ref}
}

// RecordPath implements Record.
func (r *StatusRecord) RecordPath() (string, error) { return StatusPath(r.Ref) }

// normalize puts r in the form MarshalRecord writes. It writes nothing
// into a record that is already in that form (as UnmarshalRecord returns
// them), so records shared between passes may be marshalled concurrently.
func (r *StatusRecord) normalize() {
	setIfDiffers(&r.APIVersion, ConfigAPIVersion)
	setIfDiffers(&r.Kind, KindStatusRecord)
	setIfDiffers(&r.FormatVersion, RecordFormatVersion)
	sortConditions(r.Conditions)
	if r.SecretRef != nil && !sort.StringsAreSorted(r.SecretRef.Keys) {
		sort.Strings(r.SecretRef.Keys)
	}
	if r.LastOperation != nil {
		truncTime(&r.LastOperation.StartTime)
	}
	if r.PredecessorOperation != nil {
		truncTime(&r.PredecessorOperation.StartTime)
	}
	if r.Retry != nil {
		truncTime(&r.Retry.Since)
		truncTime(&r.Retry.At)
	}
	if r.Lost != nil {
		truncTime(&r.Lost.At)
	}
	for i := range r.Conditions {
		truncTime(&r.Conditions[i].LastTransitionTime)
	}
}

func setIfDiffers[T comparable](p *T, v T) {
	if *p != v {
		*p = v
	}
}

// Retry is when a call the broker gave no verdict on is repeated.
type Retry struct {
	// Since is when the first call of the series ended without a
	// verdict: the backoff grows with it.
	Since metav1.Time `json:"since"`
	// At is when the next attempt is due.
	At metav1.Time `json:"at"`
}

// Lost says how osbgit learned that the broker no longer holds a resource.
type Lost struct {
	// Call is the call the broker answered 404 ("update", "bind").
	Call string `json:"call"`
	// At is when it answered.
	At metav1.Time `json:"at"`
}

// RetryPending reports whether r has a retry due at some time (nil-safe).
func (r *StatusRecord) RetryPending() bool { return r != nil && r.Retry != nil && !r.Retry.At.IsZero() }

// truncTime makes *t whole seconds in UTC.
func truncTime(t *metav1.Time) {
	if !t.IsZero() && (t.Location() != time.UTC || t.Nanosecond() != 0) {
		*t = metav1.NewTime(t.UTC().Truncate(time.Second))
	}
}

// ---------------------------------------------------------------------------
// Catalog records

// Redacted replaces secret values (dashboard_client.secret) in records.
const Redacted = "REDACTED"

// CatalogRecord is .osbgit/catalog/…: the last catalog fetched from a broker.
// Writers should rewrite it only when Equivalent reports a change, so a relist
// returning the same catalog commits nothing.
type CatalogRecord struct {
	// APIVersion is osbgit.dev/v1alpha1.
	APIVersion string `json:"apiVersion"`
	// Kind is CatalogRecord.
	Kind string `json:"kind"`
	// FormatVersion is RecordFormatVersion, as in StatusRecord.
	FormatVersion int `json:"formatVersion"`
	// Broker is the ClusterServiceBroker or ServiceBroker.
	Broker Ref `json:"broker"`
	// FetchedAt is when this catalog content was fetched (seconds, UTC).
	FetchedAt metav1.Time `json:"fetchedAt"`
	// Hash is CatalogHash() of Catalog (after redaction).
	Hash string `json:"hash"`
	// BrokerSpecHash is BrokerSpecHash() of the broker spec the catalog was
	// fetched with: a different value forces a relist.
	BrokerSpecHash string `json:"brokerSpecHash,omitempty"`
	// RelistRequests is the spec.relistRequests observed at the fetch; a
	// higher value in the manifest forces a relist.
	RelistRequests int64 `json:"relistRequests,omitempty"`
	// Catalog is the catalog, every dashboard_client.secret replaced by
	// Redacted and JSON blobs (metadata, schemas) in canonical form.
	Catalog osbwire.Catalog `json:"catalog"`
}

// NewCatalogRecord builds the record of a freshly fetched catalog: it deep
// copies cat, redacts dashboard client secrets, canonicalizes JSON blobs and
// computes the hash. cat itself is not modified.
func NewCatalogRecord(broker Ref, cat osbwire.Catalog, fetchedAt time.Time, brokerSpecHash string, relistRequests int64) (*CatalogRecord, error) {
	c, err := redactCatalog(cat)
	if err != nil {
		return nil, fmt.Errorf("catalog of %s: %w", broker, err)
	}
	h, err := CatalogHash(c)
	if err != nil {
		return nil, fmt.Errorf("catalog of %s: %w", broker, err)
	}
	return &CatalogRecord{
		APIVersion:     ConfigAPIVersion,
		Kind:           KindCatalogRecord,
		FormatVersion:  RecordFormatVersion,
		Broker:         broker,
		FetchedAt:      metav1.NewTime(fetchedAt.UTC().Truncate(time.Second)),
		Hash:           h,
		BrokerSpecHash: brokerSpecHash,
		RelistRequests: relistRequests,
		Catalog:        c,
	}, nil
}

// Equivalent reports whether r and o hold the same catalog for the same
// broker spec and relistRequests, ignoring FetchedAt.
func (r *CatalogRecord) Equivalent(o *CatalogRecord) bool {
	return o != nil && r.Broker == o.Broker && r.Hash == o.Hash && r.BrokerSpecHash == o.BrokerSpecHash && r.RelistRequests == o.RelistRequests
}

// RecordPath implements Record.
func (r *CatalogRecord) RecordPath() (string, error) { return CatalogPath(r.Broker) }

// normalize is StatusRecord.normalize for a catalog record.
func (r *CatalogRecord) normalize() {
	setIfDiffers(&r.APIVersion, ConfigAPIVersion)
	setIfDiffers(&r.Kind, KindCatalogRecord)
	setIfDiffers(&r.FormatVersion, RecordFormatVersion)
	truncTime(&r.FetchedAt)
}

// redactCatalog deep-copies cat through JSON, blanks dashboard secrets and
// canonicalizes raw JSON fields.
func redactCatalog(cat osbwire.Catalog) (osbwire.Catalog, error) {
	b, err := json.Marshal(cat)
	if err != nil {
		return osbwire.Catalog{}, fmt.Errorf("encode: %w", err)
	}
	var c osbwire.Catalog
	if err := json.Unmarshal(b, &c); err != nil {
		return osbwire.Catalog{}, fmt.Errorf("copy: %w", err)
	}
	canon := func(r *json.RawMessage) error {
		if len(*r) == 0 {
			return nil
		}
		cb, err := CanonicalJSON(*r)
		if err != nil {
			return err
		}
		*r = cb
		return nil
	}
	for i := range c.Services {
		s := &c.Services[i]
		if s.DashboardClient != nil && s.DashboardClient.Secret != "" {
			s.DashboardClient.Secret = Redacted
		}
		if err := canon(&s.Metadata); err != nil {
			return c, fmt.Errorf("service %q metadata: %w", s.Name, err)
		}
		for j := range s.Plans {
			p := &s.Plans[j]
			if err := canon(&p.Metadata); err != nil {
				return c, fmt.Errorf("plan %q metadata: %w", p.Name, err)
			}
			if sc := p.Schemas; sc != nil {
				for _, ip := range []*osbwire.InputParametersSchema{schemaOf(sc, 0), schemaOf(sc, 1), schemaOf(sc, 2)} {
					if ip != nil {
						if err := canon(&ip.Parameters); err != nil {
							return c, fmt.Errorf("plan %q schema: %w", p.Name, err)
						}
					}
				}
			}
		}
	}
	return c, nil
}

// schemaOf returns instance create (0), instance update (1) or binding
// create (2) schema wrappers, nil when absent.
func schemaOf(s *osbwire.Schemas, which int) *osbwire.InputParametersSchema {
	if s == nil {
		return nil
	}
	switch which {
	case 0, 1:
		if s.ServiceInstance == nil {
			return nil
		}
		if which == 0 {
			return s.ServiceInstance.Create
		}
		return s.ServiceInstance.Update
	case 2:
		if s.ServiceBinding == nil {
			return nil
		}
		return s.ServiceBinding.Create
	}
	return nil
}

// CatalogHash is the hex sha256 of the canonical JSON of cat.
func CatalogHash(cat osbwire.Catalog) (string, error) { return hashJSON(cat) }

// ---------------------------------------------------------------------------
// Canonical JSON and checksums

// emptyParameterChecksum is the ParameterChecksum of no parameters, the
// most common (bindings seldom have any): hashJSON of an empty object
// (TestEmptyParameterChecksum).
const emptyParameterChecksum = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

// CanonicalJSON re-encodes a JSON document canonically: object keys sorted,
// no insignificant whitespace, numbers kept exactly as written (decoded with
// UseNumber), HTML characters not escaped. Equal JSON values give equal
// bytes, so hashes of it are stable.
func CanonicalJSON(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("canonical JSON: %w", err)
	}
	if len(bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n")) > 0 {
		return nil, errors.New("canonical JSON: data after the value")
	}
	return encodeCanonical(v)
}

// CanonicalValue is CanonicalJSON of v's JSON encoding. A value as
// encoding/json decodes JSON (maps, slices, strings, numbers, bools and
// nil: parameters) is encoded directly, which gives the same bytes without
// the decode; any other goes through json.Marshal and CanonicalJSON.
func CanonicalValue(v any) ([]byte, error) {
	if !decodedJSON(v) {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("canonical JSON: %w", err)
		}
		return CanonicalJSON(b)
	}
	return encodeCanonical(v)
}

// encodeCanonical encodes a decoded JSON value: object keys sorted (as
// encoding/json sorts map keys), HTML characters not escaped.
func encodeCanonical(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("canonical JSON: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// decodedJSON reports whether v holds only what encoding/json decodes JSON
// into (its strings are valid UTF-8: encoding/json writes an invalid byte
// as \ufffd, which the long way turns into the character itself).
func decodedJSON(v any) bool {
	switch t := v.(type) {
	case nil, bool, float64, json.Number:
		return true
	case string:
		return utf8.ValidString(t)
	case map[string]any:
		for k, e := range t {
			if !utf8.ValidString(k) || !decodedJSON(e) {
				return false
			}
		}
		return true
	case []any:
		for _, e := range t {
			if !decodedJSON(e) {
				return false
			}
		}
		return true
	}
	return false
}

// ParameterChecksum is the hex sha256 of the canonical JSON of params (the
// resolved parameters, parametersFrom included). Nil and empty parameters
// have the same checksum, since the broker sees no parameters in both cases.
func ParameterChecksum(params map[string]any) (string, error) {
	if len(params) == 0 {
		return emptyParameterChecksum, nil
	}
	sum, err := hashJSON(params)
	if err != nil {
		return "", fmt.Errorf("parameter checksum: %w", err)
	}
	return sum, nil
}
