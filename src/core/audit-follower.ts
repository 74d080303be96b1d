/**
 * The audit stream as a follower of the chain. The store is the source of truth; the
 * stream (JSON lines for a SIEM) is a copy that trails it by a persisted cursor, the last
 * sequence number written per tenant. So a record reaches the stream whether it was
 * committed by this process, by another replica, by `vault operator root-token` while the
 * server was down, or by a transaction that committed after its request timed out.
 *
 * Delivery is at least once, in chain order per tenant: lines are written and synced before
 * the cursor moves, so a crash in between repeats lines on restart, never drops them
 * (a consumer deduplicates by tenant and seq). A commit in this process wakes the follower
 * (and hands it the records, so the common case reads nothing back); a poll every `pollMs`
 * catches everything else. Writes wait for the output to drain (back-pressure) and the
 * committer never waits for the stream.
 */
import type { AuditCheckpoint, AuditRecord } from '../contract/audit.js';
import { auditCheckpoint } from '../contract/audit.js';
import type { Logger } from '../lib/logger.js';
import type { Store } from '../store/store.js';
import { parseHead } from './audit-chain.js';
import type { AuditSink } from './audit-sink.js';
import { keys } from './keys.js';

export interface StreamCursor {
  /** Per tenant: the last record seq and the last checkpoint seq written to the stream. */
  tenants: Record<string, { seq: number; checkpointSeq: number }>;
}

export interface StreamOutput {
  /** Appends lines, resolving once the output took them (after a drain if it was full). */
  write(lines: string[]): Promise<void>;
  /** Makes what was written durable (fsync for a file; nothing for stdout). */
  sync(): Promise<void>;
  close(): Promise<void>;
}

export interface CursorStore {
  /** The saved cursor, or undefined when there is none yet. */
  load(): Promise<StreamCursor | undefined>;
  save(cursor: StreamCursor): Promise<void>;
}

export interface AuditFollowerDeps {
  store: Store;
  output: StreamOutput;
  cursor: CursorStore;
  logger: Logger;
  /** How often every tenant is checked for records this process did not commit; 2 s. */
  pollMs?: number;
  /** Without a saved cursor: replay every record ('beginning'), or start at today's heads. */
  startAt: 'beginning' | 'heads';
}

const PAGE = 1000;

export interface AuditFollower extends AuditSink {
  start(): Promise<void>;
  /** Resolves once everything committed so far is in the stream (tests, shutdown). */
  catchUp(): Promise<void>;
}

