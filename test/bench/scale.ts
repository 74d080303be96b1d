/**
 * Scale benchmark (issue 13), on real etcd and on the embedded store, one command:
 *
 *   npm run bench:scale
 *   BENCH_SCALE_N=1000000 BENCH_SCALE_STORES=etcd npm run bench:scale
 *
 * For each store, against a real `vault server` child process (the CLI as operators run it):
 *   1. lease create p50/p99 and a page of 100 leases (p99 at 4 clients; p50/p99 of one client paging) with 1,000 leases in the tenant;
 *   2. the tenant grown to N leases (BULK of them on one credential), the server's RSS read
 *      from /proc at each step. To keep the run bounded on a small machine, the growth is
 *      written straight into the store with the server stopped, through the same op builder the
 *      core uses (`leaseWriteOps`: the record and its three index keys), without the audit
 *      records an API call would add; every lease measured is issued through the API;
 *   3. the same create and page measurements at N, and their ratio to step 1;
 *   4. bulk revocation of the BULK leases of one credential, the server killed (SIGKILL) part way
 *      and the revocation run again after a restart: what the first run did, what the second
 *      found left, and the total time. On etcd, started with `--max-txn-ops` BENCH_SCALE_TXN_OPS
 *      (1024) and the server with the same `--etcd-max-txn-ops`; then, as the baseline in the
 *      same run, BULK more leases of another credential revoked by a server at etcd's default
 *      of 128 (BENCH_SCALE_BASELINE=0 skips it);
 * and, in this process with the server's clock injected (as test/api/expiry-at-scale.test.ts):
 *   5. 10,000 leases expiring in the same second: time until the API and the event stream
 *      report every one expired.
 * Knobs: BENCH_SCALE_N (default 100,000), BENCH_SCALE_BULK (default min(100,000, N)),
 * BENCH_SCALE_STORES (etcd,embedded), BENCH_SCALE_EXPIRY (10,000; 0 skips step 5),
 * BENCH_SCALE_TXN_OPS (1024), BENCH_SCALE_BASELINE (1).
 * Not a test: it prints numbers and never fails on them.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { systemContext } from '../../src/core/index.js';
import { keys } from '../../src/core/keys.js';
import type { LeaseRecord } from '../../src/core/lease-record.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import { openStore } from '../../src/store/index.js';
import type { Store } from '../../src/store/store.js';
import { bootstrap, type ServerProcess, startServer } from '../crash/vault-server.js';
import { writeLeases } from '../support/bulk-leases.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { startTestVault } from '../support/test-vault.js';
import { jsonClient } from './http-client.js';
import { type LoadResult, runHttpLoad } from './load.js';

const env = process.env;
const N = Number(env.BENCH_SCALE_N ?? 100_000);
const BULK = Number(env.BENCH_SCALE_BULK ?? Math.min(100_000, N));
const BASE = 1_000;
const EXPIRY = Number(env.BENCH_SCALE_EXPIRY ?? 10_000);
const stores = (env.BENCH_SCALE_STORES ?? 'etcd,embedded').split(',') as Array<'etcd' | 'embedded'>;
const TENANT = 'scale';
const TXN_OPS = Number(env.BENCH_SCALE_TXN_OPS ?? 1_024);
const BASELINE = env.BENCH_SCALE_BASELINE !== '0';

const log = (line: string) => process.stdout.write(`${line}\n`);
const mib = (kib: number) => `${(kib / 1024).toFixed(0)} MiB`;
const ms = (value: number) => `${value.toFixed(1)} ms`;
const rssKib = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? Number.NaN);

interface Measured {
  createP50: number;
  createP99: number;
  createPerSecond: number;
  pageP99: number;
  indexedPageP99: number;
  /** One user paging: one request at a time. */
  pageAlone: { p50: number; p99: number };
  indexedPageAlone: { p50: number; p99: number };
}

interface StoreReport {
  kind: string;
  base: Measured;
  atN: Measured;
  leasesAtN: number;
  seedPerSecond: number;
  rss: Array<{ leases: number; kib: number }>;
  bulk: {
    firstMs: number;
    firstRevoked: number;
    resumedMs: number;
    resumedRevoked: number;
    leftActive: number;
    /** On etcd: the same revocation (not killed) at etcd's default of 128 operations. */
    baseline?: { ms: number; revoked: number };
  };
  expiry?: { apiSeconds: number; streamSeconds: number; events: number };
}

