package osbtest

import (
	"net/http/httptest"
	"testing"
)

// NewServer starts a broker configured by cfg on a plain-HTTP
// httptest.Server that is closed when the test ends (t.Cleanup, after
// ReleaseDelays). Point the code under test at srv.URL; inspect and program
// the broker through b.
func NewServer(t testing.TB, cfg Config) (b *Broker, srv *httptest.Server) {
	t.Helper()
	b = New(cfg)
	srv = httptest.NewServer(b)
	t.Cleanup(func() { b.ReleaseDelays(); srv.Close() })
	return b, srv
}

// NewTLSServer is NewServer over HTTPS with httptest's self-signed
// certificate: srv.Client() trusts it, srv.Certificate() returns it (to
// build a caBundle), and any other client must skip verification or trust
// it explicitly.
func NewTLSServer(t testing.TB, cfg Config) (b *Broker, srv *httptest.Server) {
	t.Helper()
	b = New(cfg)
	srv = httptest.NewTLSServer(b)
	t.Cleanup(func() { b.ReleaseDelays(); srv.Close() })
	return b, srv
}
