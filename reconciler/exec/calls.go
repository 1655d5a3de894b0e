package exec

import (
	"errors"

	"context"
	"fmt"
	"github.com/osbgit/osbgit/reconciler/internal/drain"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient"
	"github.com/osbgit/osbgit/osbclient/osbwire"
)

// started is a mutating call's successful answer.
type started struct {
	async     bool
	gone      bool
	operation string
	dashboard string
	// creds are a synchronous bind's credentials (secret: never logged).
	creds map[string]any
}

// errDrained is the error of a call not sent because osbgit is shutting
// down (drain).
var errDrained = errors.New("osbgit is shutting down")

// call runs one broker call under the broker's concurrency limit, after
// BeforeCall.
func (r *stepRun) call(ctx context.Context, ci CallInfo, f func(context.Context) error) error {
	ci.Ref, ci.Broker = r.s.Ref, r.broker()
	if r.e.BeforeCall != nil {
		if err := r.e.BeforeCall(ctx, ci); err != nil {
			return fmt.Errorf("%s not sent: %w", ci.Op, err)
		}
	}
	var err error
	var drained bool
	done := make(chan struct{})
	call := func() {
		defer close(done)
		if r.sent == 0 && drain.Requested(ctx) {
			// Shutting down: a step that has sent nothing yet does not
			// start (run makes it waiting, its record untouched); one
			// that has finishes its sequence.
			r.drained, drained = true, true
			err = fmt.Errorf("%s not sent: %w", ci.Op, errDrained)
			return
		}
		r.sent++
		r.progress.callStarted()
		err = f(ctx)
		r.progress.callEnded()
	}
	select {
	case r.callers.queue(ci.Broker) <- call:
	case <-ctx.Done():
		return fmt.Errorf("%s not sent: %w", ci.Op, ctx.Err())
	}
	<-done
	if drained || !debugEnabled(r.parentLog) {
		return err
	}
	l := r.logger().WithField("op", string(ci.Op))
	if err != nil {
		if id := requestID(err); id != "" {
			l = l.WithField("request_id", id)
		}
		l.WithError(err).Debug("broker call failed")
	} else {
		l.Debug("broker call succeeded")
	}
	return err
}

// withAsyncRetry runs f; a 422 AsyncRequired answer (which a conformant
// broker never gives with accepts_incomplete=true, but some do) is retried
// once, still with accepts_incomplete=true.
func withAsyncRetry(f func() error) error {
	err := f()
	if osbclient.IsAsyncRequired(err) {
		err = f()
	}
	return err
}

func (r *stepRun) identity(om bool) *osbwire.OriginatingIdentity {
	if om {
		return nil
	}
	return r.e.Identity
}

// organizationGUID and spaceGUID are the deprecated but required provision
// fields, derived from the context as Service Catalog did (cluster ID and
// namespace), so repeated creates send identical values.
func (r *stepRun) organizationGUID() string {
	if c := r.s.Context; c != nil && c.ClusterID != "" {
		return c.ClusterID
	}
	return DefaultOrganizationGUID
}

func (r *stepRun) spaceGUID() string {
	if c := r.s.Context; c != nil && c.Namespace != "" {
		return c.Namespace
	}
	if r.s.Ref.Namespace != "" {
		return r.s.Ref.Namespace
	}
	return "default"
}

func (r *stepRun) instanceID() string {
	if r.binding {
		if r.s.InstanceExternalID != "" {
			return r.s.InstanceExternalID
		}
		if r.rec != nil {
			return r.rec.InstanceExternalID
		}
		return ""
	}
	return r.externalID()
}

func (r *stepRun) externalID() string {
	if r.s.ExternalID != "" {
		return r.s.ExternalID
	}
	if r.rec != nil {
		return r.rec.ExternalID
	}
	return ""
}

