package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/osbclient/osbwire"
)

// IDs of the demo catalog's services and plans. They are fixed, so that a
// repo's status records stay valid across broker restarts (the spec
// recommends GUIDs).
const (
	ServicePostgres = "5f2b7c1e-8a4d-4e1b-9c3a-0d6e7f8a9b01"
	PlanPostgresSm  = "5f2b7c1e-8a4d-4e1b-9c3a-0d6e7f8a9b11"
	PlanPostgresLg  = "5f2b7c1e-8a4d-4e1b-9c3a-0d6e7f8a9b12"

	ServiceRedis      = "7c3d9e2f-1b5a-4f6c-8d7e-2a3b4c5d6e01"
	PlanRedisStandard = "7c3d9e2f-1b5a-4f6c-8d7e-2a3b4c5d6e11"

	ServiceQueue   = "9e4f0a3b-2c6d-4a7e-9f8a-3b4c5d6e7f01"
	PlanQueueBasic = "9e4f0a3b-2c6d-4a7e-9f8a-3b4c5d6e7f11"
)

// How the asynchronous redis operations behave: answered 202, then "in
// progress" for redisPolls last_operation polls, each with Retry-After.
const (
	redisPolls      = 2
	redisRetryAfter = time.Second
)

// schema builds a JSON Schema (draft-04) for an object with the given
// properties and no other.
func schema(props string) *osbwire.InputParametersSchema {
	return &osbwire.InputParametersSchema{Parameters: json.RawMessage(
		`{"$schema":"http://json-schema.org/draft-04/schema#","type":"object","additionalProperties":false,"properties":` + props + `}`)}
}

// postgresSchemas are the parameter schemas of a postgres plan whose
// instances may grow up to maxSize GiB.
func postgresSchemas(maxSize string) *osbwire.Schemas {
	props := `{` +
		`"size":{"type":"integer","minimum":1,"maximum":` + maxSize + `,"description":"storage in GiB"},` +
		`"version":{"type":"string","enum":["14","15","16","17"],"description":"PostgreSQL major version (a string)"},` +
		`"adminPassword":{"type":"string","minLength":8,"description":"password of the admin role (pass it with parametersFrom)"}` +
		`}`
	return &osbwire.Schemas{
		ServiceInstance: &osbwire.ServiceInstanceSchema{Create: schema(props), Update: schema(props)},
	}
}

// demoCatalog is the catalog examples/repo is written against (see
// examples/README.md): postgres (small, large; bindable, plan_updateable),
// redis (standard; bindable, asynchronous) and queue (basic; not bindable).
func demoCatalog() osbwire.Catalog {
	f := false
	return osbwire.Catalog{Services: []osbwire.Service{
		{
			Name:                 "postgres",
			ID:                   ServicePostgres,
			Description:          "PostgreSQL databases (demo: nothing is really provisioned).",
			Tags:                 []string{"sql", "postgres", "demo"},
			Bindable:             true,
			InstancesRetrievable: true,
			BindingsRetrievable:  true,
			PlanUpdateable:       true,
			Metadata:             json.RawMessage(`{"displayName":"PostgreSQL","providerDisplayName":"osbgit demo broker"}`),
			Plans: []osbwire.Plan{
				{
					ID:          PlanPostgresSm,
					Name:        "small",
					Description: "1 vCPU, up to 50 GiB.",
					Metadata:    json.RawMessage(`{"displayName":"Small","bullets":["1 vCPU","up to 50 GiB"]}`),
					Schemas:     postgresSchemas("50"),
				},
				{
					ID:          PlanPostgresLg,
					Name:        "large",
					Description: "4 vCPU, up to 1000 GiB.",
					Free:        &f,
					Metadata:    json.RawMessage(`{"displayName":"Large","bullets":["4 vCPU","up to 1000 GiB"]}`),
					Schemas:     postgresSchemas("1000"),
				},
			},
		},
		{
			Name:        "redis",
			ID:          ServiceRedis,
			Description: "Redis caches, provisioned asynchronously (demo).",
			Tags:        []string{"cache", "redis", "demo"},
			Bindable:    true,
			Metadata:    json.RawMessage(`{"displayName":"Redis","providerDisplayName":"osbgit demo broker"}`),
			Plans: []osbwire.Plan{
				{
					ID:          PlanRedisStandard,
					Name:        "standard",
					Description: "A 1 GiB cache; provisioning takes a few seconds.",
					Schemas: &osbwire.Schemas{ServiceInstance: &osbwire.ServiceInstanceSchema{
						Create: schema(`{"maxmemoryPolicy":{"type":"string","enum":["allkeys-lru","volatile-lru","noeviction"]}}`),
					}},
				},
			},
		},
		{
			Name:        "queue",
			ID:          ServiceQueue,
			Description: "Message queues (demo); a queue has no credentials to bind.",
			Tags:        []string{"messaging", "demo"},
			Bindable:    true,
			Metadata:    json.RawMessage(`{"displayName":"Queue","providerDisplayName":"osbgit demo broker"}`),
			Plans: []osbwire.Plan{
				{
					ID:          PlanQueueBasic,
					Name:        "basic",
					Description: "A basic queue.",
					Bindable:    &f,
					Schemas: &osbwire.Schemas{ServiceInstance: &osbwire.ServiceInstanceSchema{
						Create: schema(`{"retentionHours":{"type":"integer","minimum":1,"maximum":336,"description":"how long messages are kept"}}`),
						Update: schema(`{"retentionHours":{"type":"integer","minimum":1,"maximum":336,"description":"how long messages are kept"}}`),
					}},
				},
			},
		},
	}}
}

