/**
 * The etcd store: the Store interface on a real etcd v3 cluster through the `etcd3` client.
 * Every call is one gRPC round trip with a short deadline, so a dead etcd fails fast with
 * StoreUnavailableError instead of hanging; the client reconnects by itself when etcd returns.
 * Nothing here retries a transaction that may have reached etcd: a retried write whose first
 * attempt did land would turn into a false conflict, so the caller decides. With several
 * endpoints, a member that cannot be connected to is skipped (etcd-hosts.ts).
 */
import { readFileSync } from 'node:fs';
import { Etcd3, type IOptions, type IRequestOp } from 'etcd3';
import { badRequest } from '../lib/errors.js';
import { type Logger, silentLogger } from '../lib/logger.js';
import { StoreClosedError } from './errors.js';
import { describeEndpoints, toStoreError } from './etcd-errors.js';
import { createHostGuard, unreachable } from './etcd-hosts.js';
import { createEtcdWatch } from './etcd-watch.js';
import { readPage, windowEnd } from './etcd-windows.js';
import { prefixEnd, rangeStart, utf8 } from './keys.js';
import type { FailureRead, KeyValue, Op, RangeResult, Store, TxnResult, Watcher } from './store.js';
import { assertKey, validateTxn } from './validate-txn.js';

export interface EtcdTlsOptions {
  /** CA certificate that signed etcd's serving certificate: PEM text or a path to a PEM file. */
  ca?: string;
  /** Client certificate for etcd's --client-cert-auth: PEM text or a path. Needs `key`. */
  cert?: string;
  /** The client certificate's private key: PEM text or a path. */
  key?: string;
}

export interface EtcdStoreOptions {
  /** Client URLs, e.g. `https://etcd-0:2379`. Use `https://` when etcd serves TLS. */
  endpoints: string[];
  tls?: EtcdTlsOptions;
  username?: string;
  password?: string;
  /** Namespaces every key (e.g. `vault/`); results come back without it. */
  prefix?: string;
  logger?: Logger;
  /** Deadline for each call, in milliseconds (default 3000). */
  timeoutMs?: number;
  /**
   * etcd's `--max-txn-ops` (default 128): the most compares, or operations in a branch, one
   * transaction may hold. Raising it on both sides makes bulk work take fewer transactions.
   * Checked at open: an etcd that refuses transactions of this size fails the open.
   */
  maxTxnOps?: number;
}

const defaultTimeoutMs = 3_000;
/** etcd's own default `--max-txn-ops`. */
export const etcdDefaultMaxTxnOps = 128;

/** PEM text is used as is; anything else is read as a file path. */
export function readPem(value: string, what: string): Buffer {
  if (value.includes('-----BEGIN')) return Buffer.from(value);
  try {
    return readFileSync(value);
  } catch (err) {
    throw badRequest(
      `cannot read the etcd TLS ${what} file ${value}: ${(err as NodeJS.ErrnoException).code}`,
    );
  }
}

export function etcdClientOptions(options: EtcdStoreOptions): IOptions {
  if (options.endpoints.length === 0) throw badRequest('the etcd store needs at least one endpoint');
  if ((options.username === undefined) !== (options.password === undefined)) {
    throw badRequest('etcd auth needs both a username and a password');
  }
  const tls = options.tls;
  if (tls && (tls.cert === undefined) !== (tls.key === undefined)) {
    throw badRequest('an etcd client certificate needs both cert and key');
  }
  const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
  return {
    hosts: options.endpoints,
    ...(tls && {
      credentials: {
        // grpc-js falls back to the system roots when no CA is given.
        rootCertificate: (tls.ca ? readPem(tls.ca, 'CA') : null) as Buffer,
        ...(tls.cert && { certChain: readPem(tls.cert, 'certificate') }),
        ...(tls.key && { privateKey: readPem(tls.key, 'key') }),
      },
    }),
    ...(options.username !== undefined && {
      auth: { username: options.username, password: options.password! },
    }),
    dialTimeout: timeoutMs,
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + timeoutMs }),
    // No retries and no circuit breaker: only a member that cannot be connected to is skipped
    // (and a call that never reached it sent to another), see etcd-hosts.ts.
    faultHandling: (() => {
      const guard = createHostGuard();
      return { global: guard.global, host: guard.host };
    })(),
    grpcOptions: {
      // Reconnect quickly once etcd is back, and notice a silent peer.
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 2_000,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': Math.max(timeoutMs, 1_000),
      'grpc.use_local_subchannel_pool': 1,
    },
  };
}

