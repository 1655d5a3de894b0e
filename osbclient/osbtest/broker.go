package osbtest

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/osbgit/osbgit/osbclient/osbwire"
)

// OSB header names.
const (
	HeaderAPIVersion          = "X-Broker-API-Version"
	HeaderOriginatingIdentity = "X-Broker-API-Originating-Identity"
	HeaderRequestIdentity     = "X-Broker-API-Request-Identity"
)

// DefaultMinAPIVersion is the oldest X-Broker-API-Version a broker accepts
// when Config.MinAPIVersion is empty.
const DefaultMinAPIVersion = "2.13"

// maxBodyBytes bounds request bodies.
const maxBodyBytes = 1 << 20

// Config configures a Broker. The zero Config is a broker serving
// DefaultCatalog without authentication that accepts API versions 2.13 and
// later.
type Config struct {
	// Catalog is the catalog to serve; nil serves DefaultCatalog and
	// installs its default behaviours (PlanDBAsync asynchronous, dashboard
	// URLs on the database plans).
	Catalog *osbwire.Catalog
	// Username and Password, when either is set, enable HTTP basic
	// authentication.
	Username string
	Password string
	// BearerToken, when set, enables bearer-token authentication. With both
	// basic credentials and a token set, either is accepted. With neither,
	// requests need no authentication.
	BearerToken string
	// MinAPIVersion is the oldest X-Broker-API-Version accepted
	// ("MAJOR.MINOR"); default DefaultMinAPIVersion. Any 2.x at or above it
	// is accepted; other majors are refused with 412.
	MinAPIVersion string
	// CredentialSeed seeds the default binding credentials (see
	// DefaultCredentials); default DefaultCredentialSeed.
	CredentialSeed string
	// RequireOriginatingIdentity refuses mutating requests (PUT, PATCH,
	// DELETE) without an X-Broker-API-Originating-Identity header (400).
	RequireOriginatingIdentity bool
	// RequireRequestIdentity refuses requests without an
	// X-Broker-API-Request-Identity header (400).
	RequireRequestIdentity bool
	// IgnoreParameterSchemas turns off validating parameters against the
	// plans' schemas (schemas.service_instance.create/update,
	// schemas.service_binding.create; JSON Schema, draft-04 unless $schema
	// says otherwise), which otherwise refuses invalid parameters with 400.
	IgnoreParameterSchemas bool
	// Echo makes a careless broker that quotes what it received, for
	// tests of a platform's scrubbing. Every error answer's description
	// and every last_operation description end with each value the
	// request carried — the Authorization header, its password or token,
	// the string leaves of parameters and context (for a request without
	// a body, such as a poll, those of the latest request with one about
	// the same instance or its bindings) — and the credentials of the
	// instance's bindings, each raw, JSON-escaped, URL-encoded and
	// base64; provision, update and fetch-instance answers carry them in
	// dashboard_url's userinfo and query. The broker's checks and state
	// are unchanged; the call log and Logf do not see the echo. Off by
	// default.
	Echo bool
	// Logf, when set, receives one line per request (method, path, status,
	// refusal reason). It never receives credentials.
	Logf func(format string, args ...any)
}

// State is the broker-side state of an instance or binding.
type State string

// The states of instances and bindings.
const (
	// StateCreating: an asynchronous provision or bind is in progress.
	StateCreating State = "creating"
	// StateReady: the resource exists and no operation is in progress.
	StateReady State = "ready"
	// StateUpdating: an asynchronous update is in progress (instances).
	StateUpdating State = "updating"
	// StateDeleting: an asynchronous deprovision or unbind is in progress.
	StateDeleting State = "deleting"
	// StateFailed: the last asynchronous provision/bind or deprovision/unbind
	// failed; the resource is an orphan until it is deleted.
	StateFailed State = "failed"
)

// Instance is a service instance as the broker holds it.
type Instance struct {
	ID               string
	ServiceID        string
	PlanID           string
	OrganizationGUID string
	SpaceGUID        string
	// Parameters are the instance's current parameters (provision
	// parameters with every successful update merged in).
	Parameters      map[string]any
	Context         *osbwire.Context
	MaintenanceInfo *osbwire.MaintenanceInfo
	DashboardURL    string
	State           State
	// Operation is the operation ID of the last asynchronous operation
	// (empty if none was issued or it carried no ID).
	Operation string
	// LastOperation is the kind of the last asynchronous operation ("" if
	// none).
	LastOperation Op
}

