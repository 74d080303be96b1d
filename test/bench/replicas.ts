/**
 * Scale-out benchmark (issue 13): lease creation and lease-value reads over HTTP against
 *   1×1  one etcd member, one API replica (the baseline)
 *   3×1  a 3-member etcd cluster, one API replica
 *   1×3  one etcd member, three API replicas behind one round-robin address
 *   3×3  a 3-member etcd cluster, three API replicas
 * at 1, 16 and 64 clients, side by side in one run: the topologies take turns within each
 * round, so background load falls on all of them alike. Every API replica is a real
 * `vault server` process (the CLI, --audit-log none); etcd members are real processes on
 * loopback; the client runs in a worker thread. Lease creation and value reads use one tenant
 * and one credential, so every replica appends to the same audit chain; a third phase spreads
 * lease creation over BENCH_TENANTS tenants (one chain each, caller i on tenant i mod N).
 * Not a test: it prints numbers and never fails on them.
 *
 *   npm run bench:replicas
 *   BENCH_SECONDS=4 BENCH_ROUNDS=2 BENCH_CLIENTS=1,16,64 BENCH_TENANTS=16 \
 *     BENCH_TOPOLOGIES=1x1,3x1,1x3,3x3 npm run bench:replicas
 *   BENCH_SHARED_PORT=1 ...   # replicas share one port (node:cluster), no proxy in between
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateRootKeyFile } from '../../src/crypto/root-key.js';
import { type Bootstrap, bootstrap, type ServerProcess, startServer } from '../crash/vault-server.js';
import { startEtcd } from '../support/etcd.js';
import { startEtcdCluster } from '../support/etcd-cluster.js';
import { type RoundRobinProxy, startRoundRobinProxy } from '../support/round-robin-proxy.js';
import { jsonClient } from './http-client.js';
import { type LoadResult, mergeResults, runHttpLoad } from './load.js';

const env = process.env;
const seconds = Number(env.BENCH_SECONDS ?? 4);
const rounds = Number(env.BENCH_ROUNDS ?? 2);
const clientCounts = (env.BENCH_CLIENTS ?? '1,16,64').split(',').map(Number);
const wanted = new Set((env.BENCH_TOPOLOGIES ?? '1x1,3x1,1x3,3x3').split(','));
/** Replicas share one port through node:cluster instead of sitting behind the round-robin proxy. */
const sharedPort = env.BENCH_SHARED_PORT === '1';
const sharedPortLauncher = fileURLToPath(new URL('./shared-port.mjs', import.meta.url));
/** Tenants of the spread-out phase: caller i writes to tenant i mod N (separate audit chains). */
const tenantCount = Number(env.BENCH_TENANTS ?? 16);

interface Topology {
  name: string;
  members: number;
  replicas: number;
  url: string;
  auth: Bootstrap;
  /** A token of each of `tenantCount` tenants, each with the same credential. */
  tenantTokens: string[];
  leaseId: string;
  servers: ServerProcess[];
  proxy?: RoundRobinProxy;
}

const base = mkdtempSync(join(tmpdir(), 'vault-bench-replicas-'));
const rootKeyFile = join(base, 'root.key');
await generateRootKeyFile(rootKeyFile);
const single = await startEtcd();
const cluster = await startEtcdCluster({ size: 3 });
const topologies: Topology[] = [];

async function setUp(members: number, replicas: number): Promise<Topology> {
  const name = `${members}x${replicas}`;
  const endpoints = members === 1 ? [single.endpoint] : cluster.endpoints;
  const prefix = `bench-${name}/`;
  const auth = await bootstrap(
    { store: 'etcd', etcdEndpoints: endpoints, etcdPrefix: prefix, rootKeyFile },
    'bench',
  );
  const args = [
    ...['--store', 'etcd', '--etcd-endpoints', endpoints.join(','), '--etcd-prefix', prefix],
    ...['--root-key-file', rootKeyFile, '--audit-log', 'none'],
  ];
  const tenantTokens = [];
  for (let i = 0; i < tenantCount; i++) {
    const config = { store: 'etcd', etcdEndpoints: endpoints, etcdPrefix: prefix, rootKeyFile };
    tenantTokens.push((await bootstrap(config, `bench-${i}`)).token);
  }
  // BENCH_SHARED_PORT=1: the replicas share one port through node:cluster, no proxy between.
  const servers =
    sharedPort && replicas > 1
      ? [await startServer(args, 60_000, [], [sharedPortLauncher, String(replicas)])]
      : await Promise.all(Array.from({ length: replicas }, () => startServer(args)));
  const proxy = servers.length > 1 ? await startRoundRobinProxy(servers.map((s) => s.url)) : undefined;
  const url = proxy?.url ?? servers[0]!.url;
  const client = jsonClient(url, { token: auth.token });
  const lease = await client.request('POST', '/v1/leases', {
    credentialName: auth.credentialName,
    ttl: '24h',
  });
  client.close();
  if (lease.status !== 201) throw new Error(`${name}: lease creation answered ${lease.status}`);
  return {
    name,
    members,
    replicas,
    url,
    auth,
    tenantTokens,
    leaseId: (lease.body as { id: string }).id,
    servers,
    ...(proxy ? { proxy } : {}),
  };
}

