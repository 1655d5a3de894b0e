package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/osbgit/osbgit/manifest"
)

// PassState is what a pass remembers for the next one so that a pass with
// nothing to do ends after one ref lookup: the last revision it reconciled,
// when each broker was last relisted, whether operations are in flight, and
// when the next drift check is due. `run` keeps it in memory; a CronJob keeps
// it in a StateStore: a file on its cache volume (StateFile) or a ConfigMap
// (package kubestate). Without one, every pass is a full pass.
type PassState struct {
	// ObservedHead is the manifest branch head the last pass reconciled —
	// after its own push, the pushed commit, so osbgit's own commits never
	// trigger work.
	ObservedHead string `json:"observedHead,omitempty"`
	// ObservedStatusHead is the status branch head after the last pass.
	ObservedStatusHead string `json:"observedStatusHead,omitempty"`
	// LastRelist is when each broker's catalog was last fetched
	// successfully (the catalog record's fetchedAt moves only when the
	// catalog changes, to avoid timestamp-only commits).
	LastRelist map[string]time.Time `json:"lastRelist,omitempty"`
	// NextRelist is the earliest scheduled relist among the brokers (zero:
	// none scheduled).
	NextRelist time.Time `json:"nextRelist,omitzero"`
	// InFlight is the number of async operations recorded in progress (and
	// resources waiting to be retried) after the last pass; while it is
	// non-zero every pass runs.
	InFlight int `json:"inFlight,omitempty"`
	// NextPoll is when the operations in flight should be polled next
	// (the earliest Retry-After or backoff the last pass saw; zero when
	// unknown).
	NextPoll time.Time `json:"nextPoll,omitzero"`
	// NextDriftCheck is when live state is next compared (zero: never).
	NextDriftCheck time.Time `json:"nextDriftCheck,omitzero"`
	// Secrets are the Secrets the last pass depended on, with keyed
	// checksums (secretcheck.go): a sync whose head has not moved reads
	// them and runs a pass when one changed.
	Secrets *SecretSums `json:"secrets,omitempty"`
	// Index names the scope index the last pass that planned left
	// (scope.go): the next pass whose head moved reads only what changed
	// since, when that index is at hand. Empty: it loads everything.
	Index string `json:"index,omitempty"`
}

func (s *PassState) lastRelist(ref manifest.Ref) time.Time {
	if s == nil || s.LastRelist == nil {
		return time.Time{}
	}
	return s.LastRelist[ref.String()]
}

func (s *PassState) setLastRelist(ref manifest.Ref, t time.Time) {
	if s.LastRelist == nil {
		s.LastRelist = map[string]time.Time{}
	}
	s.LastRelist[ref.String()] = t
}

// quietUntil reports whether, at now, a pass with an unchanged head has
// nothing to do.
func (s *PassState) quiet(head string, now time.Time) bool {
	if s == nil || s.ObservedHead == "" || head != s.ObservedHead || s.InFlight > 0 {
		return false
	}
	if !s.NextRelist.IsZero() && !now.Before(s.NextRelist) {
		return false
	}
	if !s.NextDriftCheck.IsZero() && !now.Before(s.NextDriftCheck) {
		return false
	}
	return true
}

// StateStore keeps the pass state between processes. A state that is lost,
// unreadable or not saved only costs a full pass.
type StateStore interface {
	// LoadState returns the saved state; an empty one when none is saved.
	LoadState(ctx context.Context) (*PassState, error)
	// SaveState replaces the saved state.
	SaveState(ctx context.Context, s *PassState) error
}

// StateFile is a StateStore in a file (a CronJob's cache volume).
type StateFile string

// LoadState reads the file; a missing or corrupt file gives an empty state.
func (f StateFile) LoadState(context.Context) (*PassState, error) { return LoadPassState(string(f)) }

// SaveState writes the file atomically.
func (f StateFile) SaveState(_ context.Context, s *PassState) error { return s.Save(string(f)) }

// DecodePassState decodes a saved state; corrupt data gives an empty state
// (it only costs a full pass).
func DecodePassState(b []byte) *PassState {
	st := &PassState{}
	if err := json.Unmarshal(b, st); err != nil {
		return &PassState{}
	}
	return st
}

// Encode is the saved form of the state (indented JSON).
func (s *PassState) Encode() ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode pass state: %w", err)
	}
	return b, nil
}

// LoadPassState reads a state file; a missing file gives an empty state.
func LoadPassState(path string) (*PassState, error) {
	st := &PassState{}
	if path == "" {
		return st, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pass state: %w", err)
	}
	return DecodePassState(b), nil
}

// Save writes the state file atomically.
func (s *PassState) Save(path string) error {
	if path == "" {
		return nil
	}
	b, err := s.Encode()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write pass state: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write pass state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write pass state: %w", err)
	}
	return nil
}
