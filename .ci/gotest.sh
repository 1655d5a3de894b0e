#!/usr/bin/env bash
# gotest.sh: `go test ./...` for make test and make test-short, keeping
# the test binaries between runs.
#
# go test links every package's test binary again on every run, changed
# or not: here that is about 50 s of CPU of make test-short's 150 and
# about 100 s of make test's 480 (28 binaries; several link client-go).
# `go test -c -o DIR/` links only the binaries whose inputs changed (Go's
# build IDs decide, as for any build). Each binary then runs in its
# package's directory with the flags go test gives it, as many at a time
# as there are CPUs (go test's -p), the longest first (by the last run's
# times, kept beside the binaries; the largest binaries first without
# them), so the longest package does not start last.
#
# Usage: gotest.sh DIR [go test build flags...] -- [test binary flags...]
# e.g.   gotest.sh bin/test-race -race -- -test.timeout=15m
# GOTEST_PKGS names the packages (default ./...; make's PKGS sets it).
# Prints "ok"/"FAIL" per package, a failing package's output in full,
# and exits non-zero when a package fails or does not build.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
read -r -a pkgs <<<"${GOTEST_PKGS:-./...}"

dir=$1
shift
build=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  build+=("$1")
  shift
done
[ $# -gt 0 ] && shift
export GOTEST_RUN_FLAGS="-test.paniconexit0 -test.count=1 $*"
# As under go test, the tests find this toolchain's go first on PATH.
PATH="$("$GO" env GOROOT)/bin:$PATH"

# Temporary files go to tmpfs when TMPDIR is not set: the tests create
# and delete thousands of repositories, stores and files, which on this
# machine's ext4 cost kernel time that grows as the machine runs (inode
# allocation). make test: 108 s on ext4, 83 s on /dev/shm. A run peaks at
# about 80 MB there; a /dev/shm with less than 1 GiB free (a container's
# is often 64 MB) is left alone.
shm_free_kb=$(df --output=avail -k /dev/shm 2>/dev/null | tail -n 1 | tr -d ' ' || true)
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ] && [ "${shm_free_kb:-0}" -ge 1048576 ] 2>/dev/null; then
  TMPDIR=$(mktemp -d /dev/shm/osbgit-test.XXXXXX)
  export TMPDIR
  trap 'rm -rf "$TMPDIR"' EXIT
fi

mkdir -p "$dir"
export GOTEST_DIR
GOTEST_DIR=$(cd "$dir" && pwd)
# Build errors go to stderr; stdout only lists packages without tests.
# Binaries are named after the last element of the import path; go test
# -c refuses two packages that share it, so such a pair fails loudly here.
"$GO" test -c -o "$GOTEST_DIR/" "${build[@]}" "${pkgs[@]}" >/dev/null

# runone "PKGDIR<tab>IMPORTPATH" runs one package's binary in its directory.
runone() {
  local pkgdir=${1%%$'\t'*} pkg=${1#*$'\t'} log start ms
  log=$(mktemp)
  start=$(date +%s%N)
  # shellcheck disable=SC2086 # GOTEST_RUN_FLAGS is a list of flags
  if (cd "$pkgdir" && "$GOTEST_DIR/${pkg##*/}.test" $GOTEST_RUN_FLAGS) >"$log" 2>&1; then
    ms=$((($(date +%s%N) - start) / 1000000))
    printf 'ok  \t%s\t%d.%03ds\n' "$pkg" $((ms / 1000)) $((ms % 1000))
    printf '%s\t%d\n' "$pkg" "$ms" >>"$GOTEST_DIR/times.new"
    rm -f "$log"
    return 0
  fi
  printf 'FAIL\t%s\n' "$pkg" >>"$log"
  cat "$log"
  rm -f "$log"
  return 1
}
export -f runone

# lastms PKG is PKG's time in ms in the last run; none: its binary's size
# plus 10^12, which puts it first.
lastms() {
  local ms
  ms=$(awk -F'\t' -v p="$1" '$1 == p { ms = $2 } END { print ms }' "$GOTEST_DIR/times" 2>/dev/null || true)
  [ -n "$ms" ] || ms=$((1000000000000 + $(stat -c %s "$GOTEST_DIR/${1##*/}.test")))
  echo "$ms"
}

rm -f "$GOTEST_DIR/times.new"
status=0
"$GO" list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.Dir}}{{"\t"}}{{.ImportPath}}{{end}}' "${pkgs[@]}" |
  while IFS= read -r line; do
    if [ -n "$line" ]; then
      printf '%s\t%s\n' "$(lastms "${line#*$'\t'}")" "$line"
    fi
  done |
  sort -rn | cut -f2- |
  xargs -d '\n' -n 1 -P "$(nproc)" bash -c 'runone "$1"' _ || status=$?
# Keep the times of the packages that passed (with the older ones of the
# rest) for the next run's order.
cat "$GOTEST_DIR/times" "$GOTEST_DIR/times.new" 2>/dev/null | awk -F'\t' '{ t[$1] = $2 } END { for (p in t) print p "\t" t[p] }' >"$GOTEST_DIR/times.tmp" || true
mv -f "$GOTEST_DIR/times.tmp" "$GOTEST_DIR/times"
rm -f "$GOTEST_DIR/times.new"
exit "$status"