// Binding is a service binding as the broker holds it.
type Binding struct {
	ID         string
	InstanceID string
	ServiceID  string
	// PlanID is the instance's plan when the binding was created.
	PlanID               string
	AppGUID              string
	BindResource         *osbwire.BindResource
	Parameters           map[string]any
	Context              *osbwire.Context
	PredecessorBindingID string
	Credentials          map[string]any
	State                State
	// Operation and LastOperation are as for Instance.
	Operation     string
	LastOperation Op
}

// Broker is the in-memory OSB broker. It is an http.Handler; all methods are
// safe for concurrent use.
type Broker struct {
	mu       sync.Mutex
	cfg      Config
	minMinor int // minimum accepted minor version of API major 2

	catalog   osbwire.Catalog
	behaviors map[behaviorKey]Behavior

	faults    []*faultEntry
	nextFault FaultID

	instances map[string]*instance
	bindings  map[string]*binding
	// aborted remembers, for deleted resources ("i/"+id or "b/"+id), the
	// ID of a create operation that a delete aborted, so a late poll of it
	// answers "failed".
	aborted map[string]string
	opSeq   int
	// echoes remembers, by instance ID, the parameter and context values
	// of the latest request with a body (Config.Echo).
	echoes map[string][]string

	calls []Call

	// release is closed by ReleaseDelays to end injected delays.
	release chan struct{}

	schemas map[string]*jsonschema.Schema // compiled parameter schemas by source
}

// New returns a broker configured by cfg. It panics if cfg.MinAPIVersion is
// not of the form "2.N" or cfg.Catalog cannot be encoded as JSON
// (programming errors in the test).
func New(cfg Config) *Broker {
	if cfg.MinAPIVersion == "" {
		cfg.MinAPIVersion = DefaultMinAPIVersion
	}
	if cfg.CredentialSeed == "" {
		cfg.CredentialSeed = DefaultCredentialSeed
	}
	major, minor, ok := parseVersion(cfg.MinAPIVersion)
	if !ok || major != 2 {
		panic(fmt.Sprintf("osbtest: MinAPIVersion %q is not of the form 2.N", cfg.MinAPIVersion))
	}
	b := &Broker{cfg: cfg, minMinor: minor, behaviors: map[behaviorKey]Behavior{}, release: make(chan struct{}), schemas: map[string]*jsonschema.Schema{}}
	if cfg.Catalog != nil {
		b.catalog = cloneCatalog(*cfg.Catalog)
	} else {
		b.catalog = DefaultCatalog()
		b.installDefaultBehaviors()
	}
	b.cfg.Catalog = nil
	b.resetState()
	return b
}

// Reset forgets every instance, binding and operation, empties the call log
// and removes every fault. The configuration, catalog and behaviours stay.
func (b *Broker) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.resetState()
	b.calls = nil
	b.faults = nil
}

func (b *Broker) resetState() {
	b.instances = map[string]*instance{}
	b.bindings = map[string]*binding{}
	b.aborted = map[string]string{}
	b.echoes = map[string][]string{}
}

// Instances returns a copy of every instance the broker holds, keyed by ID:
// instances being created, updated or deleted and failed ones (orphans) are
// included; deleted ones are not.
func (b *Broker) Instances() map[string]Instance {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]Instance, len(b.instances))
	for id, in := range b.instances {
		out[id] = in.export()
	}
	return out
}

// Instance returns a copy of instance id and whether the broker holds it.
func (b *Broker) Instance(id string) (Instance, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	in, ok := b.instances[id]
	if !ok {
		return Instance{}, false
	}
	return in.export(), true
}

// Bindings returns a copy of every binding the broker holds, keyed by binding
// ID (binding IDs are globally unique), including bindings being created or
// deleted and failed ones.
func (b *Broker) Bindings() map[string]Binding {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]Binding, len(b.bindings))
	for id, bn := range b.bindings {
		out[id] = bn.export()
	}
	return out
}

