// Package integrity signs osbgit's record commits and tells a seal osbgit
// made from anything else: a record edited, copied or deleted by a person,
// or a ref moved back to an older commit of osbgit's.
//
// Each record commit osbgit writes carries a Seal in its message: the
// status branch, a sequence number (1 for the first seal of a branch, +1
// per record commit) and the hash of the .osbgit tree the commit holds,
// with an HMAC-SHA256 over the three under a key only osbgit can read. A
// Keeper holds that key, created once in the secret store, and the highest
// sequence osbgit has sealed per branch, so a ref moved back to an older,
// validly sealed commit is recognised as a rollback (its sequence is lower
// than the Keeper's).
//
// What this cannot stop: whoever can read the key Secret can forge seals,
// and whoever can write the sequence Secret can hide a rollback; both
// Secrets are as sensitive as broker credentials. Whoever can push to the
// records ref can still delete or rewind it, which the caller detects
// (Highest is above what the ref holds) but cannot undo from Git alone.
//
// Everything here is pure except the Keeper, which reads and writes the
// secret store. No error and no log holds the key.
package integrity

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Seal is what osbgit signs for one record commit.
type Seal struct {
	// Branch is the status branch the records belong to.
	Branch string
	// Sequence is 1 for the first seal of Branch, +1 per record commit.
	Sequence uint64
	// Tree is the hex hash of the .osbgit tree the commit holds.
	Tree string
	// MAC is the hex HMAC-SHA256 over the three fields above (see Sign).
	MAC string
}

// macVersion starts every MAC input; a new layout gets a new tag, so a
// seal of one layout never verifies as another.
const macVersion = "osbgit-seal-v1\x00"

// macInput is what the MAC covers: the version tag, then branch and tree
// each prefixed with their length and seq in a fixed 8 bytes, so no two
// different (branch, seq, tree) give the same input.
func macInput(branch string, seq uint64, tree string) []byte {
	b := make([]byte, 0, len(macVersion)+3*8+len(branch)+len(tree))
	b = append(b, macVersion...)
	b = binary.BigEndian.AppendUint64(b, uint64(len(branch)))
	b = append(b, branch...)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint64(b, uint64(len(tree)))
	b = append(b, tree...)
	return b
}

func mac(key []byte, branch string, seq uint64, tree string) string {
	h := hmac.New(sha256.New, key)
	h.Write(macInput(branch, seq, tree))
	return hex.EncodeToString(h.Sum(nil))
}

// Sign returns the seal of tree for branch at sequence seq.
func Sign(key []byte, branch string, seq uint64, tree string) Seal {
	return Seal{Branch: branch, Sequence: seq, Tree: tree, MAC: mac(key, branch, seq, tree)}
}

// Valid reports whether s's MAC is right for key. The comparison takes the
// same time wherever the MACs differ, so trying seals against osbgit
// teaches nothing about the right one. An empty key verifies nothing: a
// caller that lost its key must not accept every seal made without one.
func (s Seal) Valid(key []byte) bool {
	if len(key) == 0 {
		return false
	}
	want := mac(key, s.Branch, s.Sequence, s.Tree)
	return subtle.ConstantTimeCompare([]byte(want), []byte(s.MAC)) == 1
}

// The trailer keys of a seal, one per field, in the order Trailer writes
// them.
const (
	trailerPrefix   = "Osbgit-Seal-"
	trailerBranch   = trailerPrefix + "Branch"
	trailerSequence = trailerPrefix + "Sequence"
	trailerTree     = trailerPrefix + "Tree"
	trailerMAC      = trailerPrefix + "MAC"
)

var trailerKeys = []string{trailerBranch, trailerSequence, trailerTree, trailerMAC}

// Trailer renders s as commit-message trailer lines, one
// "Osbgit-Seal-<Field>: <value>" line per field, each ending in a newline.
// Append it to a commit message after a blank line, as its last
// paragraph (Git's trailer convention); ParseMessage finds it there.
func (s Seal) Trailer() string {
	return fmt.Sprintf("%s: %s\n%s: %d\n%s: %s\n%s: %s\n",
		trailerBranch, s.Branch, trailerSequence, s.Sequence, trailerTree, s.Tree, trailerMAC, s.MAC)
}

// ErrNoSeal is ParseMessage's error for a message that carries no seal.
var ErrNoSeal = errors.New("no osbgit seal")

