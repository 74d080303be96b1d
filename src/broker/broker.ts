/**
 * A running broker: leases each credential for the agent with the broker's own token, keeps
 * the values in this process only, and hands out what the agent's command may hold instead:
 * one placeholder per credential, the proxy address with its password, and the CA to trust.
 *
 * The interface with the API: the broker's token needs `lease` on the credentials and must be
 * allowed to act for the agent (a policy's `actFor`), so each lease is the agent's (audited
 * as acting for it) while the value is read by the issuer, the broker. Every request is then
 * reported with `POST /v1/leases/:id/use`, which is also the per-request lease check.
 */
import { randomBytes } from 'node:crypto';
import { brokersBody, parseHosts } from '../contract/broker.js';
import type { Identity } from '../contract/common.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import type { Lease } from '../sdk/index.js';
import { createUseReporter, type LeaseUsePort } from './audit.js';
import { createBrokerPki, writeTrustFiles } from './ca.js';
import type { Brokered } from './decide.js';
import { newPlaceholder } from './placeholders.js';
import { startProxy, type UpstreamOptions } from './proxy.js';

/** What the broker needs from the Vault API, narrowed (a connected SDK `Vault` fits). */
export interface BrokerVault {
  credentials: {
    get(name: string): Promise<{ name: string; type: string; metadata: Record<string, string> }>;
  };
  leases: LeaseUsePort & {
    create(input: {
      credentialName: string;
      identity: Identity;
      ttl: string;
      renewable: boolean;
      labels: Record<string, string>;
    }): Promise<Lease>;
    read(id: string): Promise<Lease>;
    revoke(id: string): Promise<unknown>;
  };
}

export interface BrokerUse {
  credential: string;
  /** The variable holding the placeholder (default: the credential name upper-cased). */
  env?: string;
}

export interface StartBrokerOptions {
  vault: BrokerVault;
  /** Whom the leases are for: the agent whose command uses them. */
  agent: Identity;
  uses: readonly BrokerUse[];
  /** Lease TTL, e.g. "15m"; requests after it are refused. */
  ttl: string;
  /** Tunnel CONNECTs to hosts no credential names (default: refuse them). */
  allowOtherHosts?: boolean;
  clock: Clock;
  upstream?: UpstreamOptions;
  maxBodyBytes?: number;
  logger?: Logger;
}

export interface Broker {
  /** http://vault:PASSWORD@127.0.0.1:PORT */
  proxyUrl: string;
  port: number;
  caFile: string;
  bundleFile: string;
  credentials: ReadonlyArray<Omit<Brokered, 'hosts' | 'body'> & { hosts: string[]; version: number }>;
  /** The values this broker holds, by variable name, for scrubbing output as a second line of defence. */
  secrets(): Array<{ name: string; value: string }>;
  /** Stops the proxy, revokes the leases, removes the CA files, forgets the values. */
  close(): Promise<void>;
}

const envNamePattern = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `stripe-api-key` → `STRIPE_API_KEY`. */
export function envNameFor(credential: string): string {
  const name = credential.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
  return /^[0-9]/.test(name) ? `_${name}` : name;
}

