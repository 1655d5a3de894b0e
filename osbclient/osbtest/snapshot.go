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
	ops := map[*operation]*operation{}
	cloneOp := func(op *operation) *operation {
		if op == nil {
			return nil
		}
		if c, ok := ops[op]; ok {
			return c
		}
		c := *op
		c.newParams, c.newContext, c.newMaint = copyMap(op.newParams), cloneContext(op.newContext), cloneMaint(op.newMaint)
		ops[op] = &c
		return &c
	}
	instCopies := map[*instance]*instance{}
	cloneInst := func(in *instance) *instance {
		if c, ok := instCopies[in]; ok {
			return c
		}
		c := *in
		c.params, c.context, c.maint = copyMap(in.params), cloneContext(in.context), cloneMaint(in.maint)
		c.lastOp = cloneOp(in.lastOp)
		instCopies[in] = &c
		return &c
	}
	bindCopies := map[*binding]*binding{}
	cloneBind := func(bn *binding) *binding {
		if c, ok := bindCopies[bn]; ok {
			return c
		}
		c := *bn
		c.bindResource, c.params, c.context = cloneBindResource(bn.bindResource), copyMap(bn.params), cloneContext(bn.context)
		c.creds, c.endpoints = copyMap(bn.creds), slices.Clone(bn.endpoints)
		c.lastOp = cloneOp(bn.lastOp)
		bindCopies[bn] = &c
		return &c
	}
	outI := make(map[string]*instance, len(ins))
	for id, in := range ins {
		outI[id] = cloneInst(in)
	}
	outB := make(map[string]*binding, len(bns))
	for id, bn := range bns {
		outB[id] = cloneBind(bn)
	}
	// Point the copied operations at the copied resources (copying one
	// the broker no longer holds, as the original operation still refers
	// to it).
	for orig, c := range ops {
		if orig.inst != nil {
			c.inst = cloneInst(orig.inst)
		}
		if orig.bind != nil {
			c.bind = cloneBind(orig.bind)
		}
	}
	return outI, outB
}

func cloneEchoes(m map[string][]string) map[string][]string {
	out := make(map[string][]string, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}
