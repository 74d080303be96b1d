/**
 * API benchmark (issue 2), side by side in one run on one machine:
 *   (a) lease creations over HTTP on etcd vs raw etcd transactions (one put with a compare)
 *   (b) credential metadata reads (GET /v1/credentials/:name) vs an express hello-world
 *   (c) lease creations with audit on vs off
 * at the same concurrency, each phase bounded by a count and a time limit.
 *
 *   npx tsx test/bench/api.ts
 *   BENCH_CONCURRENCY=16 BENCH_OPS=3000 BENCH_SECONDS=15 BENCH_ONLY=raw,lease npx tsx test/bench/api.ts
 *
 * The API runs in this process (as `vault server --store etcd --audit-log none` wires it);
 * the HTTP client runs in a worker thread; etcd is a real process. Not a test: it prints
 * numbers and never fails on them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import express from 'express';
import { type CoreConfig, createVaultCore, type VaultCore } from '../../src/core/index.js';
import { sealedPrefixes } from '../../src/core/keys.js';
import { createKeyring } from '../../src/crypto/keyring.js';
import { generateRootKeyFile, rootKeyFromFile } from '../../src/crypto/root-key.js';
import { silentLogger } from '../../src/lib/logger.js';
import { createApp } from '../../src/server/app.js';
import { parseServerConfig } from '../../src/server/config.js';
import { startVault } from '../../src/server/vault-process.js';
import { openStore } from '../../src/store/index.js';
import type { Op, Store } from '../../src/store/store.js';
import { etcdClientOptions, startEtcd } from '../support/etcd.js';
import { jsonClient } from './http-client.js';
import { type LoadLimits, type LoadResult, mergeResults, runHttpLoad, runLoad } from './load.js';
import { bootstrapTenant, CREDENTIAL, listen } from './vault-fixture.js';

const env = process.env;
const limits: LoadLimits = {
  concurrency: Number(env.BENCH_CONCURRENCY ?? 16),
  maxOps: Number(env.BENCH_OPS ?? 3000),
  maxMs: Number(env.BENCH_SECONDS ?? 15) * 1000,
  warmupOps: Number(env.BENCH_WARMUP ?? 200),
};
const only = env.BENCH_ONLY ? new Set(env.BENCH_ONLY.split(',')) : undefined;
const want = (phase: string) => !only || only.has(phase);

const results = new Map<string, LoadResult>();
/** Each phase's rounds, for ratios taken round by round (same moment, same background load). */
const roundResults = new Map<string, LoadResult[]>();
let storeCalls: Record<string, Record<string, number>> | undefined;

interface Served {
  url: string;
  core: VaultCore;
  close(): Promise<void>;
}

/**
 * A store that drops audit records and the chain head, counting what it dropped: a fallback
 * for "audit off" if the core's `config.audit: false` does not reach the committer.
 */
function withoutAuditRecords(store: Store, dropped: { ops: number }): Store {
  const isAudit = (key: string) => /\/audit\/|\/audit-head$/.test(key);
  const keep = (op: Op) => {
    if (op.type === 'put' && isAudit(op.key)) {
      dropped.ops += 1;
      return false;
    }
    return true;
  };
  return {
    kind: store.kind,
    maxTxnOps: store.maxTxnOps,
    get: (key) => store.get(key),
    range: (prefix, options) => store.range(prefix, options),
    count: (prefix, options) => store.count(prefix, options),
    watch: (prefix, from, onEvent) => store.watch(prefix, from, onEvent),
    ping: () => store.ping(),
    close: () => store.close(),
    txn: (txn) =>
      store.txn({
        ...txn,
        compare: txn.compare?.filter((compare) => !isAudit(compare.key)),
        success: txn.success.filter(keep),
      }),
  };
}

