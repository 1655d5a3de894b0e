# osbgit container image.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) \
#                --build-arg REVISION=$(git rev-parse HEAD) -t osbgit:dev .
#   docker run --rm osbgit:dev version
#
# Two stages: a Go builder producing a static binary (CGO_ENABLED=0), and a
# distroless "static" final image (CA certificates, tzdata, /etc/passwd with
# the nonroot user 65532; no shell, no package manager).
#
# Cache: osbgit keeps its Git clone and decoded-manifest cache in
# /var/cache/osbgit (OSBGIT_CACHE_DIR below, the --cache-dir flag overrides
# it). The directory exists in the image and belongs to 65532, so it works
# with a writable root filesystem; with readOnlyRootFilesystem (as in
# examples/deploy) mount a volume there (emptyDir or a PVC) and at /tmp.

ARG GO_VERSION=1.26

# The builder runs on the build machine's platform and cross-compiles for the
# target one (docker buildx build --platform linux/amd64,linux/arm64 .); a pure
# Go binary needs no emulation.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src

# Dependencies first: this layer is reused until go.mod or go.sum changes.
COPY go.mod go.sum ./
RUN go mod download && go mod verify

COPY . .
ARG VERSION=dev
# GOOS/GOARCH empty (legacy builder without TARGETOS/TARGETARCH) means the
# build machine's own platform.
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/osbgit ./cmd/osbgit \
 && mkdir -p /out/var/cache/osbgit

FROM gcr.io/distroless/static:nonroot
ARG VERSION=dev
# the commit the image was built from: --build-arg REVISION=$(git rev-parse HEAD)
ARG REVISION=
LABEL org.opencontainers.image.title="osbgit" \
      org.opencontainers.image.description="GitOps reconciler for the Open Service Broker API" \
      org.opencontainers.image.source="https://github.com/osbgit/osbgit" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

COPY --from=build /out/osbgit /osbgit
COPY --from=build --chown=65532:65532 /out/var/cache/osbgit /var/cache/osbgit
ENV OSBGIT_CACHE_DIR=/var/cache/osbgit

USER 65532:65532
# webhook receiver (osbgit run --webhook-addr :8080), metrics and probes
# (--metrics-addr :9090: /metrics, /healthz, /readyz)
EXPOSE 8080 9090
ENTRYPOINT ["/osbgit"]
