/**
 * `vault operator`: the command group of the Kubernetes controller. `vault operator run`
 * reconciles VaultCredential and VaultLease resources against the Vault store directly (the
 * same store flags and root key as `vault server`); key rotation subcommands live in the
 * same group (`operatorGroup(program)` returns it to whoever adds them).
 */
import { createServer, type Server } from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';
import type { Command } from 'commander';
import { z } from 'zod';
import { durationMs } from '../lib/duration.js';
import { createLogger } from '../lib/logger.js';
import { createOperator } from '../operator/manager.js';
import { createOperatorMetrics } from '../operator/metrics.js';
import { createCorePort } from '../operator/vault-port.js';
import { openVault } from '../server/vault-process.js';
import { registerBootstrapCommands } from './operator-bootstrap.js';
import { registerKeyCommands } from './operator-keys.js';
import { addStoreOptions, configOrExit, exitOnStartupError, onShutdown, storeConfigInput } from './server.js';

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
});

function parseRunConfig(options: Record<string, unknown>, env: NodeJS.ProcessEnv) {
  const resync = String(options.resync ?? env.VAULT_OPERATOR_RESYNC ?? '10m');
  const parsed = runConfigSchema.safeParse({
    kubeconfig: options.kubeconfig ?? env.KUBECONFIG,
    leaderElect: options.leaderElect !== false,
    leaderElectionNamespace: options.leaderElectionNamespace ?? env.POD_NAMESPACE ?? 'vault-system',
    leaderElectionName: options.leaderElectionName ?? 'vault-operator',
    workers: options.workers ?? 4,
    resyncMs: resync === '0' ? 0 : safeDuration(resync),
    metricsListen: options.metricsListen ?? env.VAULT_OPERATOR_METRICS_LISTEN,
    identity: options.identity ?? env.POD_NAME,
  });
  if (!parsed.success) {
    for (const issue of parsed.error.issues)
      process.stderr.write(`vault operator: ${issue.path.join('.')}: ${issue.message}\n`);
    process.exit(2);
  }
  return parsed.data;
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
  addStoreOptions(
    operatorGroup(program)
      .command('run')
      .description('Reconcile VaultCredential and VaultLease resources (namespace = tenant)'),
  )
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
      const config = configOrExit(storeConfigInput(options, env));
      const run = parseRunConfig(options, env);
      const logger = createLogger({
        level: config.logLevel,
        name: 'vault-operator',
        destination: process.stderr,
      });
      const kubeConfig = new KubeConfig();
      if (run.kubeconfig) kubeConfig.loadFromFile(run.kubeconfig);
      else kubeConfig.loadFromDefault();

      const { store, core } = await openVault(config, logger).catch(exitOnStartupError('vault operator'));
      const metrics = createOperatorMetrics({ defaultMetrics: true });
      const operator = createOperator({
        kubeConfig,
        vault: createCorePort(core),
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
        await store.close().catch(() => {});
        exitOnStartupError('vault operator')(err);
      }
      started = true;
      logger.info({ identity: operator.identity, leaderElection: run.leaderElect }, 'vault operator started');
      onShutdown(async () => {
        await operator.stop();
        metricsServer?.close();
        await store.close();
      });
    });
}
