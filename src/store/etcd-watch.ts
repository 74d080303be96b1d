/**
 * One etcd watch per Store watcher, on its own gRPC stream, so that resuming after a lost
 * connection is exact: it reconnects from the revision after the last event delivered (the
 * etcd3 client's own watcher resumes from a header revision, which can skip replayed events),
 * drops duplicates, and stops with WatchCompactedError if the history it needs is gone.
 */
import type { Etcd3, IDuplexStream, IWatchRequest, IWatchResponse } from 'etcd3';
import { castGrpcErrorMessage, GRPCOutOfRangeError } from 'etcd3';
import type { Logger } from '../lib/logger.js';
import { WatchCompactedError } from './errors.js';
import type { WatchEvent, Watcher } from './store.js';

export interface EtcdWatchDeps {
  client: Etcd3;
  key: Buffer;
  rangeEnd: Buffer;
  /** First revision to deliver; 0 = changes after the watch is established. */
  fromRevision: number;
  /** Bytes of namespace prefix to strip from keys. */
  stripPrefix: number;
  onEvent: (event: WatchEvent) => void;
  logger: Logger;
  timeoutMs: number;
  toError: (err: unknown) => Error;
  onClosed: () => void;
  onError?: (err: Error) => void;
}

const minBackoffMs = 100;
const maxBackoffMs = 2_000;

export async function createEtcdWatch(deps: EtcdWatchDeps): Promise<Watcher> {
  const { client, logger } = deps;
  if (deps.fromRevision > 0) await assertNotCompacted(deps);

  let next = deps.fromRevision;
  let closed = false;
  let stream: IDuplexStream<IWatchRequest, IWatchResponse> | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let backoffMs = minBackoffMs;
  let settleFirst: ((err?: Error) => void) | undefined;

  const established = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => fail(new Error(`DEADLINE_EXCEEDED: no watch within ${deps.timeoutMs} ms`)),
      deps.timeoutMs,
    );
    settleFirst = (err) => {
      settleFirst = undefined;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve();
    };
  });

  const stop = () => {
    if (closed) return;
    closed = true;
    clearTimeout(retryTimer);
    const current = stream;
    stream = undefined;
    current?.cancel();
    deps.onClosed();
  };

  /** The first attempt fails fast to the caller; later losses reconnect with backoff. */
  function fail(err: unknown) {
    if (closed) return;
    const current = stream;
    stream = undefined;
    current?.cancel();
    if (settleFirst) {
      const settle = settleFirst;
      stop();
      settle(err instanceof WatchCompactedError ? err : deps.toError(err));
      return;
    }
    if (err instanceof WatchCompactedError) {
      logger.error({ err }, 'etcd watch stopped: the history it needs was compacted');
      stop();
      deps.onError?.(err);
      return;
    }
    logger.warn({ reason: (err as Error).message, next }, 'etcd watch lost; reconnecting');
    retryTimer = setTimeout(connect, backoffMs);
    backoffMs = Math.min(backoffMs * 2, maxBackoffMs);
  }

  const handle = (res: IWatchResponse) => {
    if (res.canceled) {
      const compactRevision = Number(res.compact_revision);
      if (compactRevision > 0) return fail(new WatchCompactedError(next, compactRevision));
      // After an etcd restart the cached auth token is invalid; drop it so the next attempt logs in.
      if (/auth token/i.test(res.cancel_reason)) invalidateAuthToken(client);
      return fail(castGrpcErrorMessage(res.cancel_reason || 'etcd canceled the watch'));
    }
    if (res.created) {
      if (next === 0) next = Number(res.header.revision) + 1;
      backoffMs = minBackoffMs;
      settleFirst?.();
    }
    for (const { type, kv } of res.events) {
      const modRevision = Number(kv.mod_revision);
      // A reconnect may replay the last response's revision; deliver each change once.
      if (modRevision < next) continue;
      const key = kv.key.subarray(deps.stripPrefix).toString('utf8');
      const event: WatchEvent =
        type === 'Put'
          ? { type: 'put', key, value: kv.value.toString('utf8'), modRevision }
          : { type: 'delete', key, modRevision };
      try {
        deps.onEvent(event);
      } catch (err) {
        logger.error({ err }, 'a watch callback threw; the watch continues');
      }
      if (closed) return;
    }
    const last = res.events.at(-1);
    if (last) next = Math.max(next, Number(last.kv.mod_revision) + 1);
  };

  async function connect() {
    if (closed) return;
    let opened: IDuplexStream<IWatchRequest, IWatchResponse>;
    try {
      opened = await client.watchClient.watch();
    } catch (err) {
      return fail(err);
    }
    if (closed) {
      opened.cancel();
      return;
    }
    stream = opened;
    opened.on('data', (res: IWatchResponse) => stream === opened && handle(res));
    opened.on('error', (err: Error) => stream === opened && fail(err));
    opened.on('end', () => stream === opened && fail(new Error('UNAVAILABLE: the etcd watch stream ended')));
    opened.write({
      create_request: {
        key: deps.key,
        range_end: deps.rangeEnd,
        ...(next > 0 && { start_revision: next }),
      },
    });
  }

  void connect();
  await established;
  return {
    async close() {
      stop();
    },
  };
}

/**
 * etcd would accept the watch and cancel it a moment later; a read at the start revision
 * fails the same way at once, so the caller gets the error from watch() itself.
 */
async function assertNotCompacted(deps: EtcdWatchDeps): Promise<void> {
  try {
    await deps.client.kv.range({
      key: deps.key,
      range_end: deps.rangeEnd,
      revision: deps.fromRevision,
      limit: 1,
      count_only: true,
    });
  } catch (err) {
    if (err instanceof GRPCOutOfRangeError && /compacted/.test(err.message)) {
      throw new WatchCompactedError(deps.fromRevision);
    }
    // A revision in the future is fine: the watch waits for it.
    if (err instanceof GRPCOutOfRangeError && /future/.test(err.message)) return;
    throw deps.toError(err);
  }
}

function invalidateAuthToken(client: Etcd3): void {
  const pool = (client as unknown as { pool?: { authenticator?: { invalidateMetadata?: () => void } } }).pool;
  pool?.authenticator?.invalidateMetadata?.();
}
