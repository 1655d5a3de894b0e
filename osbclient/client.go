package osbclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"mime"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/osbgit/osbgit/osbclient/osbwire"
)

// Defaults applied by New to zero Config fields.
const (
	// DefaultTimeout bounds one request, response body included. The spec
	// mentions 60 seconds as the typical platform timeout.
	DefaultTimeout = 60 * time.Second
	// DefaultUserAgent is sent when Config.UserAgent is empty.
	DefaultUserAgent = "osbgit/dev"
	// DefaultMaxResponseBytes caps a response body (16 MiB) so a broken or
	// hostile broker cannot exhaust memory.
	DefaultMaxResponseBytes int64 = 16 << 20
)

// HTTP header names the OSB spec defines.
const (
	HeaderAPIVersion          = "X-Broker-API-Version"
	HeaderOriginatingIdentity = "X-Broker-API-Originating-Identity"
	HeaderRequestIdentity     = "X-Broker-API-Request-Identity"
)

// supportedAPIVersions are the X-Broker-API-Version values New accepts.
var supportedAPIVersions = []string{"2.13", "2.14", "2.15", "2.16", "2.17"}

// Config describes one broker and how to reach it. Only URL is required.
type Config struct {
	// URL is the broker's base URL (http or https); the OSB paths are
	// appended to its path. Userinfo in the URL is taken as basic auth and
	// never shown in errors or logs.
	URL string
	// BrokerName names the broker in error messages and hooks.
	BrokerName string
	// Username and Password are sent as HTTP basic auth.
	Username, Password string
	// BearerToken is sent as "Authorization: Bearer ..."; exclusive with
	// basic auth.
	BearerToken string
	// CABundle holds PEM certificates that, when set, form the pool used to
	// verify the broker's certificate (instead of the system roots, as in
	// Kubernetes Service Catalog).
	CABundle []byte
	// InsecureSkipTLSVerify turns off certificate verification. Exclusive
	// with CABundle.
	InsecureSkipTLSVerify bool
	// Timeout bounds each request including reading the response body;
	// DefaultTimeout when zero.
	Timeout time.Duration
	// APIVersion is the X-Broker-API-Version sent; "2.17" when empty.
	// "2.13" to "2.17" are accepted.
	APIVersion string
	// UserAgent is sent as User-Agent; DefaultUserAgent when empty.
	UserAgent string
	// MaxResponseBytes caps response bodies; DefaultMaxResponseBytes when
	// zero.
	MaxResponseBytes int64
	// HTTPClient, when set, is used instead of a client built from the TLS
	// settings above (which must then be unset). Redirects are never
	// followed whatever its CheckRedirect says.
	HTTPClient *http.Client
	// OnRequest, when set, is called once at the end of every call (also
	// for calls rejected before sending) with what happened, for metrics
	// and logs. It must be safe for concurrent use and must not block.
	OnRequest func(RequestInfo)
}

// RequestInfo describes one finished call for Config.OnRequest. It holds no
// credential, request body or response body.
type RequestInfo struct {
	// Broker is the client's Config.BrokerName (for metrics labels).
	Broker string
	// Op is the OSB call.
	Op Operation
	// Method and Path are the HTTP method and escaped URL path (no query, no
	// userinfo).
	Method, Path string
	// StatusCode is the response status, 0 if none was received.
	StatusCode int
	// Duration is the time from the call until the response was read.
	Duration time.Duration
	// RequestID is the X-Broker-API-Request-Identity sent; empty if the call
	// was rejected before sending.
	RequestID string
	// Err is the error the call returned (a *Error), nil on success.
	Err error
}

// Client makes OSB calls to one broker. It is safe for concurrent use; make
// one per broker and reuse it so connections are reused.
type Client struct {
	name       string
	origin     string // scheme://host[:port], no userinfo
	basePath   string // escaped, no trailing slash
	authHeader string // full Authorization value, empty for none
	apiVersion string
	apiMinor   int
	userAgent  string
	timeout    time.Duration
	maxBody    int64
	http       *http.Client
	onRequest  func(RequestInfo)
	secrets    []string
	// identity is the last originating identity encoded: a pass sends
	// the same one with every call.
	identity atomic.Pointer[encodedIdentity]
}

// encodedIdentity is an originating identity (a copy) and its header value.
type encodedIdentity struct {
	id     osbwire.OriginatingIdentity
	header string
}

