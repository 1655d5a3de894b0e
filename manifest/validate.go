package manifest

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/template"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Validate runs every check that needs no network and no catalog, over the
// whole set, collecting all problems: required fields, DNS-1123 names,
// exactly one plan-reference form per instance, references (binding →
// instance in the same namespace, instance → pinned broker), broker URL,
// relist settings, caBundle PEM, catalog restriction syntax, parametersFrom,
// externalIDs, secretTransforms and secret names. Assemble calls it; call it
// again only for a Set built another way.
func Validate(set *Set) Diagnostics {
	if set == nil {
		return nil
	}
	v := &validator{set: set}
	for _, b := range set.ClusterServiceBrokers {
		v.broker(b)
	}
	for _, b := range set.ServiceBrokers {
		v.broker(b)
	}
	for _, i := range set.Instances {
		v.instance(i)
	}
	for _, b := range set.Bindings {
		v.binding(b)
	}
	v.uniqueExternalIDs()
	v.uniqueSecretNames()
	v.out.Sort()
	return v.out
}

type validator struct {
	set *Set
	out Diagnostics
}

func (v *validator) errorf(o Object, field, format string, args ...any) {
	v.out = append(v.out, Diagnostic{File: o.GetSource().File, Line: o.FieldLine(field), Field: field,
		Severity: SeverityError, Message: fmt.Sprintf(format, args...), Ref: o.GetRef()})
}

func (v *validator) warnf(o Object, field, format string, args ...any) {
	v.out = append(v.out, Diagnostic{File: o.GetSource().File, Line: o.FieldLine(field), Field: field,
		Severity: SeverityWarning, Message: fmt.Sprintf(format, args...), Ref: o.GetRef()})
}

func (v *validator) meta(o Object) {
	m := o.GetMetadata()
	switch {
	case m.Name == "" && m.GenerateName != "":
		v.errorf(o, "metadata.name", "required (generateName is not supported: osbgit needs a stable name)")
	case m.Name == "":
		v.errorf(o, "metadata.name", "required")
	default:
		if msg := NameProblem(m.Name); msg != "" {
			v.errorf(o, "metadata.name", "invalid name %q: %s", m.Name, msg)
		}
	}
	if ns := o.GetRef().Namespace; ns != "" {
		if msg := namespaceProblem(ns); msg != "" {
			v.errorf(o, "metadata.namespace", "invalid namespace %q: %s", ns, msg)
		}
	}
	if p, ok := m.Annotations[AnnotationDeletionPolicy]; ok {
		f := "metadata.annotations[" + fmt.Sprintf("%q", AnnotationDeletionPolicy) + "]"
		switch {
		case p != DeletionPolicyRetain && p != DeletionPolicyDelete:
			v.errorf(o, f, "must be %s or %s, got %q", DeletionPolicyRetain, DeletionPolicyDelete, p)
		case o.GetRef().Kind == KindClusterServiceBroker || o.GetRef().Kind == KindServiceBroker:
			v.warnf(o, f, "has no effect on brokers (removing a broker manifest never deletes anything at the broker)")
		}
	}
}

// ---------------------------------------------------------------------------
// Brokers

