#!/usr/bin/env bash
# Builds the baselines of `npm run bench:peer` (issue 13) from the Go module proxy, into a cache
# outside the repository keyed by version; a binary already there is reused. Only that
# benchmark needs them; the tests do not. Arguments: which (etcd-txn, peer; both by default).
# Prints, on stdout, one line per binary:
#   peer=PATH       HashiCorp Vault (PEER_VAULT_VERSION, default 1.16.0), the peer
#   etcd-txn=PATH   test/bench/go/etcd-txn, the raw-etcd baseline from Go's own client
# A cold build of the peer takes many minutes on two cores (it is a large program).
set -euo pipefail
cd "$(dirname "$0")/../.."

VERSION="${PEER_VAULT_VERSION:-1.16.0}"
CACHE="${VAULT_ASSETS_CACHE:-$HOME/.cache/vault-test-assets}"
export CGO_ENABLED=0

build_peer() {
  local out="$CACHE/peer-hashicorp-vault-$VERSION" src="$CACHE/src/peer-hashicorp-vault-$VERSION"
  if [ ! -x "$out/vault" ]; then
    mkdir -p "$src" "$out"
    echo "[peer] building HashiCorp Vault $VERSION (many minutes when cold)" >&2
    # Its own go.mod replaces api/ and sdk/ with its subdirectories, so `go install pkg@version`
    # refuses it; built as a dependency of a small module, those replaces do not apply and the
    # api/sdk versions it requires are used. -checklinkname=0: some of its older dependencies
    # link to runtime internals that Go 1.23+ refuses by default. GOSUMDB=off: the checksum
    # database no longer lists some of its plugin versions (the proxy still serves them); this
    # binary is a benchmark baseline, never shipped.
    # Its own replaces of other modules (not of its subdirectories) apply here too.
    # The tagged sdk it requires does not match the sdk/ of its release commit (1.15.6 needs
    # logical.LogInput.Clone, absent from sdk v0.10.2; 1.21.4 does not build against v0.21.0),
    # so sdk is replaced by the proxy's pseudo-version of sdk/ at the release's own commit
    # (v1.16.0 = c20eae3e84c5). The proxy serves that one; versions with no entry here are tried
    # as they are and may not compile.
    local gomod sdk=""
    case $VERSION in
      1.16.0) sdk=v0.11.1-0.20240325190132-c20eae3e84c5 ;;
    esac
    gomod=$(GOSUMDB=off go mod download -json "github.com/hashicorp/vault@v$VERSION" |
      sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
    (cd "$src" && { [ -f go.mod ] || { go mod init vault-test-assets/peer >/dev/null 2>&1 &&
        { grep '^replace ' "$gomod" | grep -v '=> \./' >>go.mod || true; }; }; } &&
      { [ -z "$sdk" ] || go mod edit -replace "github.com/hashicorp/vault/sdk=github.com/hashicorp/vault/sdk@$sdk"; } &&
      GOSUMDB=off GOFLAGS=-mod=mod go get "github.com/hashicorp/vault@v$VERSION" >&2 &&
      GOSUMDB=off GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -ldflags "-s -w -checklinkname=0" \
        -o "$out/vault.tmp" github.com/hashicorp/vault >&2)
    mv "$out/vault.tmp" "$out/vault"
  fi
  echo "peer=$out/vault"
}

build_etcd_txn() {
  local dir=test/bench/go/etcd-txn sum
  sum=$(cat "$dir/go.mod" "$dir/go.sum" "$dir/main.go" | sha256sum | cut -c1-12)
  local out="$CACHE/bench-etcd-txn-$sum"
  if [ ! -x "$out/etcd-txn" ]; then
    mkdir -p "$out"
    (cd "$dir" && GOFLAGS=-buildvcs=false go build -trimpath -o "$out/etcd-txn.tmp" . >&2)
    mv "$out/etcd-txn.tmp" "$out/etcd-txn"
  fi
  echo "etcd-txn=$out/etcd-txn"
}

# Which to build: the arguments (etcd-txn, peer), both by default.
for what in "${@:-etcd-txn peer}"; do
  for one in $what; do
    case $one in
      etcd-txn) build_etcd_txn ;;
      peer) build_peer ;;
      *) echo "unknown baseline: $one (etcd-txn, peer)" >&2; exit 2 ;;
    esac
  done
done
