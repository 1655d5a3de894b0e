package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient/osbwire"
	"github.com/osbgit/osbgit/reconciler/internal/parallel"
)

// Input is everything the planner looks at. Build does no I/O: the caller
// reads the parametersFrom Secrets before (Secrets) and supplies IDs
// (NewID).
type Input struct {
	// Set holds the manifests at the planned revision; nil or empty means
	// "no manifests" (every recorded resource counts as removed, subject to
	// Options.Prune and Set.UnreadableFiles).
	Set *manifest.Set
	// Diagnostics are the load and validation diagnostics (offline and,
	// usually, ValidateWithCatalogs). A resource with an error diagnostic
	// is blocked (Step.Error); the others proceed.
	Diagnostics manifest.Diagnostics
	// Records are the status records under .osbgit/status, by resource.
	Records map[manifest.Ref]*manifest.StatusRecord
	// Catalogs are the brokers' catalogs (cached or freshly fetched), keyed
	// by manifest.CatalogKey.
	Catalogs manifest.Catalogs
	// Applied are the manifests last applied (StatusRecord.Applied) of
	// the resources whose manifest changed since: the old parameters a
	// change shows when no live GET told them.
	Applied map[manifest.Ref]manifest.Object
	// Observations are optional live GET results (instances_retrievable /
	// bindings_retrievable), used for drift detection and adoption.
	Observations map[manifest.Ref]Observation
	// Brokers say what the caller could learn from each broker this pass
	// (missing: it was reachable or not needed). A broker that could not
	// be asked and has no cached catalog leaves its resources undecided:
	// its step carries the error, so a diff never reports "in sync" blind.
	Brokers map[manifest.Ref]BrokerAccess
	// Secrets are the parametersFrom values, read by the caller for
	// the keys manifest.ParameterSecrets lists. A resource whose value
	// is missing or unreadable gets an error (or, with
	// Options.SecretsNotCompared, a warning); the others proceed.
	Secrets manifest.SecretValues
	// SecretDrift says which bound bindings' Secrets no longer hold what
	// osbgit wrote (deleted, or edited by someone), as the caller observed
	// them before planning; their credentials are restored from the broker.
	SecretDrift map[manifest.Ref]SecretDrift
	// NewID generates the OSB instance_id / binding_id of new resources.
	// Nil falls back to a deterministic name-based ID (DeterministicID).
	NewID func() string
	// Options are the pass's settings.
	Options Options
}

// Options are the settings that shape a plan.
type Options struct {
	// Prune allows deleting (deprovision / unbind) resources whose
	// manifest is gone. Off: they are listed as None with a warning.
	Prune bool
	// MaxDeletions caps the deletions one plan may start. 0 allows none
	// (the zero value is the safe one; callers pass Config.MaxDeletions,
	// which defaults to manifest.DefaultMaxDeletions = 10); a negative value
	// means unlimited. Only new deletions count: retries of a delete already
	// in flight (phase Deprovisioning, or a failed deprovision/unbind) do
	// not. Past the cap the whole plan is refused (Plan.Refused).
	MaxDeletions int
	// ClusterID is sent as context.clusterid.
	ClusterID string
	// Revision is the manifest commit planned from (Plan.Revision).
	Revision string
	// Now is the planning time; it only annotates reasons (a poll past its
	// deadline). Build never reads the clock.
	Now time.Time
	// ConfirmedBrokerMoves are brokers whose URL change an operator
	// confirmed: a resource recorded at the old URL that the new URL
	// answers 404 for is provisioned (bound) again there. Without the
	// confirmation it is refused: a moved broker is not a broker that lost
	// everything.
	ConfirmedBrokerMoves []manifest.Ref
	// SecretsNotCompared (diff --offline, usually without a secret store):
	// a parametersFrom Secret that cannot be read is a warning and the
	// parameters are taken as unchanged, instead of blocking the resource.
	// Never set for a plan that is executed.
	SecretsNotCompared bool
	// DefaultMaxPollingDuration is the platform's own polling limit. The
	// poll deadline is StartTime plus the smaller of this and the plan's
	// maximum_polling_duration (either alone when the other is 0; no
	// deadline when both are 0).
	DefaultMaxPollingDuration time.Duration
}

