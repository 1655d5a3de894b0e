package integrity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/osbgit/osbgit/reconciler/secrets"
)

// SecretStore is what the Keeper needs of the secret store
// (secretstore.Dir and secretstore.Kube satisfy it). Get of a missing
// Secret returns an error matching secrets.ErrNotFound.
type SecretStore interface {
	Get(ctx context.Context, namespace, name string) (map[string][]byte, error)
	Put(ctx context.Context, namespace, name string, s secrets.Secret) error
	CreateOnce(ctx context.Context, namespace, name string, s secrets.Secret) (map[string][]byte, error)
}

// The Secrets a Keeper keeps, in its namespace.
const (
	// KeySecretName holds the signing key under data key "key": 32
	// random bytes, created once and never written again.
	KeySecretName = "osbgit-records-key"
	// SequenceSecretName holds the highest sequence sealed per status
	// branch: one data key per branch (see sequenceKey), a decimal.
	SequenceSecretName = "osbgit-records-sequence"
)

const (
	// keyDataKey is the data key of the signing key in KeySecretName.
	keyDataKey = "key"
	// keySize is the length of a new key, and the least a stored key
	// may have: SHA-256's output size, below which RFC 2104 discourages
	// an HMAC key.
	keySize = 32
	// annotationDescription tells whoever finds one of the Keeper's
	// Secrets what it is for.
	annotationDescription = "osbgit.dev/description"
)

// Keeper holds the signing key and the highest sequence written, in two
// Secrets of its namespace: KeySecretName and SequenceSecretName. Both are
// written as osbgit's (the managed-by label), like every Secret osbgit
// writes. A Keeper is safe for concurrent use.
type Keeper struct {
	store     SecretStore
	namespace string

	// keyMu guards key, the signing key once read or created.
	keyMu sync.Mutex
	key   []byte
	// raiseMu serialises this Keeper's Raise calls, whose
	// read-modify-write of SequenceSecretName would otherwise lose
	// updates between goroutines.
	raiseMu sync.Mutex
}

// NewKeeper returns a Keeper of the Secrets in namespace of store.
func NewKeeper(store SecretStore, namespace string) *Keeper {
	return &Keeper{store: store, namespace: namespace}
}

// Key returns the signing key, creating it on first use: 32 random bytes,
// written with CreateOnce, so two processes starting together get the
// same key (the one whose write came first). The key is read first and
// created only when missing, so a deployment whose key exists needs no
// permission to create Secrets. Cached after the first success; a failure
// is not cached. The slice returned is the caller's.
func (k *Keeper) Key(ctx context.Context) ([]byte, error) {
	k.keyMu.Lock()
	defer k.keyMu.Unlock()
	if k.key == nil {
		key, err := k.loadKey(ctx)
		if err != nil {
			return nil, fmt.Errorf("records signing key: %w", err)
		}
		k.key = key
	}
	return slices.Clone(k.key), nil
}

func (k *Keeper) loadKey(ctx context.Context) ([]byte, error) {
	data, err := k.store.Get(ctx, k.namespace, KeySecretName)
	if errors.Is(err, secrets.ErrNotFound) {
		fresh := make([]byte, keySize)
		rand.Read(fresh) // never fails (crypto/rand since Go 1.24)
		data, err = k.store.CreateOnce(ctx, k.namespace, KeySecretName,
			keeperSecret(map[string][]byte{keyDataKey: fresh}, "the key that signs osbgit's record commits; never edit it: records signed with another key are unverified"))
	}
	if err != nil {
		return nil, err
	}
	key := data[keyDataKey]
	if len(key) < keySize {
		return nil, fmt.Errorf("secret %s/%s: data key %q holds %d bytes, want at least %d",
			k.namespace, KeySecretName, keyDataKey, len(key), keySize)
	}
	return key, nil
}

// Highest returns the highest sequence recorded for branch (0 when none).
func (k *Keeper) Highest(ctx context.Context, branch string) (uint64, error) {
	data, err := k.sequences(ctx)
	if err != nil {
		return 0, err
	}
	return k.highest(data, branch)
}

// Raise records seq for branch when it is higher than the one recorded;
// it never lowers it. It is a plain read-modify-write of
// SequenceSecretName (Put replaces the whole Secret): calls in one Keeper
// are serialised, but two processes raising at once may lose one's write,
// for its branch or another's. What that leaves is a recorded sequence
// lower than the highest sealed, by at most the seals of that race, which
// only weakens rollback detection by that much (a rollback to one of
// those few seals goes unnoticed); the next Raise of that branch sets it
// right. A lock across processes would cost more than that is worth.
func (k *Keeper) Raise(ctx context.Context, branch string, seq uint64) error {
	k.raiseMu.Lock()
	defer k.raiseMu.Unlock()
	data, err := k.sequences(ctx)
	if err != nil {
		return err
	}
	cur, err := k.highest(data, branch)
	if err != nil || seq <= cur {
		return err
	}
	data[sequenceKey(branch)] = []byte(strconv.FormatUint(seq, 10))
	err = k.store.Put(ctx, k.namespace, SequenceSecretName,
		keeperSecret(data, "the highest sequence osbgit has sealed per status branch, to recognise a records ref moved back; never lower it"))
	if err != nil {
		return fmt.Errorf("records sequence: %w", err)
	}
	return nil
}

// sequences reads SequenceSecretName; a missing Secret is an empty one.
func (k *Keeper) sequences(ctx context.Context) (map[string][]byte, error) {
	data, err := k.store.Get(ctx, k.namespace, SequenceSecretName)
	if errors.Is(err, secrets.ErrNotFound) {
		return map[string][]byte{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("records sequence: %w", err)
	}
	return data, nil
}

// highest parses branch's entry of data, the content of
// SequenceSecretName; 0 when it has none.
func (k *Keeper) highest(data map[string][]byte, branch string) (uint64, error) {
	key := sequenceKey(branch)
	v, ok := data[key]
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("records sequence: secret %s/%s: data key %s (branch %q) is not a decimal number",
			k.namespace, SequenceSecretName, key, branch)
	}
	return n, nil
}

// sequenceKey is branch's data key in SequenceSecretName: "seq-" and the
// first 16 hex digits of sha256(branch), a valid Secret key whatever the
// branch is called.
func sequenceKey(branch string) string {
	sum := sha256.Sum256([]byte(branch))
	return "seq-" + hex.EncodeToString(sum[:8])
}

// keeperSecret is a Secret of the Keeper's: data, marked as osbgit's, with
// a description for whoever finds it.
func keeperSecret(data map[string][]byte, description string) secrets.Secret {
	return secrets.Secret{
		Data:        data,
		Labels:      map[string]string{secrets.LabelManagedBy: secrets.ManagedByValue},
		Annotations: map[string]string{annotationDescription: description},
	}
}
