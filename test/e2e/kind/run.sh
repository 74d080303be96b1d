#!/usr/bin/env bash
# End-to-end on kind, for people with Docker: builds the image, creates a kind cluster, loads
# the image, installs the chart, applies the demo manifests, and checks that an injected pod
# reads its secret files and that each file disappears once its lease is revoked.
#
#   test/e2e/kind/run.sh            # from anywhere; deletes the cluster at the end
#   KEEP_CLUSTER=1 test/e2e/kind/run.sh   # keep it to look around (kind delete cluster --name vault-e2e)
#
# Needs docker (with a running engine), kind, kubectl and helm on PATH. It is not run in CI
# (no Docker engine there); it fails loudly, never skips, when something is missing.
set -euo pipefail

fail() {
  printf 'run.sh: error: %s\n' "$*" >&2
  exit 1
}
need() {
  command -v "$1" >/dev/null 2>&1 || fail "$1 is not installed or not on PATH. $2"
}

# Prerequisites first, with nothing but shell builtins, so a missing tool is reported clearly.
need docker "Install Docker (https://docs.docker.com/get-docker/); this end-to-end path builds and runs containers."
docker info >/dev/null 2>&1 ||
  fail "docker is installed but the Docker engine is not reachable (docker info failed). Start Docker, or check DOCKER_HOST and your permissions."
need kind "Install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation), e.g. go install sigs.k8s.io/kind@latest."
need kubectl "Install kubectl (https://kubernetes.io/docs/tasks/tools/)."
need helm "Install helm 3 (https://helm.sh/docs/intro/install/)."

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
cluster="${KIND_CLUSTER_NAME:-vault-e2e}"
image="${VAULT_IMAGE:-vault:e2e}"
namespace="vault-system"
context="kind-$cluster"
kc() { kubectl --context "$context" "$@"; }
log() { printf '\n==> %s\n' "$*" >&2; }

[ -f "$repo/Dockerfile" ] || fail "no Dockerfile at $repo; the image is built from it."

cleanup() {
  local code=$?
  if [ "$code" -ne 0 ]; then
    log "failed; state of the cluster for the record"
    kc get pods -A -o wide 2>&1 | sed 's/^/    /' >&2 || true
    kc -n demo describe pod app 2>&1 | tail -40 | sed 's/^/    /' >&2 || true
    kc -n "$namespace" logs -l app.kubernetes.io/instance=vault --all-containers --tail=40 --prefix 2>&1 | sed 's/^/    /' >&2 || true
  fi
  if [ "${KEEP_CLUSTER:-0}" = 1 ]; then
    log "keeping cluster $cluster (kind delete cluster --name $cluster)"
  else
    kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
  fi
  exit "$code"
}

log "building $image"
docker build -t "$image" "$repo"

log "creating kind cluster $cluster"
if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  fail "a kind cluster named $cluster already exists; delete it (kind delete cluster --name $cluster) or set KIND_CLUSTER_NAME"
fi
trap cleanup EXIT
kind create cluster --name "$cluster" --config "$here/kind-config.yaml" ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} --wait 120s

log "loading $image into the nodes"
kind load docker-image "$image" --name "$cluster"

log "installing the chart"
kc create namespace "$namespace"
kc label namespace "$namespace" pod-security.kubernetes.io/enforce=restricted
helm --kube-context "$context" install vault "$repo/charts/vault" \
  --namespace "$namespace" \
  --set image.repository="${image%:*}" --set image.tag="${image##*:}" --set image.pullPolicy=Never \
  --wait --timeout 10m
kc -n "$namespace" get pods -o wide

# The webhook publishes its caBundle once it has created its certificate.
log "waiting for the webhook's caBundle"
for _ in $(seq 1 60); do
  bundle="$(kc get mutatingwebhookconfiguration "vault-$namespace" -o jsonpath='{.webhooks[0].clientConfig.caBundle}')"
  [ -n "$bundle" ] && break
  sleep 2
done
[ -n "$bundle" ] || fail "the webhook never published its caBundle"

log "applying the demo"
kc apply -f "$here/manifests/demo.yaml"
kc -n demo wait --for=jsonpath='{.status.phase}'=Ready vaultcredential/db-password --timeout=120s
kc -n demo wait --for=jsonpath='{.status.phase}'=Active vaultlease/db --timeout=120s
kc -n demo wait --for=condition=Ready pod/app --timeout=180s

read_file() { kc -n demo exec app -c app -- cat "/vault/secrets/$1"; }
gone_within() {
  local file="$1" seconds="$2"
  for _ in $(seq 1 "$seconds"); do
    kc -n demo exec app -c app -- test -e "/vault/secrets/$file" || return 0
    sleep 1
  done
  return 1
}

log "reading the injected files"
password="$(read_file db-password)" || fail "the app container cannot read /vault/secrets/db-password"
[ "${#password}" -eq 32 ] || fail "db-password has ${#password} characters, expected 32"
leased="$(read_file db-lease)" || fail "the app container cannot read /vault/secrets/db-lease"
[ -n "$leased" ] || fail "db-lease is empty"
echo "db-password and db-lease are present (values not shown)"

log "revoking the VaultLease: its file must go"
kc -n demo delete vaultlease db --wait=true --timeout=60s
gone_within db-lease 30 || fail "/vault/secrets/db-lease still exists 30 s after its lease was revoked"
read_file db-password >/dev/null || fail "db-password went away with the other lease"

log "deleting the credential (revokes the agent's own lease): its file must go"
kc -n demo delete vaultcredential db-password --wait=true --timeout=60s
gone_within db-password 30 || fail "/vault/secrets/db-password still exists 30 s after its lease was revoked"

log "PASS: the injected pod read its secrets, and each file disappeared after its lease was revoked"