export async function openEtcdStore(options: EtcdStoreOptions): Promise<Store> {
  const logger = options.logger ?? silentLogger;
  const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
  const maxTxnOps = options.maxTxnOps ?? etcdDefaultMaxTxnOps;
  const unseenPrefixTimeoutMs = timeoutMs * UNSEEN_PREFIX_TIMEOUT_FACTOR;
  const getManyChunk = Math.min(maxTxnOps, GET_MANY_MAX);
  const endpoints = describeEndpoints(options.endpoints);
  const client = new Etcd3(etcdClientOptions(options));
  const namespace = utf8(options.prefix ?? '');
  const watchers = new Set<Watcher>();
  /**
   * Per prefix, the window depth its last page settled at and where a first page's first
   * window ends: after the first key the last first page found (etcd-windows.ts).
   */
  const pageHints = new Map<string, { depth: number; firstEnd?: Buffer }>();
  let closed = false;

  const fail = (what: string) => (err: unknown) => {
    throw toStoreError(err, { what, endpoints, timeoutMs });
  };
  /**
   * A read changes nothing, so one that failed because its member could not be reached or did
   * not answer is sent again, once per member: the guard skips the member that failed.
   */
  const read = async <T>(what: string, call: () => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        if (closed || !unreachable(err) || attempt >= options.endpoints.length) fail(what)(err);
        logger.debug({ what, attempt }, 'etcd read sent again: its member did not answer');
      }
    }
  };
  const assertOpen = () => {
    if (closed) throw new StoreClosedError('etcd');
  };
  const full = (key: string) => (namespace.length === 0 ? utf8(key) : Buffer.concat([namespace, utf8(key)]));
  /** etcd has no empty key: "all keys" is the range from \0 to \0. */
  const span = (prefix: string) => {
    const start = full(prefix);
    return {
      key: start.length > 0 ? start : Buffer.from([0]),
      rangeEnd: prefixEnd(start) ?? Buffer.from([0]),
    };
  };
  const toKeyValue = (kv: {
    key: Buffer;
    value: Buffer;
    create_revision: string;
    mod_revision: string;
    version: string;
  }): KeyValue => ({
    key: kv.key.subarray(namespace.length).toString('utf8'),
    value: kv.value.toString('utf8'),
    createRevision: Number(kv.create_revision),
    modRevision: Number(kv.mod_revision),
    version: Number(kv.version),
  });
  const toRequestOp = (op: Op): IRequestOp => {
    if (op.type === 'put') return { request_put: { key: full(op.key), value: utf8(op.value) } };
    if (op.type === 'delete') return { request_delete_range: { key: full(op.key) } };
    const { key, rangeEnd } = span(op.prefix);
    return { request_delete_range: { key, range_end: rangeEnd } };
  };
  const toReadOp = (read: FailureRead): IRequestOp => {
    if ('key' in read) return { request_range: { key: full(read.key) } };
    const { key, rangeEnd } = span(read.prefix);
    const start = read.startAfter === undefined ? key : rangeStart(key, full(read.startAfter));
    return { request_range: { key: start, range_end: rangeEnd, limit: read.limit } };
  };

  /**
   * A read-only transaction as large as the configured limit, so an etcd whose own
   * `--max-txn-ops` is lower fails the open, not the first bulk revocation.
   */
  const checkMaxTxnOps = async () => {
    const probe = { request_range: { key: full('\u0000max-txn-ops-probe'), count_only: true } };
    try {
      await client.kv.txn({ compare: [], success: Array(maxTxnOps).fill(probe), failure: [] });
    } catch (err) {
      if (/too many operations/i.test((err as Error).message)) {
        throw badRequest(
          `etcd at ${endpoints} refuses transactions of ${maxTxnOps} operations: start etcd with --max-txn-ops=${maxTxnOps} or more, or lower --etcd-max-txn-ops to etcd's (default ${etcdDefaultMaxTxnOps})`,
        );
      }
      fail('transaction size check')(err);
    }
  };

  const store: Store = {
    kind: 'etcd',
    maxTxnOps,

    async get(key) {
      assertOpen();
      assertKey(key);
      const res = await read('read', () => client.kv.range({ key: full(key) }));
      const kv = res.kvs[0];
      return kv ? toKeyValue(kv) : undefined;
    },

    async getMany(keys) {
      assertOpen();
      const out: Array<KeyValue | undefined> = [];
      for (let i = 0; i < keys.length; i += getManyChunk) {
        const chunk = keys.slice(i, i + getManyChunk);
        for (const key of chunk) assertKey(key);
        const res = await read('read', () =>
          client.kv.txn({
            compare: [],
            success: chunk.map((key) => ({ request_range: { key: full(key) } })),
            failure: [],
          }),
        );
        for (const response of res.responses) {
          const kv = response.response_range?.kvs[0];
          out.push(kv ? toKeyValue(kv) : undefined);
        }
      }
      return out;
    },

    async range(prefix, rangeOptions = {}): Promise<RangeResult> {
      assertOpen();
      const { key, rangeEnd } = span(prefix);
      const start =
        rangeOptions.startAfter === undefined ? key : rangeStart(key, full(rangeOptions.startAfter));
      const limit = rangeOptions.limit && rangeOptions.limit > 0 ? rangeOptions.limit : 0;
      if (limit === 0) {
        const res = await read('range read', () =>
          client.kv.range({ key: start, range_end: rangeEnd, limit }),
        );
        return { kvs: res.kvs.map(toKeyValue), revision: Number(res.header.revision), more: res.more };
      }
      // A page: read through key windows, so it costs what the page costs (etcd-windows.ts).
      const firstPage = rangeOptions.startAfter === undefined;
      const hint = pageHints.get(prefix);
      // A prefix this process has not read yet is read once plainly, and etcd counts every key
      // of it (a million: seconds on a busy machine). That one read gets a longer deadline, so
      // it succeeds once and the prefix's pages go through windows from then on.
      const callOptions = hint === undefined ? { deadline: Date.now() + unseenPrefixTimeoutMs } : undefined;
      const page = await readPage(
        async (from, to, windowLimit) => {
          const res = await read('range read', () =>
            client.kv.range({ key: from, range_end: to, limit: windowLimit }, callOptions),
          );
          return {
            kvs: res.kvs,
            more: res.more,
            count: Number(res.count),
            revision: Number(res.header.revision),
          };
        },
        {
          start,
          rangeEnd: rangeEnd.length === 1 && rangeEnd[0] === 0 ? undefined : rangeEnd,
          limit,
          minDepth: key.length + 1,
          // A prefix not read yet is read once plainly; its count says whether its pages go
          // through windows from then on. A first page starts with the window of the first key
          // the last first page found (a first key is found only by reading from the prefix).
          depth: firstPage && !hint?.firstEnd ? 0 : (hint?.depth ?? 0),
          ...(firstPage && hint?.firstEnd ? { firstEnd: hint.firstEnd } : {}),
        },
      );
      // A first page that holds the whole prefix: a small prefix, read plainly from now on.
      if (firstPage && !page.more) page.depth = 0;
      const first = page.kvs[0]?.key;
      const firstEnd =
        page.depth === 0 ? undefined : firstPage ? first && windowEnd(first, page.depth) : hint?.firstEnd;
      // The least recently read prefix is forgotten first (forgetting a large one costs a
      // count of all of it), not every prefix at once.
      pageHints.delete(prefix);
      pageHints.set(prefix, { depth: page.depth, ...(firstEnd ? { firstEnd } : {}) });
      if (pageHints.size > MAX_PAGE_HINTS) pageHints.delete(pageHints.keys().next().value!);
      return { kvs: page.kvs.map(toKeyValue), revision: page.revision, more: page.more };
    },

    async count(prefix, countOptions = {}): Promise<number> {
      assertOpen();
      const { key, rangeEnd } = span(prefix);
      const start =
        countOptions.startAfter === undefined ? key : rangeStart(key, full(countOptions.startAfter));
      const res = await read('count', () =>
        client.kv.range({ key: start, range_end: rangeEnd, count_only: true }),
      );
      return Number(res.count);
    },

    async txn(txn): Promise<TxnResult> {
      assertOpen();
      validateTxn(txn, maxTxnOps);
      const res = await client.kv
        .txn({
          compare: (txn.compare ?? []).map((compare) => ({
            key: full(compare.key),
            target: 'Mod',
            result: 'Equal',
            // A missing key compares as mod revision 0, which is how "must not exist" is spelled.
            mod_revision: compare.modRevision,
          })),
          success: txn.success.map(toRequestOp),
          failure: [...(txn.failure ?? []).map(toRequestOp), ...(txn.failureReads ?? []).map(toReadOp)],
        })
        .catch(fail('transaction'));
      const result: TxnResult = { succeeded: res.succeeded, revision: Number(res.header.revision) };
      if (!res.succeeded && txn.failureReads?.length) {
        result.reads = res.responses.slice(txn.failure?.length ?? 0).map((response) => ({
          kvs: (response.response_range?.kvs ?? []).map(toKeyValue),
          more: response.response_range?.more ?? false,
        }));
      }
      return result;
    },

    async watch(prefix, fromRevision, onEvent, options) {
      assertOpen();
      const { key, rangeEnd } = span(prefix);
      let watcher: Watcher | undefined;
      watcher = await createEtcdWatch({
        client,
        key,
        rangeEnd,
        fromRevision,
        stripPrefix: namespace.length,
        onEvent,
        logger,
        timeoutMs,
        toError: (err) => toStoreError(err, { what: 'watch', endpoints, timeoutMs }),
        onClosed: () => watcher && watchers.delete(watcher),
        ...(options?.onError ? { onError: options.onError } : {}),
      });
      watchers.add(watcher);
      return watcher;
    },

    async ping() {
      assertOpen();
      // One key's linearizable read: it needs a quorum, and costs the same with a million keys
      // (a range over the keyspace, even count-only, visits every key). The prefix itself is a
      // key the store's etcd user may read; without a prefix, the key "\0".
      const key = namespace.length > 0 ? namespace : Buffer.from([0]);
      await client.kv.range({ key }).catch(fail('health check'));
    },

    async close() {
      if (closed) return;
      closed = true;
      await Promise.all([...watchers].map((watcher) => watcher.close()));
      client.close();
    },
  };

  try {
    await store.ping();
    if (maxTxnOps > etcdDefaultMaxTxnOps) await checkMaxTxnOps();
  } catch (err) {
    client.close();
    throw err;
  }
  logger.debug({ endpoints, prefix: options.prefix ?? '' }, 'etcd store connected');
  return store;
}

/** Prefixes whose window depth a store remembers. */
const MAX_PAGE_HINTS = 10_000;
/** How many times the usual deadline the first, plain read of a prefix may take. */
const UNSEEN_PREFIX_TIMEOUT_FACTOR = 10;

/** Keys read per transaction by getMany at most (and never more than max-txn-ops). */
const GET_MANY_MAX = 500;
