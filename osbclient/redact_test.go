package osbclient_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/osbgit/osbgit/osbclient"
	"github.com/osbgit/osbgit/osbclient/osbwire"
)

// TestErrorsNeverShowCredentials drives every error path with each way of
// authenticating, against a broker that echoes the credentials it gets back
// in its error bodies, and checks no Error() string holds a credential.
func TestErrorsNeverShowCredentials(t *testing.T) {
	const (
		user    = "osb-admin"
		pass    = "pw-Sup3rSecret"
		uiPass  = "ui-Sup3rSecret"
		token   = "tok-Sup3rSecret"
		caption = "Authorization"
	)
	basicSecrets := func(p string) []string {
		return []string{p, user + ":" + p, base64.StdEncoding.EncodeToString([]byte(user + ":" + p))}
	}

	echo := func(status int, ct string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			auth := r.Header.Get("Authorization")
			w.Header().Set("Content-Type", ct)
			w.WriteHeader(status)
			if ct == "text/plain" {
				fmt.Fprintf(w, "denied for %s: %s (%s/%s/%s)", caption, auth, pass, uiPass, token)
				return
			}
			fmt.Fprintf(w, `{"error":%q,"description":"you sent %s: %s %s %s %s"}`, auth, caption, auth, pass, uiPass, token)
		}
	}
	handlers := map[string]http.HandlerFunc{
		"400 json echo":  echo(400, "application/json"),
		"401 json echo":  echo(401, "application/json"),
		"422 json echo":  echo(422, "application/json"),
		"500 text echo":  echo(500, "text/plain"),
		"503 json echo":  echo(503, "application/json"),
		"204":            reply(204, ""),
		"302":            reply(302, "", "Location", "/x"),
		"malformed 201":  reply(201, `{"operation":`),
		"html 200":       reply(200, "<html>"+pass+"</html>", "Content-Type", "text/html"),
		"bad state 200":  reply(200, `{"state":"`+pass+`","services":[]}`),
		"too large 201":  reply(201, `{"operation":"`+strings.Repeat(pass, 20)+`"}`),
		"reset":          hijackClose(false),
		"cut body":       cutBody(201),
		"timeout":        block,
		"ok (for count)": reply(200, okBody),
	}
	type authCase struct {
		mod     func(base string) (string, func(*osbclient.Config))
		secrets []string // what this client knows and must never show
	}
	auths := map[string]authCase{
		"basic fields": {func(base string) (string, func(*osbclient.Config)) {
			return base, func(c *osbclient.Config) { c.Username, c.Password = user, pass }
		}, basicSecrets(pass)},
		"url userinfo": {func(base string) (string, func(*osbclient.Config)) {
			return strings.Replace(base, "://", "://"+user+":"+uiPass+"@", 1), func(*osbclient.Config) {}
		}, basicSecrets(uiPass)},
		"bearer": {func(base string) (string, func(*osbclient.Config)) {
			return base, func(c *osbclient.Config) { c.BearerToken = token }
		}, []string{token}},
	}
	checked := 0
	check := func(t *testing.T, what string, err error, secrets []string) {
		t.Helper()
		if err == nil {
			return
		}
		checked++
		msg := err.Error()
		for _, s := range secrets {
			if strings.Contains(msg, s) {
				t.Errorf("%s: Error() shows %q: %s", what, s, msg)
			}
		}
		if strings.Contains(msg, "@127.0.0.1") || strings.Contains(msg, user+"@") {
			t.Errorf("%s: Error() shows URL userinfo: %s", what, msg)
		}
	}
	for authName, auth := range auths {
		for hName, h := range handlers {
			t.Run(authName+"/"+hName, func(t *testing.T) {
				b := newBroker(t, h)
				u, mod := auth.mod(b.URL)
				c := newClient(t, u, mod, func(c *osbclient.Config) {
					c.Timeout = 50 * time.Millisecond
					c.MaxResponseBytes = 128
				})
				for _, cc := range calls() {
					_, err := cc.do(context.Background(), c)
					check(t, string(cc.op), err, auth.secrets)
				}
			})
		}
		t.Run(authName+"/transport", func(t *testing.T) {
			srv := newTLSBroker(t, nil)
			u, mod := auth.mod(srv.URL)
			c := newClient(t, u, mod, func(c *osbclient.Config) { c.CABundle = newCAPEM(t) })
			_, err := c.GetCatalog(context.Background())
			check(t, "tls", err, auth.secrets)
			u, mod = auth.mod("http://127.0.0.1:1")
			_, err = newClient(t, u, mod).GetCatalog(context.Background())
			check(t, "refused", err, auth.secrets)
			// Invalid requests, also when an ID contains a secret.
			var hookPath string
			hook := func(c *osbclient.Config) { c.OnRequest = func(ri osbclient.RequestInfo) { hookPath = ri.Path } }
			_, err = newClient(t, u, mod, hook).Provision(context.Background(), &osbwire.ProvisionRequest{InstanceID: pass + token + uiPass})
			check(t, "invalid", err, auth.secrets)
			check(t, "hook path", fmt.Errorf("%s", hookPath), auth.secrets)
		})
	}
	// Config errors.
	for _, cfg := range []osbclient.Config{
		{URL: "http://" + user + ":" + uiPass + "@host:%zz/"},
		{URL: "ftp://" + user + ":" + uiPass + "@host/"},
		{URL: "http://" + user + ":" + uiPass + "@host/?q"},
		{URL: "http://" + user + ":" + uiPass + "@host/", BearerToken: token},
		{URL: "http://host/", Username: user, Password: pass, BearerToken: token},
		{URL: "http://" + user + ":" + uiPass + "@host/", APIVersion: "1.0"},
	} {
		_, err := osbclient.New(cfg)
		if err == nil {
			t.Errorf("New(%v) succeeded", cfg.BearerToken)
		}
		check(t, "New", err, append(append(basicSecrets(pass), basicSecrets(uiPass)...), token))
	}
	if checked < 150 {
		t.Errorf("only %d errors checked", checked)
	}
}