// Observation is the outcome of a live GET of one resource (fetch instance
// or fetch binding), made by the caller before planning when the broker's
// catalog says the resource is retrievable.
type Observation struct {
	// Instance is the 200 body of GET /v2/service_instances/:id.
	Instance *osbwire.GetInstanceResponse `json:"instance,omitempty"`
	// Binding is the 200 body of GET …/service_bindings/:id.
	Binding *osbwire.GetBindingResponse `json:"binding,omitempty"`
	// NotFound: the broker answered 404 (it does not hold the resource).
	NotFound bool `json:"notFound,omitempty"`
	// Err is a failed GET (anything but 200 / 404), shown as a warning.
	Err string `json:"err,omitempty"`
}

// SecretDrift is what became of a binding's Secret since osbgit wrote it.
type SecretDrift string

// The kinds of SecretDrift.
const (
	// SecretDeleted: the Secret is gone.
	SecretDeleted SecretDrift = "deleted"
	// SecretEdited: its keys or values differ from what osbgit wrote.
	SecretEdited SecretDrift = "edited"
)

// BrokerAccess is what the caller could learn from one broker this pass.
type BrokerAccess struct {
	// NotContacted says why the broker was deliberately not called
	// (offline; its URL or auth differ from the trusted branch's).
	NotContacted string `json:"notContacted,omitempty"`
	// CatalogError says why its catalog could not be fetched (the
	// broker is down, its auth Secret is missing, TLS failed, ...).
	CatalogError string `json:"catalogError,omitempty"`
	// Offline: no broker was called at all (diff --offline).
	Offline bool `json:"offline,omitempty"`
	// CatalogFetchedAt is when the catalog used was fetched (zero: none).
	CatalogFetchedAt time.Time `json:"catalogFetchedAt,omitzero"`
}

// unavailable says why the broker's catalog could not be had this pass
// ("" when it could).
func (a BrokerAccess) unavailable() string {
	switch {
	case a.NotContacted != "":
		return a.NotContacted
	case a.CatalogError != "":
		return "catalog not fetched: " + a.CatalogError
	case a.Offline:
		return "not contacted: offline"
	}
	return ""
}

// movedFrom returns the URL rec's resource was recorded at when its
// broker's URL has changed since ("" otherwise, or when unknown).
func (p *planner) movedFrom(rec *manifest.StatusRecord) string {
	b := p.set.Broker(rec.Broker)
	if b == nil || rec.BrokerURL == "" || rec.BrokerURL == b.GetBrokerSpec().URL {
		return ""
	}
	return rec.BrokerURL
}

// lostAtMovedBroker handles a resource the broker answered 404 for (live
// GET) after its URL changed: unless an operator confirmed the move, the
// step is blocked instead of creating the resource again at the new URL,
// and true is returned.
func (p *planner) lostAtMovedBroker(s *Step, rec *manifest.StatusRecord) bool {
	old := p.movedFrom(rec)
	if old == "" || slices.Contains(p.in.Options.ConfirmedBrokerMoves, rec.Broker) {
		return false
	}
	now := p.set.Broker(rec.Broker).GetBrokerSpec().URL
	s.Reason = "not found at the broker's new URL"
	s.Error = fmt.Sprintf("%s answers 404 for %s %s, which was created at %s: the broker's URL changed, and a moved broker is not one that lost everything. Check the broker; if %s is really gone, confirm with `osbgit sync --confirm-broker-move %s` to create it again there",
		now, strings.ToLower(string(s.Ref.Kind)), rec.ExternalID, old, rec.ExternalID, brokerArg(rec.Broker))
	return true
}

