// Package osbwire holds the Open Service Broker API 2.17 wire types: the
// JSON bodies of the catalog, of provision, update, deprovision, bind and
// unbind requests and answers, of last_operation, and of errors; the
// platform context and the originating identity. Request types also carry
// what travels outside the body (instance and binding IDs, query
// parameters, the originating identity header), tagged json:"-".
//
// They are shared by the client (osbclient), the test broker
// (osbclient/osbtest), the manifest validator and the planner, so they stay
// plain data with no HTTP code: no behaviour beyond small helpers that
// interpret optional fields the way the spec defines their defaults.
package osbwire

import (
	"encoding/json"
	"time"
)

// APIVersion is the OSB API version osbgit speaks by default.
const APIVersion = "2.17"

// Catalog is the body of GET /v2/catalog.
type Catalog struct {
	Services []Service `json:"services"`
}

// Service is one service offering of a catalog. Optional booleans are
// pointers so that "absent" and "false" stay distinguishable (the spec gives
// absent fields defaults, and plans may override service-level values).
type Service struct {
	Name                 string           `json:"name"`
	ID                   string           `json:"id"`
	Description          string           `json:"description"`
	Tags                 []string         `json:"tags,omitempty"`
	Requires             []string         `json:"requires,omitempty"`
	Bindable             bool             `json:"bindable"`
	InstancesRetrievable bool             `json:"instances_retrievable,omitempty"`
	BindingsRetrievable  bool             `json:"bindings_retrievable,omitempty"`
	AllowContextUpdates  bool             `json:"allow_context_updates,omitempty"`
	Metadata             json.RawMessage  `json:"metadata,omitempty"`
	DashboardClient      *DashboardClient `json:"dashboard_client,omitempty"`
	PlanUpdateable       bool             `json:"plan_updateable,omitempty"`
	Plans                []Plan           `json:"plans"`
}

// DashboardClient carries OAuth client data for a service dashboard. Secret is
// a credential: it must never be logged, rendered or committed.
type DashboardClient struct {
	ID          string `json:"id"`
	Secret      string `json:"secret"`
	RedirectURI string `json:"redirect_uri,omitempty"`
}

// Plan is one plan of a service.
type Plan struct {
	ID                     string           `json:"id"`
	Name                   string           `json:"name"`
	Description            string           `json:"description"`
	Metadata               json.RawMessage  `json:"metadata,omitempty"`
	Free                   *bool            `json:"free,omitempty"`
	Bindable               *bool            `json:"bindable,omitempty"`
	PlanUpdateable         *bool            `json:"plan_updateable,omitempty"`
	Schemas                *Schemas         `json:"schemas,omitempty"`
	MaximumPollingDuration *int             `json:"maximum_polling_duration,omitempty"`
	MaintenanceInfo        *MaintenanceInfo `json:"maintenance_info,omitempty"`
	BindingRotatable       *bool            `json:"binding_rotatable,omitempty"`
}

// IsFree reports whether the plan is free; the spec's default is true.
func (p Plan) IsFree() bool { return p.Free == nil || *p.Free }

// IsBindable reports whether instances of plan p of service s can be bound:
// the plan's value when set, else the service's.
func (s Service) IsBindable(p Plan) bool {
	if p.Bindable != nil {
		return *p.Bindable
	}
	return s.Bindable
}

// IsPlanUpdateable reports whether an instance of service s may move from plan
// p to another plan: the plan's value when set, else the service's.
func (s Service) IsPlanUpdateable(p Plan) bool {
	if p.PlanUpdateable != nil {
		return *p.PlanUpdateable
	}
	return s.PlanUpdateable
}

// IsBindingRotatable reports whether bindings of the plan may be rotated with
// predecessor_binding_id (default false).
func (p Plan) IsBindingRotatable() bool { return p.BindingRotatable != nil && *p.BindingRotatable }

// MaxPollingDuration is the plan's maximum_polling_duration, or 0 for none.
func (p Plan) MaxPollingDuration() time.Duration {
	if p.MaximumPollingDuration == nil || *p.MaximumPollingDuration <= 0 {
		return 0
	}
	return time.Duration(*p.MaximumPollingDuration) * time.Second
}

