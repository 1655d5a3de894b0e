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