// New checks cfg and builds a Client. Errors name the broker but never show
// the URL, which may hold credentials.
func New(cfg Config) (*Client, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("osbclient: broker %q: "+format, append([]any{cfg.BrokerName}, args...)...)
	}
	if cfg.URL == "" {
		return nil, fail("URL is empty")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		// The parse error quotes the URL, which may hold a password.
		return nil, fail("URL does not parse (value not shown: it may hold credentials)")
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	default:
		return nil, fail("URL scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" {
		return nil, fail("URL has no host")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fail("URL must not have a query or fragment")
	}

	user, pass := cfg.Username, cfg.Password
	if u.User != nil {
		if cfg.Username != "" || cfg.Password != "" {
			return nil, fail("credentials given both in the URL and in Username/Password")
		}
		user = u.User.Username()
		pass, _ = u.User.Password()
		u.User = nil
	}
	if pass != "" && user == "" {
		return nil, fail("password given without a username")
	}
	basic := user != "" || pass != ""
	if basic && cfg.BearerToken != "" {
		return nil, fail("basic auth and bearer token are exclusive")
	}

	c := &Client{
		name:       cfg.BrokerName,
		origin:     strings.ToLower(u.Scheme) + "://" + u.Host,
		basePath:   strings.TrimRight(u.EscapedPath(), "/"),
		apiVersion: cfg.APIVersion,
		userAgent:  cfg.UserAgent,
		timeout:    cfg.Timeout,
		maxBody:    cfg.MaxResponseBytes,
		onRequest:  cfg.OnRequest,
	}
	switch {
	case basic:
		cred := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
		c.authHeader = "Basic " + cred
		c.secrets = append(c.secrets, pass, cred)
	case cfg.BearerToken != "":
		c.authHeader = "Bearer " + cfg.BearerToken
		c.secrets = append(c.secrets, cfg.BearerToken)
	}

	if c.apiVersion == "" {
		c.apiVersion = osbwire.APIVersion
	}
	if !slices.Contains(supportedAPIVersions, c.apiVersion) {
		return nil, fail("API version %q not supported (want %s to %s)", c.apiVersion, MinAPIVersion, osbwire.APIVersion)
	}
	c.apiMinor, _ = strconv.Atoi(strings.TrimPrefix(c.apiVersion, "2."))
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	switch {
	case c.timeout < 0:
		return nil, fail("negative timeout")
	case c.timeout == 0:
		c.timeout = DefaultTimeout
	}
	switch {
	case c.maxBody < 0:
		return nil, fail("negative MaxResponseBytes")
	case c.maxBody == 0:
		c.maxBody = DefaultMaxResponseBytes
	}

	if cfg.HTTPClient != nil {
		if len(cfg.CABundle) > 0 || cfg.InsecureSkipTLSVerify {
			return nil, fail("CABundle and InsecureSkipTLSVerify cannot be used with HTTPClient")
		}
		hc := *cfg.HTTPClient
		hc.CheckRedirect = noRedirects
		c.http = &hc
		return c, nil
	}
	if len(cfg.CABundle) > 0 && cfg.InsecureSkipTLSVerify {
		return nil, fail("CABundle and InsecureSkipTLSVerify are exclusive")
	}
	tr, err := newTransport(cfg)
	if err != nil {
		return nil, fail("%v", err)
	}
	c.http = &http.Client{Transport: tr, CheckRedirect: noRedirects}
	return c, nil
}

// noRedirects makes the client return 3xx answers as they are: OSB does not
// use redirects, and following one could turn a PUT into a GET or send
// credentials elsewhere.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// newTransport builds the transport for a broker: TLS 1.2 or later, the
// CA bundle as the only roots when given, proxy from the environment.
func newTransport(cfg Config) (*http.Transport, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(cfg.CABundle) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cfg.CABundle) {
			return nil, errors.New("CABundle holds no PEM certificate")
		}
		tlsCfg.RootCAs = pool
	}
	// An explicit per-broker opt-in, as in Service Catalog.
	tlsCfg.InsecureSkipVerify = cfg.InsecureSkipTLSVerify
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsCfg,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}, nil
}

// BrokerName returns Config.BrokerName.
func (c *Client) BrokerName() string { return c.name }

// URL returns the broker's base URL without userinfo, safe to show.
func (c *Client) URL() string { return c.origin + c.basePath }