// Binding returns a copy of binding id and whether the broker holds it.
func (b *Broker) Binding(id string) (Binding, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bn, ok := b.bindings[id]
	if !ok {
		return Binding{}, false
	}
	return bn.export(), true
}

// PutInstance stores an instance directly, bypassing the API, e.g. to model
// resources created by another platform (adoption, drift). Its state
// defaults to StateReady. A StateCreating, StateUpdating or StateDeleting
// instance gets an asynchronous provision, update or deprovision in
// progress that never finishes by itself (end it with FinishOperation);
// its ID is returned in the Instance's Operation.
func (b *Broker) PutInstance(in Instance) Instance {
	b.mu.Lock()
	defer b.mu.Unlock()
	if in.State == "" {
		in.State = StateReady
	}
	st := &instance{
		id: in.ID, serviceID: in.ServiceID, planID: in.PlanID,
		org: in.OrganizationGUID, space: in.SpaceGUID,
		params: normalizeMap(in.Parameters), context: cloneContext(in.Context),
		maint: cloneMaint(in.MaintenanceInfo), dashboard: in.DashboardURL, state: in.State,
	}
	if kind, ok := map[State]Op{StateCreating: OpProvision, StateUpdating: OpUpdate, StateDeleting: OpDeprovision}[in.State]; ok {
		st.lastOp = b.startOp(kind, Behavior{Async: true, Polls: -1})
		st.lastOp.inst, st.lastOp.prePlanID = st, st.planID
	}
	b.instances[in.ID] = st
	delete(b.aborted, "i/"+in.ID)
	return st.export()
}

// RemoveInstance deletes an instance and its bindings directly, bypassing
// the API (e.g. to model a resource deleted out of band). It reports whether
// the instance existed.
func (b *Broker) RemoveInstance(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.instances[id]; !ok {
		return false
	}
	delete(b.instances, id)
	for bid, bn := range b.bindings {
		if bn.instanceID == id {
			delete(b.bindings, bid)
		}
	}
	return true
}

// PutBinding stores a binding directly, bypassing the API. Its state defaults
// to StateReady and its credentials to DefaultCredentials. As with
// PutInstance, StateCreating and StateDeleting start a bind or unbind that
// never finishes by itself.
func (b *Broker) PutBinding(bn Binding) Binding {
	b.mu.Lock()
	defer b.mu.Unlock()
	if bn.State == "" {
		bn.State = StateReady
	}
	creds := normalizeMap(bn.Credentials)
	if creds == nil {
		creds = DefaultCredentials(b.cfg.CredentialSeed, bn.InstanceID, bn.ID)
	}
	st := &binding{
		id: bn.ID, instanceID: bn.InstanceID, serviceID: bn.ServiceID, planID: bn.PlanID,
		appGUID: bn.AppGUID, bindResource: cloneBindResource(bn.BindResource),
		params: normalizeMap(bn.Parameters), context: cloneContext(bn.Context),
		predecessor: bn.PredecessorBindingID, creds: creds, state: bn.State,
	}
	if kind, ok := map[State]Op{StateCreating: OpBind, StateDeleting: OpUnbind}[bn.State]; ok {
		st.lastOp = b.startOp(kind, Behavior{Async: true, Polls: -1})
		st.lastOp.bind, st.lastOp.prePlanID = st, st.planID
	}
	b.bindings[bn.ID] = st
	delete(b.aborted, "b/"+bn.ID)
	return st.export()
}

// RemoveBinding deletes a binding directly, bypassing the API. It reports
// whether the binding existed.
func (b *Broker) RemoveBinding(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.bindings[id]
	delete(b.bindings, id)
	return ok
}

// FinishOperation ends the asynchronous operation in progress on instance
// instanceID (bindingID "") or on binding bindingID, as if its last poll had
// happened: succeeded, or failed when fail is true. It is how a test ends an
// operation whose Behavior has Polls: -1. It reports whether an operation was
// in progress.
func (b *Broker) FinishOperation(instanceID, bindingID string, fail bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	var op *operation
	if bindingID == "" {
		if in := b.instances[instanceID]; in != nil {
			op = in.lastOp
		}
	} else if bn := b.bindings[bindingID]; bn != nil && bn.instanceID == instanceID {
		op = bn.lastOp
	}
	if op == nil || op.state != osbwire.StateInProgress {
		return false
	}
	op.behavior.Fail = fail
	b.complete(op)
	return true
}