// maxBranch bounds the Branch of a parsed seal (Git refuses longer ref
// names on most file systems anyway).
const maxBranch = 1024

// ParseMessage finds the seal trailer in a commit message: the last
// paragraph (lines between blank lines) that holds an Osbgit-Seal- line,
// so a seal quoted earlier in the message does not count and a line added
// after the trailer (such as "[skip ci]") does not hide it. Other lines in
// that paragraph are ignored. It returns ErrNoSeal when no line of the
// message starts with Osbgit-Seal-, and an error naming the line and the
// field when the seal is malformed: a field missing, repeated or unknown,
// a Branch empty or holding control characters, a Sequence that is not a
// decimal from 1 to 2^64-1 without leading zeros, a Tree that is not a
// lowercase hex SHA-1 or SHA-256, a MAC that is not 64 lowercase hex
// digits. A parsed seal is not a valid one: check it with Valid.
func ParseMessage(msg string) (Seal, error) {
	paragraph, first, ok := sealParagraph(msg)
	if !ok {
		return Seal{}, ErrNoSeal
	}
	var s Seal
	seen := map[string]int{}
	for i, line := range paragraph {
		lineNo := first + i
		key, value, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(key, trailerPrefix) {
			continue
		}
		value = strings.TrimSpace(value)
		if prev, dup := seen[key]; dup {
			return Seal{}, fmt.Errorf("osbgit seal: line %d: %s repeated (first on line %d)", lineNo, key, prev)
		}
		seen[key] = lineNo
		var err error
		switch key {
		case trailerBranch:
			s.Branch, err = parseBranch(value)
		case trailerSequence:
			s.Sequence, err = parseSequence(value)
		case trailerTree:
			s.Tree, err = parseHex(value, 40, 64)
		case trailerMAC:
			s.MAC, err = parseHex(value, 2*sha256.Size)
		default:
			err = fmt.Errorf("unknown field (want %s)", strings.Join(trailerKeys, ", "))
		}
		if err != nil {
			return Seal{}, fmt.Errorf("osbgit seal: line %d: %.80s: %w", lineNo, key, err)
		}
	}
	for _, key := range trailerKeys {
		if _, ok := seen[key]; !ok {
			return Seal{}, fmt.Errorf("osbgit seal: lines %d-%d: %s missing", first, first+len(paragraph)-1, key)
		}
	}
	return s, nil
}

// sealParagraph returns the lines of the last paragraph of msg that holds
// a line starting with trailerPrefix, and the 1-based number of its first
// line; ok is false when there is none. Lines lose a trailing "\r".
func sealParagraph(msg string) (paragraph []string, first int, ok bool) {
	var cur []string
	curFirst, curHasSeal := 0, false
	for i, line := range strings.Split(msg, "\n") {
		lineNo := i + 1
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" {
			cur, curHasSeal = nil, false
			continue
		}
		if cur == nil {
			curFirst = lineNo
		}
		cur = append(cur, line)
		if strings.HasPrefix(line, trailerPrefix) {
			curHasSeal = true
		}
		if curHasSeal {
			paragraph, first, ok = cur, curFirst, true
		}
	}
	return paragraph, first, ok
}

func parseBranch(v string) (string, error) {
	switch {
	case v == "":
		return "", errors.New("empty")
	case len(v) > maxBranch:
		return "", fmt.Errorf("longer than %d bytes", maxBranch)
	case strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "", errors.New("holds a control character")
	}
	return v, nil
}

func parseSequence(v string) (uint64, error) {
	if v == "" || v[0] < '1' || v[0] > '9' || strings.ContainsFunc(v, func(r rune) bool { return r < '0' || r > '9' }) {
		return 0, fmt.Errorf("%.40q is not a decimal number from 1 without leading zeros", v)
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%.40q is larger than %d", v, uint64(1<<64-1))
	}
	return n, nil
}

// parseHex checks that v is lowercase hex of one of lengths.
func parseHex(v string, lengths ...int) (string, error) {
	okLen := false
	for _, n := range lengths {
		okLen = okLen || len(v) == n
	}
	if !okLen || strings.ContainsFunc(v, func(r rune) bool { return (r < '0' || r > '9') && (r < 'a' || r > 'f') }) {
		want := make([]string, len(lengths))
		for i, n := range lengths {
			want[i] = strconv.Itoa(n)
		}
		return "", fmt.Errorf("%.80q is not %s lowercase hex digits", v, strings.Join(want, " or "))
	}
	return v, nil
}
