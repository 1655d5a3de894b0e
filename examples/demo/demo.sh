#!/usr/bin/env bash
# make demo: osbgit end to end on one machine, with no cluster, container or
# network. It starts the example broker (examples/broker), turns
# examples/repo into a local bare Git repository, and runs osbgit validate,
# diff and sync against them; then it changes a manifest the way a user
# would (commit + push) and runs diff and sync again.
#
# Everything it makes lives in the work dir (default ./demo, emptied at the
# start of each run; DEMO_DIR overrides it):
#
#   repo.git/   the bare repository osbgit reconciles (--repo)
#   clone/      a working copy of it, where the demo plays the user
#   secrets/    the secret store (--secret-store dir:...): broker auth,
#               parametersFrom input, and the credentials osbgit writes
#   cache/      osbgit's cache (--cache-dir)
#   broker.log  every request the broker served
#
# Environment: GO (go command), MAKE, DEMO_DIR (work dir), OSBGIT_BIN (use
# this osbgit binary instead of building bin/osbgit), DEMO_PORT (broker port
# to try first, default 8085; any free port if it is taken).
set -Eeuo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
GO=${GO:-go}
MAKE=${MAKE:-make}
work=${DEMO_DIR:-$root/demo}
osbgit=${OSBGIT_BIN:-$root/bin/osbgit}
broker_bin=$root/bin/demo-broker
port=${DEMO_PORT:-8085}

bare=$work/repo.git
clone=$work/clone
store=$work/secrets
cache=$work/cache
broker_log=$work/broker.log
marker=.osbgit-demo-workdir

# The files examples/repo and osbgit agree on.
manifest_url=http://127.0.0.1:8085 # spec.url in examples/repo/brokers/demo-broker.yaml
orders_record=.osbgit/status/apps/serviceinstance/orders-db.yaml
orders_binding_record=.osbgit/status/apps/servicebinding/orders-db-binding.yaml

if [[ -t 1 ]]; then
	bold=$'\e[1m' dim=$'\e[2m' green=$'\e[32m' red=$'\e[31m' yellow=$'\e[33m' reset=$'\e[0m'
else
	bold='' dim='' green='' red='' yellow='' reset=''
fi

step=0
step_name=setup
broker_pid=
broker_started=
work_made=
broker_mark=0
start=$SECONDS