func (v *validator) broker(b Broker) {
	v.meta(b)
	if b.objBase().partial {
		return
	}
	s := b.GetBrokerSpec()
	ref := b.GetRef()
	switch {
	case s.URL == "":
		v.errorf(b, "spec.url", "required")
	default:
		if msg := checkBrokerURL(s.URL); msg != "" {
			v.errorf(b, "spec.url", "%s", msg)
		}
	}
	if ai := s.AuthInfo; ai != nil {
		switch {
		case ai.Basic != nil && ai.Bearer != nil:
			v.errorf(b, "spec.authInfo", "set basic or bearer, not both")
		case ai.Basic == nil && ai.Bearer == nil:
			v.errorf(b, "spec.authInfo", "set basic or bearer (or remove authInfo)")
		}
		for _, a := range []struct {
			name string
			cfg  *SecretAuthConfig
		}{{"basic", ai.Basic}, {"bearer", ai.Bearer}} {
			if a.cfg == nil {
				continue
			}
			f := "spec.authInfo." + a.name + ".secretRef"
			r := a.cfg.SecretRef
			if r == nil {
				v.errorf(b, f, "required")
				continue
			}
			v.secretName(b, f+".name", r.Name)
			switch {
			case ref.Kind == KindClusterServiceBroker && r.Namespace == "":
				v.errorf(b, f+".namespace", "required for a ClusterServiceBroker")
			case a.cfg.ignoredNamespace != "":
				v.warnf(b, f+".namespace", "ignored: a ServiceBroker's Secret is read from its own namespace %q, not %q (Service Catalog had no such field)", ref.Namespace, a.cfg.ignoredNamespace)
			case r.Namespace != "":
				if errs := validation.IsDNS1123Label(r.Namespace); len(errs) > 0 {
					v.errorf(b, f+".namespace", "invalid namespace %q: %s", r.Namespace, strings.Join(errs, "; "))
				}
			}
		}
	}
	if len(s.CABundle) > 0 {
		if msg := checkPEMBundle(s.CABundle); msg != "" {
			v.errorf(b, "spec.caBundle", "%s", msg)
		}
		if s.InsecureSkipTLSVerify {
			v.warnf(b, "spec.insecureSkipTLSVerify", "TLS verification is disabled, so caBundle is not used")
		}
	}
	switch s.RelistBehavior {
	case RelistDuration, RelistManual:
	default:
		v.errorf(b, "spec.relistBehavior", "must be %s or %s, got %q", RelistDuration, RelistManual, s.RelistBehavior)
	}
	if s.RelistDuration != nil {
		switch {
		case s.RelistDuration.Duration <= 0:
			v.errorf(b, "spec.relistDuration", "must be positive, got %s", s.RelistDuration.Duration)
		case s.RelistBehavior == RelistManual:
			v.warnf(b, "spec.relistDuration", "ignored with relistBehavior Manual")
		}
	}
	if s.RelistRequests < 0 {
		v.errorf(b, "spec.relistRequests", "must not be negative")
	}
	if cr := s.CatalogRestrictions; cr != nil {
		for i, sel := range cr.ServiceClass {
			if _, err := ParseSelector(sel, ClassProperties); err != nil {
				v.errorf(b, joinIndex("spec.catalogRestrictions.serviceClass", i), "%v", err)
			}
		}
		for i, sel := range cr.ServicePlan {
			if _, err := ParseSelector(sel, PlanProperties); err != nil {
				v.errorf(b, joinIndex("spec.catalogRestrictions.servicePlan", i), "%v", err)
			}
		}
	}
}

// checkBrokerURL returns "" for an acceptable broker URL, else why not.
func checkBrokerURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Sprintf("invalid URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Sprintf("scheme must be http or https, got %q", u.Scheme)
	}
	if u.Hostname() == "" {
		return "URL has no host"
	}
	if u.User != nil {
		return "URL must not carry credentials (they would be committed to Git); use spec.authInfo"
	}
	if u.Fragment != "" || u.RawQuery != "" {
		return "URL must not have a query or fragment"
	}
	return ""
}

// checkPEMBundle returns "" when b holds at least one PEM certificate and
// nothing else unparseable.
func checkPEMBundle(b []byte) string {
	n := 0
	rest := b
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return fmt.Sprintf("PEM block %q is not a CERTIFICATE", blk.Type)
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return fmt.Sprintf("certificate %d: %v", n+1, err)
		}
		n++
	}
	if n == 0 {
		return "no PEM certificate found (caBundle is base64 of a PEM bundle)"
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return "trailing data after the last PEM certificate"
	}
	return ""
}

// ---------------------------------------------------------------------------
// Instances

// planForm is one of the six plan-reference forms.
type planForm struct {
	cluster          bool
	by               string // "external name", "external ID", "name"
	classField       string
	planField        string
	class, planValue func(*PlanReference) string
}