type Op = 'create' | 'tenants' | 'affinity' | 'read';
// BENCH_AFFINITY=1 adds the spread-out phase with each tenant's callers on one replica (each
// caller straight to its tenant's replica, as a load balancer with affinity by tenant sends them).
const ops: Op[] = [
  'create',
  'tenants',
  ...(env.BENCH_AFFINITY === '1' ? (['affinity'] as const) : []),
  'read',
];
const label: Record<Op, string> = {
  create: 'lease create',
  tenants: `create, ${tenantCount}t`,
  affinity: `${tenantCount}t, affinity`,
  read: 'value read',
};
const results = new Map<string, LoadResult[]>();
const key = (op: Op, clients: number, topology: string) => `${op}/${clients}/${topology}`;

async function phase(topology: Topology, op: Op, clients: number): Promise<void> {
  const result = await runHttpLoad({
    url: topology.url,
    ...(op === 'tenants' || op === 'affinity'
      ? { tokens: topology.tenantTokens }
      : { token: topology.auth.token }),
    // Caller i writes to tenant i mod N; with affinity, tenant t's replica is t mod replicas.
    ...(op === 'affinity'
      ? { urls: topology.tenantTokens.map((_, t) => topology.servers[t % topology.servers.length]!.url) }
      : {}),
    concurrency: clients,
    maxOps: 200_000,
    maxMs: seconds * 1000,
    warmupOps: Math.max(clients, 20),
    ...(op !== 'read'
      ? {
          method: 'POST',
          path: '/v1/leases',
          body: { credentialName: topology.auth.credentialName, ttl: '1h' },
          expectStatus: 201,
        }
      : { method: 'GET', path: `/v1/leases/${topology.leaseId}/value`, expectStatus: 200 }),
  });
  const list = results.get(key(op, clients, topology.name)) ?? [];
  list.push(result);
  results.set(key(op, clients, topology.name), list);
}

const pad = (text: string, width: number) => text.padStart(width);

function report() {
  const names = topologies.map((t) => t.name);
  const header = `${'operation'.padEnd(14)}${pad('clients', 8)}${names.map((n) => pad(`${n} /s`, 11) + pad('p99 ms', 8) + pad('×1x1', 7)).join('')}  errors`;
  console.log(`\n${header}\n${'-'.repeat(header.length)}`);
  for (const op of ops) {
    for (const clients of clientCounts) {
      const merged = names.map((name) => mergeResults(results.get(key(op, clients, name)) ?? []));
      const baseline = merged[names.indexOf('1x1')]?.perSecond;
      const cells = merged.map(
        (r) =>
          pad(r.perSecond.toFixed(0), 11) +
          pad(Number.isNaN(r.p99Ms) ? '-' : r.p99Ms.toFixed(0), 8) +
          pad(baseline ? `${(r.perSecond / baseline).toFixed(2)}` : '-', 7),
      );
      const errors = merged
        .map((r, i) => (r.errors ? `${names[i]}: ${JSON.stringify(r.outcomes)}` : ''))
        .filter(Boolean)
        .join('; ');
      console.log(`${label[op].padEnd(14)}${pad(String(clients), 8)}${cells.join('')}  ${errors}`);
    }
  }
}

try {
  // MxN: M etcd members (1 or 3), N API replicas; 1x1 (the baseline) first.
  for (const name of ['1x1', ...[...wanted].filter((name) => name !== '1x1')]) {
    const match = /^([13])x([1-9])$/.exec(name);
    if (!match) throw new Error(`BENCH_TOPOLOGIES: "${name}" is not MxN with M 1 or 3 and N 1 to 9`);
    if (wanted.has(name)) topologies.push(await setUp(Number(match[1]), Number(match[2])));
  }
  const started = Date.now();
  for (let round = 1; round <= rounds; round++) {
    for (const clients of clientCounts) {
      for (const op of ops) {
        // Rotate who goes first, so no topology always runs right after another's load.
        const order = topologies.map((_, i) => topologies[(i + round) % topologies.length]!);
        for (const topology of order) await phase(topology, op, clients);
      }
    }
    console.log(`round ${round}/${rounds} done after ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
  const [load1] = loadavg();
  console.log(
    `\n${rounds} interleaved rounds of ${seconds} s per phase; root tokens; ` +
      `${cpus().length} CPUs (${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ` +
      `shared by the client, every vault server and etcd process and anything else running ` +
      `(load average ${load1!.toFixed(1)} at the end); node ${process.version}`,
  );
  report();
} finally {
  for (const topology of topologies) {
    await topology.proxy?.close();
    for (const server of topology.servers) await server.stop();
  }
  await cluster.destroy();
  await single.destroy();
  rmSync(base, { recursive: true, force: true });
}
