package plan

import (
	"regexp"
	"sort"
	"strconv"

	"github.com/osbgit/osbgit/manifest"
)

// renderValue shows a parameter value as compact canonical JSON, so that
// the string "16" (shown "16", quoted) and the number 16 differ.
func renderValue(v any) string {
	b, err := manifest.CanonicalValue(v)
	if err != nil {
		return "(unprintable)"
	}
	return string(b)
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// joinPath appends a map key to a display path: ".key", or `["key"]` when
// the key has characters that would make the path ambiguous.
func joinPath(prefix, key string) string {
	if plainKey.MatchString(key) {
		return prefix + "." + key
	}
	return prefix + "[" + strconv.Quote(key) + "]"
}

// leaf is one displayed parameter: a path and its rendered value.
type leaf struct {
	// key is the top-level parameter the leaf belongs to.
	key       string
	path      string
	value     string
	sensitive bool
}

// flattenParams lists params as leaves under prefix: nested objects are
// walked, arrays and scalars are leaves. Top-level keys in secretKeys are one
// sensitive leaf each (their structure is not shown either).
func flattenParams(prefix string, params map[string]any, secretKeys []string) map[string]leaf {
	secret := map[string]bool{}
	for _, k := range secretKeys {
		secret[k] = true
	}
	out := map[string]leaf{}
	var walk func(top, path string, v any)
	walk = func(top, path string, v any) {
		if m, ok := v.(map[string]any); ok && len(m) > 0 {
			for k, sub := range m {
				walk(top, joinPath(path, k), sub)
			}
			return
		}
		out[path] = leaf{key: top, path: path, value: renderValue(v)}
	}
	for k, v := range params {
		p := joinPath(prefix, k)
		if secret[k] {
			out[p] = leaf{key: k, path: p, value: SensitiveValue, sensitive: true}
			continue
		}
		walk(k, p, v)
	}
	return out
}

func sortedLeafPaths(m map[string]leaf) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// paramChanges lists params as changes of one op (add for a create, set for
// an update whose previous values are unknown).
func paramChanges(params map[string]any, secretKeys []string, op ChangeOp) []Change {
	leaves := flattenParams("parameters", params, secretKeys)
	var out []Change
	for _, path := range sortedLeafPaths(leaves) {
		l := leaves[path]
		out = append(out, Change{Path: l.path, Op: op, New: l.value, Sensitive: l.sensitive})
	}
	return out
}

// paramDiff compares the parameters a broker reported (old) with the
// desired ones (new). Old values are shown only for leaves whose desired
// value is inline (a key that comes from a Secret is sensitive on both
// sides); a leaf the broker has but the manifest does not is listed as a
// removal without its value, since its origin is unknown. withRemovals
// false skips those (brokers often report defaults nobody asked for).
// oldFromManifest says old comes from the manifest last applied, not from
// the broker: a removed leaf then shows its old value (redacted when
// sensitive), and removals are always listed.
func paramDiff(old, new map[string]any, secretKeys []string, withRemovals, oldFromManifest bool) []Change {
	ol := flattenParams("parameters", old, secretKeys)
	nl := flattenParams("parameters", new, secretKeys)
	var out []Change
	paths := map[string]bool{}
	for p := range ol {
		paths[p] = true
	}
	for p := range nl {
		paths[p] = true
	}
	all := make([]string, 0, len(paths))
	for p := range paths {
		all = append(all, p)
	}
	sort.Strings(all)
	for _, p := range all {
		o, inOld := ol[p]
		n, inNew := nl[p]
		switch {
		case inOld && inNew:
			if n.sensitive {
				if k := n.key; !jsonEqual(old[k], new[k]) {
					out = append(out, Change{Path: p, Op: ChangeModify, Old: SensitiveValue, New: SensitiveValue, Sensitive: true})
				}
				continue
			}
			if o.value == n.value {
				continue
			}
			if o.sensitive {
				out = append(out, Change{Path: p, Op: ChangeModify, Old: SensitiveValue, New: n.value})
				continue
			}
			out = append(out, Change{Path: p, Op: ChangeModify, Old: o.value, New: n.value})
		case inNew:
			out = append(out, Change{Path: p, Op: ChangeAdd, New: n.value, Sensitive: n.sensitive})
		case inOld && oldFromManifest:
			out = append(out, Change{Path: p, Op: ChangeRemove, Old: o.value, Sensitive: o.sensitive})
		case inOld && withRemovals:
			out = append(out, Change{Path: p, Op: ChangeRemove})
		}
	}
	return out
}

// paramsDrifted reports whether the broker's reported parameters disagree
// with the desired ones on any desired key (extra keys the broker reports,
// such as defaults, are ignored).
func paramsDrifted(observed, desired map[string]any) bool {
	for k, v := range desired {
		ov, ok := observed[k]
		if !ok {
			return true
		}
		if !jsonEqual(v, ov) {
			return true
		}
	}
	return false
}

// jsonEqual compares two values by their canonical JSON.
func jsonEqual(a, b any) bool {
	x, err1 := manifest.CanonicalValue(a)
	y, err2 := manifest.CanonicalValue(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// shortSum abbreviates a checksum for messages.
func shortSum(s string) string {
	if len(s) > 12 {
		return s[:12] + "…"
	}
	if s == "" {
		return "(none)"
	}
	return s
}