// APIVersion returns the X-Broker-API-Version the client sends.
func (c *Client) APIVersion() string { return c.apiVersion }

// GetCatalog fetches GET /v2/catalog. The answer must be 200 with a
// "services" array.
func (c *Client) GetCatalog(ctx context.Context) (*osbwire.Catalog, error) {
	k := c.newCall(OpGetCatalog, http.MethodGet, "catalog")
	var body struct {
		Services *[]osbwire.Service `json:"services"`
	}
	if _, err := run(ctx, k, &body, exchange{ok: okFetch, check: func() error {
		if body.Services == nil {
			return errors.New(`no "services" array`)
		}
		return nil
	}}); err != nil {
		return nil, err
	}
	return &osbwire.Catalog{Services: *body.Services}, nil
}

// Provision sends PUT /v2/service_instances/:instance_id. service_id,
// plan_id, organization_guid and space_guid are required. 200, 201 and 202
// are successes (Async for 202); see Error.OrphanMitigationRequired for
// failures.
func (c *Client) Provision(ctx context.Context, r *osbwire.ProvisionRequest) (*ProvisionResult, error) {
	if r == nil {
		return nil, c.nilRequest(OpProvision, http.MethodPut)
	}
	k := c.newCall(OpProvision, http.MethodPut, "service_instances", r.InstanceID)
	if err := k.validate("instance_id", r.InstanceID, "service_id", r.ServiceID, "plan_id", r.PlanID,
		"organization_guid", r.OrganizationGUID, "space_guid", r.SpaceGUID); err != nil {
		return nil, k.finish(err)
	}
	if err := k.setIdentity(r.Identity, r.Context); err != nil {
		return nil, k.finish(err)
	}
	k.acceptsIncomplete(r.AcceptsIncomplete)
	k.body = r
	res := &ProvisionResult{}
	status, err := run(ctx, k, &res.Response, exchange{ok: okMutate, emptyOK: true})
	if err != nil {
		return nil, err
	}
	res.StatusCode, res.Async = status, status == http.StatusAccepted
	return res, nil
}

// UpdateInstance sends PATCH /v2/service_instances/:instance_id. service_id
// is required; plan_id and parameters are sent only when set. 200 (or 201)
// and 202 are successes.
func (c *Client) UpdateInstance(ctx context.Context, r *osbwire.UpdateInstanceRequest) (*UpdateInstanceResult, error) {
	if r == nil {
		return nil, c.nilRequest(OpUpdateInstance, http.MethodPatch)
	}
	k := c.newCall(OpUpdateInstance, http.MethodPatch, "service_instances", r.InstanceID)
	if err := k.validate("instance_id", r.InstanceID, "service_id", r.ServiceID); err != nil {
		return nil, k.finish(err)
	}
	if err := k.setIdentity(r.Identity, r.Context); err != nil {
		return nil, k.finish(err)
	}
	k.acceptsIncomplete(r.AcceptsIncomplete)
	k.body = r
	res := &UpdateInstanceResult{}
	status, err := run(ctx, k, &res.Response, exchange{ok: okMutate, emptyOK: true})
	if err != nil {
		return nil, err
	}
	res.StatusCode, res.Async = status, status == http.StatusAccepted
	return res, nil
}

// Deprovision sends DELETE /v2/service_instances/:instance_id with
// service_id and plan_id (both required) in the query. 410 Gone is a
// success with Gone set: the instance does not exist.
func (c *Client) Deprovision(ctx context.Context, r *osbwire.DeprovisionRequest) (*DeprovisionResult, error) {
	if r == nil {
		return nil, c.nilRequest(OpDeprovision, http.MethodDelete)
	}
	k := c.newCall(OpDeprovision, http.MethodDelete, "service_instances", r.InstanceID)
	if err := k.validate("instance_id", r.InstanceID, "service_id", r.ServiceID, "plan_id", r.PlanID); err != nil {
		return nil, k.finish(err)
	}
	if err := k.setIdentity(r.Identity, nil); err != nil {
		return nil, k.finish(err)
	}
	k.acceptsIncomplete(r.AcceptsIncomplete)
	k.query.Set("service_id", r.ServiceID)
	k.query.Set("plan_id", r.PlanID)
	res := &DeprovisionResult{}
	status, err := run(ctx, k, &res.Response, exchange{ok: okMutate, emptyOK: true, goneOK: true})
	if err != nil {
		return nil, err
	}
	res.StatusCode, res.Async, res.Gone = status, status == http.StatusAccepted, status == http.StatusGone
	return res, nil
}