export async function startBroker(options: StartBrokerOptions): Promise<Broker> {
  const { vault } = options;
  if (options.uses.length === 0) throw new RangeError('name at least one credential to broker');
  const names = options.uses.map((use) => use.env ?? envNameFor(use.credential));
  for (const name of names) {
    if (!envNamePattern.test(name))
      throw new RangeError(`"${name}" is not a valid environment variable name`);
  }
  if (new Set(names).size !== names.length)
    throw new RangeError('two credentials use the same variable name');

  // Check every credential before leasing any: a non-HTTP credential belongs to `vault run`.
  const described = await Promise.all(
    options.uses.map(async (use) => {
      const credential = await vault.credentials.get(use.credential);
      const hosts = parseHosts(credential.metadata.hosts);
      if ('error' in hosts) throw new RangeError(`credential "${use.credential}": ${hosts.error}`);
      if (hosts.hosts.length === 0) {
        throw new RangeError(
          `credential "${use.credential}" names no hosts (metadata.hosts), so the broker cannot use it; ` +
            'set hosts (e.g. "api.stripe.com"), or use `vault run` (scrubbed injection) for non-HTTP credentials',
        );
      }
      return { hosts: hosts.hosts, body: brokersBody(credential.metadata) };
    }),
  );

  const values = new Map<string, string>();
  const leases: Lease[] = [];
  const cleanups: Array<() => Promise<unknown>> = [];
  const cleanup = async () => {
    values.clear();
    await Promise.all(cleanups.splice(0).map((fn) => fn().catch(() => undefined)));
  };
  try {
    const brokered: Brokered[] = [];
    for (const [index, use] of options.uses.entries()) {
      const lease = await vault.leases.create({
        credentialName: use.credential,
        identity: options.agent,
        ttl: options.ttl,
        renewable: false,
        labels: { 'vault.broker': 'true' },
      });
      leases.push(lease);
      cleanups.push(() => vault.leases.revoke(lease.id));
      // Whether creation returns the value depends on the caller's grants; the issuer may read it.
      const value = lease.value ?? (await vault.leases.read(lease.id)).value;
      if (value === undefined) throw new Error(`the server returned no value for lease ${lease.id}`);
      values.set(lease.id, value);
      brokered.push({
        credential: use.credential,
        leaseId: lease.id,
        env: names[index]!,
        placeholder: newPlaceholder(),
        ...described[index]!,
      });
    }

    const pki = await createBrokerPki(
      described.flatMap((d) => d.hosts),
      options.clock(),
    );
    const trust = await writeTrustFiles(pki.caCertPem);
    cleanups.push(() => trust.remove());

    const proxyPassword = randomBytes(24).toString('base64url');
    const proxy = await startProxy({
      credentials: brokered,
      valueOf: (id) => values.get(id),
      forget: (id) => values.delete(id),
      pki,
      proxyPassword,
      allowOtherHosts: options.allowOtherHosts ?? false,
      reporter: createUseReporter(vault.leases),
      ...(options.upstream && { upstream: options.upstream }),
      ...(options.maxBodyBytes !== undefined && { maxBodyBytes: options.maxBodyBytes }),
      ...(options.logger && { logger: options.logger }),
    });
    // The proxy stops first, so no request is in flight while the leases are revoked.
    cleanups.unshift(() => proxy.close());

    return {
      proxyUrl: `http://vault:${proxyPassword}@127.0.0.1:${proxy.port}`,
      port: proxy.port,
      caFile: trust.caFile,
      bundleFile: trust.bundleFile,
      credentials: brokered.map((b, index) => ({
        credential: b.credential,
        leaseId: b.leaseId,
        env: b.env,
        placeholder: b.placeholder,
        hosts: b.hosts.map((h) => (h.port === 443 ? h.host : `${h.host}:${h.port}`)),
        version: leases[index]!.version,
      })),
      secrets: () =>
        brokered.flatMap((b) => {
          const value = values.get(b.leaseId);
          return value === undefined ? [] : [{ name: b.env, value }];
        }),
      async close() {
        const [stop, ...rest] = cleanups.splice(0);
        await stop?.().catch(() => undefined);
        values.clear();
        await Promise.all(rest.map((fn) => fn().catch(() => undefined)));
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** Variables that would hand the agent's command a token, or route around the broker (and every VAULT_BROKER_*). */
const removedFromChild = [
  'VAULT_TOKEN',
  'VAULT_TOKEN_FILE',
  'NO_PROXY',
  'no_proxy',
  'ALL_PROXY',
  'all_proxy',
];

/**
 * The environment of the agent's command: its base environment without Vault tokens, plus a
 * placeholder per credential, the proxy (both spellings: curl reads only the lower-case
 * `http_proxy`) and the broker CA for OpenSSL, curl, Python and Node.
 */
export function childEnvironment(
  base: Record<string, string | undefined>,
  broker: Pick<Broker, 'proxyUrl' | 'caFile' | 'bundleFile' | 'credentials'>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(base)) {
    if (value !== undefined && !removedFromChild.includes(key) && !key.startsWith('VAULT_BROKER_'))
      env[key] = value;
  }
  for (const c of broker.credentials) env[c.env] = c.placeholder;
  for (const name of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy']) env[name] = broker.proxyUrl;
  env.SSL_CERT_FILE = broker.bundleFile;
  env.CURL_CA_BUNDLE = broker.bundleFile;
  env.REQUESTS_CA_BUNDLE = broker.bundleFile;
  env.NODE_EXTRA_CA_CERTS = broker.caFile;
  return env;
}
