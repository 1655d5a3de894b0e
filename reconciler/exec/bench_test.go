package exec

import (
	"context"
	"fmt"
	"io"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/secrets"
)

// BenchmarkRunCreates is the executor's part of a cold converge: n
// instances and a binding each, over HTTP to osbtest at concurrency 8, at
// Info level. Secrets go to a map: the directory store is the converge
// figure's plain program's cost too, and its syscalls would hide what the
// executor itself spends per step (reported as µs/step; see the converge
// figure in reconciler/bench).
func BenchmarkRunCreates(b *testing.B) {
	const n = 250
	e := newEnv(b)
	log := logrus.New()
	log.SetOutput(io.Discard)
	e.ex.Log, e.ex.Secrets, e.ex.Concurrency = log, &mapStore{}, 8
	ctx := context.Background()
	cpu := processCPU()
	for b.Loop() {
		b.StopTimer()
		e.b.Reset()
		p := &plan.Plan{Revision: "rev-1"}
		for i := range n {
			name := fmt.Sprintf("db-%d", i)
			id := fmt.Sprintf("%08d-0000-4000-8000-000000000000", i)
			p.Steps = append(p.Steps, createInstance(name, id, osbtest.PlanDBSmall, nil))
			s := createBinding(name+"-bind", fmt.Sprintf("%08d-0000-4000-8000-000000000001", i), name, id, osbtest.PlanDBSmall)
			s.DependsOn = []manifest.Ref{instRef(name)}
			p.Steps = append(p.Steps, s)
		}
		wa := WriteAheadRecords(p, e.clock())
		b.StartTimer()
		res := e.ex.Run(ctx, p, wa)
		if res.Counts.Created != 2*n || res.Counts.Failed != 0 {
			b.Fatalf("counts %+v", res.Counts)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*2*n), "µs/step")
	b.ReportMetric(float64((processCPU()-cpu).Microseconds())/float64(b.N*2*n), "cpu-µs/step")
}

// mapStore is a secrets.Store in memory.
type mapStore struct{ m sync.Map }

func (s *mapStore) Get(_ context.Context, namespace, name string) (map[string][]byte, error) {
	if v, ok := s.m.Load(namespace + "/" + name); ok {
		return v.(map[string][]byte), nil
	}
	return nil, secrets.ErrNotFound
}

func (s *mapStore) Put(_ context.Context, namespace, name string, sec secrets.Secret) error {
	s.m.Store(namespace+"/"+name, sec.Data)
	return nil
}

func (s *mapStore) Delete(_ context.Context, namespace, name string) error {
	s.m.Delete(namespace + "/" + name)
	return nil
}

// processCPU is the CPU time the process has used (user and system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
