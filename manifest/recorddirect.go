package manifest

import (
	"strconv"
	"strings"
	"time"
	"unique"

	yaml "go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Direct decoding of status records.
//
// A pass reads every status record, and fastDecodeInto's way (render the
// node tree as JSON, then encoding/json) was most of that cost. Status
// records have a fixed shape, so decodeStatusDirect fills a StatusRecord
// from the node tree with a switch per field. It gives exactly what
// fastDecodeInto gives (exact field names, a JSON type per field, empty
// "[]" and "{}" as empty values, metav1.Time's parsing) and reports false
// for anything else — null, an alias, a duplicate or unknown key, a value
// of another type — so the caller falls back to the general path, which
// then decides or reports the error with its line. TestFastDecodeMatches-
// Converter checks all paths agree.

// directDecoder walks one record's nodes; ok turns false at the first
// thing it does not handle, after which the result is discarded.
type directDecoder struct {
	ok bool
	// seen detects duplicate keys within one mapping (records have few
	// keys per mapping: a slice beats a map).
	seen []string
}

// decodeStatusDirect decodes root into rec; false means "use the general
// path" (rec is then to be discarded).
func decodeStatusDirect(root *yaml.Node, rec *StatusRecord) bool {
	d := &directDecoder{ok: true}
	d.mapping(root, func(k string, v *yaml.Node) {
		switch k {
		case "apiVersion":
			rec.APIVersion = d.common(v)
		case "kind":
			rec.Kind = d.common(v)
		case "ref":
			d.ref(v, &rec.Ref)
		case "phase":
			rec.Phase = Phase(d.common(v))
		case "externalID":
			rec.ExternalID = d.str(v)
		case "predecessorExternalID":
			rec.PredecessorExternalID = d.str(v)
		case "broker":
			d.ref(v, &rec.Broker)
		case "brokerURL":
			rec.BrokerURL = d.str(v)
		case "instanceName":
			rec.InstanceName = d.str(v)
		case "instanceExternalID":
			rec.InstanceExternalID = d.str(v)
		case "inProgress":
			rec.InProgress = new(Properties)
			d.mapping(v, func(k string, v *yaml.Node) {
				if !d.property(k, v, rec.InProgress) {
					d.ok = false
				}
			})
		case "provisioned":
			rec.Provisioned = d.bool(v)
		case "dashboardURL":
			rec.DashboardURL = d.str(v)
		case "asyncOpInProgress":
			rec.AsyncOpInProgress = d.bool(v)
		case "lastOperation":
			rec.LastOperation = new(LastOperation)
			d.lastOperation(v, rec.LastOperation)
		case "conditions":
			rec.Conditions = d.conditions(v)
		case "specHash":
			rec.SpecHash = d.str(v)
		case "deletionPolicy":
			rec.DeletionPolicy = d.common(v)
		case "secretRef":
			rec.SecretRef = new(SecretRef)
			d.secretRef(v, rec.SecretRef)
		case "observedRevision":
			rec.ObservedRevision = d.common(v)
		case "error":
			rec.Error = new(RecordError)
			d.mapping(v, func(k string, v *yaml.Node) {
				if k != "message" {
					d.ok = false
					return
				}
				rec.Error.Message = d.str(v)
			})
		default:
			if !d.property(k, v, &rec.Properties) {
				d.ok = false
			}
		}
	})
	return d.ok
}

// mapping calls field for each key of a block or empty flow mapping, in
// order; a non-mapping, a non-string key or a duplicate stops decoding.
func (d *directDecoder) mapping(n *yaml.Node, field func(k string, v *yaml.Node)) {
	if !d.collection(n, yaml.MappingNode, "!!map") {
		return
	}
	mark := len(d.seen)
	for i := 0; i+1 < len(n.Content) && d.ok; i += 2 {
		k := n.Content[i]
		if k.Kind != yaml.ScalarNode || k.Anchor != "" || k.ShortTag() != "!!str" {
			d.ok = false
			return
		}
		for _, s := range d.seen[mark:] {
			if s == k.Value {
				d.ok = false
				return
			}
		}
		d.seen = append(d.seen, k.Value)
		field(k.Value, n.Content[i+1])
	}
	d.seen = d.seen[:mark]
}

// collection reports whether n is a plain (untagged or default-tagged, no
// anchor) node of kind; otherwise decoding stops.
func (d *directDecoder) collection(n *yaml.Node, kind yaml.Kind, tag string) bool {
	if !d.ok || n.Kind != kind || n.Tag != tag && n.Tag != "" || n.Anchor != "" {
		d.ok = false
	}
	return d.ok
}

// sequence returns a block or empty flow sequence's entries; nil stops
// decoding.
func (d *directDecoder) sequence(n *yaml.Node) []*yaml.Node {
	if !d.collection(n, yaml.SequenceNode, "!!seq") {
		return nil
	}
	return n.Content
}

// scalar returns a scalar's value if its resolved tag is tag.
func (d *directDecoder) scalar(n *yaml.Node, tag string) string {
	if !d.ok || n.Kind != yaml.ScalarNode || n.Anchor != "" || n.ShortTag() != tag {
		d.ok = false
		return ""
	}
	return n.Value
}

// str returns a string scalar's value as a string of its own: the fast
// parser's values are substrings of the whole document, which a record
// keeping one of them would keep alive.
func (d *directDecoder) str(n *yaml.Node) string { return strings.Clone(d.scalar(n, "!!str")) }

// common is str for a value many records share (kinds, phases, plan IDs,
// condition texts, the observed revision, Secret keys): one copy is kept
// for all of them.
func (d *directDecoder) common(n *yaml.Node) string {
	return unique.Make(d.scalar(n, "!!str")).Value()
}

func (d *directDecoder) bool(n *yaml.Node) bool {
	switch d.scalar(n, "!!bool") {
	case "true", "True", "TRUE":
		return true
	case "false", "False", "FALSE":
		return false
	}
	d.ok = false
	return false
}

func (d *directDecoder) int64(n *yaml.Node) int64 {
	s := d.scalar(n, "!!int")
	if !d.ok || !jsonNumberRe.MatchString(s) {
		d.ok = false
		return 0
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		d.ok = false
	}
	return v
}

// time parses a timestamp as metav1.Time's UnmarshalJSON does.
func (d *directDecoder) time(n *yaml.Node) metav1.Time {
	s := d.scalar(n, "!!str")
	if !d.ok {
		return metav1.Time{}
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		d.ok = false
		return metav1.Time{}
	}
	return metav1.Time{Time: t.Local()}
}

func (d *directDecoder) strings(n *yaml.Node) []string {
	entries := d.sequence(n)
	if !d.ok {
		return nil
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, d.common(e))
	}
	return out
}

