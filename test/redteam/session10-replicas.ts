/**
 * Red team session 10: two (or more) API replicas on one real etcd, each a whole in-process
 * API (core, HTTP) on its own etcd client, sharing the root key, as `vault server` replicas do.
 * A replica's store may be wrapped (test/support/store-proxy.ts) to hold one of its
 * transactions while the other replica acts: a slow network, made deterministic.
 */
import { randomBytes } from 'node:crypto';
import type { AuditRecord } from '../../src/contract/audit.js';
import type { DynamicConfig } from '../../src/core/dynamic-accounts.js';
import { keys } from '../../src/core/keys.js';
import type { EngineRegistry } from '../../src/engines/engine.js';
import type { Clock } from '../../src/lib/clock.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import type { Store, Txn, TxnResult } from '../../src/store/store.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { storeWith } from '../support/store-proxy.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

export interface Replica {
  vault: TestVault;
  /** The replica's own etcd client (unwrapped). */
  raw: Store;
}

export interface Replicas {
  etcd: EtcdProcess;
  replicas: Replica[];
  /** With `holdFirst`: the first replica's store, whose next matching transaction can be held. */
  held?: ReturnType<typeof holdable>;
  close(): Promise<void>;
}

export async function startReplicas(
  count: number,
  options: {
    /** Wraps replica i's store (e.g. to hold a transaction). */
    wrap?: (i: number, store: Store) => Store;
    /** The first replica's store is `holdable` (Replicas.held). */
    holdFirst?: boolean;
    clock?: Clock;
    prefix?: string;
    /** Dynamic engines of each replica (each gets its own). */
    engines?: () => EngineRegistry;
    dynamic?: Partial<DynamicConfig>;
  } = {},
): Promise<Replicas> {
  const etcd = await startEtcd();
  const rootKey = randomBytes(32);
  const replicas: Replica[] = [];
  let held: ReturnType<typeof holdable> | undefined;
  for (let i = 0; i < count; i++) {
    const raw = await openEtcdStore({
      endpoints: [etcd.endpoint],
      timeoutMs: 10_000,
      ...(options.prefix ? { prefix: options.prefix } : {}),
    });
    if (i === 0 && options.holdFirst) held = holdable(raw);
    const store = options.wrap ? options.wrap(i, held?.store ?? raw) : i === 0 && held ? held.store : raw;
    const vault = await startTestVault({
      store,
      rootKey,
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.engines ? { engines: options.engines() } : {}),
      ...(options.dynamic ? { dynamic: options.dynamic } : {}),
    });
    replicas.push({ vault, raw });
  }
  return {
    etcd,
    replicas,
    ...(held ? { held } : {}),
    async close() {
      for (const { vault, raw } of replicas) {
        await vault.close().catch(() => undefined);
        await raw.close().catch(() => undefined);
      }
      await etcd.destroy();
    },
  };
}

/** The audit records a transaction appends (its puts under the tenant's audit prefix). */
export function recordsIn(txn: Txn, tenant: string): AuditRecord[] {
  return txn.success
    .filter((op) => op.type === 'put' && op.key.startsWith(keys.auditRecords(tenant)))
    .map((op) => JSON.parse((op as { value: string }).value) as AuditRecord);
}

/** Every audit record of `tenant`, read from the store in key order. */
export async function chainOf(store: Store, tenant: string): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  let after: string | undefined;
  for (;;) {
    // Small pages: a record can be ~17 KB, and etcd answers at most 4 MiB.
    const page = await store.range(keys.auditRecords(tenant), {
      limit: 100,
      ...(after !== undefined ? { startAfter: after } : {}),
    });
    for (const kv of page.kvs) out.push(JSON.parse(kv.value) as AuditRecord);
    if (!page.more) return out;
    after = page.kvs.at(-1)!.key;
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface Hold {
  /** Which transaction to hold (the first that matches, once). */
  match: (txn: Txn) => boolean;
  /** Runs before it is sent (another replica acts meanwhile). */
  before?: () => Promise<void>;
  /** Runs after its answer came, before the committer sees it. */
  after?: (result: TxnResult) => Promise<void>;
}

/** A store whose next matching transaction can be held (`arm`), and how many were held. */
export function holdable(store: Store) {
  let armed: Hold | undefined;
  const state = { held: 0, lastResult: undefined as TxnResult | undefined };
  const wrapped = storeWith(store, (inner) => ({
    async txn(txn: Txn) {
      const hold = armed;
      if (!hold?.match(txn)) return inner.txn(txn);
      armed = undefined;
      state.held += 1;
      await hold.before?.();
      const result = await inner.txn(txn);
      state.lastResult = result;
      await hold.after?.(result);
      return result;
    },
  }));
  return {
    store: wrapped,
    state,
    arm(hold: Hold) {
      armed = hold;
    },
  };
}
