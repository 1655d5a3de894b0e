package manifest

import (
	"errors"
	"fmt"
	"strings"
)

// ValidateOption configures ValidateWithCatalogs.
type ValidateOption func(*catalogValidation)

type catalogValidation struct {
	records *Records
}

// WithRecords tells ValidateWithCatalogs which resources already exist (a
// status record with Provisioned set): their parameters are checked against
// the plan's update schema instead of the create schema, and a plan change
// is checked against plan_updateable and a class change refused. It also
// refuses a spec.externalID that another resource's record holds
// (externalIDClaims).
func WithRecords(r *Records) ValidateOption {
	return func(c *catalogValidation) { c.records = r }
}

// ValidateWithCatalogs checks the set against broker catalogs (no network:
// the catalogs are passed in, keyed by CatalogKey): every instance's class
// and plan resolve (Resolve: by external name, external ID or name,
// catalogRestrictions applied, a class offered by two brokers is an error
// unless pinned), instance parameters match the plan's create (new) or update
// (existing) schema, bindings point at bindable plans and their parameters
// match the binding schema. Schema violations are reported at
// spec.parameters.<path>. Objects that already fail offline validation are
// skipped. When a class is not found and some candidate broker has no
// catalog, the problem is a warning (the catalog may just not be fetched).
// Required properties at the top of the parameters are not enforced when
// parametersFrom is used, since the Secrets may supply them.
func ValidateWithCatalogs(set *Set, catalogs Catalogs, opts ...ValidateOption) Diagnostics {
	if set == nil {
		return nil
	}
	var cv catalogValidation
	for _, o := range opts {
		o(&cv)
	}
	bad := Validate(set).ErrorRefs()
	var out Diagnostics
	add := func(o Object, sev Severity, field, msg string) {
		out = append(out, Diagnostic{File: o.GetSource().File, Line: o.FieldLine(field), Field: field, Severity: sev, Message: msg, Ref: o.GetRef()})
	}
	resolveFailure := func(o Object, err error) {
		var re *ResolveError
		if !errors.As(err, &re) {
			add(o, SeverityError, "spec", err.Error())
			return
		}
		sev := SeverityError
		if len(re.MissingCatalogs) > 0 {
			sev = SeverityWarning
		}
		add(o, sev, re.Field, re.Message)
	}
	brokers := set.Brokers()
	for _, inst := range set.Instances {
		if bad[inst.GetRef()] {
			continue
		}
		res, err := Resolve(inst, brokers, catalogs)
		if err != nil {
			resolveFailure(inst, err)
			continue
		}
		kindOfSchema := SchemaInstanceCreate
		if rec := cv.record(inst.GetRef()); rec != nil && rec.Provisioned {
			kindOfSchema = SchemaInstanceUpdate
			form := planFormsUsed(&inst.Spec.PlanReference)[0]
			if rec.ClassExternalID != "" && rec.ClassExternalID != res.Service.ID {
				add(inst, SeverityError, "spec."+form.classField, fmt.Sprintf("the class of an existing instance cannot change (provisioned as %q, id %s); create a new instance instead", rec.ClassExternalName, rec.ClassExternalID))
				continue
			}
			if rec.PlanExternalID != "" && rec.PlanExternalID != res.Plan.ID {
				cur := res.Plan
				for _, p := range res.Service.Plans {
					if p.ID == rec.PlanExternalID {
						cur = p
					}
				}
				if !res.Service.IsPlanUpdateable(cur) {
					add(inst, SeverityError, "spec."+form.planField, fmt.Sprintf("changing the plan from %q to %q is not allowed: the broker's plan_updateable is false", rec.PlanExternalName, res.Plan.Name))
				}
			}
		}
		checkParams(inst, inst.Spec.Parameters, len(inst.Spec.ParametersFrom) > 0, PlanSchema(res.Plan, kindOfSchema), kindOfSchema, add)
	}
	for _, b := range set.Bindings {
		if bad[b.GetRef()] || bad[b.InstanceRef()] {
			continue
		}
		_, res, err := ResolveBinding(b, set, catalogs)
		if err != nil {
			var re *ResolveError
			if errors.As(err, &re) && strings.Contains(re.Message, "does not resolve") {
				continue // reported on the instance
			}
			resolveFailure(b, err)
			continue
		}
		checkParams(b, b.Spec.Parameters, len(b.Spec.ParametersFrom) > 0, PlanSchema(res.Plan, SchemaBindingCreate), SchemaBindingCreate, add)
	}
	if cv.records != nil {
		out = append(out, externalIDClaims(set, cv.records.Status)...)
	}
	out.Sort()
	return out
}

func (c *catalogValidation) record(ref Ref) *StatusRecord {
	if c.records == nil {
		return nil
	}
	return c.records.Status[ref]
}

func checkParams(o Object, params map[string]any, hasFrom bool, schema []byte, k SchemaKind, add func(Object, Severity, string, string)) {
	if schema == nil {
		return
	}
	name := map[SchemaKind]string{SchemaInstanceCreate: "service_instance.create", SchemaInstanceUpdate: "service_instance.update", SchemaBindingCreate: "service_binding.create"}[k]
	errs, err := ValidateParameters(schema, params)
	if err != nil {
		add(o, SeverityWarning, "spec.parameters", fmt.Sprintf("the plan's %s schema is unusable, parameters not checked: %v", name, err))
		return
	}
	for _, e := range errs {
		if hasFrom && e.Path == "" && len(e.Missing) > 0 {
			continue // parametersFrom may supply them
		}
		add(o, SeverityError, e.Field(), fmt.Sprintf("%s (plan schema %s)", e.Message, name))
	}
}