var planForms = []planForm{
	{true, "external name", "clusterServiceClassExternalName", "clusterServicePlanExternalName",
		func(p *PlanReference) string { return p.ClusterServiceClassExternalName }, func(p *PlanReference) string { return p.ClusterServicePlanExternalName }},
	{true, "external ID", "clusterServiceClassExternalID", "clusterServicePlanExternalID",
		func(p *PlanReference) string { return p.ClusterServiceClassExternalID }, func(p *PlanReference) string { return p.ClusterServicePlanExternalID }},
	{true, "name", "clusterServiceClassName", "clusterServicePlanName",
		func(p *PlanReference) string { return p.ClusterServiceClassName }, func(p *PlanReference) string { return p.ClusterServicePlanName }},
	{false, "external name", "serviceClassExternalName", "servicePlanExternalName",
		func(p *PlanReference) string { return p.ServiceClassExternalName }, func(p *PlanReference) string { return p.ServicePlanExternalName }},
	{false, "external ID", "serviceClassExternalID", "servicePlanExternalID",
		func(p *PlanReference) string { return p.ServiceClassExternalID }, func(p *PlanReference) string { return p.ServicePlanExternalID }},
	{false, "name", "serviceClassName", "servicePlanName",
		func(p *PlanReference) string { return p.ServiceClassName }, func(p *PlanReference) string { return p.ServicePlanName }},
}

// planFormOf returns the forms with any field set.
func planFormsUsed(p *PlanReference) []planForm {
	var out []planForm
	for _, f := range planForms {
		if f.class(p) != "" || f.planValue(p) != "" {
			out = append(out, f)
		}
	}
	return out
}

// PlanRefFields is the plan-reference form an instance uses, for checks
// that must name its fields (the tenancy policy).
type PlanRefFields struct {
	// ClassField and PlanField are the spec field names, e.g.
	// "clusterServiceClassExternalName".
	ClassField, PlanField string
	// Class and Plan are their values (Plan may be empty).
	Class, Plan string
	// ExternalName: the values are the catalog's external names (not
	// external IDs or Kubernetes names).
	ExternalName bool
}

// Fields returns the one form p uses; ok is false when p uses none or
// several (Validate reports that).
func (p *PlanReference) Fields() (f PlanRefFields, ok bool) {
	forms := planFormsUsed(p)
	if len(forms) != 1 {
		return PlanRefFields{}, false
	}
	pf := forms[0]
	return PlanRefFields{ClassField: pf.classField, PlanField: pf.planField, Class: pf.class(p), Plan: pf.planValue(p),
		ExternalName: pf.by == "external name"}, true
}

