#!/usr/bin/env bash
# k8s-test-assets.sh: build the kube-apiserver and etcd binaries that
# `make e2e` runs (controller-runtime envtest, KUBEBUILDER_ASSETS), from the
# Go module proxy alone: no release download, no Docker, only Go and git.
#
# Prints one line on stdout: the directory to use as KUBEBUILDER_ASSETS.
# Everything else (progress, timings) goes to stderr, so
#   KUBEBUILDER_ASSETS=$(.ci/k8s-test-assets.sh) go test -tags e2e ...
# works.
#
# The binaries are cached outside the work tree, in
#   ${OSBGIT_K8S_ASSETS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/osbgit/k8s-assets}/<K8S_VERSION>/
# and a binary that already reports the wanted version is not rebuilt, so
# only the first run on a machine pays for the build (kube-apiserver: 8-13
# minutes of 2 cores, ~2.3 GB of modules and ~6 GB of Go build cache; etcd:
# 2-4 minutes).
#
# How: a throwaway module in the cache requires the component and is built
# with CGO_ENABLED=0. etcd's main package is the root of
# go.etcd.io/etcd/server/v3 (`go install` refuses it: its go.mod has replace
# directives). kube-apiserver needs k8s.io/kubernetes plus, for each staging
# module that its go.mod replaces with ./staging/..., a replace to the
# published k8s.io/<name> v0.<minor>.<patch>. Version ldflags make
# `kube-apiserver --version` (and /version) report the real version, which is
# also the cache key.
#
# Environment:
#   K8S_VERSION            kube-apiserver version (default v1.36.3; needs Go >= 1.26)
#   ETCD_VERSION           etcd version (default v3.6.16)
#   OSBGIT_K8S_ASSETS_DIR  cache root (default above)
#   GO                     the go command (default: go)
#   GOPROXY, GOFLAGS, ...  as for any go command
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
ROOT=${OSBGIT_K8S_ASSETS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/osbgit/k8s-assets}
OUT="$ROOT/$K8S_VERSION"
WORK="$ROOT/build"

log() { echo "k8s-test-assets: $*" >&2; }
die() { log "$*"; exit 1; }

GO=${GO:-go}
command -v "$GO" >/dev/null || die "$GO is not on PATH"
mkdir -p "$OUT" "$WORK"
OUT=$(cd "$OUT" && pwd)
WORK=$(cd "$WORK" && pwd)

# have BIN WANT: BIN exists and its --version output contains WANT. (No
# `| grep -q`: with pipefail, grep exiting at the first match can make the
# writer die of SIGPIPE and the check fail.)
have() {
  local v
  [ -x "$1" ] || return 1
  v=$("$1" --version 2>/dev/null) || return 1
  [[ $v == *"$2"* ]]
}

if have "$OUT/etcd" "etcd Version: ${ETCD_VERSION#v}" && have "$OUT/kube-apiserver" "Kubernetes $K8S_VERSION"; then
  log "kube-apiserver $K8S_VERSION and etcd $ETCD_VERSION already built"
  echo "$OUT"
  exit 0
fi

# One build at a time per cache (two `make e2e` on one machine would
# otherwise both spend 10 minutes and race on the output).
if command -v flock >/dev/null; then
  exec 9>"$ROOT/.lock"
  if ! flock -n 9; then
    log "another build holds $ROOT/.lock; waiting for it"
    flock 9
  fi
fi

# The build needs no cgo, must not use the calling module's settings, and
# must not switch toolchains behind our back.
export CGO_ENABLED=0 GOWORK=off GOTOOLCHAIN=${GOTOOLCHAIN:-local}
export GOFLAGS="-mod=mod ${GOFLAGS:-}"

gominor=$("$GO" env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
if [ -n "$gominor" ] && [ "$gominor" -lt 26 ]; then
  die "kube-apiserver $K8S_VERSION needs Go >= 1.26, have $("$GO" env GOVERSION)"
fi

# elapsed START: seconds since START (date +%s).
elapsed() { echo $(( $(date +%s) - $1 ))s; }

if have "$OUT/etcd" "etcd Version: ${ETCD_VERSION#v}"; then
  log "etcd $ETCD_VERSION already built"
else
  start=$(date +%s)
  log "building etcd $ETCD_VERSION into $OUT (a few minutes)"
  d="$WORK/etcd-$ETCD_VERSION"
  mkdir -p "$d"
  cat >"$d/go.mod" <<EOF
module osbgit.invalid/k8s-test-assets/etcd

go 1.26

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >"$d/tools.go"
  (cd "$d" && "$GO" mod tidy && "$GO" build -trimpath -ldflags="-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3) >&2
  mv -f "$OUT/etcd.tmp" "$OUT/etcd"
  have "$OUT/etcd" "etcd Version: ${ETCD_VERSION#v}" || die "built etcd does not report version $ETCD_VERSION"
  log "etcd $ETCD_VERSION built in $(elapsed "$start")"
fi

if have "$OUT/kube-apiserver" "Kubernetes $K8S_VERSION"; then
  log "kube-apiserver $K8S_VERSION already built"
else
  start=$(date +%s)
  log "building kube-apiserver $K8S_VERSION into $OUT (8-13 minutes on 2 cores)"
  d="$WORK/kube-apiserver-$K8S_VERSION"
  mkdir -p "$d"
  staging="v0.${K8S_VERSION#v1.}" # v1.36.3 -> v0.36.3
  # The staging modules are the `=> ./staging/...` replaces of
  # k8s.io/kubernetes' own go.mod.
  kmod=$(cd "$d" && "$GO" mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$kmod" ] || die "could not download k8s.io/kubernetes@$K8S_VERSION's go.mod"
  mods=$(grep -E '^[[:space:]]*k8s\.io/[a-z0-9-]+ => \./staging/' "$kmod" | awk '{print $1}')
  [ -n "$mods" ] || die "no staging replaces found in k8s.io/kubernetes@$K8S_VERSION's go.mod"
  {
    printf 'module osbgit.invalid/k8s-test-assets/kube-apiserver\n\ngo 1.26\n\nrequire k8s.io/kubernetes %s\n\n' "$K8S_VERSION"
    for m in $mods; do printf 'replace %s => %s %s\n' "$m" "$m" "$staging"; done
  } >"$d/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' >"$d/tools.go"
  pkg=k8s.io/component-base/version
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  ld="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  (cd "$d" && "$GO" mod tidy && "$GO" build -trimpath -ldflags="$ld" -o "$OUT/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver) >&2
  mv -f "$OUT/kube-apiserver.tmp" "$OUT/kube-apiserver"
  have "$OUT/kube-apiserver" "Kubernetes $K8S_VERSION" || die "built kube-apiserver does not report version $K8S_VERSION"
  log "kube-apiserver $K8S_VERSION built in $(elapsed "$start")"
fi

echo "$OUT"
