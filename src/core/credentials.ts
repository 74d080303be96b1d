import type { z } from 'zod';
import {
  adminConnectionProblem,
  type Credential,
  controllerOwnerLabel,
  type createCredentialRequest,
  type DynamicEngineName,
  type listCredentialsQuery,
  type listVersionsQuery,
  RECORD_VERSIONS,
  type rotateRequest,
  type updateCredentialRequest,
} from '../contract/credentials.js';
import type { Action } from '../contract/policies.js';
import { badRequest, conflict, notFound, VaultError } from '../lib/errors.js';
import { getMany, scanPages, scanPrefix } from '../store/paged.js';
import type { KeyValue, Op } from '../store/store.js';
import type { Access } from './access.js';
import type { Mutation } from './committer.js';
import type { CallContext } from './context.js';
import { continueTokens, LIST_SCAN_BUDGET } from './continue-token.js';
import { controllerUpdateRefusal, isController } from './controller-role.js';
import { type CoreDeps, parseRecord } from './deps.js';
import type { DynamicAccounts } from './dynamic-accounts.js';
import type { Fingerprints } from './fingerprints.js';
import { generateValue } from './generate.js';
import { keys } from './keys.js';
import type { LeaseRevoker } from './lease-revoker.js';
import { decide, mayReadValue } from './policy-engine.js';
import { parseSelectors } from './selectors.js';

export type CreateCredentialInput = z.output<typeof createCredentialRequest>;
export type RotateInput = z.output<typeof rotateRequest>;

const resourceOf = (name: string) => `credential/${name}`;

/** A version's value record (`values/<name>/<version>`). */
interface ValueRecord {
  sealed: unknown;
  /** Absent on values written before records carried their version's metadata. */
  createdAt?: string;
  fingerprint?: string;
}

/** Versions dropped from a record's list in one write (see keepLatest). */
const DROPS_PER_WRITE = 50;

/**
 * Value records read per store request when paging versions: a record holds its sealed value
 * (up to 64 KiB of text, about 260 KiB sealed), and etcd refuses an answer over 4 MiB.
 */
const VALUES_PER_READ = 12;
/** Bytes of value records one write rewrites while dropping old versions (see keepLatest). */
const REWRITE_BYTES = 768 * 1024;

/** A dynamic credential's value must be an admin connection its engine can use: refused up front, not per lease. */
function checkAdminConnection(engine: DynamicEngineName, value: string) {
  const problem = adminConnectionProblem(engine, value);
  if (problem) throw badRequest(problem, { field: 'value' });
}