// lostBy says how the broker told that it no longer holds a resource it
// held ("" when it did not): a live GET answered 404 this pass, or an
// earlier call (manifest.Lost). Only records that claim a resource at the
// broker (Ready, or a failed update or re-bind) reach the callers.
func lostBy(rec *manifest.StatusRecord, obs Observation, hasObs bool) string {
	switch {
	case hasObs && obs.NotFound:
		return "live GET"
	case rec.Lost != nil:
		return "the " + rec.Lost.Call
	}
	return ""
}

// brokerArg names a broker as --confirm-broker-move takes it.
func brokerArg(ref manifest.Ref) string {
	if ref.Namespace != "" {
		return ref.Namespace + "/" + ref.Name
	}
	return ref.Name
}

// planner carries the state of one Build.
type planner struct {
	in      Input
	set     *manifest.Set
	errRefs map[manifest.Ref]bool
	steps   map[manifest.Ref]*Step
	// bindingsOf indexes the binding manifests by their instance.
	bindingsOf map[manifest.Ref][]manifest.Ref
	idSeq      int
	// newIDs holds the ExternalID newID generated for a resource.
	newIDs map[manifest.Ref]string
	// resolved holds every valid instance's and binding's resolved
	// parameters and spec hash, computed ahead in parallel (see
	// resolveAll).
	resolved map[manifest.Ref]*desiredParams
}

// Build computes the plan of one pass from its Input. It is pure and
// deterministic: the same Input (with a deterministic NewID) gives the same
// Plan. Every instance and binding that has a manifest or a record gets
// exactly one step, as does every broker in the manifests and every broker
// that records still point at. Steps are ordered brokers, instances,
// bindings (creates and updates), then bindings and instances being removed
// (unbind before deprovision); by ref within each group.
func Build(in Input) *Plan {
	p := &planner{
		in:      in,
		set:     in.Set,
		errRefs: in.Diagnostics.ErrorRefs(),
	}
	if p.set == nil {
		p.set = &manifest.Set{}
	}
	// Sized once: at 200,000 resources the planner's maps were a large
	// part of a pass's garbage, grown by copying.
	p.steps = make(map[manifest.Ref]*Step, len(p.set.Instances)+len(p.set.Bindings))
	p.bindingsOf = make(map[manifest.Ref][]manifest.Ref, len(p.set.Instances))
	for _, b := range p.set.Bindings {
		p.bindingsOf[b.InstanceRef()] = append(p.bindingsOf[b.InstanceRef()], b.GetRef())
	}
	p.resolveAll()
	insts, binds := p.resourceRefs()
	// Every step lives in one slice that becomes the plan's (p.steps
	// points into it until it is put in order): a second copy of 200,000
	// steps was 120 MB at the pass's peak. Room is left for the brokers.
	steps := make([]Step, 0, len(insts)+len(binds)+len(p.set.Brokers())+8)
	for _, ref := range insts {
		steps = append(steps, p.instance(ref, p.set.Instance(ref.Namespace, ref.Name), in.Records[ref]))
		p.steps[ref] = &steps[len(steps)-1]
	}
	for _, ref := range binds {
		var b *manifest.ServiceBinding
		if o, ok := p.set.Get(ref); ok {
			b, _ = o.(*manifest.ServiceBinding)
		}
		steps = append(steps, p.binding(ref, b, in.Records[ref]))
		p.steps[ref] = &steps[len(steps)-1]
	}
	resources := append(append([]manifest.Ref(nil), insts...), binds...)
	p.blockOnBrokers(resources)
	p.orderDeletes(insts, binds)
	brokers := p.brokers(resources)
	out := &Plan{Revision: in.Options.Revision, Diagnostics: in.Diagnostics}
	out.Refused = p.limitDeletions(resources)
	for _, ref := range brokers {
		steps = append(steps, *p.steps[ref])
	}
	p.steps = nil // pointers into steps, about to be reordered

	// Groups, in this order: brokers; instances; bindings; bindings being
	// removed; instances being removed; brokers being forgotten. Within a
	// group, steps keep the order they were planned in.
	group := func(s *Step) int {
		switch s.Ref.Kind {
		case manifest.KindServiceInstance:
			if isRemoval(s) {
				return 4
			}
			return 1
		case manifest.KindServiceBinding:
			if isRemoval(s) {
				return 3
			}
			return 2
		}
		if s.Action == Forget {
			return 5
		}
		return 0
	}
	var next [6]int
	groups := make([]uint8, len(steps))
	for i := range steps {
		s := &steps[i]
		p.fillMaxPolling(s)
		if b := p.set.Broker(s.Target.Broker); b != nil {
			s.Target.BrokerURL = b.GetBrokerSpec().URL
		}
		sortRefs(s.DependsOn)
		s.NewID = s.ExternalID != "" && p.newIDs[s.Ref] == s.ExternalID
		g := group(s)
		groups[i] = uint8(g)
		for h := g + 1; h < len(next); h++ {
			next[h]++
		}
	}
	// pos[i] is where steps[i] goes; each swap puts one step in place.
	pos := make([]int, len(steps))
	for i, g := range groups {
		pos[i] = next[g]
		next[g]++
	}
	for i := range steps {
		for pos[i] != i {
			j := pos[i]
			steps[i], steps[j] = steps[j], steps[i]
			pos[i], pos[j] = pos[j], pos[i]
		}
	}
	out.Steps = steps
	return out
}

