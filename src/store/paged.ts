import type { KeyValue, Op, Store } from './store.js';

/**
 * Reads a prefix a page at a time, so that no single store request returns more than `pageSize`
 * keys: etcd refuses responses over 4 MiB, and a tenant's prefixes grow without bound. Every
 * read of a prefix in this codebase goes through here or passes its own `limit` (a test checks
 * that no unpaged `range` comes back).
 */
export async function* scanPrefix(
  store: Pick<Store, 'range'>,
  prefix: string,
  options: { pageSize?: number; startAfter?: string } = {},
): AsyncGenerator<KeyValue> {
  for await (const page of scanPages(store, prefix, options)) yield* page;
}

/** The same walk a page at a time, for callers that handle a page's keys together. */
export async function* scanPages(
  store: Pick<Store, 'range'>,
  prefix: string,
  options: { pageSize?: number; startAfter?: string } = {},
): AsyncGenerator<KeyValue[]> {
  const limit = options.pageSize ?? DEFAULT_PAGE;
  let after = options.startAfter;
  for (;;) {
    const page = await store.range(prefix, { limit, ...(after !== undefined ? { startAfter: after } : {}) });
    if (page.kvs.length > 0) yield page.kvs;
    if (!page.more || page.kvs.length === 0) return;
    after = page.kvs.at(-1)!.key;
  }
}

/**
 * Every key of a prefix that is small by construction (a tenant's key versions, a token's
 * children), read in pages; refuses to hold more than `max` in memory.
 */
export async function readSmallPrefix(
  store: Pick<Store, 'range'>,
  prefix: string,
  max = 10_000,
): Promise<KeyValue[]> {
  const kvs: KeyValue[] = [];
  for await (const kv of scanPrefix(store, prefix)) {
    if (kvs.length === max) throw new Error(`more than ${max} keys under ${prefix}; read it in pages`);
    kvs.push(kv);
  }
  return kvs;
}

/** Several keys at once: the store's `getMany` where it has one, else parallel gets. */
export function getMany(
  store: Pick<Store, 'get' | 'getMany'>,
  keys: string[],
): Promise<Array<KeyValue | undefined>> {
  if (store.getMany) return store.getMany(keys);
  return Promise.all(keys.map((key) => store.get(key)));
}

const DEFAULT_PAGE = 500;

/**
 * Unconditional writes (bookkeeping keys whose every op stands alone), as many per
 * transaction as the store takes.
 */
export async function writeInChunks(store: Pick<Store, 'txn' | 'maxTxnOps'>, ops: Op[]): Promise<void> {
  for (let i = 0; i < ops.length; i += store.maxTxnOps)
    await store.txn({ success: ops.slice(i, i + store.maxTxnOps) });
}