// recordedIDs are the service_id and plan_id of what the broker holds:
// for deletes and polls the step's target, falling back to the record.
func (r *stepRun) recordedIDs() (serviceID, planID string) {
	serviceID, planID = r.s.Target.ServiceID, r.s.Target.PlanID
	if r.rec != nil {
		if serviceID == "" {
			serviceID = r.rec.ClassExternalID
		}
		if planID == "" {
			planID = r.rec.PlanExternalID
		}
	}
	return serviceID, planID
}

func (r *stepRun) provisionCall(ctx context.Context) (started, error) {
	s := r.s
	req := &osbwire.ProvisionRequest{
		InstanceID:        r.externalID(),
		AcceptsIncomplete: true,
		ServiceID:         s.Target.ServiceID,
		PlanID:            s.Target.PlanID,
		Context:           s.Context,
		OrganizationGUID:  r.organizationGUID(),
		SpaceGUID:         r.spaceGUID(),
		MaintenanceInfo:   s.MaintenanceInfo,
		Identity:          r.identity(false),
	}
	// On create the parameters are the instance's: always sent.
	if len(s.Parameters) > 0 {
		req.Parameters = s.Parameters
	}
	var out started
	err := withAsyncRetry(func() error {
		return r.call(ctx, CallInfo{Op: osbclient.OpProvision, InstanceID: req.InstanceID}, func(ctx context.Context) error {
			res, err := r.client.Provision(ctx, req)
			if err == nil {
				out = started{async: res.Async, operation: res.Response.Operation, dashboard: res.Response.DashboardURL}
			}
			return err
		})
	})
	return out, err
}

func (r *stepRun) updateCall(ctx context.Context, previousPlan string) (started, error) {
	s := r.s
	req := &osbwire.UpdateInstanceRequest{
		InstanceID:        r.externalID(),
		AcceptsIncomplete: true,
		ServiceID:         s.Target.ServiceID,
		Context:           s.Context,
		MaintenanceInfo:   s.MaintenanceInfo,
		Identity:          r.identity(false),
	}
	if s.SendPlan {
		req.PlanID = s.Target.PlanID
	}
	if s.SendParameters {
		req.Parameters = s.Parameters
	}
	if previousPlan != "" {
		pv := &osbwire.PreviousValues{PlanID: previousPlan}
		if s.Previous != nil {
			pv.ServiceID = s.Previous.ServiceID
		}
		req.PreviousValues = pv
	}
	var out started
	err := withAsyncRetry(func() error {
		return r.call(ctx, CallInfo{Op: osbclient.OpUpdateInstance, InstanceID: req.InstanceID}, func(ctx context.Context) error {
			res, err := r.client.UpdateInstance(ctx, req)
			if err == nil {
				out = started{async: res.Async, operation: res.Response.Operation, dashboard: res.Response.DashboardURL}
			}
			return err
		})
	})
	return out, err
}

func (r *stepRun) deprovisionCall(ctx context.Context, om bool) (started, error) {
	sid, pid := r.recordedIDs()
	req := &osbwire.DeprovisionRequest{
		InstanceID: r.externalID(), AcceptsIncomplete: true,
		ServiceID: sid, PlanID: pid, Identity: r.identity(om),
	}
	var out started
	err := withAsyncRetry(func() error {
		return r.call(ctx, CallInfo{Op: osbclient.OpDeprovision, InstanceID: req.InstanceID, OrphanMitigation: om}, func(ctx context.Context) error {
			res, err := r.client.Deprovision(ctx, req)
			if err == nil {
				out = started{async: res.Async, gone: res.Gone, operation: res.Response.Operation}
			}
			return err
		})
	})
	return out, err
}

