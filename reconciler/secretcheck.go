package reconciler

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/reconciler/internal/parallel"
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/secrets"
)

// Secrets change without a commit: a rotated parametersFrom or broker auth
// Secret, a binding Secret someone deleted or edited. The pass state keeps a
// checksum of each Secret the last pass depended on (SecretSums), so a sync
// whose head has not moved still notices such a change by reading those
// Secrets (secretsChanged), and runs a pass. The pass compares the binding
// Secrets with what osbgit wrote (observeSecrets) and the planner restores
// them from the broker; a changed broker auth Secret forces a relist.
// The parametersFrom and auth Secrets are few and read every time; the
// binding Secrets, one per binding, are read back only when a sweep is due
// (Options.SecretSweepInterval, SyncAfterSecretChange): reading 10,000 of
// them made the quiet-head sync of make bench's noop-pass figure 2 s
// instead of a ref lookup.
//
// The checksums are HMAC-SHA256 with a key derived from osbgit's records
// key (the secret store's osbgit-records-key), never plain hashes: the pass
// state may sit in a ConfigMap that more people can read than the Secrets,
// and a plain hash of a short value (a PIN, a port, a password from a
// small set) is brute-forced offline. They are kept only in the pass state,
// never in Git: losing them costs one pass that cannot tell an edited
// binding Secret whose keys are unchanged (a deleted one, or one whose keys
// differ from the record's, is still restored), not a wrong action.

// Sentinel checksums of SecretSums.
const (
	// sumAbsent: the Secret did not exist or could not be read.
	sumAbsent = "absent"
	// sumRestore: a binding Secret whose drift the last pass found but
	// did not repair, with no checksum of what osbgit wrote; it never
	// matches, so every sync runs a pass until it is restored.
	sumRestore = "restore"
)

// secretChecksumContext separates the checksum key from the records key
// it is derived from (the records key signs records; this one only
// fingerprints Secret contents).
const secretChecksumContext = "osbgit secret checksums v1"

// secretHasher makes keyed checksums of Secret contents.
type secretHasher struct {
	key []byte
	// id names the key (itself keyed), so checksums made with another
	// key are not compared.
	id string
}

func newSecretHasher(base []byte) *secretHasher {
	m := hmac.New(sha256.New, base)
	m.Write([]byte(secretChecksumContext))
	h := &secretHasher{key: m.Sum(nil)}
	h.id = h.mac([]byte("key id"))[:12]
	return h
}

