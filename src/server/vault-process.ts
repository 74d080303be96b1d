import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import { type AuditFollower, createAuditFollower } from '../core/audit-follower.js';
import { storeCursorStore } from '../core/audit-stream-claim.js';
import { type AuditSink, createVaultCore, nullAuditSink, type VaultCore } from '../core/index.js';
import { sealedPrefixes } from '../core/keys.js';
import { createKeyring, type Keyring } from '../crypto/keyring.js';
import { type RootKeyProvider, rootKeyFromEnv, rootKeyFromFile } from '../crypto/root-key.js';
import { createPostgresEngine } from '../engines/postgres.js';
import { createRedisEngine } from '../engines/redis.js';
import { durationMs } from '../lib/duration.js';
import type { Logger } from '../lib/logger.js';
import { openStore } from '../store/index.js';
import type { Store } from '../store/store.js';
import { createApp, metricsApp } from './app.js';
import {
  fileCursorStore,
  fileStreamOutput,
  memoryCursorStore,
  writableStreamOutput,
} from './audit-stream.js';
import { auditStreamName, type ServerConfig } from './config.js';
import type { KubernetesCluster, KubernetesLoginConfig } from './kubernetes-login.js';
import { createServerMetrics, type LeaseCounts, type ServerMetrics } from './metrics.js';
import { defaultEventBacklog } from './routes.js';
import { kubernetesTokenReviewer } from './token-review.js';
import { defaultUiDir } from './ui.js';

const PURGE_INTERVAL_MS = 10 * 60_000;

export interface VaultProcess {
  url: string;
  /** The `--metrics-listen` listener's base URL, when there is one. */
  metricsUrl?: string;
  store: Store;
  keyring: Keyring;
  core: VaultCore;
  close(): Promise<void>;
}

export async function loadRootKeys(config: ServerConfig): Promise<RootKeyProvider[]> {
  const active = config.rootKeyFile
    ? await rootKeyFromFile(config.rootKeyFile)
    : rootKeyFromEnv(config.rootKey!);
  const previous = await Promise.all(config.previousRootKeyFiles.map((file) => rootKeyFromFile(file)));
  return [active, ...previous];
}

export async function openConfiguredStore(config: ServerConfig, logger: Logger): Promise<Store> {
  if (config.store === 'embedded') return openStore({ kind: 'embedded', path: config.dataDir!, logger });
  return openStore({
    kind: 'etcd',
    endpoints: config.etcdEndpoints,
    ...(config.etcdCaFile || config.etcdCertFile
      ? {
          tls: {
            ...(config.etcdCaFile ? { ca: config.etcdCaFile } : {}),
            ...(config.etcdCertFile ? { cert: config.etcdCertFile, key: config.etcdKeyFile! } : {}),
          },
        }
      : {}),
    ...(config.etcdUsername ? { username: config.etcdUsername, password: config.etcdPassword ?? '' } : {}),
    ...(config.etcdPrefix ? { prefix: config.etcdPrefix } : {}),
    maxTxnOps: config.etcdMaxTxnOps,
    logger,
  });
}

/** Store, keyring and core, as every role (server, operator) builds them. */
export async function openVault(
  config: ServerConfig,
  logger: Logger,
  sink: AuditSink | ((store: Store) => AuditSink) = nullAuditSink,
  metrics?: ServerMetrics,
) {
  const store = await openConfiguredStore(config, logger);
  const auditSink = typeof sink === 'function' ? sink(store) : sink;
  try {
    const keyring = createKeyring({ store, roots: await loadRootKeys(config), sealedPrefixes, logger });
    const resumed = await keyring.resumeRotations();
    for (const failed of resumed.failed)
      logger.warn({ rotation: failed.rotation }, `rotation not resumed: ${failed.message}`);
    const core = createVaultCore({
      store,
      keyring,
      logger,
      auditSink,
      engines: { postgres: createPostgresEngine(), redis: createRedisEngine() },
      dynamic: { issueGraceMs: durationMs(config.dynamicIssueGrace) },
      ...(metrics
        ? {
            dynamicObserver: {
              revocation: (engine, outcome) => metrics.dynamicRevocations.inc({ engine, outcome }),
            },
          }
        : {}),
      config: {
        maxLeaseTtlMs: durationMs(config.maxLeaseTtl),
        leaseRetentionMs: durationMs(config.leaseRetention),
        autoCreateTenants: config.autoCreateTenants,
        maxTenantsPerCluster: config.maxTenantsPerCluster,
      },
    });
    // Stores written by earlier versions: index their leases before serving (resumable).
    await core.leaseIndex.backfillAll();
    return { store, keyring, core };
  } catch (err) {
    await store.close();
    throw err;
  }
}

