/**
 * Paged range reads that cost what the page costs, not what the whole range costs.
 *
 * etcd answers a range read with a limit by visiting every key of the range in its index to
 * count them (`treeIndex.Revisions` in etcd 3.6 counts the total even when a limit is given),
 * so reading 100 keys of a 100,000-key prefix costs as much as reading all of them: a page
 * took seconds and a bulk revocation, which reads the index page after page, slowed down
 * with every lease in the tenant.
 *
 * This reads a page through key windows instead: [start, the next key that differs from
 * `start` in its first `depth` bytes), then the window after it, and so on, until the page is
 * full or the range ends. Each window's count comes back with the read, so the depth adapts:
 * a window holding many times the page narrows the next one (a quarter of the values of its
 * last byte, or one byte deeper), a nearly empty one widens it (twice the values of its last
 * byte, one byte shallower once that spans them all), so a gap in the keys is crossed in a
 * few reads, not by reading the rest of the range. Random ids settle a byte or two after the prefix; time-ordered keys
 * deeper, where their timestamps start to differ. A page's revision is its first window's,
 * the earliest: a caller that watches from there replays whatever changed during the others.
 */

export interface WindowRead<T> {
  kvs: T[];
  more: boolean;
  /** Keys in the window (etcd's count). */
  count: number;
  revision: number;
}

/** Reads [key, end) with a limit. */
export type ReadWindow<T> = (key: Buffer, end: Buffer, limit: number) => Promise<WindowRead<T>>;

/** A window holding this many times the page is narrowed; one under 1/WIDEN_AT of it widened. */
const NARROW_AT = 16;
const WIDEN_AT = 8;
/** Values of a byte: a window spanning them all is one value of the byte before. */
const MAX_SPAN = 256;
/**
 * Where a window's end is computed from a key shorter than the depth (the bare prefix of a
 * first page, or a window boundary), the key is taken as padded with this byte: the lowest
 * byte the store's keys use after a separator (`-`; digits and letters come after it). Only
 * the windows' sizes depend on it: every key from the cursor on is read whatever it holds.
 */
const PAD = 0x2d;

/**
 * The key right after every key whose first `depth` bytes (`key`'s, padded) are at most
 * `span - 1` past `key`'s in their last byte: the end of a window of `span` values of that
 * byte. Undefined past the last possible key.
 */
export function windowEnd(key: Buffer, depth: number, span = 1): Buffer | undefined {
  const head = Buffer.alloc(depth, PAD);
  key.copy(head, 0, 0, Math.min(depth, key.length));
  let carry = span;
  for (let i = depth - 1; i >= 0; i--) {
    const sum = head[i]! + carry;
    head[i] = sum & 0xff;
    carry = sum >> 8;
    if (carry === 0) return head;
  }
  return undefined;
}

/**
 * One page of at most `limit` keys from [start, rangeEnd) in key order; `rangeEnd`
 * undefined means no end. `depth` is where to start: where the previous page of the same
 * prefix settled (at least `minDepth`, one byte after the prefix), or 0 for one read of the
 * rest of the range, as for a prefix not seen yet. The result says where this page settled:
 * a small range stays at 0 (one read per page, as without windows), a large one is read
 * through windows from then on, its first page too (from the bare prefix).
 */
export async function readPage<T extends { key: Buffer }>(
  read: ReadWindow<T>,
  options: {
    start: Buffer;
    rangeEnd: Buffer | undefined;
    limit: number;
    minDepth: number;
    depth: number;
    /**
     * Where the first window ends, instead of `depth` bytes after `start`: for a first page,
     * the end of the window of the first key the last first page found, so the window holds
     * what was added before it since, and that key's neighbours.
     */
    firstEnd?: Buffer;
  },
): Promise<{ kvs: T[]; more: boolean; revision: number; depth: number }> {
  const { rangeEnd, limit, minDepth } = options;
  const kvs: T[] = [];
  // 0: no windows (a small range, or one not seen yet): the rest of the range in one read,
  // whose count says whether the next page of this prefix should use windows.
  let depth = options.depth > 0 ? Math.max(options.depth, minDepth) : 0;
  let cursor = options.start;
  let revision: number | undefined;
  // Once the page is full at a window's end, the windows after it are only probed (limit 1)
  // for whether anything follows.
  let probing = false;
  // How many values of its last byte a window spans: more than one after nearly empty
  // windows (a gap in the keys).
  let span = 1;
  for (;;) {
    const boundary =
      depth === 0
        ? undefined
        : revision === undefined && options.firstEnd !== undefined
          ? options.firstEnd
          : windowEnd(cursor, depth, span);
    // The window reaches the end of the range: one last read.
    const last =
      boundary === undefined || (rangeEnd !== undefined && Buffer.compare(boundary, rangeEnd) >= 0);
    const end = last ? (rangeEnd ?? Buffer.from([0])) : boundary;
    const window = await read(cursor, end, probing ? 1 : limit - kvs.length);
    revision ??= window.revision;
    // A window this crowded held more than the page (so the page ends with it): the next
    // page's windows go at least as deep as the keys it returned have in common. Ids that
    // share a leading word (`lease_`) settle in one page, not one page per byte of the word,
    // each of which would count the whole range again.
    const crowded = window.count > NARROW_AT * limit;
    if (last) {
      // A plain read counted the rest of the range: large enough for windows next time? (A
      // last window says nothing about the range's size: its end was near.)
      if (depth === 0 && crowded) depth = Math.max(minDepth, sharedDepth(window.kvs));
    } else if (crowded) {
      if (span > 1) span = Math.max(1, span >> 2);
      else depth = Math.max(depth + 1, sharedDepth(window.kvs));
    } else if (window.count * WIDEN_AT < limit) {
      // Twice the values of the last byte; all of them are one value of the byte before.
      span *= 2;
      if (span >= MAX_SPAN && depth > minDepth) {
        depth--;
        span = 1;
      } else span = Math.min(span, MAX_SPAN);
    }
    if (probing) {
      if (window.kvs.length > 0) return { kvs, more: true, revision, depth };
    } else {
      kvs.push(...window.kvs);
      if (window.more) return { kvs, more: true, revision, depth };
      probing = kvs.length >= limit;
    }
    if (last) return { kvs, more: false, revision, depth };
    cursor = boundary;
  }
}

/** How many leading bytes the first and last of `kvs` share (0 for fewer than two). */
function sharedDepth(kvs: Array<{ key: Buffer }>): number {
  if (kvs.length < 2) return 0;
  const first = kvs[0]!.key;
  const last = kvs.at(-1)!.key;
  let n = 0;
  while (n < first.length && n < last.length && first[n] === last[n]) n++;
  return n;
}
