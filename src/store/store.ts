/**
 * The one storage interface, in the shape of etcd's KV API: keys and values are strings,
 * every change bumps a store-wide revision, transactions compare revisions and apply puts
 * and deletes atomically, and watches replay changes from a revision.
 */

export interface KeyValue {
  key: string;
  value: string;
  /** Revision of the transaction that created the key (since its last delete). */
  createRevision: number;
  /** Revision of the transaction that last modified the key. */
  modRevision: number;
  /** Number of modifications since creation; 1 after the first put. */
  version: number;
}

/**
 * A guard on a key's modRevision: `modRevision: 0` means "the key must not exist".
 * The transaction's success branch runs only if every compare holds.
 */
export interface Compare {
  key: string;
  modRevision: number;
}

export type Op =
  | { type: 'put'; key: string; value: string }
  | { type: 'delete'; key: string }
  | { type: 'deletePrefix'; prefix: string };

/** A read in a transaction's failure branch: one key, or up to `limit` keys under a prefix. */
export type FailureRead = { key: string } | { prefix: string; startAfter?: string; limit: number };

export interface Txn {
  compare?: Compare[];
  success: Op[];
  failure?: Op[];
  /**
   * Read when a compare fails, in the same transaction (etcd: range requests in its failure
   * branch): what a writer that lost a race needs to try again, without another round trip.
   * They count as operations of the failure branch.
   */
  failureReads?: FailureRead[];
}

export interface TxnResult {
  succeeded: boolean;
  /** Store revision after the transaction (unchanged when nothing was written). */
  revision: number;
  /** When a compare failed: the `failureReads`, in order, as the transaction saw them. */
  reads?: Array<{ kvs: KeyValue[]; more: boolean }>;
}

export interface RangeOptions {
  /** Return at most this many keys, in key order. */
  limit?: number;
  /** Start strictly after this key (for paging). */
  startAfter?: string;
}

export interface RangeResult {
  kvs: KeyValue[];
  /** Store revision the read was served at. */
  revision: number;
  /** True when `limit` cut the result. */
  more: boolean;
}

export interface WatchEvent {
  type: 'put' | 'delete';
  key: string;
  /** The new value for puts; undefined for deletes. */
  value?: string;
  modRevision: number;
}

export interface WatchOptions {
  /**
   * Called once if the watch ends by itself after it was established (its history was
   * compacted while it was disconnected): the caller re-reads and watches again.
   */
  onError?: (err: Error) => void;
}

export interface Watcher {
  close(): Promise<void>;
}

export interface Store {
  readonly kind: 'etcd' | 'embedded';
  /**
   * The most operations one transaction may hold (etcd's `--max-txn-ops`, 128 by default, which
   * limits the compares, the success ops and the failure ops each). Callers that split work into
   * transactions (bulk revocation, the purger, group commit) size their chunks from it.
   */
  readonly maxTxnOps: number;
  get(key: string): Promise<KeyValue | undefined>;
  range(prefix: string, options?: RangeOptions): Promise<RangeResult>;
  /**
   * Several keys in few requests (etcd: one read-only transaction per 100 keys), in the order
   * asked; undefined where a key is missing. Optional: `getMany` in paged.ts falls back to gets.
   */
  getMany?(keys: string[]): Promise<Array<KeyValue | undefined>>;
  /**
   * How many keys lie under `prefix` (after `startAfter` when given), without reading them:
   * etcd's count-only range, so a count of a million keys is one small response.
   */
  count(prefix: string, options?: Pick<RangeOptions, 'startAfter'>): Promise<number>;
  txn(txn: Txn): Promise<TxnResult>;
  /**
   * Resolves when a writer should form its next group of changes (the committer calls it
   * before each round). A store whose commit blocks the thread (the embedded store) lets
   * the event loop turn first, so requests that arrived while it committed are read and
   * join the group; a store that does not block (etcd) has nothing to wait for.
   */
  ready?(): Promise<void>;
  /**
   * Calls `onEvent` for every change under `prefix` with modRevision >= `fromRevision`
   * (0 means "from now"), in revision order, then for every later change until closed.
   */
  watch(
    prefix: string,
    fromRevision: number,
    onEvent: (event: WatchEvent) => void,
    options?: WatchOptions,
  ): Promise<Watcher>;
  /** Resolves when the store answers; rejects with StoreUnavailableError when it does not. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