async function measure(server: ServerProcess, token: string): Promise<Measured> {
  const load = { url: server.url, token, warmupOps: 50, maxMs: 30_000 };
  const create = await runHttpLoad({
    ...load,
    concurrency: 8,
    maxOps: 1_000,
    method: 'POST',
    path: '/v1/leases',
    body: { credentialName: 'filler', ttl: '24h' },
    expectStatus: 201,
  });
  const page = await runHttpLoad({
    ...load,
    concurrency: 4,
    maxOps: 300,
    method: 'GET',
    path: '/v1/leases?limit=100',
    expectStatus: 200,
  });
  const indexed = await runHttpLoad({
    ...load,
    concurrency: 4,
    maxOps: 300,
    method: 'GET',
    path: '/v1/leases?credentialName=bulk&state=active&limit=100',
    expectStatus: 200,
  });
  // One user paging through the list, one request at a time (the 4 clients above share two
  // cores with etcd and each other, so their latency is mostly waiting for a core).
  const alone = (path: string) =>
    runHttpLoad({
      ...load,
      warmupOps: 10,
      concurrency: 1,
      maxOps: 100,
      method: 'GET',
      path,
      expectStatus: 200,
    });
  const pageAlone = await alone('/v1/leases?limit=100');
  const indexedAlone = await alone('/v1/leases?credentialName=bulk&state=active&limit=100');
  for (const result of [create, page, indexed, pageAlone, indexedAlone]) warnErrors(result);
  return {
    createP50: create.p50Ms,
    createP99: create.p99Ms,
    createPerSecond: create.perSecond,
    pageP99: page.p99Ms,
    indexedPageP99: indexed.p99Ms,
    pageAlone: { p50: pageAlone.p50Ms, p99: pageAlone.p99Ms },
    indexedPageAlone: { p50: indexedAlone.p50Ms, p99: indexedAlone.p99Ms },
  };
}

function warnErrors(result: LoadResult) {
  if (result.errors > 0)
    log(`  ! ${result.errors} errors: ${result.firstError} ${JSON.stringify(result.outcomes)}`);
}

/** Issues `count` leases of `credential` over HTTP (the 1k baseline). */
async function issue(server: ServerProcess, token: string, credential: string, count: number) {
  const result = await runHttpLoad({
    url: server.url,
    token,
    concurrency: 16,
    warmupOps: 0,
    maxOps: count,
    maxMs: 3_600_000,
    method: 'POST',
    path: '/v1/leases',
    body: { credentialName: credential, ttl: '24h' },
    expectStatus: 201,
  });
  warnErrors(result);
}

/** Active leases, from the `vault_leases` gauge (recounted at most every 10 s, less often where counting is slow). */
async function activeOf(server: ServerProcess, token: string): Promise<number> {
  const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  return Number(/^vault_leases\{state="active"\} (\d+)/m.exec(await res.text())?.[1] ?? Number.NaN);
}

