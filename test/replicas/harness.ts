/**
 * Several `vault server` processes (the CLI, as operators run it) on one etcd — a single
 * member or a cluster, every member's URL in `--etcd-endpoints` — behind one round-robin
 * address, as the chart's replicas sit behind a Service. The tenant, a credential and a
 * system root token are made through the core before the servers start (`vault server`
 * prints no token).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateRootKeyFile } from '../../src/crypto/root-key.js';
import { type Bootstrap, bootstrap, type ServerProcess, startServer } from '../crash/vault-server.js';
import { type RoundRobinProxy, startRoundRobinProxy } from '../support/round-robin-proxy.js';

export interface Replicas {
  servers: ServerProcess[];
  /** One address for all replicas. */
  proxy: RoundRobinProxy;
  auth: Bootstrap;
  /** `vault server` arguments for the store and root key (to start another replica). */
  storeArgs: string[];
  close(): Promise<void>;
}

export async function startReplicas(options: {
  endpoints: string[];
  count: number;
  tenant?: string;
  extraArgs?: string[];
}): Promise<Replicas> {
  const base = mkdtempSync(join(tmpdir(), 'vault-replicas-'));
  const rootKeyFile = join(base, 'root.key');
  await generateRootKeyFile(rootKeyFile);
  const storeArgs = [
    ...['--store', 'etcd', '--etcd-endpoints', options.endpoints.join(',')],
    ...['--root-key-file', rootKeyFile, '--audit-log', 'none'],
    ...(options.extraArgs ?? []),
  ];
  const auth = await bootstrap(
    { store: 'etcd', etcdEndpoints: options.endpoints, rootKeyFile },
    options.tenant ?? 'replicas',
  );
  const servers = await Promise.all(Array.from({ length: options.count }, () => startServer(storeArgs)));
  const proxy = await startRoundRobinProxy(servers.map((server) => server.url));
  return {
    servers,
    proxy,
    auth,
    storeArgs,
    async close() {
      await proxy.close();
      await Promise.all(servers.map((server) => server.stop()));
      rmSync(base, { recursive: true, force: true });
    },
  };
}

/** JSON over fetch with the given token (and an optional Idempotency-Key). */
export async function call(
  url: string,
  method: string,
  path: string,
  token: string,
  body?: unknown,
  headers: Record<string, string> = {},
  // biome-ignore lint/suspicious/noExplicitAny: tests assert on JSON of every shape
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed };
}

/** Every audit record of the token's tenant, paged by sequence number. */
export async function allAuditRecords(url: string, token: string) {
  const records: Array<{ seq: number; action: string; resource: string; outcome: string; reason?: string }> =
    [];
  for (;;) {
    const after = records.at(-1)?.seq ?? 0;
    const { status, body } = await call(url, 'GET', `/v1/audit?afterSeq=${after}&limit=1000`, token);
    if (status !== 200) throw new Error(`audit query answered ${status}: ${JSON.stringify(body)}`);
    const page = body.records as typeof records;
    if (page.length === 0) return records;
    records.push(...page);
  }
}

/** Every lease of the tenant, walking the pages. */
export async function allLeases(url: string, token: string) {
  const leases: Array<{ id: string; state: string; credentialName: string }> = [];
  let next: string | undefined;
  do {
    const query = `/v1/leases?limit=500${next ? `&continue=${encodeURIComponent(next)}` : ''}`;
    const { status, body } = await call(url, 'GET', query, token);
    if (status !== 200) throw new Error(`lease list answered ${status}: ${JSON.stringify(body)}`);
    leases.push(...body.leases);
    next = body.continue;
  } while (next);
  return leases;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