// ServeHTTP serves the OSB API.
func (b *Broker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	}
	rt := parseRoute(r)
	call := Call{
		Time:       start,
		Endpoint:   rt.endpoint,
		Method:     r.Method,
		Path:       r.URL.Path,
		Query:      cloneValues(r.URL.Query()),
		Headers:    redactHeaders(r.Header),
		RequestID:  r.Header.Get(HeaderRequestIdentity),
		InstanceID: rt.instanceID,
		BindingID:  rt.bindingID,
	}
	if len(body) > 0 {
		call.Body = body
	}

	f, fid := b.pickFault(rt, r.Method)
	call.Fault = fid
	var res *result
	switch {
	case f == nil:
		res = b.handle(rt, r, body)
	case !f.AfterEffect:
		if f.Delay > 0 && !b.sleep(r.Context(), f.Delay) {
			call.Description = "client went away during an injected delay; the request had no effect"
			b.record(call)
			return
		}
		if f.answers() {
			res = f.apply(nil)
		} else {
			res = f.apply(b.handle(rt, r, body))
		}
	default:
		res = b.handle(rt, r, body)
		if f.Delay > 0 {
			b.sleep(r.Context(), f.Delay)
		}
		res = f.apply(res)
	}
	if b.cfg.Echo {
		b.echo(rt, r, body, res)
	}
	if call.RequestID != "" {
		res.header.Set(HeaderRequestIdentity, call.RequestID)
	}
	call.Status = res.status
	call.Description = res.description
	if f != nil && f.Drop {
		call.Status = 0
		call.Dropped = true
		call.Description = "injected fault: connection dropped"
		if f.AfterEffect {
			call.Description += " after the request took effect (the broker's answer would have been " + itoa(res.status) + ")"
		}
		b.record(call)
		dropConnection(w)
		return
	}
	b.record(call)
	for k, vs := range res.header {
		w.Header()[k] = vs
	}
	w.WriteHeader(res.status)
	_, _ = w.Write(res.body)
}

// record appends a call to the log and logs it.
func (b *Broker) record(c Call) {
	b.mu.Lock()
	b.calls = append(b.calls, c)
	logf := b.cfg.Logf
	b.mu.Unlock()
	if logf != nil {
		if c.Description != "" {
			logf("osbtest: %s %s -> %d: %s", c.Method, c.Path, c.Status, c.Description)
		} else {
			logf("osbtest: %s %s -> %d", c.Method, c.Path, c.Status)
		}
	}
}

// dropConnection closes the client connection without an answer.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	// HTTP/2 or a wrapped writer: abort the handler, which resets the
	// stream / closes the connection without a response.
	panic(http.ErrAbortHandler)
}

// result is an answer being built.
type result struct {
	status      int
	header      http.Header
	body        []byte
	description string
}

// json sets a JSON answer.
func (res *result) json(status int, v any) {
	raw, err := json.Marshal(v)
	if err != nil {
		res.errorBody(http.StatusInternalServerError, "", "osbtest: cannot encode answer: "+err.Error())
		return
	}
	res.status = status
	res.header.Set("Content-Type", "application/json")
	res.body = raw
}

// errorBody sets an OSB error answer.
func (res *result) errorBody(status int, code, desc string) {
	raw, _ := json.Marshal(osbwire.ErrorBody{Error: code, Description: desc})
	res.status = status
	res.header.Set("Content-Type", "application/json")
	res.body = raw
	res.description = desc
	if code != "" {
		res.description = code + ": " + desc
	}
}

// fail sets an OSB error answer with a formatted description.
func (res *result) fail(status int, code, format string, args ...any) {
	res.errorBody(status, code, fmt.Sprintf(format, args...))
}

// route is a parsed request path.
type route struct {
	endpoint   Endpoint
	instanceID string
	bindingID  string
	allow      string // for 405: the methods the path supports
}

