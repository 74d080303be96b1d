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
import { getMany, scanPages, scanPrefix } from '../store/paged.js';
import type { Compare, KeyValue, Op } from '../store/store.js';
import type { AuditInput } from './committer.js';
import { type CallContext, systemContext } from './context.js';
import { type CoreDeps, parseRecord } from './deps.js';
import { type AccountRecord, backoffMs, decideAccount } from './dynamic-decision.js';
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
  /** The longest wait between sweeps (expiries and retries wake it sooner). */
  sweepIntervalMs: number;
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
  sweepIntervalMs: 30_000,
  retryBaseMs: 500,
  retryMaxMs: 30_000,
  revokeWaitMs: 1_000,
  sweepConcurrency: 32,
};

const resourceOf = (leaseId: string) => `lease/${leaseId}`;

/** Accounts the sweep decides on at once (their leases read together). */
const SWEEP_PAGE = 200;

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

  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = true;

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
   * the account and its retry entry deleted once removed, else the next attempt scheduled;
   * one audit record either way. Nothing when the account is already gone.
   */
  async function outcomeOf(
    tenant: string,
    account: AccountRecord,
    failure: string | undefined,
    reason: string,
    actingFor: LeaseRecord['identity'] | undefined,
  ): Promise<{ compare: Compare[]; ops: Op[]; audit: AuditInput[]; retryAt?: number }> {
    const key = keys.dynamicAccount(tenant, account.leaseId);
    const kv = await store.get(key);
    if (!kv) return { compare: [], ops: [], audit: [] };
    const current = parseRecord<AccountRecord>(kv.value);
    const attempts = (current.attempts ?? 0) + 1;
    const retryKey = keys.dynamicRetry(tenant, account.credentialName, account.leaseId);
    const audit = (outcome: 'allowed' | 'error', text: string): AuditInput => ({
      action: 'lease.dynamic-revoke',
      resource: resourceOf(account.leaseId),
      outcome,
      reason: text,
      ...(actingFor ? { actingFor } : {}),
    });
    const compare = [{ key, modRevision: kv.modRevision }];
    if (!failure) {
      return {
        compare,
        ops: [
          { type: 'delete', key },
          { type: 'delete', key: retryKey },
        ],
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
        {
          type: 'put',
          key,
          value: JSON.stringify({ ...current, attempts, nextAttemptAt, lastError: failure }),
        },
        { type: 'put', key: retryKey, value: JSON.stringify(retry) },
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
  ): Promise<number | undefined> {
    const ctx = systemContext(tenant, revokerIdentity, `dynamic-${clock().getTime()}`);
    const failure = await attemptRemoval(tenant, account);
    return committer.commit(ctx, async () => {
      const { retryAt, ...mutation } = await outcomeOf(tenant, account, failure, reason, lease?.identity);
      return { ...mutation, result: retryAt };
    });
  }

  /**
   * Removals under way, by tenant and lease. They run side by side (the engine batches them)
   * and outside the sweep: one after another, each waiting out an unreachable server's
   * timeout, the last would wait for all the others, and so would every expiry due meanwhile.
   */
  const removing = new Map<string, Promise<void>>();

  /** Starts removing an account (at most `sweepConcurrency` at once); it wakes the sweep for its retry. */
  async function startRemoval(
    tenant: string,
    account: AccountRecord,
    lease: LeaseRecord | undefined,
    reason: string,
  ) {
    const key = `${tenant}\0${account.leaseId}`;
    if (removing.has(key)) return;
    while (removing.size >= config.sweepConcurrency) await Promise.race(removing.values());
    const removal = removeAccount(tenant, account, lease, reason)
      .catch((err: unknown) => {
        logger.warn({ lease: account.leaseId }, `recording a revocation failed: ${(err as Error).message}`);
        return clock().getTime() + config.retryBaseMs;
      })
      .then((retryAt) => {
        removing.delete(key);
        if (retryAt !== undefined) wakeAt(retryAt);
      });
    removing.set(key, removal);
  }

  /** Handles one tenant's accounts (or one account); returns when it next needs to look. */
  async function sweepTenant(tenant: string, only?: string): Promise<number> {
    let wake = Number.POSITIVE_INFINITY;
    // The accounts a page at a time, and their leases in one read per page (etcd: one
    // transaction per 100 keys), not one round trip per account.
    const decidePage = async (kvs: KeyValue[]) => {
      const accounts = kvs.map((kv) => parseRecord<AccountRecord>(kv.value));
      // Decided as of before the read: a lease committed after it is not taken for missing
      // once the issue grace has passed, nor once its issue finished here (removals may keep
      // this page waiting, and the live set forgets a lease the moment it committed).
      const now = clock();
      const issuingAtRead = new Set(issuing);
      const leases = await getMany(
        store,
        accounts.map((account) => keys.lease(tenant, account.leaseId)),
      );
      for (const [i, account] of accounts.entries()) {
        const leaseKv = leases[i];
        const lease = leaseKv ? parseRecord<LeaseRecord>(leaseKv.value) : undefined;
        const action = decideAccount(account, lease, {
          now,
          instance,
          issuing: issuingAtRead,
          issueGraceMs: config.issueGraceMs,
        });
        if (action.kind === 'revoke') await startRemoval(tenant, account, lease, action.reason);
        else if (action.until !== undefined) wake = Math.min(wake, action.until);
      }
    };
    if (only) {
      const kv = await store.get(keys.dynamicAccount(tenant, only));
      if (kv) await decidePage([kv]);
      return wake;
    }
    for await (const page of scanPages(store, keys.dynamicAccounts(tenant), { pageSize: SWEEP_PAGE }))
      await decidePage(page);
    return wake;
  }

  /** Resolves once no removal is under way (those started meanwhile included). */
  async function removalsDone() {
    while (removing.size > 0) await Promise.all(removing.values());
  }

  async function sweepAll(): Promise<number> {
    let wake = clock().getTime() + config.sweepIntervalMs;
    for await (const kv of scanPrefix(store, keys.tenants()))
      wake = Math.min(wake, await sweepTenant(kv.key.slice(keys.tenants().length)));
    return wake;
  }

  let scheduledAt = Number.POSITIVE_INFINITY;

  function schedule(at: number) {
    if (stopped) return;
    clearTimeout(timer);
    scheduledAt = at;
    timer = setTimeout(
      () => {
        scheduledAt = Number.POSITIVE_INFINITY;
        void sweepNow();
      },
      Math.max(10, Math.min(at - clock().getTime(), 2_147_000_000)),
    );
    timer.unref();
  }

  /**
   * Makes the next sweep come no later than `at` (a retry one account needs, or the expiry of
   * a lease just issued: the sweep learns expiries only when it looks, up to 30 s apart),
   * without sweeping now.
   */
  function wakeAt(at: number) {
    if (at < scheduledAt && !running) schedule(at);
    else if (at < scheduledAt) again = true;
  }

  /** Runs a sweep now (or right after the one in progress); resolves once its removals are done. */
  function kick(): Promise<void> {
    return sweepNow().then(removalsDone);
  }

  function sweepNow(): Promise<void> {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        try {
          schedule(await sweepAll());
        } catch (err) {
          logger.warn(`dynamic account sweep failed; retrying: ${(err as Error).message}`);
          schedule(clock().getTime() + config.retryBaseMs * 4);
        }
      } while (again);
    })().finally(() => {
      running = undefined;
    });
    return running;
  }

  /** Accounts of one credential still waiting for removal. */
  async function pendingOf(tenant: string, name: string): Promise<number> {
    let pending = 0;
    for await (const kv of scanPrefix(store, keys.dynamicAccounts(tenant)))
      if (parseRecord<AccountRecord>(kv.value).credentialName === name) pending += 1;
    return pending;
  }

  /** Writes an account's record unless it is there (written with its lease, or before). */
  async function recordIfMissing(ctx: CallContext, record: { type: 'put'; key: string; value: string }) {
    await committer.commit(ctx, async () =>
      (await store.get(record.key))
        ? { ops: [], audit: [], result: undefined }
        : { compare: [{ key: record.key, modRevision: 0 }], ops: [record], audit: [], result: undefined },
    );
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
      const key = keys.dynamicAccount(ctx.tenant, leaseId);
      const record = { type: 'put' as const, key, value: JSON.stringify(account) };
      const dynamic = { engine: spec.engine, username };
      const failed = (err: unknown) =>
        err instanceof VaultError
          ? err
          : upstreamError(err, `could not issue a ${spec.engine} account for "${credential.name}"`);
      if (engine.issueHeld) {
        try {
          const { connection } = await mustConnect(ctx.tenant, credential.name);
          const held = await engine.issueHeld(connection, spec as never, { username, expiresAt });
          return {
            value: held.value,
            dynamic,
            ops: [record],
            finish: async (committed) => {
              // A lease that may have committed keeps its account: a retry with the same
              // Idempotency-Key answers with that lease. Nobody has the value if it did not
              // (the answer was an error), and the sweep removes the account once it finds no
              // lease for it (its record went with the lease, or is written now).
              const keep = committed !== false;
              try {
                await held.settle(keep);
              } catch (err) {
                if (committed === true) throw failed(err);
              }
              if (committed === 'unknown') {
                await recordIfMissing(ctx, record).catch(() => undefined);
                void kick();
              } else if (committed) wakeAt(expiresAt.getTime());
            },
          };
        } catch (err) {
          throw failed(err);
        }
      }
      issuing.add(leaseId);
      try {
        await committer.commit(ctx, async () => ({
          compare: [{ key, modRevision: 0 }],
          ops: [record],
          audit: [],
          result: undefined,
        }));
        const { connection } = await mustConnect(ctx.tenant, credential.name);
        const value = await engine.issue(connection, spec as never, { username, expiresAt });
        return {
          value,
          dynamic,
          ops: [],
          finish: async (committed) => {
            issuing.delete(leaseId);
            if (committed !== true) void kick();
            else wakeAt(expiresAt.getTime());
          },
        };
      } catch (err) {
        issuing.delete(leaseId);
        void kick();
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
      // Only this lease's account: a full sweep per revocation would scan every live account.
      try {
        wakeAt(await sweepTenant(tenant, leaseId));
        await removing.get(`${tenant}\0${leaseId}`);
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

    /** The credential's failing upstream removals, as its GET shows them. */
    async revocationsOf(tenant: string, name: string): Promise<RevocationState> {
      const retries: RetryRecord[] = [];
      for await (const kv of scanPrefix(store, keys.dynamicRetries(tenant, name)))
        retries.push(parseRecord<RetryRecord>(kv.value));
      if (retries.length === 0) return { failing: 0 };
      const latest = retries.reduce((a, b) => (a.nextAttemptAt >= b.nextAttemptAt ? a : b));
      return {
        failing: retries.length,
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

    /** Sweeps now (a reconcile on start) and keeps sweeping at expiries and retries. */
    start() {
      stopped = false;
      return kick();
    },
    kick,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running?.catch(() => {});
      await removalsDone();
    },
    async closeEngines() {
      await Promise.all(Object.values(deps.engines).map((engine) => engine?.close()));
    },
  };
}

export type DynamicAccounts = ReturnType<typeof createDynamicAccounts>;
