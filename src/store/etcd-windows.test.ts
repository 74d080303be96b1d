import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { readPage, type WindowRead, windowEnd } from './etcd-windows.js';

/** etcd's range semantics over a sorted key list: a limit, `more`, and the window's full count. */
function fakeEtcd(keys: Buffer[]) {
  const sorted = [...keys].sort(Buffer.compare);
  const counts: number[] = [];
  /** The index of the first key at or after `key`. */
  const lowerBound = (key: Buffer) => {
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (Buffer.compare(sorted[mid]!, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const read = async (key: Buffer, end: Buffer, limit: number): Promise<WindowRead<{ key: Buffer }>> => {
    const noEnd = end.length === 1 && end[0] === 0;
    const from = lowerBound(key);
    const to = noEnd ? sorted.length : lowerBound(end);
    const count = Math.max(0, to - from);
    counts.push(count);
    if (counts.length > 200_000)
      throw new Error(
        `runaway: ${JSON.stringify(key.toString('latin1'))} .. ${JSON.stringify(end.toString('latin1'))} limit ${limit}`,
      );
    return {
      kvs: sorted.slice(from, from + Math.min(limit, count)).map((k) => ({ key: k })),
      more: count > limit,
      count,
      revision: 7,
    };
  };
  return { sorted, counts, read };
}

const prefix = Buffer.from('vault/t/acme/leases/by-credential/db/');
const prefixEnd = Buffer.from('vault/t/acme/leases/by-credential/db0');
const under = (tail: string | Buffer) => Buffer.concat([prefix, Buffer.from(tail)]);

/** Pages through [prefix, prefixEnd) as the store does (start after the last key + \0). */
async function pageAll(etcd: ReturnType<typeof fakeEtcd>, limit: number, startDepth = 0) {
  const seen: Buffer[] = [];
  let depth = startDepth;
  let start = prefix;
  let pages = 0;
  for (;;) {
    const page = await readPage(etcd.read, {
      start,
      rangeEnd: prefixEnd,
      limit,
      minDepth: prefix.length + 1,
      depth,
    });
    pages++;
    expect(page.kvs.length).toBeLessThanOrEqual(limit);
    seen.push(...page.kvs.map((kv) => kv.key));
    depth = page.depth;
    if (!page.more) break;
    expect(page.kvs.length).toBeGreaterThan(0);
    start = Buffer.concat([page.kvs.at(-1)!.key, Buffer.from([0])]);
  }
  return { seen, pages, depth };
}

/** Ids spread like random ones, but the same on every run (a test must not depend on luck). */
const randomIds = (n: number) =>
  Array.from({ length: n }, (_, i) =>
    under(createHash('sha256').update(String(i)).digest('base64url').slice(0, 16)),
  );

/** Random ids after a shared word, as lease ids are (`lease_` and random bytes). */
const leaseIds = (n: number) =>
  randomIds(n).map((key) => under(`lease_${key.subarray(prefix.length).toString('latin1')}`));

describe('readPage', () => {
  it.each([
    ['random ids', () => randomIds(5_000), 100],
    ['random ids, one key per page', () => randomIds(300), 1],
    [
      'time-ordered keys',
      () => Array.from({ length: 3_000 }, (_, i) => under(`${1_796_000_000_000 + i * 37}/x${i}`)),
      50,
    ],
    [
      'odd bytes: below the pad, 0xff and empty tails',
      () => [
        under(''),
        under('\x01a'),
        under('\x00'),
        under(Buffer.from([0xff, 0xff])),
        under(Buffer.from([0xff])),
        under(' z'),
        under('~'),
        under('-'),
      ],
      2,
    ],
    ['a sparse range', () => randomIds(7), 100],
    ['nothing', () => [], 10],
  ] as const)('returns %s exactly once, in order, ending with more=false', async (_, make, limit) => {
    const outside = [
      Buffer.from('vault/t/acme/leases/by-credential/da'),
      Buffer.from('vault/t/acme/leases/by-credential/db0x'),
    ];
    const inRange = make();
    const etcd = fakeEtcd([...inRange, ...outside]);
    const { seen } = await pageAll(etcd, limit);
    expect(seen.map((k) => k.toString('latin1'))).toEqual(
      [...inRange].sort(Buffer.compare).map((k) => k.toString('latin1')),
    );
  });

  it('never reads (counts) a large part of a big range for one page', async () => {
    const etcd = fakeEtcd(randomIds(40_000));
    const { seen, pages } = await pageAll(etcd, 100);
    expect(seen).toHaveLength(40_000);
    // The first page of a prefix not seen yet reads (counts) the whole range once, as a plain
    // read would; from then on a window holds a few hundred to a few thousand of the 40,000
    // keys, also where ids skip a run of leading bytes (':' to '@' in base64url).
    expect(etcd.counts[0]).toBe(40_000);
    expect(Math.max(...etcd.counts.slice(1))).toBeLessThan(40_000 / 8);
    // And it does not cost many round trips per page either.
    expect(etcd.counts.length / pages).toBeLessThan(4);
  });

  it('reads a first page from the window of the first key the last one found', async () => {
    const ids = randomIds(40_000);
    const etcd = fakeEtcd(ids.slice(0, 39_000));
    const { depth, seen } = await pageAll(etcd, 100);
    // Leases issued since, some before the old first key, and the old first key revoked.
    const later = fakeEtcd(ids.filter((id) => !id.equals(seen[0]!)));
    const first = await readPage(later.read, {
      start: prefix,
      rangeEnd: prefixEnd,
      limit: 100,
      minDepth: prefix.length + 1,
      depth,
      firstEnd: windowEnd(seen[0]!, depth),
    });
    expect(first.kvs.map((kv) => kv.key.toString('latin1'))).toEqual(
      later.sorted.slice(0, 100).map((key) => key.toString('latin1')),
    );
    expect(Math.max(...later.counts)).toBeLessThan(40_000 / 8);
    expect(later.counts.length).toBeLessThan(8);
  });

  it('settles in one page for ids that share a leading word (lease_), continuation pages', async () => {
    const etcd = fakeEtcd(leaseIds(40_000));
    const { seen } = await pageAll(etcd, 100);
    expect(seen).toHaveLength(40_000);
    // The first, plain read counts the range once; no later window comes near it (one window
    // per byte of `lease_` would each count all 40,000 again).
    expect(etcd.counts.slice(1).filter((count) => count >= 40_000 / 8)).toEqual([]);
  });

  it('settles in one page for ids that share a leading word, first pages only (as a listing UI reads)', async () => {
    const etcd = fakeEtcd(leaseIds(40_000));
    // What the etcd store keeps per prefix between pages: the depth and the first window's end.
    let hint: { depth: number; firstEnd?: Buffer } | undefined;
    for (let i = 0; i < 10; i++) {
      const page = await readPage(etcd.read, {
        start: prefix,
        rangeEnd: prefixEnd,
        limit: 100,
        minDepth: prefix.length + 1,
        depth: hint?.firstEnd ? hint.depth : 0,
        ...(hint?.firstEnd ? { firstEnd: hint.firstEnd } : {}),
      });
      expect(page.kvs.map((kv) => kv.key)).toEqual(etcd.sorted.slice(0, 100));
      hint = { depth: page.depth, firstEnd: windowEnd(page.kvs[0]!.key, page.depth) };
    }
    expect(etcd.counts.filter((count) => count >= 40_000 / 8)).toHaveLength(1);
    expect(etcd.counts.length).toBeLessThan(25);
  });

  it('crosses a gap in the keys in a few windows, not one read of the rest', async () => {
    // Ids under two leading bytes far apart ('A' and 'w').
    const ids = randomIds(20_000).map((key, i) =>
      under(`${i % 2 ? 'A' : 'w'}${key.subarray(prefix.length).toString('latin1')}`),
    );
    const etcd = fakeEtcd(ids);
    const { seen, pages } = await pageAll(etcd, 100);
    expect(seen).toHaveLength(20_000);
    // Crossing it costs a few widening windows, the last of which may count the block after
    // the gap ('w', 10,000 keys): a few times in the walk (at the crossing), not on every
    // page; nor many round trips per page.
    expect(etcd.counts.slice(1).filter((count) => count >= 2_500).length).toBeLessThanOrEqual(4);
    expect(etcd.counts.length / pages).toBeLessThan(4);
  });

  it('reads a small range in one read per page, as a plain read would', async () => {
    const etcd = fakeEtcd(randomIds(300));
    const { pages } = await pageAll(etcd, 100);
    expect(etcd.counts.length).toBe(pages);
  });

  it('settles deeper for time-ordered keys that share their leading digits', async () => {
    const etcd = fakeEtcd(
      Array.from({ length: 20_000 }, (_, i) => under(`${1_796_000_000_000 + i * 11}/id${i}`)),
    );
    await pageAll(etcd, 100);
    const later = etcd.counts.slice(etcd.counts.length / 2);
    expect(Math.max(...later)).toBeLessThan(20_000 / 2);
    expect(later.reduce((sum, count) => sum + count, 0) / later.length).toBeLessThan(1_000);
  });
});

describe('windowEnd', () => {
  const at = (key: string, depth: number, span?: number) =>
    windowEnd(Buffer.from(key, 'latin1'), depth, span)?.toString('latin1');
  it('is the key after every key sharing the first depth bytes, padded with "-"', () => {
    expect(at('ab', 2)).toBe('ac');
    expect(at('abc', 2)).toBe('ac');
    expect(at('a', 3)).toBe('a-.');
  });
  it('spans several values of the last byte, carrying into the byte before', () => {
    expect(at('ab', 2, 4)).toBe('af');
    expect(at('a\xfe', 2, 4)).toBe('b\x02');
    expect(at('a\xff', 2)).toBe('b\x00');
  });
  it('is undefined past the last key', () => {
    expect(at('\xff\xff', 2)).toBeUndefined();
    expect(at('\xff\xf0', 2, 32)).toBeUndefined();
  });
});