// parseRoute maps a request to an OSB endpoint.
func parseRoute(r *http.Request) route {
	raw := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	segs := make([]string, len(raw))
	for i, s := range raw {
		u, err := url.PathUnescape(s)
		if err != nil || u == "" {
			return route{endpoint: EndpointUnknown}
		}
		segs[i] = u
	}
	m := r.Method
	pick := func(byMethod map[string]Endpoint) Endpoint {
		if e, ok := byMethod[m]; ok {
			return e
		}
		return EndpointUnknown
	}
	rt := route{endpoint: EndpointUnknown}
	switch {
	case len(segs) == 2 && segs[0] == "v2" && segs[1] == "catalog":
		rt.allow = "GET"
		rt.endpoint = pick(map[string]Endpoint{http.MethodGet: EndpointCatalog})
	case len(segs) == 3 && segs[0] == "v2" && segs[1] == "service_instances":
		rt.instanceID = segs[2]
		rt.allow = "GET, PUT, PATCH, DELETE"
		rt.endpoint = pick(map[string]Endpoint{
			http.MethodPut: EndpointProvision, http.MethodPatch: EndpointUpdate,
			http.MethodDelete: EndpointDeprovision, http.MethodGet: EndpointGetInstance,
		})
	case len(segs) == 4 && segs[0] == "v2" && segs[1] == "service_instances" && segs[3] == "last_operation":
		rt.instanceID = segs[2]
		rt.allow = "GET"
		rt.endpoint = pick(map[string]Endpoint{http.MethodGet: EndpointLastOperation})
	case len(segs) == 5 && segs[0] == "v2" && segs[1] == "service_instances" && segs[3] == "service_bindings":
		rt.instanceID, rt.bindingID = segs[2], segs[4]
		rt.allow = "GET, PUT, DELETE"
		rt.endpoint = pick(map[string]Endpoint{
			http.MethodPut: EndpointBind, http.MethodDelete: EndpointUnbind, http.MethodGet: EndpointGetBinding,
		})
	case len(segs) == 6 && segs[0] == "v2" && segs[1] == "service_instances" && segs[3] == "service_bindings" && segs[5] == "last_operation":
		rt.instanceID, rt.bindingID = segs[2], segs[4]
		rt.allow = "GET"
		rt.endpoint = pick(map[string]Endpoint{http.MethodGet: EndpointBindingLastOperation})
	}
	return rt
}

// request is a request that passed the common checks.
type request struct {
	r        *http.Request
	rt       route
	body     []byte
	query    url.Values
	platform string // platform of the originating identity ("" if none)
}

