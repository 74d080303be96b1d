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
 * a window holding many times the page narrows the next one (one byte deeper), a nearly
 * empty one widens it. Random ids settle a byte or two after the prefix; time-ordered keys
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
/** Nearly empty windows at the widest depth in a row before the rest is read in one go. */
const SPARSE_RUN = 8;
/**
 * Where a window's end is computed from a key shorter than the depth (the bare prefix of a
 * first page, or a window boundary), the key is taken as padded with this byte: the lowest
 * byte the store's keys use after a separator (`-`; digits and letters come after it). Only
 * the windows' sizes depend on it: every key from the cursor on is read whatever it holds.
 */
const PAD = 0x2d;

/** The key right after every key that starts with the first `depth` bytes of `key` (padded). */
function windowEnd(key: Buffer, depth: number): Buffer | undefined {
  const head =
    key.length >= depth
      ? key.subarray(0, depth)
      : Buffer.concat([key, Buffer.alloc(depth - key.length, PAD)]);
  for (let i = head.length - 1; i >= 0; i--) {
    if (head[i]! < 0xff) {
      const end = Buffer.from(head.subarray(0, i + 1));
      end[i] = head[i]! + 1;
      return end;
    }
  }
  return undefined;
}

/**
 * One page of at most `limit` keys from [start, rangeEnd) in key order; `rangeEnd`
 * undefined means no end. `depth` is where to start: where the previous page of the same
 * prefix settled (at least `minDepth`, one byte after the prefix), or 0 for one read of the
 * rest of the range, as for a prefix not seen yet. The result says where this page settled:
 * a small range stays at 0 (one read per page, as without windows), a large one is read
 * through windows from its second page on.
 */
export async function readPage<T>(
  read: ReadWindow<T>,
  options: { start: Buffer; rangeEnd: Buffer | undefined; limit: number; minDepth: number; depth: number },
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
  // Nearly empty windows at the widest depth in a row: the keys are few or far apart, and
  // the rest of the range is read at once rather than window by window.
  let sparse = 0;
  for (;;) {
    const boundary = depth === 0 || sparse >= SPARSE_RUN ? undefined : windowEnd(cursor, depth);
    // The window reaches the end of the range: one last read.
    const last =
      boundary === undefined || (rangeEnd !== undefined && Buffer.compare(boundary, rangeEnd) >= 0);
    const end = last ? (rangeEnd ?? Buffer.from([0])) : boundary;
    const window = await read(cursor, end, probing ? 1 : limit - kvs.length);
    revision ??= window.revision;
    if (last) {
      // What this read counted is the rest of the range: large enough for windows next time?
      depth = window.count > NARROW_AT * limit ? Math.max(depth, minDepth) : 0;
    } else if (window.count > NARROW_AT * limit) depth++;
    else if (window.count * WIDEN_AT < limit && depth > minDepth) depth--;
    sparse = window.count * WIDEN_AT < limit && depth === minDepth ? sparse + 1 : 0;
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
