import { isIP } from 'node:net';
import { z } from 'zod';
import { STREAM_NAME } from '../core/audit-stream-claim.js';
import { durationHelp, parseDuration } from '../lib/duration.js';

const listen = z
  .string()
  .regex(
    /^(\[[0-9a-fA-F:]+\]|[0-9.]+|localhost|[A-Za-z0-9.-]+):\d{1,5}$/,
    'listen must look like 127.0.0.1:8200',
  );

/** Every setting of `vault server` (and `vault dev`), parsed once from flags and environment. */
export const serverConfigSchema = z
  .object({
    store: z.enum(['embedded', 'etcd']),
    dataDir: z.string().optional(),
    etcdEndpoints: z
      .array(z.url({ message: 'each etcd endpoint is a URL like https://etcd-0:2379' }))
      .default([]),
    etcdCaFile: z.string().optional(),
    etcdCertFile: z.string().optional(),
    etcdKeyFile: z.string().optional(),
    etcdUsername: z.string().optional(),
    etcdPassword: z.string().optional(),
    etcdPrefix: z.string().optional(),
    /** etcd's --max-txn-ops, which bulk work sizes its transactions by (checked at start). */
    etcdMaxTxnOps: z.coerce
      .number({ message: '--etcd-max-txn-ops must be a whole number' })
      .int('--etcd-max-txn-ops must be a whole number')
      .min(32, '--etcd-max-txn-ops must be at least 32')
      .max(100_000, '--etcd-max-txn-ops must be at most 100000')
      .default(128),
    rootKeyFile: z.string().optional(),
    rootKey: z.string().optional(),
    /** Old root keys still accepted for unwrapping while a root rotation completes. */
    previousRootKeyFiles: z.array(z.string()).default([]),
    listen: listen.default('127.0.0.1:8200'),
    tlsCertFile: z.string().optional(),
    tlsKeyFile: z.string().optional(),
    auditLog: z.string().default('stdout'),
    /**
     * Where the stream's cursor is kept: a file (default FILE.cursor next to a file audit
     * log, none for stdout), or `store[:NAME]`, the store, shared by every replica with the
     * same NAME, one of which writes the stream at a time.
     */
    auditCursor: z.string().optional(),
    /** With a store cursor: a writer that has not renewed its claim this long is replaced. */
    auditStreamTtl: z.string().default('15s'),
    /** Tenants with new records get a signed checkpoint this often (and every 1000 records). */
    auditCheckpointInterval: z.string().default('1m'),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    bodyLimitBytes: z.coerce
      .number()
      .int()
      .min(1024)
      .max(16 * 1024 * 1024)
      .default(128 * 1024),
    authFailuresPerMinute: z.coerce.number().int().min(1).default(20),
    /** Reverse proxies whose X-Forwarded-For is believed: addresses or CIDRs. */
    trustedProxies: z
      .array(
        z.string().refine((entry) => {
          const [address, bits, ...rest] = entry.split('/');
          const family = isIP(address ?? '');
          if (family === 0 || rest.length > 0) return false;
          return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128));
        }, 'each trusted proxy is an IP address or CIDR, like 10.0.0.5 or 10.0.0.0/8'),
      )
      .default([]),
    maxLeaseTtl: z.string().default('24h'),
    leaseRetention: z.string().default('24h'),
    /** How long a dynamic lease's issue may take before another replica removes its account. */
    dynamicIssueGrace: z.string().default('60s'),
    kubernetesAuth: z.boolean().default(false),
    kubernetesAudience: z.string().default('vault'),
    kubeconfig: z.string().optional(),
    /**
     * Named clusters whose ServiceAccounts may log in (`NAME` or `NAME=KUBECONFIG`; no
     * kubeconfig: in-cluster): their namespaces are tenants `<NAME>.<namespace>`.
     */
    kubernetesClusters: z
      .array(
        z
          .string()
          .regex(
            /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(=.*)?$/,
            'each --kubernetes-cluster is NAME or NAME=KUBECONFIG, NAME a DNS label like "prod-eu"',
          )
          .transform((entry) => {
            const eq = entry.indexOf('=');
            return eq < 0
              ? { name: entry }
              : {
                  name: entry.slice(0, eq),
                  ...(eq < entry.length - 1 ? { kubeconfig: entry.slice(eq + 1) } : {}),
                };
          }),
      )
      .default([]),
    /**
     * Each cluster's controller ServiceAccount (`[CLUSTER=]NAMESPACE:NAME`; no CLUSTER: the
     * unnamed cluster of --kubernetes-auth): its login gets the controller role.
     */
    kubernetesControllers: z
      .array(
        z
          .string()
          .regex(
            /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?=)?[a-z0-9]([-a-z0-9]*[a-z0-9])?:[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/,
            'each --kubernetes-controller is [CLUSTER=]NAMESPACE:SERVICEACCOUNT, like prod-eu=vault-system:vault-controller',
          )
          .transform((entry) => {
            const eq = entry.indexOf('=');
            return eq < 0
              ? { serviceAccount: entry }
              : { cluster: entry.slice(0, eq), serviceAccount: entry.slice(eq + 1) };
          }),
      )
      .default([]),
    autoCreateTenants: z.boolean().default(false),
    /** The most tenants one cluster's controller brings into being (see CoreConfig). */
    maxTenantsPerCluster: z.coerce.number().int().min(1).max(10_000_000).default(10_000),
    /** Open lease-event streams per process, per tenant and per token (fair sharing). */
    maxEventStreams: z.coerce.number().int().min(1).max(1_000_000).default(2048),
    maxEventStreamsPerTenant: z.coerce.number().int().min(1).max(1_000_000).default(256),
    maxEventStreamsPerToken: z.coerce.number().int().min(1).max(1_000_000).default(16),
    /** MiB of lease events all streams of the process may hold for slow clients together. */
    maxEventBacklogMib: z.coerce.number().int().min(1).max(65_536).default(64),
    /** Bulk operations (bulk revoke, credential delete, audit verify, ...) running at once. */
    maxBulkOperations: z.coerce.number().int().min(1).max(1024).default(4),
    maxBulkOperationsPerTenant: z.coerce.number().int().min(1).max(1024).default(2),
    /** A second listener serving only /metrics (no token) and /healthz. */
    metricsListen: listen.optional(),
    /** Series labelled with tenant ids (leases per tenant, tampered tenants by name). */
    metricsTenantSeries: z.boolean().default(false),
    /** Serve the web console at /ui. */
    ui: z.boolean().default(true),
    /** Where the built console is; default dist/ui of this installation. */
    uiDir: z.string().optional(),
  })
  .superRefine((config, ctx) => {
    const problem = (path: string, message: string) =>
      ctx.addIssue({ code: 'custom', path: [path], message });
    if (config.store === 'embedded' && !config.dataDir)
      problem('dataDir', '--store embedded needs --data-dir DIR');
    if (config.store === 'etcd' && config.etcdEndpoints.length === 0) {
      problem('etcdEndpoints', '--store etcd needs --etcd-endpoints https://host:2379[,...]');
    }
    if ((config.etcdCertFile === undefined) !== (config.etcdKeyFile === undefined)) {
      problem('etcdCertFile', '--etcd-cert-file and --etcd-key-file go together');
    }
    if ((config.tlsCertFile === undefined) !== (config.tlsKeyFile === undefined)) {
      problem('tlsCertFile', '--tls-cert-file and --tls-key-file go together');
    }
    if (!config.rootKeyFile && !config.rootKey) {
      problem(
        'rootKeyFile',
        'a root key is required: --root-key-file FILE (32 bytes, mode 0600) or VAULT_ROOT_KEY',
      );
    }
    if (config.rootKeyFile && config.rootKey)
      problem('rootKey', 'give the root key once: --root-key-file or VAULT_ROOT_KEY');
    if (config.maxEventStreamsPerTenant > config.maxEventStreams)
      problem('maxEventStreamsPerTenant', '--max-event-streams-per-tenant cannot exceed --max-event-streams');
    if (config.maxEventStreamsPerToken > config.maxEventStreamsPerTenant) {
      problem(
        'maxEventStreamsPerToken',
        '--max-event-streams-per-token cannot exceed --max-event-streams-per-tenant',
      );
    }
    if (config.maxBulkOperationsPerTenant > config.maxBulkOperations) {
      problem(
        'maxBulkOperationsPerTenant',
        '--max-bulk-operations-per-tenant cannot exceed --max-bulk-operations',
      );
    }
    if (config.metricsListen && config.metricsListen === config.listen && !config.listen.endsWith(':0'))
      problem('metricsListen', '--metrics-listen must differ from --listen');
    const ttl = parseDuration(config.maxLeaseTtl);
    if ('error' in ttl) problem('maxLeaseTtl', `--max-lease-ttl must be ${durationHelp}`);
    if ('error' in parseDuration(config.auditCheckpointInterval)) {
      problem('auditCheckpointInterval', `--audit-checkpoint-interval must be ${durationHelp}`);
    }
    const streamTtl = parseDuration(config.auditStreamTtl);
    if ('error' in streamTtl || streamTtl.ms < 1000) {
      problem('auditStreamTtl', `--audit-stream-ttl must be at least 1s, ${durationHelp}`);
    }
    const storeCursor = auditStreamName(config.auditCursor);
    if (storeCursor !== undefined && !STREAM_NAME.test(storeCursor)) {
      problem(
        'auditCursor',
        `--audit-cursor store:NAME needs a NAME of 1-63 letters, digits, ".", "_" or "-", got "${storeCursor}"`,
      );
    }
    if ('error' in parseDuration(config.leaseRetention)) {
      problem('leaseRetention', `--lease-retention must be ${durationHelp}`);
    }
    if ('error' in parseDuration(config.dynamicIssueGrace)) {
      problem('dynamicIssueGrace', `--dynamic-issue-grace must be ${durationHelp}`);
    }
    const clusterNames = config.kubernetesClusters.map((c) => c.name);
    if (new Set(clusterNames).size !== clusterNames.length)
      problem('kubernetesClusters', 'each --kubernetes-cluster name is given once');
    const controlled = new Set<string>();
    for (const controller of config.kubernetesControllers) {
      const name = controller.cluster ?? '';
      if (controlled.has(name)) problem('kubernetesControllers', `cluster "${name}" has two controllers`);
      controlled.add(name);
      if (controller.cluster !== undefined && !clusterNames.includes(controller.cluster)) {
        problem(
          'kubernetesControllers',
          `--kubernetes-controller names cluster "${controller.cluster}", which no --kubernetes-cluster serves`,
        );
      }
      if (controller.cluster === undefined && !config.kubernetesAuth) {
        problem(
          'kubernetesControllers',
          `--kubernetes-controller ${controller.serviceAccount} is for the unnamed cluster: it needs --kubernetes-auth (or write CLUSTER=${controller.serviceAccount})`,
        );
      }
    }
    const host = config.listen.slice(0, config.listen.lastIndexOf(':'));
    const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(host);
    if (!loopback && !config.tlsCertFile && process.env.VAULT_ALLOW_PLAINTEXT !== 'true') {
      problem(
        'listen',
        `listening on ${config.listen} without TLS would send tokens and values in clear text; give --tls-cert-file/--tls-key-file, or set VAULT_ALLOW_PLAINTEXT=true behind a TLS-terminating proxy or service mesh`,
      );
    }
  });

export type ServerConfig = z.output<typeof serverConfigSchema>;

/** The stream name of a `store[:NAME]` cursor (`default` for plain `store`), else undefined (a file). */
export function auditStreamName(auditCursor: string | undefined): string | undefined {
  if (auditCursor === 'store') return 'default';
  return auditCursor?.startsWith('store:') ? auditCursor.slice('store:'.length) : undefined;
}

/** Every problem at once, one per line, naming the flag. */
export function parseServerConfig(input: unknown): ServerConfig {
  const result = serverConfigSchema.safeParse(input);
  if (result.success) return Object.freeze(result.data) as ServerConfig;
  const lines = result.error.issues.map(
    (issue) => `  - ${issue.path.join('.') || 'config'}: ${issue.message}`,
  );
  throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}
