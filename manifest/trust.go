package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// DefaultBrokerAuthNamespace is where broker auth Secrets may live when the
// operator names no namespace and osbgit cannot tell its own: the namespace
// of the example deployment.
const DefaultBrokerAuthNamespace = "osbgit-system"

// CheckBrokerAuthNamespaces refuses broker auth Secrets outside the
// namespaces the operator allows. Any committer can write a broker manifest
// naming any Secret; without this check, a merged broker would carry another
// team's Secret to the URL its author chose. The diagnostic names the file,
// line and field. An empty allowed list allows no namespace at all.
func CheckBrokerAuthNamespaces(set *Set, allowed []string) Diagnostics {
	var out Diagnostics
	for _, b := range set.Brokers() {
		ai := b.GetBrokerSpec().AuthInfo
		if ai == nil {
			continue
		}
		for _, a := range []struct {
			field string
			cfg   *SecretAuthConfig
		}{{"spec.authInfo.basic.secretRef.namespace", ai.Basic}, {"spec.authInfo.bearer.secretRef.namespace", ai.Bearer}} {
			if a.cfg == nil || a.cfg.SecretRef == nil {
				continue
			}
			ns := a.cfg.SecretRef.Namespace
			if ns == "" && b.GetRef().Kind == KindServiceBroker {
				ns = b.GetRef().Namespace
			}
			if ns == "" || slices.Contains(allowed, ns) {
				continue
			}
			out = append(out, Diagnostic{File: b.GetSource().File, Line: b.FieldLine(a.field), Field: a.field,
				Severity: SeverityError, Ref: b.GetRef(),
				Message: fmt.Sprintf("broker auth Secrets may only come from namespace(s) %s (set by the operator: --broker-auth-namespaces), not %q",
					QuotedList(allowed), ns)})
		}
	}
	out.Sort()
	return out
}

// QuotedList renders names for messages: "a", "b" ("(none)" when empty).
func QuotedList(xs []string) string {
	if len(xs) == 0 {
		return "(none)"
	}
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}

// BrokerEndpoint is what decides where a broker's credentials go: its URL,
// the Secret its auth comes from and how TLS is verified. Two brokers with
// equal endpoints send the same credentials to the same server; catalog
// restrictions and relist settings do not matter for that.
type BrokerEndpoint struct {
	URL                   string
	Auth                  string
	CABundle              []byte
	InsecureSkipTLSVerify bool
}

// EndpointOf returns b's endpoint.
func EndpointOf(b Broker) BrokerEndpoint {
	s := b.GetBrokerSpec()
	e := BrokerEndpoint{URL: s.URL, CABundle: s.CABundle, InsecureSkipTLSVerify: s.InsecureSkipTLSVerify}
	if s.AuthInfo != nil {
		if a, err := json.Marshal(s.AuthInfo); err == nil {
			e.Auth = string(a)
		}
	}
	return e
}

// Equal reports whether two endpoints send the same credentials to the same
// server.
func (e BrokerEndpoint) Equal(o BrokerEndpoint) bool {
	return e.URL == o.URL && e.Auth == o.Auth && bytes.Equal(e.CABundle, o.CABundle) && e.InsecureSkipTLSVerify == o.InsecureSkipTLSVerify
}
