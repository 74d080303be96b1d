#!/usr/bin/env bash
# Builds the real control-plane binaries the integration tests run against, from the Go
# module proxy, into a cache outside the repository keyed by version. A binary already in
# the cache is reused; nothing here is committed. Prints the assets directory on stdout.
#
# Users who bring their own binaries set KUBEBUILDER_ASSETS (a directory holding etcd,
# kube-apiserver and kubectl) or TEST_ASSET_ETCD / TEST_ASSET_ETCDCTL /
# TEST_ASSET_KUBE_APISERVER / TEST_ASSET_KUBECTL / TEST_ASSET_HELM; the test harness honours
# them and this script builds only what is still missing.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
HELM_VERSION="${HELM_VERSION:-3.19.5}"
CACHE="${VAULT_ASSETS_CACHE:-$HOME/.cache/vault-test-assets}"
ASSETS="$CACHE/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION"
mkdir -p "$ASSETS"
export GOFLAGS="${GOFLAGS:--buildvcs=false}" CGO_ENABLED=0

log() { printf '[assets] %s\n' "$*" >&2; }

build_etcd() {
  local dir="$CACHE/src/etcd-$ETCD_VERSION"
  mkdir -p "$dir"
  cat >"$dir/main.go" <<'GO'
// Command etcd is etcd's own server entry point, built as a dependency.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$dir" && { [ -f go.mod ] || go mod init vault-test-assets/etcd >/dev/null 2>&1; } &&
    go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >&2 && go mod tidy >&2 &&
    go build -trimpath -ldflags "-s -w" -o "$ASSETS/etcd.tmp" . >&2)
  mv "$ASSETS/etcd.tmp" "$ASSETS/etcd"
}

# etcd's client and offline tools, from the same release: `etcdctl` for the documented backup
# (a snapshot from the reader's machine) and `etcdutl`, which the real etcd image ships and the
# documented restore runs (test/cluster/cluster.sh puts both in the node's etcd image).
build_etcd_tool() { # etcdctl | etcdutl
  local dir="$CACHE/src/$1-$ETCD_VERSION"
  mkdir -p "$dir"
  (cd "$dir" && { [ -f go.mod ] || go mod init "vault-test-assets/$1" >/dev/null 2>&1; } &&
    printf '// Package tools pins %s as a dependency to build.\npackage tools\n\nimport _ "go.etcd.io/etcd/%s/v3"\n' "$1" "$1" >tools.go &&
    go get "go.etcd.io/etcd/$1/v3@v$ETCD_VERSION" >&2 && go mod tidy >&2 &&
    go build -trimpath -ldflags "-s -w" -o "$ASSETS/$1.tmp" "go.etcd.io/etcd/$1/v3" >&2)
  mv "$ASSETS/$1.tmp" "$ASSETS/$1"
}

# shellcheck source=kube-module.sh
. "$(dirname "$0")/kube-module.sh"
build_kube() { kube_build "$CACHE/src/kubernetes-$K8S_VERSION" vault-test-assets/kubernetes "$ASSETS" "$@"; }

# helm's own Makefile stamps the Kubernetes version of its client-go into the binary; without
# it `helm template` and `helm lint` assume Kubernetes 1.20 (.Capabilities.KubeVersion).
helm_kube_minor() {
  local gomod
  gomod=$(go mod download -json "helm.sh/helm/v3@v$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
  sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9][0-9]*\)\..*/\1/p' "$gomod" | head -n 1
}

build_helm() {
  local minor ld="-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION"
  minor=$(helm_kube_minor)
  [ -n "$minor" ] || { log "cannot find helm's client-go version"; exit 1; }
  for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ld="$ld -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$minor"
  done
  rm -rf "$ASSETS/.helm-bin"
  GOBIN="$ASSETS/.helm-bin" go install -trimpath -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION" >&2
  mv "$ASSETS/.helm-bin/helm" "$ASSETS/helm"
  rm -rf "$ASSETS/.helm-bin"
  echo "1.$minor" >"$ASSETS/.helm-kube-version"
}

# A binary counts as present when the cache has it or the user named an executable of their own.
have() { [ -x "$ASSETS/$1" ] || { [ -n "${2:-}" ] && [ -x "$2" ]; }; }

# Fast path: everything is there, nothing to lock or build.
if have etcd "${TEST_ASSET_ETCD:-${KUBEBUILDER_ASSETS:+$KUBEBUILDER_ASSETS/etcd}}" &&
  have etcdctl "${TEST_ASSET_ETCDCTL:-}" && have etcdutl &&
  have kube-apiserver "${TEST_ASSET_KUBE_APISERVER:-${KUBEBUILDER_ASSETS:+$KUBEBUILDER_ASSETS/kube-apiserver}}" &&
  have kubectl "${TEST_ASSET_KUBECTL:-${KUBEBUILDER_ASSETS:+$KUBEBUILDER_ASSETS/kubectl}}" &&
  { [ -n "${TEST_ASSET_HELM:-}" ] || { have helm && [ -f "$ASSETS/.helm-kube-version" ]; }; }; then
  echo "$ASSETS"
  exit 0
fi

command -v go >/dev/null || { log "building the test binaries needs Go 1.24+ (https://go.dev/dl/), or set KUBEBUILDER_ASSETS / TEST_ASSET_*"; exit 1; }

# Two test runs starting at once must not build into the same directories.
exec 9>"$CACHE/.build.lock"
if command -v flock >/dev/null; then
  flock 9 || true
fi

have etcd "${TEST_ASSET_ETCD:-${KUBEBUILDER_ASSETS:+$KUBEBUILDER_ASSETS/etcd}}" || { log "building etcd v$ETCD_VERSION"; build_etcd; }
have etcdctl "${TEST_ASSET_ETCDCTL:-}" || { log "building etcdctl v$ETCD_VERSION"; build_etcd_tool etcdctl; }
have etcdutl || { log "building etcdutl v$ETCD_VERSION"; build_etcd_tool etcdutl; }
missing=()
have kube-apiserver "${TEST_ASSET_KUBE_APISERVER:-${KUBEBUILDER_ASSETS:+$KUBEBUILDER_ASSETS/kube-apiserver}}" || missing+=(kube-apiserver)
have kubectl "${TEST_ASSET_KUBECTL:-${KUBEBUILDER_ASSETS:+$KUBEBUILDER_ASSETS/kubectl}}" || missing+=(kubectl)
[ ${#missing[@]} -eq 0 ] || build_kube "${missing[@]}"
# A helm built before the version stamp was added (no .helm-kube-version) is rebuilt.
if [ -z "${TEST_ASSET_HELM:-}" ] && ! { have helm && [ -f "$ASSETS/.helm-kube-version" ]; }; then
  log "building helm v$HELM_VERSION"
  build_helm
fi
log "assets ready in $ASSETS"
echo "$ASSETS"
