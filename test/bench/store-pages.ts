/**
 * Page reads on real etcd at scale, side by side in one run: a page of 100 keys of a prefix
 * holding N keys, read by the etcd store (key windows, src/store/etcd-windows.ts) and by a
 * plain limited range read (what the store did before: etcd counts the whole range on every
 * limited read). Random-id keys (the lease indexes by credential and identity) and
 * time-ordered keys (the expiry index).
 *
 *   npx tsx test/bench/store-pages.ts [N=100000] [pages=200]
 *
 * Not a test: it prints numbers and never fails on them.
 */
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { Etcd3 } from 'etcd3';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import { startEtcd } from '../support/etcd.js';

const N = Number(process.argv[2] ?? 100_000);
const PAGES = Number(process.argv[3] ?? 200);
const LIMIT = 100;

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
};

/** The end of a prefix's range: its last byte plus one. */
const end = (prefix: string) =>
  Buffer.from(prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1));

async function main() {
  const etcd = await startEtcd();
  const raw = new Etcd3({ hosts: etcd.endpoint });
  const store = await openEtcdStore({ endpoints: [etcd.endpoint], timeoutMs: 30_000 });
  try {
    const sets = {
      // As lease ids are: `lease_` and 16 random bytes.
      'random ids': (i: number) =>
        `bench/by-credential/db/lease_${randomBytes(16).toString('base64url')}${i}`,
      'time-ordered': (i: number) =>
        `bench/expiry/${String(1_796_000_000_000 + i * 7)}/${randomBytes(8).toString('hex')}`,
    };
    const rows: string[] = [];
    for (const [name, keyOf] of Object.entries(sets)) {
      const prefix =
        keyOf(0)
          .split('/')
          .slice(0, name === 'random ids' ? 3 : 2)
          .join('/') + '/';
      const keys: string[] = [];
      for (let i = 0; i < N; i += 100) {
        const batch = Array.from({ length: Math.min(100, N - i) }, (_, j) => keyOf(i + j));
        keys.push(...batch);
        await store.txn({
          success: batch.map((key) => ({ type: 'put' as const, key, value: 'x'.repeat(40) })),
        });
      }
      keys.sort();
      const starts = Array.from({ length: PAGES }, () => keys[Math.floor(Math.random() * keys.length)]!);
      // Warm the store's window depth for this prefix, as a listing in progress would have.
      await store.range(prefix, { limit: LIMIT, startAfter: starts[0] });
      const windowed: number[] = [];
      const plain: number[] = [];
      for (const startAfter of starts) {
        let t = performance.now();
        const page = await store.range(prefix, { limit: LIMIT, startAfter });
        windowed.push(performance.now() - t);
        t = performance.now();
        const res = await raw.kv.range({
          key: Buffer.from(`${startAfter}\0`),
          range_end: end(prefix),
          limit: LIMIT,
        });
        plain.push(performance.now() - t);
        if (page.kvs.length !== res.kvs.length)
          throw new Error(`page sizes differ: ${page.kvs.length} vs ${res.kvs.length}`);
      }
      // First pages (no continuation), as a listing starts, with the prefix changing between
      // them: a key issued and the first key removed before each read.
      const firstWindowed: number[] = [];
      const firstPlain: number[] = [];
      await store.range(prefix, { limit: LIMIT });
      for (let i = 0; i < PAGES / 4; i++) {
        const first = (await raw.getAll().prefix(prefix).limit(1).keys())[0]!;
        await raw.delete().key(first);
        await raw.put(keyOf(N + i)).value('x'.repeat(40));
        let t = performance.now();
        const page = await store.range(prefix, { limit: LIMIT });
        firstWindowed.push(performance.now() - t);
        t = performance.now();
        const res = await raw.kv.range({ key: Buffer.from(prefix), range_end: end(prefix), limit: LIMIT });
        firstPlain.push(performance.now() - t);
        if (page.kvs.map((kv) => kv.key).join() !== res.kvs.map((kv) => kv.key.toString()).join())
          throw new Error('first pages differ');
      }
      const fmt = (v: number) => `${v.toFixed(1)} ms`;
      rows.push(
        `| ${name}, first page | ${N} | ${fmt(percentile(firstWindowed, 50))} / ${fmt(percentile(firstWindowed, 99))} | ${fmt(percentile(firstPlain, 50))} / ${fmt(percentile(firstPlain, 99))} | ${(percentile(firstPlain, 50) / percentile(firstWindowed, 50)).toFixed(1)}× |`,
      );
      rows.push(
        `| ${name} | ${N} | ${fmt(percentile(windowed, 50))} / ${fmt(percentile(windowed, 99))} | ${fmt(percentile(plain, 50))} / ${fmt(percentile(plain, 99))} | ${(percentile(plain, 50) / percentile(windowed, 50)).toFixed(1)}× |`,
      );
      await raw.delete().prefix(prefix);
    }
    console.log(
      `load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}; ${PAGES} pages of ${LIMIT} at random positions`,
    );
    console.log('| keys | in prefix | store (windows) p50 / p99 | plain range p50 / p99 | p50 speed-up |');
    console.log('|---|---|---|---|---|');
    for (const row of rows) console.log(row);
  } finally {
    await store.close();
    raw.close();
    await etcd.destroy();
  }
}

await main();
