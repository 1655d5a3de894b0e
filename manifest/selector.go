package manifest

import (
	"crypto/md5"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/osbgit/osbgit/osbclient/osbwire"
)

// Catalog restriction selectors (spec.catalogRestrictions) use Service
// Catalog's syntax, a subset of Kubernetes label selectors over a fixed set
// of properties:
//
//	<property> == <value>     (also "=")
//	<property> != <value>
//	<property> in (<v1>, <v2>, …)
//	<property> notin (<v1>, <v2>, …)
//
// Requirements are separated by commas and must all hold; the strings of a
// serviceClass or servicePlan list must all hold too. Values are taken
// literally (trimmed of surrounding spaces); they cannot contain ",", "(" or
// ")". Existence tests ("key", "!key") and set-based "exists" are not
// supported.
//
// Class properties: name (the class's Kubernetes name: the service's
// external ID or K8sNameForExternalID of it), spec.externalName (service
// name), spec.externalID (service id).
//
// Plan properties: name, spec.externalName, spec.externalID, spec.free
// ("true"/"false"), and spec.clusterServiceClass.name (cluster brokers) or
// spec.serviceClass.name (namespaced brokers): the Kubernetes name of the
// plan's class. A class whose plans are all filtered out is filtered out.

// Selector property names.
const (
	PropName                    = "name"
	PropExternalName            = "spec.externalName"
	PropExternalID              = "spec.externalID"
	PropFree                    = "spec.free"
	PropClusterServiceClassName = "spec.clusterServiceClass.name"
	PropServiceClassName        = "spec.serviceClass.name"
)

// ClassProperties are the properties a serviceClass selector may test.
var ClassProperties = []string{PropName, PropExternalName, PropExternalID}

// PlanProperties are the properties a servicePlan selector may test.
var PlanProperties = []string{PropName, PropExternalName, PropExternalID, PropFree, PropClusterServiceClassName, PropServiceClassName}

type selOp int

const (
	opEq selOp = iota
	opNeq
	opIn
	opNotIn
)

type requirement struct {
	key    string
	op     selOp
	values []string
}

// Selector is a parsed catalog restriction.
type Selector struct {
	reqs []requirement
}

// ParseSelector parses one selector string, accepting only the given
// properties (ClassProperties or PlanProperties).
func ParseSelector(s string, allowed []string) (Selector, error) {
	var sel Selector
	rest := strings.TrimSpace(s)
	if rest == "" {
		return sel, fmt.Errorf("empty selector")
	}
	for rest != "" {
		var req requirement
		var err error
		req, rest, err = parseRequirement(rest)
		if err != nil {
			return Selector{}, fmt.Errorf("selector %q: %w", s, err)
		}
		ok := false
		for _, a := range allowed {
			if a == req.key {
				ok = true
			}
		}
		if !ok {
			return Selector{}, fmt.Errorf("selector %q: unsupported property %q (supported: %s)", s, req.key, strings.Join(allowed, ", "))
		}
		sel.reqs = append(sel.reqs, req)
		rest = strings.TrimSpace(rest)
		if rest == "" {
			break
		}
		if rest[0] != ',' {
			return Selector{}, fmt.Errorf("selector %q: expected ',' before %q", s, rest)
		}
		rest = strings.TrimSpace(rest[1:])
		if rest == "" {
			return Selector{}, fmt.Errorf("selector %q: trailing ','", s)
		}
	}
	return sel, nil
}

func parseRequirement(s string) (requirement, string, error) {
	var r requirement
	i := strings.IndexAny(s, "=!, (")
	if i < 0 {
		return r, "", fmt.Errorf("missing operator after %q (==, !=, in, notin)", s)
	}
	r.key = strings.TrimSpace(s[:i])
	rest := strings.TrimLeft(s[i:], " ")
	if r.key == "" {
		return r, "", fmt.Errorf("missing property name")
	}
	switch {
	case strings.HasPrefix(rest, "=="):
		r.op, rest = opEq, rest[2:]
	case strings.HasPrefix(rest, "!="):
		r.op, rest = opNeq, rest[2:]
	case strings.HasPrefix(rest, "="):
		r.op, rest = opEq, rest[1:]
	case strings.HasPrefix(rest, "in ") || strings.HasPrefix(rest, "in("):
		r.op, rest = opIn, rest[2:]
	case strings.HasPrefix(rest, "notin ") || strings.HasPrefix(rest, "notin("):
		r.op, rest = opNotIn, rest[5:]
	default:
		return r, "", fmt.Errorf("missing operator after %q (==, !=, in, notin)", r.key)
	}
	rest = strings.TrimLeft(rest, " ")
	if r.op == opEq || r.op == opNeq {
		end := strings.IndexAny(rest, ",()")
		if end < 0 {
			end = len(rest)
		}
		if end < len(rest) && rest[end] != ',' {
			return r, "", fmt.Errorf("unexpected %q in value of %q", rest[end], r.key)
		}
		v := strings.TrimSpace(rest[:end])
		if v == "" {
			return r, "", fmt.Errorf("missing value for %q", r.key)
		}
		r.values = []string{v}
		return r, rest[end:], nil
	}
	if !strings.HasPrefix(rest, "(") {
		return r, "", fmt.Errorf("expected '(' after in/notin for %q", r.key)
	}
	end := strings.IndexByte(rest, ')')
	if end < 0 {
		return r, "", fmt.Errorf("missing ')' for %q", r.key)
	}
	inner := rest[1:end]
	if strings.ContainsRune(inner, '(') {
		return r, "", fmt.Errorf("unexpected '(' in set of %q", r.key)
	}
	for _, v := range strings.Split(inner, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			return r, "", fmt.Errorf("empty value in set of %q", r.key)
		}
		r.values = append(r.values, v)
	}
	return r, rest[end+1:], nil
}

