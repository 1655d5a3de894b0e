// Package policy is osbgit's tenancy policy: which repository paths may
// declare which namespaces, which classes and plans a namespace may use,
// and how many creates and deletes one pass may start.
//
// Manifests declare their own namespace, so without it any directory of a
// shared repository could create resources in any namespace, with any
// plan. The policy is set by the operator (a file named by --policy, in a
// cluster a mounted ConfigMap), never read from a place manifest authors
// write. Check turns violations into error diagnostics at the manifest's
// file:line and field, so the resource is blocked like an invalid one (no
// broker call, the error on its record) and the others proceed; Limit holds
// back the steps past the per-pass caps. Both are pure.
package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/osbgit/osbgit/manifest"
)

// Kind is the kind of a policy document (apiVersion
// manifest.ConfigAPIVersion).
const Kind manifest.Kind = "Policy"

// Policy is the decoded policy file. A nil *Policy allows everything.
type Policy struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Paths say which files may declare which namespaces. The first rule
	// whose path matches a manifest's file decides; a file no rule
	// matches may declare nothing. Empty: any file may declare any
	// namespace.
	Paths []PathRule `json:"paths,omitempty"`
	// Plans say which classes and plans a namespace may use. The first
	// rule naming the namespace decides; a namespace no rule names may use
	// none. Empty: any class and plan.
	Plans []PlanRule `json:"plans,omitempty"`
	// MaxCreatesPerPass caps the creates (provision, bind) one pass
	// starts; the steps past it, in plan order, wait for a later pass.
	// Absent: no cap.
	MaxCreatesPerPass *int `json:"maxCreatesPerPass,omitempty"`
	// MaxDeletesPerPass caps the deletes (deprovision, unbind) one pass
	// starts, the same way. It applies after osbgit.yaml's maxDeletions,
	// which refuses a whole pass that would start more than it allows.
	MaxDeletesPerPass *int `json:"maxDeletesPerPass,omitempty"`

	file  string
	lines manifest.FieldLines
	// digest identifies file and content (Digest).
	digest string
}

// PathRule lets manifests under Path declare Namespaces.
type PathRule struct {
	// Path is a glob over the file's path from the repository root:
	// "*" matches within one path segment, "**" any number of segments
	// ("teams/a/**").
	Path string `json:"path"`
	// Namespaces are the namespaces those files may declare; "*" in a
	// name matches any run of characters ("team-a-*").
	Namespaces []string `json:"namespaces,omitempty"`
	// ClusterScoped lets those files declare cluster-scoped objects
	// (ClusterServiceBroker).
	ClusterScoped bool `json:"clusterScoped,omitempty"`
}

// PlanRule lets instances in Namespaces use the classes and plans of Allow.
type PlanRule struct {
	// Namespaces the rule is for ("*" wildcards as in PathRule).
	Namespaces []string `json:"namespaces"`
	// Allow lists the classes and plans, by catalog external name.
	Allow []ClassRule `json:"allow"`
}

// ClassRule allows Plans of Class (external names, "*" wildcards).
type ClassRule struct {
	Class string   `json:"class"`
	Plans []string `json:"plans"`
}

// File is where the policy was read from (for messages).
func (p *Policy) File() string { return p.file }

// Digest identifies the policy by its file's name and content, which its
// checks and messages depend on: a pass that reuses what an earlier one
// found compares it. "" for a nil policy (everything allowed).
func (p *Policy) Digest() string {
	if p == nil {
		return ""
	}
	return p.digest
}

// Load reads and decodes the policy file at name. Any problem is an error
// listing each diagnostic at file:line: a pass must not run with a policy
// it could not read.
func Load(name string) (*Policy, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("tenancy policy: %w", err)
	}
	p, diags := Decode(name, data)
	if err := diags.Err(); err != nil {
		return nil, fmt.Errorf("tenancy policy %s is invalid:\n%w", name, err)
	}
	return p, nil
}

// Decode decodes a policy file strictly (unknown fields, bad globs and
// negative caps are errors at file:line). An empty file is an error too: an
// operator who names a policy means one. The policy is nil when there is
// any error.
func Decode(file string, data []byte) (*Policy, manifest.Diagnostics) {
	p := &Policy{}
	lines, ok, diags := manifest.DecodeDocument(file, data, manifest.ConfigAPIVersion, Kind, p)
	if !ok {
		if len(diags) == 0 {
			diags = manifest.Diagnostics{{File: file, Severity: manifest.SeverityError,
				Message: fmt.Sprintf("empty: want a %s document (apiVersion %s)", Kind, manifest.ConfigAPIVersion)}}
		}
		return nil, diags
	}
	sum := sha256.Sum256([]byte(file + "\x00" + string(data)))
	p.file, p.lines, p.digest = file, lines, hex.EncodeToString(sum[:])
	diags = append(diags, p.validate()...)
	diags.Sort()
	if diags.HasErrors() {
		return nil, diags
	}
	return p, diags
}

