package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/manifest/gitrepo"
	"github.com/osbgit/osbgit/reconciler"
	"github.com/osbgit/osbgit/reconciler/exec"
	"github.com/osbgit/osbgit/reconciler/forge"
	"github.com/osbgit/osbgit/reconciler/integrity"
	"github.com/osbgit/osbgit/reconciler/kubestate"
	"github.com/osbgit/osbgit/reconciler/policy"
	"github.com/osbgit/osbgit/reconciler/secrets"
	"github.com/osbgit/osbgit/reconciler/secretstore"
)

// passFlags are the flags of commands that plan or run a pass.
type passFlags struct {
	// mutating: the command reconciles (sync, run), so the branch it
	// reads must be the trusted branch.
	mutating     bool
	statusBranch string
	prune        bool
	maxDeletions int
	concurrency  int
	// minRetry and maxRetry bound the backoff of calls the broker gave
	// no verdict on.
	minRetry, maxRetry time.Duration
	// secretSweep is how often every binding Secret is read back.
	secretSweep time.Duration
	// commitStatus (a forge.Kind), commitStatusTokenFile and
	// commitStatusURL set a forge commit status on each reconciled
	// revision.
	commitStatus, commitStatusTokenFile, commitStatusURL string
}

func (pf *passFlags) register(cmd *cobra.Command, mutating bool) {
	pf.mutating = mutating
	f := cmd.Flags()
	f.StringVar(&pf.statusBranch, "status-branch", "", "branch holding .osbgit/ records (default: the trusted branch's osbgit.yaml statusBranch, else the trusted branch)")
	f.BoolVar(&pf.prune, "prune", false, "delete resources whose manifest was removed (default: osbgit.yaml's prune)")
	f.IntVar(&pf.maxDeletions, "max-deletions", 0, "refuse a pass deleting more than N resources (default: osbgit.yaml's maxDeletions, 10)")
	if mutating {
		f.IntVar(&pf.concurrency, "concurrency", 0, "concurrent calls per broker (default: osbgit.yaml's concurrency, 8)")
		f.DurationVar(&pf.minRetry, "min-retry-delay", exec.MinRetryDelay, "first wait before a call the broker gave no verdict on (5xx, timeout, 422 ConcurrencyError) is repeated; the waits double up to --max-retry-delay")
		f.DurationVar(&pf.maxRetry, "max-retry-delay", exec.MaxRetryDelay, "longest wait before a call the broker gave no verdict on is repeated")
		f.DurationVar(&pf.secretSweep, "secret-sweep-interval", reconciler.DefaultSecretSweepInterval, "how often a pass, or a sync whose head has not moved, reads back every binding Secret osbgit wrote and restores those deleted or edited (parametersFrom and broker auth Secrets are read every time; in run, a Secret watch event or the dir store's --secret-check-interval also sweeps); 0: every time")
		f.StringVar(&pf.commitStatus, "commit-status", "", "set a commit status (pending, then success or failure) on each manifest commit a pass reconciles, on this forge: github, gitlab or gitea; the project comes from --repo's URL")
		f.StringVar(&pf.commitStatusTokenFile, "commit-status-token-file", "", "file holding the forge API token for --commit-status")
		f.StringVar(&pf.commitStatusURL, "commit-status-url", "", "forge API base URL for --commit-status (default: https://api.github.com, https://gitlab.com/api/v4 or https://gitea.com/api/v1); set it for GitHub Enterprise or a self-hosted GitLab or Gitea")
	}
}

// options turns the flags that were given into reconciler overrides.
func (pf *passFlags) options(cmd *cobra.Command, g *globalOptions) reconciler.Options {
	o := reconciler.Options{Path: g.Path, Concurrency: pf.concurrency, ClusterID: g.ClusterID,
		BrokerAuthNamespaces: g.brokerAuthNamespaces(), MinRetryDelay: pf.minRetry, MaxRetryDelay: pf.maxRetry,
		SecretSweepInterval: pf.secretSweep}
	if cmd.Flags().Changed("prune") || os.Getenv(envName("prune")) != "" {
		v := pf.prune
		o.Prune = &v
	}
	if cmd.Flags().Changed("max-deletions") || os.Getenv(envName("max-deletions")) != "" {
		v := pf.maxDeletions
		o.MaxDeletions = &v
	}
	return o
}

