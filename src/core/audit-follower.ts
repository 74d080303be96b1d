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
 *
 * Records are read back whole: a stored record that is not a valid record of its tenant at
 * its position (an unhashed field added, another tenant's record, broken JSON) is never
 * copied; a `{"malformed": {tenant, seq, reason}}` line names it instead.
 *
 * The stream also remembers the link of the last record it wrote (in the cursor), so it
 * notices a history that no longer continues what it already delivered: the record at the
 * cursor gone or changed (the store rolled back to an earlier copy, or rewritten), a record
 * that does not link to the one before it, or one whose keyed link does not verify (forged).
 * Then the tenant's stream stops there with a `{"tampered": {tenant, seq, reason}}` line and
 * the tenant is reported tampered (its writes stop). A file cursor lives outside the store,
 * so this catches a rollback of the store that no checkpoint in the store could. Stored
 * checkpoints are copied only when their signature verifies with the tenant's key.
 *
 * With a cursor shared by several processes (audit-stream-claim.ts), only the process
 * holding the stream's claim writes; the others keep nothing and check the claim on every
 * poll, taking over from the saved cursor when the writer is gone.
 */
import type { KeyObject } from 'node:crypto';
import type { AuditCheckpoint, AuditRecord } from '../contract/audit.js';
import { auditCheckpoint, storedAuditRecord } from '../contract/audit.js';
import { CryptoError } from '../crypto/errors.js';
import type { Logger } from '../lib/logger.js';
import type { Store } from '../store/store.js';
import { AUDIT_RECORDS_PER_READ, keyedHash, legacyHash, parseHead, recordHash } from './audit-chain.js';
import { checkpointSignedBy } from './audit-checkpoints.js';
import type { AuditSink } from './audit-sink.js';
import { StreamClaimLostError } from './audit-stream-claim.js';
import { keys } from './keys.js';

export interface StreamCursor {
  /**
   * Per tenant: the last record seq and the last checkpoint seq written to the stream, and
   * the link (hash) of that record, which the next record must continue (absent in cursors
   * saved by earlier versions, and after a malformed record).
   */
  tenants: Record<string, { seq: number; checkpointSeq: number; hash?: string }>;
}

type OpenedKeys = { hmac: Buffer; publicKey: KeyObject } | undefined | 'destroyed';

/** What the follower needs to check links and signatures, and to report tampering. */
export interface StreamChainCheck {
  /** The tenant's audit keys (undefined when it has none); throws when they cannot be read now. */
  keys(tenant: string): Promise<{ hmac: Buffer; publicKey: KeyObject } | undefined>;
  /** Stops the tenant's writes (fail closed), as a failed verify does. */
  tampered(tenant: string, reason: string): void;
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
  /** A cursor shared by several processes: whether this one writes the stream now. */
  claim?(): Promise<boolean>;
  /** Hands the stream to another process at shutdown. */
  release?(): Promise<void>;
}

export interface AuditFollowerDeps {
  store: Store;
  output: StreamOutput;
  cursor: CursorStore;
  logger: Logger;
  /**
   * Checks each record's keyed link and each stored checkpoint's signature before copying,
   * and reports tampering; without it (tests of delivery alone) only the links between
   * records and the record at the cursor are checked.
   */
  chain?: StreamChainCheck;
  /** How often every tenant is checked for records this process did not commit; 2 s. */
  pollMs?: number;
  /** Without a saved cursor: replay every record ('beginning'), or start at today's heads. */
  startAt: 'beginning' | 'heads';
  /**
   * Syncs the output and saves the cursor at most this often between polls (a crash repeats
   * at most this much); 0 after every batch. Every poll and close sync and save what is pending.
   */
  saveEveryMs?: number;
}

const PAGE = AUDIT_RECORDS_PER_READ;

/** Records read back from the store per written batch (bounds memory and the time between saves). */
const BATCH = 1000;

export interface AuditFollower extends AuditSink {
  start(): Promise<void>;
  /** Resolves once everything committed so far is in the stream (tests, shutdown). */
  catchUp(): Promise<void>;
}

export function createAuditFollower(deps: AuditFollowerDeps): AuditFollower {
  const { store, output, logger } = deps;
  let cursor: StreamCursor = { tenants: {} };
  /** The cursor as last saved (or loaded): lines after it may not be on disk yet. */
  let durable: StreamCursor = { tenants: {} };
  const handed = new Map<string, AuditRecord[]>();
  const checkpoints = new Map<string, AuditCheckpoint>();
  const woken = new Set<string>();
  let chain: Promise<void> = Promise.resolve();
  let scheduled = false;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  /** Whether this process writes the stream (always, unless the cursor is claimed). */
  let writing = !deps.cursor.claim;
  let dirty = false;
  let savedAt = 0;
  /** Positions already reported as a gap, so a stalled tenant is logged once. */
  const reported = new Set<string>();
  /** Tenants whose stream stopped at tampering (until a restart): nothing more is copied. */
  const stopped = new Set<string>();

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
    budget: number,
  ): Promise<{ lines: string[]; at: StreamCursor['tenants'][string]; more: boolean }> {
    const at = position(tenant);
    const lines: string[] = [];
    if (stopped.has(tenant)) return { lines, at, more: false };
    const given = (handed.get(tenant) ?? []).filter((record) => record.seq > at.seq);
    const contiguous =
      given.length > 0 &&
      given.every((r, i) => r.seq === at.seq + 1 + i) &&
      (at.hash === undefined || given[0]!.prevHash === at.hash);
    if (contiguous) {
      for (const record of given) lines.push(JSON.stringify(record));
      at.seq = given.at(-1)!.seq;
      at.hash = given.at(-1)!.hash;
    }
    // The common case (this process's own commits, in order) reads nothing back; anything
    // else (other processes, late commits, a gap) comes from the store.
    if (contiguous && !full) {
      return { lines, at: withCheckpoint(at, lines, checkpoints.get(tenant)), more: false };
    }
    const prefix = keys.auditRecords(tenant);
    // With a known link, read from the record at the cursor: it must still be the one streamed.
    const checkAt = at.hash !== undefined && at.seq > 0;
    let startAfter = checkAt ? keys.auditRecord(tenant, at.seq - 1) : keys.auditRecord(tenant, at.seq);
    let more = false;
    let tenantKeys: OpenedKeys | null = null;
    const keysOf = async () => {
      if (tenantKeys === null) tenantKeys = deps.chain ? await openKeys(tenant) : undefined;
      return tenantKeys;
    };
    let first = checkAt;
    for (;;) {
      const page = await store.range(prefix, { limit: PAGE, startAfter });
      let stop = false;
      if (first) {
        first = false;
        const kv = page.kvs[0];
        const seq = kv ? Number(kv.key.slice(prefix.length)) : undefined;
        if (seq !== at.seq || recordHash(kv!.value) !== at.hash) {
          tamper(
            tenant,
            at.seq,
            seq !== at.seq
              ? `record ${at.seq}, already in the stream, is gone from the store: the store was rolled back or records were deleted`
              : `record ${at.seq} differs from the copy already in the stream: the store was rolled back or the record rewritten`,
            lines,
          );
          return { lines, at, more: false };
        }
        page.kvs.shift();
      }
      for (const kv of page.kvs) {
        const seq = Number(kv.key.slice(prefix.length));
        if (seq !== at.seq + 1) {
          stop = true;
          reportGap(tenant, at.seq + 1);
          break;
        }
        if (lines.length >= budget) {
          stop = more = true;
          break;
        }
        const read = readRecord(tenant, seq, kv.value);
        if ('malformed' in read) {
          lines.push(JSON.stringify({ malformed: { tenant, seq, reason: read.malformed } }));
          at.seq = seq;
          delete at.hash;
          continue;
        }
        const broken = linkProblem(read.record, at.hash, await keysOf());
        if (broken) {
          tamper(tenant, seq, broken, lines);
          return { lines, at: withCheckpoint(at, lines, checkpoints.get(tenant)), more: false };
        }
        lines.push(JSON.stringify(read.record));
        at.seq = seq;
        at.hash = read.record.hash;
      }
      if (stop || !page.more || page.kvs.length === 0) break;
      startAfter = page.kvs.at(-1)?.key ?? keys.auditRecord(tenant, at.seq);
    }
    const checkpoint = checkpoints.get(tenant) ?? (full ? await storedCheckpoint(tenant, keysOf) : undefined);
    return { lines, at: withCheckpoint(at, lines, checkpoint), more };
  }

  /**
   * The tenant's keys; a key record that does not open (replaced, damaged) counts as none.
   * A crypto-shredded tenant's records can no longer be checked: they are copied unchecked.
   */
  async function openKeys(tenant: string): Promise<OpenedKeys> {
    try {
      return await deps.chain!.keys(tenant);
    } catch (err) {
      if (err instanceof CryptoError && err.reason === 'key_destroyed') return 'destroyed';
      if (err instanceof CryptoError && err.reason !== 'root_key_unavailable') return undefined;
      throw err;
    }
  }

  /** The record with its validated fields, or why it is malformed. */
  function readRecord(
    tenant: string,
    seq: number,
    value: string,
  ): { record: AuditRecord } | { malformed: string } {
    let reason: string;
    try {
      const parsed = storedAuditRecord.safeParse(JSON.parse(value));
      if (parsed.success && parsed.data.seq === seq && parsed.data.tenant === tenant) {
        return { record: parsed.data };
      }
      reason = parsed.success
        ? `it names tenant "${parsed.data.tenant}" and seq ${parsed.data.seq}`
        : `${parsed.error.issues[0]?.path.join('.') || 'record'}: ${parsed.error.issues[0]?.message ?? 'invalid'}`;
    } catch {
      reason = 'not valid JSON';
    }
    logger.error(
      { tenant, seq, reason },
      'audit record in the store is malformed: streamed as malformed, run vault audit verify',
    );
    return { malformed: reason };
  }

  /** Why the record does not continue the streamed chain, or undefined when it does. */
  function linkProblem(
    record: AuditRecord,
    previous: string | undefined,
    tenantKeys: OpenedKeys,
  ): string | undefined {
    const { seq } = record;
    if (previous !== undefined && record.prevHash !== previous) {
      return `record ${seq} does not link to record ${seq - 1} already in the stream: the store was rolled back or rewritten`;
    }
    if (!deps.chain || tenantKeys === 'destroyed') return undefined;
    const { hash, ...unsigned } = record;
    if (record.v === 2) {
      if (!tenantKeys) return `record ${seq} is keyed but the tenant has no audit key: the key was removed`;
      if (keyedHash(tenantKeys.hmac, unsigned) !== hash) {
        return `record ${seq} was forged or modified (its keyed link does not match)`;
      }
    } else if (legacyHash(unsigned) !== hash) {
      return `record ${seq} was modified after it was written`;
    }
    return undefined;
  }

  /** Stops the tenant's stream at `seq` with a line naming it, and reports the tenant tampered. */
  function tamper(tenant: string, seq: number, reason: string, lines: string[]) {
    stopped.add(tenant);
    lines.push(JSON.stringify({ tampered: { tenant, seq, reason } }));
    logger.error({ tenant, seq, reason }, 'audit chain tampered: the stream of this tenant stops here');
    deps.chain?.tampered(tenant, reason);
  }

  function reportGap(tenant: string, seq: number) {
    const at = `${tenant}/${seq}`;
    if (reported.has(at)) return;
    reported.add(at);
    logger.error(
      { tenant, seq },
      'audit record missing in the store while later ones exist: the stream waits here, run vault audit verify',
    );
  }

  /** A checkpoint goes out once the records it covers are in the stream. */
  function withCheckpoint(
    at: StreamCursor['tenants'][string],
    lines: string[],
    checkpoint: AuditCheckpoint | undefined,
  ) {
    if (
      checkpoint &&
      checkpoint.seq <= at.seq &&
      checkpoint.seq > at.checkpointSeq &&
      (checkpoint.seq !== at.seq || at.hash === undefined || checkpoint.hash === at.hash)
    ) {
      lines.push(JSON.stringify({ checkpoint }));
      at.checkpointSeq = checkpoint.seq;
    }
    return at;
  }

  /** The checkpoint another process stored, if it is this tenant's and its signature verifies. */
  async function storedCheckpoint(
    tenant: string,
    keysOf: () => Promise<OpenedKeys>,
  ): Promise<AuditCheckpoint | undefined> {
    const kv = await store.get(keys.auditCheckpoint(tenant));
    if (!kv) return undefined;
    let checkpoint: AuditCheckpoint;
    try {
      const parsed = auditCheckpoint.safeParse(JSON.parse(kv.value));
      if (!parsed.success || parsed.data.tenant !== tenant) return undefined;
      checkpoint = parsed.data;
    } catch {
      return undefined;
    }
    if (!deps.chain) return checkpoint;
    const tenantKeys = await keysOf();
    if (tenantKeys && tenantKeys !== 'destroyed' && checkpointSignedBy(checkpoint, tenantKeys.publicKey)) {
      return checkpoint;
    }
    logger.error({ tenant }, 'the stored audit checkpoint is not signed by the tenant: not streamed');
    return undefined;
  }

  /**
   * Writes one batch (at most BATCH records read back from the store), then moves and saves
   * the cursor; resolves whether records were left for another batch.
   */
  async function pass(tenants: string[], full: boolean): Promise<boolean> {
    if (!writing) {
      handed.clear();
      checkpoints.clear();
      return false;
    }
    const lines: string[] = [];
    const moved: Array<[string, StreamCursor['tenants'][string]]> = [];
    let more = false;
    for (const tenant of tenants) {
      if (lines.length >= BATCH) {
        more = true;
        break;
      }
      const followed = await followTenant(tenant, full, BATCH - lines.length);
      lines.push(...followed.lines);
      moved.push([tenant, followed.at]);
      more ||= followed.more;
    }
    if (lines.length > 0) await output.write(lines);
    for (const [tenant, at] of moved) {
      cursor.tenants[tenant] = at;
      const rest = (handed.get(tenant) ?? []).filter((record) => record.seq > at.seq);
      if (rest.length > 0) handed.set(tenant, rest);
      else handed.delete(tenant);
      const checkpoint = checkpoints.get(tenant);
      if (checkpoint && checkpoint.seq <= at.checkpointSeq) checkpoints.delete(tenant);
    }
    if (lines.length > 0) dirty = true;
    if (dirty && (full || closed || performance.now() - savedAt >= (deps.saveEveryMs ?? 0))) {
      // Lines are durable before the cursor moves past them; between saves they need not be
      // (a crash repeats them from the saved cursor), so the output is synced once per save.
      try {
        await output.sync();
      } catch (err) {
        // What was written since the last save may never reach the disk: write it again.
        cursor = structuredClone(durable);
        dirty = false;
        throw err;
      }
      try {
        await deps.cursor.save(cursor);
      } catch (err) {
        if (err instanceof StreamClaimLostError) {
          logger.warn('another process took over the audit stream; this one stands by');
          stepDown();
          return false;
        }
        throw err;
      }
      dirty = false;
      durable = structuredClone(cursor);
      savedAt = performance.now();
    }
    return more;
  }

  function stepDown() {
    writing = false;
    dirty = false;
    handed.clear();
    checkpoints.clear();
  }

  /** The saved cursor, or the starting position when there is none. */
  async function adopt(): Promise<void> {
    const saved = await deps.cursor.load();
    cursor = saved ?? { tenants: {} };
    if (!saved && deps.startAt === 'heads') {
      for (const tenant of await allTenants()) {
        const kv = await store.get(keys.auditHead(tenant));
        const head = kv ? parseHead(kv.value) : undefined;
        cursor.tenants[tenant] = head
          ? { seq: head.seq, checkpointSeq: 0, hash: head.hash }
          : { seq: 0, checkpointSeq: 0 };
      }
    }
    durable = structuredClone(cursor);
  }

  /** With a claimed cursor: renews or takes the claim, and starts or stops writing. */
  async function holdStream(): Promise<void> {
    if (!deps.cursor.claim) return;
    const held = await deps.cursor.claim();
    if (held && !writing) {
      await adopt();
      writing = true;
      logger.info('this process now writes the audit stream');
    } else if (!held && writing) {
      logger.warn('another process took over the audit stream; this one stands by');
      stepDown();
    }
  }

  /** Passes run one at a time; a failed one (store down) is retried by the next. */
  const enqueue = (run: () => Promise<void>): Promise<void> => {
    const next = chain.then(run).catch((err: unknown) => {
      logger.warn({ err: (err as Error).message }, 'audit stream behind the chain; retrying');
    });
    chain = next;
    return next;
  };

  const fullPass = () =>
    enqueue(async () => {
      await holdStream();
      // Batch after batch until caught up; each save also renews a claimed stream.
      while (writing && (await pass(await allTenants(), true))) {}
    });

  const wake = () => {
    if (scheduled || closed) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      const tenants = [...woken];
      woken.clear();
      void enqueue(async () => {
        await pass(tenants, false);
      });
    });
  };

  return {
    async start() {
      if (!deps.cursor.claim) await adopt();
      await fullPass();
      timer = setInterval(() => void fullPass(), deps.pollMs ?? 2000);
      timer.unref();
    },
    write(record) {
      if (!writing) return;
      const list = handed.get(record.tenant) ?? [];
      list.push(record);
      handed.set(record.tenant, list);
      woken.add(record.tenant);
      wake();
    },
    checkpoint(checkpoint) {
      if (!writing) return;
      checkpoints.set(checkpoint.tenant, checkpoint);
      woken.add(checkpoint.tenant);
      wake();
    },
    catchUp: () => fullPass(),
    async close() {
      closed = true;
      if (timer) clearInterval(timer);
      await fullPass();
      if (writing) await deps.cursor.release?.();
      await output.close();
    },
  };
}
