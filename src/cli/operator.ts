/**
 * `vault operator`: the command group of the Kubernetes controller. `vault operator run`
 * reconciles VaultCredential and VaultLease resources as a client of the Vault API: it logs
 * in with its own ServiceAccount token (Kubernetes login) and holds no root key and no store
 * credentials. Key rotation subcommands live in the same group (`operatorGroup(program)`
 * returns it to whoever adds them); they, not `run`, open the store.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { Command } from 'commander';
import { z } from 'zod';
import { clusterName, namespaceName } from '../contract/common.js';
import { loadKubernetesClient } from '../k8s/client-module.js';
import { systemClock } from '../lib/clock.js';
import { durationMs } from '../lib/duration.js';
import { createLogger } from '../lib/logger.js';
import { createApiPort } from '../operator/api-port.js';
import { createOperator } from '../operator/manager.js';
import { createOperatorMetrics } from '../operator/metrics.js';
import { openVaultSession } from '../operator/vault-session.js';
import { createNodeFetch } from '../sdk/node-fetch.js';
import { registerBootstrapCommands } from './operator-bootstrap.js';
import { registerKeyCommands } from './operator-keys.js';
import { exitOnStartupError, onShutdown } from './server.js';

/** The `vault operator` command group, created once. */
export function operatorGroup(program: Command): Command {
  const existing = program.commands.find((c) => c.name() === 'operator');
  return (
    existing ??
    program.command('operator').description('The Kubernetes controller and operator tasks (key rotation)')
  );
}

const runConfigSchema = z.object({
  kubeconfig: z.string().optional(),
  leaderElect: z.boolean(),
  leaderElectionNamespace: z.string().min(1),
  leaderElectionName: z.string().min(1),
  workers: z.coerce.number().int().min(1).max(64),
  resyncMs: z.number().int().min(0),
  metricsListen: z
    .string()
    .regex(/^[^:]*:\d{1,5}$/, '--metrics-listen must look like 127.0.0.1:9090')
    .optional(),
  identity: z.string().optional(),
  vaultAddr: z.url({ message: '--vault-addr must be a URL like https://vault.vault-system.svc:8200' }),
  cluster: clusterName.optional(),
  secretNamespaces: z.array(namespaceName),
  tokenFile: z.string().min(1),
  caFile: z.string().optional(),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
});

/** Where the chart projects the controller's ServiceAccount token with audience "vault". */
export const defaultTokenFile = '/var/run/secrets/vault.ghoststack.io/serviceaccount/token';

function parseRunConfig(options: Record<string, unknown>, env: NodeJS.ProcessEnv) {
  const resync = String(options.resync ?? env.VAULT_OPERATOR_RESYNC ?? '10m');
  const secretNamespaces = splitList(options.secretNamespaces ?? env.VAULT_OPERATOR_SECRET_NAMESPACES);
  const parsed = runConfigSchema.safeParse({
    kubeconfig: options.kubeconfig ?? env.KUBECONFIG,
    leaderElect: options.leaderElect !== false,
    leaderElectionNamespace: options.leaderElectionNamespace ?? env.POD_NAMESPACE ?? 'vault-system',
    leaderElectionName: options.leaderElectionName ?? 'vault-operator',
    workers: options.workers ?? 4,
    resyncMs: resync === '0' ? 0 : safeDuration(resync),
    metricsListen: options.metricsListen ?? env.VAULT_OPERATOR_METRICS_LISTEN,
    identity: options.identity ?? env.POD_NAME,
    vaultAddr: options.vaultAddr ?? env.VAULT_ADDR,
    cluster: options.cluster ?? (env.VAULT_CLUSTER_NAME || undefined),
    secretNamespaces,
    tokenFile: options.tokenFile ?? env.VAULT_OPERATOR_TOKEN_FILE ?? defaultTokenFile,
    caFile: options.caFile ?? (env.VAULT_CACERT || undefined),
    logLevel: options.logLevel ?? env.VAULT_LOG_LEVEL,
  });
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const [field, index] = issue.path;
      const where =
        field === 'secretNamespaces'
          ? `--secret-namespaces: "${secretNamespaces[Number(index)]}"`
          : issue.path.join('.');
      process.stderr.write(`vault operator: ${where}: ${issue.message}\n`);
    }
    process.exit(2);
  }
  return parsed.data;
}

/** `a, b,` → [a, b]; unset or empty → none. */
function splitList(text: unknown): string[] {
  if (typeof text !== 'string' || text.trim() === '') return [];
  return [...new Set(text.split(',').map((item) => item.trim()))].filter((item) => item !== '');
}

function safeDuration(text: string): number {
  try {
    return durationMs(text);
  } catch (err) {
    process.stderr.write(`vault operator: --resync: ${(err as Error).message}\n`);
    process.exit(2);
  }
}

