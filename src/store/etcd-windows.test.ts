import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { readPage, type WindowRead } from './etcd-windows.js';

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
async function pageAll(etcd: ReturnType<typeof fakeEtcd>, limit: number) {
  const seen: Buffer[] = [];
  let depth = 0;
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
  return { seen, pages };
}

/** Ids spread like random ones, but the same on every run (a test must not depend on luck). */
const randomIds = (n: number) =>
  Array.from({ length: n }, (_, i) =>
    under(createHash('sha256').update(String(i)).digest('base64url').slice(0, 16)),
  );

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
    // The first page reads (counts) the whole range once, as a plain read would; from then on
    // a window holds a few hundred to a few thousand of the 40,000 keys. Crossing a run of
    // leading bytes no id uses (':' to '@' in base64url) can end in one plain read of the
    // rest (the sparse fallback): rare, not per page.
    expect(etcd.counts[0]).toBe(40_000);
    const large = etcd.counts.slice(1).filter((count) => count >= 4_000);
    expect(large.length).toBeLessThanOrEqual(2);
    expect(large.length / pages).toBeLessThan(0.01);
    // And it does not cost many round trips per page either.
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