/** Builds everything from a parsed configuration and listens. */
export async function startVault(config: ServerConfig, logger: Logger): Promise<VaultProcess> {
  const toFile = config.auditLog !== 'stdout' && config.auditLog !== 'none';
  const output =
    config.auditLog === 'none'
      ? undefined
      : toFile
        ? await fileStreamOutput(config.auditLog)
        : writableStreamOutput(process.stdout);
  const streamName = auditStreamName(config.auditCursor);
  const cursorFile =
    streamName === undefined
      ? (config.auditCursor ?? (toFile ? `${config.auditLog}.cursor` : undefined))
      : undefined;
  let stream: AuditFollower | undefined;
  let leaseCounts: (() => Promise<LeaseCounts>) | undefined;
  let auditTampered: (() => string[]) | undefined;
  // The follower is built before the core it follows; it checks links once both exist.
  let auditKeys: VaultCore['auditKeys'] | undefined;
  let integrity: VaultCore['auditIntegrity'] | undefined;
  const metrics = createServerMetrics({
    leaseCounts: () =>
      leaseCounts?.() ??
      Promise.resolve({ total: { active: 0, expired: 0, revoked: 0 }, byTenant: new Map() }),
    auditTampered: () => auditTampered?.() ?? [],
    tenantSeries: config.metricsTenantSeries,
  });
  const { store, keyring, core } = await openVault(
    config,
    logger,
    (opened) => {
      if (!output) return nullAuditSink;
      const cursor =
        streamName !== undefined
          ? storeCursorStore({
              store: opened,
              name: streamName,
              ttlMs: durationMs(config.auditStreamTtl),
            })
          : cursorFile
            ? fileCursorStore(cursorFile)
            : memoryCursorStore();
      stream = createAuditFollower({
        store: opened,
        output,
        cursor,
        logger: logger.child({ component: 'audit-stream', ...(streamName ? { stream: streamName } : {}) }),
        // Links and checkpoint signatures are checked with the tenant's keys; a history that does
        // not continue the stream stops the tenant's writes like a failed verify.
        chain: {
          keys: (tenant) => auditKeys!.load(tenant),
          tampered: (tenant, reason) => void integrity!.report(tenant, reason),
        },
        // Without a persisted cursor (stdout alone), a restart starts at the heads: say so in the docs.
        startAt: streamName !== undefined || cursorFile ? 'beginning' : 'heads',
        // A cursor save costs a store write, or two fsyncs and a rename; an fsync of the log
        // comes before it: at most one a second (a crash repeats up to that), not one per batch.
        saveEveryMs: 1000,
      });
      return stream;
    },
    metrics,
  );
  leaseCounts = () => core.leases.countLeases();
  auditTampered = () => core.auditIntegrity.list().map((t) => t.tenant);
  auditKeys = core.auditKeys;
  integrity = core.auditIntegrity;
  await stream?.start();
  const checkpointTimer = setInterval(
    () => void core.audit.checkpointDue(),
    durationMs(config.auditCheckpointInterval),
  );
  checkpointTimer.unref();
  const kubernetes = await kubernetesLoginConfig(config);
  const servers: Server[] = [];
  const { app } = createApp({
    core,
    keyring,
    logger,
    metrics,
    config: {
      bodyLimitBytes: config.bodyLimitBytes,
      authFailuresPerMinute: config.authFailuresPerMinute,
      trustedProxies: config.trustedProxies,
      ...(kubernetes ? { kubernetes } : {}),
      ...(config.ui ? { uiDir: config.uiDir ?? defaultUiDir } : {}),
      eventStreams: {
        perProcess: config.maxEventStreams,
        perTenant: config.maxEventStreamsPerTenant,
        perToken: config.maxEventStreamsPerToken,
      },
      // MiB to bytes by multiplication: `<< 20` is a 32-bit shift, and 2048 MiB or more wrapped
      // to a negative or zero budget (every stream behind 64 KiB was then disconnected).
      eventBacklog: {
        perStream: defaultEventBacklog.perStream,
        perProcess: config.maxEventBacklogMib * 1024 * 1024,
      },
      bulkOperations: {
        perProcess: config.maxBulkOperations,
        perTenant: config.maxBulkOperationsPerTenant,
        queue: 16,
      },
    },
  });
  const tls = config.tlsCertFile
    ? { cert: await readFile(config.tlsCertFile), key: await readFile(config.tlsKeyFile!) }
    : undefined;
  const url = await listen(app, config.listen, tls, (server) => {
    servers.push(server);
    server.headersTimeout = 30_000;
    // Bulk revocation of a credential's 100,000 leases answers after tens of seconds.
    server.requestTimeout = 300_000;
  });
  logger.info({ url, store: config.store }, 'vault listening');
  const metricsUrl = config.metricsListen
    ? await listen(metricsApp(metrics), config.metricsListen, tls, (server) => servers.push(server))
    : undefined;
  if (metricsUrl) logger.info({ url: `${metricsUrl}/metrics` }, 'metrics listening (no token)');
  // Lease and token records past their retention are deleted in the background (any replica may).
  const purge = () =>
    Promise.all([
      core.purger.purgeAll().then(
        (purged) => purged > 0 && logger.info({ purged }, 'old lease records deleted'),
        (err: unknown) => logger.warn({ err: (err as Error).message }, 'lease purge failed; retrying later'),
      ),
      core.tokens.purgeExpired().then(
        (purged) => purged > 0 && logger.info({ purged }, 'expired token records deleted'),
        (err: unknown) => logger.warn({ err: (err as Error).message }, 'token purge failed; retrying later'),
      ),
    ]);
  const purgeTimer = setInterval(purge, PURGE_INTERVAL_MS);
  purgeTimer.unref();
  // Reconciles upstream accounts on start (a crash may have left one without its lease),
  // then removes each at its lease's end and retries failures.
  void core.dynamic.start();
  return {
    url,
    ...(metricsUrl ? { metricsUrl } : {}),
    store,
    keyring,
    core,
    async close() {
      clearInterval(purgeTimer);
      clearInterval(checkpointTimer);
      await core.dynamic.stop();
      await core.dynamic.closeEngines();
      await Promise.all(
        servers.map((server) => {
          server.closeAllConnections();
          return new Promise<void>((resolve) => server.close(() => resolve()));
        }),
      );
      // A last checkpoint of what this process wrote, then the stream catches up to it.
      await core.audit.checkpointDue();
      await stream?.close();
      await store.close();
    },
  };
}