// Schemas holds the JSON Schemas a plan declares for its parameters.
type Schemas struct {
	ServiceInstance *ServiceInstanceSchema `json:"service_instance,omitempty"`
	ServiceBinding  *ServiceBindingSchema  `json:"service_binding,omitempty"`
}

// ServiceInstanceSchema holds the create and update parameter schemas.
type ServiceInstanceSchema struct {
	Create *InputParametersSchema `json:"create,omitempty"`
	Update *InputParametersSchema `json:"update,omitempty"`
}

// ServiceBindingSchema holds the bind parameter schema.
type ServiceBindingSchema struct {
	Create *InputParametersSchema `json:"create,omitempty"`
}

// InputParametersSchema wraps a JSON Schema document.
type InputParametersSchema struct {
	Parameters json.RawMessage `json:"parameters,omitempty"`
}

// MaintenanceInfo identifies a plan's maintenance version.
type MaintenanceInfo struct {
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
}

// Context is the platform context sent on provision, update and bind. osbgit
// always uses the kubernetes profile.
type Context struct {
	Platform     string `json:"platform"`
	Namespace    string `json:"namespace,omitempty"`
	ClusterID    string `json:"clusterid,omitempty"`
	InstanceName string `json:"instance_name,omitempty"`
	// Extra holds additional context fields (e.g. instance_annotations).
	Extra map[string]any `json:"-"`
}

// PlatformKubernetes is the context/originating-identity platform osbgit uses.
const PlatformKubernetes = "kubernetes"

