import type { Command } from 'commander';
import { isVaultError } from '../lib/errors.js';
import { createLogger } from '../lib/logger.js';
import { ConfigError, parseServerConfig, type ServerConfig } from '../server/config.js';
import { startVault } from '../server/vault-process.js';

const list = (value: string | undefined) =>
  value
    ?.split(',')
    .map((item) => item.trim())
    .filter(Boolean);

const defined = <T extends Record<string, unknown>>(object: T) =>
  Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined)) as Partial<T>;

/** Flags shared by every role that opens the store (server, operator). */
export function addStoreOptions(command: Command): Command {
  return command
    .option('--store <kind>', 'embedded or etcd (env VAULT_STORE)')
    .option('--data-dir <dir>', 'embedded store directory (env VAULT_DATA_DIR)')
    .option('--etcd-endpoints <urls>', 'comma-separated etcd URLs (env VAULT_ETCD_ENDPOINTS)')
    .option('--etcd-ca-file <file>', 'CA of the etcd servers (env VAULT_ETCD_CA_FILE)')
    .option('--etcd-cert-file <file>', 'etcd client certificate (env VAULT_ETCD_CERT_FILE)')
    .option('--etcd-key-file <file>', 'etcd client key (env VAULT_ETCD_KEY_FILE)')
    .option('--etcd-username <name>', 'etcd user; the password comes from VAULT_ETCD_PASSWORD')
    .option('--etcd-prefix <prefix>', 'namespace for every key in etcd')
    .option(
      '--etcd-max-txn-ops <n>',
      "operations per transaction, as etcd's --max-txn-ops allows (default 128; env VAULT_ETCD_MAX_TXN_OPS)",
    )
    .option('--root-key-file <file>', 'root key file, 32 bytes, mode 0600 (or VAULT_ROOT_KEY)')
    .option('--previous-root-key-file <file...>', 'old root keys accepted while a root rotation completes')
    .option('--log-level <level>', 'trace, debug, info, warn, error (env VAULT_LOG_LEVEL)');
}

/** Reads flags and VAULT_* variables into the raw input of the config schema. */
export function storeConfigInput(
  options: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
): Record<string, unknown> {
  return defined({
    store:
      options.store ??
      env.VAULT_STORE ??
      (options.etcdEndpoints || env.VAULT_ETCD_ENDPOINTS ? 'etcd' : 'embedded'),
    dataDir: options.dataDir ?? env.VAULT_DATA_DIR,
    etcdEndpoints: list((options.etcdEndpoints as string | undefined) ?? env.VAULT_ETCD_ENDPOINTS),
    etcdCaFile: options.etcdCaFile ?? env.VAULT_ETCD_CA_FILE,
    etcdCertFile: options.etcdCertFile ?? env.VAULT_ETCD_CERT_FILE,
    etcdKeyFile: options.etcdKeyFile ?? env.VAULT_ETCD_KEY_FILE,
    etcdUsername: options.etcdUsername ?? env.VAULT_ETCD_USERNAME,
    etcdPassword: env.VAULT_ETCD_PASSWORD,
    etcdPrefix: options.etcdPrefix ?? env.VAULT_ETCD_PREFIX,
    etcdMaxTxnOps: options.etcdMaxTxnOps ?? env.VAULT_ETCD_MAX_TXN_OPS,
    rootKeyFile: options.rootKeyFile ?? env.VAULT_ROOT_KEY_FILE,
    rootKey: env.VAULT_ROOT_KEY,
    previousRootKeyFiles: options.previousRootKeyFile,
    logLevel: options.logLevel ?? env.VAULT_LOG_LEVEL,
  });
}