async function benchStore(kind: 'etcd' | 'embedded'): Promise<StoreReport> {
  const dir = mkdtempSync(join(tmpdir(), `vault-scale-${kind}-`));
  let etcd: EtcdProcess | undefined;
  let server: ServerProcess | undefined;
  try {
    const rootKeyFile = join(dir, 'root.key');
    writeFileSync(rootKeyFile, randomBytes(32), { mode: 0o600 });
    if (kind === 'etcd') etcd = await startEtcd({ maxTxnOps: TXN_OPS, quotaBackendBytes: 8 * 2 ** 30 });
    const storeArgs =
      kind === 'etcd'
        ? ['--store', 'etcd', '--etcd-endpoints', etcd!.endpoint, '--etcd-max-txn-ops', String(TXN_OPS)]
        : ['--store', 'embedded', '--data-dir', join(dir, 'data')];
    const configInput =
      kind === 'etcd'
        ? { store: 'etcd', etcdEndpoints: [etcd!.endpoint], rootKeyFile }
        : { store: 'embedded', dataDir: join(dir, 'data'), rootKeyFile };
    const { token } = await bootstrap(configInput, TENANT);
    const args = [...storeArgs, '--root-key-file', rootKeyFile, '--audit-log', 'none', '--no-ui'];
    server = await startServer(args, 180_000);
    const client = jsonClient(server.url, { token, timeoutMs: 600_000 });
    const baseline = kind === 'etcd' && BASELINE;
    for (const name of ['filler', 'bulk', ...(baseline ? ['bulk-baseline'] : [])]) {
      const res = await client.request('POST', '/v1/credentials', { name, type: 'generic', value: 'v' });
      if (res.status !== 201) throw new Error(`credential ${name}: ${JSON.stringify(res.body)}`);
    }
    const rss: StoreReport['rss'] = [{ leases: 0, kib: rssKib(server.pid) }];

    log(`[${kind}] issuing ${BASE} leases`);
    await issue(server, token, 'filler', BASE);
    rss.push({ leases: BASE, kib: rssKib(server.pid) });
    const base = await measure(server, token);
    rss.push({ leases: await activeOf(server, token), kib: rssKib(server.pid) });
    log(`[${kind}] at ~${BASE}: ${JSON.stringify(base)}`);

    let leases = await activeOf(server, token);
    const template = await (async () => {
      const res = await client.request('GET', '/v1/leases?credentialName=filler&limit=1');
      const id = (res.body as { leases: Array<{ id: string }> }).leases[0]!.id;
      return id;
    })();
    client.close();
    await server.stop();
    const opened = await openStore(
      kind === 'etcd'
        ? { kind: 'etcd', endpoints: [etcd!.endpoint], timeoutMs: 60_000 }
        : { kind: 'embedded', path: join(dir, 'data') },
    );
    const record = JSON.parse((await opened.get(keys.lease(TENANT, template)))!.value) as LeaseRecord;
    const seedStarted = performance.now();
    let seededBulk = 0;
    for (const step of [0.25, 1].map((f) => Math.round(BULK * f))) {
      await writeLeases(opened, TENANT, record, 'bulk', step - seededBulk);
      seededBulk = step;
    }
    if (leases + BULK < N) await writeLeases(opened, TENANT, record, 'filler', N - leases - BULK);
    const seedMs = performance.now() - seedStarted;
    await opened.close();
    leases = Math.max(N, leases + BULK);
    server = await startServer(args, 180_000);
    rss.push({ leases: await activeOf(server, token), kib: rssKib(server.pid) });
    log(
      `[${kind}] ${leases} leases written in ${(seedMs / 1000).toFixed(1)} s; RSS after a restart ${mib(rss.at(-1)!.kib)}`,
    );
    const atN = await measure(server, token);
    const rssAfterMeasuring = rssKib(server.pid);
    // A fresh count: the gauge serves a slow count's result for up to 50 times its duration.
    await server.stop();
    server = await startServer(args, 180_000);
    const client2 = jsonClient(server.url, { token, timeoutMs: 600_000 });
    const leasesAtN = await activeOf(server, token);
    rss.push({ leases: leasesAtN, kib: rssAfterMeasuring });
    const seedPerSecond = ((leasesAtN - BASE) / seedMs) * 1000;
    log(`[${kind}] at ${leasesAtN}: ${JSON.stringify(atN)}`);

    // Bulk revocation, killed part way, then run again after a restart.
    log(`[${kind}] bulk revoke of ${BULK} leases of one credential, killed part way`);
    const activeBefore = await activeOf(server, token);
    const t0 = performance.now();
    const first = client2
      .request('POST', '/v1/leases/revoke', { credentialName: 'bulk' })
      .then((res) => `HTTP ${res.status}`)
      .catch((err: Error) => err.message);
    // Kill once about a third is done as the gauge shows it (recounted every 10 s, less often
    // where counting is slow) or after 20 s, so the resumption has work left.
    const killAt = t0 + 20_000;
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const done = activeBefore - (await activeOf(server, token).catch(() => activeBefore));
      if (done >= BULK / 3 || performance.now() > killAt) break;
    }
    await server.kill();
    const firstMs = performance.now() - t0;
    log(`[${kind}] the killed request ended with: ${await first}`);
    client2.close();
    server = await startServer(args, 180_000);
    const firstRevoked = activeBefore - (await activeOf(server, token));
    const again = jsonClient(server.url, { token, timeoutMs: 600_000 });
    const t1 = performance.now();
    const resumed = await again.request('POST', '/v1/leases/revoke', { credentialName: 'bulk' });
    const resumedMs = performance.now() - t1;
    again.close();
    const resumedRevoked = (resumed.body as { revoked?: number }).revoked ?? Number.NaN;
    // A fresh count: the gauge serves a slow count's result for up to 50 times its duration.
    await server.stop();
    server = await startServer(args, 180_000);
    const leftActive = await activeOf(server, token);
    rss.push({ leases: leasesAtN, kib: rssKib(server.pid) });
    log(
      `[${kind}] first run ${(firstMs / 1000).toFixed(1)} s revoked ${firstRevoked} before the kill; ` +
        `the resumed run revoked ${resumedRevoked} in ${(resumedMs / 1000).toFixed(1)} s; active left ${leftActive}`,
    );
    let baselineRun: StoreReport['bulk']['baseline'];
    if (baseline) {
      await server.stop();
      // The baseline's leases replace the revoked ones, so the tenant is as large as before.
      const reopened = await openStore({ kind: 'etcd', endpoints: [etcd!.endpoint], timeoutMs: 60_000 });
      await writeLeases(reopened, TENANT, record, 'bulk-baseline', BULK);
      await reopened.close();
      const at128 = args.map((arg, i) => (args[i - 1] === '--etcd-max-txn-ops' ? '128' : arg));
      server = await startServer(at128, 180_000);
      const plain = jsonClient(server.url, { token, timeoutMs: 600_000 });
      const t2 = performance.now();
      const res = await plain.request('POST', '/v1/leases/revoke', { credentialName: 'bulk-baseline' });
      baselineRun = {
        ms: performance.now() - t2,
        revoked: (res.body as { revoked?: number }).revoked ?? Number.NaN,
      };
      plain.close();
      log(
        `[${kind}] baseline at 128 operations per transaction: ${baselineRun.revoked} revoked in ${(baselineRun.ms / 1000).toFixed(1)} s`,
      );
    }
    return {
      kind,
      base,
      atN,
      leasesAtN,
      seedPerSecond,
      rss,
      bulk: {
        firstMs,
        firstRevoked,
        resumedMs,
        resumedRevoked,
        leftActive,
        ...(baselineRun ? { baseline: baselineRun } : {}),
      },
    };
  } finally {
    await server?.stop();
    await etcd?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Step 5 in this process: the server's clock stands still while the leases are issued. */
async function benchExpiry(kind: 'etcd' | 'embedded'): Promise<StoreReport['expiry']> {
  let etcd: EtcdProcess | undefined;
  let store: Store | undefined;
  let offsetMs = 0;
  let frozenAt: number | undefined;
  const clock = () => new Date(frozenAt ?? Date.now() + offsetMs);
  if (kind === 'etcd') {
    etcd = await startEtcd();
    store = await openEtcdStore({ endpoints: [etcd.endpoint], timeoutMs: 10_000 });
  }
  const vault = await startTestVault({ clock, ...(store ? { store } : {}) });
  try {
    const ctx = systemContext(vault.tenant, { type: 'human', name: 'root' });
    await vault.call('POST', '/v1/credentials', { body: { name: 'burst', type: 'generic', value: 'v' } });
    const target = Math.ceil((Date.now() + 300_000) / 1000) * 1000 + 500;
    frozenAt = target - 300_000;
    for (let done = 0; done < EXPIRY; done += 500) {
      await Promise.all(
        Array.from({ length: Math.min(500, EXPIRY - done) }, () =>
          vault.core.leases.create(ctx, { credentialName: 'burst', ttl: '5m', renewable: false }),
        ),
      );
    }
    offsetMs = frozenAt - Date.now();
    frozenAt = undefined;
    const controller = new AbortController();
    const response = await fetch(`${vault.url}/v1/leases/events`, {
      headers: { authorization: `Bearer ${vault.rootToken}` },
      signal: controller.signal,
    });
    const ids = new Set<string>();
    let streamAt: number | undefined;
    const reading = (async () => {
      const decoder = new TextDecoder();
      let buffer = '';
      for await (const chunk of response.body!) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (!event.startsWith('event: expired\n')) continue;
          ids.add(JSON.parse(event.slice(event.indexOf('data: ') + 6)).lease.id);
          if (ids.size === EXPIRY) streamAt ??= clock().getTime();
        }
        if (streamAt !== undefined) return;
      }
    })().catch(() => undefined);
    offsetMs = target - 2_000 - Date.now();
    let apiAt: number | undefined;
    const deadline = target + 60_000;
    while (clock().getTime() < deadline && (apiAt === undefined || streamAt === undefined)) {
      if (apiAt === undefined && clock().getTime() >= target) {
        let count = 0;
        for (let next: string | undefined, first = true; first || next; first = false) {
          const page = await vault.call(
            'GET',
            `/v1/leases?credentialName=burst&state=expired&limit=1000${next ? `&continue=${encodeURIComponent(next)}` : ''}`,
          );
          count += page.body.leases.length;
          next = page.body.continue;
        }
        if (count === EXPIRY) apiAt = clock().getTime();
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    controller.abort();
    await reading;
    const seconds = (at: number | undefined) => (at === undefined ? Number.NaN : (at - target) / 1000);
    return { apiSeconds: seconds(apiAt), streamSeconds: seconds(streamAt), events: ids.size };
  } finally {
    await vault.close();
    await store?.close();
    await etcd?.destroy();
  }
}

function printReport(reports: StoreReport[]) {
  log('');
  log(
    `machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ` +
      `load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(
          ' ',
        )} (at the end), node ${process.version}; N=${N}, BULK=${BULK}, etcd --max-txn-ops ${TXN_OPS}`,
  );
  log('');
  log(
    '| store | leases | create p50 at 1k → N (ratio) | create p99 at 1k → N (ratio) | page of 100 p99 at N, 4 clients (indexed) | page of 100 at N, one client p50 / p99 (indexed) | written directly |',
  );
  log('|---|---|---|---|---|---|---|');
  for (const r of reports) {
    log(
      `| ${r.kind} | ${r.leasesAtN} | ${ms(r.base.createP50)} → ${ms(r.atN.createP50)} (${(r.atN.createP50 / r.base.createP50).toFixed(2)}×) | ` +
        `${ms(r.base.createP99)} → ${ms(r.atN.createP99)} (${(r.atN.createP99 / r.base.createP99).toFixed(2)}×) | ` +
        `${ms(r.atN.pageP99)} (${ms(r.atN.indexedPageP99)}) | ` +
        `${ms(r.atN.pageAlone.p50)} / ${ms(r.atN.pageAlone.p99)} (${ms(r.atN.indexedPageAlone.p50)} / ${ms(r.atN.indexedPageAlone.p99)}) | ` +
        `${r.seedPerSecond.toFixed(0)}/s |`,
    );
  }
  log('');
  log(
    `| store | bulk revoke: first run, killed | resumed after restart | total | active left | baseline at 128 ops per txn (total / baseline) |`,
  );
  log('|---|---|---|---|---|---|');
  for (const r of reports) {
    const b = r.bulk;
    const totalMs = b.firstMs + b.resumedMs;
    const vsBaseline = b.baseline
      ? `${b.baseline.revoked} in ${(b.baseline.ms / 1000).toFixed(1)} s (${(totalMs / b.baseline.ms).toFixed(2)}×)`
      : '—';
    log(
      `| ${r.kind} | ${b.firstRevoked} in ${(b.firstMs / 1000).toFixed(1)} s | ${b.resumedRevoked} in ${(b.resumedMs / 1000).toFixed(1)} s | ` +
        `${b.firstRevoked + b.resumedRevoked} in ${(totalMs / 1000).toFixed(1)} s | ${b.leftActive} | ${vsBaseline} |`,
    );
  }
  log('');
  log('| store | server RSS by leases in the tenant |');
  log('|---|---|');
  for (const r of reports)
    log(`| ${r.kind} | ${r.rss.map((p) => `${p.leases}: ${mib(p.kib)}`).join(', ')} |`);
  if (reports.some((r) => r.expiry)) {
    log('');
    log(`| store | ${EXPIRY} leases expiring in one second: API | event stream |`);
    log('|---|---|---|');
    for (const r of reports) {
      if (!r.expiry) continue;
      log(
        `| ${r.kind} | ${r.expiry.apiSeconds.toFixed(2)} s | ${r.expiry.streamSeconds.toFixed(2)} s (${r.expiry.events} events) |`,
      );
    }
  }
}

const reports: StoreReport[] = [];
log(
  `load average at the start: ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
);
for (const kind of stores) {
  const report = await benchStore(kind);
  if (EXPIRY > 0) {
    log(`[${kind}] ${EXPIRY} leases expiring in the same second`);
    report.expiry = await benchExpiry(kind);
    log(`[${kind}] ${JSON.stringify(report.expiry)}`);
  }
  reports.push(report);
}
printReport(reports);
process.exit(0);
