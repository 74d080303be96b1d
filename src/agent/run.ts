import { readFile } from 'node:fs/promises';
import type { KubeConfig } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { loadKubernetesClient } from '../k8s/client-module.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { type CreatedToken, Vault, VaultApiError, VaultConnectionError } from '../sdk/index.js';
import { createNodeFetch, type NodeFetch } from '../sdk/node-fetch.js';
import { leaseLabels } from '../webhook/annotations.js';
import type { AgentConfig } from './config.js';
import { createFileSink } from './file-sink.js';
import { type HealthServer, startHealthServer } from './health.js';
import { createLeaseLoop, type LeaseLoop, type LeaseResolver, leaseApi } from './lease-loop.js';

/**
 * Wires the agent together: log in, start the health endpoint, run the lease loop. The CLI
 * (src/cli/agent.ts) parses flags and the environment and calls this once.
 */

export interface AgentOptions {
  config: AgentConfig;
  addr: string;
  tenant?: string;
  /** The cluster the Kubernetes login names (tenant `<cluster>.<namespace>`), when Vault serves several. */
  cluster?: string;
  /** A Vault token; without it the agent logs in with the projected token at `config.tokenPath`. */
  token?: string;
  /** PEM CA bundle the agent trusts for an https `addr` (instead of Node's built-in roots). */
  caPem?: string;
  /** For `lease-<file>` files: where to read VaultLease objects (default: in-cluster). */
  kubeConfig?: KubeConfig;
  healthHost: string;
  clock: Clock;
  logger: Logger;
  registry?: Registry;
  /** The agent's pod (the downward API's POD_NAME and POD_NAMESPACE): put on its leases as labels. */
  pod?: { name?: string | undefined; namespace?: string | undefined };
}

export interface RunningAgent {
  loop: LeaseLoop;
  health: HealthServer;
  /** Wipes every file, revokes the agent's leases (unless told not to) and closes everything. */
  stop(options?: { revoke?: boolean; wipe?: boolean }): Promise<void>;
}

export class LoginError extends Error {
  constructor(message: string, cause?: unknown) {
    super(message);
    this.name = 'LoginError';
    if (cause !== undefined) this.cause = cause;
  }
}

export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const { config, logger, clock } = options;
  const registry = options.registry ?? new Registry();
  const sink = createFileSink(config.directory, {
    logger,
    ...(config.group === undefined ? {} : { group: config.group }),
  });
  let session: Awaited<ReturnType<typeof login>>;
  try {
    session = await login(options);
  } catch (err) {
    // Files a previous agent left (a crash, an OOM kill) hold values whose leases nobody here
    // can check or renew: without a session they are wiped, not left to outlive their leases.
    for (const file of config.files) {
      await sink.wipe(file.name).catch(() => {});
      await sink.sweepTemporaries(file.name).catch(() => {});
    }
    throw err;
  }
  const closeKube: (() => void)[] = [];

  const podName = options.pod?.name;
  const podNamespace = options.pod?.namespace ?? config.namespace;
  const labels = {
    ...(podName ? { [leaseLabels.pod]: podName } : {}),
    ...(podNamespace ? { [leaseLabels.namespace]: podNamespace } : {}),
  };
  const api = leaseApi(() => session.vault(), labels);

  let resolveLease: LeaseResolver | undefined;
  if (config.files.some((f) => f.lease !== undefined)) {
    const namespace = config.namespace;
    if (!namespace)
      throw new LoginError('files come from VaultLeases, but the configuration names no namespace');
    // Loaded only when needed: the Kubernetes client is most of the agent's memory otherwise.
    const { createKubeClient, isStatus, resourceTypes } = await import('../k8s/api-client.js');
    const kc = options.kubeConfig ?? (await inCluster());
    const client = await createKubeClient(kc);
    closeKube.push(() => client.close());
    resolveLease = async (name) => {
      try {
        const object = await client.get<{ status?: { phase?: string; leaseId?: string } }>(
          resourceTypes.vaultLeases,
          namespace,
          name,
        );
        return object.status?.phase === 'Active' ? object.status.leaseId : undefined;
      } catch (err) {
        if (isStatus(err, 404)) return undefined;
        throw err;
      }
    };
  }

  const loop = createLeaseLoop({
    files: config.files,
    sink,
    api,
    resolveLease,
    clock,
    logger,
    registry,
  });
  const health = await startHealthServer({
    started: loop.started,
    ready: loop.ready,
    registry,
    host: options.healthHost,
    port: config.healthPort,
  });
  loop.start();
  logger.info(
    { files: config.files.map((f) => f.name), directory: config.directory, healthPort: health.port },
    'agent started',
  );

  return {
    loop,
    health,
    async stop(stopOptions = {}) {
      await loop.stop(stopOptions);
      session.close();
      for (const close of closeKube) close();
      await health.close();
    },
  };
}

