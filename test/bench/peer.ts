/**
 * The peer comparison (issue 13), side by side in one run on one machine, with one load
 * generator (test/bench/load.ts: closed loop, keep-alive, a worker thread):
 *
 *   this product                          baseline
 *   lease creation on etcd                HashiCorp Vault's token creation (Raft, file audit)
 *   lease-value read on etcd              HashiCorp Vault's KV v2 read (Raft, file audit)
 *   lease creation on etcd                a raw etcd transaction from Go's client, and Node's
 *   lease-value read on etcd              an express hello-world (the HTTP limit)
 *   lease creation, embedded store        a raw SQLite transaction with the same durability
 *
 *   npm run bench:peer
 *   BENCH_CLIENTS=16 BENCH_ROUNDS=3 BENCH_SECONDS=5 BENCH_OPS=3000 npm run bench:peer
 *   BENCH_BASELINES=etcd-txn,peer npm run bench:peer  # with the peer (a cold build; see below)
 *   BENCH_ONLY=value,hello npm run bench:peer        # phases whose names contain a word
 *   BENCH_CPU_PROFILE=/tmp/prof npm run bench:peer   # a CPU profile of the server's thread per phase
 *
 * Every phase runs once per round and the rounds interleave, so background load falls on all
 * alike; ratios are the median of the per-round ratios. Both products write an audit log file
 * and commit every audited call durably (etcd and Raft fsync; SQLite synchronous=FULL). The
 * peer and the Go baseline are built from the Go module proxy by test/assets/bench-peers.sh
 * (cached; the peer takes many minutes when cold); without them their phases are skipped.
 * The peer builds from the module proxy as HashiCorp Vault 1.16.0 with its sdk at the release
 * commit (a pseudo-version the proxy serves; see bench-peers.sh).
 * Not a test: it prints numbers and never fails on them.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { Session } from 'node:inspector/promises';
import { findSourceMap, type SourceMapping } from 'node:module';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Etcd3 } from 'etcd3';
import express from 'express';
import { generateRootKeyFile } from '../../src/crypto/root-key.js';
import { silentLogger } from '../../src/lib/logger.js';
import { parseServerConfig } from '../../src/server/config.js';
import { startVault, type VaultProcess } from '../../src/server/vault-process.js';
import { etcdClientOptions, freePort, startEtcd } from '../support/etcd.js';
import { type LoadLimits, type LoadResult, mergeResults, runHttpLoad, runLoad } from './load.js';
import { bootstrapTenant, CREDENTIAL, listen } from './vault-fixture.js';

const env = process.env;
const limits: LoadLimits = {
  concurrency: Number(env.BENCH_CLIENTS ?? 16),
  maxOps: Number(env.BENCH_OPS ?? 3000),
  maxMs: Number(env.BENCH_SECONDS ?? 5) * 1000,
  warmupOps: Number(env.BENCH_WARMUP ?? 200),
};
const rounds = Math.max(1, Number(env.BENCH_ROUNDS ?? 3));
const repoRoot = join(import.meta.dirname, '../..');
const leaseSizedValue = JSON.stringify({ pad: 'x'.repeat(480) });

interface Phase {
  name: string;
  run(limits: LoadLimits): Promise<LoadResult>;
  /** Served by another process (the Go client, the peer): no CPU of this thread to report. */
  elsewhere?: boolean;
}

/**
 * CPU time (ms) used by this process's main thread, where the servers under test (and the raw
 * Node baselines) run; the HTTP load runs in a worker. Unlike a rate, it hardly moves with the
 * load other processes put on the machine. Linux only (undefined elsewhere).
 */
function mainThreadCpuMs(): number | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime (fields 14 and 15), in clock ticks of 1/100 s (USER_HZ on Linux).
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}