// handle runs the common checks and the endpoint's handler.
func (b *Broker) handle(rt route, r *http.Request, body []byte) *result {
	res := &result{header: http.Header{}}
	b.mu.Lock()
	defer b.mu.Unlock()
	if rt.endpoint == EndpointUnknown {
		if rt.allow != "" {
			res.header.Set("Allow", rt.allow)
			res.fail(http.StatusMethodNotAllowed, "", "method %s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, rt.allow)
		} else {
			res.fail(http.StatusNotFound, "", "no OSB endpoint at %s %s", r.Method, r.URL.Path)
		}
		return res
	}
	if !b.checkAuth(r, res) || !b.checkVersion(r, res) {
		return res
	}
	rq := &request{r: r, rt: rt, body: body, query: r.URL.Query()}
	if !b.checkIdentity(rq, res) {
		return res
	}
	switch rt.endpoint {
	case EndpointCatalog:
		res.json(http.StatusOK, b.catalog)
	case EndpointProvision:
		b.provision(rq, res)
	case EndpointUpdate:
		b.update(rq, res)
	case EndpointDeprovision:
		b.deprovision(rq, res)
	case EndpointGetInstance:
		b.getInstance(rq, res)
	case EndpointLastOperation:
		b.lastOperation(rq, res)
	case EndpointBind:
		b.bind(rq, res)
	case EndpointUnbind:
		b.unbind(rq, res)
	case EndpointGetBinding:
		b.getBinding(rq, res)
	case EndpointBindingLastOperation:
		b.bindingLastOperation(rq, res)
	}
	return res
}

// checkAuth enforces the configured authentication.
func (b *Broker) checkAuth(r *http.Request, res *result) bool {
	basic := b.cfg.Username != "" || b.cfg.Password != ""
	bearer := b.cfg.BearerToken != ""
	if !basic && !bearer {
		return true
	}
	authz := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(authz, " ")
	eq := func(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
	var why string
	switch {
	case authz == "":
		why = "missing Authorization header"
	case basic && strings.EqualFold(scheme, "Basic"):
		u, p, ok := r.BasicAuth()
		if ok && eq(u, b.cfg.Username) && eq(p, b.cfg.Password) {
			return true
		}
		why = "wrong basic auth username or password"
	case bearer && strings.EqualFold(scheme, "Bearer"):
		if eq(strings.TrimSpace(cred), b.cfg.BearerToken) {
			return true
		}
		why = "wrong bearer token"
	default:
		why = fmt.Sprintf("authorization scheme %q is not accepted", scheme)
	}
	var challenges []string
	if basic {
		challenges = append(challenges, `Basic realm="osbtest"`)
	}
	if bearer {
		challenges = append(challenges, `Bearer realm="osbtest"`)
	}
	for _, c := range challenges {
		res.header.Add("WWW-Authenticate", c)
	}
	res.fail(http.StatusUnauthorized, "", "unauthorized: %s", why)
	return false
}

// checkVersion enforces X-Broker-API-Version.
func (b *Broker) checkVersion(r *http.Request, res *result) bool {
	v := r.Header.Get(HeaderAPIVersion)
	if v == "" {
		res.fail(http.StatusPreconditionFailed, "", "missing %s header; this broker requires 2.%d or later", HeaderAPIVersion, b.minMinor)
		return false
	}
	major, minor, ok := parseVersion(v)
	if !ok {
		res.fail(http.StatusPreconditionFailed, "", "malformed %s %q; want MAJOR.MINOR such as %s", HeaderAPIVersion, v, osbwire.APIVersion)
		return false
	}
	if major != 2 || minor < b.minMinor {
		res.fail(http.StatusPreconditionFailed, "", "%s %s is not supported; this broker requires 2.%d or later (2.x)", HeaderAPIVersion, v, b.minMinor)
		return false
	}
	return true
}

// parseVersion parses "MAJOR.MINOR".
func parseVersion(v string) (major, minor int, ok bool) {
	a, c, found := strings.Cut(v, ".")
	if !found {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(a)
	minor, err2 := strconv.Atoi(c)
	if err1 != nil || err2 != nil || major < 0 || minor < 0 || strings.ContainsAny(v, "+- ") {
		return 0, 0, false
	}
	return major, minor, true
}

// checkIdentity validates the originating and request identity headers.
func (b *Broker) checkIdentity(rq *request, res *result) bool {
	r := rq.r
	if b.cfg.RequireRequestIdentity && r.Header.Get(HeaderRequestIdentity) == "" {
		res.fail(http.StatusBadRequest, "", "missing %s header", HeaderRequestIdentity)
		return false
	}
	oi, present := r.Header[http.CanonicalHeaderKey(HeaderOriginatingIdentity)]
	if !present {
		if b.cfg.RequireOriginatingIdentity && rq.rt.endpoint.Mutating() {
			res.fail(http.StatusBadRequest, "", "missing %s header on a request a user caused", HeaderOriginatingIdentity)
			return false
		}
		return true
	}
	if len(oi) != 1 {
		res.fail(http.StatusBadRequest, "", "%s header given %d times", HeaderOriginatingIdentity, len(oi))
		return false
	}
	platform, value, ok := strings.Cut(oi[0], " ")
	if !ok || platform == "" || value == "" || strings.Contains(value, " ") {
		res.fail(http.StatusBadRequest, "", "malformed %s %q: want \"<platform> <base64 JSON object>\"", HeaderOriginatingIdentity, oi[0])
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		res.fail(http.StatusBadRequest, "", "malformed %s: value is not standard base64: %v", HeaderOriginatingIdentity, err)
		return false
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		res.fail(http.StatusBadRequest, "", "malformed %s: value does not decode to a JSON object", HeaderOriginatingIdentity)
		return false
	}
	if platform == osbwire.PlatformKubernetes {
		if u, _ := obj["username"].(string); u == "" {
			res.fail(http.StatusBadRequest, "", "malformed %s: the kubernetes profile requires a non-empty \"username\"", HeaderOriginatingIdentity)
			return false
		}
	}
	rq.platform = platform
	return true
}

// decodeBody checks Content-Type and decodes a JSON body into v.
func decodeBody(rq *request, v any, res *result) bool {
	ct := rq.r.Header.Get("Content-Type")
	if ct == "" {
		res.fail(http.StatusBadRequest, "", "missing Content-Type header; want application/json")
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		res.fail(http.StatusBadRequest, "", "Content-Type %q is not application/json", ct)
		return false
	}
	if len(rq.body) > maxBodyBytes {
		res.fail(http.StatusBadRequest, "", "request body larger than %d bytes", maxBodyBytes)
		return false
	}
	if len(bytes.TrimSpace(rq.body)) == 0 {
		res.fail(http.StatusBadRequest, "", "empty request body; want a JSON object")
		return false
	}
	if !json.Valid(rq.body) {
		res.fail(http.StatusBadRequest, "", "request body is not valid JSON")
		return false
	}
	if bytes.TrimSpace(rq.body)[0] != '{' {
		res.fail(http.StatusBadRequest, "", "request body is not a JSON object")
		return false
	}
	if err := json.Unmarshal(rq.body, v); err != nil {
		res.fail(http.StatusBadRequest, "", "request body does not match the OSB schema: %v", err)
		return false
	}
	return true
}

// checkContext validates a context object and its agreement with the
// originating identity's platform.
func checkContext(rq *request, c *osbwire.Context, res *result) bool {
	if c == nil {
		return true
	}
	if c.Platform == "" {
		res.fail(http.StatusBadRequest, "", "context.platform is required when context is present")
		return false
	}
	if rq.platform != "" && rq.platform != c.Platform {
		res.fail(http.StatusBadRequest, "", "%s platform %q differs from context.platform %q", HeaderOriginatingIdentity, rq.platform, c.Platform)
		return false
	}
	return true
}

// acceptsIncomplete parses the accepts_incomplete query parameter.
func acceptsIncomplete(rq *request, res *result) (bool, bool) {
	vs, ok := rq.query["accepts_incomplete"]
	if !ok {
		return false, true
	}
	if len(vs) == 1 {
		switch vs[0] {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	res.fail(http.StatusBadRequest, "", "accepts_incomplete must be true or false, got %q", strings.Join(vs, ","))
	return false, false
}

// missingFields refuses a request lacking required fields (name → value).
func missingFields(res *result, where string, fields ...[2]string) bool {
	var missing []string
	for _, f := range fields {
		if f[1] == "" {
			missing = append(missing, f[0])
		}
	}
	if len(missing) == 0 {
		return false
	}
	res.fail(http.StatusBadRequest, "", "missing required %s: %s", where, strings.Join(missing, ", "))
	return true
}

// nextOpID issues an operation ID. Call with b.mu held.
func (b *Broker) nextOpID(op Op) string {
	b.opSeq++
	return fmt.Sprintf("%s-%d", op, b.opSeq)
}

// canonical renders v as canonical JSON (maps sorted), for comparisons.
func canonical(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		return string(raw)
	}
	out, _ := json.Marshal(generic)
	return string(out)
}

// joinIDs lists map keys sorted, for messages.
func joinIDs(ids []string) string {
	sort.Strings(ids)
	return strings.Join(ids, ", ")
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func cloneContext(c *osbwire.Context) *osbwire.Context {
	if c == nil {
		return nil
	}
	cp := *c
	cp.Extra = copyMap(normalizeMap(c.Extra))
	return &cp
}

func cloneMaint(m *osbwire.MaintenanceInfo) *osbwire.MaintenanceInfo {
	if m == nil {
		return nil
	}
	cp := *m
	return &cp
}

func cloneBindResource(br *osbwire.BindResource) *osbwire.BindResource {
	if br == nil {
		return nil
	}
	cp := *br
	return &cp
}

func itoa(i int) string { return strconv.Itoa(i) }
