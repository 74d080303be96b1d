/**
 * The Store contract: what every implementation must do, run against each of them. A store
 * that fails any of these is wrong, whatever its own tests say.
 */
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isVaultError } from '../../src/lib/errors.js';
import type { Store, WatchEvent, Watcher } from '../../src/store/store.js';

export interface OpenedStore {
  store: Store;
  cleanup(): Promise<void>;
}

/** Polls until `check` passes (or throws its last failure after `timeoutMs`). */
export async function eventually(check: () => void | Promise<void>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

const put = (key: string, value: string) => ({ type: 'put' as const, key, value });

export function describeStoreContract(name: string, open: () => Promise<OpenedStore>): void {
  describe(`Store contract: ${name}`, () => {
    let opened: OpenedStore;
    let store: Store;
    const watchers: Watcher[] = [];

    beforeEach(async () => {
      opened = await open();
      store = opened.store;
    });

    afterEach(async () => {
      await Promise.all(watchers.splice(0).map((w) => w.close()));
      await opened.cleanup();
    });

    const watch = async (prefix: string, from: number, events: WatchEvent[]) => {
      const watcher = await store.watch(prefix, from, (event) => events.push(event));
      watchers.push(watcher);
      return watcher;
    };

    it('get returns undefined for a missing key and the stored value with its revisions', async () => {
      expect(await store.get('missing')).toBeUndefined();
      await expect(store.get('')).rejects.toThrow(/must not be empty/);
      const first = await store.txn({ success: [put('a/1', 'one')] });
      expect(first.succeeded).toBe(true);
      expect(await store.get('a/1')).toEqual({
        key: 'a/1',
        value: 'one',
        createRevision: first.revision,
        modRevision: first.revision,
        version: 1,
      });
      const second = await store.txn({ success: [put('a/1', 'uno')] });
      expect(second.revision).toBeGreaterThan(first.revision);
      expect(await store.get('a/1')).toEqual({
        key: 'a/1',
        value: 'uno',
        createRevision: first.revision,
        modRevision: second.revision,
        version: 2,
      });
    });

    it('a key deleted and put again starts over at version 1', async () => {
      await store.txn({ success: [put('k', 'v1')] });
      await store.txn({ success: [{ type: 'delete', key: 'k' }] });
      expect(await store.get('k')).toBeUndefined();
      const again = await store.txn({ success: [put('k', 'v2')] });
      expect(await store.get('k')).toMatchObject({ createRevision: again.revision, version: 1, value: 'v2' });
    });

    it('keeps values byte-exact, including unicode and JSON', async () => {
      const value = JSON.stringify({ emoji: '🔐', accents: 'éà', nul: '\u0000', long: 'x'.repeat(10_000) });
      await store.txn({ success: [put('ü/ключ', value)] });
      expect((await store.get('ü/ключ'))?.value).toBe(value);
      expect((await store.range('ü/')).kvs.map((kv) => kv.key)).toEqual(['ü/ключ']);
    });

    it('getMany reads many keys in the order asked, undefined where missing, past 100 at once', async () => {
      const keys = Array.from({ length: 250 }, (_, i) => `many/${String(i).padStart(3, '0')}`);
      for (let i = 0; i < keys.length; i += 50)
        await store.txn({ success: keys.slice(i, i + 50).map((key) => put(key, `v-${key}`)) });
      const asked = [...keys].reverse().flatMap((key, i) => (i % 60 === 0 ? [key, 'many/missing'] : [key]));
      const got = await store.getMany!(asked);
      expect(got).toHaveLength(asked.length);
      for (const [i, key] of asked.entries()) {
        if (key === 'many/missing') expect(got[i]).toBeUndefined();
        else expect(got[i]).toMatchObject({ key, value: `v-${key}`, version: 1 });
      }
      expect(await store.getMany!([])).toEqual([]);
    });

    it('range returns only keys under the prefix, in byte order, at the current revision', async () => {
      const { revision } = await store.txn({
        success: [put('p/b', '2'), put('p/a', '1'), put('p/c/d', '3'), put('p0', 'no'), put('o', 'no')],
      });
      const result = await store.range('p/');
      expect(result.kvs.map((kv) => [kv.key, kv.value])).toEqual([
        ['p/a', '1'],
        ['p/b', '2'],
        ['p/c/d', '3'],
      ]);
      expect(result.more).toBe(false);
      expect(result.revision).toBeGreaterThanOrEqual(revision);
      expect((await store.range('nothing/')).kvs).toEqual([]);
      expect((await store.range('')).kvs.map((kv) => kv.key)).toEqual(['o', 'p/a', 'p/b', 'p/c/d', 'p0']);
    });

    it('pages through a range with limit and startAfter', async () => {
      const keys = Array.from({ length: 7 }, (_, i) => `page/${String(i).padStart(2, '0')}`);
      await store.txn({ success: keys.map((key) => put(key, key)) });
      const seen: string[] = [];
      let startAfter: string | undefined;
      let pages = 0;
      for (;;) {
        const page = await store.range('page/', {
          limit: 3,
          ...(startAfter !== undefined && { startAfter }),
        });
        pages++;
        seen.push(...page.kvs.map((kv) => kv.key));
        expect(page.kvs.length).toBeLessThanOrEqual(3);
        if (!page.more) break;
        startAfter = page.kvs.at(-1)!.key;
      }
      expect(seen).toEqual(keys);
      expect(pages).toBe(3);
      const exact = await store.range('page/', { limit: 7 });
      expect(exact.kvs).toHaveLength(7);
      expect(exact.more).toBe(false);
      const cut = await store.range('page/', { limit: 6 });
      expect(cut.more).toBe(true);
      const afterLast = await store.range('page/', { startAfter: keys.at(-1)! });
      expect(afterLast.kvs).toEqual([]);
      // A startAfter before the prefix starts at the prefix.
      expect((await store.range('page/', { startAfter: 'a', limit: 1 })).kvs[0]?.key).toBe(keys[0]);
    });

    it('pages a large prefix exactly as its keys come and go, first pages too', async () => {
      // Large enough for the etcd store's key windows; ids spread as random ones are.
      const id = (i: number) =>
        `big/lease_${createHash('sha256').update(String(i)).digest('base64url').slice(0, 12)}`;
      const all = Array.from({ length: 1_200 }, (_, i) => id(i));
      for (let i = 0; i < 1_000; i += 100)
        await store.txn({ success: all.slice(i, i + 100).map((key) => put(key, 'x')) });
      const pageAll = async () => {
        const seen: string[] = [];
        let startAfter: string | undefined;
        for (;;) {
          const page = await store.range('big/', {
            limit: 10,
            ...(startAfter !== undefined && { startAfter }),
          });
          seen.push(...page.kvs.map((kv) => kv.key));
          if (!page.more) return seen;
          startAfter = page.kvs.at(-1)!.key;
        }
      };
      const expected = new Set(all.slice(0, 1_000));
      const sorted = () => [...expected].sort();
      expect(await pageAll()).toEqual(sorted());
      for (let round = 0; round < 4; round++) {
        // The first key goes, keys are added (some before it), then a first page and a walk.
        const first = sorted()[0]!;
        expected.delete(first);
        const added = all.slice(1_000 + round * 50, 1_050 + round * 50);
        for (const key of added) expected.add(key);
        await store.txn({ success: [{ type: 'delete', key: first }, ...added.map((key) => put(key, 'x'))] });
        const page = await store.range('big/', { limit: 10 });
        expect(page.kvs.map((kv) => kv.key)).toEqual(sorted().slice(0, 10));
        expect(page.more).toBe(true);
        expect(await pageAll()).toEqual(sorted());
      }
    });

    it('counts keys under a prefix, also after a key, without reading them', async () => {
      await store.txn({
        success: ['c/a', 'c/b', 'c/c', 'c/d', 'd/a'].map((key) => put(key, 'x'.repeat(100))),
      });
      expect(await store.count('c/')).toBe(4);
      expect(await store.count('c/', { startAfter: 'c/b' })).toBe(2);
      expect(await store.count('c/', { startAfter: 'c/' })).toBe(4);
      expect(await store.count('e/')).toBe(0);
    });

    it('create-if-absent succeeds once; a second create fails and writes nothing', async () => {
      const created = await store.txn({
        compare: [{ key: 'once', modRevision: 0 }],
        success: [put('once', 'first')],
      });
      expect(created.succeeded).toBe(true);
      const again = await store.txn({
        compare: [{ key: 'once', modRevision: 0 }],
        success: [put('once', 'second'), put('side-effect', 'x')],
      });
      expect(again.succeeded).toBe(false);
      expect(again.revision).toBe(created.revision);
      expect((await store.get('once'))?.value).toBe('first');
      expect(await store.get('side-effect')).toBeUndefined();
    });

    it('compare-and-swap on modRevision: current wins, stale loses and runs the failure branch', async () => {
      const v1 = await store.txn({ success: [put('cas', 'v1')] });
      const v2 = await store.txn({
        compare: [{ key: 'cas', modRevision: v1.revision }],
        success: [put('cas', 'v2')],
      });
      expect(v2.succeeded).toBe(true);
      const stale = await store.txn({
        compare: [{ key: 'cas', modRevision: v1.revision }],
        success: [put('cas', 'stale')],
        failure: [put('cas-conflicts', '1')],
      });
      expect(stale.succeeded).toBe(false);
      expect(stale.revision).toBeGreaterThan(v2.revision);
      expect((await store.get('cas'))?.value).toBe('v2');
      expect((await store.get('cas-conflicts'))?.modRevision).toBe(stale.revision);
    });

    it('reads in the failure branch what a writer that lost a race needs, in the same transaction', async () => {
      const head = await store.txn({ success: [put('chain/head', 'h1'), put('chain/r/01', 'a')] });
      const moved = await store.txn({
        success: [
          put('chain/head', 'h3'),
          put('chain/r/02', 'b'),
          put('chain/r/03', 'c'),
          put('chain/r/04', 'd'),
        ],
      });
      const reads = [
        { key: 'chain/head' },
        { prefix: 'chain/r/', startAfter: 'chain/r/01', limit: 2 },
        { prefix: 'chain/r/', startAfter: 'chain/r/02', limit: 5 },
        { key: 'chain/missing' },
      ];
      const lost = await store.txn({
        compare: [{ key: 'chain/head', modRevision: head.revision }],
        success: [put('chain/r/02', 'mine')],
        failure: [put('chain/lost', 'x')],
        failureReads: reads,
      });
      expect(lost.succeeded).toBe(false);
      // The reads see the failure branch's own writes, and nothing of the success branch.
      expect(lost.reads?.map((read) => [read.kvs.map((kv) => [kv.key, kv.value]), read.more])).toEqual([
        [[['chain/head', 'h3']], false],
        [
          [
            ['chain/r/02', 'b'],
            ['chain/r/03', 'c'],
          ],
          true,
        ],
        [
          [
            ['chain/r/03', 'c'],
            ['chain/r/04', 'd'],
          ],
          false,
        ],
        [[], false],
      ]);
      expect(lost.reads?.[0]?.kvs[0]?.modRevision).toBe(moved.revision);
      expect((await store.get('chain/lost'))?.value).toBe('x');
      // A transaction whose compares hold reads nothing back.
      const won = await store.txn({
        compare: [{ key: 'chain/head', modRevision: moved.revision }],
        success: [put('chain/head', 'h5')],
        failureReads: reads,
      });
      expect(won).toEqual({ succeeded: true, revision: expect.any(Number) });
      // Reads count as operations of the failure branch, and a prefix read needs a limit.
      const tooMany = Array.from({ length: store.maxTxnOps + 1 }, () => ({ key: 'chain/head' }));
      await expect(store.txn({ success: [], failureReads: tooMany })).rejects.toThrow(/failure branch/);
      await expect(
        store.txn({ success: [], failureReads: [{ prefix: 'chain/r/', limit: 0 }] }),
      ).rejects.toThrow(/limit of at least 1/);
      await expect(store.txn({ success: [], failureReads: [{ key: '' }] })).rejects.toThrow(/non-empty key/);
    });

    it('is atomic: one failing compare among several writes nothing', async () => {
      const base = await store.txn({ success: [put('x', '1'), put('y', '1'), put('w/1', '1')] });
      const x = await store.get('x');
      const result = await store.txn({
        compare: [
          { key: 'x', modRevision: x!.modRevision },
          { key: 'y', modRevision: x!.modRevision + 1000 },
        ],
        success: [put('x', '2'), put('y', '2'), put('z', '2'), { type: 'deletePrefix', prefix: 'w/' }],
      });
      expect(result.succeeded).toBe(false);
      expect(result.revision).toBe(base.revision);
      expect((await store.range('')).kvs.map((kv) => [kv.key, kv.value])).toEqual([
        ['w/1', '1'],
        ['x', '1'],
        ['y', '1'],
      ]);
    });

    it('applies all ops of a transaction at one revision', async () => {
      await store.txn({ success: [put('m/old', 'gone')] });
      const result = await store.txn({
        success: [put('m/a', '1'), put('m/b', '2'), { type: 'delete', key: 'm/old' }],
      });
      const kvs = (await store.range('m/')).kvs;
      expect(kvs.map((kv) => kv.key)).toEqual(['m/a', 'm/b']);
      expect(kvs.every((kv) => kv.modRevision === result.revision)).toBe(true);
    });

    it('deletePrefix deletes exactly the keys under the prefix', async () => {
      await store.txn({
        success: [put('t/1/a', 'a'), put('t/1/b', 'b'), put('t/10', 'keep'), put('t/2/a', 'keep')],
      });
      const deleted = await store.txn({ success: [{ type: 'deletePrefix', prefix: 't/1/' }] });
      expect(deleted.succeeded).toBe(true);
      expect((await store.range('t/')).kvs.map((kv) => kv.key)).toEqual(['t/10', 't/2/a']);
      // Deleting nothing changes nothing.
      const none = await store.txn({ success: [{ type: 'deletePrefix', prefix: 't/1/' }] });
      expect(none.revision).toBe(deleted.revision);
    });

    it('revisions increase strictly with every write and never on no-op transactions', async () => {
      const revisions: number[] = [];
      for (let i = 0; i < 5; i++)
        revisions.push((await store.txn({ success: [put(`r/${i % 2}`, String(i))] })).revision);
      for (let i = 1; i < revisions.length; i++) expect(revisions[i]).toBeGreaterThan(revisions[i - 1]!);
      const noop = await store.txn({ success: [{ type: 'delete', key: 'r/missing' }] });
      expect(noop.revision).toBe(revisions.at(-1));
      const read = await store.range('r/');
      expect(read.revision).toBe(revisions.at(-1));
    });

    it('rejects a transaction that writes one key twice, before writing anything', async () => {
      const before = await store.txn({ success: [put('seed', '1')] });
      for (const success of [
        [put('dup', '1'), put('dup', '2')],
        [put('dup', '1'), { type: 'delete' as const, key: 'dup' }],
        [put('dup/a', '1'), { type: 'deletePrefix' as const, prefix: 'dup/' }],
        [put('', 'empty key')],
      ]) {
        const err = await store.txn({ success }).catch((e: unknown) => e);
        expect(isVaultError(err) && err.code).toBe('bad_request');
      }
      expect((await store.range('')).revision).toBe(before.revision);
      expect(await store.get('dup')).toBeUndefined();
    });

    it('holds maxTxnOps compares and operations per branch, and refuses one more before writing anything', async () => {
      const max = store.maxTxnOps;
      expect(max).toBeGreaterThanOrEqual(32);
      const puts = (n: number, tag: string) =>
        Array.from({ length: n }, (_, i) => put(`max/${tag}/${i}`, 'v'));
      const absent = (n: number) =>
        Array.from({ length: n }, (_, i) => ({ key: `max/absent/${i}`, modRevision: 0 }));
      const full = await store.txn({
        compare: absent(max),
        success: puts(max, 'ok'),
        failure: puts(max, 'no'),
      });
      expect(full.succeeded).toBe(true);
      expect(await store.count('max/ok/')).toBe(max);
      for (const txn of [
        { success: puts(max + 1, 'over') },
        { compare: absent(max + 1), success: puts(1, 'over') },
        { success: puts(1, 'over'), failure: puts(max + 1, 'over-f') },
      ]) {
        const err = await store.txn(txn).catch((e: unknown) => e);
        expect(isVaultError(err) && err.code).toBe('bad_request');
        expect((err as Error).message).toContain(`at most ${max}`);
      }
      expect((await store.range('')).revision).toBe(full.revision);
      expect(await store.count('max/over')).toBe(0);
    });

    it('watch replays history from a revision, then streams live changes, in order', async () => {
      const r1 = await store.txn({ success: [put('w/a', '1')] });
      await store.txn({ success: [put('other/x', 'ignored')] });
      const r3 = await store.txn({ success: [put('w/b', '2'), put('w/a', '1b')] });
      const events: WatchEvent[] = [];
      await watch('w/', r1.revision, events);
      await eventually(() => expect(events).toHaveLength(3));
      const r4 = await store.txn({ success: [{ type: 'deletePrefix', prefix: 'w/' }] });
      await store.txn({ success: [put('other/y', 'ignored')] });
      const r6 = await store.txn({ success: [put('w/c', '3')] });
      await eventually(() => expect(events).toHaveLength(6));
      expect(events).toEqual(
        [
          { type: 'put', key: 'w/a', value: '1', modRevision: r1.revision },
          // Within one revision, events come in the transaction's op order.
          { type: 'put', key: 'w/b', value: '2', modRevision: r3.revision },
          { type: 'put', key: 'w/a', value: '1b', modRevision: r3.revision },
          { type: 'delete', key: 'w/a', modRevision: r4.revision },
          { type: 'delete', key: 'w/b', modRevision: r4.revision },
          { type: 'put', key: 'w/c', value: '3', modRevision: r6.revision },
        ].map((e) => expect.objectContaining(e)),
      );
    });

    it('watch from 0 sees only changes after it started, delivered outside the transaction', async () => {
      await store.txn({ success: [put('n/old', 'before')] });
      const events: WatchEvent[] = [];
      await watch('n/', 0, events);
      const pending = store.txn({ success: [put('n/new', 'after')] });
      expect(events).toEqual([]);
      const { revision } = await pending;
      await eventually(() =>
        expect(events).toEqual([{ type: 'put', key: 'n/new', value: 'after', modRevision: revision }]),
      );
    });

    it('watchers on overlapping prefixes each get their events, and close stops delivery', async () => {
      const all: WatchEvent[] = [];
      const narrow: WatchEvent[] = [];
      await watch('q/', 0, all);
      const narrowWatcher = await watch('q/1/', 0, narrow);
      await store.txn({ success: [put('q/1/a', 'a'), put('q/2/a', 'b')] });
      await eventually(() => {
        expect(all).toHaveLength(2);
        expect(narrow.map((e) => e.key)).toEqual(['q/1/a']);
      });
      await narrowWatcher.close();
      await store.txn({ success: [put('q/1/b', 'c')] });
      await eventually(() => expect(all).toHaveLength(3));
      // The closed watcher got nothing more, even after the open one saw the change.
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(narrow).toHaveLength(1);
    });

    it('watch from a future revision waits for it', async () => {
      const { revision } = await store.txn({ success: [put('f/a', '1')] });
      const events: WatchEvent[] = [];
      await watch('f/', revision + 2, events);
      await store.txn({ success: [put('f/b', '2')] });
      const third = await store.txn({ success: [put('f/c', '3')] });
      await eventually(() => expect(events.map((e) => e.modRevision)).toEqual([third.revision]));
    });

    it('exactly one of many racing compare-and-swap writers wins', async () => {
      const base = await store.txn({ success: [put('race', 'start')] });
      const writers = 8;
      const results = await Promise.all(
        Array.from({ length: writers }, (_, i) =>
          store.txn({
            compare: [{ key: 'race', modRevision: base.revision }],
            success: [put('race', `writer-${i}`)],
          }),
        ),
      );
      const winners = results.filter((r) => r.succeeded);
      expect(winners).toHaveLength(1);
      const final = await store.get('race');
      expect(final?.value).toBe(`writer-${results.indexOf(winners[0]!)}`);
      expect(final?.version).toBe(2);

      const creators = await Promise.all(
        Array.from({ length: writers }, (_, i) =>
          store.txn({
            compare: [{ key: 'race-new', modRevision: 0 }],
            success: [put('race-new', String(i))],
          }),
        ),
      );
      expect(creators.filter((r) => r.succeeded)).toHaveLength(1);
    });

    it('ping answers while the store is open; operations after close fail', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
      await store.close();
      await expect(store.get('x')).rejects.toThrow(/closed/);
      await store.close();
    });
  });
}