// GetInstance fetches GET /v2/service_instances/:instance_id (OSB 2.14+;
// only for services with instances_retrievable). 404 is an error
// (IsNotFound).
func (c *Client) GetInstance(ctx context.Context, r *osbwire.GetInstanceRequest) (*osbwire.GetInstanceResponse, error) {
	if r == nil {
		return nil, c.nilRequest(OpGetInstance, http.MethodGet)
	}
	k := c.newCall(OpGetInstance, http.MethodGet, "service_instances", r.InstanceID)
	if err := k.validate("instance_id", r.InstanceID); err != nil {
		return nil, k.finish(err)
	}
	if err := k.needVersion(14); err != nil {
		return nil, k.finish(err)
	}
	k.optional("service_id", r.ServiceID)
	k.optional("plan_id", r.PlanID)
	out := &osbwire.GetInstanceResponse{}
	if _, err := run(ctx, k, out, exchange{ok: okFetch, emptyOK: true}); err != nil {
		return nil, err
	}
	return out, nil
}

// LastOperation polls GET /v2/service_instances/:instance_id/last_operation.
// For an update, PlanID must be the plan before the update. A 410 answer is
// returned as Gone with no error: success for a deprovision, failure for
// anything else, which only the caller knows. RetryAfter is parsed from
// the Retry-After header.
func (c *Client) LastOperation(ctx context.Context, r *osbwire.LastOperationRequest) (*osbwire.LastOperationResponse, error) {
	if r == nil {
		return nil, c.nilRequest(OpLastOperation, http.MethodGet)
	}
	k := c.newCall(OpLastOperation, http.MethodGet, "service_instances", r.InstanceID, "last_operation")
	if err := k.validate("instance_id", r.InstanceID); err != nil {
		return nil, k.finish(err)
	}
	k.optional("service_id", r.ServiceID)
	k.optional("plan_id", r.PlanID)
	k.optional("operation", r.Operation)
	return c.lastOperation(ctx, k)
}

// Bind sends PUT /v2/service_instances/:instance_id/service_bindings/:binding_id.
// service_id and plan_id are required. 200, 201 and 202 are successes.
func (c *Client) Bind(ctx context.Context, r *osbwire.BindRequest) (*BindResult, error) {
	if r == nil {
		return nil, c.nilRequest(OpBind, http.MethodPut)
	}
	k := c.newCall(OpBind, http.MethodPut, "service_instances", r.InstanceID, "service_bindings", r.BindingID)
	if err := k.validate("instance_id", r.InstanceID, "binding_id", r.BindingID,
		"service_id", r.ServiceID, "plan_id", r.PlanID); err != nil {
		return nil, k.finish(err)
	}
	if err := k.setIdentity(r.Identity, r.Context); err != nil {
		return nil, k.finish(err)
	}
	k.acceptsIncomplete(r.AcceptsIncomplete)
	k.body = r
	res := &BindResult{}
	status, err := run(ctx, k, &res.Response, exchange{ok: okMutate, emptyOK: true})
	if err != nil {
		return nil, err
	}
	res.StatusCode, res.Async = status, status == http.StatusAccepted
	return res, nil
}

// Unbind sends DELETE /v2/service_instances/:instance_id/service_bindings/:binding_id
// with service_id and plan_id (both required) in the query. 410 Gone is a
// success with Gone set.
func (c *Client) Unbind(ctx context.Context, r *osbwire.UnbindRequest) (*UnbindResult, error) {
	if r == nil {
		return nil, c.nilRequest(OpUnbind, http.MethodDelete)
	}
	k := c.newCall(OpUnbind, http.MethodDelete, "service_instances", r.InstanceID, "service_bindings", r.BindingID)
	if err := k.validate("instance_id", r.InstanceID, "binding_id", r.BindingID,
		"service_id", r.ServiceID, "plan_id", r.PlanID); err != nil {
		return nil, k.finish(err)
	}
	if err := k.setIdentity(r.Identity, nil); err != nil {
		return nil, k.finish(err)
	}
	k.acceptsIncomplete(r.AcceptsIncomplete)
	k.query.Set("service_id", r.ServiceID)
	k.query.Set("plan_id", r.PlanID)
	res := &UnbindResult{}
	status, err := run(ctx, k, &res.Response, exchange{ok: okMutate, emptyOK: true, goneOK: true})
	if err != nil {
		return nil, err
	}
	res.StatusCode, res.Async, res.Gone = status, status == http.StatusAccepted, status == http.StatusGone
	return res, nil
}

