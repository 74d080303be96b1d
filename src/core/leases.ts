import { createHash, randomBytes } from 'node:crypto';
import type { z } from 'zod';
import { hostAllowed, parseHostPort, parseHosts } from '../contract/broker.js';
import type { Identity } from '../contract/common.js';
import type { Credential } from '../contract/credentials.js';
import type {
  bulkRevokeRequest,
  createLeaseRequest,
  Lease,
  LeaseEvent,
  listLeasesQuery,
  useLeaseRequest,
} from '../contract/leases.js';
import { durationMs, formatDuration } from '../lib/duration.js';
import {
  badRequest,
  conflict,
  mayHaveBeenApplied,
  notFound,
  permissionDenied,
  VaultError,
} from '../lib/errors.js';
import { getMany } from '../store/paged.js';
import type { Compare, Op } from '../store/store.js';
import type { Access } from './access.js';
import type { AuditInput } from './committer.js';
import { type CallContext, formatIdentity, sameIdentity } from './context.js';
import { continueTokens, LIST_SCAN_BUDGET } from './continue-token.js';
import { isController } from './controller-role.js';
import type { CredentialService } from './credentials.js';
import { type CoreDeps, parseRecord } from './deps.js';
import type { DynamicAccounts, Issued } from './dynamic-accounts.js';
import type { ExpiryFeed } from './expiry-feed.js';
import type { Fingerprints } from './fingerprints.js';
import { keys } from './keys.js';
import type { LeaseChanges } from './lease-changes.js';
import { leaseIndex, leaseWriteOps, parseEntry } from './lease-index.js';
import { effectiveState, type LeaseRecord, revokeOps, toLease } from './lease-record.js';
import type { LeaseRevoker } from './lease-revoker.js';
import { type CredentialRef, mayActFor, readsLeasedValue } from './policy-engine.js';
import { parseSelectors } from './selectors.js';

export type CreateLeaseInput = z.output<typeof createLeaseRequest>;
export type ListLeasesInput = z.output<typeof listLeasesQuery>;
export type BulkRevokeInput = z.output<typeof bulkRevokeRequest>;
export type LeaseStateCounts = Record<'active' | 'expired' | 'revoked', number>;
export type UseLeaseInput = z.output<typeof useLeaseRequest>;

const resourceOf = (id: string) => `lease/${id}`;
const newLeaseId = () => `lease_${randomBytes(16).toString('base64url')}`;

