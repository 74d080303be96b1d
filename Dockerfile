# syntax=docker/dockerfile:1
#
# One image for every role: `vault server` (default), `vault operator`, `vault agent`, ...
# Both stages use the same base image, so better-sqlite3's native addon is compiled (or its
# prebuilt binary chosen) for exactly the glibc and Node ABI it runs on.
# Pin a digest for releases: --build-arg NODE_IMAGE=node:22-bookworm-slim@sha256:...
ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS build
# A compiler toolchain, only here, for when no prebuilt better-sqlite3 binary can be fetched.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bin ./bin
# The web console (served at /ui): `npm run build` bundles it into dist/ui with Vite.
COPY ui ./ui
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
ARG NODE_IMAGE
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="vault" \
      org.opencontainers.image.description="Credential manager for people, AI agents and Kubernetes workloads: API server, operator, webhook and sidecar agent" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="${NODE_IMAGE}"
# A fixed non-root uid (not the base image's `node` user), so runAsUser, fsGroup and file
# ownership on volumes can name it; /data is the only place the process writes.
RUN groupadd --system --gid 10001 vault \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin vault \
 && mkdir -p /data \
 && chown 10001:10001 /data \
 && chmod 0700 /data \
 && ln -s /app/bin/vault.js /usr/local/bin/vault
WORKDIR /app
# Root-owned and read-only to the process: code, production dependencies, the launcher
# (also on PATH as `vault`, for `kubectl exec ... -- vault operator root-token`).
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/bin ./bin
# Nothing writes HOME or the npm cache at run time, so the root filesystem can be read-only;
# VAULT_LISTEN makes the API reachable from outside the container, which `vault server`
# only accepts with TLS (or VAULT_ALLOW_PLAINTEXT=true behind a TLS-terminating proxy).
ENV NODE_ENV=production \
    HOME=/nonexistent \
    VAULT_DATA_DIR=/data \
    VAULT_LISTEN=0.0.0.0:8200
VOLUME ["/data"]
EXPOSE 8200
USER 10001:10001
ENTRYPOINT ["node", "/app/bin/vault.js"]
CMD ["server"]
