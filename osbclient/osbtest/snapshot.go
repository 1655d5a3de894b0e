package osbtest

import (
	"maps"
	"slices"
)

// Snapshot is a copy of a broker's instances, bindings and operations,
// those in flight included (with the polls they have left), taken by
// Broker.Snapshot and put back by Broker.Restore as often as a test likes:
// to start several cases from one state reached part way through a
// lifecycle instead of driving the broker there again for each.
type Snapshot struct {
	instances map[string]*instance
	bindings  map[string]*binding
	aborted   map[string]string
	echoes    map[string][]string
	opSeq     int
}

// Snapshot copies the broker's instances, bindings and operations. The
// configuration, catalog, behaviours, faults and call log are not part of
// it.
func (b *Broker) Snapshot() *Snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := &Snapshot{aborted: maps.Clone(b.aborted), echoes: cloneEchoes(b.echoes), opSeq: b.opSeq}
	s.instances, s.bindings = cloneResources(b.instances, b.bindings)
	return s
}

// Restore replaces the broker's instances, bindings and operations with
// a copy of s's (s stays as it is). Faults and the call log are kept.
func (b *Broker) Restore(s *Snapshot) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.instances, b.bindings = cloneResources(s.instances, s.bindings)
	b.aborted, b.echoes, b.opSeq = maps.Clone(s.aborted), cloneEchoes(s.echoes), s.opSeq
	if b.aborted == nil {
		b.aborted = map[string]string{}
	}
}

// cloneResources deep-copies instances and bindings with their
// operations, each operation pointing at the copy of its resource.
func cloneResources(ins map[string]*instance, bns map[string]*binding) (map[string]*instance, map[string]*binding) {
	var cloneInst func(*instance) *instance
	var cloneBind func(*binding) *binding
	cloneOp := copyOnce(func(op, c *operation) {
		c.newParams, c.newContext, c.newMaint = copyMap(op.newParams), cloneContext(op.newContext), cloneMaint(op.newMaint)
		// The copy points at the copy of its resource (of one the broker
		// no longer holds too, as the original does).
		c.inst, c.bind = cloneInst(op.inst), cloneBind(op.bind)
	})
	cloneInst = copyOnce(func(in, c *instance) {
		c.params, c.context, c.maint = copyMap(in.params), cloneContext(in.context), cloneMaint(in.maint)
		c.lastOp = cloneOp(in.lastOp)
	})
	cloneBind = copyOnce(func(bn, c *binding) {
		c.bindResource, c.params, c.context = cloneBindResource(bn.bindResource), copyMap(bn.params), cloneContext(bn.context)
		c.creds, c.endpoints = copyMap(bn.creds), slices.Clone(bn.endpoints)
		c.lastOp = cloneOp(bn.lastOp)
	})
	outI := make(map[string]*instance, len(ins))
	for id, in := range ins {
		outI[id] = cloneInst(in)
	}
	outB := make(map[string]*binding, len(bns))
	for id, bn := range bns {
		outB[id] = cloneBind(bn)
	}
	return outI, outB
}

// copyOnce returns a copier that copies each original (nil stays nil)
// once and gives that copy for it every time after: a shallow copy that
// fill completes. The copy is known before fill runs, so originals that
// point at each other (an operation and its resource) are each copied
// once and the copies point at each other.
func copyOnce[T any](fill func(orig, c *T)) func(*T) *T {
	copies := map[*T]*T{}
	return func(orig *T) *T {
		if orig == nil {
			return nil
		}
		if c, ok := copies[orig]; ok {
			return c
		}
		c := new(T)
		*c = *orig
		copies[orig] = c
		fill(orig, c)
		return c
	}
}

func cloneEchoes(m map[string][]string) map[string][]string {
	out := make(map[string][]string, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}
