import type { AuditRecord } from '../contract/audit.js';
import { storedAuditRecord } from '../contract/audit.js';
import type { Identity } from '../contract/common.js';
import { CryptoError } from '../crypto/errors.js';
import type { Clock } from '../lib/clock.js';
import { unauthenticated, VaultError } from '../lib/errors.js';
import type { Compare, Op, Store, TxnResult } from '../store/store.js';
import {
  AUDIT_RECORDS_PER_READ,
  GENESIS_HASH,
  keyedHash,
  legacyHash,
  parseHead,
  REKEY_ACTION,
} from './audit-chain.js';
import type { AuditIntegrity } from './audit-integrity.js';
import type { AuditKeyring, AuditKeys } from './audit-keys.js';
import type { AuditSink } from './audit-sink.js';
import type { CallContext } from './context.js';
import { keys } from './keys.js';
import { TXN_RESERVED_OPS } from './lease-index.js';

export interface AuditInput {
  action: string;
  resource: string;
  outcome: AuditRecord['outcome'];
  reason?: string;
  actingFor?: Identity;
  valueHmac?: string;
}

export interface Mutation<T> {
  /**
   * Set by changes whose build scanned a range (e.g. "every lease of this credential"):
   * they are committed alone, so nothing committed beside them escapes their scan.
   */
  exclusive?: boolean;
  compare?: Compare[];
  ops: Op[];
  audit: AuditInput[];
  result: T;
}

interface Head {
  seq: number;
  hash: string;
  modRevision: number;
  /** The tenant's HMAC key; undefined until the first keyed record is committed. */
  key: Buffer | undefined;
  /** An unkeyed chain from before keyed links: the next commit appends `audit.rekey`. */
  rekey: boolean;
}

interface Pending {
  ctx: CallContext;
  /** `afterHeadRace`: the last round lost to another writer (see `lostHead`). */
  build: (afterHeadRace: boolean) => Promise<Mutation<unknown>>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  attempts: number;
  /** Rounds lost to another writer's commit on the chain head (not to a changed record). */
  headRaces: number;
  /** After a failed group commit, retried alone so one stale read cannot sink the others. */
  solo: boolean;
  /**
   * The last round lost to another writer (its head or its turn moved): the rebuild does not
   * read the caller's token again, since the next commit still compares it.
   */
  lostHead: boolean;
}

const MAX_ATTEMPTS = 8;
/** Replicas writing one tenant take turns on its head: losing many rounds in a row is normal. */
const MAX_HEAD_RACES = 64;
/** Reads of the head that may find a record written after it (a concurrent commit) before giving up. */
const MAX_HEAD_READS = 32;
const REKEY_ACTION_INPUT: AuditInput = {
  action: REKEY_ACTION,
  resource: 'audit',
  outcome: 'allowed',
  reason: 'keyed links start here; the unkeyed records before are pinned by this record',
};
const MAX_GROUP = 64;
/**
 * The most bytes of changes and records one group commit carries: etcd refuses a request over
 * `--max-request-bytes` (1.5 MiB by default), and a group of large values (64 KiB each) would
 * otherwise fail whole. A change larger than this alone still goes alone.
 */
const MAX_GROUP_BYTES = 1024 * 1024;
/** The largest single change: etcd refuses a request over 1.5 MiB by default, and answers so as an outage. */
const MAX_CHANGE_BYTES = 1400 * 1024;
/**
 * A record's reason and resource are cut to these many bytes of their JSON (escapes and UTF-8
 * counted), so a record stays under about 27 KB and a page of records (the readers' and the
 * stream's 128, a catch-up's 128) under etcd's 4 MiB answer limit. The longest reason the
 * product writes (a token's 64 policies of 253 characters) fits whole; only input made to be
 * large (control characters escaped six times over) is cut.
 */