// resolveAll resolves the parameters and spec hash of every instance and
// binding manifest without error diagnostics, on GOMAXPROCS goroutines:
// canonical JSON and hashing are most of a large plan's cost, and the rest
// of Build is sequential. Results are the same as computed in order.
func (p *planner) resolveAll() {
	var objs []manifest.Object
	for _, i := range p.set.Instances {
		if !p.errRefs[i.GetRef()] {
			objs = append(objs, i)
		}
	}
	for _, b := range p.set.Bindings {
		if !p.errRefs[b.GetRef()] {
			objs = append(objs, b)
		}
	}
	out := make([]desiredParams, len(objs))
	parallel.For(len(objs), func(i int) {
		switch o := objs[i].(type) {
		case *manifest.ServiceInstance:
			p.computeParams(&out[i], o, o.Spec.Parameters, o.Spec.ParametersFrom)
		case *manifest.ServiceBinding:
			p.computeParams(&out[i], o, o.Spec.Parameters, o.Spec.ParametersFrom)
		}
	})
	p.resolved = make(map[manifest.Ref]*desiredParams, len(objs))
	for i, o := range objs {
		p.resolved[o.GetRef()] = &out[i]
	}
}

// isRemoval reports whether a step belongs to the reverse part of the
// order: its manifest is gone, or it deletes.
func isRemoval(s *Step) bool {
	return s.Source == nil || s.Action == Delete || s.Action == OrphanMitigate
}

// resourceRefs returns the instance and binding refs that have a manifest
// or a record, sorted.
func (p *planner) resourceRefs() (insts, binds []manifest.Ref) {
	n := len(p.set.Instances) + len(p.set.Bindings)
	seen := make(map[manifest.Ref]bool, max(n, len(p.in.Records)))
	insts, binds = make([]manifest.Ref, 0, len(p.set.Instances)), make([]manifest.Ref, 0, len(p.set.Bindings))
	add := func(r manifest.Ref) {
		if seen[r] {
			return
		}
		seen[r] = true
		switch r.Kind {
		case manifest.KindServiceInstance:
			insts = append(insts, r)
		case manifest.KindServiceBinding:
			binds = append(binds, r)
		}
	}
	for _, i := range p.set.Instances {
		add(i.GetRef())
	}
	for _, b := range p.set.Bindings {
		add(b.GetRef())
	}
	for r := range p.in.Records {
		add(r)
	}
	sortRefs(insts)
	sortRefs(binds)
	return insts, binds
}