func (h *secretHasher) mac(b []byte) string {
	m := hmac.New(sha256.New, h.key)
	m.Write(b)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// sum is the checksum of a Secret's data: every key and value,
// length-prefixed, in key order.
func (h *secretHasher) sum(data map[string][]byte) string {
	m := hmac.New(sha256.New, h.key)
	var n [8]byte
	for _, k := range slices.Sorted(maps.Keys(data)) {
		for _, b := range [][]byte{[]byte(k), data[k]} {
			binary.BigEndian.PutUint64(n[:], uint64(len(b)))
			m.Write(n[:])
			m.Write(b)
		}
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// secretHasher returns the reconciler's hasher, derived from the records
// key; without one (no key keeper, or it failed) a random key of this
// process, whose checksums a later process does not compare.
func (r *Reconciler) secretHasher(ctx context.Context) *secretHasher {
	r.hasherOnce.Do(func() {
		var base []byte
		if r.Keys != nil {
			k, err := r.Keys.Key(ctx)
			if err != nil {
				r.Log.WithError(err).Warn("records key not read: Secret checksums are kept for this process only")
			}
			base = k
		}
		if base == nil {
			base = make([]byte, 32)
			_, _ = rand.Read(base)
		}
		r.hasher = newSecretHasher(base)
	})
	return r.hasher
}

// SecretName is a Secret's namespace and name.
type SecretName struct {
	Namespace, Name string
}

// String is "namespace/name", the form the pass state keys Secrets by.
func (n SecretName) String() string { return n.Namespace + "/" + n.Name }

func parseSecretName(s string) SecretName {
	ns, name, _ := strings.Cut(s, "/")
	return SecretName{Namespace: ns, Name: name}
}

// SecretSums are the Secrets the last pass depended on, with a keyed
// checksum of each (see secretHasher): never a value.
type SecretSums struct {
	// KeyID names the key the checksums were made with.
	KeyID string `json:"keyID"`
	// Referenced are the parametersFrom and broker auth Secrets the
	// manifests name, by "namespace/name".
	Referenced map[string]string `json:"referenced,omitempty"`
	// Bindings are the Secrets osbgit wrote binding credentials to, with
	// the checksum of what it wrote.
	Bindings map[string]string `json:"bindings,omitempty"`
	// BindingsSwept is when a pass last read back every binding Secret
	// (Options.SecretSweepInterval).
	BindingsSwept time.Time `json:"bindingsSwept,omitzero"`
}

// secretSweepDue reports whether the binding Secrets are due to be read
// back: never swept, swept with another key, or interval ago or longer.
func (s *PassState) secretSweepDue(now time.Time, interval time.Duration) bool {
	if s == nil || s.Secrets == nil || s.Secrets.BindingsSwept.IsZero() || interval <= 0 {
		return true
	}
	return !now.Before(s.Secrets.BindingsSwept.Add(interval))
}

// ReferencedSecrets lists the Secrets whose change makes a pass due:
// referenced are those the manifests name (parametersFrom, broker auth),
// bindings those osbgit wrote (labelled app.kubernetes.io/managed-by=osbgit).
// `run` watches them.
func (s *PassState) ReferencedSecrets() (referenced, bindings []SecretName) {
	if s == nil || s.Secrets == nil {
		return nil, nil
	}
	for _, k := range slices.Sorted(maps.Keys(s.Secrets.Referenced)) {
		referenced = append(referenced, parseSecretName(k))
	}
	for _, k := range slices.Sorted(maps.Keys(s.Secrets.Bindings)) {
		bindings = append(bindings, parseSecretName(k))
	}
	return referenced, bindings
}

// secretRead is what reading one Secret told.
type secretRead struct {
	// sum is the data's checksum; sumAbsent when missing or unreadable.
	sum string
	// missing: the store said it does not exist.
	missing bool
	// keys are its keys, sorted (nil unless read).
	keys []string
}

// managedLister reads at once the Secrets osbgit manages in a namespace
// (secretstore.Kube: one LIST instead of a GET each).
type managedLister interface {
	ListManaged(ctx context.Context, namespace string) (map[string]map[string][]byte, error)
}

// readSecrets reads each named Secret once, on all cores, keeping only
// checksums and key names. The referenced ones (parametersFrom, broker
// auth) are read one by one. The binding Secrets, which osbgit wrote and
// labelled, are read with one LIST per namespace where the store has it
// (managedLister); one not in the list (deleted, or its label removed)
// is read by itself, so the answer is what reading each would give.
func readSecrets(ctx context.Context, store secrets.Reader, h *secretHasher, referenced, bindings []string) map[string]secretRead {
	var mu sync.Mutex
	out := make(map[string]secretRead, len(referenced)+len(bindings))
	set := func(name string, data map[string][]byte, err error) {
		got := secretRead{sum: sumAbsent, missing: errors.Is(err, secrets.ErrNotFound)}
		if err == nil {
			got = secretRead{sum: h.sum(data), keys: slices.Sorted(maps.Keys(data))}
		}
		mu.Lock()
		out[name] = got
		mu.Unlock()
	}
	get := func(name string) {
		n := parseSecretName(name)
		data, err := store.Get(ctx, n.Namespace, n.Name)
		set(name, data, err)
	}
	single := slices.Clone(referenced)
	byNamespace := map[string][]string{}
	lister, canList := store.(managedLister)
	for _, name := range bindings {
		switch {
		case slices.Contains(referenced, name):
		case canList:
			ns := parseSecretName(name).Namespace
			byNamespace[ns] = append(byNamespace[ns], name)
		default:
			single = append(single, name)
		}
	}
	parallel.For(len(single), func(i int) { get(single[i]) })
	namespaces := slices.Sorted(maps.Keys(byNamespace))
	parallel.For(len(namespaces), func(i int) {
		names := byNamespace[namespaces[i]]
		listed, err := lister.ListManaged(ctx, namespaces[i])
		for _, name := range names {
			if data, ok := listed[parseSecretName(name).Name]; ok && err == nil {
				set(name, data, nil)
			} else {
				get(name)
			}
		}
	})
	return out
}

// secretsChanged reads the Secrets of the pass state and returns those
// whose checksum differs from the one kept (names only). It is the check a
// sync with an unchanged head makes: the parametersFrom and broker auth
// Secrets always, the binding Secrets when sweepBindings. Nil when nothing
// changed or nothing is kept.
func (r *Reconciler) secretsChanged(ctx context.Context, sweepBindings bool) []string {
	ss := r.State.Secrets
	if ss == nil || r.Secrets == nil || len(ss.Referenced)+len(ss.Bindings) == 0 {
		return nil
	}
	h := r.secretHasher(ctx)
	if ss.KeyID != h.id {
		return []string{"(the checksum key changed)"}
	}
	want := map[string]string{}
	maps.Copy(want, ss.Referenced)
	var bindings []string
	if sweepBindings {
		for k, v := range ss.Bindings {
			if w, ok := want[k]; ok && w != v {
				v = sumRestore // the two cannot both match
			}
			want[k] = v
			bindings = append(bindings, k)
		}
	}
	var changed []string
	for name, got := range readSecrets(ctx, r.Secrets, h, slices.Collect(maps.Keys(ss.Referenced)), bindings) {
		if got.sum != want[name] {
			changed = append(changed, name)
		}
	}
	slices.Sort(changed)
	return changed
}

// secretObservation is what a pass found of the Secrets it depends on,
// read before anything else reads them: a change made after this read is
// seen by the next check, never lost.
type secretObservation struct {
	hasher *secretHasher
	// referenced are the checksums of the parametersFrom and broker auth
	// Secrets, by name.
	referenced map[string]string
	// bindings are the checksums to keep of the binding Secrets read
	// (sumRestore for a drift with no known checksum).
	bindings map[string]string
	// drift is what the planner restores.
	drift map[manifest.Ref]plan.SecretDrift
	// relist are brokers whose auth Secret changed since the last pass.
	relist map[manifest.Ref]string

	// swept is when the binding Secrets were last read back: now when
	// this pass swept them.
	swept time.Time

	mu sync.Mutex
	// written are the checksums of the binding Secrets this pass wrote.
	written map[string]string
}

// bindingSecret is the Secret osbgit wrote rec's credentials to, when rec
// is a bound binding that must have one ("" otherwise).
func bindingSecret(rec *manifest.StatusRecord) string {
	if rec == nil || rec.Ref.Kind != manifest.KindServiceBinding || rec.SecretRef == nil || rec.SecretRef.Name == "" ||
		rec.Phase != manifest.PhaseReady || !rec.Provisioned || rec.AsyncOpInProgress {
		return ""
	}
	return recordSecretName(rec).String()
}

// recordSecretName is the Secret rec.SecretRef (not nil) names, in the
// binding's namespace unless it says another.
func recordSecretName(rec *manifest.StatusRecord) SecretName {
	ns := rec.SecretRef.Namespace
	if ns == "" {
		ns = rec.Ref.Namespace
	}
	return SecretName{Namespace: ns, Name: rec.SecretRef.Name}
}

// observeSecrets reads the Secrets the manifests and records depend on and
// compares them with the pass state: broker auth Secrets changed since the
// last pass and, when sweepBindings, binding Secrets deleted or no longer
// holding what osbgit wrote (its checksum, else the recorded keys).
// Without a sweep the binding Secrets keep the checksums the pass state
// has. Nil without a store.
func (r *Reconciler) observeSecrets(ctx context.Context, set *manifest.Set, recs map[manifest.Ref]*manifest.StatusRecord, gate notContacted, sweepBindings bool, now time.Time) *secretObservation {
	if r.Secrets == nil {
		return nil
	}
	h := r.secretHasher(ctx)
	var prior SecretSums
	if ss := r.State.Secrets; ss != nil && ss.KeyID == h.id {
		prior = *ss
	}
	o := &secretObservation{hasher: h, referenced: map[string]string{}, bindings: map[string]string{},
		drift: map[manifest.Ref]plan.SecretDrift{}, relist: map[manifest.Ref]string{}, written: map[string]string{},
		swept: prior.BindingsSwept}

	refNames := map[string]bool{}
	for _, k := range manifest.ParameterSecrets(set) {
		refNames[SecretName{Namespace: k.Namespace, Name: k.Name}.String()] = true
	}
	authOf := map[string][]manifest.Ref{}
	for _, b := range set.Brokers() {
		if gate[b.GetRef()] != "" {
			// Not contacted (its auth Secret's namespace is not
			// allowed, the policy refuses it, ...): its Secret is not
			// read either, nor watched.
			continue
		}
		if ref, _ := b.GetBrokerSpec().AuthInfo.SecretRef(); ref != nil && ref.Name != "" {
			n := SecretName{Namespace: ref.Namespace, Name: ref.Name}.String()
			refNames[n] = true
			authOf[n] = append(authOf[n], b.GetRef())
		}
	}
	bindingOf := map[string][]*manifest.StatusRecord{}
	for _, rec := range recs {
		n := bindingSecret(rec)
		switch {
		case n == "":
		case sweepBindings:
			bindingOf[n] = append(bindingOf[n], rec)
		case prior.Bindings[n] != "":
			o.bindings[n] = prior.Bindings[n]
		}
	}
	if sweepBindings {
		o.swept = now
	}
	reads := readSecrets(ctx, r.Secrets, h, slices.Sorted(maps.Keys(refNames)), slices.Sorted(maps.Keys(bindingOf)))
	for _, n := range slices.Sorted(maps.Keys(reads)) {
		got := reads[n]
		if refNames[n] {
			o.referenced[n] = got.sum
			if old, ok := prior.Referenced[n]; ok && old != got.sum {
				for _, b := range authOf[n] {
					o.relist[b] = "auth Secret " + n + " changed"
				}
			}
		}
		for _, rec := range bindingOf[n] {
			d := bindingDrift(got, prior.Bindings[n], rec.SecretRef.Keys)
			switch {
			case d != "":
				o.drift[rec.Ref] = d
				if old := prior.Bindings[n]; old != "" && old != sumRestore {
					o.bindings[n] = old
				} else {
					o.bindings[n] = sumRestore
				}
			case got.sum != sumAbsent:
				o.bindings[n] = got.sum
			}
		}
	}
	return o
}

// bindingDrift compares a binding Secret read with the checksum of what
// osbgit wrote (kept: "" or sumRestore when unknown, then the recorded
// keys are compared). A Secret that could not be read for another reason
// than its absence is not taken for drift.
func bindingDrift(got secretRead, kept string, keys []string) plan.SecretDrift {
	switch {
	case got.missing:
		return plan.SecretDeleted
	case got.sum == sumAbsent:
		return ""
	case kept != "" && kept != sumRestore:
		if got.sum != kept {
			return plan.SecretEdited
		}
		return ""
	case !slices.Equal(got.keys, slices.Sorted(slices.Values(keys))):
		return plan.SecretEdited
	}
	return ""
}

// driftOrNil is the planner's SecretDrift (nil without an observation).
func (o *secretObservation) driftOrNil() map[manifest.Ref]plan.SecretDrift {
	if o == nil {
		return nil
	}
	return o.drift
}

// wrote is the executor's SecretWritten: it keeps the checksum of what was
// written, never the data.
func (o *secretObservation) wrote(namespace, name string, data map[string][]byte) {
	sum := o.hasher.sum(data)
	o.mu.Lock()
	o.written[SecretName{Namespace: namespace, Name: name}.String()] = sum
	o.mu.Unlock()
}

// sums are the checksums the pass state keeps after the pass: the
// referenced Secrets as read, and the binding Secrets of the records after
// it (final): what this pass wrote, else what was kept or read.
func (o *secretObservation) sums(final map[manifest.Ref]*manifest.StatusRecord) *SecretSums {
	ss := &SecretSums{KeyID: o.hasher.id, Referenced: o.referenced, Bindings: map[string]string{}, BindingsSwept: o.swept}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rec := range final {
		n := bindingSecret(rec)
		if n == "" {
			continue
		}
		if s, ok := o.written[n]; ok {
			ss.Bindings[n] = s
		} else if s, ok := o.bindings[n]; ok {
			ss.Bindings[n] = s
		}
	}
	return ss
}