// validate checks what the decoder cannot: globs, names and caps.
func (p *Policy) validate() manifest.Diagnostics {
	var out manifest.Diagnostics
	errf := func(field, format string, args ...any) {
		out = append(out, p.errorAt(field, fmt.Sprintf(format, args...)))
	}
	for i, r := range p.Paths {
		f := fmt.Sprintf("paths[%d]", i)
		if err := checkPathGlob(r.Path); err != nil {
			errf(f+".path", "%v", err)
		}
		if len(r.Namespaces) == 0 && !r.ClusterScoped {
			errf(f, "allows nothing: list namespaces, or set clusterScoped")
		}
		for j, ns := range r.Namespaces {
			if err := checkNamePattern(ns); err != nil {
				errf(fmt.Sprintf("%s.namespaces[%d]", f, j), "%v", err)
			}
		}
	}
	for i, r := range p.Plans {
		f := fmt.Sprintf("plans[%d]", i)
		if len(r.Namespaces) == 0 {
			errf(f+".namespaces", "required: the namespaces this rule is for")
		}
		for j, ns := range r.Namespaces {
			if err := checkNamePattern(ns); err != nil {
				errf(fmt.Sprintf("%s.namespaces[%d]", f, j), "%v", err)
			}
		}
		for j, a := range r.Allow {
			af := fmt.Sprintf("%s.allow[%d]", f, j)
			if err := checkNamePattern(a.Class); err != nil {
				errf(af+".class", "%v", err)
			}
			if len(a.Plans) == 0 {
				errf(af+".plans", `required: the plans allowed (["*"] for all)`)
			}
			for k, pl := range a.Plans {
				if err := checkNamePattern(pl); err != nil {
					errf(fmt.Sprintf("%s.plans[%d]", af, k), "%v", err)
				}
			}
		}
	}
	for _, c := range []struct {
		field string
		v     *int
	}{{"maxCreatesPerPass", p.MaxCreatesPerPass}, {"maxDeletesPerPass", p.MaxDeletesPerPass}} {
		if c.v != nil && *c.v < 0 {
			errf(c.field, "must not be negative")
		}
	}
	return out
}

// errorAt is an error diagnostic at field of the policy file.
func (p *Policy) errorAt(field, msg string) manifest.Diagnostic {
	return manifest.Diagnostic{File: p.file, Line: p.lines.Line(field), Field: field, Severity: manifest.SeverityError, Message: msg}
}

// where names a field of the policy file as file:line, for messages.
func (p *Policy) where(field string) string {
	if l := p.lines.Line(field); l > 0 {
		return fmt.Sprintf("%s:%d", p.file, l)
	}
	return p.file
}

// checkPathGlob reports a path glob that could never match a file path or
// that path.Match would reject.
func checkPathGlob(g string) error {
	if g == "" {
		return errors.New("required: a glob over repository paths, e.g. teams/a/**")
	}
	if strings.HasPrefix(g, "/") || strings.HasPrefix(g, "./") {
		return fmt.Errorf("%q: paths are relative to the repository root, without a leading / or ./", g)
	}
	for _, seg := range strings.Split(g, "/") {
		if seg == "**" {
			continue
		}
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%q: empty, . or .. path segment", g)
		}
		if strings.Contains(seg, "**") {
			return fmt.Errorf("%q: ** must be a whole path segment", g)
		}
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("%q: %v", g, err)
		}
	}
	return nil
}

// checkNamePattern reports an empty name pattern.
func checkNamePattern(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("empty name")
	}
	return nil
}

// matchPath reports whether the slash-separated file matches glob: "**"
// matches zero or more whole segments, other segments as path.Match.
func matchPath(glob, file string) bool {
	return matchSegments(strings.Split(glob, "/"), strings.Split(file, "/"))
}

func matchSegments(g, f []string) bool {
	for len(g) > 0 {
		if g[0] == "**" {
			// Collapse runs of ** and try every split.
			for len(g) > 0 && g[0] == "**" {
				g = g[1:]
			}
			if len(g) == 0 {
				return true
			}
			for i := range f {
				if matchSegments(g, f[i:]) {
					return true
				}
			}
			return false
		}
		if len(f) == 0 {
			return false
		}
		if ok, _ := path.Match(g[0], f[0]); !ok {
			return false
		}
		g, f = g[1:], f[1:]
	}
	return len(f) == 0
}

// matchName reports whether s matches pattern, where "*" matches any run of
// characters (slashes included) and everything else is literal.
func matchName(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return strings.HasSuffix(s, last)
}

// matchAny reports whether s matches one of patterns.
func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if matchName(p, s) {
			return true
		}
	}
	return false
}
