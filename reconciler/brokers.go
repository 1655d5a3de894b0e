package reconciler

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient"
	"github.com/osbgit/osbgit/reconciler/redact"
	"github.com/osbgit/osbgit/reconciler/secrets"
)

// BrokerClients builds and caches one osbclient.Client per broker. A client
// is rebuilt when the broker spec or its auth Secret changes, so `run` mode
// keeps connections alive across passes.
type BrokerClients struct {
	// Secrets supplies broker auth (keys username/password or token).
	Secrets secrets.Reader
	// UserAgent and OnRequest are passed to every client.
	UserAgent string
	OnRequest func(osbclient.RequestInfo)
	// HTTPClient, when set, is used by every client (tests inject faults
	// with its transport). Brokers with caBundle or insecureSkipTLSVerify
	// then rely on its TLS settings.
	HTTPClient *http.Client
	// Timeout bounds each broker request (osbclient's default, 60s, when
	// zero).
	Timeout time.Duration
	// Redact learns every broker credential read (password, token, and
	// the Authorization header values made of them), so that a broker
	// quoting them is scrubbed everywhere, not only in osbclient's own
	// errors. Nil learns nothing.
	Redact *redact.Set

	mu      sync.Mutex
	clients map[manifest.Ref]cachedClient
}

type cachedClient struct {
	key    string
	client *osbclient.Client
}

// Client returns the client of broker b, building it if needed. Errors name
// the broker and the Secret, never a credential.
func (bc *BrokerClients) Client(ctx context.Context, b manifest.Broker) (*osbclient.Client, error) {
	ref := b.GetRef()
	spec := b.GetBrokerSpec()
	cfg := osbclient.Config{
		URL:                   spec.URL,
		BrokerName:            brokerName(ref),
		CABundle:              spec.CABundle,
		InsecureSkipTLSVerify: spec.InsecureSkipTLSVerify,
		UserAgent:             bc.UserAgent,
		OnRequest:             bc.OnRequest,
		Timeout:               bc.Timeout,
	}
	if bc.HTTPClient != nil {
		cfg.HTTPClient = bc.HTTPClient
		cfg.CABundle, cfg.InsecureSkipTLSVerify = nil, false
	}
	if sref, bearer := spec.AuthInfo.SecretRef(); sref != nil {
		data, err := bc.read(ctx, ref, sref)
		if err != nil {
			return nil, err
		}
		if bearer {
			tok := data[manifest.BearerTokenKey]
			if len(tok) == 0 {
				return nil, fmt.Errorf("broker %s: auth secret %s/%s needs key %q", ref.Name,
					sref.Namespace, sref.Name, manifest.BearerTokenKey)
			}
			cfg.BearerToken = string(tok)
			bc.Redact.Add(cfg.BearerToken, "Bearer "+cfg.BearerToken)
		} else {
			user, pass := data[manifest.BasicAuthUsernameKey], data[manifest.BasicAuthPasswordKey]
			if len(user) == 0 || len(pass) == 0 {
				return nil, fmt.Errorf("broker %s: auth secret %s/%s needs keys %q and %q", ref.Name,
					sref.Namespace, sref.Name, manifest.BasicAuthUsernameKey, manifest.BasicAuthPasswordKey)
			}
			cfg.Username, cfg.Password = string(user), string(pass)
			userPass := cfg.Username + ":" + cfg.Password
			bc.Redact.Add(cfg.Password, userPass, "Basic "+base64.StdEncoding.EncodeToString([]byte(userPass)))
		}
	}
	key := configKey(cfg)
	bc.mu.Lock()
	defer bc.mu.Unlock()
	if c, ok := bc.clients[ref]; ok && c.key == key {
		return c.client, nil
	}
	c, err := osbclient.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("broker %s: %w", ref.Name, err)
	}
	if bc.clients == nil {
		bc.clients = map[manifest.Ref]cachedClient{}
	}
	bc.clients[ref] = cachedClient{key: key, client: c}
	return c, nil
}

func (bc *BrokerClients) read(ctx context.Context, broker manifest.Ref, ref *manifest.ObjectReference) (map[string][]byte, error) {
	if bc.Secrets == nil {
		return nil, fmt.Errorf("broker %s: auth secret %s/%s: no secret store configured (use --secret-store)", broker.Name, ref.Namespace, ref.Name)
	}
	data, err := bc.Secrets.Get(ctx, ref.Namespace, ref.Name)
	if err != nil {
		return nil, fmt.Errorf("broker %s: auth secret %s/%s: %w", broker.Name, ref.Namespace, ref.Name, err)
	}
	return data, nil
}

// configKey fingerprints a client config (credentials included, hashed) so a
// changed Secret rebuilds the client. The hash never leaves this process.
func configKey(c osbclient.Config) string {
	h := sha256.New()
	for _, s := range []string{c.URL, c.Username, c.Password, c.BearerToken, string(c.CABundle), fmt.Sprint(c.InsecureSkipTLSVerify)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func brokerName(ref manifest.Ref) string {
	if ref.Namespace != "" {
		return ref.Namespace + "/" + ref.Name
	}
	return ref.Name
}

// BrokerSpecHash fingerprints the parts of a broker spec that change what
// its catalog is (URL, auth secret reference, TLS, restrictions); a changed
// hash forces a relist. relistRequests is tracked separately.
func BrokerSpecHash(spec *manifest.BrokerSpec) string {
	s := *spec
	s.RelistRequests = 0
	s.RelistDuration = nil
	s.RelistBehavior = ""
	b, err := json.Marshal(s)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// errNoClient marks a broker whose client could not be built (auth secret
// missing, bad URL): its resources are left alone this pass.
var errNoClient = errors.New("broker unavailable")
