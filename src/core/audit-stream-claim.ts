/**
 * A stream's cursor kept in the store, and the claim that makes exactly one process its
 * writer. Several API replicas configured with the same stream name all run a follower;
 * the one holding the claim writes the stream, the others stand by and take over when the
 * holder releases it (a clean shutdown) or stops renewing it (a crash, a lost network).
 *
 * One key holds both `{holder, cursor}`, and every write to it compares its modRevision:
 * a holder that was replaced (it paused past the time-to-live and another took over) fails
 * its next cursor save and steps down. Lines it wrote meanwhile are repeated by the new
 * holder, never lost, because a cursor only ever moves after its lines were written.
 *
 * Takeover needs no synchronized clocks: a standby takes the claim when the key's
 * modRevision has not changed for `ttlMs` by its own monotonic clock.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Store } from '../store/store.js';
import type { CursorStore, StreamCursor } from './audit-follower.js';
import { keys } from './keys.js';

export class StreamClaimLostError extends Error {
  override name = 'StreamClaimLostError';
}

interface ClaimRecord {
  /** The process writing the stream; null after a clean release. */
  holder: string | null;
  cursor: StreamCursor;
}

export interface StoreCursorOptions {
  store: Store;
  /** The stream's name: replicas with the same name share one cursor and one writer. */
  name: string;
  /** A holder that has not renewed for this long is taken over; 15 s. */
  ttlMs?: number;
  /** This process in the claim (default: host name, pid and a random suffix). */
  holder?: string;
  /** A monotonic clock in milliseconds (injected in tests). */
  now?: () => number;
}

export interface ClaimedCursorStore extends CursorStore {
  /**
   * Renews the claim when this process holds it, takes it when it is free or its holder
   * stopped renewing; resolves whether this process is now the stream's writer.
   */
  claim(): Promise<boolean>;
  /** Hands the claim back (the cursor stays), so a standby takes over at once. */
  release(): Promise<void>;
}

export const STREAM_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function storeCursorStore(options: StoreCursorOptions): ClaimedCursorStore {
  const { store } = options;
  if (!STREAM_NAME.test(options.name)) {
    throw new Error(`audit stream name "${options.name}" must be 1-63 letters, digits, ".", "_" or "-"`);
  }
  const key = keys.auditStream(options.name);
  const ttlMs = options.ttlMs ?? 15_000;
  const now = options.now ?? (() => performance.now());
  const holder = options.holder ?? `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
  /** The key's modRevision when this process last wrote it as holder (0: not holding). */
  let heldAt = 0;
  let cursor: StreamCursor = { tenants: {} };
  /** Whether the key held no cursor when this process took it (the stream starts fresh). */
  let fresh = true;
  /** The other holder's modRevision and when this process first saw it unchanged. */
  let watched: { modRevision: number; since: number } | undefined;

  const parse = (value: string): ClaimRecord => {
    const parsed = JSON.parse(value) as ClaimRecord;
    if (typeof parsed?.cursor?.tenants !== 'object' || parsed.cursor.tenants === null) {
      throw new Error(
        `the audit stream cursor at ${key} is malformed; delete the key to replay the whole log`,
      );
    }
    return parsed;
  };

  /** Writes the claim if the key is still at `modRevision`; the new modRevision or 0. */
  async function write(modRevision: number, record: ClaimRecord): Promise<number> {
    const result = await store.txn({
      compare: [{ key, modRevision }],
      success: [{ type: 'put', key, value: JSON.stringify(record) }],
    });
    return result.succeeded ? result.revision : 0;
  }

  return {
    async claim() {
      const kv = await store.get(key);
      if (heldAt > 0) {
        if (kv && kv.modRevision === heldAt) {
          heldAt = await write(heldAt, { holder, cursor });
          return heldAt > 0;
        }
        heldAt = 0;
      }
      const current = kv ? parse(kv.value) : undefined;
      let free = !current || current.holder === null || current.holder === holder;
      if (!free && kv) {
        if (!watched || watched.modRevision !== kv.modRevision) {
          watched = { modRevision: kv.modRevision, since: now() };
        }
        free = now() - watched.since >= ttlMs;
      }
      if (!free) return false;
      const taken = current?.cursor ?? { tenants: {} };
      heldAt = await write(kv?.modRevision ?? 0, { holder, cursor: taken });
      if (heldAt > 0) {
        cursor = taken;
        fresh = current === undefined;
        watched = undefined;
      }
      return heldAt > 0;
    },
    async load() {
      if (heldAt === 0) throw new StreamClaimLostError('this process does not hold the audit stream');
      return fresh ? undefined : structuredClone(cursor);
    },
    async save(next) {
      const at = heldAt > 0 ? await write(heldAt, { holder, cursor: next }) : 0;
      if (at === 0) {
        heldAt = 0;
        throw new StreamClaimLostError(`another process took over the audit stream "${options.name}"`);
      }
      heldAt = at;
      fresh = false;
      cursor = structuredClone(next);
    },
    async release() {
      if (heldAt === 0) return;
      await write(heldAt, { holder: null, cursor });
      heldAt = 0;
    },
  };
}