banner() {
	step=$((step + 1))
	step_name=$*
	printf '\n%s==> %d. %s%s\n' "$bold" "$step" "$*" "$reset"
}
say() { printf '    %s\n' "$@"; }
ok() { printf '    %s✓ %s%s\n' "$green" "$*" "$reset"; }
warn() { printf '    %s! %s%s\n' "$yellow" "$*" "$reset"; }
# show prints a command (paths relative to the repo root) and runs it.
show() {
	local a line='' r=$root/
	for a in "$@"; do
		case $a in *[[:space:]\'\"\$\&\;\|\<\>\(\)\*\?]*) a="'$a'" ;; esac
		line+=" $a"
	done
	line=${line# }
	printf '%s$ %s%s\n' "$dim" "${line//$r/}" "$reset"
	"$@"
}
die() {
	printf '\n%sdemo failed in step %d (%s): %s%s\n' "$red" "$step" "$step_name" "$*" "$reset" >&2
	exit 1
}
# git with a fixed identity, whatever the user's configuration.
g() {
	git -c user.name="Demo User" -c user.email=demo@example.invalid -c commit.gpgsign=false \
		-c core.hooksPath=/dev/null -c advice.detachedHead=false "$@"
}
# broker_calls prints the requests the broker served since the last call.
broker_calls() {
	local n
	n=$(wc -l <"$broker_log")
	n=${n// /}
	if ((n > broker_mark)); then
		printf '    %sbroker:%s\n' "$dim" "$reset"
		sed -n "$((broker_mark + 1)),${n}p" "$broker_log" | sed -E "s/^broker: [0-9/]+ /      /; s/^/$dim/; s/\$/$reset/"
	fi
	broker_mark=$n
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

stop_broker() {
	[[ -n $broker_pid ]] || return 0
	if kill -0 "$broker_pid" 2>/dev/null; then
		kill -TERM "$broker_pid" 2>/dev/null || true
		for _ in $(seq 50); do
			kill -0 "$broker_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$broker_pid" 2>/dev/null || true
	fi
	wait "$broker_pid" 2>/dev/null || true
	broker_pid=
}

on_exit() {
	local rc=$?
	trap - ERR
	stop_broker
	local j
	for j in $(jobs -p); do kill -TERM "$j" 2>/dev/null || true; done
	if ((rc == 130 || rc == 143)); then
		printf '\n%sdemo interrupted%s\n' "$red" "$reset" >&2
	fi
	if ((rc != 0)) && [[ -n $work_made ]]; then
		if [[ -n $broker_started && -s $broker_log ]]; then
			printf '\nlast broker log lines (%s):\n' "${broker_log#"$root"/}" >&2
			tail -n 15 "$broker_log" | sed 's/^/  /' >&2
		fi
		printf '\nwork dir kept for inspection: %s\n' "$work" >&2
	fi
	exit "$rc"
}
on_err() {
	local rc=$? cmd=$BASH_COMMAND
	trap - ERR
	die "command failed (exit $rc): ${cmd//$root\//}"
}
trap on_exit EXIT
trap on_err ERR
trap 'exit 130' INT
trap 'exit 143' TERM

command -v git >/dev/null || die "git is not installed"
command -v "$GO" >/dev/null || die "$GO is not installed (set GO=/path/to/go)"

# ---------------------------------------------------------------------------
banner "Build osbgit and the example broker"
if [[ -n ${OSBGIT_BIN:-} ]]; then
	say "using OSBGIT_BIN=$osbgit"
	[[ -x $osbgit ]] || die "OSBGIT_BIN=$osbgit is not an executable"
else
	show "$MAKE" --no-print-directory build GO="$GO" || die "make build failed (see the compiler output above)"
fi
show "$GO" build -o "$broker_bin" ./examples/broker || die "building examples/broker failed"
"$osbgit" sync --help >/dev/null 2>&1 || die "$osbgit has no sync command"

# ---------------------------------------------------------------------------
banner "Prepare the work dir and the secret store"
if [[ -e $work ]]; then
	[[ -e $work/$marker || -z $(ls -A "$work") ]] || die "$work exists and was not made by the demo: remove it or set DEMO_DIR"
	rm -rf "$work"
fi
umask 077 # the work dir holds secrets
mkdir -p "$work" "$cache"
: >"$work/$marker"
work_made=1
: >"$broker_log"
say "work dir: $work"

random() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
broker_password=$(random 16)
admin_password=$(random 12)
# PATH/<namespace>/<secret>/<key>, as a Kubernetes Secret volume lays it out.
mkdir -p "$store/osbgit-system/demo-broker-auth" "$store/apps/analytics-db-params"
printf '%s' demo >"$store/osbgit-system/demo-broker-auth/username"
printf '%s' "$broker_password" >"$store/osbgit-system/demo-broker-auth/password"
printf '{"adminPassword": "%s"}\n' "$admin_password" >"$store/apps/analytics-db-params/parameters"
chmod 700 "$store" "$store"/* "$store"/*/*
chmod 600 "$store"/*/*/*
say "secret store: ${store#"$root"/} (random passwords, never printed)"
(cd "$store" && find . -type f | sort | sed 's|^\./|      |')

# ---------------------------------------------------------------------------
banner "Start the example broker"
start_broker() {
	: >"$broker_log"
	"$broker_bin" --addr "$1" --username demo --password-file "$store/osbgit-system/demo-broker-auth/password" >"$broker_log" 2>&1 &
	broker_pid=$!
	broker_started=1
	broker_url=
	for _ in $(seq 150); do
		broker_url=$(sed -n '/listening on http/{s|.*listening on \(http://[0-9.]*:[0-9]*\).*|\1|p;q;}' "$broker_log")
		[[ -z $broker_url ]] || return 0
		if ! kill -0 "$broker_pid" 2>/dev/null; then
			wait "$broker_pid" 2>/dev/null || true
			broker_pid=
			return 1
		fi
		sleep 0.1
	done
	die "the broker did not start listening within 15s (see $broker_log)"
}
addr=127.0.0.1:$port
if port_open "$port"; then
	say "port $port is taken: using any free port"
	addr=127.0.0.1:0
fi
if ! start_broker "$addr"; then
	grep -q 'address already in use' "$broker_log" && [[ $addr != 127.0.0.1:0 ]] || die "the broker did not start: $(cat "$broker_log")"
	say "port $port is taken: using any free port"
	start_broker 127.0.0.1:0 || die "the broker did not start: $(cat "$broker_log")"
fi
broker_port=${broker_url##*:}
port_open "$broker_port" || sleep 0.2
say "broker $broker_url (pid $broker_pid, basic auth user demo), log: ${broker_log#"$root"/}"
broker_calls

# ---------------------------------------------------------------------------
banner "Create a bare Git repository from examples/repo"
git init -q --bare "$bare"
git --git-dir "$bare" symbolic-ref HEAD refs/heads/main
git init -q "$clone"
g -C "$clone" symbolic-ref HEAD refs/heads/main
g -C "$clone" remote add origin "$bare"
cp -R examples/repo/. "$clone/"
if [[ $broker_url != "$manifest_url" ]]; then
	f=$clone/brokers/demo-broker.yaml
	sed "s|$manifest_url|$broker_url|" "$f" >"$f.tmp" && mv "$f.tmp" "$f"
	grep -q "url: $broker_url" "$f" || die "could not point $f at $broker_url"
	say "brokers/demo-broker.yaml: url rewritten to $broker_url"
fi
g -C "$clone" add -A
g -C "$clone" commit -q -m "Add the demo manifests"
g -C "$clone" push -q -u origin main
say "bare repo: ${bare#"$root"/}   working copy: ${clone#"$root"/}"
(cd "$clone" && find . -path ./.git -prune -o -type f -print | sort | sed 's|^\./|      |')

# ---------------------------------------------------------------------------
banner "osbgit validate: check the manifests offline"
show "$osbgit" validate --repo "$clone"

# ---------------------------------------------------------------------------
banner "osbgit diff: what would a sync do? (exit 1 = changes pending)"
rc=0
show "$osbgit" diff --repo "$bare" --secret-store "dir:$store" --cache-dir "$cache" || rc=$?
((rc == 1)) || die "osbgit diff exited $rc, want 1 (changes pending)"
ok "exit 1: changes pending; diff made no mutating call:"
broker_calls
if grep -Eq '(PUT|PATCH|DELETE) ' "$broker_log"; then die "diff made a mutating broker call"; fi

# ---------------------------------------------------------------------------
banner "osbgit sync: provision, bind, write credentials, commit status"
head_before=$(git --git-dir "$bare" rev-parse HEAD)
sync_pass() {
	local rc=0
	show "$osbgit" sync --repo "$bare" --secret-store "dir:$store" --cache-dir "$cache" --inline-poll 15s || rc=$?
	((rc == 0)) || die "osbgit sync exited $rc (1: a resource failed, its status record says why; 2: error)"
	broker_calls
}
sync_pass
# The redis cache provisions asynchronously: sync polls it for up to
# --inline-poll, and its binding waits for it to be ready. Whatever is still
# pending is done by the next pass, as the next CronJob run would.
pass=1
while :; do
	rc=0
	"$osbgit" diff --repo "$bare" --secret-store "dir:$store" --cache-dir "$cache" >"$work/pending.txt" 2>&1 || rc=$?
	((rc != 0)) || break
	((rc == 1)) || die "osbgit diff exited $rc after sync pass $pass: $(cat "$work/pending.txt")"
	say "" "pending after pass $pass (osbgit diff):"
	sed 's/^/      /' "$work/pending.txt"
	((pass < 3)) || die "changes still pending after $pass sync passes"
	pass=$((pass + 1))
	say "" "pass $pass does the rest:"
	sync_pass
done
[[ $(git --git-dir "$bare" rev-parse HEAD) != "$head_before" ]] || die "sync pushed no status commit"
ok "converged"

# ---------------------------------------------------------------------------
banner "What sync left behind: status in Git, credentials in the secret store"
show git --git-dir "$bare" log --format='%h %<(10,trunc)%an %s' -3
say "" "records under .osbgit/ (catalog cache and one status record per resource):"
show git --git-dir "$bare" ls-tree -r --name-only HEAD .osbgit/
say "" "the status record of the instance orders-db:"
show git --git-dir "$bare" show "HEAD:$orders_record"
say "" "a binding's record names the Secret and its keys, never a value:"
printf '%s$ git --git-dir %s show HEAD:%s | sed -n /^secretRef:/,/^observedRevision/p%s\n' "$dim" "${bare#"$root"/}" "$orders_binding_record" "$reset"
git --git-dir "$bare" show "HEAD:$orders_binding_record" | sed -n '/^secretRef:/,/^observedRevision/p' | sed '$d'
say "" "credential files written by osbgit (0700 directories, 0600 files; .osbgit-meta.json holds the labels marking them as osbgit's):"
for s in apps/orders-db-credentials apps/sessions-cache; do
	[[ -d $store/$s ]] || die "sync did not write the Secret $s to the store"
	printf '      %s/\n' "$s"
	(cd "$store/$s" && ls -la | sed -n '2,$p' | sed -e '/ \.$/d' -e '/ \.\.$/d' -e 's/^/        /')
done
say "" "orders-db-credentials keys (secretTransforms: uri renamed to DATABASE_URL, PGSSLMODE added):"
say "  $(cd "$store/apps/orders-db-credentials" && ls | tr '\n' ' ')"
[[ -f $store/apps/orders-db-credentials/DATABASE_URL && ! -e $store/apps/orders-db-credentials/uri ]] || die "orders-db-credentials: want DATABASE_URL and no uri"
say "PGSSLMODE=$(cat "$store/apps/orders-db-credentials/PGSSLMODE")   (the other values are secrets: not shown)"

# No credential value may reach Git: search every object of the bare repo.
secrets_file=$work/.secret-values
{
	printf '%s\n' "$broker_password" "$admin_password"
	for f in "$store"/apps/*/password "$store"/apps/*/DATABASE_URL "$store"/apps/*/uri; do
		if [[ -f $f ]]; then
			cat "$f"
			echo
		fi
	done
} | grep -v '^$' >"$secrets_file"
if git --git-dir "$bare" log --all -p --format= | grep -qF -f "$secrets_file"; then
	die "a credential value was found in the Git history"
fi
ok "no password, URI or other credential value anywhere in the Git history ($(wc -l <"$secrets_file" | tr -d ' ') values checked)"

# ---------------------------------------------------------------------------
banner "A pull request: orders-db moves to plan large, 20 GiB, on a branch"
g -C "$clone" pull -q --ff-only
g -C "$clone" checkout -q -b orders-db-large
f=$clone/apps/orders-db.yaml
sed -e 's/^\(  clusterServicePlanExternalName:\) small$/\1 large/' -e 's/^\(    size:\) 10\( .*\)\{0,1\}$/\1 20\2/' "$f" >"$f.tmp" && mv "$f.tmp" "$f"
grep -q 'clusterServicePlanExternalName: large' "$f" && grep -q '^    size: 20' "$f" || die "could not edit $f (did examples/repo/apps/orders-db.yaml change?)"
show git -C "$clone" --no-pager diff
show "$osbgit" validate --repo "$clone"
g -C "$clone" commit -q -am "orders-db: plan large, 20 GiB"
g -C "$clone" push -q origin orders-db-large
say "pushed branch orders-db-large: $(git -C "$clone" log --format='%h %s' -1)"

banner "The pull request's plan, as CI posts it (offline, no broker or Secret access)"
plan_md=$work/plan.md
rc=0
"$osbgit" diff --repo "$clone" --trusted-branch main --offline -o markdown >"$plan_md" || rc=$?
((rc == 1)) || die "osbgit diff -o markdown exited $rc, want 1 (changes pending)"
say "$ osbgit diff --repo ${clone#"$root"/} --trusted-branch main --offline -o markdown  (exit 1: changes pending)"
sed 's/^/      /' "$plan_md"
grep -q '^<!-- osbgit-plan -->' "$plan_md" && grep -q 'Plan: 0 to create, 1 to update, 0 to delete' "$plan_md" ||
	die "the Markdown plan does not say one update"
grep -q 'parameters.size: 10 -> 20' "$plan_md" || die "the Markdown plan does not show the old size"
ok "one comment's worth of Markdown: the old values come from the manifest last applied"

banner "Merge the pull request, then sync"
g -C "$clone" checkout -q main
g -C "$clone" merge -q --no-ff -m "Merge pull request: orders-db large" orders-db-large
g -C "$clone" push -q origin main
human_commit=$(git --git-dir "$bare" rev-parse HEAD)
say "merged: $(git --git-dir "$bare" log --format='%h %s' -1)"
broker_calls
sync_pass
[[ $(git --git-dir "$bare" rev-parse HEAD) != "$human_commit" ]] || die "sync pushed no status commit for the update"
show git --git-dir "$bare" log --format='%h %<(10,trunc)%an %s' -3
say "" "the record's change (plan, parameter checksum, the manifest applied):"
show git --git-dir "$bare" --no-pager diff "$human_commit" HEAD -- "$orders_record"

banner "Did it converge? osbgit status, and the note on the merged commit"
rc=0
show "$osbgit" status --repo "$bare" --secret-store "dir:$store" --cache-dir "$cache" || rc=$?
((rc == 0)) || die "osbgit status exited $rc, want 0 (nothing failed, records verified)"
ok "osbgit status: exit 0 (a CI or monitoring check: 1 when a resource failed or records were tampered with)"
show git --git-dir "$bare" --no-pager notes --ref osbgit show "$human_commit"
git --git-dir "$bare" notes --ref osbgit show "$human_commit" >/dev/null 2>&1 || die "no osbgit note on the merged commit"
ok "the merged commit carries osbgit's result (refs/notes/osbgit)"

# ---------------------------------------------------------------------------
banner "Nothing changed: a sync is a no-op (no broker call to change anything, no commit)"
head_before=$(git --git-dir "$bare" rev-parse HEAD)
sync_pass
[[ $(git --git-dir "$bare" rev-parse HEAD) == "$head_before" ]] || die "a no-op sync pushed a commit"
ok "no new commit"
rc=0
show "$osbgit" diff --repo "$bare" --secret-store "dir:$store" --cache-dir "$cache" || rc=$?
((rc == 0)) || die "osbgit diff exited $rc after convergence, want 0 (in sync)"
ok "osbgit diff: exit 0, in sync"
broker_calls

# ---------------------------------------------------------------------------
banner "Stop the broker"
stop_broker
say "stopped (its state was in memory: the next make demo starts from scratch)"

calls=$(grep -c ' -> [0-9]' "$broker_log" || true)
commits=$(git --git-dir "$bare" log --format=%an | grep -c '^osbgit' || true)
records=$(git --git-dir "$bare" ls-tree -r --name-only HEAD .osbgit/status | wc -l | tr -d ' ')
printf '\n%sDone in %ds.%s %s broker requests, %s status commits by osbgit, %s status records.\n' \
	"$bold" $((SECONDS - start)) "$reset" "$calls" "$commits" "$records"
cat <<EOF
Look around (work dir: ${work#"$root"/}):
  git --git-dir ${bare#"$root"/} log --stat     your commits and osbgit's status commits
  ls -lR ${store#"$root"/}                        the secret store (holds credentials)
  cat ${broker_log#"$root"/}                         every OSB request the broker served
The broker kept its instances in memory and is gone: run make demo again to
start over, and see examples/README.md for more edits to try.
EOF
