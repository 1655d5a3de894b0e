package osbtest

import (
	"encoding/json"

	"github.com/osbgit/osbgit/osbclient/osbwire"
)

// IDs of the services and plans of DefaultCatalog. They are readable rather
// than GUIDs so that test failures are easy to read.
const (
	// ServiceDB is a bindable database service: instances and bindings are
	// retrievable and plans are updateable (service-level default).
	ServiceDB = "osbtest-db"
	// PlanDBSmall is synchronous, has parameter schemas and allows binding
	// rotation (binding_rotatable).
	PlanDBSmall = "osbtest-db-small"
	// PlanDBLarge is synchronous and declares maintenance_info 1.0.0.
	PlanDBLarge = "osbtest-db-large"
	// PlanDBAsync is asynchronous for every operation (2 polls in progress,
	// then succeeded) and declares maximum_polling_duration 600.
	PlanDBAsync = "osbtest-db-async"
	// PlanDBPinned overrides plan_updateable to false: an instance on it
	// cannot change plan (its parameters can still be updated).
	PlanDBPinned = "osbtest-db-pinned"

	// ServiceQueue is bindable, but neither instances nor bindings are
	// retrievable and plans are not updateable.
	ServiceQueue = "osbtest-queue"
	// PlanQueueStandard is a plain synchronous plan.
	PlanQueueStandard = "osbtest-queue-standard"
	// PlanQueueNoBind overrides bindable to false.
	PlanQueueNoBind = "osbtest-queue-nobind"

	// ServiceDNS is not bindable at all; instances are retrievable.
	ServiceDNS = "osbtest-dns"
	// PlanDNSZone is the only plan of ServiceDNS.
	PlanDNSZone = "osbtest-dns-zone"
)

// DefaultDashboardURL is the dashboard URL template the DefaultCatalog's
// database plans return on provision.
const DefaultDashboardURL = "https://dashboard.osbtest.invalid/instances/{instance_id}"

// DefaultCatalog returns a fresh catalog with a few services covering the
// features osbgit must honour: synchronous and asynchronous plans, updateable
// and pinned plans, a non-bindable plan and service, parameter schemas,
// maintenance_info, maximum_polling_duration, binding_rotatable, and
// services with and without instances_retrievable / bindings_retrievable.
// See the Service* and Plan* constants. A broker created with no Catalog
// serves it and makes PlanDBAsync asynchronous and the database plans
// return DefaultDashboardURL (see New).
func DefaultCatalog() osbwire.Catalog {
	t, f := true, false
	maxPoll := 600
	schema := func(props string) *osbwire.InputParametersSchema {
		return &osbwire.InputParametersSchema{Parameters: json.RawMessage(
			`{"$schema":"http://json-schema.org/draft-04/schema#","type":"object","properties":` + props + `}`)}
	}
	return osbwire.Catalog{Services: []osbwire.Service{
		{
			Name:                 "osbtest-db",
			ID:                   ServiceDB,
			Description:          "An in-memory database that exists only in tests.",
			Tags:                 []string{"sql", "osbtest"},
			Bindable:             true,
			InstancesRetrievable: true,
			BindingsRetrievable:  true,
			PlanUpdateable:       true,
			Metadata:             json.RawMessage(`{"displayName":"osbtest database"}`),
			Plans: []osbwire.Plan{
				{
					ID:               PlanDBSmall,
					Name:             "small",
					Description:      "A small synchronous database.",
					BindingRotatable: &t,
					Schemas: &osbwire.Schemas{
						ServiceInstance: &osbwire.ServiceInstanceSchema{
							Create: schema(`{"size":{"type":"integer"},"region":{"type":"string"}}`),
							Update: schema(`{"size":{"type":"integer"}}`),
						},
						ServiceBinding: &osbwire.ServiceBindingSchema{
							Create: schema(`{"role":{"type":"string"}}`),
						},
					},
				},
				{
					ID:              PlanDBLarge,
					Name:            "large",
					Description:     "A large synchronous database.",
					Free:            &f,
					MaintenanceInfo: &osbwire.MaintenanceInfo{Version: "1.0.0", Description: "initial release"},
				},
				{
					ID:                     PlanDBAsync,
					Name:                   "async",
					Description:            "A database that takes a while to provision.",
					MaximumPollingDuration: &maxPoll,
				},
				{
					ID:             PlanDBPinned,
					Name:           "pinned",
					Description:    "A database whose plan cannot change.",
					PlanUpdateable: &f,
				},
			},
		},
		{
			Name:        "osbtest-queue",
			ID:          ServiceQueue,
			Description: "A message queue; instances and bindings are not retrievable.",
			Bindable:    true,
			Plans: []osbwire.Plan{
				{ID: PlanQueueStandard, Name: "standard", Description: "A standard queue."},
				{ID: PlanQueueNoBind, Name: "nobind", Description: "A queue that cannot be bound.", Bindable: &f},
			},
		},
		{
			Name:                 "osbtest-dns",
			ID:                   ServiceDNS,
			Description:          "A DNS zone; not bindable.",
			Bindable:             false,
			InstancesRetrievable: true,
			Plans: []osbwire.Plan{
				{ID: PlanDNSZone, Name: "zone", Description: "One DNS zone."},
			},
		},
	}}
}

// installDefaultBehaviors programs the behaviours DefaultCatalog documents.
// Call with b.mu held.
func (b *Broker) installDefaultBehaviors() {
	b.behaviors[behaviorKey{PlanDBAsync, ""}] = Behavior{Async: true, Polls: 2, DashboardURL: DefaultDashboardURL}
	for _, p := range []string{PlanDBSmall, PlanDBLarge, PlanDBPinned} {
		b.behaviors[behaviorKey{p, OpProvision}] = Behavior{DashboardURL: DefaultDashboardURL}
	}
}

// findPlan looks a plan up in the catalog. Call with b.mu held.
func (b *Broker) findPlan(serviceID, planID string) (*osbwire.Service, *osbwire.Plan) {
	for i := range b.catalog.Services {
		s := &b.catalog.Services[i]
		if s.ID != serviceID {
			continue
		}
		for j := range s.Plans {
			if s.Plans[j].ID == planID {
				return s, &s.Plans[j]
			}
		}
		return s, nil
	}
	return nil, nil
}

// SetCatalog replaces the catalog the broker serves and validates requests
// against. Existing instances and bindings are kept (even if their plan is
// gone, as with a real broker that removed a plan). It panics if the catalog
// cannot be encoded as JSON (e.g. invalid json.RawMessage metadata), since
// it could never be served.
func (b *Broker) SetCatalog(c osbwire.Catalog) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.catalog = cloneCatalog(c)
}

// Catalog returns a copy of the catalog the broker serves.
func (b *Broker) Catalog() osbwire.Catalog {
	b.mu.Lock()
	defer b.mu.Unlock()
	return cloneCatalog(b.catalog)
}

// cloneCatalog deep-copies a catalog through its JSON form.
func cloneCatalog(c osbwire.Catalog) osbwire.Catalog {
	raw, err := json.Marshal(c)
	if err != nil {
		panic("osbtest: catalog cannot be encoded: " + err.Error())
	}
	var out osbwire.Catalog
	if err := json.Unmarshal(raw, &out); err != nil {
		panic("osbtest: catalog cannot be decoded: " + err.Error())
	}
	if out.Services == nil {
		out.Services = []osbwire.Service{}
	}
	return out
}
