package osbclient

import "github.com/osbgit/osbgit/osbclient/osbwire"

// MinAPIVersion is the oldest version the client can be configured to send.
const MinAPIVersion = "2.13"

// Operation names an OSB call; errors carry it so callers (and the orphan
// mitigation rules) know what was being attempted.
type Operation string

// The OSB calls the client makes.
const (
	OpGetCatalog           Operation = "GetCatalog"
	OpProvision            Operation = "Provision"
	OpUpdateInstance       Operation = "UpdateInstance"
	OpDeprovision          Operation = "Deprovision"
	OpGetInstance          Operation = "GetInstance"
	OpLastOperation        Operation = "LastOperation"
	OpBind                 Operation = "Bind"
	OpUnbind               Operation = "Unbind"
	OpGetBinding           Operation = "GetBinding"
	OpBindingLastOperation Operation = "BindingLastOperation"
)

// ProvisionResult is a successful provision answer. StatusCode is 200
// (identical instance exists), 201 (created) or 202 (accepted; Async is true
// and Response.Operation may name the operation to poll).
type ProvisionResult struct {
	StatusCode int
	Async      bool
	Response   osbwire.ProvisionResponse
}

// UpdateInstanceResult is a successful update answer (200 or 202).
type UpdateInstanceResult struct {
	StatusCode int
	Async      bool
	Response   osbwire.UpdateInstanceResponse
}

// DeprovisionResult is a successful deprovision answer: 200, 202 (Async), or
// 410 (Gone: the instance did not exist, which is success).
type DeprovisionResult struct {
	StatusCode int
	Async      bool
	Gone       bool
	Response   osbwire.DeprovisionResponse
}

// BindResult is a successful bind answer (200, 201 or 202).
type BindResult struct {
	StatusCode int
	Async      bool
	Response   osbwire.BindResponse
}

// UnbindResult is a successful unbind answer: 200, 202 (Async) or 410 (Gone).
type UnbindResult struct {
	StatusCode int
	Async      bool
	Gone       bool
	Response   osbwire.UnbindResponse
}