// GetBinding fetches GET /v2/service_instances/:instance_id/service_bindings/:binding_id
// (OSB 2.14+; only for services with bindings_retrievable). 404 is an error
// (IsNotFound). The response holds credentials: never log it.
func (c *Client) GetBinding(ctx context.Context, r *osbwire.GetBindingRequest) (*osbwire.GetBindingResponse, error) {
	if r == nil {
		return nil, c.nilRequest(OpGetBinding, http.MethodGet)
	}
	k := c.newCall(OpGetBinding, http.MethodGet, "service_instances", r.InstanceID, "service_bindings", r.BindingID)
	if err := k.validate("instance_id", r.InstanceID, "binding_id", r.BindingID); err != nil {
		return nil, k.finish(err)
	}
	if err := k.needVersion(14); err != nil {
		return nil, k.finish(err)
	}
	k.optional("service_id", r.ServiceID)
	k.optional("plan_id", r.PlanID)
	out := &osbwire.GetBindingResponse{}
	if _, err := run(ctx, k, out, exchange{ok: okFetch, emptyOK: true}); err != nil {
		return nil, err
	}
	return out, nil
}

// BindingLastOperation polls
// GET /v2/service_instances/:instance_id/service_bindings/:binding_id/last_operation
// (OSB 2.14+). 410 and Retry-After are handled as in LastOperation.
func (c *Client) BindingLastOperation(ctx context.Context, r *osbwire.BindingLastOperationRequest) (*osbwire.LastOperationResponse, error) {
	if r == nil {
		return nil, c.nilRequest(OpBindingLastOperation, http.MethodGet)
	}
	k := c.newCall(OpBindingLastOperation, http.MethodGet,
		"service_instances", r.InstanceID, "service_bindings", r.BindingID, "last_operation")
	if err := k.validate("instance_id", r.InstanceID, "binding_id", r.BindingID); err != nil {
		return nil, k.finish(err)
	}
	if err := k.needVersion(14); err != nil {
		return nil, k.finish(err)
	}
	k.optional("service_id", r.ServiceID)
	k.optional("plan_id", r.PlanID)
	k.optional("operation", r.Operation)
	return c.lastOperation(ctx, k)
}

// lastOperation runs a prepared instance or binding last_operation call.
func (c *Client) lastOperation(ctx context.Context, k *call) (*osbwire.LastOperationResponse, error) {
	out := &osbwire.LastOperationResponse{}
	status, err := run(ctx, k, out, exchange{ok: okFetch, goneOK: true, check: func() error {
		s := osbwire.LastOperationState(strings.ToLower(strings.TrimSpace(string(out.State))))
		switch s {
		case osbwire.StateInProgress, osbwire.StateSucceeded, osbwire.StateFailed:
			out.State = s
			return nil
		}
		return fmt.Errorf("state %q is not %q, %q or %q", truncate(string(out.State), 64),
			osbwire.StateInProgress, osbwire.StateSucceeded, osbwire.StateFailed)
	}})
	if err != nil {
		return nil, err
	}
	out.RetryAfter = k.retryAfter
	if status == http.StatusGone {
		*out = osbwire.LastOperationResponse{Gone: true, RetryAfter: k.retryAfter}
	}
	return out, nil
}

// Status sets accepted as success, per call kind. Mutating calls accept any
// of 200/201/202: the orphan mitigation table reads 200, 201 and 202 as
// success for every request, and some brokers answer 201 where 200 is due.
var (
	okMutate = []int{http.StatusOK, http.StatusCreated, http.StatusAccepted}
	okFetch  = []int{http.StatusOK}
)

// call is one OSB request being prepared, sent and interpreted.
type call struct {
	c          *Client
	op         Operation
	method     string
	path       string // escaped
	query      url.Values
	body       any
	identity   string // header value
	start      time.Time
	requestID  string
	status     int
	sent       bool
	retryAfter time.Duration
}