func (v *validator) instance(i *ServiceInstance) {
	v.meta(i)
	if i.objBase().partial {
		return
	}
	s := &i.Spec
	forms := planFormsUsed(&s.PlanReference)
	switch len(forms) {
	case 0:
		v.errorf(i, "spec", "a plan reference is required: clusterServiceClassExternalName + clusterServicePlanExternalName (or the …ExternalID / …Name forms, or serviceClass…/servicePlan… for a namespaced broker)")
	case 1:
		f := forms[0]
		if i.badFields["spec."+f.planField] || i.badFields["spec."+f.classField] {
			break // already reported by the decoder
		}
		if f.class(&s.PlanReference) == "" {
			v.errorf(i, "spec."+f.planField, "%s needs %s", f.planField, f.classField)
		} else if f.planValue(&s.PlanReference) == "" {
			v.warnf(i, "spec."+f.classField, "%s is not set: this resolves only if the class has exactly one plan", f.planField)
		}
	default:
		var fields []string
		for _, f := range forms {
			for _, n := range []string{f.classField, f.planField} {
				if (n == f.classField && f.class(&s.PlanReference) != "") || (n == f.planField && f.planValue(&s.PlanReference) != "") {
					fields = append(fields, n)
				}
			}
		}
		v.errorf(i, "spec."+fields[len(fields)-1], "use exactly one plan-reference form; got %s", strings.Join(fields, ", "))
	}
	cluster := len(forms) > 0 && forms[0].cluster
	switch {
	case s.ClusterServiceBrokerName != "" && s.ServiceBrokerName != "":
		v.errorf(i, "spec.serviceBrokerName", "set clusterServiceBrokerName or serviceBrokerName, not both")
	case s.ClusterServiceBrokerName != "":
		if len(forms) > 0 && !cluster {
			v.errorf(i, "spec.clusterServiceBrokerName", "pins a ClusterServiceBroker but the plan reference uses the namespaced serviceClass… form")
		} else if v.set.Broker(Ref{Kind: KindClusterServiceBroker, Name: s.ClusterServiceBrokerName}) == nil {
			v.errorf(i, "spec.clusterServiceBrokerName", "no ClusterServiceBroker %q in the repository", s.ClusterServiceBrokerName)
		}
	case s.ServiceBrokerName != "":
		if cluster {
			v.errorf(i, "spec.serviceBrokerName", "pins a namespaced ServiceBroker but the plan reference uses the clusterServiceClass… form")
		} else if v.set.Broker(Ref{Kind: KindServiceBroker, Namespace: i.Namespace, Name: s.ServiceBrokerName}) == nil {
			v.errorf(i, "spec.serviceBrokerName", "no ServiceBroker %q in namespace %q in the repository", s.ServiceBrokerName, i.Namespace)
		}
	case len(forms) > 0 && cluster && len(v.set.ClusterServiceBrokers) == 0:
		v.errorf(i, "spec."+forms[0].classField, "no ClusterServiceBroker in the repository to provide this class")
	case len(forms) > 0 && !cluster && !v.hasServiceBrokerIn(i.Namespace):
		v.errorf(i, "spec."+forms[0].classField, "no ServiceBroker in namespace %q in the repository to provide this class", i.Namespace)
	}
	v.parametersFrom(i, s.ParametersFrom)
	v.externalID(i, s.ExternalID)
	if s.UpdateRequests < 0 {
		v.errorf(i, "spec.updateRequests", "must not be negative")
	}
}

func (v *validator) hasServiceBrokerIn(ns string) bool {
	for _, b := range v.set.ServiceBrokers {
		if b.Namespace == ns {
			return true
		}
	}
	return false
}

func (v *validator) parametersFrom(o Object, pf []ParametersFromSource) {
	for k, src := range pf {
		f := joinIndex("spec.parametersFrom", k)
		if src.SecretKeyRef == nil {
			v.errorf(o, f, "secretKeyRef is required")
			continue
		}
		v.secretName(o, f+".secretKeyRef.name", src.SecretKeyRef.Name)
		v.secretKey(o, f+".secretKeyRef.key", src.SecretKeyRef.Key)
	}
}

