/**
 * `vault agent`: the sidecar the injector adds to pods. It reads its files from
 * `--config` (JSON or a path to a JSON file) or `VAULT_AGENT_CONFIG`, logs in with
 * `VAULT_TOKEN` or the projected ServiceAccount token, and keeps the files until SIGTERM.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Command } from 'commander';
import {
  type AgentConfig,
  agentCaFileEnv,
  agentCaPemEnv,
  agentClusterEnv,
  agentConfig,
  agentConfigEnv,
} from '../agent/config.js';
import { LoginError, startAgent } from '../agent/run.js';
import { loadKubernetesClient } from '../k8s/client-module.js';
import { parseCaBundle, readCaBundle } from '../lib/ca-bundle.js';
import { systemClock } from '../lib/clock.js';
import { createLogger } from '../lib/logger.js';

interface AgentFlags {
  config?: string;
  once?: boolean;
  tokenFile?: string;
  directory?: string;
  healthHost: string;
  healthPort?: string;
  kubeconfig?: string;
  vaultCaFile?: string;
  logLevel?: string;
}

export function register(program: Command): void {
  program
    .command('agent')
    .description('Run the sidecar: lease credentials, keep them as files, wipe them when their lease ends')
    .option('--config <json|file>', `the files to keep, as JSON or a JSON file (default: $${agentConfigEnv})`)
    .option('--once', 'write every file, then exit 0 leaving the leases to run out (init containers)')
    .option('--token-file <path>', 'projected ServiceAccount token to log in with (overrides the config)')
    .option('--directory <path>', 'where files are written (overrides the config)')
    .option('--health-host <host>', 'address of /healthz, /readyz and /metrics', '0.0.0.0')
    .option('--health-port <port>', 'port of /healthz, /readyz and /metrics (overrides the config; 0 = any)')
    .option('--kubeconfig <path>', 'for VaultLease look-ups (default: in-cluster, or $KUBECONFIG)')
    .option(
      '--vault-ca-file <file>',
      `PEM CA bundle to trust for an https VAULT_ADDR (default: $${agentCaFileEnv}, or the PEM in $${agentCaPemEnv})`,
    )
    .option('--log-level <level>', 'debug, info, warn or error (default: $VAULT_LOG_LEVEL or info)')
    .action(async (flags: AgentFlags) => {
      const env = process.env;
      const logger = createLogger({
        name: 'vault-agent',
        level: flags.logLevel ?? env.VAULT_LOG_LEVEL ?? 'info',
      });
      const config = parseConfig(flags, env);
      if ('error' in config) {
        logger.fatal(config.error);
        process.exitCode = 2;
        return;
      }
      const ca = await caBundle(flags, env);
      if (ca && 'error' in ca) {
        logger.fatal(ca.error);
        process.exitCode = 2;
        return;
      }
      const addr = env.VAULT_ADDR || 'http://127.0.0.1:8200';
      if (ca && !addr.startsWith('https:'))
        logger.warn({ addr }, 'a CA bundle is given but VAULT_ADDR is not https; it is not used');
      const kubeconfigPath = flags.kubeconfig ?? env.KUBECONFIG;
      let kubeConfig: KubeConfig | undefined;
      if (kubeconfigPath) {
        const { KubeConfig } = await loadKubernetesClient('vault agent --kubeconfig');
        kubeConfig = new KubeConfig();
        kubeConfig.loadFromFile(kubeconfigPath);
      }

      let agent: Awaited<ReturnType<typeof startAgent>>;
      try {
        agent = await startAgent({
          config: config.value,
          addr,
          tenant: env.VAULT_TENANT || undefined,
          cluster: env[agentClusterEnv] || undefined,
          token: env.VAULT_TOKEN || undefined,
          ...(ca ? { caPem: ca.pem } : {}),
          kubeConfig,
          healthHost: flags.healthHost,
          // The webhook sets both from the downward API; the agent labels its leases with them.
          pod: { name: env.POD_NAME || undefined, namespace: env.POD_NAMESPACE || undefined },
          clock: systemClock,
          logger,
        });
      } catch (err) {
        // One clear line; the cause's message is already part of it.
        logger.fatal(
          err instanceof LoginError ? err.message : `the agent could not start: ${(err as Error).message}`,
        );
        process.exitCode = 1;
        return;
      }

      if (flags.once) {
        try {
          await agent.loop.allWritten;
          logger.info('every file written; exiting (--once)');
        } finally {
          await agent.stop({ revoke: false, wipe: false });
        }
        return;
      }

      await new Promise<void>((resolve) => {
        const onSignal = (signal: NodeJS.Signals) => {
          logger.info({ signal }, 'stopping: wiping files and revoking leases');
          agent.stop().then(resolve, (err) => {
            logger.error({ err }, 'stopping failed');
            process.exitCode = 1;
            resolve();
          });
        };
        process.once('SIGTERM', onSignal);
        process.once('SIGINT', onSignal);
      });
      logger.info('stopped');
    });
}

/** The CA to trust: a file (flag or env) wins over PEM text in the env; none means Node's roots. */
async function caBundle(
  flags: AgentFlags,
  env: NodeJS.ProcessEnv,
): Promise<{ pem: string } | { error: string } | undefined> {
  const file = flags.vaultCaFile ?? (env[agentCaFileEnv] || undefined);
  if (file) {
    const read = await readCaBundle(file);
    const origin = flags.vaultCaFile ? '--vault-ca-file' : `$${agentCaFileEnv}`;
    return 'error' in read ? { error: `${origin}: ${read.error}` } : read;
  }
  const pem = env[agentCaPemEnv];
  if (pem) return parseCaBundle(pem, `$${agentCaPemEnv}`);
  return undefined;
}

function parseConfig(flags: AgentFlags, env: NodeJS.ProcessEnv): { value: AgentConfig } | { error: string } {
  const source = flags.config ?? env[agentConfigEnv];
  if (!source) return { error: `no configuration: pass --config or set ${agentConfigEnv}` };
  let text = source.trim();
  if (!text.startsWith('{')) {
    if (!existsSync(text)) return { error: `--config: "${text}" is neither JSON nor an existing file` };
    text = readFileSync(text, 'utf8');
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    return { error: `the agent configuration is not valid JSON: ${(err as Error).message}` };
  }
  if (flags.tokenFile) raw.tokenPath = flags.tokenFile;
  if (flags.directory) raw.directory = flags.directory;
  if (flags.healthPort !== undefined) raw.healthPort = Number(flags.healthPort);
  const parsed = agentConfig.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'config'}: ${i.message}`);
    return { error: `invalid agent configuration: ${problems.join('; ')}` };
  }
  return { value: parsed.data };
}