func sortRefs(refs []manifest.Ref) {
	sort.Slice(refs, func(i, j int) bool { return refs[i].Less(refs[j]) })
}

// ---------------------------------------------------------------------------
// Shared step builders

// newStep starts a step for ref with what the record and manifest give.
func newStep(ref manifest.Ref, o manifest.Object, rec *manifest.StatusRecord) Step {
	s := Step{Ref: ref, Action: None, Record: rec}
	if rec != nil {
		s.ExternalID = rec.ExternalID
		s.InstanceExternalID = rec.InstanceExternalID
		s.InstanceName = rec.InstanceName
		s.Target = recordTarget(rec)
		s.DeletionPolicy = rec.DeletionPolicy
		if sr := rec.SecretRef; sr != nil {
			s.SecretNamespace, s.SecretName = sr.Namespace, sr.Name
			if s.SecretNamespace == "" {
				s.SecretNamespace = ref.Namespace
			}
		}
	}
	if o != nil {
		src := o.GetSource()
		s.Source = &src
		s.DeletionPolicy = deletionPolicy(o)
		if b, ok := o.(*manifest.ServiceBinding); ok {
			s.InstanceName = b.Spec.InstanceRef.Name
		}
	}
	return s
}

// deletionPolicy is the object's deletion policy as records keep it:
// Retain, or empty for the default.
func deletionPolicy(o manifest.Object) string {
	if manifest.DeletionPolicy(o) == manifest.DeletionPolicyRetain {
		return manifest.DeletionPolicyRetain
	}
	return ""
}

// recordTarget is the broker-side identity a record says the resource has:
// the provisioned properties, else the in-progress target, else the last
// operation's ids.
func recordTarget(rec *manifest.StatusRecord) Target {
	t := Target{Broker: rec.Broker}
	pick := func(vals ...string) string {
		for _, v := range vals {
			if v != "" {
				return v
			}
		}
		return ""
	}
	var ip manifest.Properties
	if rec.InProgress != nil {
		ip = *rec.InProgress
	}
	var lo manifest.LastOperation
	if rec.LastOperation != nil {
		lo = *rec.LastOperation
	}
	t.ServiceID = pick(rec.ClassExternalID, ip.ClassExternalID, lo.ServiceID)
	t.PlanID = pick(rec.PlanExternalID, ip.PlanExternalID, lo.PlanID)
	t.ClassExternalName = pick(rec.ClassExternalName, ip.ClassExternalName)
	t.PlanExternalName = pick(rec.PlanExternalName, ip.PlanExternalName)
	return t
}

// resolvedTarget is the target of a resolved plan reference.
func resolvedTarget(res manifest.Resolved) Target {
	return Target{Broker: res.BrokerRef, ServiceID: res.Service.ID, PlanID: res.Plan.ID,
		ClassExternalName: res.Service.Name, PlanExternalName: res.Plan.Name}
}

