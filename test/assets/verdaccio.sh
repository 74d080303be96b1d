#!/usr/bin/env bash
# Installs Verdaccio, the local npm registry the package tests publish to, into a cache
# outside the repository keyed by version (it is not a project dependency: its own tree is
# large and only these tests need it). Prints the path of its bin on stdout.
#
# 6.8.0 is the newest that runs on Node 20; its node-fetch range must be pinned to 2.7.0
# (a later 2.x does not install here), so the cache holds a tiny package.json with that
# override.
set -euo pipefail

VERDACCIO_VERSION="${VERDACCIO_VERSION:-6.8.0}"
NODE_FETCH_VERSION="${VERDACCIO_NODE_FETCH_VERSION:-2.7.0}"
CACHE="${VAULT_ASSETS_CACHE:-$HOME/.cache/vault-test-assets}"
DIR="$CACHE/verdaccio-$VERDACCIO_VERSION-node-fetch-$NODE_FETCH_VERSION"
BIN="$DIR/node_modules/verdaccio/bin/verdaccio"

if [ ! -x "$BIN" ]; then
  exec 9>"$CACHE/verdaccio.lock"
  mkdir -p "$CACHE" && flock 9
  if [ ! -x "$BIN" ]; then
    printf '[assets] installing verdaccio %s into %s\n' "$VERDACCIO_VERSION" "$DIR" >&2
    rm -rf "$DIR.tmp" && mkdir -p "$DIR.tmp"
    cat >"$DIR.tmp/package.json" <<JSON
{
  "name": "vault-test-verdaccio",
  "private": true,
  "dependencies": { "verdaccio": "$VERDACCIO_VERSION" },
  "overrides": { "node-fetch": "$NODE_FETCH_VERSION" }
}
JSON
    (cd "$DIR.tmp" && npm install --no-audit --no-fund --loglevel=error >&2)
    rm -rf "$DIR" && mv "$DIR.tmp" "$DIR"
  fi
fi
printf '%s\n' "$BIN"
