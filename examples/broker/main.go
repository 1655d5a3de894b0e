// Command broker is a runnable Open Service Broker for trying osbgit: the
// in-memory broker of osbclient/osbtest serving the demo catalog that
// examples/repo is written against (see examples/README.md):
//
//	postgres  plans small, large  bindable, plan_updateable, parameter schemas
//	redis     plan standard       bindable, provisions asynchronously (202, polls with Retry-After)
//	queue     plan basic          not bindable
//
// State is kept in memory: restarting the broker forgets every instance.
//
//	go run ./examples/broker --addr 127.0.0.1:8085 --username demo --password-file pw.txt
//
// Every flag has an environment twin (--password-file ↔
// DEMO_BROKER_PASSWORD_FILE). Each request is logged on stdout (method,
// path, status and, for a refusal, why); never a header, a body or a
// credential. SIGINT or SIGTERM stops it gracefully.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// options are the broker's settings.
type options struct {
	addr         string
	username     string
	password     string
	passwordFile string
	noAuth       bool
	seed         string
}

// envPrefix prefixes the environment twin of every flag.
const envPrefix = "DEMO_BROKER_"

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseFlags reads args, then the environment for every flag not given.
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8085", "address to listen on (port 0: any free port; the log says which)")
	fs.StringVar(&o.username, "username", "", "basic auth username")
	fs.StringVar(&o.password, "password", "", "basic auth password (prefer --password-file or the environment: arguments show in ps)")
	fs.StringVar(&o.passwordFile, "password-file", "", "file holding the basic auth password (one trailing newline is ignored)")
	fs.BoolVar(&o.noAuth, "no-auth", false, "serve without authentication")
	fs.StringVar(&o.seed, "credential-seed", "", "secret that binding credentials are derived from (default: random, so a restart hands out new passwords)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: broker [flags]\n\nA demo Open Service Broker (postgres, redis, queue) for osbgit. Every flag\nhas an environment twin: --password-file is %s.\n\n", envName("password-file"))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || envErr != nil {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("environment %s: %w", envName(f.Name), err)
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	if o.passwordFile != "" {
		if o.password != "" {
			return nil, errors.New("give --password or --password-file, not both")
		}
		b, err := os.ReadFile(o.passwordFile)
		if err != nil {
			return nil, fmt.Errorf("--password-file: %w", err)
		}
		o.password = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	}
	switch {
	case o.noAuth && (o.username != "" || o.password != ""):
		return nil, errors.New("--no-auth with a username or password")
	case !o.noAuth && (o.username == "" || o.password == ""):
		return nil, errors.New("set --username and --password (or --password-file), or --no-auth")
	}
	return o, nil
}

// run serves until ctx is done, then shuts down gracefully. It logs to out.
func run(ctx context.Context, o *options, out io.Writer) error {
	logger := log.New(out, "broker: ", log.LstdFlags)
	seed := []byte(o.seed)
	if len(seed) == 0 {
		seed = make([]byte, 32)
		if _, err := rand.Read(seed); err != nil {
			return err
		}
	}
	logf := func(format string, args ...any) {
		logger.Printf(strings.TrimPrefix(format, "osbtest: "), args...)
	}
	b := newDemoBroker(o.username, o.password, seed, logf)

	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           b,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          logger,
	}
	auth := "basic auth"
	if o.noAuth {
		auth = "no authentication"
	}
	logger.Printf("listening on http://%s (%s; services: postgres [small, large], redis [standard, async], queue [basic])", ln.Addr(), auth)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Printf("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	logger.Printf("stopped")
	return nil
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "broker:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "broker:", err)
		os.Exit(1)
	}
}