/** Counts store calls by operation and record kind, to show how many etcd requests one API operation costs. */
function countingStore(store: Store, counts: Record<string, number>): Store {
  // "/vault/t/<tenant>/credentials/x" → "credentials"; "/vault/tokens/<hash>" → "tokens".
  const kindOf = (key: string) => /^\/vault\/(?:t\/[^/]+\/)?([^/]+)/.exec(key)?.[1] ?? key;
  const count = (what: string) => {
    counts[what] = (counts[what] ?? 0) + 1;
  };
  return {
    kind: store.kind,
    maxTxnOps: store.maxTxnOps,
    get: (key) => {
      count(`get ${kindOf(key)}`);
      return store.get(key);
    },
    range: (prefix, options) => {
      count(`range ${kindOf(prefix)}`);
      return store.range(prefix, options);
    },
    count: (prefix, options) => {
      count(`count ${kindOf(prefix)}`);
      return store.count(prefix, options);
    },
    txn: (txn) => {
      count('txn');
      return store.txn(txn);
    },
    watch: (prefix, from, onEvent) => store.watch(prefix, from, onEvent),
    ping: () => store.ping(),
    close: () => store.close(),
  };
}

/** The same wiring as startVault, over a wrapped store and with core settings startVault does not expose. */
async function serveCustom(
  endpoint: string,
  rootKeyFile: string,
  wrap: (store: Store) => Store,
  config: Partial<CoreConfig> = {},
): Promise<Served> {
  const store = wrap(await openStore({ kind: 'etcd', endpoints: [endpoint], logger: silentLogger }));
  const keyring = createKeyring({
    store,
    roots: [await rootKeyFromFile(rootKeyFile)],
    sealedPrefixes,
    logger: silentLogger,
  });
  const core = createVaultCore({ store, keyring, logger: silentLogger, config });
  const { app } = createApp({ core, keyring, logger: silentLogger });
  const server = createServer(app);
  const url = await listen(server);
  return {
    url,
    core,
    async close() {
      server.closeAllConnections();
      await new Promise((done) => server.close(done));
      await store.close();
    },
  };
}

/** Store calls per request of one kind, sequentially (caches warm), from a counting instance. */
async function storeCallsPerRequest(
  served: Served,
  counts: Record<string, number>,
  token: string,
  readerToken: string,
) {
  const client = jsonClient(served.url, { token, maxSockets: 1 });
  const reader = jsonClient(served.url, { token: readerToken, maxSockets: 1 });
  const per = async (method: string, path: string, body?: unknown, n = 50, as = client) => {
    await as.request(method, path, body);
    for (const key of Object.keys(counts)) delete counts[key];
    for (let i = 0; i < n; i++) await as.request(method, path, body);
    return Object.fromEntries(Object.entries(counts).map(([kind, c]) => [kind, c / n]));
  };
  try {
    return {
      'lease create': await per('POST', '/v1/leases', leaseBody),
      'credential read': await per('GET', `/v1/credentials/${CREDENTIAL}`),
      'lease value read': await (async () => {
        const lease = await reader.request('POST', '/v1/leases', leaseBody);
        const id = (lease.body as { id: string }).id;
        return per('GET', `/v1/leases/${id}/value`, undefined, 50, reader);
      })(),
    };
  } finally {
    client.close();
    reader.close();
  }
}

interface Phase {
  name: string;
  run(limits: LoadLimits): Promise<LoadResult>;
}

