package main

import (
	"testing"

	"github.com/osbgit/osbgit/manifest"
)

func TestParseResourceRef(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want manifest.Ref
		ok   bool
	}{
		{"ServiceInstance/apps/db", manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: "db"}, true},
		{"servicebinding/apps/db-bind", manifest.Ref{Kind: manifest.KindServiceBinding, Namespace: "apps", Name: "db-bind"}, true},
		{"ClusterServiceBroker/x/y", manifest.Ref{}, false},
		{"ServiceInstance/apps", manifest.Ref{}, false},
		{"ServiceInstance/../etc", manifest.Ref{}, false},
		{"ServiceInstance/apps/Bad_Name", manifest.Ref{}, false},
	} {
		got, err := parseResourceRef(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseResourceRef(%q) = %v, %v; want %v (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