/** Kubernetes login: the unnamed cluster (--kubernetes-auth) and every named one, with their controllers. */
async function kubernetesLoginConfig(config: ServerConfig): Promise<KubernetesLoginConfig | undefined> {
  if (!config.kubernetesAuth && config.kubernetesClusters.length === 0) return undefined;
  const controllerOf = (cluster: string | undefined) =>
    config.kubernetesControllers.find((c) => c.cluster === cluster)?.serviceAccount;
  const clusters: Record<string, KubernetesCluster> = {};
  for (const cluster of config.kubernetesClusters) {
    const controller = controllerOf(cluster.name);
    clusters[cluster.name] = {
      reviewer: await kubernetesTokenReviewer(
        cluster.kubeconfig ? { kubeconfigPath: cluster.kubeconfig } : {},
      ),
      ...(controller ? { controller } : {}),
    };
  }
  const controller = controllerOf(undefined);
  return {
    ...(config.kubernetesAuth
      ? {
          reviewer: await kubernetesTokenReviewer(
            config.kubeconfig ? { kubeconfigPath: config.kubeconfig } : {},
          ),
          ...(controller ? { controller } : {}),
        }
      : {}),
    clusters,
    audience: config.kubernetesAudience,
    maxTokenTtlMs: 3_600_000,
  };
}

/** Listens on HOST:PORT (HTTPS when `tls` is given) and resolves with the base URL. */
async function listen(
  app: Express,
  address: string,
  tls: { cert: Buffer; key: Buffer } | undefined,
  configure: (server: Server) => void,
): Promise<string> {
  const server: Server = tls ? createHttpsServer(tls, app) : createHttpServer(app);
  configure(server);
  const separator = address.lastIndexOf(':');
  const host = address.slice(0, separator).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(separator + 1));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  const shownHost = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return `${tls ? 'https' : 'http'}://${shownHost}:${bound.port}`;
}
