package manifest

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Severity is how bad a Diagnostic is.
type Severity string

// Severities. Errors make a manifest invalid (the resource is not acted on);
// warnings are printed but do not fail validation.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Diagnostic is one problem found while loading or validating manifests,
// located precisely enough for an editor: file, line and field path.
type Diagnostic struct {
	// File is the slash-separated path relative to the loaded tree's root.
	File string `json:"file,omitempty"`
	// Line is 1-based; 0 when unknown.
	Line int `json:"line,omitempty"`
	// Field is the path of the offending field, e.g.
	// "spec.clusterServicePlanExternalName", "spec.parameters.size" or
	// "spec.secretTransforms[1].addKey"; empty for document-level problems.
	Field string `json:"field,omitempty"`
	// Severity is error or warning.
	Severity Severity `json:"severity"`
	// Message says what is wrong (and, when possible, how to fix it).
	Message string `json:"message"`
	// Ref is the object concerned; zero when the problem is not tied to one
	// object (a syntax error, say).
	Ref Ref `json:"ref,omitzero"`
}

// String renders "file:line: field: message"; warnings get a "warning: "
// prefix so the two are told apart in CI logs. Missing parts are left out.
func (d Diagnostic) String() string {
	var b strings.Builder
	if d.Severity == SeverityWarning {
		b.WriteString("warning: ")
	}
	switch {
	case d.File != "" && d.Line > 0:
		b.WriteString(d.File + ":" + strconv.Itoa(d.Line) + ": ")
	case d.File != "":
		b.WriteString(d.File + ": ")
	case d.Ref.Kind != "":
		b.WriteString(d.Ref.String() + ": ")
	}
	if d.Field != "" {
		b.WriteString(d.Field + ": ")
	}
	b.WriteString(d.Message)
	return b.String()
}

// Diagnostics is a list of problems. Functions of this package return it
// sorted (by file, line, field, severity, message) so output is stable.
type Diagnostics []Diagnostic

// HasErrors reports whether any diagnostic is an error (warnings don't count).
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == SeverityError {
			return true
		}
	}
	return false
}

// Errors returns only the errors.
func (ds Diagnostics) Errors() Diagnostics {
	return ds.filter(func(d Diagnostic) bool { return d.Severity == SeverityError })
}

// Warnings returns only the warnings.
func (ds Diagnostics) Warnings() Diagnostics {
	return ds.filter(func(d Diagnostic) bool { return d.Severity == SeverityWarning })
}

// For returns the diagnostics about ref, e.g. to write them on its record.
func (ds Diagnostics) For(ref Ref) Diagnostics {
	return ds.filter(func(d Diagnostic) bool { return d.Ref == ref })
}

// ErrorRefs returns the set of objects with at least one error: the planner
// skips those (and reports them) without blocking the others.
func (ds Diagnostics) ErrorRefs() map[Ref]bool {
	m := map[Ref]bool{}
	for _, d := range ds {
		if d.Severity == SeverityError && d.Ref.Kind != "" {
			m[d.Ref] = true
		}
	}
	return m
}

func (ds Diagnostics) filter(keep func(Diagnostic) bool) Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if keep(d) {
			out = append(out, d)
		}
	}
	return out
}

// Sort orders the diagnostics deterministically in place and drops exact
// duplicates.
func (ds *Diagnostics) Sort() {
	s := *ds
	sort.SliceStable(s, func(i, j int) bool {
		a, b := s[i], s[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Field != b.Field {
			return a.Field < b.Field
		}
		if a.Severity != b.Severity {
			return a.Severity == SeverityError
		}
		if a.Message != b.Message {
			return a.Message < b.Message
		}
		return a.Ref.Less(b.Ref)
	})
	out := s[:0]
	for i, d := range s {
		if i > 0 && d == s[i-1] {
			continue
		}
		out = append(out, d)
	}
	*ds = out
}

// Err returns nil when there is no error, else an error whose message lists
// every error diagnostic, one per line.
func (ds Diagnostics) Err() error {
	errs := ds.Errors()
	if len(errs) == 0 {
		return nil
	}
	lines := make([]string, len(errs))
	for i, d := range errs {
		lines[i] = d.String()
	}
	return &DiagnosticsError{Diagnostics: errs, msg: strings.Join(lines, "\n")}
}

// DiagnosticsError is the error returned by Diagnostics.Err; errors.As gives
// access to the individual diagnostics.
type DiagnosticsError struct {
	Diagnostics Diagnostics
	msg         string
}

// Error implements error.
func (e *DiagnosticsError) Error() string { return e.msg }

// IsDiagnostics reports whether err carries manifest diagnostics.
func IsDiagnostics(err error) bool {
	var de *DiagnosticsError
	return errors.As(err, &de)
}

// diagSink collects diagnostics for one file/object.
type diagSink struct {
	file string
	ref  Ref
	out  Diagnostics
}

func (s *diagSink) errorf(line int, field, format string, args ...any) {
	s.out = append(s.out, Diagnostic{File: s.file, Line: line, Field: field, Severity: SeverityError, Message: fmt.Sprintf(format, args...), Ref: s.ref})
}

func (s *diagSink) warnf(line int, field, format string, args ...any) {
	s.out = append(s.out, Diagnostic{File: s.file, Line: line, Field: field, Severity: SeverityWarning, Message: fmt.Sprintf(format, args...), Ref: s.ref})
}