export function createAuditFollower(deps: AuditFollowerDeps): AuditFollower {
  const { store, output, logger } = deps;
  let cursor: StreamCursor = { tenants: {} };
  const handed = new Map<string, AuditRecord[]>();
  const checkpoints = new Map<string, AuditCheckpoint>();
  const woken = new Set<string>();
  let chain: Promise<void> = Promise.resolve();
  let scheduled = false;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const position = (tenant: string) => ({ ...(cursor.tenants[tenant] ?? { seq: 0, checkpointSeq: 0 }) });

  async function allTenants(): Promise<string[]> {
    const found = new Set(Object.keys(cursor.tenants));
    const prefix = keys.tenants();
    let startAfter: string | undefined;
    for (;;) {
      const page = await store.range(prefix, { limit: PAGE, ...(startAfter ? { startAfter } : {}) });
      for (const kv of page.kvs) found.add(kv.key.slice(prefix.length));
      if (!page.more || page.kvs.length === 0) break;
      startAfter = page.kvs.at(-1)!.key;
    }
    return [...found];
  }

  /**
   * Lines for the tenant's records after the cursor, from what was handed over or from the
   * store, and the position after them (the cursor moves only once they are written).
   */
  async function followTenant(
    tenant: string,
    full: boolean,
  ): Promise<{ lines: string[]; at: StreamCursor['tenants'][string] }> {
    const at = position(tenant);
    const lines: string[] = [];
    const given = (handed.get(tenant) ?? []).filter((record) => record.seq > at.seq);
    const contiguous = given.length > 0 && given.every((r, i) => r.seq === at.seq + 1 + i);
    if (contiguous) {
      for (const record of given) lines.push(JSON.stringify(record));
      at.seq = given.at(-1)!.seq;
    }
    // The common case (this process's own commits, in order) reads nothing back; anything
    // else (other processes, late commits, a gap) comes from the store.
    if (contiguous && !full) return { lines, at: withCheckpoint(at, lines, checkpoints.get(tenant)) };
    let startAfter = keys.auditRecord(tenant, at.seq);
    for (;;) {
      const page = await store.range(keys.auditRecords(tenant), { limit: PAGE, startAfter });
      for (const kv of page.kvs) {
        const seq = Number(kv.key.slice(keys.auditRecords(tenant).length));
        if (seq !== at.seq + 1) break;
        lines.push(kv.value);
        at.seq = seq;
      }
      if (!page.more || page.kvs.length === 0) break;
      startAfter = page.kvs.at(-1)!.key;
    }
    const checkpoint = checkpoints.get(tenant) ?? (full ? await storedCheckpoint(tenant) : undefined);
    return { lines, at: withCheckpoint(at, lines, checkpoint) };
  }

  /** A checkpoint goes out once the records it covers are in the stream. */
  function withCheckpoint(
    at: StreamCursor['tenants'][string],
    lines: string[],
    checkpoint: AuditCheckpoint | undefined,
  ) {
    if (checkpoint && checkpoint.seq <= at.seq && checkpoint.seq > at.checkpointSeq) {
      lines.push(JSON.stringify({ checkpoint }));
      at.checkpointSeq = checkpoint.seq;
    }
    return at;
  }

  async function storedCheckpoint(tenant: string): Promise<AuditCheckpoint | undefined> {
    const kv = await store.get(keys.auditCheckpoint(tenant));
    if (!kv) return undefined;
    try {
      const parsed = auditCheckpoint.safeParse(JSON.parse(kv.value));
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  }

  async function pass(tenants: string[], full: boolean): Promise<void> {
    const lines: string[] = [];
    const moved: Array<[string, StreamCursor['tenants'][string]]> = [];
    for (const tenant of tenants) {
      const followed = await followTenant(tenant, full);
      lines.push(...followed.lines);
      moved.push([tenant, followed.at]);
    }
    if (lines.length > 0) {
      await output.write(lines);
      await output.sync();
    }
    for (const [tenant, at] of moved) {
      cursor.tenants[tenant] = at;
      const rest = (handed.get(tenant) ?? []).filter((record) => record.seq > at.seq);
      if (rest.length > 0) handed.set(tenant, rest);
      else handed.delete(tenant);
      const checkpoint = checkpoints.get(tenant);
      if (checkpoint && checkpoint.seq <= at.checkpointSeq) checkpoints.delete(tenant);
    }
    if (lines.length > 0) await deps.cursor.save(cursor);
  }

  /** Passes run one at a time; a failed one (store down) is retried by the next. */
  const enqueue = (run: () => Promise<void>): Promise<void> => {
    const next = chain.then(run).catch((err: unknown) => {
      logger.warn({ err: (err as Error).message }, 'audit stream behind the chain; retrying');
    });
    chain = next;
    return next;
  };

  const fullPass = () => enqueue(async () => pass(await allTenants(), true));

  const wake = () => {
    if (scheduled || closed) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      const tenants = [...woken];
      woken.clear();
      void enqueue(() => pass(tenants, false));
    });
  };

  return {
    async start() {
      const saved = await deps.cursor.load();
      if (saved) cursor = saved;
      else if (deps.startAt === 'heads') {
        for (const tenant of await allTenants()) {
          const head = await store.get(keys.auditHead(tenant));
          const seq = head ? (parseHead(head.value)?.seq ?? 0) : 0;
          cursor.tenants[tenant] = { seq, checkpointSeq: 0 };
        }
      }
      await fullPass();
      timer = setInterval(() => void fullPass(), deps.pollMs ?? 2000);
      timer.unref();
    },
    write(record) {
      const list = handed.get(record.tenant) ?? [];
      list.push(record);
      handed.set(record.tenant, list);
      woken.add(record.tenant);
      wake();
    },
    checkpoint(checkpoint) {
      checkpoints.set(checkpoint.tenant, checkpoint);
      woken.add(checkpoint.tenant);
      wake();
    },
    catchUp: () => fullPass(),
    async close() {
      closed = true;
      if (timer) clearInterval(timer);
      await fullPass();
      await output.close();
    },
  };
}
