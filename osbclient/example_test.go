package osbclient_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/osbgit/osbgit/osbclient"
)

// Example lists a broker's catalog: services and their plans.
func Example() {
	// A stand-in broker serving a small catalog.
	broker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/catalog" || r.Header.Get("X-Broker-API-Version") == "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"services":[
			{"name":"postgres","id":"svc-pg","description":"PostgreSQL","bindable":true,"plans":[
				{"id":"pg-small","name":"small","description":"1 vCPU"},
				{"id":"pg-large","name":"large","description":"8 vCPU","free":false}]},
			{"name":"redis","id":"svc-redis","description":"Redis","bindable":true,"plans":[
				{"id":"redis-cache","name":"cache","description":"no persistence"}]}]}`)
	}))
	defer broker.Close()

	client, err := osbclient.New(osbclient.Config{
		URL:        broker.URL,
		BrokerName: "demo",
		Username:   "admin",
		Password:   "s3cret",
	})
	if err != nil {
		log.Fatal(err)
	}
	catalog, err := client.GetCatalog(context.Background())
	if err != nil {
		log.Fatal(err) // a *osbclient.Error naming broker, call and status
	}
	for _, svc := range catalog.Services {
		fmt.Printf("%s (%s)\n", svc.Name, svc.ID)
		for _, plan := range svc.Plans {
			fmt.Printf("  %-6s free=%v  %s\n", plan.Name, plan.IsFree(), plan.Description)
		}
	}
	// Output:
	// postgres (svc-pg)
	//   small  free=true  1 vCPU
	//   large  free=false  8 vCPU
	// redis (svc-redis)
	//   cache  free=true  no persistence
}