function serveMetrics(listen: string, render: () => Promise<string>, ready: () => boolean): Promise<Server> {
  const separator = listen.lastIndexOf(':');
  const host = listen.slice(0, separator) || '0.0.0.0';
  const port = Number(listen.slice(separator + 1));
  const server = createServer((req, res) => {
    if (req.url === '/metrics') {
      render().then(
        (text) => {
          res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
          res.end(text);
        },
        () => {
          res.writeHead(500);
          res.end();
        },
      );
    } else if (req.url === '/healthz') {
      res.writeHead(200);
      res.end('ok');
    } else if (req.url === '/readyz') {
      res.writeHead(ready() ? 200 : 503);
      res.end(ready() ? 'ok' : 'starting');
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

export function register(program: Command): void {
  registerKeyCommands(operatorGroup(program));
  registerBootstrapCommands(operatorGroup(program));
  operatorGroup(program)
    .command('run')
    .description(
      'Reconcile VaultCredential and VaultLease resources as a client of the Vault API (namespace = tenant, or <cluster>.<namespace>)',
    )
    .option('--vault-addr <url>', 'the Vault API (env VAULT_ADDR)')
    .option(
      '--cluster <name>',
      'the name Vault knows this cluster by: tenants are <name>.<namespace> (env VAULT_CLUSTER_NAME; default: namespace = tenant)',
    )
    .option(
      '--secret-namespaces <list>',
      'comma-separated namespaces whose Secrets VaultCredentials may import (the only ones it lists and watches Secrets in; env VAULT_OPERATOR_SECRET_NAMESPACES; default none)',
    )
    .option(
      '--token-file <file>',
      `ServiceAccount token (audience vault) to log in with (env VAULT_OPERATOR_TOKEN_FILE; ${defaultTokenFile})`,
    )
    .option('--ca-file <file>', 'CA bundle of an https Vault API (env VAULT_CACERT)')
    .option('--log-level <level>', 'trace, debug, info, warn, error (env VAULT_LOG_LEVEL)')
    .option('--kubeconfig <file>', 'kubeconfig to use (default: in-cluster, or KUBECONFIG)')
    .option('--no-leader-elect', 'reconcile without leader election (only one replica may run)')
    .option(
      '--leader-election-namespace <ns>',
      'namespace of the leader Lease (env POD_NAMESPACE; vault-system)',
    )
    .option('--leader-election-name <name>', 'name of the leader Lease (vault-operator)')
    .option('--workers <n>', 'concurrent reconciles (4)')
    .option('--resync <duration>', 'replay every object this often; 0 disables (10m)')
    .option(
      '--metrics-listen <host:port>',
      'serve /metrics, /healthz and /readyz here (env VAULT_OPERATOR_METRICS_LISTEN)',
    )
    .option('--identity <name>', 'this replica in the leader Lease and events (env POD_NAME)')
    .action(async (options: Record<string, unknown>) => {
      const env = process.env;
      const run = parseRunConfig(options, env);
      const logger = createLogger({
        level: run.logLevel,
        name: 'vault-operator',
        destination: process.stderr,
      });
      const { KubeConfig } = await loadKubernetesClient('vault operator run');
      const kubeConfig = new KubeConfig();
      if (run.kubeconfig) kubeConfig.loadFromFile(run.kubeconfig);
      else kubeConfig.loadFromDefault();

      const http = createNodeFetch(run.caFile ? { ca: await readFile(run.caFile, 'utf8') } : {});
      const session = await openVaultSession({
        addr: run.vaultAddr,
        ...(run.cluster ? { cluster: run.cluster } : {}),
        readToken: () => readFile(run.tokenFile, 'utf8'),
        fetch: http.fetch,
        clock: systemClock,
        logger,
      }).catch((err: unknown): never => {
        http.close();
        process.stderr.write(
          `vault operator: cannot start: cannot log in to Vault at ${run.vaultAddr}: ${err instanceof Error ? err.message : String(err)}\n`,
        );
        process.exit(1);
      });
      const metrics = createOperatorMetrics({ defaultMetrics: true });
      const operator = createOperator({
        kubeConfig,
        vault: createApiPort(session, logger),
        ...(run.cluster ? { cluster: run.cluster } : {}),
        secretNamespaces: run.secretNamespaces,
        logger,
        metrics,
        workers: run.workers,
        resyncMs: run.resyncMs,
        ...(run.identity ? { identity: run.identity } : {}),
        leaderElection: {
          enabled: run.leaderElect,
          namespace: run.leaderElectionNamespace,
          name: run.leaderElectionName,
        },
      });
      let started = false;
      const metricsServer = run.metricsListen
        ? await serveMetrics(
            run.metricsListen,
            () => metrics.registry.metrics(),
            () => started,
          )
        : undefined;
      try {
        await operator.start();
      } catch (err) {
        // Nothing may keep a process alive that cannot reconcile: close, say why, exit.
        await operator.stop().catch(() => {});
        metricsServer?.close();
        session.close();
        http.close();
        exitOnStartupError('vault operator')(err);
      }
      started = true;
      logger.info(
        {
          identity: operator.identity,
          leaderElection: run.leaderElect,
          vault: run.vaultAddr,
          cluster: run.cluster ?? null,
          secretNamespaces: run.secretNamespaces,
          tenantOfNamespace: run.cluster ? `${run.cluster}.<namespace>` : '<namespace>',
        },
        'vault operator started',
      );
      onShutdown(async () => {
        await operator.stop();
        metricsServer?.close();
        session.close();
        http.close();
      });
    });
}
