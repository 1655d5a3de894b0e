package osbclient_test

import (
	"slices"
	"testing"

	"github.com/osbgit/osbgit/osbclient"
)

var allOps = []osbclient.Operation{
	osbclient.OpGetCatalog, osbclient.OpProvision, osbclient.OpUpdateInstance, osbclient.OpDeprovision,
	osbclient.OpGetInstance, osbclient.OpLastOperation, osbclient.OpBind, osbclient.OpUnbind,
	osbclient.OpGetBinding, osbclient.OpBindingLastOperation,
}

// TestOrphanMitigationTable walks the spec's Orphan Mitigation table row by
// row (notes/osb-rules.md) for every operation. "yes" lists the operations
// for which the row asks for mitigation; every other operation must get no.
func TestOrphanMitigationTable(t *testing.T) {
	var (
		P, D, B, U = osbclient.OpProvision, osbclient.OpDeprovision, osbclient.OpBind, osbclient.OpUnbind
	)
	type row struct {
		name string
		err  osbclient.Error
		yes  []osbclient.Operation
	}
	st := func(kind osbclient.ErrorKind, status int) osbclient.Error {
		return osbclient.Error{Kind: kind, StatusCode: status, RequestSent: true}
	}
	rows := []row{
		// Any | 200, even malformed | no
		{"200 malformed", st(osbclient.KindMalformedBody, 200), nil},
		{"200 not json", st(osbclient.KindContentType, 200), nil},
		{"200 too large", st(osbclient.KindBodyTooLarge, 200), nil},
		{"200 cut short", st(osbclient.KindConnection, 200), nil},
		// Provision / bind | 201 or 202 with malformed body | yes
		{"201 malformed", st(osbclient.KindMalformedBody, 201), []osbclient.Operation{P, B}},
		{"202 malformed", st(osbclient.KindMalformedBody, 202), []osbclient.Operation{P, B}},
		{"201 not json", st(osbclient.KindContentType, 201), []osbclient.Operation{P, B}},
		{"202 too large", st(osbclient.KindBodyTooLarge, 202), []osbclient.Operation{P, B}},
		{"201 timeout in body", st(osbclient.KindTimeout, 201), []osbclient.Operation{P, B}},
		// Provision/deprovision, bind/unbind | other 2xx | yes; update | no
		{"204", st(osbclient.KindUnexpectedStatus, 204), []osbclient.Operation{P, D, B, U}},
		{"203", st(osbclient.KindUnexpectedStatus, 203), []osbclient.Operation{P, D, B, U}},
		{"206", st(osbclient.KindUnexpectedStatus, 206), []osbclient.Operation{P, D, B, U}},
		{"299", st(osbclient.KindUnexpectedStatus, 299), []osbclient.Operation{P, D, B, U}},
		// Any | 408 | no
		{"408", st(osbclient.KindStatus, 408), nil},
		// Any | other 4xx | no
		{"400", st(osbclient.KindStatus, 400), nil},
		{"401", st(osbclient.KindStatus, 401), nil},
		{"403", st(osbclient.KindStatus, 403), nil},
		{"404", st(osbclient.KindStatus, 404), nil},
		{"409", st(osbclient.KindStatus, 409), nil},
		{"410", st(osbclient.KindStatus, 410), nil},
		{"412", st(osbclient.KindStatus, 412), nil},
		{"422 ConcurrencyError", osbclient.Error{Kind: osbclient.KindStatus, StatusCode: 422, Code: "ConcurrencyError"}, nil},
		{"422 AsyncRequired", osbclient.Error{Kind: osbclient.KindStatus, StatusCode: 422, Code: "AsyncRequired"}, nil},
		{"429", st(osbclient.KindStatus, 429), nil},
		// Provision/deprovision, bind/unbind | 5xx | yes; update | no
		{"500", st(osbclient.KindStatus, 500), []osbclient.Operation{P, D, B, U}},
		{"502", st(osbclient.KindStatus, 502), []osbclient.Operation{P, D, B, U}},
		{"503", st(osbclient.KindStatus, 503), []osbclient.Operation{P, D, B, U}},
		{"504", st(osbclient.KindStatus, 504), []osbclient.Operation{P, D, B, U}},
		// Provision | timeout | yes; bind | timeout | yes; all others | no
		{"timeout", osbclient.Error{Kind: osbclient.KindTimeout}, []osbclient.Operation{P, B}},
		{"timeout before sending", osbclient.Error{Kind: osbclient.KindTimeout, RequestSent: false}, []osbclient.Operation{P, B}},
		// Outside the table (package decisions, see doc.go).
		{"reset after sending", osbclient.Error{Kind: osbclient.KindConnection, RequestSent: true}, []osbclient.Operation{P, B}},
		{"canceled after sending", osbclient.Error{Kind: osbclient.KindCanceled, RequestSent: true}, []osbclient.Operation{P, B}},
		{"refused", osbclient.Error{Kind: osbclient.KindConnection}, nil},
		{"canceled before sending", osbclient.Error{Kind: osbclient.KindCanceled}, nil},
		{"tls", osbclient.Error{Kind: osbclient.KindTLS}, nil},
		{"invalid request", osbclient.Error{Kind: osbclient.KindRequest}, nil},
		{"302", st(osbclient.KindUnexpectedStatus, 302), nil},
		{"101", st(osbclient.KindUnexpectedStatus, 101), nil},
		{"600", st(osbclient.KindUnexpectedStatus, 600), nil},
	}
	for _, r := range rows {
		for _, op := range allOps {
			e := r.err
			e.Op = op
			want := slices.Contains(r.yes, op)
			if got := e.OrphanMitigationRequired(); got != want {
				t.Errorf("%s on %s: OrphanMitigationRequired = %v, want %v", r.name, op, got, want)
			}
		}
	}
}
