package reconciler

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/reconciler/internal/parallel"
	"github.com/osbgit/osbgit/reconciler/redact"
	"github.com/osbgit/osbgit/reconciler/secrets"
)

// readParameterSecrets reads what the parametersFrom entries of set name,
// before planning (plan.Build does no I/O): each Secret once, on all
// cores. A key that cannot be read carries the reason, which blocks only
// the resources naming it. Every value read is taught to learn (its JSON
// leaves): a broker may quote a parameter in its answers.
func readParameterSecrets(ctx context.Context, set *manifest.Set, sr secrets.Reader, learn *redact.Set) manifest.SecretValues {
	keys := manifest.ParameterSecrets(set)
	// The keys are sorted, so those of one Secret are adjacent: starts
	// holds where each Secret's keys begin.
	var starts []int
	for i, k := range keys {
		if i == 0 || k.Namespace != keys[i-1].Namespace || k.Name != keys[i-1].Name {
			starts = append(starts, i)
		}
	}
	values := make([]manifest.SecretValue, len(keys))
	parallel.For(len(starts), func(g int) {
		end := len(keys)
		if g+1 < len(starts) {
			end = starts[g+1]
		}
		readKeys(ctx, sr, keys[starts[g]:end], values[starts[g]:end], learn)
	})
	out := make(manifest.SecretValues, len(keys))
	for i, k := range keys {
		out[k] = values[i]
	}
	return out
}

// readKeys reads one Secret and fills values[i] with keys[i]'s value.
func readKeys(ctx context.Context, sr secrets.Reader, keys []manifest.SecretKey, values []manifest.SecretValue, learn *redact.Set) {
	namespace, name := keys[0].Namespace, keys[0].Name
	var data map[string][]byte
	var err error
	if sr == nil {
		err = fmt.Errorf("secret %s/%s: no secret store configured (use --secret-store)", namespace, name)
	} else if data, err = sr.Get(ctx, namespace, name); err != nil {
		err = fmt.Errorf("secret %s/%s: %w", namespace, name, err)
	}
	for i, k := range keys {
		v, ok := data[k.Key]
		switch {
		case err != nil:
			values[i].Err = err
		case !ok:
			have := strings.Join(slices.Sorted(maps.Keys(data)), ", ")
			values[i].Err = fmt.Errorf("secret %s/%s has no key %q (keys: %s)", namespace, name, k.Key, have)
		default:
			learn.AddJSON(v)
			values[i].Value = v
		}
	}
}