var externalIDRe = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,255}$`)

// ValidExternalID reports whether id is usable as an OSB instance_id or
// binding_id: 1–255 characters from RFC 3986's unreserved set (letters,
// digits, "-", ".", "_", "~"), not "." or "..": IDs go into URL paths and
// into file names of stores.
func ValidExternalID(id string) bool {
	return externalIDRe.MatchString(id) && id != "." && id != ".."
}

func (v *validator) externalID(o Object, id string) {
	if id != "" && !ValidExternalID(id) {
		v.errorf(o, "spec.externalID", "invalid external ID %q: use 1-255 characters from A-Z a-z 0-9 - . _ ~ (a UUID is best)", id)
	}
}

func (v *validator) secretName(o Object, field, name string) {
	if name == "" {
		v.errorf(o, field, "required")
		return
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		v.errorf(o, field, "invalid Secret name %q: %s", name, strings.Join(errs, "; "))
	}
}

// ValidSecretKey reports why key cannot be a Secret key ("" if it can): the
// Kubernetes rule (letters, digits, "-", "_", "."; not "." or ".."; at most
// 253 characters), which also keeps keys safe as file names for the
// directory secret store (no path separator, no "..").
func ValidSecretKey(key string) string {
	if key == "" {
		return "must not be empty"
	}
	if errs := validation.IsConfigMapKey(key); len(errs) > 0 {
		return strings.Join(errs, "; ")
	}
	if strings.ContainsAny(key, `/\`) || strings.Contains(key, "..") {
		return "must not contain a path separator or \"..\""
	}
	return ""
}

func (v *validator) secretKey(o Object, field, key string) {
	if msg := ValidSecretKey(key); msg != "" {
		if key == "" {
			v.errorf(o, field, "required")
			return
		}
		v.errorf(o, field, "invalid key %q: %s", key, msg)
	}
}

// ---------------------------------------------------------------------------
// Bindings

func (v *validator) binding(b *ServiceBinding) {
	v.meta(b)
	if b.objBase().partial {
		return
	}
	s := &b.Spec
	if s.InstanceRef.Name == "" {
		v.errorf(b, "spec.instanceRef.name", "required")
	} else if v.set.Instance(b.Namespace, s.InstanceRef.Name) == nil {
		v.errorf(b, "spec.instanceRef.name", "no ServiceInstance %q in namespace %q in the repository", s.InstanceRef.Name, b.Namespace)
	}
	v.secretName(b, "spec.secretName", s.SecretName)
	v.parametersFrom(b, s.ParametersFrom)
	v.externalID(b, s.ExternalID)
	for k, t := range s.SecretTransforms {
		v.secretTransform(b, joinIndex("spec.secretTransforms", k), t)
	}
}

func (v *validator) secretTransform(b *ServiceBinding, f string, t SecretTransform) {
	n := 0
	for _, set := range []bool{t.RenameKey != nil, t.AddKey != nil, t.AddKeysFrom != nil, t.RemoveKey != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		v.errorf(b, f, "set exactly one of renameKey, addKey, addKeysFrom, removeKey (got %d)", n)
		return
	}
	switch {
	case t.RenameKey != nil:
		v.secretKey(b, f+".renameKey.from", t.RenameKey.From)
		v.secretKey(b, f+".renameKey.to", t.RenameKey.To)
	case t.AddKey != nil:
		a := t.AddKey
		v.secretKey(b, f+".addKey.key", a.Key)
		m := 0
		if a.Value != nil {
			m++
		}
		if a.StringValue != nil {
			m++
		}
		if a.JSONPathExpression != nil {
			m++
		}
		if m != 1 {
			v.errorf(b, f+".addKey", "set exactly one of value, stringValue, jsonPathExpression (got %d)", m)
		}
		if a.JSONPathExpression != nil {
			if msg := checkJSONPathTemplate(*a.JSONPathExpression); msg != "" {
				v.errorf(b, f+".addKey.jsonPathExpression", "%s", msg)
			}
		}
	case t.AddKeysFrom != nil:
		r := t.AddKeysFrom.SecretRef
		if r == nil {
			v.errorf(b, f+".addKeysFrom.secretRef", "required")
			return
		}
		v.secretName(b, f+".addKeysFrom.secretRef.name", r.Name)
		if r.Namespace != "" && r.Namespace != b.Namespace {
			v.errorf(b, f+".addKeysFrom.secretRef.namespace", "must be the binding's namespace %q (or empty), got %q", b.Namespace, r.Namespace)
		}
	case t.RemoveKey != nil:
		v.secretKey(b, f+".removeKey.key", t.RemoveKey.Key)
	}
}

// checkJSONPathTemplate does a syntax check of a Kubernetes JSONPath template
// such as "{.host}:{.port}": balanced braces, at least one expression, each
// expression starting with "." or "$" or "[" or being a range/end keyword.
func checkJSONPathTemplate(s string) string {
	if strings.TrimSpace(s) == "" {
		return "must not be empty"
	}
	depth, exprs, start := 0, 0, 0
	for i, r := range s {
		switch r {
		case '{':
			if depth == 0 {
				start = i + 1
			}
			depth++
		case '}':
			depth--
			if depth < 0 {
				return fmt.Sprintf("unbalanced '}' at offset %d", i)
			}
			if depth == 0 {
				e := strings.TrimSpace(s[start:i])
				if e == "" {
					return "empty {} expression"
				}
				if !strings.HasPrefix(e, ".") && !strings.HasPrefix(e, "$") && !strings.HasPrefix(e, "[") &&
					!strings.HasPrefix(e, "range ") && e != "end" && !strings.HasPrefix(e, "\"") {
					return fmt.Sprintf("expression {%s} must start with '.' (e.g. {.host})", e)
				}
				exprs++
			}
		}
	}
	if depth != 0 {
		return "unbalanced '{'"
	}
	if exprs == 0 {
		return "no {…} expression; use stringValue for a constant"
	}
	return ""
}

// ---------------------------------------------------------------------------
// Cross-object uniqueness

func (v *validator) uniqueExternalIDs() {
	for _, group := range [][]Object{objectsOf(v.set.Instances), objectsOf(v.set.Bindings)} {
		seen := map[string]Object{}
		for _, o := range group {
			id := externalIDOf(o)
			if id == "" {
				continue
			}
			if prev, ok := seen[id]; ok {
				v.errorf(o, "spec.externalID", "external ID %q is also used by %s (%s)", id, prev.GetRef(), prev.GetSource())
				v.errorf(prev, "spec.externalID", "external ID %q is also used by %s (%s)", id, o.GetRef(), o.GetSource())
				continue
			}
			seen[id] = o
		}
	}
}

// externalIDClaims refuses what uniqueExternalIDs cannot see: a manifest
// whose spec.externalID is an ID the status record of another resource of
// its kind group (instances, bindings) holds. Adopting it would let one
// team's manifest update, bind or deprovision another team's instance, so
// both are refused, each diagnostic naming the manifest's file:line and the
// other's record. (The resource whose manifest is gone cannot be blocked by
// a diagnostic; its message still shows in validate and diff.) A manifest
// whose own record holds an ID another record holds too is refused the
// same way. An ID no record holds is still adopted: that is how instances
// created outside osbgit come under its management.
func externalIDClaims(set *Set, records map[Ref]*StatusRecord) Diagnostics {
	var out Diagnostics
	add := func(o Object, field, format string, args ...any) {
		out = append(out, Diagnostic{File: o.GetSource().File, Line: o.FieldLine(field), Field: field,
			Severity: SeverityError, Message: fmt.Sprintf(format, args...), Ref: o.GetRef()})
	}
	recordOf := func(ref Ref) string {
		p, _ := StatusPath(ref) // records are keyed by the refs of their paths
		return p
	}
	for _, group := range []struct {
		kind Kind
		objs []Object
	}{{KindServiceInstance, objectsOf(set.Instances)}, {KindServiceBinding, objectsOf(set.Bindings)}} {
		holders := map[string][]Ref{}
		for ref, rec := range records {
			if ref.Kind != group.kind {
				continue
			}
			for _, id := range []string{rec.ExternalID, rec.PredecessorExternalID} {
				if id != "" && !slices.Contains(holders[id], ref) {
					holders[id] = append(holders[id], ref)
				}
			}
		}
		for _, o := range group.objs {
			ref := o.GetRef()
			if id := externalIDOf(o); id != "" {
				at := Source{File: o.GetSource().File, Line: o.FieldLine("spec.externalID")}
				for _, h := range holders[id] {
					if h == ref {
						continue
					}
					add(o, "spec.externalID", "external ID %q is held by the record of %s (%s): a manifest cannot adopt what another resource manages; both are left alone until one of them changes", id, h, recordOf(h))
					if held, ok := set.Get(h); ok {
						add(held, idField(held), "its external ID %q (record %s) is claimed by %s (%s): both are left alone until one of them changes", id, recordOf(h), ref, at)
					} else {
						out = append(out, Diagnostic{File: recordOf(h), Field: "externalID", Severity: SeverityError, Ref: h,
							Message: fmt.Sprintf("external ID %q of this record (manifest removed) is claimed by %s (%s)", id, ref, at)})
					}
				}
			}
			if rec := records[ref]; rec != nil && rec.ExternalID != "" {
				for _, h := range holders[rec.ExternalID] {
					if h != ref {
						add(o, idField(o), "its record (%s) holds external ID %q, which the record of %s (%s) holds too: left alone until one record is corrected", recordOf(ref), rec.ExternalID, h, recordOf(h))
					}
				}
			}
		}
	}
	out.Sort()
	return out
}

// idField is where a diagnostic about o's external ID points: its
// spec.externalID when set, else its name.
func idField(o Object) string {
	if externalIDOf(o) != "" {
		return "spec.externalID"
	}
	return "metadata.name"
}

func (v *validator) uniqueSecretNames() {
	seen := map[[2]string]*ServiceBinding{}
	for _, b := range v.set.Bindings {
		k := [2]string{b.Namespace, b.Spec.SecretName}
		if b.Spec.SecretName == "" {
			continue
		}
		if prev, ok := seen[k]; ok {
			v.errorf(b, "spec.secretName", "Secret %q is also written by %s (%s)", b.Spec.SecretName, prev.GetRef(), prev.GetSource())
			v.errorf(prev, "spec.secretName", "Secret %q is also written by %s (%s)", b.Spec.SecretName, b.GetRef(), b.GetSource())
			continue
		}
		seen[k] = b
	}
}

func objectsOf[T Object](s []T) []Object {
	out := make([]Object, len(s))
	for i, o := range s {
		out[i] = o
	}
	return out
}

func externalIDOf(o Object) string {
	switch v := o.(type) {
	case *ServiceInstance:
		return v.Spec.ExternalID
	case *ServiceBinding:
		return v.Spec.ExternalID
	}
	return ""
}

// ---------------------------------------------------------------------------
// Config

func validateConfig(c *Config, sink *diagSink) {
	line := func(f string) int {
		if c.lines != nil {
			if l := c.lines.lookup(f); l > 0 {
				return l
			}
		}
		return c.Source.Line
	}
	if p := path.Clean(c.Path); !(p == "." || fsValidPath(p)) {
		sink.errorf(line("path"), "path", "must be a relative path inside the repository, got %q", c.Path)
	}
	if c.MaxDeletions < 0 {
		sink.errorf(line("maxDeletions"), "maxDeletions", "must not be negative")
	}
	if c.Concurrency < 1 {
		sink.errorf(line("concurrency"), "concurrency", "must be at least 1")
	}
	if c.DriftCheckInterval.Duration < 0 {
		sink.errorf(line("driftCheckInterval"), "driftCheckInterval", "must not be negative")
	}
	if errs := validation.IsDNS1123Label(c.DefaultNamespace); len(errs) > 0 {
		sink.errorf(line("defaultNamespace"), "defaultNamespace", "invalid namespace %q: %s", c.DefaultNamespace, strings.Join(errs, "; "))
	}
	if _, err := template.New("commit").Parse(c.CommitMessageTemplate); err != nil {
		sink.errorf(line("commitMessageTemplate"), "commitMessageTemplate", "invalid template: %v", err)
	} else if !strings.Contains(c.CommitMessageTemplate, "[skip ci]") {
		sink.warnf(line("commitMessageTemplate"), "commitMessageTemplate", "does not contain [skip ci]: status commits may trigger CI")
	}
	if !strings.Contains(c.CommitAuthor.Email, "@") {
		sink.errorf(line("commitAuthor.email"), "commitAuthor.email", "invalid email %q", c.CommitAuthor.Email)
	}
	if b := c.StatusBranch; b != "" && (strings.ContainsAny(b, " ~^:?*[\\") || strings.Contains(b, "..") || strings.HasPrefix(b, "-") || strings.HasSuffix(b, "/") || strings.HasSuffix(b, ".lock")) {
		sink.errorf(line("statusBranch"), "statusBranch", "invalid branch name %q", b)
	}
}

func fsValidPath(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") {
		return false
	}
	for _, e := range strings.Split(p, "/") {
		if e == "" || e == "." || e == ".." {
			return false
		}
	}
	return true
}

// sortedKeys returns the keys of m sorted.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
