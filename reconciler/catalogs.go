package reconciler

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient/osbwire"
)

// RelistReason says why a broker's catalog is fetched this pass; "" means the
// cached catalog is used.
func RelistReason(b manifest.Broker, rec *manifest.CatalogRecord, lastRelist, now time.Time) string {
	spec := b.GetBrokerSpec()
	switch {
	case rec == nil:
		return "no cached catalog"
	case rec.BrokerSpecHash != BrokerSpecHash(spec):
		return "broker spec changed"
	case spec.RelistRequests > rec.RelistRequests:
		return fmt.Sprintf("relistRequests bumped to %d", spec.RelistRequests)
	}
	if spec.RelistBehavior == manifest.RelistManual {
		return ""
	}
	period := 15 * time.Minute
	if spec.RelistDuration != nil && spec.RelistDuration.Duration > 0 {
		period = spec.RelistDuration.Duration
	}
	last := rec.FetchedAt.Time
	if lastRelist.After(last) {
		last = lastRelist
	}
	if !now.Before(last.Add(period)) {
		return fmt.Sprintf("relistDuration %s elapsed", period)
	}
	return ""
}

// NextRelist is when b's catalog is next due by its schedule (zero for
// Manual, or when it is due now).
func NextRelist(b manifest.Broker, rec *manifest.CatalogRecord, lastRelist time.Time) time.Time {
	spec := b.GetBrokerSpec()
	if rec == nil || spec.RelistBehavior == manifest.RelistManual {
		return time.Time{}
	}
	period := 15 * time.Minute
	if spec.RelistDuration != nil && spec.RelistDuration.Duration > 0 {
		period = spec.RelistDuration.Duration
	}
	last := rec.FetchedAt.Time
	if lastRelist.After(last) {
		last = lastRelist
	}
	return last.Add(period)
}

// catalogOutcome is the result of refreshing one broker's catalog.
type catalogOutcome struct {
	broker manifest.Ref
	// reason is why it was fetched ("" = cache used).
	reason string
	// record is the record to use (new, or the cached one); nil when there
	// is none at all.
	record *manifest.CatalogRecord
	// changed is set when record differs meaningfully from the cached one
	// and must be written.
	changed bool
	// fetched is set when a GET /v2/catalog succeeded.
	fetched bool
	// notContacted says why the broker was deliberately not called
	// (offline, or not trusted); err why a call failed.
	notContacted string
	err          error
}

// catalogGetter is what refreshing needs from a broker client.
type catalogGetter interface {
	GetCatalog(ctx context.Context) (*osbwire.Catalog, error)
}

// refreshCatalogs fetches the catalogs that are due (all of them when force)
// concurrently, keeping the cached record when a fetch fails or returns the
// same catalog. due names brokers to relist whatever their schedule, with
// the reason (their auth Secret changed). Offline, or for brokers in skip,
// the cached record is used without a call. getClient returns the broker's
// client.
func refreshCatalogs(ctx context.Context, brokers []manifest.Broker, cached map[manifest.Ref]*manifest.CatalogRecord,
	lastRelist map[manifest.Ref]time.Time, due map[manifest.Ref]string, now time.Time, force, offline bool, skip notContacted,
	getClient func(context.Context, manifest.Broker) (catalogGetter, error)) []catalogOutcome {
	out := make([]catalogOutcome, len(brokers))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, b := range brokers {
		ref := b.GetRef()
		rec := cached[ref]
		reason := RelistReason(b, rec, lastRelist[ref], now)
		if reason == "" {
			reason = due[ref]
		}
		if force && reason == "" {
			reason = "refresh requested"
		}
		out[i] = catalogOutcome{broker: ref, reason: reason, record: rec, notContacted: skip[ref]}
		if reason == "" || offline || out[i].notContacted != "" {
			continue
		}
		wg.Add(1)
		go func(i int, b manifest.Broker) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			o := &out[i]
			c, err := getClient(ctx, b)
			if err != nil {
				o.err = err
				return
			}
			cat, err := c.GetCatalog(ctx)
			if err != nil {
				o.err = fmt.Errorf("relist %s: %w", o.broker, err)
				return
			}
			spec := b.GetBrokerSpec()
			nr, err := manifest.NewCatalogRecord(o.broker, *cat, now, BrokerSpecHash(spec), spec.RelistRequests)
			if err != nil {
				o.err = err
				return
			}
			o.fetched = true
			if nr.Equivalent(o.record) {
				return
			}
			o.record, o.changed = nr, true
		}(i, b)
	}
	wg.Wait()
	return out
}
