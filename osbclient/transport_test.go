package osbclient_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/osbgit/osbgit/osbclient"
)

// hijackClose reads the request and drops the connection without an answer;
// with rst the close is a TCP reset.
func hijackClose(rst bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		if tc, ok := conn.(*net.TCPConn); ok && rst {
			_ = tc.SetLinger(0)
		}
		_ = conn.Close()
	}
}

// cutBody answers status and a promised body, then drops the connection
// half-way through it.
func cutBody(status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"operation\":", status, http.StatusText(status))
		_ = buf.Flush()
		_ = conn.Close()
	}
}

// block waits until the client goes away (or a safety limit).
func block(w http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
}

// blockInBody sends status and part of a body, then waits.
func blockInBody(status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"operation":`))
		w.(http.Flusher).Flush()
		block(w, r)
	}
}

func TestConnectionReset(t *testing.T) {
	for _, rst := range []bool{false, true} {
		for _, cc := range calls() {
			t.Run(fmt.Sprintf("rst=%v/%s", rst, cc.op), func(t *testing.T) {
				b := newBroker(t, hijackClose(rst))
				_, err := cc.do(context.Background(), newClient(t, b.URL))
				e := asOSB(t, err)
				if e.Kind != osbclient.KindConnection || e.StatusCode != 0 || !e.RequestSent || e.RequestID == "" {
					t.Fatalf("error %+v: %v", e, err)
				}
				if !strings.Contains(err.Error(), "connection failed") || !strings.Contains(err.Error(), cc.path) {
					t.Errorf("Error() = %q", err)
				}
				// The broker may have acted: treated like a timeout.
				if got := e.OrphanMitigationRequired(); got != createOp(cc.op) {
					t.Errorf("OrphanMitigationRequired = %v", got)
				}
			})
		}
	}
}

func TestConnectionRefused(t *testing.T) {
	b := httptest.NewServer(http.NotFoundHandler())
	u := b.URL
	b.Close()
	for _, cc := range calls() {
		_, err := cc.do(context.Background(), newClient(t, u))
		e := asOSB(t, err)
		if e.Kind != osbclient.KindConnection || e.RequestSent || e.StatusCode != 0 {
			t.Errorf("%s: %+v", cc.op, e)
		}
		if e.OrphanMitigationRequired() {
			t.Errorf("%s: orphan mitigation for a request never sent", cc.op)
		}
	}
}

func TestBodyCutShort(t *testing.T) {
	tests := []struct {
		call   int
		status int
		wantOM bool
	}{
		{1, 201, true},  // provision 201 with a broken body
		{1, 202, true},  // provision 202
		{6, 201, true},  // bind 201
		{1, 200, false}, // 200 even if broken: no
		{3, 202, false}, // deprovision 202: not in the table
		{2, 202, false}, // update: never
	}
	for _, tt := range tests {
		cc := calls()[tt.call]
		t.Run(fmt.Sprintf("%s/%d", cc.op, tt.status), func(t *testing.T) {
			b := newBroker(t, cutBody(tt.status))
			_, err := cc.do(context.Background(), newClient(t, b.URL))
			e := asOSB(t, err)
			if e.Kind != osbclient.KindConnection || e.StatusCode != tt.status {
				t.Fatalf("error %+v: %v", e, err)
			}
			if got := e.OrphanMitigationRequired(); got != tt.wantOM {
				t.Errorf("OrphanMitigationRequired = %v, want %v", got, tt.wantOM)
			}
		})
	}
}

func TestTimeouts(t *testing.T) {
	short := func(c *osbclient.Config) { c.Timeout = 150 * time.Millisecond }
	t.Run("per-request timeout", func(t *testing.T) {
		for _, cc := range calls() {
			b := newBroker(t, block)
			start := time.Now()
			_, err := cc.do(context.Background(), newClient(t, b.URL, short))
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("%s took %s", cc.op, d)
			}
			e := asOSB(t, err)
			if e.Kind != osbclient.KindTimeout || !osbclient.IsTimeout(err) || e.StatusCode != 0 {
				t.Fatalf("%s: %+v", cc.op, e)
			}
			if !strings.Contains(err.Error(), "timed out") || !strings.Contains(err.Error(), "150ms") {
				t.Errorf("Error() = %q", err)
			}
			// Spec: timeout means orphan mitigation for provision and bind only.
			if got := e.OrphanMitigationRequired(); got != createOp(cc.op) {
				t.Errorf("%s: OrphanMitigationRequired = %v", cc.op, got)
			}
		}
	})
	t.Run("caller deadline", func(t *testing.T) {
		b := newBroker(t, block)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := calls()[6].do(ctx, newClient(t, b.URL))
		e := asOSB(t, err)
		if e.Kind != osbclient.KindTimeout || !e.OrphanMitigationRequired() {
			t.Fatalf("%+v", e)
		}
	})
	t.Run("timeout while reading body", func(t *testing.T) {
		for _, tc := range []struct {
			call   int
			status int
			wantOM bool
		}{{1, 201, true}, {1, 200, false}, {0, 200, false}, {3, 200, false}} {
			b := newBroker(t, blockInBody(tc.status))
			_, err := calls()[tc.call].do(context.Background(), newClient(t, b.URL, short))
			e := asOSB(t, err)
			if e.Kind != osbclient.KindTimeout || e.StatusCode != tc.status {
				t.Fatalf("%+v: %v", e, err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("after HTTP %d", tc.status)) {
				t.Errorf("Error() = %q", err)
			}
			if e.OrphanMitigationRequired() != tc.wantOM {
				t.Errorf("%s %d: OrphanMitigationRequired = %v", calls()[tc.call].op, tc.status, !tc.wantOM)
			}
		}
	})
}

func TestCancel(t *testing.T) {
	t.Run("after sending", func(t *testing.T) {
		for _, cc := range calls() {
			got := make(chan struct{}, 1)
			b := newBroker(t, func(w http.ResponseWriter, r *http.Request) {
				got <- struct{}{}
				block(w, r)
			})
			ctx, cancel := context.WithCancel(context.Background())
			go func() { <-got; cancel() }()
			_, err := cc.do(ctx, newClient(t, b.URL))
			e := asOSB(t, err)
			if e.Kind != osbclient.KindCanceled || !e.RequestSent || osbclient.IsTimeout(err) {
				t.Fatalf("%s: %+v", cc.op, e)
			}
			if got := e.OrphanMitigationRequired(); got != createOp(cc.op) {
				t.Errorf("%s: OrphanMitigationRequired = %v", cc.op, got)
			}
			if !strings.Contains(err.Error(), "canceled") {
				t.Errorf("Error() = %q", err)
			}
		}
	})
	t.Run("before sending", func(t *testing.T) {
		b := newBroker(t, reply(201, `{}`))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := calls()[1].do(ctx, newClient(t, b.URL))
		e := asOSB(t, err)
		if e.Kind != osbclient.KindCanceled || e.RequestSent || e.OrphanMitigationRequired() {
			t.Fatalf("%+v", e)
		}
		if n := len(b.requests()); n != 0 {
			t.Errorf("broker saw %d requests", n)
		}
	})
}

// newCAPEM makes an unrelated self-signed CA certificate.
func newCAPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "wrong CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func newTLSBroker(t *testing.T, cfg *tls.Config) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(reply(200, okBody))
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestTLS(t *testing.T) {
	srv := newTLSBroker(t, nil)
	rightCA := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	wrongCA := newCAPEM(t)
	plain := newBroker(t, reply(200, okBody))
	old := newTLSBroker(t, &tls.Config{MaxVersion: tls.VersionTLS11})

	tests := []struct {
		name    string
		url     string
		mod     func(*osbclient.Config)
		wantErr osbclient.ErrorKind
		status  int
	}{
		{"right CA", srv.URL, func(c *osbclient.Config) { c.CABundle = rightCA }, "", 0},
		{"right CA among others", srv.URL, func(c *osbclient.Config) { c.CABundle = append(append([]byte{}, wrongCA...), rightCA...) }, "", 0},
		{"wrong CA", srv.URL, func(c *osbclient.Config) { c.CABundle = wrongCA }, osbclient.KindTLS, 0},
		{"system roots", srv.URL, nil, osbclient.KindTLS, 0},
		{"insecure skip verify", srv.URL, func(c *osbclient.Config) { c.InsecureSkipTLSVerify = true }, "", 0},
		{"custom HTTPClient", srv.URL, func(c *osbclient.Config) { c.HTTPClient = srv.Client() }, "", 0},
		{"https to plain http", strings.Replace(plain.URL, "http:", "https:", 1), func(c *osbclient.Config) { c.InsecureSkipTLSVerify = true }, osbclient.KindTLS, 0},
		{"http to https", strings.Replace(srv.URL, "https:", "http:", 1), nil, osbclient.KindStatus, 400},
		{"TLS 1.1 server", old.URL, func(c *osbclient.Config) { c.InsecureSkipTLSVerify = true }, osbclient.KindTLS, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mods []func(*osbclient.Config)
			if tt.mod != nil {
				mods = append(mods, tt.mod)
			}
			c := newClient(t, tt.url, mods...)
			for _, cc := range []callCase{calls()[0], calls()[1]} {
				_, err := cc.do(context.Background(), c)
				if tt.wantErr == "" {
					if err != nil {
						t.Fatalf("%s: %v", cc.op, err)
					}
					continue
				}
				e := asOSB(t, err)
				if e.Kind != tt.wantErr || e.StatusCode != tt.status {
					t.Fatalf("%s: got %+v (%v), want %s", cc.op, e, err, tt.wantErr)
				}
				if e.OrphanMitigationRequired() {
					t.Errorf("%s: orphan mitigation after %s", cc.op, e.Kind)
				}
				if e.Kind == osbclient.KindTLS && !strings.Contains(err.Error(), "TLS handshake failed") {
					t.Errorf("Error() = %q", err)
				}
			}
		})
	}
}