export function createLeaseService(
  deps: CoreDeps & {
    access: Access;
    fingerprints: Fingerprints;
    credentials: CredentialService;
    revokeWhere: LeaseRevoker;
    dynamic: DynamicAccounts;
    expiryFeed: ExpiryFeed;
    leaseChanges: LeaseChanges;
  },
) {
  const { dynamic } = deps;
  const { store, keyring, committer, access, fingerprints, credentials, clock, config } = deps;
  const tokens = continueTokens(fingerprints);

  /**
   * `cached` serves the record from the 1 s record cache: only for callers whose commit
   * compares its revision (a stale read then fails the compare and is read again). A lease
   * missing from the cache is read again from the store (it may have just been issued).
   */
  async function load(ctx: CallContext, id: string, cached = false) {
    const key = keys.lease(ctx.tenant, id);
    const kv = (cached ? await deps.records.get(key) : undefined) ?? (await store.get(key));
    return kv
      ? {
          lease: parseRecord<LeaseRecord>(kv.value),
          modRevision: kv.modRevision,
          createRevision: kv.createRevision,
        }
      : undefined;
  }

  /**
   * Loads a lease the caller may see: its holder, its issuer or a tenant admin; with
   * `actingFor`, also whoever may act for its holder (a broker or runner using it for them).
   */
  async function loadVisible(
    ctx: CallContext,
    id: string,
    action: string,
    actingFor = false,
    cached = false,
  ) {
    const found = await load(ctx, id, cached);
    if (!found) {
      await committer.record(ctx, {
        action,
        resource: resourceOf(id),
        outcome: 'error',
        reason: 'not found',
      });
      throw notFound(`lease "${id}" does not exist in tenant "${ctx.tenant}"`);
    }
    const { lease } = found;
    const caller = ctx.principal.identity;
    if (
      !sameIdentity(caller, lease.identity) &&
      !sameIdentity(caller, lease.issuedBy) &&
      !isController(ctx.principal) &&
      !(await access.isAdmin(ctx)) &&
      !(actingFor && mayActFor(ctx.principal, await access.policiesOf(ctx), lease.identity).allowed)
    ) {
      throw await access.deny(
        ctx,
        action,
        resourceOf(id),
        `lease "${id}" belongs to ${formatIdentity(lease.identity)}, not to ${formatIdentity(caller)}`,
        lease.identity,
      );
    }
    return found;
  }

  /**
   * `created` (the create revisions of the lease record and of the credential record it
   * was read with) tells a lease of an earlier credential of the same name: a delete commits
   * before it marks the credential's leases revoked, page by page (and a crash may cut that
   * short), and the credential created again reuses its version numbers. Such a lease is
   * revoked whatever its record still says.
   */
  async function requireActive(
    ctx: CallContext,
    lease: LeaseRecord,
    action: string,
    created?: { lease: number; credential: number | undefined },
    /** Asked by a retry with an Idempotency-Key, whose first attempt issued `lease`. */
    replayed = false,
  ) {
    const orphan = !lease.dynamic && created?.credential !== undefined && created.lease < created.credential;
    const state = orphan ? 'revoked' : effectiveState(lease, clock());
    if (state === 'active') return;
    const subject = replayed
      ? `the lease this Idempotency-Key issued ("${lease.id}")`
      : `lease "${lease.id}"`;
    const next = replayed ? 'request a new lease with a new Idempotency-Key' : 'request a new lease';
    const reason = orphan
      ? `${subject} was revoked (credential "${lease.credentialName}" was deleted after it was issued); ${next}`
      : state === 'revoked'
        ? `${subject} was revoked${lease.revokeReason ? ` (${lease.revokeReason})` : ''}; ${next}`
        : `${subject} expired at ${lease.expiresAt}; ${next}`;
    await committer.record(ctx, {
      action,
      resource: resourceOf(lease.id),
      outcome: 'denied',
      reason,
      actingFor: lease.identity,
    });
    throw new VaultError(state === 'revoked' ? 'lease_revoked' : 'lease_expired', reason);
  }

  /** Whether any of these records has another revision in the store now. */
  async function changed(records: Array<{ key: string; modRevision: number }>): Promise<boolean> {
    const now = await Promise.all(records.map(({ key }) => store.get(key)));
    return records.some(({ modRevision }, i) => now[i]?.modRevision !== modRevision);
  }

  /**
   * Commits the audit record of a value about to leave (a read, a reveal, a use), comparing the
   * lease and credential records it was decided on (`decidedOn`): resolves to the commit's time,
   * or undefined when one of them changed (on any replica) or the lease ended meanwhile, and the
   * caller decides again on fresh records. No value leaves before its record is committed.
   */
  async function commitValueAudit(
    ctx: CallContext,
    lease: LeaseRecord,
    decidedOn: Array<{ key: string; modRevision: number }>,
    audit: AuditInput,
  ): Promise<Date | undefined> {
    let built = 0;
    return committer.commit(ctx, async () => {
      // A retried build: was it one of these records that changed? Then decide again.
      if (built++ > 0 && (await changed(decidedOn))) return { ops: [], audit: [], result: undefined };
      // The commit may come rounds after the decision: a lease that has ended meanwhile is
      // decided again (and refused), and the answer describes it as it was committed.
      const at = clock();
      if (effectiveState(lease, at) !== 'active') return { ops: [], audit: [], result: undefined };
      return { compare: decidedOn, ops: [], audit: [audit], result: at };
    });
  }

  /** The records a value's release is decided on: the lease's, and its credential's when it exists. */
  const decisionRecords = (
    ctx: CallContext,
    lease: LeaseRecord,
    modRevision: number,
    credential: { modRevision: number } | undefined,
  ) => [
    { key: keys.lease(ctx.tenant, lease.id), modRevision },
    ...(credential
      ? [{ key: keys.credential(ctx.tenant, lease.credentialName), modRevision: credential.modRevision }]
      : []),
  ];

  const mayReadValue = async (ctx: CallContext, credential: CredentialRef) =>
    readsLeasedValue(ctx.principal, await access.policiesOf(ctx), credential);

  const noRevealReason = (ctx: CallContext, leaseId: string, credentialName: string) =>
    `${formatIdentity(ctx.principal.identity)} may use lease "${leaseId}" but not read its value: ` +
    `no policy grants "reveal" on credential "${credentialName}"; use the credential through ` +
    'run_with_credentials, `vault run` or the broker, or ask for a "reveal" grant';

  /**
   * `incarnation` (the credential record's create revision, never reused by the store) lets
   * the immutable sealed record come from the cache: it tells a credential deleted and
   * created again under the same name from the one that was cached.
   */
  async function openValue(ctx: CallContext, lease: LeaseRecord, incarnation?: number): Promise<string> {
    if (lease.dynamic) {
      const kv = await store.get(keys.leaseValue(ctx.tenant, lease.id));
      if (!kv) throw new VaultError('lease_revoked', `the account of lease "${lease.id}" is gone`);
      const { sealed } = parseRecord<{ sealed: never }>(kv.value);
      return (await keyring.openValue(ctx.tenant, leaseValueRef(lease.id), 1, sealed)).toString('utf8');
    }
    const key = keys.value(ctx.tenant, lease.credentialName, lease.version);
    const kv = incarnation ? await deps.sealed.get(`${key}#${incarnation}`, key) : await store.get(key);
    if (!kv)
      throw new VaultError('lease_revoked', `version ${lease.version} of "${lease.credentialName}" is gone`);
    const { sealed } = parseRecord<{ sealed: never }>(kv.value);
    const plain = await keyring.openValue(ctx.tenant, lease.credentialName, lease.version, sealed);
    return plain.toString('utf8');
  }

  function ttlLimits(
    ctx: CallContext,
    credential: Credential,
    input: CreateLeaseInput,
    ruleMaxMs: number | undefined,
  ) {
    const caps: Array<[number, string]> = [[config.maxLeaseTtlMs, 'the server maximum']];
    if (ruleMaxMs !== undefined) caps.push([ruleMaxMs, 'your policy']);
    if (credential.leases?.maxTtl)
      caps.push([durationMs(credential.leases.maxTtl), `credential "${credential.name}"`]);
    const [maxMs, source] = caps.reduce((a, b) => (b[0] < a[0] ? b : a));
    const ttlMs = durationMs(
      input.ttl ?? credential.leases?.defaultTtl ?? formatDuration(config.defaultLeaseTtlMs),
    );
    if (ttlMs > maxMs) {
      throw badRequest(
        `ttl ${formatDuration(ttlMs)} is above the maximum ${formatDuration(maxMs)} set by ${source}; ask for at most ${formatDuration(maxMs)}`,
        { field: 'ttl' },
      );
    }
    const maxTtlMs = Math.min(input.maxTtl ? durationMs(input.maxTtl) : maxMs, maxMs);
    if (maxTtlMs < ttlMs) throw badRequest('maxTtl must not be shorter than ttl', { field: 'maxTtl' });
    void ctx;
    return { ttlMs, maxTtlMs };
  }

  /** The answer to a retried creation: the lease its first attempt issued, audited as a replay. */
  async function replay(
    ctx: CallContext,
    input: CreateLeaseInput,
    earlier: { key: string; value: string; modRevision: number },
    withValue: boolean,
  ) {
    const { leaseId, request } = parseRecord<{ leaseId: string; request?: string }>(earlier.value);
    // (Keys written before requests were fingerprinted compare the credential alone.)
    if (request !== undefined && request !== requestFingerprint(ctx, input)) {
      throw conflict(
        'this Idempotency-Key was used for a different request (credential, ttl, identity, version, renewable, maxTtl or labels differ); use a new key for a new lease',
      );
    }
    const found = await load(ctx, leaseId);
    if (!found) throw notFound(`the lease this Idempotency-Key issued ("${leaseId}") no longer exists`);
    const { lease } = found;
    if (lease.credentialName !== input.credentialName) {
      throw conflict('this Idempotency-Key was used for another request; use a new key for a new lease');
    }
    const now = clock();
    // Not for a lease of an earlier credential of that name (see requireActive).
    const credential = lease.dynamic ? undefined : await credentials.load(ctx, lease.credentialName);
    const current =
      lease.dynamic || (credential !== undefined && found.createRevision > credential.createRevision);
    // Ended before the retry came: 410, not a success without a value (nor a second lease).
    if (!current || effectiveState(lease, now) !== 'active') {
      throw new ReplayedLeaseEnded(lease, {
        lease: found.createRevision,
        credential: current ? undefined : (credential?.createRevision ?? Number.MAX_SAFE_INTEGER),
      });
    }
    const value = withValue ? await openValue(ctx, lease) : undefined;
    return {
      compare: [{ key: earlier.key, modRevision: earlier.modRevision }],
      ops: [],
      audit: [
        {
          action: 'lease.create',
          resource: resourceOf(lease.id),
          outcome: 'allowed' as const,
          reason: 'replayed for a retry with the same Idempotency-Key: no new lease issued',
          actingFor: lease.identity,
        },
      ],
      result: value === undefined ? toLease(lease, now) : { ...toLease(lease, now), value },
    };
  }

  /**
   * A dynamic lease: the account is recorded and created upstream first (valid until the
   * lease's end), then the lease commits with its value sealed beside it. If the commit does
   * not happen, the account is removed by the sweep, also after a crash (on start).
   */
  async function createDynamic(
    ctx: CallContext,
    input: CreateLeaseInput,
    loaded: NonNullable<Awaited<ReturnType<CredentialService['load']>>>,
    target: Identity,
    ttlMs: number,
    maxTtlMs: number,
    withValue: boolean,
    idempotency: { hash: string; key: string } | undefined,
  ): Promise<Lease> {
    // A retry whose first attempt committed gets that lease, before any account is made.
    if (idempotency) {
      const replayed = await committer.commit(ctx, async () => {
        const earlier = await store.get(idempotency.key);
        return earlier ? replay(ctx, input, earlier, withValue) : { ops: [], audit: [], result: undefined };
      });
      if (replayed) return replayed;
    }
    const credential = loaded.credential;
    const id = newLeaseId();
    const now = clock();
    const expiresAt = new Date(now.getTime() + ttlMs);
    let issued: Issued;
    try {
      issued = await dynamic.issue(ctx, credential, id, expiresAt);
    } catch (err) {
      await committer.record(ctx, {
        action: 'lease.create',
        resource: `credential/${credential.name}`,
        outcome: 'error',
        reason: (err as Error).message,
        actingFor: target,
      });
      throw err;
    }
    const lease: LeaseRecord = {
      id,
      tenant: ctx.tenant,
      credentialName: credential.name,
      version: credential.currentVersion,
      identity: target,
      issuedBy: ctx.principal.identity,
      issuedAt: now.toISOString(),
      expiresAt: expiresAt.toISOString(),
      maxExpiresAt: new Date(now.getTime() + maxTtlMs).toISOString(),
      ttlMs,
      renewable: input.renewable,
      renewCount: 0,
      state: 'active',
      ...(input.labels ? { labels: input.labels } : {}),
      ...(idempotency ? { idempotency: idempotency.hash } : {}),
      dynamic: issued.dynamic,
    };
    let committed: boolean | 'unknown' = false;
    // Set when a concurrent attempt with the same key committed first: its lease is the
    // answer, and this attempt's account is rolled back.
    let replayedInstead = false;
    // A commit whose answer was lost (the store timed out) may have written the lease: its
    // account is kept, for a retry with the same Idempotency-Key finds the lease.
    const commitOrUnknown: typeof committer.commit = (commitCtx, build) =>
      committer.commit(commitCtx, build).catch((err: unknown) => {
        if (mayHaveBeenApplied(err)) committed = 'unknown';
        throw err;
      });
    try {
      const sealed = await keyring.sealValue(
        ctx.tenant,
        leaseValueRef(id),
        1,
        Buffer.from(issued.value, 'utf8'),
      );
      const valueHmac = await fingerprints.of(ctx.tenant, issued.value);
      const result = await commitOrUnknown(ctx, async () => {
        // The credential must still exist: a lease of a deleted credential would outlive it.
        if (!(await store.get(keys.credential(ctx.tenant, credential.name))))
          throw notFound(`credential "${credential.name}" was deleted`);
        const earlier = idempotency ? await store.get(idempotency.key) : undefined;
        replayedInstead = earlier !== undefined;
        if (earlier) return replay(ctx, input, earlier, withValue);
        const keyRecord = idempotencyWrite(ctx, input, idempotency?.key, id);
        return {
          compare: keyRecord.compare,
          ops: [
            ...leaseWriteOps(ctx.tenant, undefined, lease),
            { type: 'put', key: keys.leaseValue(ctx.tenant, id), value: JSON.stringify({ sealed }) },
            ...issued.ops,
            ...keyRecord.ops,
          ],
          audit: [
            {
              action: 'lease.create',
              resource: resourceOf(id),
              outcome: 'allowed',
              reason: `${credential.name} v${lease.version} for ${formatDuration(ttlMs)} as ${issued.dynamic.engine} account ${issued.dynamic.username}${withValue ? '' : ' (handle only: no reveal)'}`,
              actingFor: target,
              valueHmac,
            },
          ],
          result: withValue ? { ...toLease(lease, now), value: issued.value } : toLease(lease, now),
        };
      });
      if (replayedInstead) return result;
      committed = true;
      await issued.finish(true).catch(async (err: unknown) => {
        // Committed here but not upstream: the lease must not stand without its account.
        await revokeUnusable(ctx, id, (err as Error).message);
        throw err;
      });
      return result;
    } finally {
      if (committed !== true) await issued.finish(committed);
    }
  }

  /** Revokes a lease just committed whose upstream account could not be kept. */
  async function revokeUnusable(ctx: CallContext, id: string, why: string) {
    await committer.commit(ctx, async () => {
      const found = await load(ctx, id);
      if (!found || found.lease.state === 'revoked') return { ops: [], audit: [], result: undefined };
      const reason = 'its upstream account could not be committed';
      return {
        compare: [{ key: keys.lease(ctx.tenant, id), modRevision: found.modRevision }],
        ops: revokeOps(ctx.tenant, found.lease, clock(), reason),
        audit: [
          {
            action: 'lease.revoke',
            resource: resourceOf(id),
            outcome: 'allowed' as const,
            reason: `${reason}: ${why}`,
            actingFor: found.lease.identity,
          },
        ],
        result: undefined,
      };
    });
    void dynamic.kick();
  }

  /** A create whose retry found its lease ended: audited and answered 410 (see replay). */
  async function answerEnded(ctx: CallContext, err: unknown): Promise<never> {
    if (err instanceof ReplayedLeaseEnded)
      await requireActive(ctx, err.lease, 'lease.create', err.created, true);
    throw err;
  }

  const visibleTo = (ctx: CallContext, admin: boolean) => (lease: LeaseRecord) =>
    admin ||
    isController(ctx.principal) ||
    sameIdentity(lease.identity, ctx.principal.identity) ||
    sameIdentity(lease.issuedBy, ctx.principal.identity);

  return {
    /**
     * With `idempotencyKey`, a retry of the same request (same caller, same key) returns the
     * lease the first attempt issued instead of issuing another (410 when it has ended since:
     * the caller asks again with a new key): the key's record is written
     * in the lease's transaction, so a first attempt whose outcome was unknown either issued
     * the lease (and the retry finds it) or did not (and the retry issues it).
     */
    async create(
      ctx: CallContext,
      input: CreateLeaseInput,
      options: { idempotencyKey?: string } = {},
    ): Promise<Lease> {
      const target: Identity = input.identity ?? ctx.principal.identity;
      const resource = `credential/${input.credentialName}`;
      const loaded = await credentials.mustLoad(ctx, input.credentialName, 'lease.create', true, true);
      await access.checkActFor(ctx, target, 'lease.create', resource);
      const decision = await access.checkLease(ctx, target, resource, loaded.credential);
      let { ttlMs, maxTtlMs } = ttlLimits(ctx, loaded.credential, input, decision.maxTtlMs);
      const withValue = await mayReadValue(ctx, loaded.credential);
      const idempotency =
        options.idempotencyKey === undefined
          ? undefined
          : createHash('sha256')
              .update(`${formatIdentity(ctx.principal.identity)}\0${options.idempotencyKey}`)
              .digest('base64url');
      const idempotencyKey = idempotency && keys.leaseIdempotency(ctx.tenant, idempotency);
      if (loaded.credential.dynamic) {
        if (input.version !== undefined && input.version !== loaded.credential.currentVersion)
          throw badRequest('a dynamic credential issues from its current version only', { field: 'version' });
        return createDynamic(
          ctx,
          input,
          loaded,
          target,
          ttlMs,
          maxTtlMs,
          withValue,
          idempotency && idempotencyKey ? { hash: idempotency, key: idempotencyKey } : undefined,
        ).catch((err: unknown) => answerEnded(ctx, err));
      }

      // The first attempt uses the record read above (perhaps from the cache): the commit
      // compares its revision. A retry reads it afresh and decides again on what it finds.
      let reuse: typeof loaded | undefined = loaded;
      let refused: string | undefined;
      const issued = committer.commit(ctx, async () => {
        const earlier = idempotencyKey ? await store.get(idempotencyKey) : undefined;
        if (earlier) return replay(ctx, input, earlier, withValue);
        const current = reuse ?? (await credentials.load(ctx, input.credentialName));
        if (!current) throw notFound(`credential "${input.credentialName}" was deleted`);
        if (!reuse) {
          const again = await access.leaseDecision(ctx, target, current.credential);
          if (!again.allowed) {
            refused = again.reason;
            throw permissionDenied(again.reason);
          }
          ({ ttlMs, maxTtlMs } = ttlLimits(ctx, current.credential, input, again.maxTtlMs));
        }
        reuse = undefined;
        const version = input.version ?? current.credential.currentVersion;
        // The record lists only the latest versions; an older one is there while its value is.
        const exists =
          current.credential.versions.some((v) => v.version === version) ||
          (version >= 1 &&
            version < current.credential.currentVersion &&
            (await store.get(keys.value(ctx.tenant, input.credentialName, version))) !== undefined);
        if (!exists) throw notFound(`credential "${input.credentialName}" has no version ${version}`);
        const now = clock();
        const lease: LeaseRecord = {
          id: newLeaseId(),
          tenant: ctx.tenant,
          credentialName: input.credentialName,
          version,
          identity: target,
          issuedBy: ctx.principal.identity,
          issuedAt: now.toISOString(),
          expiresAt: new Date(now.getTime() + ttlMs).toISOString(),
          maxExpiresAt: new Date(now.getTime() + maxTtlMs).toISOString(),
          ttlMs,
          renewable: input.renewable,
          renewCount: 0,
          state: 'active',
          ...(input.labels ? { labels: input.labels } : {}),
          ...(idempotency ? { idempotency } : {}),
        };
        const value = await openValue(ctx, lease, current.createRevision).catch(async (err: unknown) => {
          // Decided on a (cached) record of a credential deleted since: its value is gone
          // before the commit's compare could say so. Answer as a fresh read would.
          if (err instanceof VaultError && err.code === 'lease_revoked') {
            const now = await credentials.load(ctx, input.credentialName);
            if (now?.createRevision !== current.createRevision)
              throw notFound(`credential "${input.credentialName}" was deleted`);
          }
          throw err;
        });
        const valueHmac = await fingerprints.of(ctx.tenant, value);
        const keyRecord = idempotencyWrite(ctx, input, idempotencyKey, lease.id);
        return {
          compare: [
            { key: keys.credential(ctx.tenant, input.credentialName), modRevision: current.modRevision },
            ...keyRecord.compare,
          ],
          ops: [...leaseWriteOps(ctx.tenant, undefined, lease), ...keyRecord.ops],
          audit: [
            {
              action: 'lease.create',
              resource: resourceOf(lease.id),
              outcome: 'allowed',
              reason: `${input.credentialName} v${version} for ${formatDuration(ttlMs)}${withValue ? '' : ' (handle only: no reveal)'}`,
              actingFor: target,
              valueHmac,
            },
          ],
          result: withValue ? { ...toLease(lease, now), value } : toLease(lease, now),
        };
      });
      try {
        return await issued;
      } catch (err) {
        // A denial found on a retry is audited like any other (outside the commit queue).
        if (refused) throw await access.deny(ctx, 'lease.create', resource, refused, target);
        return answerEnded(ctx, err);
      }
    },

    async get(ctx: CallContext, id: string): Promise<Lease> {
      const { lease } = await loadVisible(ctx, id, 'lease.get');
      await committer.record(ctx, {
        action: 'lease.get',
        resource: resourceOf(id),
        outcome: 'allowed',
        actingFor: lease.identity,
      });
      return toLease(lease, clock());
    },

    /** The value through an active lease; 410 once it expired or was revoked. */
    async read(
      ctx: CallContext,
      id: string,
      action: 'lease.read' | 'lease.reveal' = 'lease.read',
    ): Promise<Lease> {
      // As lean as issuing: the lease and credential records come from the record cache and
      // the sealed value from the sealed cache, and the one store call is the audit record's
      // commit, which compares the lease and credential records it was decided on. A lease
      // revoked or renewed, or a credential changed, since (on any replica) fails the compare,
      // and the read is decided again from fresh records; no value leaves before its commit.
      for (let attempt = 0; ; attempt++) {
        const fresh = attempt > 0;
        const { lease, modRevision, createRevision } = await loadVisible(ctx, id, action, false, !fresh);
        const found = await credentials.load(ctx, lease.credentialName, !fresh);
        const ref = { name: lease.credentialName, metadata: found?.credential.metadata ?? {} };
        if (action === 'lease.reveal') {
          await access.check(ctx, 'reveal', `credential/${lease.credentialName}`, ref, action);
        } else if (!(await mayReadValue(ctx, ref))) {
          throw await access.deny(
            ctx,
            action,
            resourceOf(id),
            noRevealReason(ctx, id, lease.credentialName),
            lease.identity,
          );
        }
        await requireActive(ctx, lease, action, { lease: createRevision, credential: found?.createRevision });
        const value = await openValue(ctx, lease, found?.createRevision);
        const committed = await commitValueAudit(
          ctx,
          lease,
          decisionRecords(ctx, lease, modRevision, found),
          {
            action,
            resource: resourceOf(id),
            outcome: 'allowed',
            actingFor: lease.identity,
            valueHmac: await fingerprints.of(ctx.tenant, value),
          },
        );
        if (committed) return { ...toLease(lease, committed), value };
        if (attempt >= 8) throw conflict(`lease "${id}" kept changing while it was read; retry the request`);
      }
    },

    /**
     * One use of the lease's value, not a showing of it: a runner injecting it into a scrubbed
     * command, or the broker putting it on the wire (one call per request, which is also its
     * per-request lease check). Open to the holder (a lease is a right to use), its issuer,
     * whoever may act for the holder, and admins. An allowed use needs the caller's own `lease`
     * grant on the credential and an active lease, and with a `host` the credential must name
     * it in `metadata.hosts` (checked here, so a broker bug cannot widen where a value goes);
     * it returns the value. A denied use is only recorded. Audited as `lease.use` for the
     * holder: "<purpose> <METHOD> <host[:port]><path>", never a query string or a value.
     */
    async use(ctx: CallContext, id: string, input: UseLeaseInput = {}): Promise<Lease> {
      const visible = await loadVisible(ctx, id, 'lease.use', true);
      const host = input.host === undefined ? undefined : input.host.toLowerCase();
      const target =
        host === undefined ? undefined : input.port === undefined ? host : `${host}:${input.port}`;
      const request = [
        input.purpose ?? 'use',
        input.method,
        target !== undefined || input.path !== undefined ? `${target ?? ''}${input.path ?? ''}` : undefined,
      ]
        .filter((part) => part !== undefined)
        .join(' ');
      if (input.outcome === 'denied') {
        await committer.record(ctx, {
          action: 'lease.use',
          resource: resourceOf(id),
          outcome: 'denied',
          reason: `${request}${input.reason ? ` (${input.reason})` : ''}`,
          actingFor: visible.lease.identity,
        });
        return toLease(visible.lease, clock());
      }
      // Decided and committed as a read is (see commitValueAudit): a lease revoked between the
      // decision and the commit, on any replica, is decided again and refused.
      for (let attempt = 0; ; attempt++) {
        const { lease, modRevision, createRevision } =
          attempt === 0 ? visible : await loadVisible(ctx, id, 'lease.use', true);
        const found = await credentials.load(ctx, lease.credentialName);
        const ref = { name: lease.credentialName, metadata: found?.credential.metadata ?? {} };
        await access.check(ctx, 'lease', `credential/${lease.credentialName}`, ref, 'lease.use');
        await requireActive(ctx, lease, 'lease.use', {
          lease: createRevision,
          credential: found?.createRevision,
        });
        if (host !== undefined) {
          const wanted = parseHostPort(host, input.port ?? 443);
          const hosts = parseHosts(ref.metadata.hosts);
          if (!wanted || 'error' in hosts || !hostAllowed(hosts.hosts, wanted)) {
            throw await access.deny(
              ctx,
              'lease.use',
              resourceOf(id),
              `${request}: credential "${lease.credentialName}" does not name ${target} in metadata.hosts`,
              lease.identity,
            );
          }
        }
        const value = await openValue(ctx, lease);
        const committed = await commitValueAudit(
          ctx,
          lease,
          decisionRecords(ctx, lease, modRevision, found),
          {
            action: 'lease.use',
            resource: resourceOf(id),
            outcome: 'allowed',
            reason: request,
            actingFor: lease.identity,
            valueHmac: await fingerprints.of(ctx.tenant, value),
          },
        );
        if (committed) return { ...toLease(lease, committed), value };
        if (attempt >= 8) throw conflict(`lease "${id}" kept changing while it was used; retry the request`);
      }
    },

    async renew(ctx: CallContext, id: string, input: { increment?: string | undefined }): Promise<Lease> {
      const visible = await loadVisible(ctx, id, 'lease.renew');
      // Upstream first: a database that allows a little longer than the lease is corrected by
      // revocation at the lease's end; one that refuses a renewed lease early is not.
      let upstreamUntil: number | undefined;
      if (
        visible.lease.dynamic &&
        effectiveState(visible.lease, clock()) === 'active' &&
        visible.lease.renewable
      ) {
        const { lease } = visible;
        const incrementMs = input.increment ? durationMs(input.increment) : lease.ttlMs;
        upstreamUntil = Math.max(
          Math.min(clock().getTime() + incrementMs, Date.parse(lease.maxExpiresAt)),
          Date.parse(lease.expiresAt),
        );
        await dynamic.renew(ctx, lease, new Date(upstreamUntil));
      }
      return committer.commit(ctx, async () => {
        const found = await load(ctx, id);
        if (!found) throw notFound(`lease "${id}" does not exist`);
        const { lease, modRevision } = found;
        const now = clock();
        const state = effectiveState(lease, now);
        if (state !== 'active') {
          throw new VaultError(
            state === 'revoked' ? 'lease_revoked' : 'lease_expired',
            `lease "${id}" is ${state} and cannot be renewed; request a new lease`,
          );
        }
        if (!lease.renewable)
          throw conflict(`lease "${id}" is not renewable; request a new lease before it expires`);
        const incrementMs = input.increment ? durationMs(input.increment) : lease.ttlMs;
        const wanted = now.getTime() + incrementMs;
        const capped = Math.min(wanted, Date.parse(lease.maxExpiresAt));
        const expiresAt = upstreamUntil ?? Math.max(capped, Date.parse(lease.expiresAt));
        const renewed: LeaseRecord = {
          ...lease,
          expiresAt: new Date(expiresAt).toISOString(),
          renewCount: lease.renewCount + 1,
        };
        const grantedTtlSeconds = Math.max(0, Math.floor((expiresAt - now.getTime()) / 1000));
        return {
          compare: [{ key: keys.lease(ctx.tenant, id), modRevision }],
          ops: leaseWriteOps(ctx.tenant, lease, renewed),
          audit: [
            {
              action: 'lease.renew',
              resource: resourceOf(id),
              outcome: 'allowed',
              reason: `granted ${grantedTtlSeconds}s${capped < wanted ? ' (capped by max TTL)' : ''}`,
              actingFor: lease.identity,
            },
          ],
          result: { ...toLease(renewed, now), grantedTtlSeconds },
        };
      });
    },

    async revoke(ctx: CallContext, id: string, reason = 'revoked by request'): Promise<Lease> {
      const { lease: seen } = await loadVisible(ctx, id, 'lease.revoke');
      // A dynamic lease's account goes first when the engine answers in time, so the
      // revocation and its upstream outcome commit together; if not, the sweep follows up.
      const upstream = seen.dynamic ? await dynamic.removeBeforeRevoke(ctx.tenant, id) : undefined;
      let retryAt: number | undefined;
      const revoked = await committer.commit(ctx, async () => {
        const found = await load(ctx, id);
        if (!found) throw notFound(`lease "${id}" does not exist`);
        const { lease, modRevision } = found;
        const now = clock();
        const audit = {
          action: 'lease.revoke',
          resource: resourceOf(id),
          outcome: 'allowed' as const,
          actingFor: lease.identity,
        };
        const outcome = upstream ? await upstream.outcome(reason, lease.identity) : undefined;
        retryAt = outcome?.retryAt;
        if (lease.state === 'revoked') {
          return {
            compare: outcome?.compare ?? [],
            ops: outcome?.ops ?? [],
            audit: [{ ...audit, reason: 'already revoked' }, ...(outcome?.audit ?? [])],
            result: toLease(lease, now),
          };
        }
        return {
          compare: [{ key: keys.lease(ctx.tenant, id), modRevision }, ...(outcome?.compare ?? [])],
          ops: [...revokeOps(ctx.tenant, lease, now, reason), ...(outcome?.ops ?? [])],
          audit: [{ ...audit, reason }, ...(outcome?.audit ?? [])],
          result: toLease(
            { ...lease, state: 'revoked', revokedAt: now.toISOString(), revokeReason: reason },
            now,
          ),
        };
      });
      if (upstream) upstream.committed(retryAt);
      // The engine did not answer in time: the revocation is committed, so answer now (the
      // docs promise at most about a second) and let the removal follow; a failure is recorded
      // and retried by the sweep, which revokeNow wakes.
      else if (seen.dynamic) void dynamic.revokeNow(ctx.tenant, id).catch(() => {});
      return revoked;
    },

    async bulkRevoke(ctx: CallContext, selector: BulkRevokeInput) {
      let resource: string;
      if ('credentialName' in selector) {
        resource = `credential/${selector.credentialName}`;
        const { credential } = await credentials.mustLoad(ctx, selector.credentialName, 'lease.revoke-bulk');
        await access.check(ctx, 'rotate', resource, credential, 'lease.revoke-bulk');
      } else if ('identity' in selector) {
        resource = `identity/${formatIdentity(selector.identity)}`;
        if (!sameIdentity(selector.identity, ctx.principal.identity)) {
          await access.check(ctx, 'admin', resource, undefined, 'lease.revoke-bulk');
        }
      } else {
        resource = `tenant/${ctx.tenant}`;
        await access.check(ctx, 'admin', resource, undefined, 'lease.revoke-bulk');
      }
      return deps.revokeWhere(ctx, selector, {
        action: 'lease.revoke-bulk',
        resource,
        reason: 'bulk revocation',
      });
    },

    /**
     * One page of the leases the caller may see, in key order, walking the credential or
     * identity index when the query names one, else the records. A page reads at most
     * LIST_SCAN_BUDGET keys, so it may hold fewer than `limit` leases (even none) and still
     * carry a `continue` token; no token means the walk is complete.
     */
    async list(ctx: CallContext, query: ListLeasesInput): Promise<{ leases: Lease[]; continue?: string }> {
      const selectors = parseSelectors(query.labels);
      const admin = await access.isAdmin(ctx);
      const now = clock();
      const visible = visibleTo(ctx, admin);
      const wanted = (lease: LeaseRecord) =>
        visible(lease) &&
        (!query.state || effectiveState(lease, now) === query.state) &&
        (!query.credentialName || lease.credentialName === query.credentialName) &&
        (!query.identityType || lease.identity.type === query.identityType) &&
        (!query.identityName || lease.identity.name === query.identityName) &&
        selectors.every(([key, value]) => lease.labels?.[key] === value);
      const indexed = query.credentialName
        ? leaseIndex.byCredential(ctx.tenant, query.credentialName)
        : query.identityType && query.identityName
          ? leaseIndex.byIdentity(ctx.tenant, { type: query.identityType, name: query.identityName })
          : undefined;
      const prefix = indexed ?? keys.leases(ctx.tenant);
      // Skips index entries whose lease cannot be in the requested state without reading it.
      const mayMatch = (value: string) => {
        if (!query.state) return true;
        const entry = parseEntry(value);
        if (entry.s === 'revoked') return query.state === 'revoked';
        return query.state === (entry.e > now.getTime() ? 'active' : 'expired');
      };

      const leases: Lease[] = [];
      // What a continue token is bound to: this list, with these filters.
      const walk = JSON.stringify([
        'leases',
        query.state ?? '',
        query.credentialName ?? '',
        query.identityType ?? '',
        query.identityName ?? '',
        query.labels ?? '',
      ]);
      let after =
        query.continue === undefined
          ? undefined
          : prefix + (await tokens.decode(ctx.tenant, walk, query.continue));
      let scanned = 0;
      let complete = false;
      // The first read asks for `limit` keys; each read that leaves the page short asks for
      // twice as many (up to LIST_READ_MAX), so a sparse walk takes a few reads, not one per
      // `limit` keys (limit=1 over 10,000 keys was 10,000 round trips).
      let readSize = query.limit;
      page: while (scanned < LIST_SCAN_BUDGET) {
        const { kvs, more } = await store.range(prefix, {
          limit: Math.min(readSize, LIST_SCAN_BUDGET - scanned),
          ...(after !== undefined ? { startAfter: after } : {}),
        });
        readSize = Math.min(readSize * 2, Math.max(query.limit, LIST_READ_MAX));
        scanned += kvs.length;
        let records: Array<string | undefined> = kvs.map((kv) => kv.value);
        if (indexed) {
          const wantedKvs = kvs.filter((kv) => mayMatch(kv.value));
          const loaded = await getMany(
            store,
            wantedKvs.map((kv) => keys.lease(ctx.tenant, leaseIndex.idOf(kv.key))),
          );
          const byKey = new Map(wantedKvs.map((kv, i) => [kv.key, loaded[i]?.value]));
          records = kvs.map((kv) => byKey.get(kv.key));
        }
        for (const [i, kv] of kvs.entries()) {
          after = kv.key;
          const value = records[i];
          const lease = value === undefined ? undefined : parseRecord<LeaseRecord>(value);
          if (lease && wanted(lease)) leases.push(toLease(lease, now));
          if (leases.length === query.limit) {
            complete = !more && i === kvs.length - 1;
            break page;
          }
        }
        if (!more) {
          complete = true;
          break;
        }
      }
      await committer.record(ctx, {
        action: 'lease.list',
        resource: 'leases',
        outcome: 'allowed',
        reason: `${leases.length} listed`,
      });
      return complete || after === undefined
        ? { leases }
        : { leases, continue: await tokens.encode(ctx.tenant, walk, after.slice(prefix.length)) };
    },

    /**
     * Leases of every tenant by effective state, for the `vault_leases` gauge: three counts
     * of index keys per tenant (etcd counts without sending them), never a read of records.
     */
    async countByState(): Promise<LeaseStateCounts> {
      return (await this.countLeases()).total;
    },

    /** The same counts, also per tenant (for `--metrics-tenant-series`). */
    async countLeases(): Promise<{ total: LeaseStateCounts; byTenant: Map<string, LeaseStateCounts> }> {
      const total = { active: 0, expired: 0, revoked: 0 };
      const byTenant = new Map<string, LeaseStateCounts>();
      const now = clock();
      let after: string | undefined;
      for (;;) {
        const page = await store.range(keys.tenants(), {
          limit: 500,
          ...(after !== undefined ? { startAfter: after } : {}),
        });
        for (const tenant of page.kvs) {
          const id = tenant.key.slice(keys.tenants().length);
          const [unrevoked, active, revoked] = await Promise.all([
            store.count(leaseIndex.expiry(id)),
            store.count(leaseIndex.expiry(id), { startAfter: leaseIndex.expiryAfter(id, now) }),
            store.count(leaseIndex.revoked(id)),
          ]);
          const counts = { active, expired: unrevoked - active, revoked };
          byTenant.set(id, counts);
          total.active += counts.active;
          total.expired += counts.expired;
          total.revoked += counts.revoked;
          after = tenant.key;
        }
        if (!page.more) return { total, byTenant };
      }
    },

    /**
     * Streams changes of the leases the caller may see. An `expired` event is sent when an
     * active lease reaches its expiry (no store write happens then), found in the expiry index.
     * Whether the caller may see others' leases (admin) is asked again at such an event once
     * the records the last answer came from have left the record cache, with the context
     * `refresh` gives (the server authenticates the token again: the identity's
     * policies as they are now; by default the same principal in a fresh context, so its policies
     * are read again), from the record cache: at once for a change made here, within its TTL for
     * one made through another replica. A stream opened by an admin narrows as soon as the grant
     * goes, and one whose `refresh` fails (a revoked token) ends. Events pass one queue, in order.
     */
    async watch(
      ctx: CallContext,
      onEvent: (event: LeaseEvent) => void,
      onEnd?: (err: Error) => void,
      options: { refresh?: () => Promise<CallContext> } = {},
    ): Promise<{ close(): Promise<void> }> {
      const own = visibleTo(ctx, false);
      const refresh = options.refresh ?? (async () => ({ ...ctx }));
      // Whether the token, as it is now, may see others' leases: decided from cached records,
      // so kept as long as they would be (until the first of them leaves the record cache, or
      // this process changes a token, policy or identity), not decided again for each of
      // 10,000 events. Not a full TTL from the decision: its records may be nearly that old.
      let rights: { until: number; generation: number; admin: Promise<boolean> } | undefined;
      const adminNow = () => {
        const now = Date.now();
        const generation = deps.records.generation();
        if (!rights || now >= rights.until || rights.generation !== generation) {
          const decided = { until: now + deps.records.ttlMs, generation, admin: Promise.resolve(false) };
          decided.admin = refresh().then(async (fresh) => {
            const admin = await access.isAdmin(fresh);
            decided.until = Math.min(decided.until, deps.records.cachedUntil(access.rightsRecords(fresh)));
            return admin;
          });
          rights = decided;
        }
        return rights.admin;
      };
      const visibleNow = async (lease: LeaseRecord) => own(lease) || (await adminNow());
      let queue = Promise.resolve();
      let failed = false;
      const emit = (lease: LeaseRecord, type: LeaseEvent['type']) => {
        queue = queue
          .then(async () => {
            if (failed || !(await visibleNow(lease))) return;
            onEvent({ type, lease: withoutValue(toLease(lease, clock())) });
          })
          .catch((err: unknown) => {
            // No answer on the caller's rights (a revoked token, a store error): end the stream.
            if (failed) return;
            failed = true;
            onEnd?.(err instanceof Error ? err : new Error(String(err)));
          });
      };
      // Expiry writes nothing, so the watch cannot see it: the expiry index tells.
      const unsubscribe = deps.expiryFeed.subscribe(ctx.tenant, (lease) => emit(lease, 'expired'));
      try {
        const stop = await deps.leaseChanges.subscribe(
          ctx.tenant,
          (lease) =>
            emit(lease, lease.state === 'revoked' ? 'revoked' : lease.renewCount > 0 ? 'renewed' : 'issued'),
          (err) => onEnd?.(err),
        );
        return {
          close: async () => {
            unsubscribe();
            await stop();
          },
        };
      } catch (err) {
        unsubscribe();
        throw err;
      }
    },
  };
}