func (c *Client) newCall(op Operation, method string, segments ...string) *call {
	var b strings.Builder
	b.WriteString(c.basePath)
	b.WriteString("/v2")
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return &call{c: c, op: op, method: method, path: b.String(), query: url.Values{}, start: time.Now()}
}

func (c *Client) nilRequest(op Operation, method string) error {
	k := c.newCall(op, method)
	return k.finish(k.fail(KindRequest, 0, errors.New("nil request")))
}

// fail builds the call's error, with the client's secrets redacted.
func (k *call) fail(kind ErrorKind, status int, cause error) *Error {
	return &Error{
		Op: k.op, Broker: k.c.name, Method: k.method, Path: k.shownPath(),
		StatusCode: status, Kind: kind, RequestID: k.requestID,
		RequestSent: k.sent, RetryAfter: k.retryAfter, Err: redactErr(cause, k.c.secrets),
	}
}

// shownPath is the path for errors and hooks: an ID could, absurdly, hold
// a secret.
func (k *call) shownPath() string { return redact(k.path, k.c.secrets) }

// finish reports the call to the hook and returns err unchanged.
func (k *call) finish(err error) error {
	if k.c.onRequest != nil {
		k.c.onRequest(RequestInfo{
			Broker: k.c.name, Op: k.op, Method: k.method, Path: k.shownPath(), StatusCode: k.status,
			Duration: time.Since(k.start), RequestID: k.requestID, Err: err,
		})
	}
	return err
}

// validate takes name/value pairs and rejects empty values, and path IDs
// that would change the URL's meaning.
func (k *call) validate(kv ...string) error {
	var missing, bad []string
	for i := 0; i+1 < len(kv); i += 2 {
		name, v := kv[i], kv[i+1]
		switch {
		case v == "":
			missing = append(missing, name)
		case (name == "instance_id" || name == "binding_id") && (v == "." || v == ".."):
			bad = append(bad, name)
		}
	}
	var msgs []string
	if len(missing) > 0 {
		msgs = append(msgs, "missing "+strings.Join(missing, ", "))
	}
	if len(bad) > 0 {
		msgs = append(msgs, `"." and ".." are not valid as `+strings.Join(bad, ", "))
	}
	if len(msgs) == 0 {
		return nil
	}
	return k.fail(KindRequest, 0, errors.New(strings.Join(msgs, "; ")))
}

func (k *call) needVersion(minor int) error {
	if k.c.apiMinor >= minor {
		return nil
	}
	return k.fail(KindRequest, 0, fmt.Errorf("%s needs OSB API 2.%d or later, client is configured for %s",
		k.op, minor, k.c.apiVersion))
}

// setIdentity prepares X-Broker-API-Originating-Identity. Its platform must
// equal the context's, and osbgit's identities are kubernetes-profile.
func (k *call) setIdentity(id *osbwire.OriginatingIdentity, ctxt *osbwire.Context) error {
	if id == nil {
		return nil
	}
	if ctxt != nil && ctxt.Platform != "" && ctxt.Platform != osbwire.PlatformKubernetes {
		return k.fail(KindRequest, 0, fmt.Errorf("originating identity is %s but context.platform is %q",
			osbwire.PlatformKubernetes, ctxt.Platform))
	}
	if last := k.c.identity.Load(); last != nil && sameIdentity(&last.id, id) {
		k.identity = last.header
		return nil
	}
	b, err := json.Marshal(id)
	if err != nil {
		return k.fail(KindRequest, 0, fmt.Errorf("encoding originating identity: %w", err))
	}
	k.identity = osbwire.PlatformKubernetes + " " + base64.StdEncoding.EncodeToString(b)
	k.c.identity.Store(&encodedIdentity{id: cloneIdentity(id), header: k.identity})
	return nil
}

// sameIdentity reports whether a and b encode the same.
func sameIdentity(a, b *osbwire.OriginatingIdentity) bool {
	sameList := func(x, y []string) bool { return slices.Equal(x, y) && (x == nil) == (y == nil) }
	return a.Username == b.Username && a.UID == b.UID && slices.Equal(a.Groups, b.Groups) && maps.EqualFunc(a.Extra, b.Extra, sameList)
}

func cloneIdentity(id *osbwire.OriginatingIdentity) osbwire.OriginatingIdentity {
	c := *id
	c.Groups = slices.Clone(id.Groups)
	if id.Extra != nil {
		c.Extra = make(map[string][]string, len(id.Extra))
		for k, v := range id.Extra {
			c.Extra[k] = slices.Clone(v)
		}
	}
	return c
}