const MAX_REASON_BYTES = 20_000;
const MAX_RESOURCE_BYTES = 1_024;
const jsonBytes = (text: string) => Buffer.byteLength(JSON.stringify(text));
/** `text`, or its longest beginning that, with a note of what was cut, fits in `max` JSON bytes. */
function clip(text: string, max: number): string {
  if (jsonBytes(text) <= max) return text;
  // Never between the two halves of a surrogate pair (a character outside the BMP).
  const cut = (n: number) => {
    const at = n > 0 && /[\ud800-\udbff]/.test(text[n - 1]!) ? n - 1 : n;
    return `${text.slice(0, at)}… (${text.length - at} more characters)`;
  };
  let [low, high] = [0, text.length];
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (jsonBytes(cut(mid)) <= max) low = mid;
    else high = mid - 1;
  }
  return cut(low);
}
/** What a chained record adds beyond its reason and resource (fields, identities, links). */
const RECORD_OVERHEAD_BYTES = 6 * 1024;
/** Head races a change loses in a row before its writer claims the next turn (keys.auditTurn). */
const TURN_AFTER_RACES = 2;
/** The longest a writer whose transaction lost to another's claimed turn waits before its next. */
const MAX_TURN_WAIT_MS = 200;
/** The claimant's round time a turn key names (ms; 0 when it names none or cannot be read). */
const turnWaitOf = (value: string | undefined): number => {
  try {
    const roundMs = value ? (JSON.parse(value) as { roundMs?: unknown }).roundMs : undefined;
    return typeof roundMs === 'number' && Number.isFinite(roundMs) && roundMs > 0 ? roundMs : 0;
  } catch {
    return 0;
  }
};

/**
 * Commits each state change together with its audit records in one store transaction,
 * chained per tenant, so a change without its audit record never happens and records are
 * never lost, duplicated or reordered.
 *
 * Writes of one tenant go through one queue in this process. Whatever queued up while the
 * previous transaction was in flight is built concurrently (reads in parallel) and committed
 * as one transaction (group commit), unless two changes touch the same key, in which case
 * the later one waits for the next round and re-reads. Across processes, compare-and-swap on
 * the chain head and on each change's own records keeps this correct; a lost race retries.
 */