// readSecretFile reads a credential file, trimming one trailing newline (as
// Kubernetes Secret volumes and `echo` leave them).
func readSecretFile(flag, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flag, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// gitAuth gathers Git credentials from flags, files and environment, and
// teaches g.secrets every one of them (and those in a --repo URL).
func (g *globalOptions) gitAuth() (a gitrepo.Auth, err error) {
	defer func() { g.learnGitSecrets(a) }()
	a = gitrepo.Auth{Username: g.GitUsername, CAFile: g.GitCAFile, SSHKeyFile: g.GitSSHKey, KnownHostsFile: g.GitKnownHosts}
	if g.GitPasswordFile != "" {
		if a.Password, err = readSecretFile("git-password-file", g.GitPasswordFile); err != nil {
			return a, err
		}
	} else if v := os.Getenv("OSBGIT_GIT_PASSWORD"); v != "" {
		a.Password = v
	}
	if g.GitTokenFile != "" {
		if a.Token, err = readSecretFile("git-token-file", g.GitTokenFile); err != nil {
			return a, err
		}
	} else if v := os.Getenv("OSBGIT_GIT_TOKEN"); v != "" {
		a.Token = v
	}
	return a, nil
}

// learnGitSecrets adds the Git password and token of a, and the password
// of a --repo URL's userinfo, to g.secrets, with the user:password pairs
// and Authorization header values made of them.
func (g *globalOptions) learnGitSecrets(a gitrepo.Auth) {
	basic := func(user, pass string) {
		if pass == "" {
			return
		}
		g.secrets.Add(pass, user+":"+pass, "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	}
	basic(a.Username, a.Password)
	if a.Token != "" {
		g.secrets.Add(a.Token, "Bearer "+a.Token)
	}
	if u, err := url.Parse(g.Repo); err == nil && u.User != nil {
		if pass, ok := u.User.Password(); ok {
			basic(u.User.Username(), pass)
			g.secrets.Add(u.User.String())
		}
	}
}

// cacheRoot is --cache-dir, else $XDG_CACHE_HOME/osbgit, else ~/.cache/osbgit.
func (g *globalOptions) cacheRoot() string {
	if g.CacheDir != "" {
		return g.CacheDir
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "osbgit")
	}
	return filepath.Join(os.TempDir(), "osbgit-cache")
}

// openRepo opens --repo. The trusted branch comes from the operator only
// (--trusted-branch, else what sync reconciles: --branch, else the remote's
// default branch), never from the repository: a reconciling command must
// read the trusted branch itself, and any other command compares what it
// reads with it. The status branch comes from --status-branch, else from
// osbgit.yaml at the trusted branch's head (which needs the repo open
// first, so the repo is reopened when the config names one).
func (g *globalOptions) openRepo(ctx context.Context, statusBranch string, mutating bool) (*gitrepo.Repo, error) {
	auth, err := g.gitAuth()
	if err != nil {
		return nil, err
	}
	var opts []gitrepo.Option
	opts = append(opts, gitrepo.WithCacheDir(filepath.Join(g.cacheRoot(), "git")))
	if g.GitInsecureHTTP {
		opts = append(opts, gitrepo.WithInsecureHTTP())
	}
	if g.GitInsecureSkipHostKey {
		opts = append(opts, gitrepo.WithInsecureSkipHostKeyCheck())
	}
	o := gitrepo.Options{URL: g.Repo, Branch: g.Branch, StatusBranch: statusBranch, Auth: auth, TrustedBranch: g.TrustedBranch, ClusterID: g.ClusterID}
	switch {
	case mutating && g.Branch != "" && g.TrustedBranch != "" && g.Branch != g.TrustedBranch:
		return nil, fmt.Errorf("--branch %q is not the trusted branch %q: sync and run reconcile only the trusted branch (diff previews any branch)", g.Branch, g.TrustedBranch)
	case mutating && g.Branch == "":
		o.Branch = g.TrustedBranch
	case !mutating && g.TrustedBranch == "":
		o.TrustDefaultBranch = true
	}
	repo, err := gitrepo.Open(ctx, o, opts...)
	if err != nil {
		return nil, err
	}
	if statusBranch != "" {
		return repo, nil
	}
	cfg, err := trustedConfig(ctx, repo)
	if err != nil {
		repo.Close()
		return nil, err
	}
	if cfg.StatusBranch == "" && cfg.CommitAuthor.Name == "" {
		return repo, nil
	}
	repo.Close()
	o.StatusBranch = cfg.StatusBranch
	opts = append(opts, gitrepo.WithAuthor(cfg.CommitAuthor.Name, cfg.CommitAuthor.Email))
	return gitrepo.Open(ctx, o, opts...)
}

// trustedConfig reads osbgit.yaml at the trusted branch's head (the
// defaults when that branch does not exist).
func trustedConfig(ctx context.Context, repo *gitrepo.Repo) (*manifest.Config, error) {
	fr, err := repo.Fetch(ctx)
	if err != nil {
		return nil, err
	}
	if fr.TrustedHead == "" {
		return manifest.DefaultConfig(), nil
	}
	fsys, err := repo.TreeFS(fr.TrustedHead)
	if err != nil {
		return nil, err
	}
	cfg, diags := manifest.LoadConfig(fsys)
	if diags.HasErrors() {
		return nil, fmt.Errorf("osbgit.yaml of the trusted branch %q: %w", repo.TrustedBranch(), diags.Err())
	}
	return cfg, nil
}

// tenancyPolicy reads --policy (nil without it). The policy comes only
// from the operator (a flag or OSBGIT_POLICY on the deployment, the file a
// mounted ConfigMap), never from the manifest repository its rules
// constrain; a file that cannot be read or has errors stops the command,
// since running without it would allow everything. It is read once per
// process: a changed ConfigMap applies from the next start.
func (g *globalOptions) tenancyPolicy() (*policy.Policy, error) {
	if g.PolicyFile == "" {
		return nil, nil
	}
	return policy.Load(g.PolicyFile)
}

// serviceAccountNamespaceFile holds the pod's namespace in a cluster.
const serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// brokerAuthNamespaces are the namespaces broker auth Secrets may come from:
// --broker-auth-namespaces, else osbgit's own namespace (in a cluster),
// else manifest.DefaultBrokerAuthNamespace.
func (g *globalOptions) brokerAuthNamespaces() []string {
	if len(g.BrokerAuthNamespaces) > 0 {
		return g.BrokerAuthNamespaces
	}
	return []string{ownNamespace()}
}

// ownNamespace is osbgit's own namespace: the pod's in a cluster, else
// manifest.DefaultBrokerAuthNamespace. Broker auth Secrets come from there
// by default, and the records key is kept there.
func ownNamespace() string {
	if b, err := os.ReadFile(serviceAccountNamespaceFile); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return manifest.DefaultBrokerAuthNamespace
}

// recordKeys is the records key of the secret store (nil without one, or
// for a store that cannot create a Secret once). A readOnly keeper reads
// the key without ever creating it, for the commands that must not write
// to the secret store (diff, status): a key they made up would verify
// nothing, and the store would then hold a key that did not seal the
// records (the next status with it said every record was tampered with).
func recordKeys(store secrets.Store, readOnly bool) reconciler.RecordKeys {
	ks, ok := store.(integrity.SecretStore)
	if !ok {
		return nil
	}
	if readOnly {
		ks = noKeyCreation{ks}
	}
	return integrity.NewKeeper(ks, ownNamespace())
}

// noKeyCreation is a secret store whose missing Secrets are not created
// (recordKeys' readOnly).
type noKeyCreation struct{ integrity.SecretStore }

// CreateOnce refuses: the Secret is missing and this command does not
// create it.
func (noKeyCreation) CreateOnce(_ context.Context, namespace, name string, _ secrets.Secret) (map[string][]byte, error) {
	return nil, fmt.Errorf("secret %s/%s not found (this command does not create it)", namespace, name)
}

// openSecrets opens --secret-store; empty means none (commands that must
// write credentials refuse without one).
func (g *globalOptions) openSecrets() (secrets.Store, error) {
	if g.SecretStore == "" {
		return nil, nil
	}
	return secretstore.Parse(g.SecretStore, secretstore.Options{Kubeconfig: g.Kubeconfig})
}

// stateKey names the pass state of this repo, branch, path and cluster ID:
// the file name in the cache, the key in a state ConfigMap. Without a
// cluster ID the key is what it always was.
func (g *globalOptions) stateKey(repo *gitrepo.Repo) string {
	id := repo.URL() + "\x00" + repo.Branch() + "\x00" + g.Path
	if g.ClusterID != "" {
		id += "\x00" + g.ClusterID
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:8]) + ".json"
}

// statePath is the pass-state file for this repo and branch in the cache.
func (g *globalOptions) statePath(repo *gitrepo.Repo) string {
	return filepath.Join(g.cacheRoot(), "state", g.stateKey(repo))
}

// stateFlags choose where sync and run keep the pass state between
// processes.
type stateFlags struct {
	noState   bool
	configMap string
}

func (sf *stateFlags) register(f *pflag.FlagSet, noStateHelp string) {
	f.BoolVar(&sf.noState, "no-state", false, noStateHelp)
	f.StringVar(&sf.configMap, "state-configmap", "", "keep the pass state in this ConfigMap (NAMESPACE/NAME, created if missing) instead of the cache dir: a CronJob without a persistent volume then skips passes with nothing to do")
}

// store returns the pass-state store the flags select (nil: none).
func (sf *stateFlags) store(g *globalOptions, repo *gitrepo.Repo) (reconciler.StateStore, error) {
	switch {
	case sf.noState && sf.configMap != "":
		return nil, errors.New("--no-state and --state-configmap exclude each other")
	case sf.noState:
		return nil, nil
	case sf.configMap == "":
		return reconciler.StateFile(g.statePath(repo)), nil
	}
	ns, name, ok := strings.Cut(sf.configMap, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return nil, fmt.Errorf("--state-configmap %q: want NAMESPACE/NAME", sf.configMap)
	}
	for _, errs := range [][]string{validation.IsDNS1123Label(ns), validation.IsDNS1123Subdomain(name)} {
		if len(errs) > 0 {
			return nil, fmt.Errorf("--state-configmap %q: %s", sf.configMap, strings.Join(errs, "; "))
		}
	}
	cs, err := secretstore.NewKubeClient(g.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--state-configmap: %w", err)
	}
	return &kubestate.ConfigMap{
		Client: cs.CoreV1(), Namespace: ns, Name: name, Key: g.stateKey(repo),
		Labels: map[string]string{"app.kubernetes.io/name": "osbgit", "app.kubernetes.io/component": "pass-state"},
	}, nil
}

// indexPath is where the scope index is kept between processes (the cache
// dir, beside the state file, even when the state is in a ConfigMap: a
// CronJob with a cache volume then reads only what changed); "" with
// --no-state.
func (sf *stateFlags) indexPath(g *globalOptions, repo *gitrepo.Repo) string {
	if sf.noState {
		return ""
	}
	return reconciler.ScopeIndexPath(g.statePath(repo))
}

// newReconciler wires a reconciler for --repo with the pass flags.
func newReconciler(ctx context.Context, cmd *cobra.Command, g *globalOptions, pf *passFlags) (*reconciler.Reconciler, *gitrepo.Repo, error) {
	statuses, err := pf.commitStatuses(g)
	if err != nil {
		return nil, nil, err
	}
	pol, err := g.tenancyPolicy()
	if err != nil {
		return nil, nil, err
	}
	repo, err := g.openRepo(ctx, pf.statusBranch, pf.mutating)
	if err != nil {
		return nil, nil, err
	}
	store, err := g.openSecrets()
	if err != nil {
		repo.Close()
		return nil, nil, err
	}
	r := &reconciler.Reconciler{
		Source:         repo,
		Log:            g.log,
		Options:        pf.options(cmd, g),
		Clients:        &reconciler.BrokerClients{UserAgent: "osbgit/" + version},
		Redact:         g.secrets,
		CommitStatuses: statuses,
	}
	r.Options.Policy = pol
	if store != nil {
		r.Secrets = store
		r.Clients.Secrets = store
		r.Keys = recordKeys(store, false)
	}
	return r, repo, nil
}

// commitStatuses is the forge client of --commit-status (nil without it).
// What cannot work (an unknown forge, no token, a --repo that names no
// forge project, such as a local path) is an error at startup, not a
// warning on every pass. The token is added to the redaction set.
func (pf *passFlags) commitStatuses(g *globalOptions) (reconciler.CommitStatuses, error) {
	if pf.commitStatus == "" {
		if pf.commitStatusTokenFile != "" || pf.commitStatusURL != "" {
			return nil, errors.New("--commit-status-token-file and --commit-status-url need --commit-status github|gitlab|gitea")
		}
		return nil, nil
	}
	if pf.commitStatusTokenFile == "" {
		return nil, errors.New("--commit-status needs --commit-status-token-file")
	}
	token, err := readSecretFile("commit-status-token-file", pf.commitStatusTokenFile)
	if err != nil {
		return nil, err
	}
	g.secrets.Add(token, "Bearer "+token, "token "+token)
	name := forge.DefaultContext
	if g.ClusterID != "" {
		name += "/" + g.ClusterID
	}
	c, err := forge.New(forge.Options{Kind: forge.Kind(pf.commitStatus), BaseURL: pf.commitStatusURL, RepoURL: g.Repo, Token: token, Context: name})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// writingReconciler is newReconciler for a command that writes records
// (trust, retry): it needs the secret store (the records key) and a
// writable repository. why says what the store is for, in the error.
func writingReconciler(ctx context.Context, cmd *cobra.Command, g *globalOptions, statusBranch, why string) (*reconciler.Reconciler, *gitrepo.Repo, error) {
	if g.SecretStore == "" {
		return nil, nil, fmt.Errorf("%s: set --secret-store kube or dir:PATH", why)
	}
	pf := passFlags{mutating: true, statusBranch: statusBranch}
	r, repo, err := newReconciler(ctx, cmd, g, &pf)
	if err != nil {
		return nil, nil, err
	}
	if err := repo.CheckWritable(); err != nil {
		repo.Close()
		return nil, nil, err
	}
	return r, repo, nil
}

// gitTree reads manifests for validate through the Git layer: the working
// tree of a local working copy, else the branch head.
func gitTree(g *globalOptions) (fs.FS, func() error, error) {
	if !looksLikeURL(g.Repo) {
		if st, err := os.Stat(g.Repo); err == nil && st.IsDir() {
			if _, err := os.Stat(filepath.Join(g.Repo, ".git")); err != nil || g.Branch == "" {
				// A plain directory, or a working copy without --branch:
				// what is on disk, uncommitted edits included.
				return os.DirFS(g.Repo), nil, nil
			}
		}
	}
	ctx := context.Background()
	repo, err := g.openRepo(ctx, "", false)
	if err != nil {
		return nil, nil, err
	}
	fr, err := repo.Fetch(ctx)
	if err != nil {
		repo.Close()
		return nil, nil, err
	}
	fsys, err := repo.TreeFS(fr.Head)
	if err != nil {
		repo.Close()
		return nil, nil, err
	}
	return fsys, repo.Close, nil
}

func init() { manifestTree = gitTree }

// brokerRefs parses broker names as --confirm-broker-move takes them: NAME
// is a ClusterServiceBroker, NAMESPACE/NAME a ServiceBroker.
func brokerRefs(names []string) ([]manifest.Ref, error) {
	var out []manifest.Ref
	for _, n := range names {
		ref := manifest.Ref{Kind: manifest.KindClusterServiceBroker, Name: n}
		if ns, name, ok := strings.Cut(n, "/"); ok {
			ref = manifest.Ref{Kind: manifest.KindServiceBroker, Namespace: ns, Name: name}
		}
		if errs := validation.IsDNS1123Subdomain(ref.Name); len(errs) > 0 || (ref.Namespace != "" && len(validation.IsDNS1123Label(ref.Namespace)) > 0) {
			return nil, fmt.Errorf("broker %q: want NAME or NAMESPACE/NAME", n)
		}
		out = append(out, ref)
	}
	return out, nil
}