// MarshalJSON flattens Extra into the context object.
func (c Context) MarshalJSON() ([]byte, error) {
	if len(c.Extra) == 0 {
		// The same object as the map below (keys sorted), without
		// building a map: a context goes with every provision, update
		// and bind.
		return json.Marshal(struct {
			ClusterID    string `json:"clusterid,omitempty"`
			InstanceName string `json:"instance_name,omitempty"`
			Namespace    string `json:"namespace,omitempty"`
			Platform     string `json:"platform"`
		}{c.ClusterID, c.InstanceName, c.Namespace, c.Platform})
	}
	m := make(map[string]any, len(c.Extra)+4)
	for k, v := range c.Extra {
		m[k] = v
	}
	m["platform"] = c.Platform
	if c.Namespace != "" {
		m["namespace"] = c.Namespace
	}
	if c.ClusterID != "" {
		m["clusterid"] = c.ClusterID
	}
	if c.InstanceName != "" {
		m["instance_name"] = c.InstanceName
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads the known fields and keeps the rest in Extra.
func (c *Context) UnmarshalJSON(b []byte) error {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*c = Context{}
	str := func(k string) string {
		v, _ := m[k].(string)
		delete(m, k)
		return v
	}
	c.Platform = str("platform")
	c.Namespace = str("namespace")
	c.ClusterID = str("clusterid")
	c.InstanceName = str("instance_name")
	if len(m) > 0 {
		c.Extra = m
	}
	return nil
}

// OriginatingIdentity is the kubernetes-profile identity of the user who caused
// a request; osbgit uses the author of the manifest commit.
type OriginatingIdentity struct {
	Username string              `json:"username"`
	UID      string              `json:"uid"`
	Groups   []string            `json:"groups,omitempty"`
	Extra    map[string][]string `json:"extra,omitempty"`
}

// ProvisionRequest is PUT /v2/service_instances/:instance_id.
// AcceptsIncomplete is sent as a query parameter.
type ProvisionRequest struct {
	InstanceID        string           `json:"-"`
	AcceptsIncomplete bool             `json:"-"`
	ServiceID         string           `json:"service_id"`
	PlanID            string           `json:"plan_id"`
	Context           *Context         `json:"context,omitempty"`
	OrganizationGUID  string           `json:"organization_guid"`
	SpaceGUID         string           `json:"space_guid"`
	Parameters        map[string]any   `json:"parameters,omitempty"`
	MaintenanceInfo   *MaintenanceInfo `json:"maintenance_info,omitempty"`
	// Identity, when set, is sent as X-Broker-API-Originating-Identity.
	Identity *OriginatingIdentity `json:"-"`
}

// ResourceMetadata is the metadata object of provision/update/get responses.
type ResourceMetadata struct {
	Labels     map[string]any `json:"labels,omitempty"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// ProvisionResponse is the body of a 200/201/202 provision answer.
type ProvisionResponse struct {
	DashboardURL string            `json:"dashboard_url,omitempty"`
	Operation    string            `json:"operation,omitempty"`
	Metadata     *ResourceMetadata `json:"metadata,omitempty"`
}

// UpdateInstanceRequest is PATCH /v2/service_instances/:instance_id. PlanID
// and Parameters are sent only when they change (nil/empty = not sent).
type UpdateInstanceRequest struct {
	InstanceID        string               `json:"-"`
	AcceptsIncomplete bool                 `json:"-"`
	ServiceID         string               `json:"service_id"`
	PlanID            string               `json:"plan_id,omitempty"`
	Context           *Context             `json:"context,omitempty"`
	Parameters        map[string]any       `json:"parameters,omitempty"`
	PreviousValues    *PreviousValues      `json:"previous_values,omitempty"`
	MaintenanceInfo   *MaintenanceInfo     `json:"maintenance_info,omitempty"`
	Identity          *OriginatingIdentity `json:"-"`
}

// PreviousValues describes the instance before an update.
type PreviousValues struct {
	ServiceID       string           `json:"service_id,omitempty"`
	PlanID          string           `json:"plan_id,omitempty"`
	OrganizationID  string           `json:"organization_id,omitempty"`
	SpaceID         string           `json:"space_id,omitempty"`
	MaintenanceInfo *MaintenanceInfo `json:"maintenance_info,omitempty"`
}

// UpdateInstanceResponse is the body of a 200/202 update answer.
type UpdateInstanceResponse struct {
	DashboardURL string            `json:"dashboard_url,omitempty"`
	Operation    string            `json:"operation,omitempty"`
	Metadata     *ResourceMetadata `json:"metadata,omitempty"`
}

// DeprovisionRequest is DELETE /v2/service_instances/:instance_id with
// service_id and plan_id in the query string.
type DeprovisionRequest struct {
	InstanceID        string
	AcceptsIncomplete bool
	ServiceID         string
	PlanID            string
	Identity          *OriginatingIdentity
}

// DeprovisionResponse is the body of a 200/202 deprovision answer.
type DeprovisionResponse struct {
	Operation string `json:"operation,omitempty"`
}

// GetInstanceRequest is GET /v2/service_instances/:instance_id.
type GetInstanceRequest struct {
	InstanceID string
	ServiceID  string // optional query parameter
	PlanID     string // optional query parameter
}

// GetInstanceResponse is the body of a 200 fetch-instance answer.
type GetInstanceResponse struct {
	ServiceID       string            `json:"service_id,omitempty"`
	PlanID          string            `json:"plan_id,omitempty"`
	DashboardURL    string            `json:"dashboard_url,omitempty"`
	Parameters      map[string]any    `json:"parameters,omitempty"`
	MaintenanceInfo *MaintenanceInfo  `json:"maintenance_info,omitempty"`
	Metadata        *ResourceMetadata `json:"metadata,omitempty"`
}

// LastOperationState is the state field of a last_operation answer.
type LastOperationState string

// The three states the spec defines.
const (
	StateInProgress LastOperationState = "in progress"
	StateSucceeded  LastOperationState = "succeeded"
	StateFailed     LastOperationState = "failed"
)

// LastOperationRequest polls an instance operation:
// GET /v2/service_instances/:instance_id/last_operation. For an update, PlanID
// must be the plan before the update.
type LastOperationRequest struct {
	InstanceID string
	ServiceID  string
	PlanID     string
	Operation  string
}

// LastOperationResponse is a last_operation answer. RetryAfter is parsed from
// the Retry-After header (0 when absent). Gone is true when the broker
// answered 410 (the caller decides what that means for its operation).
type LastOperationResponse struct {
	State            LastOperationState `json:"state"`
	Description      string             `json:"description,omitempty"`
	InstanceUsable   *bool              `json:"instance_usable,omitempty"`
	UpdateRepeatable *bool              `json:"update_repeatable,omitempty"`
	RetryAfter       time.Duration      `json:"-"`
	Gone             bool               `json:"-"`
}

// BindRequest is PUT /v2/service_instances/:instance_id/service_bindings/:binding_id.
type BindRequest struct {
	InstanceID           string               `json:"-"`
	BindingID            string               `json:"-"`
	AcceptsIncomplete    bool                 `json:"-"`
	Context              *Context             `json:"context,omitempty"`
	ServiceID            string               `json:"service_id"`
	PlanID               string               `json:"plan_id"`
	AppGUID              string               `json:"app_guid,omitempty"`
	BindResource         *BindResource        `json:"bind_resource,omitempty"`
	Parameters           map[string]any       `json:"parameters,omitempty"`
	PredecessorBindingID string               `json:"predecessor_binding_id,omitempty"`
	Identity             *OriginatingIdentity `json:"-"`
}

// BindResource names what the binding is for.
type BindResource struct {
	AppGUID string `json:"app_guid,omitempty"`
	Route   string `json:"route,omitempty"`
}

// BindingMetadata carries binding expiry information.
type BindingMetadata struct {
	ExpiresAt   string `json:"expires_at,omitempty"`
	RenewBefore string `json:"renew_before,omitempty"`
}

// VolumeMount is a volume service binding's mount description.
type VolumeMount struct {
	Driver       string          `json:"driver"`
	ContainerDir string          `json:"container_dir"`
	Mode         string          `json:"mode"`
	DeviceType   string          `json:"device_type"`
	Device       json.RawMessage `json:"device"`
}

// Endpoint is a network endpoint a binding exposes.
type Endpoint struct {
	Host     string   `json:"host"`
	Ports    []string `json:"ports"`
	Protocol string   `json:"protocol,omitempty"`
}

// BindResponse is the body of a 200/201/202 bind answer. Credentials are
// secret: never log, render or commit them.
type BindResponse struct {
	Metadata        *BindingMetadata `json:"metadata,omitempty"`
	Credentials     map[string]any   `json:"credentials,omitempty"`
	SyslogDrainURL  string           `json:"syslog_drain_url,omitempty"`
	RouteServiceURL string           `json:"route_service_url,omitempty"`
	VolumeMounts    []VolumeMount    `json:"volume_mounts,omitempty"`
	Endpoints       []Endpoint       `json:"endpoints,omitempty"`
	Operation       string           `json:"operation,omitempty"`
}

// UnbindRequest is DELETE /v2/service_instances/:instance_id/service_bindings/:binding_id.
type UnbindRequest struct {
	InstanceID        string
	BindingID         string
	AcceptsIncomplete bool
	ServiceID         string
	PlanID            string
	Identity          *OriginatingIdentity
}

// UnbindResponse is the body of a 200/202 unbind answer.
type UnbindResponse struct {
	Operation string `json:"operation,omitempty"`
}

// GetBindingRequest is GET /v2/service_instances/:instance_id/service_bindings/:binding_id.
type GetBindingRequest struct {
	InstanceID string
	BindingID  string
	ServiceID  string // optional query parameter
	PlanID     string // optional query parameter
}

// GetBindingResponse is the body of a 200 fetch-binding answer.
type GetBindingResponse struct {
	Metadata        *BindingMetadata `json:"metadata,omitempty"`
	Credentials     map[string]any   `json:"credentials,omitempty"`
	SyslogDrainURL  string           `json:"syslog_drain_url,omitempty"`
	RouteServiceURL string           `json:"route_service_url,omitempty"`
	VolumeMounts    []VolumeMount    `json:"volume_mounts,omitempty"`
	Endpoints       []Endpoint       `json:"endpoints,omitempty"`
	Parameters      map[string]any   `json:"parameters,omitempty"`
}

// BindingLastOperationRequest polls a binding operation:
// GET /v2/service_instances/:instance_id/service_bindings/:binding_id/last_operation.
type BindingLastOperationRequest struct {
	InstanceID string
	BindingID  string
	ServiceID  string
	PlanID     string
	Operation  string
}

// ErrorBody is the body of an OSB error answer.
type ErrorBody struct {
	Error            string `json:"error,omitempty"`
	Description      string `json:"description,omitempty"`
	InstanceUsable   *bool  `json:"instance_usable,omitempty"`
	UpdateRepeatable *bool  `json:"update_repeatable,omitempty"`
}

// OSB error codes the spec defines.
const (
	ErrorCodeAsyncRequired           = "AsyncRequired"
	ErrorCodeConcurrencyError        = "ConcurrencyError"
	ErrorCodeRequiresApp             = "RequiresApp"
	ErrorCodeMaintenanceInfoConflict = "MaintenanceInfoConflict"
)