const leaseBody = { credentialName: CREDENTIAL, ttl: '15m' };

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'vault-bench-'));
  const etcd = await startEtcd();
  const rootKeyFile = join(work, 'root.key');
  await generateRootKeyFile(rootKeyFile);
  const serverConfig = (auditLog: string) =>
    parseServerConfig({
      store: 'etcd',
      etcdEndpoints: [etcd.endpoint],
      rootKeyFile,
      listen: '127.0.0.1:0',
      auditLog,
      logLevel: 'silent',
    });
  const closers: Array<() => Promise<void>> = [];
  const phases: Phase[] = [];
  const http = (
    url: string,
    method: 'GET' | 'POST',
    path: string,
    auth: { token?: string; tokens?: string[] },
  ) => {
    const expectStatus = method === 'POST' ? 201 : 200;
    const body = method === 'POST' ? leaseBody : undefined;
    return (phaseLimits: LoadLimits) =>
      runHttpLoad({ ...phaseLimits, url, method, path, ...auth, expectStatus, ...(body ? { body } : {}) });
  };
  const dropped = { ops: 0 };
  let finished = false;
  try {
    // Set everything up first, so the phases can run in interleaved rounds: background load
    // on a shared machine then affects every phase alike instead of whichever ran at the time.
    if (want('raw')) {
      const client = new Etcd3(etcdClientOptions(etcd));
      closers.push(async () => client.close());
      // About the size of a lease record; one compare and one put, as a create-if-absent.
      const value = JSON.stringify({ pad: 'x'.repeat(480) });
      let seq = 0;
      phases.push({
        name: 'raw etcd txn (compare + put)',
        run: (phaseLimits) =>
          runLoad(phaseLimits, async () => {
            const key = `/bench/raw/${seq++}`;
            const res = await client.if(key, 'Mod', '==', 0).then(client.put(key).value(value)).commit();
            if (!res.succeeded) throw new Error('compare failed');
          }),
      });
    }

    const vault = await startVault(serverConfig('none'), silentLogger);
    closers.push(() => vault.close());
    if (want('lease')) {
      const token = await bootstrapTenant(vault.core, 'bench-lease');
      phases.push({
        name: 'lease create (HTTP, etcd)',
        run: http(vault.url, 'POST', '/v1/leases', { token }),
      });
    }
    if (want('read')) {
      const token = await bootstrapTenant(vault.core, 'bench-read');
      phases.push({
        name: 'credential metadata read (HTTP, etcd)',
        run: http(vault.url, 'GET', `/v1/credentials/${CREDENTIAL}`, { token }),
      });
    }
    if (want('hello')) {
      const app = express();
      app.disable('x-powered-by');
      app.get('/hello', (_req, res) => {
        res.json({ hello: 'world' });
      });
      const server = createServer(app);
      const url = await listen(server);
      closers.push(async () => {
        server.closeAllConnections();
        await new Promise((done) => server.close(done));
      });
      phases.push({ name: 'express hello-world', run: http(url, 'GET', '/hello', {}) });
    }
    if (want('audit')) {
      const withSink = await startVault(serverConfig(join(work, 'audit.log')), silentLogger);
      closers.push(() => withSink.close());
      const token = await bootstrapTenant(withSink.core, 'bench-audit-on');
      phases.push({
        name: 'lease create, audit on (chain + JSON-lines file)',
        run: http(withSink.url, 'POST', '/v1/leases', { token }),
      });
      const off = await serveCustom(
        etcd.endpoint,
        rootKeyFile,
        (store) => withoutAuditRecords(store, dropped),
        { audit: false },
      );
      closers.push(() => off.close());
      const offToken = await bootstrapTenant(off.core, 'bench-audit-off');
      phases.push({
        name: 'lease create, audit off (no records, no stream)',
        run: http(off.url, 'POST', '/v1/leases', { token: offToken }),
      });
    }
    if (want('tenants')) {
      // Diagnostic: the audit chain orders commits per tenant; here each caller has its own tenant.
      const tokens: string[] = [];
      for (let i = 0; i < limits.concurrency; i++)
        tokens.push(await bootstrapTenant(vault.core, `bench-t${i}`));
      phases.push({
        name: `lease create, ${limits.concurrency} tenants`,
        run: http(vault.url, 'POST', '/v1/leases', { tokens }),
      });
    }

    if (want('calls')) {
      const counts: Record<string, number> = {};
      const counting = await serveCustom(etcd.endpoint, rootKeyFile, (store) => countingStore(store, counts));
      closers.push(() => counting.close());
      storeCalls = await storeCallsPerRequest(
        counting,
        counts,
        await bootstrapTenant(counting.core, 'bench-calls'),
        await bootstrapTenant(counting.core, 'bench-calls-read', 'workload'),
      );
    }

    const rounds = Math.max(1, Number(env.BENCH_ROUNDS ?? 5));
    const perRound: LoadLimits = {
      ...limits,
      maxOps: Math.ceil(limits.maxOps / rounds),
      maxMs: limits.maxMs / rounds,
    };
    const collected = new Map<string, LoadResult[]>(phases.map((p) => [p.name, []]));
    for (let round = 1; round <= rounds; round++) {
      for (const p of phases) {
        const result = await p.run({ ...perRound, warmupOps: round === 1 ? limits.warmupOps : 0 });
        collected.get(p.name)!.push(result);
        process.stderr.write(`round ${round}/${rounds}: ${p.name}: ${result.perSecond.toFixed(0)}/s\n`);
        if (result.errors > 0) {
          process.stderr.write(
            `  ${result.errors} errors, outcomes ${JSON.stringify(result.outcomes)}; first: ${result.firstError}\n`,
          );
        }
      }
    }
    for (const [name, list] of collected) {
      results.set(name, mergeResults(list));
      roundResults.set(name, list);
    }
    finished = true;
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await etcd.destroy();
    rmSync(work, { recursive: true, force: true });
  }
  if (finished) report(dropped.ops);
}