func (r *stepRun) bindCall(ctx context.Context, predecessor string) (started, error) {
	s := r.s
	req := &osbwire.BindRequest{
		InstanceID:           r.instanceID(),
		BindingID:            r.externalID(),
		AcceptsIncomplete:    true,
		Context:              s.Context,
		ServiceID:            s.Target.ServiceID,
		PlanID:               s.Target.PlanID,
		PredecessorBindingID: predecessor,
		Identity:             r.identity(false),
	}
	if len(s.Parameters) > 0 {
		req.Parameters = s.Parameters
	}
	var out started
	err := withAsyncRetry(func() error {
		return r.call(ctx, CallInfo{Op: osbclient.OpBind, InstanceID: req.InstanceID, BindingID: req.BindingID}, func(ctx context.Context) error {
			res, err := r.client.Bind(ctx, req)
			if err == nil {
				r.e.Redact.AddLeaves(res.Response.Credentials)
				out = started{async: res.Async, operation: res.Response.Operation, creds: res.Response.Credentials}
			}
			return err
		})
	})
	return out, err
}

// unbindCall unbinds bindingID (the step's binding, or a predecessor).
func (r *stepRun) unbindCall(ctx context.Context, bindingID string, om bool) (started, error) {
	sid, pid := r.recordedIDs()
	req := &osbwire.UnbindRequest{
		InstanceID: r.instanceID(), BindingID: bindingID, AcceptsIncomplete: true,
		ServiceID: sid, PlanID: pid, Identity: r.identity(om),
	}
	var out started
	err := withAsyncRetry(func() error {
		return r.call(ctx, CallInfo{Op: osbclient.OpUnbind, InstanceID: req.InstanceID, BindingID: bindingID, OrphanMitigation: om}, func(ctx context.Context) error {
			res, err := r.client.Unbind(ctx, req)
			if err == nil {
				out = started{async: res.Async, gone: res.Gone, operation: res.Response.Operation}
			}
			return err
		})
	})
	return out, err
}

// deleteCall is deprovision or unbind of the step's resource.
func (r *stepRun) deleteCall(ctx context.Context, om bool) (started, error) {
	if r.binding {
		return r.unbindCall(ctx, r.externalID(), om)
	}
	return r.deprovisionCall(ctx, om)
}

// pollCall asks last_operation about lo (instance or binding). For an
// update lo.PlanID is the pre-update plan.
func (r *stepRun) pollCall(ctx context.Context, lo *manifest.LastOperation, bindingID string) (*osbwire.LastOperationResponse, error) {
	var resp *osbwire.LastOperationResponse
	if r.binding {
		req := &osbwire.BindingLastOperationRequest{
			InstanceID: r.instanceID(), BindingID: bindingID,
			ServiceID: lo.ServiceID, PlanID: lo.PlanID, Operation: lo.Operation,
		}
		err := r.call(ctx, CallInfo{Op: osbclient.OpBindingLastOperation, InstanceID: req.InstanceID, BindingID: bindingID}, func(ctx context.Context) error {
			var err error
			resp, err = r.client.BindingLastOperation(ctx, req)
			return err
		})
		return resp, err
	}
	req := &osbwire.LastOperationRequest{
		InstanceID: r.externalID(), ServiceID: lo.ServiceID, PlanID: lo.PlanID, Operation: lo.Operation,
	}
	err := r.call(ctx, CallInfo{Op: osbclient.OpLastOperation, InstanceID: req.InstanceID}, func(ctx context.Context) error {
		var err error
		resp, err = r.client.LastOperation(ctx, req)
		return err
	})
	return resp, err
}

// getBindingCall fetches the step's binding (its credentials).
func (r *stepRun) getBindingCall(ctx context.Context) (map[string]any, error) {
	sid, pid := r.recordedIDs()
	req := &osbwire.GetBindingRequest{InstanceID: r.instanceID(), BindingID: r.externalID(), ServiceID: sid, PlanID: pid}
	var creds map[string]any
	err := r.call(ctx, CallInfo{Op: osbclient.OpGetBinding, InstanceID: req.InstanceID, BindingID: req.BindingID}, func(ctx context.Context) error {
		res, err := r.client.GetBinding(ctx, req)
		if err == nil {
			r.e.Redact.AddLeaves(res.Credentials)
			creds = res.Credentials
		}
		return err
	})
	return creds, err
}