// Matches reports whether every requirement holds for fields (property →
// values; a property with several values, like a class "name", matches ==
// and in when any value matches and != and notin when none does).
func (s Selector) Matches(fields map[string][]string) bool {
	for _, r := range s.reqs {
		hit := false
		for _, have := range fields[r.key] {
			for _, want := range r.values {
				if have == want {
					hit = true
				}
			}
		}
		if (r.op == opEq || r.op == opIn) != hit {
			return false
		}
	}
	return true
}

// ClassFields are the selector properties of a service.
func ClassFields(svc osbwire.Service) map[string][]string {
	return map[string][]string{
		PropName:         classNames(svc.ID),
		PropExternalName: {svc.Name},
		PropExternalID:   {svc.ID},
	}
}

// PlanFields are the selector properties of a plan of svc.
func PlanFields(svc osbwire.Service, p osbwire.Plan) map[string][]string {
	names := classNames(svc.ID)
	return map[string][]string{
		PropName:                    classNames(p.ID),
		PropExternalName:            {p.Name},
		PropExternalID:              {p.ID},
		PropFree:                    {strconv.FormatBool(p.IsFree())},
		PropClusterServiceClassName: names,
		PropServiceClassName:        names,
	}
}

// classNames are the Kubernetes names Service Catalog may have given a class
// or plan with this external ID: the ID itself (older releases) and its
// escaped form (later releases).
func classNames(id string) []string {
	if n := K8sNameForExternalID(id); n != id {
		return []string{id, n}
	}
	return []string{id}
}

// K8sNameForExternalID is the Kubernetes object name Service Catalog (0.3+)
// gave the ClusterServiceClass/ClusterServicePlan of a catalog entry with
// this external ID: characters a–y and 0–9 are kept, "." and "-" are kept
// where valid in a DNS name, anything else (including "z" and upper case) is
// written as "z<hex code point>z"; a result longer than 63 characters becomes
// its first 30 characters, "-", and the hex MD5 of the ID. Earlier releases
// used the external ID itself; resolution by name accepts both.
func K8sNameForExternalID(id string) string {
	var b strings.Builder
	prevDot, prevDash := false, false
	last := len(id) - 1
	for i, r := range id {
		switch {
		case (r >= 'a' && r <= 'y') || (r >= '0' && r <= '9'):
			b.WriteRune(r)
			prevDot, prevDash = false, false
		case r == '.' && i != 0 && i != last && !prevDot && !prevDash:
			b.WriteRune(r)
			prevDot, prevDash = true, false
		case r == '-' && i != 0 && i != last && !prevDot:
			b.WriteRune(r)
			prevDot, prevDash = false, true
		default:
			fmt.Fprintf(&b, "z%xz", r)
			prevDot, prevDash = false, false
		}
	}
	s := b.String()
	if len(s) > 63 {
		s = strings.TrimSuffix(s[:30], ".") + "-" + fmt.Sprintf("%x", md5.Sum([]byte(id)))
	}
	return s
}

// FilterCatalog applies a broker's catalog restrictions: it returns a copy
// of cat holding only the services accepted by every serviceClass selector,
// each with only the plans accepted by every servicePlan selector; services
// left without plans are dropped. A nil r returns cat unchanged.
func FilterCatalog(cat *osbwire.Catalog, r *CatalogRestrictions) (*osbwire.Catalog, error) {
	if cat == nil || r == nil || (len(r.ServiceClass) == 0 && len(r.ServicePlan) == 0) {
		return cat, nil
	}
	var cls, pls []Selector
	for _, s := range r.ServiceClass {
		sel, err := ParseSelector(s, ClassProperties)
		if err != nil {
			return nil, err
		}
		cls = append(cls, sel)
	}
	for _, s := range r.ServicePlan {
		sel, err := ParseSelector(s, PlanProperties)
		if err != nil {
			return nil, err
		}
		pls = append(pls, sel)
	}
	out := &osbwire.Catalog{}
	for _, svc := range cat.Services {
		if !allMatch(cls, ClassFields(svc)) {
			continue
		}
		var plans []osbwire.Plan
		for _, p := range svc.Plans {
			if allMatch(pls, PlanFields(svc, p)) {
				plans = append(plans, p)
			}
		}
		if len(plans) == 0 {
			continue
		}
		svc.Plans = plans
		out.Services = append(out.Services, svc)
	}
	return out, nil
}

func allMatch(sels []Selector, fields map[string][]string) bool {
	for _, s := range sels {
		if !s.Matches(fields) {
			return false
		}
	}
	return true
}

// describeList renders up to n sorted values for messages.
func describeList(vals []string, n int) string {
	vals = append([]string(nil), vals...)
	sort.Strings(vals)
	if len(vals) > n {
		return strings.Join(vals[:n], ", ") + fmt.Sprintf(", … (%d more)", len(vals)-n)
	}
	return strings.Join(vals, ", ")
}