function report(auditOpsDropped: number) {
  const rows = [...results.entries()];
  const width = Math.max(...rows.map(([name]) => name.length), 10);
  const line = (cells: string[]) =>
    `${cells[0]!.padEnd(width)}  ${cells
      .slice(1)
      .map((cell) => cell.padStart(9))
      .join('  ')}`;
  const [load1] = loadavg();
  console.log(
    `\nconcurrency ${limits.concurrency}, up to ${limits.maxOps} ops or ${limits.maxMs / 1000} s per phase ` +
      `(in ${env.BENCH_ROUNDS ?? 5} interleaved rounds); ${cpus().length} CPUs shared by the client ` +
      `(worker thread), the API (main thread), etcd and anything else running (load average ${load1!.toFixed(1)}); ` +
      `node ${process.version}\n`,
  );
  console.log(line(['phase', 'ops', 'ops/s', 'p50 ms', 'p99 ms', 'errors']));
  for (const [name, r] of rows) {
    console.log(
      line([
        name,
        String(r.ops),
        r.perSecond.toFixed(0),
        r.p50Ms.toFixed(2),
        r.p99Ms.toFixed(2),
        String(r.errors),
      ]),
    );
  }
  const find = <T>(map: Map<string, T>, prefix: string) =>
    [...map.entries()].find(([name]) => name.startsWith(prefix))?.[1];
  const ratio = (a: string, b: string, goal: number, label: string) => {
    const x = find(results, a);
    const y = find(results, b);
    const xs = find(roundResults, a);
    const ys = find(roundResults, b);
    if (!x || !y || !xs || !ys) return;
    // The median of per-round ratios resists background load that changed between rounds.
    const perRound = xs.map((round, i) => round.perSecond / ys[i]!.perSecond).sort((p, q) => p - q);
    const median = perRound[Math.floor(perRound.length / 2)]!;
    const overall = x.perSecond / y.perSecond;
    console.log(
      `${label.padEnd(40)} ${median.toFixed(2)}x median of rounds [${perRound.map((r) => r.toFixed(2)).join(' ')}], ` +
        `${overall.toFixed(2)}x overall  (goal >= ${goal}x: ${median >= goal ? 'met' : 'NOT met'})`,
    );
  };
  console.log('');
  ratio('lease create (HTTP', 'raw etcd', 0.5, 'lease issuance / raw etcd txn');
  ratio('credential metadata read', 'express hello', 0.4, 'credential reads / express hello-world');
  ratio('lease create, audit on', 'lease create, audit off', 0.85, 'audit on / audit off');
  if (storeCalls) {
    console.log('\nstore calls per request (sequential, caches warm):');
    for (const [request, counts] of Object.entries(storeCalls)) {
      const text = Object.entries(counts)
        .map(([kind, n]) => `${n.toFixed(1)} ${kind}`)
        .join(', ');
      console.log(`  ${request.padEnd(16)} ${text}`);
    }
  }
  if (auditOpsDropped > 0) {
    console.log(
      `note: the core's config.audit=false did not stop audit writes; the store wrapper dropped ${auditOpsDropped}`,
    );
  }
}

await main();