export function createCommitter(deps: {
  store: Store;
  clock: Clock;
  sink: AuditSink;
  auditKeys: AuditKeyring;
  integrity: AuditIntegrity;
  /** Told when a caller's token turned out to be revoked (to drop it from a cache). */
  onTokenGone?: (tokenKey: string) => void;
  /** Told the new head after each commit that wrote records (the checkpointer counts them). */
  onCommitted?: (tenant: string, seq: number) => void;
  enabled?: boolean;
}) {
  const { store, clock, sink, auditKeys, integrity } = deps;
  /** A group's operations and audit records, with room for the chain head and a tenant's first keys. */
  const maxOps = store.maxTxnOps - TXN_RESERVED_OPS;
  const enabled = deps.enabled ?? true;
  const queues = new Map<string, Pending[]>();
  const running = new Set<string>();
  const heads = new Map<string, Head>();
  /**
   * The newest record of each tenant this process wrote or verified: a head read later that is
   * older (or the same record with another link) was set back, which no commit does.
   */
  const highest = new Map<string, { seq: number; hash: string }>();
  const saw = (tenant: string, at: { seq: number; hash: string }) => {
    const known = highest.get(tenant);
    if (!known || at.seq > known.seq) highest.set(tenant, { seq: at.seq, hash: at.hash });
  };
  /** Is `head` behind (or beside) the newest record this process wrote or verified? */
  const setBack = (tenant: string, head: { seq: number; hash: string }) => {
    const seen = highest.get(tenant);
    return seen !== undefined && (head.seq < seen.seq || (head.seq === seen.seq && head.hash !== seen.hash));
  };
  /** The mod revision of each tenant's turn key as this process last saw it (0: none). */
  const turns = new Map<string, number>();
  /** Why the tenant's last round lost, when it lost to another writer. */
  const lastLoss = new Map<string, 'head' | 'turn'>();
  /** Until when (performance.now()) a tenant's writes wait: another writer claimed the turn. */
  const holdUntil = new Map<string, number>();
  /** How long the tenant's last transaction took, in ms. */
  const txnMs = new Map<string, number>();
  /** How long the tenant's last round took, from building its changes to the answer, in ms. */
  const roundMs = new Map<string, number>();

  /**
   * Reads the head and checks it against the newest record before anything is appended to
   * it: a missing head with records present, a head that is not the newest record, or a newest
   * record whose link does not verify is tampering, and the tenant's writes stop (never a new
   * chain over genuine records).
   */
  const loadHead = async (tenant: string): Promise<Head> => {
    // Another replica may commit between the reads below (its record and its head move in one
    // transaction, but these are separate reads): what looks like tampering is read again,
    // and only a state that a concurrent commit cannot explain is reported.
    for (let attempt = 0; ; attempt++) {
      const head = await readHead(tenant, attempt < MAX_HEAD_READS);
      if (head !== 'raced') return head;
      // Busy replicas commit all the time: a short random pause lets a read fall between them.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(attempt, 8)));
    }
  };

  const readHead = async (tenant: string, mayRetry: boolean): Promise<Head | 'raced'> => {
    integrity.assertIntact(tenant);
    const tamper = (reason: string) => integrity.report(tenant, reason);
    const loadKeys = () =>
      auditKeys.load(tenant).catch((err: unknown) => {
        // A key that is there but does not open under this tenant was replaced or damaged.
        if (err instanceof CryptoError && err.reason !== 'root_key_unavailable') {
          throw tamper(`the audit key does not open (${err.message})`);
        }
        throw err;
      });
    let [kv, tenantKeys] = await Promise.all([store.get(keys.auditHead(tenant)), loadKeys()]);
    const seen = highest.get(tenant);
    if (!kv) {
      if (seen) throw tamper(`the chain head is gone, though this server saw record ${seen.seq}`);
      const first = await store.range(keys.auditRecords(tenant), { limit: 1 });
      if (first.kvs.length > 0) {
        // The tenant's first commit (records, keys and head together) may have landed since.
        if (mayRetry && (await store.get(keys.auditHead(tenant)))) return 'raced';
        throw tamper('the chain head is missing while records exist');
      }
      if (tenantKeys) {
        if (mayRetry && (await store.get(keys.auditHead(tenant)))) return 'raced';
        throw tamper('the chain head and every record are gone while the audit key exists');
      }
      return { seq: 0, hash: GENESIS_HASH, modRevision: 0, key: undefined, rekey: false };
    }
    const head = parseHead(kv.value);
    if (!head || head.seq < 1) throw tamper('the chain head is malformed');
    if (seen && setBack(tenant, head)) {
      throw tamper(
        `the chain head was set back to record ${head.seq}, though this server saw record ${seen.seq}`,
      );
    }
    const [newest, after] = await Promise.all([
      store.get(keys.auditRecord(tenant, head.seq)),
      store.get(keys.auditRecord(tenant, head.seq + 1)),
    ]);
    if (!newest) throw tamper(`the chain head names record ${head.seq}, which is gone`);
    if (after) {
      // Written after the head we read: a commit of another replica, not a rollback (a head
      // rolled back was written after the record it no longer names). Lost too often, it is
      // contention, and the request is refused for a retry: never a tamper report, which
      // would stop the tenant's writes.
      if (after.modRevision > kv.modRevision) {
        // A commit moves the head with its records: a record past a head that has not moved
        // was written alone (else every write of the tenant answered 409 forever).
        const now = await store.get(keys.auditHead(tenant));
        if (now?.modRevision === kv.modRevision)
          throw tamper(`record ${head.seq + 1} was written after the head without moving it: it was planted`);
        if (mayRetry) return 'raced';
        throw new VaultError(
          'conflict',
          'the audit chain changed concurrently too many times; retry the request',
        );
      }
      throw tamper(`record ${head.seq + 1} exists after the head: the head was rolled back`);
    }
    let parsed: ReturnType<typeof storedAuditRecord.safeParse>;
    try {
      parsed = storedAuditRecord.safeParse(JSON.parse(newest.value));
    } catch {
      throw tamper(`record ${head.seq} is not valid JSON`);
    }
    if (!parsed.success) throw tamper(`record ${head.seq} is malformed`);
    const { hash, ...unsigned } = parsed.data;
    if (hash !== head.hash || unsigned.seq !== head.seq || unsigned.tenant !== tenant) {
      throw tamper(`the chain head does not match record ${head.seq}`);
    }
    if (unsigned.v === 2) {
      // The tenant's first keyed commit (its key, records and head together) may have landed
      // between the two reads above: the key is read again before it is missed.
      tenantKeys ??= await loadKeys();
      if (!tenantKeys) throw tamper('the audit key is gone while the chain is keyed');
      if (keyedHash(tenantKeys.hmac, unsigned) !== hash) throw tamper(`record ${head.seq} was modified`);
      saw(tenant, head);
      return { ...head, modRevision: kv.modRevision, key: tenantKeys.hmac, rekey: false };
    }
    if (tenantKeys) {
      // The rekey of an unkeyed chain (its key and first keyed record together) may have
      // landed between the two reads: then the head has moved since.
      const now = await store.get(keys.auditHead(tenant));
      if (mayRetry && now?.modRevision !== kv.modRevision) return 'raced';
      throw tamper(`record ${head.seq} is unkeyed although the tenant has an audit key`);
    }
    if (legacyHash(unsigned) !== hash) throw tamper(`record ${head.seq} was modified`);
    saw(tenant, head);
    return { ...head, modRevision: kv.modRevision, key: undefined, rekey: true };
  };

  /**
   * The head another writer moved, learnt from a lost transaction: the new head and the
   * records after the one this writer knew, read in that transaction. Taken only when those
   * records follow on from the known head link by link, each verifies under the tenant's key,
   * the last is the new head and nothing lies beyond it; anything else (more records than
   * were read, an unkeyed chain, a mismatch) is left to a full read of the head (loadHead),
   * which tells tampering from a race.
   */
  const catchUp = (tenant: string, known: Head, reads: NonNullable<TxnResult['reads']>): Head | undefined => {
    const [headRead, recordsRead] = reads;
    const kv = headRead?.kvs[0];
    if (!kv || !recordsRead || recordsRead.more || !known.key) return undefined;
    const head = parseHead(kv.value);
    if (!head || head.seq - known.seq !== recordsRead.kvs.length) return undefined;
    // Behind a record this process wrote or verified: the full read reports it.
    if (setBack(tenant, head)) return undefined;
    let { seq, hash } = known;
    for (const record of recordsRead.kvs) {
      let parsed: ReturnType<typeof storedAuditRecord.safeParse>;
      try {
        parsed = storedAuditRecord.safeParse(JSON.parse(record.value));
      } catch {
        return undefined;
      }
      if (!parsed.success) return undefined;
      const { hash: link, ...unsigned } = parsed.data;
      if (
        unsigned.v !== 2 ||
        unsigned.seq !== seq + 1 ||
        unsigned.tenant !== tenant ||
        unsigned.prevHash !== hash ||
        keyedHash(known.key, unsigned) !== link
      ) {
        return undefined;
      }
      seq = unsigned.seq;
      hash = link;
    }
    if (seq !== head.seq || hash !== head.hash) return undefined;
    return { seq, hash, modRevision: kv.modRevision, key: known.key, rekey: false };
  };

  const chain = (
    key: Buffer,
    ctx: CallContext,
    previous: { seq: number; hash: string },
    inputs: AuditInput[],
    time: string,
  ) => {
    const records: AuditRecord[] = [];
    let { seq, hash } = previous;
    for (const input of inputs) {
      seq += 1;
      const unsigned = {
        seq,
        v: 2 as const,
        time,
        requestId: ctx.requestId,
        tenant: ctx.tenant,
        actor: ctx.principal.identity,
        ...(input.actingFor ? { actingFor: input.actingFor } : {}),
        ...(ctx.principal.delegatedBy ? { delegatedBy: ctx.principal.delegatedBy } : {}),
        action: input.action,
        resource: clip(input.resource, MAX_RESOURCE_BYTES),
        outcome: input.outcome,
        ...(input.reason ? { reason: clip(input.reason, MAX_REASON_BYTES) } : {}),
        ...(ctx.source ? { source: ctx.source } : {}),
        ...(input.valueHmac ? { valueHmac: input.valueHmac } : {}),
        prevHash: hash,
      };
      hash = keyedHash(key, unsigned);
      records.push({ ...unsigned, hash });
    }
    return { records, seq, hash };
  };

  /** About how many bytes a mutation adds to a transaction, its chained records included. */
  const sizeOf = (mutation: Mutation<unknown>) => {
    let bytes = 0;
    for (const op of mutation.ops) {
      bytes += Buffer.byteLength(op.type === 'deletePrefix' ? op.prefix : op.key);
      if (op.type === 'put') bytes += Buffer.byteLength(op.value);
    }
    for (const input of mutation.audit) {
      bytes +=
        RECORD_OVERHEAD_BYTES +
        Math.min(jsonBytes(input.resource), MAX_RESOURCE_BYTES) +
        Math.min(jsonBytes(input.reason ?? ''), MAX_REASON_BYTES);
    }
    return bytes;
  };

  /** Keys a mutation reads (compares) and writes; a prefix delete conflicts with everything. */
  const footprint = (mutation: Mutation<unknown>) => {
    const writes = new Set<string>();
    let exclusive = mutation.exclusive === true;
    for (const op of mutation.ops) {
      if (op.type === 'deletePrefix') exclusive = true;
      else writes.add(op.key);
    }
    const reads = new Set((mutation.compare ?? []).map((c) => c.key));
    return { reads, writes, exclusive };
  };

  async function runRound(tenant: string, queue: Pending[]): Promise<void> {
    // Read the head (and the turn) before taking changes off the queue: if this fails, drain() fails
    // everything still queued, and nothing is left waiting forever.
    const head = heads.get(tenant) ?? (await loadHead(tenant));
    if (!turns.has(tenant)) turns.set(tenant, (await store.get(keys.auditTurn(tenant)))?.modRevision ?? 0);
    const roundStarted = performance.now();
    const candidates = queue.splice(0, queue[0]?.solo ? 1 : MAX_GROUP);
    const built = await Promise.allSettled(candidates.map((pending) => pending.build(pending.lostHead)));

    const accepted: Array<{ pending: Pending; mutation: Mutation<unknown> }> = [];
    const deferred: Pending[] = [];
    const written = new Set<string>();
    const compared = new Set<string>();
    let opCount = 0;
    let compareCount = 0;
    let byteCount = 0;
    let closed = false;
    built.forEach((outcome, i) => {
      const pending = candidates[i]!;
      if (outcome.status === 'rejected') {
        pending.reject(outcome.reason);
        return;
      }
      const mutation = outcome.value;
      const { reads, writes, exclusive } = footprint(mutation);
      const size = mutation.ops.length + mutation.audit.length;
      // Its compares, and the create-only compare of each record it adds: etcd limits those too.
      const compares = (mutation.compare?.length ?? 0) + mutation.audit.length;
      const bytes = sizeOf(mutation);
      if (bytes > MAX_CHANGE_BYTES) {
        pending.reject(
          new VaultError(
            'payload_too_large',
            `the change is too large to commit (about ${Math.ceil(bytes / 1024)} KiB; the store takes ${MAX_CHANGE_BYTES / 1024} KiB in one transaction): make it smaller`,
          ),
        );
        return;
      }
      // Built from the same snapshot, two changes may share a group only if neither writes
      // what the other read or wrote.
      const clash =
        [...reads, ...writes].some((key) => written.has(key)) || [...writes].some((key) => compared.has(key));
      if (
        closed ||
        clash ||
        (exclusive && accepted.length > 0) ||
        (accepted.length > 0 &&
          (opCount + size > maxOps ||
            compareCount + compares > maxOps ||
            byteCount + bytes > MAX_GROUP_BYTES))
      ) {
        deferred.push(pending);
        return;
      }
      accepted.push({ pending, mutation });
      for (const key of writes) written.add(key);
      for (const key of reads) compared.add(key);
      opCount += size;
      compareCount += compares;
      byteCount += bytes;
      if (exclusive) closed = true;
    });
    queue.unshift(...deferred);
    if (accepted.length === 0) return;

    // A writer whose changes lost the head again and again claims the next turn: its lost
    // transaction bumps the turn key (in its failure branch, no extra round trip), which every
    // writer's commit compares. The writer that kept winning then loses once and waits a
    // moment, and this one, already caught up, commits meanwhile.
    const claim =
      lastLoss.get(tenant) === 'head' &&
      accepted.some(({ pending }) => pending.headRaces >= TURN_AFTER_RACES);
    const lost = await commitGroup(tenant, head, accepted, claim);
    roundMs.set(tenant, performance.now() - roundStarted);
    if (!lost) {
      if (lost === undefined) lastLoss.delete(tenant);
      return;
    }
    const { headMoved, caughtUp, turnTaken, claimantMs } = lost;
    if (headMoved) lastLoss.set(tenant, 'head');
    else if (turnTaken) {
      lastLoss.set(tenant, 'turn');
      // Long enough for the claimant to build its group and commit: its own round time (it
      // wrote it with the claim; a replica further from etcd takes longer), or twice this one's.
      const wait = Math.max(2 * (txnMs.get(tenant) ?? 1), 1.5 * claimantMs);
      holdUntil.set(tenant, performance.now() + Math.min(wait, MAX_TURN_WAIT_MS));
    } else lastLoss.delete(tenant);
    const retry: Pending[] = [];
    for (const { pending } of accepted) {
      // A turn claimed by another writer is not this change's fault either.
      pending.lostHead = headMoved || turnTaken;
      // Turns lost count as races too: a turn that keeps moving ends in a 409, not a wait forever.
      if (headMoved || turnTaken) pending.headRaces += 1;
      else {
        pending.attempts += 1;
        pending.solo = accepted.length > 1 || pending.solo;
      }
      if (pending.attempts >= MAX_ATTEMPTS || pending.headRaces >= MAX_HEAD_RACES) {
        pending.reject(
          new VaultError('conflict', 'the record changed concurrently too many times; retry the request'),
        );
      } else retry.push(pending);
    }
    // The changes are built again even when only the head moved: a change may have decided on
    // what the other writer's commit changed (or on the time) without comparing it, and the
    // head's compare is what sent it back to decide again.
    queue.unshift(...retry);
    if (headMoved && !caughtUp && retry.length > 0) {
      // The head must be read again: a short random pause lets the read fall between the
      // other writer's commits.
      const races = Math.max(...retry.map((pending) => pending.headRaces));
      await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(races, 8)));
    }
  }

  /** Waits while another writer holds the tenant's turn (see runRound). */
  const waitForTurn = async (tenant: string) => {
    const until = holdUntil.get(tenant);
    if (until === undefined) return;
    holdUntil.delete(tenant);
    const ms = until - performance.now();
    if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
  };

  /**
   * Chains the group's records onto `head` and commits them with its changes in one
   * transaction. Resolves undefined when it committed, null when it failed outright (every
   * change was rejected), else what the lost transaction says: whether another writer moved
   * the head (and the new head when its records verified: catchUp), or claimed the turn.
   * `claim`: a lost transaction claims the next turn.
   */
  async function commitGroup(
    tenant: string,
    head: Head,
    accepted: Array<{ pending: Pending; mutation: Mutation<unknown> }>,
    claim: boolean,
  ): Promise<
    | { headMoved: boolean; caughtUp: Head | undefined; turnTaken: boolean; claimantMs: number }
    | null
    | undefined
  > {
    const time = clock().toISOString();
    const ops: Op[] = [];
    const compare = new Map<string, number>();
    let conflicting = false;
    let tip = { seq: head.seq, hash: head.hash };
    const allRecords: AuditRecord[] = [];
    const writesRecords = enabled && accepted.some(({ mutation }) => mutation.audit.length > 0);
    // The first keyed record of a tenant commits together with its (sealed) keys, create-only.
    let created: { keys: AuditKeys; op: Op; compare: { key: string; modRevision: number } } | undefined;
    let key = head.key;
    if (writesRecords && !key) {
      try {
        created = await auditKeys.generate(tenant);
      } catch (err) {
        for (const { pending } of accepted) pending.reject(err);
        return null;
      }
      key = created.keys.hmac;
      ops.push(created.op);
      compare.set(created.compare.key, created.compare.modRevision);
      if (head.rekey) {
        const first = accepted[0]!.pending.ctx;
        const rekey = chain(key, first, tip, [REKEY_ACTION_INPUT], time);
        allRecords.push(...rekey.records);
        tip = { seq: rekey.seq, hash: rekey.hash };
      }
    }
    for (const { pending, mutation } of accepted) {
      for (const c of mutation.compare ?? []) {
        const known = compare.get(c.key);
        if (known !== undefined && known !== c.modRevision) conflicting = true;
        compare.set(c.key, c.modRevision);
      }
      ops.push(...mutation.ops);
      const { records, seq, hash } = chain(key!, pending.ctx, tip, enabled ? mutation.audit : [], time);
      allRecords.push(...records);
      tip = { seq, hash };
    }
    for (const record of allRecords) {
      // Create-only: a record is never overwritten, whatever the head says.
      const recordKey = keys.auditRecord(tenant, record.seq);
      ops.push({ type: 'put', key: recordKey, value: JSON.stringify(record) });
      compare.set(recordKey, 0);
    }
    if (allRecords.length > 0) {
      ops.push({ type: 'put', key: keys.auditHead(tenant), value: JSON.stringify(tip) });
    }
    compare.set(keys.auditHead(tenant), head.modRevision);
    const turnKey = keys.auditTurn(tenant);
    const turn = turns.get(tenant) ?? 0;
    compare.set(turnKey, turn);

    let result: TxnResult = { succeeded: false, revision: 0 };
    if (!conflicting) {
      try {
        const started = performance.now();
        result = await store.txn({
          compare: [...compare].map(([key, modRevision]) => ({ key, modRevision })),
          success: ops,
          ...(claim
            ? {
                failure: [
                  {
                    type: 'put' as const,
                    key: turnKey,
                    value: JSON.stringify({ seq: head.seq, roundMs: Math.ceil(roundMs.get(tenant) ?? 0) }),
                  },
                ],
              }
            : {}),
          // Lost to another writer, the transaction brings back what it wrote: the head and
          // the records after ours (see catchUp), and the turn.
          failureReads: [
            { key: keys.auditHead(tenant) },
            {
              prefix: keys.auditRecords(tenant),
              startAfter: keys.auditRecord(tenant, head.seq),
              limit: AUDIT_RECORDS_PER_READ,
            },
            { key: turnKey },
          ],
        });
        txnMs.set(tenant, performance.now() - started);
      } catch (err) {
        heads.delete(tenant);
        for (const { pending } of accepted) pending.reject(err);
        return null;
      }
    }
    if (result.succeeded) {
      if (allRecords.length > 0) {
        heads.set(tenant, { ...tip, modRevision: result.revision, key, rekey: false });
        saw(tenant, tip);
        if (created) auditKeys.remember(tenant, created.keys);
        deps.onCommitted?.(tenant, tip.seq);
      }
      for (const record of allRecords) sink.write(record);
      for (const { pending, mutation } of accepted) pending.resolve(mutation.result);
      return undefined;
    }
    // Another writer won. When it moved the chain head (another replica's commit), the group
    // is rebuilt on the new head and retried as a group. Otherwise one of its compared records
    // changed, and each change is retried alone, so one stale read cannot sink the others.
    heads.delete(tenant);
    const headNow = result.reads?.[0]?.kvs[0];
    const headMoved = !conflicting && (headNow?.modRevision ?? 0) !== head.modRevision;
    // A turn key that is gone compares as revision 0, like any missing key.
    const turnNow = result.reads ? (result.reads[2]?.kvs[0]?.modRevision ?? 0) : turn;
    const claimantMs = turnWaitOf(result.reads?.[2]?.kvs[0]?.value);
    // A turn this transaction claimed moved too, but not because of another writer.
    const turnTaken = !conflicting && !headMoved && !claim && turnNow !== turn;
    turns.set(tenant, turnNow);
    const caughtUp = headMoved && result.reads ? catchUp(tenant, head, result.reads) : undefined;
    if (caughtUp) {
      heads.set(tenant, caughtUp);
      saw(tenant, caughtUp);
    } else if (turnTaken) heads.set(tenant, head);
    return { headMoved, caughtUp, turnTaken, claimantMs };
  }

  async function drain(tenant: string): Promise<void> {
    const queue = queues.get(tenant)!;
    try {
      // What queues while a round's transaction is in flight forms the next round; a store
      // whose commit blocks the thread first lets the requests that arrived meanwhile queue.
      while (queue.length > 0) {
        await store.ready?.();
        await waitForTurn(tenant);
        await runRound(tenant, queue);
      }
    } catch (err) {
      // A failure outside any single change (e.g. reading the chain head): fail what is queued.
      heads.delete(tenant);
      for (const pending of queue.splice(0)) pending.reject(err);
    } finally {
      running.delete(tenant);
      queues.delete(tenant);
    }
  }

  /**
   * Commits only while the caller's token exists as authentication saw it. A replica may have
   * authenticated from its record cache, and the token may have been revoked through another
   * replica since: the compare makes that request fail instead of committing (every request
   * that returns a value commits its audit record first), and its retry reads the token afresh.
   */
  function whileTokenLives<T>(
    ctx: CallContext,
    build: () => Promise<Mutation<T>>,
  ): (afterHeadRace: boolean) => Promise<Mutation<T>> {
    const { tokenKey, tokenRevision } = ctx.principal;
    if (!tokenKey || !tokenRevision) return build;
    let retry = false;
    return async (afterHeadRace): Promise<Mutation<T>> => {
      // After a round lost to another writer's commit on the chain head, the token is not read
      // again: the next round's compare still checks it, and a round the head does not
      // explain reads it.
      if (retry && !afterHeadRace) {
        const kv = await store.get(tokenKey);
        if (kv?.modRevision !== tokenRevision) {
          deps.onTokenGone?.(tokenKey);
          throw unauthenticated('the token was revoked; log in again');
        }
      }
      retry = true;
      const mutation = await build();
      return {
        ...mutation,
        compare: [...(mutation.compare ?? []), { key: tokenKey, modRevision: tokenRevision }],
      };
    };
  }

  function commit<T>(ctx: CallContext, unguarded: () => Promise<Mutation<T>>): Promise<T> {
    const build = whileTokenLives(ctx, unguarded);
    return new Promise<T>((resolve, reject) => {
      let queue = queues.get(ctx.tenant);
      if (!queue) {
        queue = [];
        queues.set(ctx.tenant, queue);
      }
      queue.push({
        ctx,
        build: build as (afterHeadRace: boolean) => Promise<Mutation<unknown>>,
        resolve: resolve as (value: unknown) => void,
        reject,
        attempts: 0,
        headRaces: 0,
        solo: false,
        lostHead: false,
      });
      if (!running.has(ctx.tenant)) {
        running.add(ctx.tenant);
        void drain(ctx.tenant);
      }
    });
  }

  /** Writes audit records alone (reads, denials). */
  const record = (ctx: CallContext, ...audit: AuditInput[]) =>
    commit(ctx, async () => ({ ops: [], audit, result: undefined }));

  /** Forgets cached chain heads and keys (tests that edit the store behind our back). */
  const forget = () => {
    heads.clear();
    highest.clear();
    turns.clear();
    auditKeys.forget();
  };

  return {
    commit,
    record,
    forget,
    /** Tells the committer of a record verified elsewhere (a checkpoint signed): a head set back below it is tampering. */
    saw,
  };
}

export type Committer = ReturnType<typeof createCommitter>;