// inFlight plans the steps that take precedence over anything the manifest
// asks: waiting for the retry time of a call the broker gave no verdict on,
// polling an async operation, and orphan mitigation. It reports
// whether it planned one. manifestErr (the manifest's errors, if any) is
// shown as a warning: in-flight operations are followed regardless.
func (p *planner) inFlight(s *Step, rec *manifest.StatusRecord, manifestErr string) bool {
	if rec == nil {
		return false
	}
	if _, wait := p.retryWait(rec); wait != "" {
		// The broker gave no verdict on the last call: nothing is sent
		// for this resource before the retry time (backoff), whatever
		// the manifest asks meanwhile.
		s.Reason = wait
		return true
	}
	switch {
	case rec.AsyncOpInProgress && rec.LastOperation != nil:
		op := *rec.LastOperation
		s.Action = Poll
		s.Operation = &op
		if op.ServiceID != "" {
			s.Target.ServiceID = op.ServiceID
		}
		if op.PlanID != "" {
			s.Target.PlanID = op.PlanID
		}
		if rec.InProgress != nil && (op.Type == manifest.OperationProvision || op.Type == manifest.OperationUpdate || op.Type == manifest.OperationBind) {
			d := *rec.InProgress
			s.Desired = &d
		}
		s.PollDeadline = p.pollDeadline(rec)
		var b strings.Builder
		if op.OrphanMitigation {
			b.WriteString("orphan mitigation " + string(op.Type) + " in progress")
		} else {
			b.WriteString(string(op.Type) + " in progress")
		}
		var detail []string
		if op.Operation != "" {
			detail = append(detail, fmt.Sprintf("operation %q", op.Operation))
		}
		if !op.StartTime.IsZero() {
			detail = append(detail, "started "+op.StartTime.UTC().Format(time.RFC3339))
		}
		if len(detail) > 0 {
			b.WriteString(" (" + strings.Join(detail, ", ") + ")")
		}
		if !s.PollDeadline.IsZero() && !p.in.Options.Now.IsZero() && p.in.Options.Now.After(s.PollDeadline) {
			b.WriteString("; polling deadline " + s.PollDeadline.Format(time.RFC3339) + " passed: the operation is failed unless this poll finds it done")
		}
		s.Reason = b.String()
	case rec.Phase == manifest.PhaseOrphanMitigation:
		s.Action = OrphanMitigate
		s.Reason = "orphan mitigation: a failed create may have left a resource at the broker"
		if c := manifest.FindCondition(rec.Conditions, manifest.ConditionOrphanMitigation); c != nil && c.Message != "" {
			s.Reason += " (" + c.Message + ")"
		}
	default:
		if rec.AsyncOpInProgress {
			s.Warnings = append(s.Warnings, "record says an async operation is in progress but has no lastOperation; ignored")
		}
		return false
	}
	if manifestErr != "" {
		s.Warnings = append(s.Warnings, "manifest has errors (acted on once the operation ends): "+manifestErr)
	}
	return true
}

// maxPolling is the polling limit of an operation on a plan: the smaller
// of the plan's maximum_polling_duration and the configured default (either
// alone when the other is 0; 0 = none).
func (p *planner) maxPolling(broker manifest.Ref, serviceID string, planIDs ...string) time.Duration {
	d := p.in.Options.DefaultMaxPollingDuration
	for _, id := range planIDs {
		if id == "" {
			continue
		}
		if _, pl, ok := p.catalogPlan(broker, serviceID, id); ok {
			if m := pl.MaxPollingDuration(); m > 0 && (d <= 0 || m < d) {
				d = m
			}
			break
		}
	}
	if d < 0 {
		return 0
	}
	return d
}

// fillMaxPolling sets MaxPollingDuration on the steps that may start an
// async operation.
func (p *planner) fillMaxPolling(s *Step) {
	switch s.Action {
	case Create, Update, Delete, OrphanMitigate:
		s.MaxPollingDuration = p.maxPolling(s.Target.Broker, "", s.Target.PlanID)
	}
}

// pollDeadline is StartTime plus the effective maximum polling duration.
func (p *planner) pollDeadline(rec *manifest.StatusRecord) time.Time {
	op := rec.LastOperation
	if op == nil || op.StartTime.IsZero() {
		return time.Time{}
	}
	var planIDs []string
	if rec.InProgress != nil {
		planIDs = append(planIDs, rec.InProgress.PlanExternalID)
	}
	planIDs = append(planIDs, rec.PlanExternalID, op.PlanID)
	d := p.maxPolling(rec.Broker, "", planIDs...)
	if d <= 0 {
		return time.Time{}
	}
	return op.StartTime.UTC().Add(d)
}

