import { randomUUID } from 'node:crypto';
import {
  adminServer,
  type Credential,
  type DynamicSpec,
  type RevocationState,
} from '../contract/credentials.js';
import type { DynamicEngine, EngineRegistry } from '../engines/engine.js';
import { EngineError } from '../engines/engine.js';
import { VaultError } from '../lib/errors.js';
import { getMany, scanPages, scanPrefix, writeInChunks } from '../store/paged.js';
import type { Compare, Op } from '../store/store.js';
import type { AuditInput } from './committer.js';
import { type CallContext, systemContext } from './context.js';
import { type CoreDeps, parseRecord } from './deps.js';
import { type AccountRecord, backoffMs, decideAccount } from './dynamic-decision.js';
import { dynamicDue } from './dynamic-due.js';
import { keys } from './keys.js';
import type { LeaseRecord } from './lease-record.js';

/** An account issued for a lease about to be committed (see `issue`). */
export interface Issued {
  value: string;
  dynamic: { engine: DynamicSpec['engine']; username: string };
  /** Written in the lease's own transaction. */
  ops: Op[];
  /**
   * Says whether the lease committed (`unknown`: its commit's answer was lost, so it may have);
   * rejects when the account of a committed lease could not be kept.
   */
  finish(committed: boolean | 'unknown'): Promise<void>;
}

/** Kept under the credential while an account's removal fails, so its GET finds it cheaply. */
interface RetryRecord {
  attempts: number;
  nextAttemptAt: string;
  lastError: string;
}

export const revokerIdentity = { type: 'workload' as const, name: 'vault-dynamic-revoker' };

/** What the server counts: upstream revocations by engine and outcome, and accounts waiting. */
export interface DynamicObserver {
  revocation(engine: string, outcome: 'removed' | 'failed'): void;
}

export interface DynamicConfig {
  /** How long another process may take between recording an account and committing its lease. */
  issueGraceMs: number;
  /**
   * The longest wait between walks of the due index (expiries of leases issued here and
   * retries wake it sooner).
   */
  sweepIntervalMs: number;
  /** How often every account is walked, for a due key a store written before the index lacks. */
  fullSweepIntervalMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /**
   * How long a revocation waits for the upstream removal before committing without it (the
   * lease must become unusable in Vault at once even when the upstream system hangs).
   */
  revokeWaitMs: number;
  /** Removals a sweep runs at once. */
  sweepConcurrency: number;
}

export const defaultDynamicConfig: DynamicConfig = {
  issueGraceMs: 60_000,
  sweepIntervalMs: 1_000,
  fullSweepIntervalMs: 3_600_000,
  retryBaseMs: 500,
  retryMaxMs: 30_000,
  revokeWaitMs: 1_000,
  sweepConcurrency: 32,
};

const resourceOf = (leaseId: string) => `lease/${leaseId}`;

/** Puts of due keys (their values are empty: the key says it all). */
const placeOne = (key: string): Op => ({ type: 'put', key, value: '' });
const placed = (dueKeys: string[]): Op[] => dueKeys.map(placeOne);

/** Accounts the full walk decides on at once (their leases read together). */
const SWEEP_PAGE = 200;
/** Due keys read per request. */
const DUE_PAGE = 500;
/** Failing removals a credential's GET reads for its details (all are counted). */
const REVOCATION_SAMPLE = 200;

/** Maps an engine failure to the one error the surfaces know; the message is already scrubbed. */
export const upstreamError = (err: unknown, what: string) =>
  new VaultError(
    'upstream_failed',
    `${what}: ${err instanceof EngineError ? err.message : 'the engine failed'}`,
  );

/**
 * The upstream side of dynamic leases: issues an account for a lease (recording it first),
 * extends it on renew, and removes it once its lease ended — at once on revoke, at expiry
 * through a timer, and after a crash on start — retrying with backoff until the engine
 * confirms, each outcome audited.
 */