/** The binaries test/assets/bench-peers.sh builds (or finds in its cache), by name. */
function benchBinaries(): Record<string, string> {
  // The peer does not build from the module proxy today (see docs/development/benchmarks.md):
  // ask for it with BENCH_BASELINES=etcd-txn,peer.
  const wanted = (env.BENCH_BASELINES ?? 'etcd-txn').split(',').filter(Boolean);
  if (wanted.length === 0) return {};
  try {
    const out = execFileSync('bash', [join(repoRoot, 'test/assets/bench-peers.sh'), ...wanted], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    return Object.fromEntries(
      out
        .trim()
        .split('\n')
        .map((line) => line.split('=', 2) as [string, string]),
    );
  } catch (err) {
    console.error(`the baselines could not be built, their phases are skipped: ${(err as Error).message}`);
    return {};
  }
}

/** What the peer's API answers, as far as the set-up reads it. */
interface PeerBody {
  root_token?: string;
  keys_base64?: string[];
  auth?: { client_token: string };
}

/** HashiCorp Vault as a server: Raft storage, a file audit device, KV v2, a non-root token. */
async function startPeer(binary: string, dir: string) {
  const port = await freePort();
  const clusterPort = await freePort();
  const url = `http://127.0.0.1:${port}`;
  mkdirSync(join(dir, 'raft'), { recursive: true });
  writeFileSync(
    join(dir, 'peer.hcl'),
    [
      `storage "raft" {\n  path = "${join(dir, 'raft')}"\n  node_id = "bench"\n}`,
      `listener "tcp" {\n  address = "127.0.0.1:${port}"\n  tls_disable = true\n}`,
      `api_addr = "${url}"`,
      `cluster_addr = "http://127.0.0.1:${clusterPort}"`,
      'disable_mlock = true',
      'ui = false',
    ].join('\n'),
  );
  const child = spawn(binary, ['server', `-config=${join(dir, 'peer.hcl')}`, '-log-level=warn'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const call = async (method: string, path: string, body?: unknown, token?: string) => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { ...(token ? { 'x-vault-token': token } : {}), 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : {}) as PeerBody };
  };
  const until = async (what: string, check: () => Promise<boolean>) => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (await check().catch(() => false)) return;
      if (Date.now() > deadline) throw new Error(`the peer: ${what} timed out; its log: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  };
  try {
    await until('start', async () => (await call('GET', '/v1/sys/seal-status')).status === 200);
    const init = await call('PUT', '/v1/sys/init', { secret_shares: 1, secret_threshold: 1 });
    const root = init.body.root_token!;
    await call('PUT', '/v1/sys/unseal', { key: init.body.keys_base64![0] });
    await until('unseal and elect itself', async () => (await call('GET', '/v1/sys/health')).status === 200);
    const setup = async (method: string, path: string, body: unknown) => {
      const res = await call(method, path, body, root);
      if (res.status >= 300) throw new Error(`the peer: ${method} ${path}: ${JSON.stringify(res.body)}`);
      return res;
    };
    await setup('PUT', '/v1/sys/audit/file', {
      type: 'file',
      options: { file_path: join(dir, 'audit.log') },
    });
    await setup('POST', '/v1/sys/mounts/secret', { type: 'kv', options: { version: '2' } });
    // KV v2 upgrades its mount in the background first.
    await until(
      'KV v2 mount',
      async () =>
        (await call('POST', '/v1/secret/data/bench', { data: { value: 'sk_bench_0123456789abcdef' } }, root))
          .status === 200,
    );
    await setup('PUT', '/v1/sys/policies/acl/bench', {
      policy:
        'path "secret/data/bench" { capabilities = ["read"] }\n' +
        'path "auth/token/create" { capabilities = ["create", "update"] }',
    });
    const minted = await setup('POST', '/v1/auth/token/create', { policies: ['bench'], ttl: '2h' });
    return {
      url,
      token: minted.body.auth!.client_token,
      async close() {
        child.kill('SIGKILL');
        await new Promise((resolve) => child.once('exit', resolve));
      },
    };
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
}

/** Go's etcd client under the same closed loop: one process per round. */
function goEtcdTxn(binary: string, endpoint: string): Phase['run'] {
  let run = 0;
  return async (phaseLimits) => {
    const out = execFileSync(
      binary,
      [
        `-endpoint=${endpoint}`,
        `-concurrency=${phaseLimits.concurrency}`,
        `-ops=${phaseLimits.maxOps}`,
        `-seconds=${phaseLimits.maxMs / 1000}`,
        `-warmup=${phaseLimits.warmupOps}`,
        `-prefix=/bench/go/${run++}`,
      ],
      { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
    );
    const parsed = JSON.parse(out) as {
      latencies: number[];
      errors: number;
      firstError?: string;
      elapsedMs: number;
    };
    const sorted = Float64Array.from(parsed.latencies).sort();
    const at = (q: number) =>
      sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
    return {
      ops: parsed.latencies.length,
      errors: parsed.errors,
      outcomes: { ok: parsed.latencies.length, failed: parsed.errors },
      elapsedMs: parsed.elapsedMs,
      perSecond: (parsed.latencies.length / parsed.elapsedMs) * 1000,
      p50Ms: at(0.5),
      p99Ms: at(0.99),
      ...(parsed.firstError ? { firstError: parsed.firstError } : {}),
      latencies: parsed.latencies,
    };
  };
}

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'vault-bench-peer-'));
  const binaries = benchBinaries();
  const closers: Array<() => Promise<void>> = [];
  const phases: Phase[] = [];
  const http = (url: string, method: 'GET' | 'POST', path: string, token: string, body?: unknown) => {
    const expectStatus = method === 'POST' && !path.startsWith('/v1/auth/') ? 201 : 200;
    return (phaseLimits: LoadLimits) =>
      runHttpLoad({ ...phaseLimits, url, method, path, token, expectStatus, ...(body ? { body } : {}) });
  };
  const etcd = await startEtcd();
  closers.push(() => etcd.destroy());
  try {
    const rootKeyFile = join(work, 'root.key');
    await generateRootKeyFile(rootKeyFile);
    const serve = async (
      store: { store: 'etcd'; etcdEndpoints: string[] } | { store: 'embedded'; dataDir: string },
    ) => {
      const vault: VaultProcess = await startVault(
        parseServerConfig({
          ...store,
          rootKeyFile,
          listen: '127.0.0.1:0',
          auditLog: join(work, `audit-${store.store}.log`),
          logLevel: 'silent',
        }),
        silentLogger,
      );
      closers.push(() => vault.close());
      return vault;
    };

    // This product on etcd: lease creation (an agent) and value reads (a workload reading its lease).
    const onEtcd = await serve({ store: 'etcd', etcdEndpoints: [etcd.endpoint] });
    const creator = await bootstrapTenant(onEtcd.core, 'bench-create');
    phases.push({
      name: 'lease create (etcd)',
      run: http(onEtcd.url, 'POST', '/v1/leases', creator, { credentialName: CREDENTIAL, ttl: '15m' }),
    });
    const reader = await bootstrapTenant(onEtcd.core, 'bench-read', 'workload');
    const lease = await fetch(`${onEtcd.url}/v1/leases`, {
      method: 'POST',
      headers: { authorization: `Bearer ${reader}`, 'content-type': 'application/json' },
      body: JSON.stringify({ credentialName: CREDENTIAL, ttl: '1h' }),
    }).then((res) => res.json() as Promise<{ id: string }>);
    phases.push({
      name: 'lease value read (etcd)',
      run: http(onEtcd.url, 'GET', `/v1/leases/${lease.id}/value`, reader),
    });

    const raw = new Etcd3(etcdClientOptions(etcd));
    closers.push(async () => raw.close());
    let seq = 0;
    phases.push({
      name: 'raw etcd txn (Node client)',
      run: (phaseLimits) =>
        runLoad(phaseLimits, async () => {
          const key = `/bench/node/${seq++}`;
          const res = await raw.if(key, 'Create', '==', 0).then(raw.put(key).value(leaseSizedValue)).commit();
          if (!res.succeeded) throw new Error('compare failed');
        }),
    });
    if (binaries['etcd-txn'])
      phases.push({
        name: 'raw etcd txn (Go client)',
        run: goEtcdTxn(binaries['etcd-txn'], etcd.endpoint),
        elsewhere: true,
      });

    const app = express();
    app.disable('x-powered-by');
    app.get('/hello', (_req, res) => {
      res.json({ hello: 'world' });
    });
    const hello = createServer(app);
    const helloUrl = await listen(hello);
    closers.push(async () => {
      hello.closeAllConnections();
      await new Promise((done) => hello.close(done));
    });
    phases.push({ name: 'express hello-world', run: http(helloUrl, 'GET', '/hello', 'none') });

    // The embedded store, and SQLite itself with the same settings and a lease-sized row.
    const embedded = await serve({ store: 'embedded', dataDir: join(work, 'embedded') });
    const embeddedToken = await bootstrapTenant(embedded.core, 'bench-embedded');
    phases.push({
      name: 'lease create (embedded)',
      run: http(embedded.url, 'POST', '/v1/leases', embeddedToken, {
        credentialName: CREDENTIAL,
        ttl: '15m',
      }),
    });
    const db = new Database(join(work, 'raw.sqlite'));
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, revision INTEGER NOT NULL)');
    closers.push(async () => {
      db.close();
    });
    const insert = db.prepare('INSERT INTO kv (key, value, revision) VALUES (?, ?, ?)');
    const exists = db.prepare('SELECT 1 FROM kv WHERE key = ?');
    const createIfAbsent = db.transaction((key: string, revision: number) => {
      if (exists.get(key)) throw new Error('exists');
      insert.run(key, leaseSizedValue, revision);
    });
    let rows = 0;
    phases.push({
      name: 'raw SQLite txn (same durability)',
      run: (phaseLimits) =>
        runLoad(phaseLimits, async () => {
          rows++;
          createIfAbsent(`/bench/${rows}`, rows);
        }),
    });

    if (binaries.peer) {
      const peer = await startPeer(binaries.peer, join(work, 'peer'));
      closers.push(() => peer.close());
      phases.push({
        name: 'peer: token create (HashiCorp Vault, Raft)',
        run: http(peer.url, 'POST', '/v1/auth/token/create', peer.token, { policies: ['bench'], ttl: '15m' }),
        elsewhere: true,
      });
      phases.push({
        name: 'peer: KV v2 read (HashiCorp Vault, Raft)',
        run: http(peer.url, 'GET', '/v1/secret/data/bench', peer.token),
        elsewhere: true,
      });
    }
    // BENCH_ONLY=value,create: the phases whose names contain one of these words.
    const only = env.BENCH_ONLY?.split(',');
    const chosen = phases.filter((p) => !only || only.some((word) => p.name.includes(word)));
    const collected = new Map<string, LoadResult[]>(chosen.map((p) => [p.name, []]));
    const cpu = new Map<string, { ms: number; ops: number }>();
    const profiler = env.BENCH_CPU_PROFILE ? await phaseProfiler(env.BENCH_CPU_PROFILE) : undefined;
    for (let round = 1; round <= rounds; round++) {
      for (const p of chosen) {
        const phaseLimits = { ...limits, warmupOps: round === 1 ? limits.warmupOps : 0 };
        const cpuBefore = mainThreadCpuMs();
        const result = profiler
          ? await profiler.around(`${p.name} r${round}`, () => p.run(phaseLimits))
          : await p.run(phaseLimits);
        const cpuAfter = mainThreadCpuMs();
        if (!p.elsewhere && cpuBefore !== undefined && cpuAfter !== undefined) {
          const sum = cpu.get(p.name) ?? { ms: 0, ops: 0 };
          sum.ms += cpuAfter - cpuBefore;
          // Warm-up requests are served too.
          sum.ops += result.ops + result.errors + phaseLimits.warmupOps;
          cpu.set(p.name, sum);
        }
        collected.get(p.name)!.push(result);
        process.stderr.write(`round ${round}/${rounds}: ${p.name}: ${result.perSecond.toFixed(0)}/s\n`);
        if (result.errors > 0)
          process.stderr.write(
            `  ${result.errors} errors; first: ${result.firstError ?? JSON.stringify(result.outcomes)}\n`,
          );
      }
    }
    report(collected, cpu);
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Profiles this thread (the servers under test; the HTTP load runs in a worker) while one phase
 * runs, into DIR/<phase>.cpuprofile; read it with test/bench/profile-summary.ts.
 */
async function phaseProfiler(dir: string) {
  mkdirSync(dir, { recursive: true });
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  return {
    async around<T>(name: string, run: () => Promise<T>): Promise<T> {
      await session.post('Profiler.start');
      try {
        return await run();
      } finally {
        const { profile } = await session.post('Profiler.stop');
        // tsx compiles each file to a few long lines: point frames at the TypeScript source.
        for (const { callFrame } of profile.nodes) {
          const original = callFrame.url.includes('/node_modules/')
            ? undefined
            : (findSourceMap(callFrame.url)?.findEntry(callFrame.lineNumber, callFrame.columnNumber) as
                | Partial<SourceMapping>
                | undefined);
          if (original?.originalLine !== undefined && original.originalColumn !== undefined) {
            callFrame.lineNumber = original.originalLine;
            callFrame.columnNumber = original.originalColumn;
          }
        }
        const file = join(dir, `${name.replace(/[^a-z0-9]+/gi, '-')}.cpuprofile`);
        writeFileSync(file, JSON.stringify(profile));
        process.stderr.write(`  CPU profile: ${file}\n`);
      }
    },
  };
}

function report(collected: Map<string, LoadResult[]>, cpu: Map<string, { ms: number; ops: number }>) {
  const [load1] = loadavg();
  console.log(
    `\n${limits.concurrency} clients, up to ${limits.maxOps} ops or ${limits.maxMs / 1000} s per phase and round, ` +
      `${rounds} interleaved rounds; ${cpus().length} CPUs shared by everything (load average ${load1!.toFixed(1)}); ` +
      `node ${process.version}\n`,
  );
  console.log('| phase | ops | ops/s | p50 ms | p99 ms | errors | server thread CPU ms/op |');
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  for (const [name, list] of collected) {
    const r = mergeResults(list);
    const used = cpu.get(name);
    const perOp = used && used.ops > 0 ? (used.ms / used.ops).toFixed(3) : '—';
    console.log(
      `| ${name} | ${r.ops} | ${r.perSecond.toFixed(0)} | ${r.p50Ms.toFixed(1)} | ${r.p99Ms.toFixed(1)} | ${r.errors} | ${perOp} |`,
    );
  }
  const ratio = (a: string, b: string, goal?: number) => {
    const xs = collected.get(a);
    const ys = collected.get(b);
    if (!xs || !ys) return;
    const perRound = xs.map((x, i) => x.perSecond / ys[i]!.perSecond).sort((p, q) => p - q);
    const median = perRound[Math.floor(perRound.length / 2)]!;
    const verdict = goal === undefined ? '' : ` | ≥ ${goal}× | ${median >= goal ? 'met' : 'NOT met'}`;
    console.log(
      `| ${a} / ${b} | ${median.toFixed(2)}× (rounds ${perRound.map((r) => r.toFixed(2)).join(', ')})${goal === undefined ? ' | | ' : verdict} |`,
    );
  };
  console.log('\n| ratio | median of rounds | goal | |');
  console.log('|---|---|---|---|');
  ratio('lease value read (etcd)', 'peer: KV v2 read (HashiCorp Vault, Raft)', 1.5);
  ratio('lease value read (etcd)', 'lease create (etcd)');
  ratio('lease create (etcd)', 'peer: token create (HashiCorp Vault, Raft)');
  ratio('lease create (etcd)', 'raw etcd txn (Go client)', 0.5);
  ratio('lease create (etcd)', 'raw etcd txn (Node client)');
  ratio('lease value read (etcd)', 'express hello-world');
  ratio('lease create (embedded)', 'raw SQLite txn (same durability)', 0.5);
}

await main();