/** Parses or prints every problem and exits 2 (only entry points may exit). */
export function configOrExit(input: Record<string, unknown>): ServerConfig {
  try {
    return parseServerConfig(input);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`vault: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

export function register(program: Command): void {
  addStoreOptions(
    program
      .command('server')
      .description('Run the Vault API for production: etcd or embedded store, a root key you provide, TLS'),
  )
    .option('--listen <host:port>', 'address to listen on (env VAULT_LISTEN)', undefined)
    .option('--tls-cert-file <file>', 'serve HTTPS with this certificate (env VAULT_TLS_CERT_FILE)')
    .option('--tls-key-file <file>', 'key of the TLS certificate (env VAULT_TLS_KEY_FILE)')
    .option('--audit-log <target>', '"stdout", "none" or a file for JSON-lines audit records')
    .option(
      '--audit-cursor <file>',
      'where the audit stream keeps its position: a file (default FILE.cursor beside a file log), or store[:NAME] (in the store; replicas with the same NAME take turns writing the stream)',
    )
    .option(
      '--audit-stream-ttl <duration>',
      'with --audit-cursor store: a writer silent this long is replaced by another replica (default 15s)',
    )
    .option(
      '--audit-checkpoint-interval <duration>',
      'sign a checkpoint of each changed tenant this often (default 1m)',
    )
    .option('--max-lease-ttl <duration>', 'no lease outlives this (default 24h)')
    .option('--lease-retention <duration>', 'keep records of ended leases this long (default 24h)')
    .option(
      '--dynamic-issue-grace <duration>',
      'a dynamic account whose lease is not committed this long after it was created is removed (default 60s)',
    )
    .option('--body-limit-bytes <n>', 'largest accepted request body')
    .option(
      '--trusted-proxy <addresses>',
      'comma-separated proxy addresses/CIDRs whose X-Forwarded-For is believed (env VAULT_TRUSTED_PROXIES)',
    )
    .option('--kubernetes-auth', 'enable Kubernetes login (TokenReview)')
    .option('--kubernetes-audience <aud>', 'audience projected tokens must carry (default vault)')
    .option('--kubeconfig <file>', 'kubeconfig for TokenReview (default: in-cluster)')
    .option(
      '--kubernetes-cluster <name=kubeconfig...>',
      'a named cluster whose ServiceAccounts may log in, tenants <name>.<namespace> (env VAULT_KUBERNETES_CLUSTERS, comma-separated)',
    )
    .option(
      '--kubernetes-controller <cluster=namespace:sa...>',
      "a cluster's controller ServiceAccount, which gets the controller role (env VAULT_KUBERNETES_CONTROLLERS)",
    )
    .option(
      '--max-tenants-per-cluster <n>',
      "tenants a cluster's controller may bring into being (default 10000; env VAULT_MAX_TENANTS_PER_CLUSTER)",
    )
    .option('--no-ui', 'do not serve the web console at /ui (env VAULT_UI=false)')
    .option('--max-event-streams <n>', 'open lease-event streams per process (default 2048)')
    .option('--max-event-streams-per-tenant <n>', 'open lease-event streams per tenant (default 256)')
    .option('--max-event-streams-per-token <n>', 'open lease-event streams per token (default 16)')
    .option(
      '--max-event-backlog-mib <n>',
      'MiB of lease events all streams of the process may hold for slow clients (default 64)',
    )
    .option('--max-bulk-operations <n>', 'bulk operations running at once per process (default 4)')
    .option('--max-bulk-operations-per-tenant <n>', 'bulk operations running at once per tenant (default 2)')
    .option(
      '--metrics-listen <host:port>',
      'also serve /metrics without a token on this address, for a scraper only the network lets in (env VAULT_METRICS_LISTEN)',
    )
    .option(
      '--metrics-tenant-series',
      'add series labelled with tenant ids (env VAULT_METRICS_TENANT_SERIES=true); off: no tenant is named',
    )
    .action(async (options: Record<string, unknown>) => {
      const env = process.env;
      const config = configOrExit({
        ...storeConfigInput(options, env),
        ...defined({
          listen: options.listen ?? env.VAULT_LISTEN,
          tlsCertFile: options.tlsCertFile ?? env.VAULT_TLS_CERT_FILE,
          tlsKeyFile: options.tlsKeyFile ?? env.VAULT_TLS_KEY_FILE,
          auditLog: options.auditLog ?? env.VAULT_AUDIT_LOG,
          auditCursor: options.auditCursor ?? env.VAULT_AUDIT_CURSOR,
          auditStreamTtl: options.auditStreamTtl ?? env.VAULT_AUDIT_STREAM_TTL,
          auditCheckpointInterval: options.auditCheckpointInterval ?? env.VAULT_AUDIT_CHECKPOINT_INTERVAL,
          maxLeaseTtl: options.maxLeaseTtl ?? env.VAULT_MAX_LEASE_TTL,
          leaseRetention: options.leaseRetention ?? env.VAULT_LEASE_RETENTION,
          dynamicIssueGrace: options.dynamicIssueGrace ?? env.VAULT_DYNAMIC_ISSUE_GRACE,
          bodyLimitBytes: options.bodyLimitBytes,
          trustedProxies: list((options.trustedProxy as string | undefined) ?? env.VAULT_TRUSTED_PROXIES),
          kubernetesAuth:
            options.kubernetesAuth === true || env.VAULT_KUBERNETES_AUTH === 'true' ? true : undefined,
          kubernetesAudience: options.kubernetesAudience,
          kubeconfig: options.kubeconfig ?? env.KUBECONFIG,
          kubernetesClusters:
            (options.kubernetesCluster as string[] | undefined) ?? list(env.VAULT_KUBERNETES_CLUSTERS),
          kubernetesControllers:
            (options.kubernetesController as string[] | undefined) ?? list(env.VAULT_KUBERNETES_CONTROLLERS),
          maxTenantsPerCluster: options.maxTenantsPerCluster ?? env.VAULT_MAX_TENANTS_PER_CLUSTER,
          ui: options.ui === false || env.VAULT_UI === 'false' ? false : undefined,
          maxEventStreams: options.maxEventStreams ?? env.VAULT_MAX_EVENT_STREAMS,
          maxEventStreamsPerTenant:
            options.maxEventStreamsPerTenant ?? env.VAULT_MAX_EVENT_STREAMS_PER_TENANT,
          maxEventStreamsPerToken: options.maxEventStreamsPerToken ?? env.VAULT_MAX_EVENT_STREAMS_PER_TOKEN,
          maxEventBacklogMib: options.maxEventBacklogMib ?? env.VAULT_MAX_EVENT_BACKLOG_MIB,
          maxBulkOperations: options.maxBulkOperations ?? env.VAULT_MAX_BULK_OPERATIONS,
          maxBulkOperationsPerTenant:
            options.maxBulkOperationsPerTenant ?? env.VAULT_MAX_BULK_OPERATIONS_PER_TENANT,
          metricsListen: options.metricsListen ?? env.VAULT_METRICS_LISTEN,
          metricsTenantSeries:
            options.metricsTenantSeries === true || env.VAULT_METRICS_TENANT_SERIES === 'true'
              ? true
              : undefined,
        }),
      });
      const logger = createLogger({
        level: config.logLevel,
        name: 'vault-server',
        destination: process.stderr,
      });
      const vault = await startVault(config, logger).catch(exitOnStartupError('vault server'));
      onShutdown(() => vault.close());
    });
}

/**
 * A process that cannot start says why in one line and exits: 2 when the configuration or
 * a key file is wrong (fix and retry), 1 otherwise (e.g. the store is unreachable).
 */
export function exitOnStartupError(name: string) {
  return (err: unknown): never => {
    const known = isVaultError(err);
    // A system error (a port in use, a missing file) is explained by its message alone.
    const system = typeof (err as NodeJS.ErrnoException | undefined)?.code === 'string';
    let message = err instanceof Error ? err.message : String(err);
    if ((err as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE') {
      message = `${message}: another process listens there; stop it or choose another port`;
    }
    process.stderr.write(`${name}: cannot start: ${message}\n`);
    if (!known && !system) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
    process.exit(known && err.code === 'bad_request' ? 2 : 1);
  };
}

/** Closes cleanly on SIGINT/SIGTERM, then exits 0. */
export function onShutdown(close: () => Promise<void>): void {
  let closing = false;
  const stop = () => {
    if (closing) return;
    closing = true;
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`vault: shutdown failed: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