// catalogPlan finds a plan (and its service) by id in the broker's catalog.
// serviceID may be empty (any service).
func (p *planner) catalogPlan(broker manifest.Ref, serviceID, planID string) (osbwire.Service, osbwire.Plan, bool) {
	cat := p.in.Catalogs[manifest.CatalogKey(broker)]
	if cat == nil || planID == "" {
		return osbwire.Service{}, osbwire.Plan{}, false
	}
	for _, svc := range cat.Services {
		if serviceID != "" && svc.ID != serviceID {
			continue
		}
		for _, pl := range svc.Plans {
			if pl.ID == planID {
				return svc, pl, true
			}
		}
	}
	return osbwire.Service{}, osbwire.Plan{}, false
}

// hasCatalog reports whether a catalog of the broker is known.
func (p *planner) hasCatalog(broker manifest.Ref) bool {
	return p.in.Catalogs[manifest.CatalogKey(broker)] != nil
}

// diagErrors joins the error diagnostics of ref ("" when none).
func (p *planner) diagErrors(ref manifest.Ref) string {
	if !p.errRefs[ref] {
		return ""
	}
	var msgs []string
	for _, d := range p.in.Diagnostics.For(ref).Errors() {
		msgs = append(msgs, d.String())
	}
	return strings.Join(msgs, "; ")
}

// newID returns a fresh ExternalID for ref.
func (p *planner) newID(ref manifest.Ref) string {
	var id string
	if p.in.NewID != nil {
		id = p.in.NewID()
	} else {
		p.idSeq++
		id = DeterministicID(p.in.Options.ClusterID, p.in.Options.Revision, ref, p.idSeq)
	}
	if p.newIDs == nil {
		p.newIDs = map[manifest.Ref]string{}
	}
	p.newIDs[ref] = id
	return id
}

// DeterministicID is the ExternalID Build generates when Input.NewID is nil:
// a UUID-shaped (version 5 style) hash of the cluster ID, revision, resource
// and a per-plan counter. It is unique per resource and revision, so a
// write-ahead record keeps it stable across crashes anyway; real passes
// should still supply random IDs.
func DeterministicID(clusterID, revision string, ref manifest.Ref, seq int) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("osbgit\x00%s\x00%s\x00%s\x00%d", clusterID, revision, ref, seq)))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// kubeContext is the OSB context of a request about an instance.
func (p *planner) kubeContext(namespace, instanceName string) *osbwire.Context {
	return &osbwire.Context{Platform: osbwire.PlatformKubernetes, Namespace: namespace,
		ClusterID: p.in.Options.ClusterID, InstanceName: instanceName}
}

// failureMessage is the Failed condition's message (or a generic one).
func failureMessage(rec *manifest.StatusRecord) string {
	if c := manifest.FindCondition(rec.Conditions, manifest.ConditionFailed); c != nil && c.Message != "" {
		return c.Message
	}
	if rec.Error != nil && rec.Error.Message != "" {
		return rec.Error.Message
	}
	return "the last operation failed"
}

// failedOp names the failed operation of a record ("update", "bind", …).
func failedOp(rec *manifest.StatusRecord, fallback string) string {
	if rec.LastOperation != nil && rec.LastOperation.Type != "" {
		return string(rec.LastOperation.Type)
	}
	return fallback
}

// retryWait says where a Failed record stands on retrying with its
// manifest unchanged: due when its last call got no verdict from the
// broker (Retry, with backoff) and that time has come; otherwise wait
// says when it will be, or is empty when only a manifest change (or, for
// a delete, `osbgit retry`) retries it.
func (p *planner) retryWait(rec *manifest.StatusRecord) (due bool, wait string) {
	if !rec.RetryPending() {
		return false, ""
	}
	at := rec.Retry.At.Time
	if p.in.Options.Now.IsZero() || !p.in.Options.Now.Before(at) {
		return true, ""
	}
	return false, "the broker gave no verdict; retried at " + at.UTC().Format(time.RFC3339)
}

