import type { AuditRecord } from '../contract/audit.js';
import type { Identity } from '../contract/common.js';
import type { Clock } from '../lib/clock.js';
import { VaultError } from '../lib/errors.js';
import type { Compare, Op, Store } from '../store/store.js';
import { GENESIS_HASH, hashRecord } from './audit-chain.js';
import type { AuditSink } from './audit-sink.js';
import type { CallContext } from './context.js';
import { keys } from './keys.js';

export interface AuditInput {
  action: string;
  resource: string;
  outcome: AuditRecord['outcome'];
  reason?: string;
  actingFor?: Identity;
  valueHmac?: string;
}

export interface Mutation<T> {
  compare?: Compare[];
  ops: Op[];
  audit: AuditInput[];
  result: T;
}

interface Head {
  seq: number;
  hash: string;
  modRevision: number;
}

const MAX_ATTEMPTS = 8;

/**
 * Commits each state change together with its audit records in one store transaction,
 * chained per tenant. Writes of one tenant are serialized in this process (and guarded by
 * compare-and-swap on the chain head across processes), so audit records are never lost,
 * duplicated or reordered, and a change without its audit record never happens.
 */
export function createCommitter(deps: { store: Store; clock: Clock; sink: AuditSink; enabled?: boolean }) {
  const { store, clock, sink } = deps;
  const enabled = deps.enabled ?? true;
  const queues = new Map<string, Promise<unknown>>();
  const heads = new Map<string, Head>();

  const serialize = <T>(tenant: string, task: () => Promise<T>): Promise<T> => {
    const previous = queues.get(tenant) ?? Promise.resolve();
    const next = previous.then(task, task);
    const settled = next.catch(() => undefined);
    queues.set(tenant, settled);
    void settled.then(() => {
      if (queues.get(tenant) === settled) queues.delete(tenant);
    });
    return next;
  };

  const loadHead = async (tenant: string): Promise<Head> => {
    const kv = await store.get(keys.auditHead(tenant));
    if (!kv) return { seq: 0, hash: GENESIS_HASH, modRevision: 0 };
    const parsed = JSON.parse(kv.value) as { seq: number; hash: string };
    return { ...parsed, modRevision: kv.modRevision };
  };

  const buildRecords = (ctx: CallContext, head: Head, inputs: AuditInput[]) => {
    const time = clock().toISOString();
    const records: AuditRecord[] = [];
    let { seq, hash } = head;
    for (const input of inputs) {
      seq += 1;
      const unsigned = {
        seq,
        time,
        requestId: ctx.requestId,
        tenant: ctx.tenant,
        actor: ctx.principal.identity,
        ...(input.actingFor ? { actingFor: input.actingFor } : {}),
        action: input.action,
        resource: input.resource,
        outcome: input.outcome,
        ...(input.reason ? { reason: input.reason } : {}),
        ...(ctx.source ? { source: ctx.source } : {}),
        ...(input.valueHmac ? { valueHmac: input.valueHmac } : {}),
        prevHash: hash,
      };
      hash = hashRecord(unsigned);
      records.push({ ...unsigned, hash });
    }
    return { records, seq, hash };
  };

  async function commit<T>(ctx: CallContext, build: () => Promise<Mutation<T>>): Promise<T> {
    return serialize(ctx.tenant, async () => {
      for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        const head = heads.get(ctx.tenant) ?? (await loadHead(ctx.tenant));
        const mutation = await build();
        const { records, seq, hash } = buildRecords(ctx, head, enabled ? mutation.audit : []);
        const ops: Op[] = [...mutation.ops];
        for (const record of records) {
          ops.push({
            type: 'put',
            key: keys.auditRecord(ctx.tenant, record.seq),
            value: JSON.stringify(record),
          });
        }
        if (records.length > 0) {
          ops.push({ type: 'put', key: keys.auditHead(ctx.tenant), value: JSON.stringify({ seq, hash }) });
        }
        let result: { succeeded: boolean; revision: number };
        try {
          result = await store.txn({
            compare: [
              ...(mutation.compare ?? []),
              { key: keys.auditHead(ctx.tenant), modRevision: head.modRevision },
            ],
            success: ops,
          });
        } catch (err) {
          heads.delete(ctx.tenant);
          throw err;
        }
        if (result.succeeded) {
          if (records.length > 0) heads.set(ctx.tenant, { seq, hash, modRevision: result.revision });
          for (const record of records) sink.write(record);
          return mutation.result;
        }
        // Someone else (another replica, or a concurrent change of a compared record) won.
        heads.delete(ctx.tenant);
      }
      throw new VaultError('conflict', 'the record changed concurrently too many times; retry the request');
    });
  }

  /** Writes audit records alone (reads, denials). */
  const record = (ctx: CallContext, ...audit: AuditInput[]) =>
    commit(ctx, async () => ({ ops: [], audit, result: undefined }));

  /** Forgets cached chain heads (tests that edit the store behind our back). */
  const forget = () => heads.clear();

  return { commit, record, forget };
}

export type Committer = ReturnType<typeof createCommitter>;
