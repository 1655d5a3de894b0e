// Package drain carries "stop starting work" through a pass's context: on
// SIGTERM, `osbgit run` lets the running pass finish the calls it has in
// flight, record them and push, but start no new call. The pass's context
// itself stays live (cancelling it would abandon calls in flight); the
// drain signal travels beside it.
package drain

import "context"

type key struct{}

// With returns ctx carrying done: once it is closed, Requested reports
// true.
func With(ctx context.Context, done <-chan struct{}) context.Context {
	return context.WithValue(ctx, key{}, done)
}

// Requested reports whether the pass has been asked to stop starting work.
func Requested(ctx context.Context) bool {
	select {
	case <-Done(ctx):
		return true
	default:
		return false
	}
}

// Done is closed when the pass is asked to stop starting work (nil, never
// closed, when it cannot be).
func Done(ctx context.Context) <-chan struct{} {
	done, _ := ctx.Value(key{}).(<-chan struct{})
	return done
}
