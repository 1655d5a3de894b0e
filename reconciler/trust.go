package reconciler

import (
	"fmt"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/manifest/gitrepo"
	"github.com/osbgit/osbgit/reconciler/policy"
)

// notContacted maps the brokers a pass must not call to why. Only the
// trusted branch decides where broker credentials may go: a diff of any
// other branch (a pull request) or of a working tree calls a broker only
// when the trusted branch has a broker with the same URL, auth Secret and
// TLS settings. Otherwise a pull request could add a broker (or change an
// existing broker's URL) naming an existing auth Secret, and the CI diff
// that previews it would send that Secret to the pull request's URL.
type notContacted map[manifest.Ref]string

// contactGate returns the brokers of set the pass must not call. A pass
// planning from the trusted head itself calls every broker.
func (r *Reconciler) contactGate(fr gitrepo.FetchResult, set *manifest.Set, workTree bool) (notContacted, error) {
	trusted := r.trustedBranch()
	if !workTree && (fr.Head == fr.TrustedHead || trusted == r.Source.Branch()) {
		// The trusted branch itself.
		return nil, nil
	}
	gate := notContacted{}
	if fr.TrustedHead == "" {
		for _, b := range set.Brokers() {
			gate[b.GetRef()] = fmt.Sprintf("not contacted: the trusted branch %q was not found", trusted)
		}
		return gate, nil
	}
	snap, err := LoadRevision(r.Source, fr.TrustedHead, r.Options.Path, r.Cache, r.assembly()...)
	if err != nil {
		return nil, fmt.Errorf("read the trusted branch %q: %w", trusted, err)
	}
	var known []manifest.BrokerEndpoint
	for _, b := range snap.Set.Brokers() {
		known = append(known, manifest.EndpointOf(b))
	}
	for _, b := range set.Brokers() {
		e := manifest.EndpointOf(b)
		ok := false
		for _, k := range known {
			if k.Equal(e) {
				ok = true
				break
			}
		}
		if !ok {
			gate[b.GetRef()] = fmt.Sprintf("not contacted: differs from %s (its URL, auth Secret or TLS settings are not those of a broker on the trusted branch)", trusted)
		}
	}
	return gate, nil
}

// trustedBranchSource is a Source that knows its trusted branch
// (*gitrepo.Repo).
type trustedBranchSource interface {
	TrustedBranch() string
}

func (r *Reconciler) trustedBranch() string {
	if ts, ok := r.Source.(trustedBranchSource); ok && ts.TrustedBranch() != "" {
		return ts.TrustedBranch()
	}
	return r.Source.Branch()
}

// brokerGate returns the brokers this pass must not call, and the
// diagnostics of broker auth Secrets from namespaces the operator does not
// allow (their brokers are never called: the Secret must not travel even
// to fetch a catalog). Brokers the tenancy policy does not allow are not
// called either.
func (r *Reconciler) brokerGate(fr gitrepo.FetchResult, set *manifest.Set, workTree bool) (notContacted, manifest.Diagnostics, error) {
	authDiags := manifest.CheckBrokerAuthNamespaces(set, r.authNamespaces())
	gate, err := r.contactGate(fr, set, workTree)
	if err != nil {
		return nil, nil, err
	}
	if gate == nil {
		gate = notContacted{}
	}
	for _, d := range authDiags {
		if _, ok := gate[d.Ref]; !ok {
			gate[d.Ref] = "not contacted: its auth Secret comes from a namespace the operator does not allow"
		}
	}
	// Its diagnostics come again from policy.Check, with the others.
	for _, d := range policy.CheckBrokers(set, r.Options.Policy) {
		if _, ok := gate[d.Ref]; !ok {
			gate[d.Ref] = "not contacted: the tenancy policy does not allow its manifest"
		}
	}
	return gate, authDiags, nil
}

// authNamespaces are the namespaces broker auth Secrets may come from.
func (r *Reconciler) authNamespaces() []string {
	if r.Options.BrokerAuthNamespaces != nil {
		return r.Options.BrokerAuthNamespaces
	}
	return []string{manifest.DefaultBrokerAuthNamespace}
}
