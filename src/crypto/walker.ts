/**
 * A resumable walk over every record under some store prefixes, in key order, one page at a
 * time. After each page the position is handed to `save` (which persists it), so a walk that
 * stopped (a crash, an abort, a failing progress callback) continues from its last saved page.
 *
 * A walk has two passes. `rewrap` visits everything once; `sweep` then visits everything again
 * from the start, to catch records that requests in flight at the start of a rotation wrote
 * with the old key after the first pass had gone by. Visits must be idempotent: a page that
 * was being visited when the walk stopped is visited again on resume.
 */
import type { KeyValue, Store } from '../store/store.js';
import { CryptoError } from './errors.js';
import type { Cursor } from './key-records.js';
import { MAX_CAS_ATTEMPTS } from './tenant-keys.js';

export interface RotationProgress {
  /** Records visited in the first pass so far (including ones that needed no change). */
  done: number;
  total: number;
}

export interface RotationOptions {
  /** Called after every page is saved. If it throws, the rotation stops there and can be resumed. */
  onProgress?: (progress: RotationProgress) => void | Promise<void>;
  /** Stops the rotation after the current page; it can be resumed later. */
  signal?: AbortSignal;
}

export interface WalkState {
  phase: 'rewrap' | 'sweep';
  cursor: Cursor;
}

export const startState = (): WalkState => ({ phase: 'rewrap', cursor: { prefix: 0, after: null } });

export async function walk(args: {
  store: Store;
  prefixes: string[];
  state: WalkState;
  pageSize: number;
  visit: (kv: KeyValue) => Promise<void>;
  save: (state: WalkState) => Promise<void>;
  options: RotationOptions;
}): Promise<void> {
  const { store, prefixes, pageSize, options } = args;
  let { phase, cursor } = args.state;
  const counts = await count(store, prefixes, cursor);
  let done = phase === 'rewrap' ? counts.before : counts.total;
  const report = async () =>
    options.onProgress?.({ done: Math.min(done, counts.total), total: counts.total });
  await report();

  for (;;) {
    options.signal?.throwIfAborted();
    const prefix = prefixes[cursor.prefix];
    if (prefix === undefined) {
      if (phase === 'sweep') return;
      phase = 'sweep';
      cursor = { prefix: 0, after: null };
      await args.save({ phase, cursor });
      continue;
    }
    const page = await store.range(prefix, {
      limit: pageSize,
      ...(cursor.after ? { startAfter: cursor.after } : {}),
    });
    for (const kv of page.kvs) {
      await args.visit(kv);
      if (phase === 'rewrap') done++;
    }
    const last = page.kvs.at(-1);
    cursor =
      page.more && last
        ? { prefix: cursor.prefix, after: last.key }
        : { prefix: cursor.prefix + 1, after: null };
    await args.save({ phase, cursor });
    if (phase === 'rewrap' && page.kvs.length > 0) await report();
  }
}

/**
 * How many records there are, and how many come before the cursor (for resumed progress):
 * counted by the store, not read (a rewrap of a million sealed values read each one twice).
 */
async function count(
  store: Store,
  prefixes: string[],
  cursor: Cursor,
): Promise<{ total: number; before: number }> {
  let total = 0;
  let before = 0;
  for (const [index, prefix] of prefixes.entries()) {
    const all = await store.count(prefix);
    total += all;
    if (index < cursor.prefix) before += all;
    else if (index === cursor.prefix && cursor.after !== null)
      before += all - (await store.count(prefix, { startAfter: cursor.after }));
  }
  return { total, before };
}

/**
 * Rewrites one record with compare-and-swap, re-reading it when someone else changed it
 * meanwhile. `next` returns the new value, or undefined when the record needs nothing.
 * Resolves true when it wrote; a record that keeps changing fails the rotation (rerun it).
 */
export async function rewriteRecord(
  store: Store,
  first: KeyValue,
  next: (kv: KeyValue) => Promise<string | undefined>,
): Promise<boolean> {
  let kv: KeyValue | undefined = first;
  for (let attempt = 0; kv && attempt < MAX_CAS_ATTEMPTS; attempt++) {
    const value = await next(kv);
    if (value === undefined) return false;
    const result = await store.txn({
      compare: [{ key: kv.key, modRevision: kv.modRevision }],
      success: [{ type: 'put', key: kv.key, value }],
    });
    if (result.succeeded) return true;
    kv = await store.get(kv.key);
  }
  if (kv)
    throw new CryptoError(
      'rotation_conflict',
      `record ${kv.key} kept changing during the rotation; run it again`,
    );
  return false;
}