export function createCredentialService(
  deps: CoreDeps & {
    access: Access;
    fingerprints: Fingerprints;
    revokeWhere: LeaseRevoker;
    dynamic: DynamicAccounts;
  },
) {
  const { store, keyring, committer, access, fingerprints, clock, revokeWhere } = deps;
  const tokens = continueTokens(fingerprints);

  /**
   * `cached` serves the record from the 1 s record cache: for callers whose commit compares
   * its revision (a stale read then fails the compare and is read again), and for metadata.
   */
  async function load(ctx: CallContext, name: string, cached = false) {
    const key = keys.credential(ctx.tenant, name);
    const kv = cached ? await deps.records.get(key) : await store.get(key);
    return kv
      ? {
          credential: parseRecord<Credential>(kv.value),
          modRevision: kv.modRevision,
          createRevision: kv.createRevision,
        }
      : undefined;
  }

  /**
   * Loads a credential or fails with 404. Outside a commit the miss is audited; inside one
   * (`audit: false`) it cannot be, since the tenant's writes are serialized.
   */
  async function mustLoad(ctx: CallContext, name: string, action: string, audit = true, cached = false) {
    const found = await load(ctx, name, cached);
    if (!found) {
      if (audit) {
        await committer.record(ctx, {
          action,
          resource: resourceOf(name),
          outcome: 'error',
          reason: 'not found',
        });
      }
      throw notFound(`credential "${name}" does not exist in tenant "${ctx.tenant}"`);
    }
    return found;
  }

  /** A version's value record: the sealed value and the version's metadata (its history). */
  async function sealVersion(
    ctx: CallContext,
    name: string,
    version: number,
    value: string,
    createdAt: string,
  ) {
    const sealed = await keyring.sealValue(ctx.tenant, name, version, Buffer.from(value, 'utf8'));
    const fingerprint = await fingerprints.ofVersion(ctx.tenant, name, version, value);
    const op: Op = {
      type: 'put',
      key: keys.value(ctx.tenant, name, version),
      value: JSON.stringify({ sealed, createdAt, fingerprint } satisfies ValueRecord),
    };
    return { op, fingerprint };
  }

  /**
   * The record's `versions` after adding one: the latest RECORD_VERSIONS. A version dropped
   * from it whose value record lacks its metadata (written before values carried it) gets it
   * now, at most DROPS_PER_WRITE at a time and no more rewritten value records than
   * REWRITE_BYTES hold (each holds a sealed value, and etcd refuses a request over 1.5 MiB and
   * an answer over 4 MiB); the rest stay listed until the next write.
   */
  async function keepLatest(
    ctx: CallContext,
    name: string,
    versions: Credential['versions'],
  ): Promise<{ versions: Credential['versions']; ops: Op[] }> {
    const excess = Math.min(Math.max(0, versions.length - RECORD_VERSIONS), DROPS_PER_WRITE);
    if (excess === 0) return { versions, ops: [] };
    const ops: Op[] = [];
    let bytes = 0;
    let dropped = 0;
    while (dropped < excess) {
      const batch = versions.slice(dropped, Math.min(excess, dropped + VALUES_PER_READ));
      const stored = await getMany(
        store,
        batch.map((v) => keys.value(ctx.tenant, name, v.version)),
      );
      for (const [i, kv] of stored.entries()) {
        const record = kv ? parseRecord<ValueRecord>(kv.value) : undefined;
        if (kv && record && record.createdAt === undefined) {
          const { createdAt, fingerprint } = batch[i]!;
          const value = JSON.stringify({ ...record, createdAt, fingerprint });
          if (ops.length > 0 && bytes + value.length > REWRITE_BYTES)
            return { versions: versions.slice(dropped), ops };
          bytes += value.length;
          ops.push({ type: 'put', key: kv.key, value });
        }
        dropped += 1;
      }
    }
    return { versions: versions.slice(dropped), ops };
  }

  /** Commits a change of credential `name`, then drops it from the record cache. */
  async function commitFor<T>(ctx: CallContext, name: string, build: () => Promise<Mutation<T>>): Promise<T> {
    try {
      return await committer.commit(ctx, build);
    } catch (err) {
      // A refusal found on the fresh record inside the commit is audited here, outside it.
      if (err instanceof RecheckDenied)
        throw await access.deny(ctx, err.action, resourceOf(name), err.message);
      throw err;
    } finally {
      deps.records.invalidate(keys.credential(ctx.tenant, name));
    }
  }

  /** Decides again on the record the commit compares (its labels may have changed since). */
  async function recheck(ctx: CallContext, action: Action, auditAction: string, credential: Credential) {
    const decision = decide(ctx.principal, await access.policiesOf(ctx), action, credential);
    if (!decision.allowed) throw new RecheckDenied(auditAction, decision.reason);
  }

  /**
   * `ifChanged` answers whether a value equals the current version's, which confirms a guess:
   * only for a caller who may read the value anyway, or a cluster's controller on a credential
   * it created (it imported that value from a Secret of its cluster). Refused alike whether the
   * guess is right or wrong, before anything is compared.
   */
  async function checkMayCompare(ctx: CallContext, credential: Credential, auditAction: string) {
    const allowed = isController(ctx.principal)
      ? credential.metadata[controllerOwnerLabel] !== undefined
      : mayReadValue(ctx.principal, await access.policiesOf(ctx), credential);
    if (allowed) return;
    throw await access.deny(
      ctx,
      auditAction,
      resourceOf(credential.name),
      `"ifChanged" tells whether a value equals the current version of "${credential.name}", so it needs a right that reads the value ("lease", and "reveal" for an agent); send the value without "ifChanged" to add a version`,
    );
  }

  const resolveValue = (input: {
    value?: string | undefined;
    generate?: CreateCredentialInput['generate'];
  }) => {
    if (input.value !== undefined && input.generate) {
      throw badRequest('give either "value" or "generate", not both');
    }
    return input.value ?? generateValue(input.generate ?? {});
  };

  return {
    load,
    mustLoad,

    async create(ctx: CallContext, input: CreateCredentialInput): Promise<Credential & { unchanged?: true }> {
      const metadata = input.metadata ?? {};
      await access.check(ctx, 'create', resourceOf(input.name), { name: input.name, metadata });
      if (input.dynamic && (input.value === undefined || input.generate))
        throw badRequest(
          `a dynamic credential's value is the ${input.dynamic.engine} admin connection URL; give it as "value"`,
          {
            field: 'value',
          },
        );
      const value = resolveValue(input);
      if (input.dynamic) checkAdminConnection(input.dynamic.engine, value);
      await keyring.ensureTenantKey(ctx.tenant);
      const now = clock().toISOString();
      const { op, fingerprint } = await sealVersion(ctx, input.name, 1, value, now);
      const credential: Credential = {
        name: input.name,
        type: input.type,
        metadata,
        ...(input.leases ? { leases: input.leases } : {}),
        ...(input.dynamic ? { dynamic: input.dynamic } : {}),
        currentVersion: 1,
        versions: [{ version: 1, createdAt: now, fingerprint }],
        createdAt: now,
        updatedAt: now,
      };
      const key = keys.credential(ctx.tenant, input.name);
      return commitFor(ctx, input.name, async () => {
        const existing = await store.get(key);
        if (existing) {
          // Repeating a create exactly (a script or an example run twice) is not a conflict,
          // for a caller who could read the value anyway: to anyone else, "unchanged" would
          // confirm a guessed value without reading it, so any existing credential conflicts.
          const current = JSON.parse(existing.value) as Credential;
          if (!mayReadValue(ctx.principal, await access.policiesOf(ctx), current)) {
            throw conflict(
              `credential "${input.name}" already exists; put a new version or rotate it instead`,
            );
          }
          const latest = current.versions.find((v) => v.version === current.currentVersion);
          if (
            !input.generate &&
            sameSettings(current, credential) &&
            latest !== undefined &&
            (await fingerprints.matchesVersion(
              ctx.tenant,
              input.name,
              latest.version,
              value,
              latest.fingerprint,
            ))
          ) {
            return {
              compare: [{ key, modRevision: existing.modRevision }],
              ops: [],
              audit: [
                {
                  action: 'credential.create',
                  resource: resourceOf(input.name),
                  outcome: 'allowed',
                  reason: 'it exists with this type, metadata and value: unchanged',
                },
              ],
              result: { ...current, unchanged: true },
            };
          }
          throw conflict(
            `credential "${input.name}" already exists with another value, type or metadata; put a new version or rotate it instead`,
          );
        }
        return {
          compare: [{ key, modRevision: 0 }],
          ops: [op, { type: 'put', key, value: JSON.stringify(credential) }],
          audit: [{ action: 'credential.create', resource: resourceOf(input.name), outcome: 'allowed' }],
          result: credential,
        };
      });
    },

    /**
     * One page of the credentials the caller may list, in name order. A page reads at most
     * LIST_SCAN_BUDGET records, so it may hold fewer than `limit` (even none) and still carry
     * a `continue` token; no token means the walk is complete.
     */
    async list(
      ctx: CallContext,
      query: z.output<typeof listCredentialsQuery>,
    ): Promise<{ credentials: Credential[]; continue?: string }> {
      await access.check(ctx, 'list', 'credentials', undefined, 'credential.list');
      const selectors = parseSelectors(query.labels);
      const policies = await access.policiesOf(ctx);
      const prefix = keys.credentials(ctx.tenant);
      const visible: Credential[] = [];
      // What a continue token is bound to: this list, with these filters.
      const walk = JSON.stringify(['credentials', query.prefix ?? '', query.labels ?? '']);
      let after =
        query.continue === undefined
          ? undefined
          : prefix + (await tokens.decode(ctx.tenant, walk, query.continue));
      let scanned = 0;
      let more = false;
      for await (const kv of scanPrefix(store, prefix + (query.prefix ?? ''), {
        // Reads ahead of a small page, so a sparse walk is not one round trip per record.
        pageSize: Math.max(100, Math.min(1_000, query.limit + 1)),
        ...(after !== undefined ? { startAfter: after } : {}),
      })) {
        if (visible.length === query.limit || scanned === LIST_SCAN_BUDGET) {
          more = true;
          break;
        }
        scanned++;
        after = kv.key;
        const credential = parseRecord<Credential>(kv.value);
        if (!selectors.every(([k, v]) => credential.metadata[k] === v)) continue;
        if (decide(ctx.principal, policies, 'list', credential).allowed) visible.push(credential);
      }
      await committer.record(ctx, {
        action: 'credential.list',
        resource: 'credentials',
        outcome: 'allowed',
        reason: `${visible.length} listed`,
      });
      return more && after !== undefined
        ? {
            credentials: visible,
            continue: await tokens.encode(ctx.tenant, walk, after.slice(prefix.length)),
          }
        : { credentials: visible };
    },

    /**
     * Every version of a credential, oldest first, a page at a time, from the value records
     * (the credential's record lists only the latest). Metadata only: number, time, fingerprint.
     */
    async versions(
      ctx: CallContext,
      name: string,
      query: z.output<typeof listVersionsQuery>,
    ): Promise<{ versions: Credential['versions']; continue?: string }> {
      const { credential } = await mustLoad(ctx, name, 'credential.read-metadata', true, true);
      await access.check(ctx, 'read-metadata', resourceOf(name), credential, 'credential.read-metadata');
      const prefix = keys.values(ctx.tenant, name);
      const walk = JSON.stringify(['versions', name]);
      const after =
        query.continue === undefined
          ? undefined
          : prefix + (await tokens.decode(ctx.tenant, walk, query.continue));
      // The records carry their sealed values: read a few at a time, one past the page's
      // limit (to know whether more follow).
      const read: KeyValue[] = [];
      for await (const kvs of scanPages(store, prefix, {
        pageSize: VALUES_PER_READ,
        ...(after !== undefined ? { startAfter: after } : {}),
      })) {
        read.push(...kvs);
        if (read.length > query.limit) break;
      }
      const page = { kvs: read.slice(0, query.limit), more: read.length > query.limit };
      const listed = new Map(credential.versions.map((v) => [v.version, v]));
      const versions = page.kvs.map((kv) => {
        const version = Number(kv.key.slice(prefix.length));
        const record = parseRecord<ValueRecord>(kv.value);
        return (
          listed.get(version) ?? {
            version,
            createdAt: record.createdAt ?? credential.createdAt,
            fingerprint: record.fingerprint ?? '',
          }
        );
      });
      await committer.record(ctx, {
        action: 'credential.read-metadata',
        resource: resourceOf(name),
        outcome: 'allowed',
        reason: `${versions.length} versions listed`,
      });
      const last = page.kvs.at(-1);
      return page.more && last
        ? { versions, continue: await tokens.encode(ctx.tenant, walk, last.key.slice(prefix.length)) }
        : { versions };
    },

    async get(ctx: CallContext, name: string): Promise<Credential> {
      const { credential } = await mustLoad(ctx, name, 'credential.read-metadata', true, true);
      await access.check(ctx, 'read-metadata', resourceOf(name), credential, 'credential.read-metadata');
      await committer.record(ctx, {
        action: 'credential.read-metadata',
        resource: resourceOf(name),
        outcome: 'allowed',
      });
      if (!credential.dynamic) return credential;
      return { ...credential, revocations: await deps.dynamic.revocationsOf(ctx.tenant, name) };
    },

    async update(ctx: CallContext, name: string, input: z.output<typeof updateCredentialRequest>) {
      const loaded = await mustLoad(ctx, name, 'credential.update');
      // Labels and lease limits decide which rules apply to a credential: changing them is
      // administration, over the credential as it is and as it will be.
      await access.check(ctx, 'admin', resourceOf(name), loaded.credential, 'credential.update');
      const refused = isController(ctx.principal)
        ? controllerUpdateRefusal(ctx.principal, loaded.credential, input)
        : undefined;
      if (refused) throw await access.deny(ctx, 'credential.update', resourceOf(name), refused);
      if (input.metadata) {
        await access.check(
          ctx,
          'admin',
          resourceOf(name),
          { name, metadata: input.metadata },
          'credential.update',
        );
      }
      if (input.dynamic) {
        const engine = loaded.credential.dynamic?.engine;
        if (!engine)
          throw badRequest(`credential "${name}" is not dynamic; create a dynamic credential instead`, {
            field: 'dynamic',
          });
        if (engine !== input.dynamic.engine)
          throw badRequest(
            `credential "${name}" uses the ${engine} engine, which cannot change; create another credential for ${input.dynamic.engine}`,
            { field: 'dynamic.engine' },
          );
      }
      const key = keys.credential(ctx.tenant, name);
      let built = 0;
      return commitFor(ctx, name, async () => {
        // The commit compares the revision checked above. A retry may be for another reason
        // (another replica's commit on the audit chain head, a group commit that failed); if
        // the record did change, the caller must ask again rather than update a record
        // nobody authorized.
        if (built++ > 0 && (await store.get(key))?.modRevision !== loaded.modRevision)
          throw conflict(`credential "${name}" changed while it was being updated; retry`);
        const current = loaded;
        const next: Credential = {
          ...current.credential,
          ...(input.metadata ? { metadata: input.metadata } : {}),
          ...(input.leases ? { leases: input.leases } : {}),
          ...(input.dynamic ? { dynamic: input.dynamic } : {}),
          updatedAt: clock().toISOString(),
        };
        return {
          compare: [{ key, modRevision: current.modRevision }],
          ops: [{ type: 'put', key, value: JSON.stringify(next) }],
          audit: [
            {
              action: 'credential.update',
              resource: resourceOf(name),
              outcome: 'allowed',
              ...(input.dynamic ? { reason: `${input.dynamic.engine} engine settings replaced` } : {}),
            },
          ],
          result: next,
        };
      });
    },

    /** A new version from a given value (put) or a generated one (rotate). */
    async addVersion(
      ctx: CallContext,
      name: string,
      input: {
        value?: string;
        generate?: RotateInput['generate'];
        revokeOldLeases?: boolean;
        /** Only when the value differs from the current version's (put-version). */
        ifChanged?: boolean;
      },
      action: 'credential.put-version' | 'credential.rotate',
    ): Promise<Credential> {
      const { credential } = await mustLoad(ctx, name, action);
      await access.check(ctx, 'rotate', resourceOf(name), credential, action);
      if (input.ifChanged) await checkMayCompare(ctx, credential, action);
      if (credential.dynamic && input.generate)
        throw badRequest(
          'a dynamic credential rotates its admin password upstream; "generate" does not apply',
        );
      // Rotating a dynamic credential changes the engine's admin password upstream first; the
      // new admin connection becomes the next version.
      const rotated =
        credential.dynamic && input.value === undefined
          ? await deps.dynamic.rotateRoot(ctx, name)
          : undefined;
      const value = rotated ? rotated.connection : resolveValue(input);
      if (credential.dynamic && !rotated) {
        checkAdminConnection(credential.dynamic.engine, value);
        const left = await deps.dynamic.accountsLeftBehind(ctx.tenant, name, value);
        if (left > 0)
          throw conflict(
            `the new admin connection of "${name}" reaches another ${credential.dynamic.engine} server than the current one, which still has ${left} upstream account${left === 1 ? '' : 's'} of its leases; revoke them (vault lease revoke --credential ${name}) and retry once they are removed, or create a new credential for the other server`,
          );
      }
      const next = await commitFor(ctx, name, async () => {
        const current = await mustLoad(ctx, name, action, false);
        await recheck(ctx, 'rotate', action, current.credential);
        // Another rotation was stored since this one changed the password upstream: storing
        // this one too would leave the database and the current version disagreeing.
        if (rotated && current.credential.currentVersion !== credential.currentVersion)
          throw conflict(
            `"${name}" was rotated by another request meanwhile (now version ${current.credential.currentVersion}); this rotation is undone`,
          );
        if (input.ifChanged) {
          const latest = current.credential.versions.find(
            (v) => v.version === current.credential.currentVersion,
          );
          if (
            latest &&
            (await fingerprints.matchesVersion(ctx.tenant, name, latest.version, value, latest.fingerprint))
          ) {
            return {
              ops: [],
              audit: [{ action, resource: resourceOf(name), outcome: 'allowed', reason: 'unchanged' }],
              result: current.credential,
            };
          }
        }
        const version = current.credential.currentVersion + 1;
        const now = clock().toISOString();
        const { op, fingerprint } = await sealVersion(ctx, name, version, value, now);
        const kept = await keepLatest(ctx, name, [
          ...current.credential.versions,
          { version, createdAt: now, fingerprint },
        ]);
        const next: Credential = {
          ...current.credential,
          currentVersion: version,
          versions: kept.versions,
          updatedAt: now,
        };
        const key = keys.credential(ctx.tenant, name);
        return {
          compare: [{ key, modRevision: current.modRevision }],
          ops: [op, ...kept.ops, { type: 'put', key, value: JSON.stringify(next) }],
          audit: [{ action, resource: resourceOf(name), outcome: 'allowed', reason: `version ${version}` }],
          result: next,
        };
      }).catch(async (err: unknown) => {
        // Not stored: put the stored admin password back, unless the store may have kept the new one.
        if (rotated && !(err instanceof VaultError && err.code === 'outcome_unknown')) await rotated.undo();
        throw err;
      });
      if (input.revokeOldLeases) {
        // After the new version is committed, no new lease can take an old one (a lease
        // commit compares the credential's revision), so this scan misses none.
        await revokeWhere(
          ctx,
          { credentialName: name, belowVersion: next.currentVersion },
          {
            action: 'lease.revoke-bulk',
            resource: resourceOf(name),
            reason: `credential rotated to version ${next.currentVersion}`,
          },
        );
      }
      return next;
    },

    async delete(ctx: CallContext, name: string) {
      const { credential } = await mustLoad(ctx, name, 'credential.delete');
      await access.check(ctx, 'delete', resourceOf(name), credential, 'credential.delete');
      if (credential.dynamic) {
        // Its admin connection goes with it: every upstream account must be gone first.
        await revokeWhere(
          ctx,
          { credentialName: name },
          {
            action: 'lease.revoke-bulk',
            resource: resourceOf(name),
            reason: 'credential being deleted',
          },
        );
        await deps.dynamic.kick();
        const pending = await deps.dynamic.pendingOf(ctx.tenant, name);
        if (pending > 0)
          throw conflict(
            `${pending} upstream accounts of "${name}" are not removed yet (the ${credential.dynamic.engine} server may be unreachable); retry once they are`,
          );
      }
      await commitFor(ctx, name, async () => {
        const current = await mustLoad(ctx, name, 'credential.delete', false);
        await recheck(ctx, 'delete', 'credential.delete', current.credential);
        const key = keys.credential(ctx.tenant, name);
        return {
          compare: [{ key, modRevision: current.modRevision }],
          ops: [
            { type: 'deletePrefix', prefix: keys.values(ctx.tenant, name) },
            { type: 'delete', key },
          ],
          audit: [{ action: 'credential.delete', resource: resourceOf(name), outcome: 'allowed' }],
          result: undefined,
        };
      });
      // The values are gone, so its leases already read as revoked; now mark them so. A
      // lease committed before the delete is found here; one after it cannot exist.
      return revokeWhere(
        ctx,
        { credentialName: name },
        {
          action: 'lease.revoke-bulk',
          resource: resourceOf(name),
          reason: 'credential deleted',
        },
      );
    },
  };
}

export type CredentialService = ReturnType<typeof createCredentialService>;

class RecheckDenied extends Error {
  constructor(
    readonly action: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Whether `created` (a create's record) has `current`'s settings: type, metadata, lease
 * settings and engine (the value is compared by its fingerprint, apart).
 */
function sameSettings(current: Credential, created: Credential): boolean {
  return (
    current.type === created.type &&
    canonical(current.metadata) === canonical(created.metadata) &&
    canonical(current.leases) === canonical(created.leases) &&
    canonical(current.dynamic) === canonical(created.dynamic)
  );
}

/** JSON with sorted keys, so that key order does not make two equal records differ. */
function canonical(value: unknown): string {
  return JSON.stringify(value ?? null, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : 1)))
      : v,
  );
}