export function createDynamicAccounts(
  deps: Pick<CoreDeps, 'store' | 'committer' | 'keyring' | 'clock' | 'logger'> & {
    engines: EngineRegistry;
    config?: Partial<DynamicConfig>;
    observer?: DynamicObserver;
  },
) {
  const { store, committer, keyring, clock } = deps;
  const config = { ...defaultDynamicConfig, ...deps.config };
  const logger = deps.logger.child({ component: 'dynamic-accounts' });
  const instance = randomUUID();
  const issuing = new Set<string>();

  function engineFor(spec: { engine: DynamicSpec['engine'] }): DynamicEngine {
    const engine = deps.engines[spec.engine];
    if (!engine)
      throw new VaultError('bad_request', `the ${spec.engine} engine is not enabled on this server`);
    return engine;
  }

  /** The credential's admin connection (its current version), or undefined once it was deleted. */
  async function connectionOf(tenant: string, name: string) {
    const kv = await store.get(keys.credential(tenant, name));
    if (!kv) return undefined;
    const credential = parseRecord<Credential>(kv.value);
    const value = await store.get(keys.value(tenant, name, credential.currentVersion));
    if (!value || !credential.dynamic) return undefined;
    const { sealed } = parseRecord<{ sealed: never }>(value.value);
    const plain = await keyring.openValue(tenant, name, credential.currentVersion, sealed);
    return { credential, spec: credential.dynamic, connection: plain.toString('utf8') };
  }

  async function mustConnect(tenant: string, name: string) {
    const found = await connectionOf(tenant, name);
    if (!found) throw new VaultError('not_found', `dynamic credential "${name}" does not exist`);
    return found;
  }

  // ---- the sweep ------------------------------------------------------------------------

  /** An account's record and its index key by credential, written and deleted together. */
  const accountPutOps = (tenant: string, account: AccountRecord): Op[] => [
    { type: 'put', key: keys.dynamicAccount(tenant, account.leaseId), value: JSON.stringify(account) },
    { type: 'put', key: keys.dynamicAccountOf(tenant, account.credentialName, account.leaseId), value: '' },
  ];
  const accountDeleteOps = (tenant: string, account: AccountRecord): Op[] => [
    { type: 'delete', key: keys.dynamicAccount(tenant, account.leaseId) },
    { type: 'delete', key: keys.dynamicAccountOf(tenant, account.credentialName, account.leaseId) },
    { type: 'delete', key: keys.dynamicRetry(tenant, account.credentialName, account.leaseId) },
  ];
  /** When an account recorded now must be looked at if its lease never commits. */
  const graceDue = (tenant: string, account: AccountRecord) =>
    dynamicDue.key(tenant, account.leaseId, Date.parse(account.createdAt) + config.issueGraceMs);
  /** Records an account whose lease is not (known to be) committed: looked at after the grace. */
  const pendingRecord = (tenant: string, account: AccountRecord) => ({
    compare: [{ key: keys.dynamicAccount(tenant, account.leaseId), modRevision: 0 }],
    ops: [
      ...accountPutOps(tenant, account),
      { type: 'put' as const, key: graceDue(tenant, account), value: '' },
    ],
    audit: [],
    result: undefined,
  });

  let dueTimer: NodeJS.Timeout | undefined;
  let fullTimer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = true;
  /** Set by stop(): nothing is retried any more. */
  let closing = false;

  /** Removes the account upstream; resolves with why it failed, or undefined once it is gone. */
  async function attemptRemoval(tenant: string, account: AccountRecord): Promise<string | undefined> {
    let failure: string | undefined;
    try {
      const found = await connectionOf(tenant, account.credentialName);
      if (!found)
        throw new EngineError(
          `credential "${account.credentialName}" is gone, and its admin connection with it`,
        );
      await engineFor({ engine: account.engine as DynamicSpec['engine'] }).revoke(
        found.connection,
        account.username,
      );
    } catch (err) {
      failure = err instanceof EngineError ? err.message : `the engine failed (${(err as Error).name})`;
    }
    deps.observer?.revocation(account.engine, failure ? 'failed' : 'removed');
    if (failure)
      logger.warn(
        { lease: account.leaseId, attempts: (account.attempts ?? 0) + 1 },
        `upstream revocation failed; retrying: ${failure}`,
      );
    return failure;
  }

  /**
   * What an attempt's outcome writes, built on the account as stored now (inside a commit):
   * the account, its retry entry and the due key that woke the attempt deleted once removed,
   * else the next attempt scheduled (a due key at its time); one audit record either way.
   * Nothing when the account is already gone.
   */
  async function outcomeOf(
    tenant: string,
    account: AccountRecord,
    failure: string | undefined,
    reason: string,
    actingFor: LeaseRecord['identity'] | undefined,
    dueKey?: string,
  ): Promise<{ compare: Compare[]; ops: Op[]; audit: AuditInput[]; retryAt?: number }> {
    const key = keys.dynamicAccount(tenant, account.leaseId);
    const kv = await store.get(key);
    if (!kv) return { compare: [], ops: [], audit: [] };
    const current = parseRecord<AccountRecord>(kv.value);
    const attempts = (current.attempts ?? 0) + 1;
    const audit = (outcome: 'allowed' | 'error', text: string): AuditInput => ({
      action: 'lease.dynamic-revoke',
      resource: resourceOf(account.leaseId),
      outcome,
      reason: text,
      ...(actingFor ? { actingFor } : {}),
    });
    const compare = [{ key, modRevision: kv.modRevision }];
    const handled: Op[] = dueKey ? [{ type: 'delete', key: dueKey }] : [];
    if (!failure) {
      return {
        compare,
        ops: [...accountDeleteOps(tenant, current), ...handled],
        audit: [
          audit(
            'allowed',
            `${account.engine} account ${account.username} removed (${reason})${attempts > 1 ? ` after ${attempts} attempts` : ''}`,
          ),
        ],
      };
    }
    const delay = backoffMs(attempts, config.retryBaseMs, config.retryMaxMs);
    const retryAt = clock().getTime() + delay;
    const nextAttemptAt = new Date(retryAt).toISOString();
    const retry: RetryRecord = { attempts, nextAttemptAt, lastError: failure };
    return {
      compare,
      ops: [
        ...handled,
        ...accountPutOps(tenant, { ...current, attempts, nextAttemptAt, lastError: failure }),
        {
          type: 'put',
          key: keys.dynamicRetry(tenant, account.credentialName, account.leaseId),
          value: JSON.stringify(retry),
        },
        { type: 'put', key: dynamicDue.key(tenant, account.leaseId, retryAt), value: '' },
      ],
      audit: [
        audit(
          'error',
          `${account.engine} account ${account.username} not removed (${reason}), attempt ${attempts}, retrying in ${Math.round(delay / 100) / 10}s: ${failure}`,
        ),
      ],
      retryAt,
    };
  }

  async function removeAccount(
    tenant: string,
    account: AccountRecord,
    lease: LeaseRecord | undefined,
    reason: string,
    dueKey: string | undefined,
  ): Promise<number | undefined> {
    const ctx = systemContext(tenant, revokerIdentity, `dynamic-${clock().getTime()}`);
    const failure = await attemptRemoval(tenant, account);
    return committer.commit(ctx, async () => {
      const { retryAt, ...mutation } = await outcomeOf(
        tenant,
        account,
        failure,
        reason,
        lease?.identity,
        dueKey,
      );
      return { ...mutation, result: retryAt };
    });
  }

  /**
   * Removals under way, by tenant and lease. They run side by side (the engine batches them)
   * and outside the sweep: one after another, each waiting out an unreachable server's
   * timeout, the last would wait for all the others, and so would every expiry due meanwhile.
   */
  const removing = new Map<string, Promise<void>>();
  /** An account's key in `removing` and `unrecordedOutcomes`. */
  const removalKey = (tenant: string, leaseId: string) => `${tenant}\0${leaseId}`;
  /**
   * Accounts whose outcome could not be recorded (the tenant's writes fail): decided again
   * once `notBefore` has passed, the wait doubling with each failure (up to retryMaxMs), so a
   * store that reads but does not write is not asked every second, nor the engine.
   */
  const unrecordedOutcomes = new Map<
    string,
    { tenant: string; leaseId: string; failures: number; notBefore: number }
  >();

  /** Starts removing an account (at most `sweepConcurrency` at once); it wakes the sweep for its retry. */
  async function startRemoval(
    tenant: string,
    account: AccountRecord,
    lease: LeaseRecord | undefined,
    reason: string,
    dueKey?: string,
  ) {
    const key = removalKey(tenant, account.leaseId);
    if (removing.has(key)) return;
    const waiting = unrecordedOutcomes.get(key);
    if (waiting && waiting.notBefore > clock().getTime()) return wakeAt(waiting.notBefore);
    while (removing.size >= config.sweepConcurrency) await Promise.race(removing.values());
    const removal = removeAccount(tenant, account, lease, reason, dueKey)
      .then(
        (retryAt) => {
          unrecordedOutcomes.delete(key);
          return retryAt;
        },
        (err: unknown) => {
          const failures = (unrecordedOutcomes.get(key)?.failures ?? 0) + 1;
          const notBefore = clock().getTime() + backoffMs(failures, config.retryBaseMs, config.retryMaxMs);
          unrecordedOutcomes.set(key, { tenant, leaseId: account.leaseId, failures, notBefore });
          logger.warn(
            { lease: account.leaseId, failures },
            `recording a revocation failed; retrying: ${(err as Error).message}`,
          );
          return notBefore;
        },
      )
      .then((retryAt) => {
        removing.delete(key);
        if (retryAt !== undefined) wakeAt(retryAt);
      });
    removing.set(key, removal);
  }

  /**
   * Decides a page of one tenant's accounts, their leases read in one request (etcd: one
   * transaction per 100 keys). Removals start (each deletes the due key that woke it once its
   * outcome is recorded); for the others, `wanted` names the due key at which each must be
   * looked at next, and `fixes` deletes the key that woke it when that differs.
   */
  async function decideAccounts(
    tenant: string,
    found: Array<{ account: AccountRecord; dueKey?: string }>,
  ): Promise<{ fixes: Op[]; wanted: string[] }> {
    // Decided as of before the read: a lease committed after it is not taken for missing
    // once the issue grace has passed, nor once its issue finished here (removals may keep
    // this page waiting, and the live set forgets a lease the moment it committed).
    const now = clock();
    const issuingAtRead = new Set(issuing);
    const leases = await getMany(
      store,
      found.map(({ account }) => keys.lease(tenant, account.leaseId)),
    );
    const fixes: Op[] = [];
    const wanted: string[] = [];
    for (const [i, { account, dueKey }] of found.entries()) {
      const leaseKv = leases[i];
      const lease = leaseKv ? parseRecord<LeaseRecord>(leaseKv.value) : undefined;
      const action = decideAccount(account, lease, {
        now,
        instance,
        issuing: issuingAtRead,
        issueGraceMs: config.issueGraceMs,
      });
      if (action.kind === 'revoke') {
        await startRemoval(tenant, account, lease, action.reason, dueKey);
        continue;
      }
      // Not to be removed now: a removal whose outcome was not recorded is no longer pending.
      unrecordedOutcomes.delete(removalKey(tenant, account.leaseId));
      // Issuing here right now: its commit writes the key it needs.
      if (action.until === undefined) continue;
      const next = dynamicDue.key(tenant, account.leaseId, action.until);
      if (next === dueKey) continue;
      if (dueKey) fixes.push({ type: 'delete', key: dueKey });
      wanted.push(next);
    }
    // Several stale keys of one account want the same key: written once (a transaction that
    // puts a key twice is refused, and the walk would fail on it every time).
    const puts = new Set(wanted);
    return {
      fixes: fixes.filter((op) => op.type !== 'delete' || !puts.has(op.key)),
      wanted: [...puts],
    };
  }

  /**
   * Handles every due key whose time has come, a page at a time, grouped by tenant; returns
   * when the next known key comes due. Keys stay until handled, so an account whose removal
   * is under way (or whose commit landed after an earlier walk passed its time) is looked at
   * again by the next walk, and nothing depends on a cursor kept in memory.
   */
  async function sweepDue(): Promise<number> {
    const now = clock().getTime();
    let after: string | undefined;
    let failed = false;
    /** When to look again: a tenant that failed is retried soon. */
    const next = (at: number) => (failed ? Math.min(at, clock().getTime() + config.retryBaseMs * 4) : at);
    for (;;) {
      const page = await store.range(dynamicDue.prefix, {
        limit: DUE_PAGE,
        ...(after !== undefined ? { startAfter: after } : {}),
      });
      const due = page.kvs.filter((kv) => dynamicDue.parse(kv.key).at <= now);
      const byTenant = new Map<string, Array<{ leaseId: string; key: string }>>();
      for (const kv of due) {
        const { tenant, leaseId } = dynamicDue.parse(kv.key);
        if (removing.has(removalKey(tenant, leaseId))) continue;
        const entries = byTenant.get(tenant) ?? [];
        entries.push({ leaseId, key: kv.key });
        byTenant.set(tenant, entries);
      }
      for (const [tenant, entries] of byTenant) {
        try {
          await sweepDueOf(tenant, entries);
        } catch (err) {
          // One tenant's trouble does not hold up the others; its keys stay for the next walk.
          logger.warn(
            { tenant },
            `dynamic account sweep failed for a tenant; retrying: ${(err as Error).message}`,
          );
          failed = true;
        }
      }
      if (due.length < page.kvs.length) return next(dynamicDue.parse(page.kvs[due.length]!.key).at);
      if (!page.more || page.kvs.length === 0) return next(Number.POSITIVE_INFINITY);
      after = page.kvs.at(-1)!.key;
    }
  }

  /** One tenant's due keys of a page: their accounts decided, the keys fixed. */
  async function sweepDueOf(tenant: string, entries: Array<{ leaseId: string; key: string }>) {
    const accounts = await getMany(
      store,
      entries.map((entry) => keys.dynamicAccount(tenant, entry.leaseId)),
    );
    // A key whose account is gone (removed, or a lease's key left after its removal).
    const leftovers: Op[] = entries
      .filter((_, i) => !accounts[i])
      .map((entry) => ({ type: 'delete', key: entry.key }));
    const found = entries.flatMap((entry, i) => {
      const kv = accounts[i];
      return kv ? [{ account: parseRecord<AccountRecord>(kv.value), dueKey: entry.key }] : [];
    });
    const { fixes, wanted } = await decideAccounts(tenant, found);
    await writeInChunks(store, [...leftovers, ...fixes, ...placed(wanted)]);
  }

  /** Accounts whose outcome was not recorded, decided again one by one once their wait is over. */
  async function sweepRechecks() {
    const now = clock().getTime();
    for (const [key, { tenant, leaseId, notBefore }] of [...unrecordedOutcomes])
      if (notBefore <= now && !(await sweepOne(tenant, leaseId))) unrecordedOutcomes.delete(key);
  }

  /** Decides one account now (a revocation that could not wait for its removal); false when it is gone. */
  async function sweepOne(tenant: string, leaseId: string): Promise<boolean> {
    const kv = await store.get(keys.dynamicAccount(tenant, leaseId));
    if (!kv) return false;
    const { fixes, wanted } = await decideAccounts(tenant, [
      { account: parseRecord<AccountRecord>(kv.value) },
    ]);
    await writeInChunks(store, [...fixes, ...placed(wanted)]);
    return true;
  }

  /**
   * Every account of every tenant, a page at a time: on start (after a crash, an account
   * whose removal was under way has its due key, but a store written before the due index
   * has none) and every `fullSweepIntervalMs`. Decides each account as the due walk would and
   * writes the due and credential keys an account lacks; reads only, when nothing is missing.
   */
  async function sweepAll() {
    for await (const tenantKv of scanPrefix(store, keys.tenants())) {
      const tenant = tenantKv.key.slice(keys.tenants().length);
      for await (const kvs of scanPages(store, keys.dynamicAccounts(tenant), { pageSize: SWEEP_PAGE })) {
        const accounts = kvs.map((kv) => parseRecord<AccountRecord>(kv.value));
        const { wanted } = await decideAccounts(
          tenant,
          accounts.map((account) => ({ account })),
        );
        const byCredential = accounts.map((a) => keys.dynamicAccountOf(tenant, a.credentialName, a.leaseId));
        const present = await getMany(store, [...wanted, ...byCredential]);
        await writeInChunks(store, [...wanted, ...byCredential].filter((_, i) => !present[i]).map(placeOne));
      }
    }
  }

  let scheduledAt = Number.POSITIVE_INFINITY;
  /** The earliest wake asked for while a walk ran, scheduled when it ends. */
  let wakeWanted = Number.POSITIVE_INFINITY;

  function schedule(at: number) {
    if (stopped) return;
    clearTimeout(dueTimer);
    scheduledAt = at;
    dueTimer = setTimeout(
      () => {
        scheduledAt = Number.POSITIVE_INFINITY;
        void sweepNow();
      },
      Math.max(10, Math.min(at - clock().getTime(), 2_147_000_000)),
    );
    dueTimer.unref();
  }

  /**
   * Makes the next due walk come no later than `at` (a retry one account needs, or the
   * expiry of a lease just issued here), without walking now. Other processes' leases are
   * found by the walk every `sweepIntervalMs`.
   */
  function wakeAt(at: number) {
    if (!running) {
      if (at < scheduledAt) schedule(at);
      return;
    }
    // During a walk: again right after it only when already due; a later time is scheduled
    // once it ends (a walk re-run at once would find the same account still waiting, ask
    // for the same wake, and spin until then: thousands of walks a second).
    if (at <= clock().getTime()) again = true;
    else wakeWanted = Math.min(wakeWanted, at);
  }

  /** Runs a due walk now (or right after the one in progress); resolves once its removals are done. */
  function kick(): Promise<void> {
    return sweepNow().then(removalsDone);
  }

  /** Resolves once no removal is under way (those started meanwhile included). */
  async function removalsDone() {
    while (removing.size > 0) await Promise.all(removing.values());
  }

  function sweepNow(full = false): Promise<void> {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        try {
          if (full) await sweepAll();
          full = false;
          await sweepRechecks();
          const next = await sweepDue();
          schedule(Math.min(next, clock().getTime() + config.sweepIntervalMs));
        } catch (err) {
          logger.warn(`dynamic account sweep failed; retrying: ${(err as Error).message}`);
          schedule(clock().getTime() + config.retryBaseMs * 4);
        }
      } while (again);
    })().finally(() => {
      running = undefined;
      const wanted = wakeWanted;
      wakeWanted = Number.POSITIVE_INFINITY;
      if (wanted < scheduledAt) schedule(wanted);
    });
    return running;
  }

  function scheduleFull() {
    if (stopped) return;
    fullTimer = setTimeout(() => {
      void sweepNow(true).finally(scheduleFull);
    }, config.fullSweepIntervalMs);
    fullTimer.unref();
  }

  /** Accounts of one credential still waiting for removal (its own index: no walk of the others). */
  const pendingOf = (tenant: string, name: string): Promise<number> =>
    store.count(keys.dynamicAccountsOf(tenant, name));

  /**
   * Writes an account's record unless it is there (written with its lease, or before). As the
   * system, not the caller: its token may be revoked before a retry gets through.
   */
  async function recordIfMissing(tenant: string, account: AccountRecord) {
    const ctx = systemContext(tenant, revokerIdentity, `dynamic-record-${clock().getTime()}`);
    const key = keys.dynamicAccount(ctx.tenant, account.leaseId);
    await committer.commit(ctx, async () =>
      (await store.get(key)) ? { ops: [], audit: [], result: undefined } : pendingRecord(ctx.tenant, account),
    );
  }

  /** Accounts kept upstream whose record could not be written yet, retried until it is. */
  const unrecorded = new Set<NodeJS.Timeout>();

  /**
   * Records the account of a lease whose commit's answer was lost, retrying with backoff
   * while the store fails: the role was kept, and until its record (and due key) is written
   * nothing would ever remove it if the lease was not written. Resolves after the first try.
   */
  async function recordUntilDone(tenant: string, account: AccountRecord, attempt = 0): Promise<void> {
    try {
      await recordIfMissing(tenant, account);
    } catch (err) {
      if (closing) {
        logger.error(
          { lease: account.leaseId },
          `the ${account.engine} account ${account.username} may be left upstream: its record could not be written before shutdown (${(err as Error).message})`,
        );
        return;
      }
      logger.warn(
        { lease: account.leaseId, attempts: attempt + 1 },
        `recording an account kept for a lost commit failed; retrying: ${(err as Error).message}`,
      );
      const timer = setTimeout(
        () => {
          unrecorded.delete(timer);
          void recordUntilDone(tenant, account, attempt + 1);
        },
        backoffMs(attempt + 1, config.retryBaseMs, config.retryMaxMs),
      );
      unrecorded.add(timer);
    }
  }

  return {
    /**
     * Creates the account for a lease about to be committed: the caller commits `ops` with
     * the lease, then calls `finish` whatever happened. An engine that can hold the account in
     * an open upstream transaction (PostgreSQL) keeps it only if the lease committed, so a
     * crash in between leaves nothing; for the others the account is recorded first, and one
     * whose lease never came is removed by the sweep.
     */
    async issue(ctx: CallContext, credential: Credential, leaseId: string, expiresAt: Date): Promise<Issued> {
      const spec = credential.dynamic!;
      const engine = engineFor(spec);
      const username = engine.usernameFor(leaseId);
      const account: AccountRecord = {
        leaseId,
        credentialName: credential.name,
        engine: spec.engine,
        username,
        createdAt: clock().toISOString(),
        owner: instance,
      };
      const dynamic = { engine: spec.engine, username };
      const failed = (err: unknown) =>
        err instanceof VaultError
          ? err
          : upstreamError(err, `could not issue a ${spec.engine} account for "${credential.name}"`);
      /** Decides the account now: one whose lease did not commit goes at once. */
      const settleNow = () =>
        void sweepOne(ctx.tenant, leaseId).catch(() => {
          // Its due key brings it back at the end of the grace.
        });
      if (engine.issueHeld) {
        try {
          const { connection } = await mustConnect(ctx.tenant, credential.name);
          const held = await engine.issueHeld(connection, spec as never, { username, expiresAt });
          return {
            value: held.value,
            dynamic,
            ops: accountPutOps(ctx.tenant, account),
            finish: async (committed) => {
              // A lease that may have committed keeps its account: a retry with the same
              // Idempotency-Key answers with that lease. Nobody has the value if it did not
              // (the answer was an error). The account is recorded (its record went with the
              // lease, or is written now) and looked at once the issue grace is over: a
              // transaction that timed out may still apply a moment later, and a sweep
              // before that would drop the account of a lease that then appears.
              const keep = committed !== false;
              try {
                await held.settle(keep);
              } catch (err) {
                if (committed === true) throw failed(err);
              }
              if (committed === 'unknown') await recordUntilDone(ctx.tenant, account);
              else if (committed) wakeAt(expiresAt.getTime());
            },
          };
        } catch (err) {
          throw failed(err);
        }
      }
      issuing.add(leaseId);
      try {
        await committer.commit(ctx, async () => pendingRecord(ctx.tenant, account));
        const { connection } = await mustConnect(ctx.tenant, credential.name);
        const value = await engine.issue(connection, spec as never, { username, expiresAt });
        return {
          value,
          dynamic,
          // The lease's own due key (its expiry, written with it) replaces the grace one.
          ops:
            graceDue(ctx.tenant, account) === dynamicDue.key(ctx.tenant, leaseId, expiresAt.getTime())
              ? []
              : [{ type: 'delete', key: graceDue(ctx.tenant, account) }],
          finish: async (committed) => {
            issuing.delete(leaseId);
            if (committed !== true) settleNow();
            else wakeAt(expiresAt.getTime());
          },
        };
      } catch (err) {
        issuing.delete(leaseId);
        settleNow();
        throw failed(err);
      }
    },

    /**
     * For a revocation about to commit: removes the lease's account upstream first, waiting at
     * most `revokeWaitMs`, so the revocation's own commit records the outcome (one commit, one
     * round to the store). Undefined when there is no account or the engine is slower than
     * that: the revocation then commits alone and `revokeNow` follows, as for any other.
     */
    async removeBeforeRevoke(tenant: string, leaseId: string) {
      const kv = await store.get(keys.dynamicAccount(tenant, leaseId));
      if (!kv) return undefined;
      const account = parseRecord<AccountRecord>(kv.value);
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), config.revokeWaitMs);
      });
      const failure = await Promise.race([attemptRemoval(tenant, account), late]).finally(() =>
        clearTimeout(timer),
      );
      if (failure === 'late') return undefined;
      return {
        /** The ops and audit record the revocation's commit adds (built inside it). */
        outcome: (reason: string, actingFor: LeaseRecord['identity']) =>
          outcomeOf(tenant, account, failure, reason, actingFor),
        /** After the commit: a failed removal is retried at its time. */
        committed: (retryAt: number | undefined) => {
          if (retryAt !== undefined) wakeAt(retryAt);
        },
      };
    },

    async renew(ctx: CallContext, lease: LeaseRecord, expiresAt: Date) {
      const { connection, spec } = await mustConnect(ctx.tenant, lease.credentialName);
      try {
        await engineFor(spec).renew(connection, { username: lease.dynamic!.username, expiresAt });
      } catch (err) {
        throw upstreamError(err, `could not extend ${lease.dynamic!.username}`);
      }
    },

    /** Removes the account of a lease just revoked, now; a failure is recorded and retried. */
    async revokeNow(tenant: string, leaseId: string) {
      // Only this lease's account; should this fail, the revocation moved its due key to now.
      try {
        await sweepOne(tenant, leaseId);
        await removing.get(removalKey(tenant, leaseId));
      } catch (err) {
        void kick();
        throw err;
      }
    },

    /**
     * Changes the engine's admin password upstream; `undo` puts back the one the credential's
     * current version holds, for when the new one cannot be stored (else nobody would know the
     * admin password any more). That is the old one, or, when a concurrent rotation was
     * stored meanwhile, that rotation's (whichever password the database got last).
     */
    async rotateRoot(ctx: CallContext, name: string) {
      const { connection, spec } = await mustConnect(ctx.tenant, name);
      const engine = engineFor(spec);
      let rotated: string;
      try {
        rotated = await engine.rotateRoot(connection);
      } catch (err) {
        throw upstreamError(err, `could not rotate the ${spec.engine} admin password of "${name}"`);
      }
      return {
        connection: rotated,
        undo: async () => {
          try {
            const stored = (await connectionOf(ctx.tenant, name))?.connection ?? connection;
            if (stored === rotated) return;
            await engine.rotateRoot(rotated, stored);
          } catch (err) {
            logger.error(
              { credential: name },
              `the new ${spec.engine} admin password of "${name}" was not stored and the old one could not be put back: ${err instanceof EngineError ? err.message : 'the engine failed'}`,
            );
          }
        },
      };
    },

    /**
     * The credential's failing upstream removals, as its GET shows them: all of them counted,
     * the details drawn from the first REVOCATION_SAMPLE (a GET must not read every account of
     * a credential whose server is down).
     */
    async revocationsOf(tenant: string, name: string): Promise<RevocationState> {
      const prefix = keys.dynamicRetries(tenant, name);
      const page = await store.range(prefix, { limit: REVOCATION_SAMPLE });
      if (page.kvs.length === 0) return { failing: 0 };
      const retries = page.kvs.map((kv) => parseRecord<RetryRecord>(kv.value));
      const failing = page.more ? await store.count(prefix) : retries.length;
      const latest = retries.reduce((a, b) => (a.nextAttemptAt >= b.nextAttemptAt ? a : b));
      return {
        failing,
        attempts: Math.max(...retries.map((r) => r.attempts)),
        lastError: latest.lastError,
        nextAttemptAt: retries.map((r) => r.nextAttemptAt).sort()[0]!,
      };
    },

    /**
     * The accounts of a credential that a new admin connection `value` would leave behind: all
     * of them when it reaches another server than the current one (they are removed through
     * the current connection, and the new server would answer that they do not exist), else 0.
     */
    async accountsLeftBehind(tenant: string, name: string, value: string): Promise<number> {
      const found = await connectionOf(tenant, name);
      if (!found) return 0;
      const engine = found.spec.engine;
      if (adminServer(engine, found.connection) === adminServer(engine, value)) return 0;
      return pendingOf(tenant, name);
    },

    pendingOf,

    /**
     * Walks every account now (a reconcile on start), then what is due as it comes due, and
     * every account again every `fullSweepIntervalMs`; resolves once the first walk's
     * removals are done.
     */
    start() {
      stopped = false;
      scheduleFull();
      return sweepNow(true).then(removalsDone);
    },
    kick,
    async stop() {
      stopped = true;
      closing = true;
      for (const timer of unrecorded) clearTimeout(timer);
      unrecorded.clear();
      clearTimeout(dueTimer);
      clearTimeout(fullTimer);
      await running?.catch(() => {});
      await removalsDone();
    },
    async closeEngines() {
      await Promise.all(Object.values(deps.engines).map((engine) => engine?.close()));
    },
  };
}

export type DynamicAccounts = ReturnType<typeof createDynamicAccounts>;