func (d *directDecoder) ref(n *yaml.Node, r *Ref) {
	d.mapping(n, func(k string, v *yaml.Node) {
		switch k {
		case "kind":
			r.Kind = Kind(d.common(v))
		case "namespace":
			r.Namespace = d.common(v)
		case "name":
			r.Name = d.str(v)
		default:
			d.ok = false
		}
	})
}

// property decodes a Properties field; false for a key that is not one.
func (d *directDecoder) property(k string, v *yaml.Node, p *Properties) bool {
	switch k {
	case "classExternalName":
		p.ClassExternalName = d.common(v)
	case "classExternalID":
		p.ClassExternalID = d.common(v)
	case "planExternalName":
		p.PlanExternalName = d.common(v)
	case "planExternalID":
		p.PlanExternalID = d.common(v)
	case "parameterChecksum":
		p.ParameterChecksum = d.str(v)
	case "updateRequests":
		p.UpdateRequests = d.int64(v)
	default:
		return false
	}
	return true
}

func (d *directDecoder) lastOperation(n *yaml.Node, lo *LastOperation) {
	d.mapping(n, func(k string, v *yaml.Node) {
		switch k {
		case "type":
			lo.Type = OperationType(d.common(v))
		case "state":
			lo.State = OperationState(d.common(v))
		case "operation":
			lo.Operation = d.str(v)
		case "startTime":
			lo.StartTime = d.time(v)
		case "serviceID":
			lo.ServiceID = d.common(v)
		case "planID":
			lo.PlanID = d.common(v)
		case "orphanMitigation":
			lo.OrphanMitigation = d.bool(v)
		default:
			d.ok = false
		}
	})
}

func (d *directDecoder) conditions(n *yaml.Node) []Condition {
	entries := d.sequence(n)
	if !d.ok {
		return nil
	}
	out := make([]Condition, len(entries))
	for i, e := range entries {
		c := &out[i]
		d.mapping(e, func(k string, v *yaml.Node) {
			switch k {
			case "type":
				c.Type = ConditionType(d.common(v))
			case "status":
				c.Status = ConditionStatus(d.common(v))
			case "reason":
				c.Reason = d.common(v)
			case "message":
				c.Message = d.common(v)
			case "lastTransitionTime":
				c.LastTransitionTime = d.time(v)
			default:
				d.ok = false
			}
		})
	}
	return out
}

func (d *directDecoder) secretRef(n *yaml.Node, s *SecretRef) {
	d.mapping(n, func(k string, v *yaml.Node) {
		switch k {
		case "namespace":
			s.Namespace = d.common(v)
		case "name":
			s.Name = d.str(v)
		case "keys":
			s.Keys = d.strings(v)
		default:
			d.ok = false
		}
	})
}