// retryReason is a retried step's reason: the broker's missing verdict
// when that is why it runs, else manifestReason.
func retryReason(due, specChanged bool, what, msg, manifestReason string) string {
	if due && !specChanged {
		return "retrying the " + what + ": the broker gave no verdict (" + msg + ")"
	}
	return manifestReason
}

// isDeleteRetry reports whether a delete of rec continues one started by an
// earlier pass (it does not count against MaxDeletions).
func isDeleteRetry(rec *manifest.StatusRecord) bool {
	if rec == nil {
		return false
	}
	if rec.Phase == manifest.PhaseDeprovisioning {
		return true
	}
	if rec.Phase == manifest.PhaseFailed && rec.LastOperation != nil {
		t := rec.LastOperation.Type
		return t == manifest.OperationDeprovision || t == manifest.OperationUnbind
	}
	return false
}

// retryArg is ref as `osbgit retry` takes it: KIND/NAMESPACE/NAME.
func retryArg(ref manifest.Ref) string {
	return string(ref.Kind) + "/" + ref.Namespace + "/" + ref.Name
}

// removed plans a resource whose manifest is gone (rec is non-nil and no
// operation is in flight).
func (p *planner) removed(s *Step, rec *manifest.StatusRecord) {
	retryDue, wait := p.retryWait(rec)
	what := "deprovision"
	if s.Ref.Kind == manifest.KindServiceBinding {
		what = "unbind"
	}
	switch {
	case len(p.set.UnreadableFiles) > 0:
		s.Reason = "manifest not found, but some manifest files could not be read (" + strings.Join(p.set.UnreadableFiles, ", ") + "): not treated as removed"
	case rec.DeletionPolicy == manifest.DeletionPolicyRetain:
		s.Action = Forget
		s.Reason = "manifest removed; deletion-policy Retain: the record is dropped and the broker keeps it"
		if rec.ExternalID != "" {
			s.Reason += fmt.Sprintf(" (set spec.externalID: %s to adopt it again)", rec.ExternalID)
		}
	case !rec.Provisioned && rec.Phase != manifest.PhasePending:
		s.Action = Forget
		s.Reason = "manifest removed; nothing was provisioned at the broker"
	case !p.in.Options.Prune:
		s.Reason = "manifest removed; prune is off (the broker resource is kept)"
		s.Warnings = append(s.Warnings, "manifest removed; prune is off: enable prune to "+what+" it, or annotate it "+manifest.AnnotationDeletionPolicy+": "+manifest.DeletionPolicyRetain+" and prune to forget it")
	case rec.Phase == manifest.PhaseFailed && isDeleteRetry(rec) && !retryDue:
		if wait == "" {
			wait = "retried with `osbgit retry " + retryArg(s.Ref) + "`"
		}
		s.Reason = "manifest removed; the " + what + " failed: " + wait
		s.Warnings = append(s.Warnings, what+" failed: "+failureMessage(rec))
	default:
		s.Action = Delete
		switch {
		case rec.Phase == manifest.PhaseDeprovisioning:
			s.Reason = "manifest removed: retrying the " + what + " started earlier"
		case isDeleteRetry(rec):
			s.Reason = "manifest removed: retrying the " + what + " that failed (" + failureMessage(rec) + ")"
		case rec.Phase == manifest.PhasePending:
			s.Reason = "manifest removed and prune is on (the create was reserved and may have reached the broker; 410 Gone is success)"
		default:
			s.Reason = "manifest removed and prune is on"
		}
	}
}

// retryDelete plans finishing a delete (deprovision, or the unbind of a
// re-bind) that an earlier pass started while the manifest is present.
func retryDelete(s *Step) {
	s.Action = Delete
	if s.Ref.Kind == manifest.KindServiceBinding {
		s.Reason = "finishing the unbind started earlier; the binding is bound again once it is done"
		return
	}
	s.Reason = "finishing the deprovision started earlier; the instance is provisioned again once it is done (its manifest is present)"
}
