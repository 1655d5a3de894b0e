package daemon

import (
	"fmt"
	"net/http"
)

// MetricsHandler serves /metrics, /healthz and /readyz. /healthz answers
// 200 while the process serves at all (a liveness probe); /readyz answers 200
// once a pass finished without error, or while this replica is a standby
// under leader election, and 503 before that and while stopping.
func (d *Daemon) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", d.metrics.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := d.readiness()
		if !ok {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, why)
	})
	return mux
}
