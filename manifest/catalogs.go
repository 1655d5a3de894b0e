package manifest

import "github.com/osbgit/osbgit/osbclient/osbwire"

// Catalogs holds broker catalogs keyed by CatalogKey: the broker name for a
// ClusterServiceBroker, "<namespace>/<name>" for a namespaced ServiceBroker
// ("/" cannot occur in a Kubernetes name, so the two never collide).
type Catalogs map[string]*osbwire.Catalog

// CatalogKey is the Catalogs key of a broker.
func CatalogKey(broker Ref) string {
	if broker.Kind == KindServiceBroker || broker.Namespace != "" {
		return broker.Namespace + "/" + broker.Name
	}
	return broker.Name
}

// Service finds a service by id in a broker's catalog.
func (c Catalogs) Service(broker Ref, serviceID string) (osbwire.Service, bool) {
	if cat := c[CatalogKey(broker)]; cat != nil {
		for _, s := range cat.Services {
			if s.ID == serviceID {
				return s, true
			}
		}
	}
	return osbwire.Service{}, false
}

// DriftUndetectable says why live checks (GET of the instance or binding)
// cannot cover a recorded resource: its service is not retrievable, or
// not in the broker's cached catalog. "" when they can.
func (c Catalogs) DriftUndetectable(rec *StatusRecord) string {
	svc, ok := c.Service(rec.Broker, rec.ClassExternalID)
	switch {
	case !ok:
		return "the class is not in the broker's cached catalog"
	case rec.Ref.Kind == KindServiceBinding && !svc.BindingsRetrievable:
		return "its service is not bindings_retrievable"
	case rec.Ref.Kind != KindServiceBinding && !svc.InstancesRetrievable:
		return "its service is not instances_retrievable"
	}
	return ""
}
