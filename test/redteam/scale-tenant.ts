/**
 * A large tenant on a real etcd behind a real `vault server` child process, for the red-team
 * tests of issue 13: the tenant `big` gets a system root token, credentials `bulk` and
 * `filler`, a policy-less agent `mallory` with a token, an agent `bob` allowed to lease
 * `filler`, and `count` lease records written straight into the store with the server stopped
 * (the core's op builder, as test/bench/scale.ts does). A second tenant `small` has its own
 * admin token.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keys } from '../../src/core/keys.js';
import type { LeaseRecord } from '../../src/core/lease-record.js';
import { openStore } from '../../src/store/index.js';
import { bootstrap, type ServerProcess, startServer } from '../crash/vault-server.js';
import { writeLeases } from '../support/bulk-leases.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';

export interface BigTenant {
  etcd: EtcdProcess;
  server: ServerProcess;
  args: string[];
  rootKeyFile: string;
  /** System root token (admin of `big`). */
  root: string;
  /** A token of agent `mallory` with no policies, in `big`. */
  mallory: string;
  /** A token of agent `bob`, who may lease `filler`, in `big`. */
  bob: string;
  /** An admin token of tenant `small`. */
  smallAdmin: string;
  call(
    token: string,
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<Answer>;
  restart(extraArgs?: string[]): Promise<void>;
  destroy(): Promise<void>;
}

export interface Answer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: tests assert on JSON of every shape
  body: any;
  ms: number;
  headers: Headers;
}

export async function startBigTenant(options: {
  bulk: number;
  filler: number;
  serverArgs?: string[];
  /** Labels of every seeded lease (they ride along in each lease event). */
  labels?: Record<string, string>;
}): Promise<BigTenant> {
  const dir = mkdtempSync(join(tmpdir(), 'vault-redteam13-'));
  const rootKeyFile = join(dir, 'root.key');
  writeFileSync(rootKeyFile, randomBytes(32), { mode: 0o600 });
  const etcd = await startEtcd({ maxTxnOps: 1024 });
  const { token: root } = await bootstrap(
    { store: 'etcd', etcdEndpoints: [etcd.endpoint], rootKeyFile },
    'big',
  );
  const args = [
    '--store',
    'etcd',
    '--etcd-endpoints',
    etcd.endpoint,
    '--etcd-max-txn-ops',
    '1024',
    '--root-key-file',
    rootKeyFile,
    '--audit-log',
    'none',
    '--no-ui',
  ];
  let server = await startServer([...args, ...(options.serverArgs ?? [])], 180_000);
  const call = async (
    token: string,
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Answer> => {
    const started = performance.now();
    const res = await fetch(server.url + path, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(300_000),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // text
    }
    return { status: res.status, body: parsed, ms: performance.now() - started, headers: res.headers };
  };
  const must = async (
    token: string,
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ) => {
    const res = await call(token, method, path, body, headers);
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  for (const name of ['bulk', 'filler']) {
    await must(root, 'POST', '/v1/credentials', { name, type: 'generic', value: `v-${name}` });
  }
  await must(root, 'PUT', '/v1/policies/lease-filler', {
    rules: [{ credentials: ['filler'], actions: ['lease', 'reveal'] }],
  });
  await must(root, 'PUT', '/v1/identities/agent/bob', { policies: ['lease-filler'] });
  await must(root, 'PUT', '/v1/identities/agent/mallory', { policies: [] });
  const bob = (
    await must(root, 'POST', '/v1/auth/tokens', {
      identity: { type: 'agent', name: 'bob' },
      policies: ['lease-filler'],
      ttl: '1h',
    })
  ).token as string;
  const mallory = (
    await must(root, 'POST', '/v1/auth/tokens', {
      identity: { type: 'agent', name: 'mallory' },
      policies: [],
      ttl: '1h',
    })
  ).token as string;
  const small = await must(root, 'POST', '/v1/sys/tenants', { id: 'small' });
  const smallAdmin = (small.token ?? small.adminToken?.token ?? small.admin?.token) as string;
  const template = (
    await must(root, 'POST', '/v1/leases', {
      credentialName: 'filler',
      ttl: '1h',
      ...(options.labels ? { labels: options.labels } : {}),
    })
  ).id as string;

  const restart = async (extraArgs: string[] = []) => {
    await server.stop();
    server = await startServer([...args, ...(options.serverArgs ?? []), ...extraArgs], 180_000);
  };
  if (options.bulk + options.filler > 0) {
    await server.stop();
    const store = await openStore({ kind: 'etcd', endpoints: [etcd.endpoint], timeoutMs: 60_000 });
    const record = JSON.parse((await store.get(keys.lease('big', template)))!.value) as LeaseRecord;
    await writeLeases(store, 'big', record, 'bulk', options.bulk);
    await writeLeases(store, 'big', record, 'filler', options.filler);
    await store.close();
    server = await startServer([...args, ...(options.serverArgs ?? [])], 180_000);
  }
  return {
    etcd,
    get server() {
      return server;
    },
    args,
    rootKeyFile,
    root,
    mallory,
    bob,
    smallAdmin,
    call,
    restart,
    async destroy() {
      await server.stop();
      await etcd.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