/** The most keys one read of a list walk asks for (the largest page a client may ask for). */
const LIST_READ_MAX = 1_000;

/**
 * What a lease creation asked for, as a retry with the same Idempotency-Key must ask again:
 * every field of the request (the identity defaulting to the caller), in a fixed order.
 */
/**
 * What a lease creation with an Idempotency-Key writes beside the lease: the key's record
 * (the lease and the request it answered), only if no attempt wrote it first.
 */
function idempotencyWrite(
  ctx: CallContext,
  input: CreateLeaseInput,
  key: string | undefined,
  leaseId: string,
): { compare: Compare[]; ops: Op[] } {
  if (key === undefined) return { compare: [], ops: [] };
  return {
    compare: [{ key, modRevision: 0 }],
    ops: [{ type: 'put', key, value: JSON.stringify({ leaseId, request: requestFingerprint(ctx, input) }) }],
  };
}

function requestFingerprint(ctx: CallContext, input: CreateLeaseInput): string {
  const labels = input.labels
    ? Object.entries(input.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    : [];
  const identity = input.identity ?? ctx.principal.identity;
  return createHash('sha256')
    .update(
      JSON.stringify([
        input.credentialName,
        input.ttl ?? null,
        identity.type,
        identity.name,
        input.renewable,
        input.maxTtl ?? null,
        input.version ?? null,
        labels,
      ]),
    )
    .digest('base64url');
}

/** Where a dynamic lease's own value is bound (AAD): never a credential's name, which has no "/". */
const leaseValueRef = (id: string) => `lease/${id}`;

const withoutValue = ({ value: _value, ...lease }: Lease) => lease;

export type LeaseService = ReturnType<typeof createLeaseService>;

/**
 * Thrown inside a commit when a retried creation finds that the lease its first attempt issued
 * has ended (revoked, expired, or of a credential deleted since); `create` audits it and
 * answers 410.
 */
class ReplayedLeaseEnded extends Error {
  constructor(
    readonly lease: LeaseRecord,
    readonly created: { lease: number; credential: number | undefined },
  ) {
    super(`the lease this Idempotency-Key issued ("${lease.id}") has ended`);
  }
}