func (k *call) acceptsIncomplete(v bool) {
	if v {
		k.query.Set("accepts_incomplete", "true")
	}
}

func (k *call) optional(name, v string) {
	if v != "" {
		k.query.Set(name, v)
	}
}

// exchange says how to interpret a call's answer.
type exchange struct {
	ok      []int        // statuses whose body is decoded as a success
	goneOK  bool         // 410 is a result, not an error
	emptyOK bool         // an empty success body reads as {}
	check   func() error // validates the decoded body
}

// run sends k, decodes a success body into out and returns the status, or
// the call's error. It reports the call to the hook exactly once.
func run(ctx context.Context, k *call, out any, x exchange) (int, error) {
	raw, err := k.send(ctx)
	if err != nil {
		return 0, k.finish(err)
	}
	k.retryAfter = parseRetryAfter(raw.header.Get("Retry-After"), time.Now())
	if x.goneOK && raw.status == http.StatusGone {
		return raw.status, k.finish(nil)
	}
	if !slices.Contains(x.ok, raw.status) {
		return raw.status, k.finish(k.statusError(raw))
	}
	if err := k.decode(raw, out, x.emptyOK); err != nil {
		return raw.status, k.finish(err)
	}
	if x.check != nil {
		if err := x.check(); err != nil {
			return raw.status, k.finish(k.fail(KindMalformedBody, raw.status, err))
		}
	}
	return raw.status, k.finish(nil)
}

// rawResponse is an answer read in full.
type rawResponse struct {
	status int
	header http.Header
	body   []byte // nil when unread (error status with an unreadable body)
}

// send encodes and sends the request and reads the answer, bounded by the
// per-request timeout and the body cap.
func (k *call) send(ctx context.Context) (*rawResponse, error) {
	var body []byte
	if k.body != nil {
		b, err := json.Marshal(k.body)
		if err != nil {
			return nil, k.fail(KindRequest, 0, fmt.Errorf("encoding request body: %w", err))
		}
		body = b
	}
	target := k.c.origin + k.path
	if len(k.query) > 0 {
		target += "?" + k.query.Encode()
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, k.c.timeout)
	defer cancel()
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				wrote.Store(true)
			}
		},
	})
	var rdr io.Reader
	if body != nil {
		rdr = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, k.method, target, rdr)
	if err != nil {
		return nil, k.fail(KindRequest, 0, err)
	}
	k.requestID = uuid.NewString()
	h := req.Header
	h.Set(HeaderAPIVersion, k.c.apiVersion)
	h.Set(HeaderRequestIdentity, k.requestID)
	h.Set("User-Agent", k.c.userAgent)
	h.Set("Accept", "application/json")
	if body != nil {
		h.Set("Content-Type", "application/json")
	}
	if k.identity != "" {
		h.Set(HeaderOriginatingIdentity, k.identity)
	}
	if k.c.authHeader != "" {
		h.Set("Authorization", k.c.authHeader)
	}

	resp, err := k.c.http.Do(req)
	k.sent = wrote.Load()
	if err != nil {
		return nil, k.transportError(parent, ctx, err, 0)
	}
	defer resp.Body.Close()
	k.status = resp.StatusCode
	k.sent = true
	raw := &rawResponse{status: resp.StatusCode, header: resp.Header}
	success := resp.StatusCode < 300
	if resp.ContentLength > k.c.maxBody {
		if success {
			return nil, k.tooLarge(resp.StatusCode)
		}
		return raw, nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, k.c.maxBody+1))
	if err != nil {
		if success {
			return nil, k.transportError(parent, ctx, err, resp.StatusCode)
		}
		return raw, nil // the status says enough
	}
	if int64(len(data)) > k.c.maxBody {
		if success {
			return nil, k.tooLarge(resp.StatusCode)
		}
		return raw, nil
	}
	raw.body = data
	return raw, nil
}

func (k *call) tooLarge(status int) *Error {
	return k.fail(KindBodyTooLarge, status, fmt.Errorf("more than %d bytes", k.c.maxBody))
}