async function inCluster(): Promise<KubeConfig> {
  const { KubeConfig } = await loadKubernetesClient('vault agent');
  const kc = new KubeConfig();
  kc.loadFromCluster();
  return kc;
}

/**
 * A Vault session: a token given outright, or one from Kubernetes login that is renewed by
 * logging in again (with the kubelet-rotated projected token) at two thirds of its TTL.
 */
async function login(options: AgentOptions) {
  const http = createNodeFetch(options.caPem ? { ca: options.caPem } : {});
  // A busy or restarting server (no answer in time, refused, 429, 503) is waited for a while,
  // with jittered backoff, instead of exiting at once: a fleet of pods starting together would
  // otherwise restart in crash-loop backoff. Anything else (TLS, a refused token) fails at once.
  const giveUpAt = Date.now() + LOGIN_PATIENCE_MS;
  for (let wait = 1_000; ; wait = Math.min(wait * 2, 15_000)) {
    try {
      return await session(options, http);
    } catch (err) {
      if (!passing(err) || Date.now() + wait > giveUpAt) {
        http.close();
        throw err;
      }
      options.logger.warn({ err: reason(err) }, 'cannot log in yet; trying again');
      await new Promise((resolve) => setTimeout(resolve, wait * (0.5 + Math.random() / 2)));
    }
  }
}

/** How long a login keeps trying while the server is unreachable or busy. */
const LOGIN_PATIENCE_MS = 120_000;

/** A login failure that may pass: the server did not answer in time, refused, or was busy. */
function passing(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; depth++) {
    if (e instanceof VaultConnectionError) return e.reason === 'timeout' || e.reason === 'unreachable';
    if (e instanceof VaultApiError) return e.status === 429 || e.status === 503;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

async function session(options: AgentOptions, http: NodeFetch) {
  const connect = async (token: string) => {
    try {
      return await Vault.connect({ addr: options.addr, token, tenant: options.tenant, fetch: http.fetch });
    } catch (err) {
      throw new LoginError(`cannot log in to Vault at ${options.addr}: ${reason(err)}`, err);
    }
  };
  if (options.token) {
    const vault = await connect(options.token);
    return { vault: () => vault, close: () => http.close() };
  }
  const tokenPath = options.config.tokenPath;
  if (!tokenPath) throw new LoginError('no VAULT_TOKEN and no token file to log in with');

  const kubernetesLogin = async (): Promise<CreatedToken> => {
    let jwt: string;
    try {
      jwt = (await readFile(tokenPath, 'utf8')).trim();
    } catch (err) {
      throw new LoginError(
        `cannot read the ServiceAccount token at ${tokenPath}: ${(err as Error).message}`,
        err,
      );
    }
    try {
      return await Vault.loginKubernetes(
        { jwt, ...(options.cluster ? { cluster: options.cluster } : {}) },
        { addr: options.addr, tenant: options.tenant, fetch: http.fetch },
      );
    } catch (err) {
      throw new LoginError(`Kubernetes login to Vault at ${options.addr} failed: ${reason(err)}`, err);
    }
  };

  let created = await kubernetesLogin();
  let vault = await connect(created.token);
  let timer: NodeJS.Timeout | undefined;
  const scheduleRelogin = () => {
    const remaining = created.expiresAt.getTime() - options.clock().getTime();
    timer = setTimeout(
      async () => {
        try {
          created = await kubernetesLogin();
          vault = await connect(created.token);
          options.logger.info({ expiresAt: created.expiresAt }, 'logged in again');
          scheduleRelogin();
        } catch (err) {
          options.logger.error({ err: (err as Error).message }, 'logging in again failed; retrying in 10s');
          timer = setTimeout(scheduleRelogin, 10_000);
        }
      },
      Math.min(Math.max((remaining * 2) / 3, 1_000), 2_000_000_000),
    );
    timer.unref();
  };
  scheduleRelogin();
  return {
    vault: () => vault,
    close: () => {
      clearTimeout(timer);
      http.close();
    },
  };
}

/**
 * The error's message and, when it wraps a connection error, that error too: the SDK's
 * "is the server running?" hides a certificate Node refused, which is the usual mistake with
 * https and a private CA.
 */
function reason(err: unknown): string {
  const message = (err as Error).message;
  const cause = (err as { cause?: unknown }).cause;
  if (!(cause instanceof Error)) return message;
  const code = (cause as NodeJS.ErrnoException).code;
  const certificate = typeof code === 'string' && /CERT|SELF_SIGNED|UNABLE_TO|ALTNAME/.test(code);
  return `${message} (${code ? `${code}: ` : ''}${cause.message}${
    certificate ? "; give the API certificate's CA with --vault-ca-file or VAULT_CACERT" : ''
  })`;
}