// dashboardURL is the dashboard_url template of provisioned instances.
const dashboardURL = "https://dashboard.demo.invalid/instances/{instance_id}"

// demoBroker is the osbtest broker with the demo catalog and behaviours, and
// binding credentials derived from a secret seed.
type demoBroker struct {
	*osbtest.Broker
	seed []byte

	// bindMu serializes binds: each one programs the credentials of its
	// plan just before the broker captures them.
	bindMu sync.Mutex
}

// newDemoBroker returns the demo broker. Username and password enable basic
// auth (both empty: no authentication); seed keys the credentials.
func newDemoBroker(username, password string, seed []byte, logf func(string, ...any)) *demoBroker {
	cat := demoCatalog()
	b := osbtest.New(osbtest.Config{
		Catalog:  &cat,
		Username: username,
		Password: password,
		Logf:     logf,
	})
	for _, p := range []string{PlanPostgresSm, PlanPostgresLg} {
		b.SetBehavior(p, osbtest.Behavior{DashboardURL: dashboardURL}, osbtest.OpProvision, osbtest.OpUpdate)
	}
	b.SetBehavior(PlanRedisStandard, osbtest.Behavior{Async: true, Polls: redisPolls, RetryAfter: redisRetryAfter, DashboardURL: dashboardURL}, osbtest.OpProvision)
	b.SetBehavior(PlanRedisStandard, osbtest.Behavior{Async: true, Polls: 1, RetryAfter: redisRetryAfter}, osbtest.OpDeprovision)
	return &demoBroker{Broker: b, seed: seed}
}

// ServeHTTP serves the OSB API. A bind first programs the credentials of
// the binding's plan (derived from the seed, the instance and the binding),
// so every binding gets its own, stable password.
func (d *demoBroker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if r.Method != http.MethodPut || len(parts) != 5 || parts[0] != "v2" || parts[1] != "service_instances" || parts[3] != "service_bindings" {
		d.Broker.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "cannot read the request body", http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var req struct {
		PlanID string `json:"plan_id"`
	}
	_ = json.Unmarshal(body, &req) // the broker itself refuses a bad body

	d.bindMu.Lock()
	defer d.bindMu.Unlock()
	switch req.PlanID {
	case PlanPostgresSm, PlanPostgresLg:
		d.SetBehavior(req.PlanID, osbtest.Behavior{Credentials: d.postgresCredentials(parts[2], parts[4])}, osbtest.OpBind)
	case PlanRedisStandard:
		d.SetBehavior(req.PlanID, osbtest.Behavior{Credentials: d.redisCredentials(parts[2], parts[4])}, osbtest.OpBind)
	}
	d.Broker.ServeHTTP(w, r)
}

// derive returns a hex string keyed by the seed: stable for the same
// inputs, unpredictable without the seed.
func (d *demoBroker) derive(n int, parts ...string) string {
	m := hmac.New(sha256.New, d.seed)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return hex.EncodeToString(m.Sum(nil))[:n]
}

// postgresCredentials are the credentials of a postgres binding: uri,
// username, password, host, port (a number), database, sslmode.
func (d *demoBroker) postgresCredentials(instanceID, bindingID string) map[string]any {
	user := "u_" + d.derive(10, "user", instanceID, bindingID)
	pass := d.derive(32, "password", instanceID, bindingID)
	db := "db_" + d.derive(10, "database", instanceID)
	const host, port = "postgres.demo.invalid", 5432
	return map[string]any{
		"uri":      "postgres://" + user + ":" + pass + "@" + host + ":5432/" + db + "?sslmode=disable",
		"username": user,
		"password": pass,
		"host":     host,
		"port":     port,
		"database": db,
	}
}

// redisCredentials are the credentials of a redis binding: uri, host, port
// (a number), password, tls (a bool).
func (d *demoBroker) redisCredentials(instanceID, bindingID string) map[string]any {
	pass := d.derive(32, "redis-password", instanceID, bindingID)
	host := "redis-" + d.derive(8, "host", instanceID) + ".demo.invalid"
	return map[string]any{
		"uri":      "redis://:" + pass + "@" + host + ":6379/0",
		"host":     host,
		"port":     6379,
		"password": pass,
		"tls":      false,
	}
}