// transportError classifies a failure to get a complete answer.
func (k *call) transportError(parent, ctx context.Context, err error, status int) *Error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL and method are in the Error already
	}
	var kind ErrorKind
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		kind = KindTimeout
		if parent.Err() == nil {
			err = fmt.Errorf("no complete answer within %s: %w", k.c.timeout, err)
		}
	case errors.Is(ctx.Err(), context.Canceled):
		kind = KindCanceled
	case isTimeout(err):
		kind = KindTimeout
	case isTLS(err):
		kind = KindTLS
	default:
		kind = KindConnection
	}
	return k.fail(kind, status, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func isTLS(err error) bool {
	var (
		verr   *tls.CertificateVerificationError
		rh     tls.RecordHeaderError
		alert  tls.AlertError
		ua     x509.UnknownAuthorityError
		hn     x509.HostnameError
		inv    x509.CertificateInvalidError
		echRej *tls.ECHRejectionError
	)
	if errors.As(err, &verr) || errors.As(err, &rh) || errors.As(err, &alert) || errors.As(err, &ua) ||
		errors.As(err, &hn) || errors.As(err, &inv) || errors.As(err, &echRej) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "tls: ") || strings.Contains(msg, "HTTP response to HTTPS client")
}

// decode reads a success body into out. A body with a Content-Type other
// than JSON is refused; a body without one is read if it parses.
func (k *call) decode(raw *rawResponse, out any, emptyOK bool) error {
	data := bytes.TrimSpace(raw.body)
	if len(data) == 0 {
		if emptyOK {
			return nil
		}
		return k.fail(KindMalformedBody, raw.status, errors.New("empty body"))
	}
	if ct := raw.header.Get("Content-Type"); ct != "" && !isJSONMediaType(ct) {
		return k.fail(KindContentType, raw.status, fmt.Errorf("Content-Type %q", truncate(ct, 64)))
	}
	if err := json.Unmarshal(data, out); err != nil {
		return k.fail(KindMalformedBody, raw.status, err)
	}
	return nil
}

// isJSONMediaType accepts application/json and any +json type.
func isJSONMediaType(ct string) bool {
	mt := mediaType(ct)
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// mediaType returns the lower-case media type of a Content-Type value,
// ignoring malformed parameters; "" when absent or unparsable.
func mediaType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil && !errors.Is(err, mime.ErrInvalidMediaParameter) {
		return ""
	}
	return mt
}

// statusError builds the error for an answer whose status is not a success
// for the call: KindStatus for 4xx/5xx (with what the body says, if it can
// be read), KindUnexpectedStatus otherwise.
func (k *call) statusError(raw *rawResponse) error {
	if raw.status < 400 || raw.status > 599 {
		return k.fail(KindUnexpectedStatus, raw.status, nil)
	}
	e := k.fail(KindStatus, raw.status, nil)
	data := bytes.TrimSpace(raw.body)
	if len(data) == 0 {
		return e
	}
	mt := mediaType(raw.header.Get("Content-Type"))
	switch {
	case mt == "" || isJSONMediaType(mt):
		// Field by field, so that one ill-typed field does not hide the rest.
		var m map[string]json.RawMessage
		if json.Unmarshal(data, &m) != nil {
			if mt == "" && utf8.Valid(data) && data[0] != '<' {
				e.Description = redact(snippet(data), k.c.secrets)
			}
			return e
		}
		str := func(key string) string {
			var s string
			_ = json.Unmarshal(m[key], &s)
			return s
		}
		flag := func(key string) *bool {
			var b *bool
			_ = json.Unmarshal(m[key], &b)
			return b
		}
		e.Code = truncate(str("error"), 128)
		e.Description = str("description")
		if e.Description == "" {
			e.Description = str("message") // a common non-OSB shape
		}
		e.InstanceUsable = flag("instance_usable")
		e.UpdateRepeatable = flag("update_repeatable")
	case mt == "text/plain":
		e.Description = snippet(data)
	}
	e.Code = redact(e.Code, k.c.secrets)
	e.Description = redact(e.Description, k.c.secrets)
	return e
}

// snippet makes a short single-line excerpt of a plain-text error body.
func snippet(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return ' '
		}
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, string(b))
	return truncate(strings.Join(strings.Fields(s), " "), 256)
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

// parseRetryAfter reads a Retry-After value, delta-seconds or HTTP-date, as
// a wait from now; 0 when absent, unparsable or in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > math.MaxInt64/int64(time.Second) {
			return time.Duration(math.MaxInt64)
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
