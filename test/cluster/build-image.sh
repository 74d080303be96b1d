#!/usr/bin/env bash
# Builds the project's container image from its Dockerfile with BuildKit, as CI would with
# `docker build`, and writes it as a Docker archive that containerd imports:
#
#   build-image.sh OUT.tar [NAME]        (NAME defaults to ghcr.io/ghoststack/vault:e2e)
#
# buildkitd runs for the build only, with the OCI worker on the runc that build-node.sh
# made, in a mount namespace of its own (its overlay mounts never reach the host's), in the
# host's network (the Dockerfile's RUN steps fetch Debian packages and npm modules). Its
# state, and so the layer cache, is kept under ~/.cache, so a rebuild after a source change
# reuses the apt and `npm ci` layers.
#
# Two substitutions, because no container registry is reachable here:
#  - the base image `node:22-bookworm-slim` is the local one build-node.sh assembles
#    (Debian bookworm from Debian's packages, Node 22 from the npm registry), given to the
#    build as a named context;
#  - the Dockerfile's `# syntax=docker/dockerfile:1` line would fetch the frontend image
#    from Docker Hub; the frontend built into the same BuildKit is used instead.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:?usage: build-image.sh OUT.tar [NAME]}
NAME=${2:-ghcr.io/ghoststack/vault:e2e}
NODE_ASSETS=$(bash "$ROOT/test/assets/build-node.sh")
BIN=$NODE_ASSETS/bin
STATE="${VAULT_ASSETS_CACHE:-$HOME/.cache/vault-test-assets}/buildkit-state"
WORK=$(mktemp -d)
SOCK=$WORK/buildkitd.sock
log() { printf '[image %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# One cgroup parent for the build's containers, below the caller's memory cgroup.
parent=$(awk -F: '$2 == "memory" {print $3}' /proc/self/cgroup)
CGROUP="${parent%/}/vault-e2e-buildkit"

cleanup() {
  if [ -n "${BKPID:-}" ] && kill -0 "$BKPID" 2>/dev/null; then
    kill -TERM "$BKPID"
    for _ in $(seq 1 100); do kill -0 "$BKPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$BKPID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$STATE"
exec 9>"$STATE.lock"
flock 9
base_digest=$(sed -n 's/.*"digest":"\(sha256:[0-9a-f]*\)".*/\1/p' "$NODE_ASSETS/images/node-base/index.json")
[ -n "$base_digest" ] || { log "no base image in $NODE_ASSETS/images/node-base"; exit 1; }

setsid unshare --mount --propagation private -- env PATH="$BIN:$PATH" "$BIN/buildkitd" \
  --root "$STATE" --addr "unix://$SOCK" \
  --oci-worker=true --containerd-worker=false --oci-worker-binary "$BIN/runc" \
  --oci-worker-net host --oci-worker-snapshotter overlayfs \
  >"$WORK/buildkitd.log" 2>&1 </dev/null &
BKPID=$!
for _ in $(seq 1 100); do
  "$BIN/buildctl" --addr "unix://$SOCK" debug workers >/dev/null 2>&1 && break
  kill -0 "$BKPID" 2>/dev/null || { cat "$WORK/buildkitd.log" >&2; exit 1; }
  sleep 0.2
done

log "building $NAME from $ROOT/Dockerfile"
s=$SECONDS
if ! "$BIN/buildctl" --addr "unix://$SOCK" build --progress plain \
  --frontend dockerfile.v0 --local "context=$ROOT" --local "dockerfile=$ROOT" \
  --opt cmdline= --opt "cgroup-parent=$CGROUP" \
  --oci-layout "base=$NODE_ASSETS/images/node-base" \
  --opt "context:node:22-bookworm-slim=oci-layout://base@$base_digest" \
  --output "type=docker,name=$NAME,dest=$OUT.tmp" 2>"$WORK/build.log"; then
  cp "$WORK/build.log" "$OUT.build.log"; tail -n 60 "$WORK/build.log" >&2
  tail -n 20 "$WORK/buildkitd.log" >&2
  exit 1
fi
mv "$OUT.tmp" "$OUT"
log "built in $((SECONDS - s)) s"
