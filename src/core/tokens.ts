import { createHash, randomBytes } from 'node:crypto';
import type { z } from 'zod';
import type { CreatedToken, createTokenRequest, TokenInfo } from '../contract/auth.js';
import type { Identity } from '../contract/common.js';
import type { IdentityRecord } from '../contract/policies.js';
import { durationMs } from '../lib/duration.js';
import { isVaultError, notFound, unauthenticated } from '../lib/errors.js';
import { getMany, scanPages, writeInChunks } from '../store/paged.js';
import type { Op } from '../store/store.js';
import type { Access } from './access.js';
import { type CallContext, formatIdentity, type Principal, sameIdentity, systemContext } from './context.js';
import { controllerLabel, isController } from './controller-role.js';
import { type CoreDeps, parseRecord } from './deps.js';
import { keys, lastSegment, timeBeforeLast } from './keys.js';

export type CreateTokenInput = z.output<typeof createTokenRequest>;

/** Tokens carry a recognizable prefix so secret scanners can find leaked ones. */
export const TOKEN_PREFIX = 'vlt_';

/** No token lives longer than this (30 days). */
export const MAX_TOKEN_TTL_MS = 30 * 24 * 3_600_000;

interface TokenRecord extends TokenInfo {
  hash: string;
  /** The accessor of the token that minted it (its link under that token goes with it). */
  parent?: string;
  /**
   * Set when a revocation of it or of a token above it has begun: it no longer authenticates
   * nor mints (its revision changed, so a mint in flight fails its compare), and it is deleted
   * once the tokens it minted are.
   */
  revoking?: true;
}

/** What the expiry index says of a token: enough to delete it without reading it. */
interface ExpiryEntry {
  hash: string;
  tenant: string;
  parent?: string;
}

/** A token on its way out, and the parent whose link to it goes with it. */
interface Doomed {
  accessor: string;
  hash: string;
  parent?: string;
}

export const tokenPurgerIdentity = { type: 'workload' as const, name: 'vault-token-purger' };

/** Tokens per transaction: up to five operations each, with room for the audit records. */
const TOKENS_PER_TXN = 20;

const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');
const resourceOf = (accessor: string) => `token/${accessor}`;

/**
 * Tokens are 256 random bits, stored only as their SHA-256 (lookups go by hash, so no
 * comparison of secret material happens in this process). The accessor is a separate
 * random id that can look a token up or revoke it without knowing it.
 */
export function createTokenService(deps: CoreDeps & { access: Access }) {
  const { store, committer, access, clock, records } = deps;

  const expiryOp = (record: TokenRecord): Op => ({
    type: 'put',
    key: keys.tokenExpiry(Date.parse(record.expiresAt), record.accessor),
    value: JSON.stringify({
      hash: record.hash,
      tenant: record.tenant,
      ...(record.parent ? { parent: record.parent } : {}),
    } satisfies ExpiryEntry),
  });

  /** Everything a token leaves in the store: its record, accessor, links and expiry key. */
  const deleteOps = (t: Doomed, expiresAt: string | undefined): Op[] => [
    { type: 'delete', key: keys.token(t.hash) },
    { type: 'delete', key: keys.accessor(t.accessor) },
    { type: 'deletePrefix', prefix: keys.tokenChildren(t.accessor) },
    ...(t.parent ? [{ type: 'delete' as const, key: keys.tokenChild(t.parent, t.accessor) }] : []),
    ...(expiresAt
      ? [{ type: 'delete' as const, key: keys.tokenExpiry(Date.parse(expiresAt), t.accessor) }]
      : []),
  ];

  /**
   * Up to `max` tokens minted under the last token of `path` (transitively) that minted none
   * themselves, read from the deepest level first: a page of a token's children, each asked
   * whether it has any. `path` (the revoked token first) is kept between calls: the walk goes
   * on where the last leaves were found and back up a level once a token has no children
   * left, so peeling a tree reads each level a few times; starting at the top for every chunk
   * read a chain of depth d d² times. Memory is bounded by the depth and a page.
   */
  async function leavesUnder(path: string[], max: number): Promise<Doomed[]> {
    while (path.length > 0) {
      const node = path.at(-1)!;
      const page = await store.range(keys.tokenChildren(node), { limit: max });
      if (page.kvs.length === 0) {
        // Nothing left under it: a leaf of the token above now (the revoked one goes last).
        path.pop();
        continue;
      }
      const children = page.kvs.map((kv) => ({
        accessor: lastSegment(kv.key),
        hash: parseRecord<{ hash: string }>(kv.value).hash,
        parent: node,
      }));
      const below = await Promise.all(
        children.map((child) => store.range(keys.tokenChildren(child.accessor), { limit: 1 })),
      );
      const leaves = children.filter((_, i) => below[i]!.kvs.length === 0);
      if (leaves.length > 0) return leaves;
      path.push(children[0]!.accessor);
    }
    return [];
  }

  /** Marks tokens `revoking` (those not gone or marked already), in one commit. */
  async function mark(ctx: CallContext, tokens: Array<{ accessor: string; hash: string }>) {
    try {
      await committer.commit(ctx, async () => {
        const found = await getMany(
          store,
          tokens.map((t) => keys.token(t.hash)),
        );
        const live = found.filter(
          (kv): kv is NonNullable<typeof kv> =>
            kv !== undefined && !parseRecord<TokenRecord>(kv.value).revoking,
        );
        return {
          compare: live.map((kv) => ({ key: kv.key, modRevision: kv.modRevision })),
          ops: live.map(
            (kv): Op => ({
              type: 'put',
              key: kv.key,
              value: JSON.stringify({ ...parseRecord<TokenRecord>(kv.value), revoking: true }),
            }),
          ),
          audit: [],
          result: undefined,
        };
      });
    } finally {
      for (const t of tokens) records.invalidate(keys.token(t.hash));
    }
  }

  /** Writes the expiry keys of tokens minted before the index existed, once per store. */
  let backfilled = false;
  async function backfillExpiries() {
    if (backfilled) return;
    if (!(await store.get(keys.tokenExpiryState()))) {
      for await (const page of scanPages(store, keys.tokens(), { pageSize: 500 })) {
        await writeInChunks(
          store,
          page.map((kv) => expiryOp(parseRecord<TokenRecord>(kv.value))),
        );
      }
      await store.txn({
        success: [
          { type: 'put', key: keys.tokenExpiryState(), value: JSON.stringify({ at: clock().toISOString() }) },
        ],
      });
    }
    backfilled = true;
  }

  async function mint(
    ctx: CallContext | undefined,
    tenant: string,
    input: {
      identity: Identity;
      policies: string[];
      ttlMs: number;
      /** Ends no later than this (the minting token's own expiry). */
      notAfter?: string;
      displayName?: string;
      system?: boolean;
      /** A cluster controller's token (Kubernetes login only): see controller-role.ts. */
      controllerOf?: { cluster?: string };
    },
    extraOps: { audit: boolean } = { audit: true },
  ): Promise<CreatedToken> {
    const token = `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const accessor = `acc_${randomBytes(12).toString('base64url')}`;
    const now = clock();
    const info: TokenInfo = {
      accessor,
      tenant,
      identity: input.identity,
      policies: input.policies,
      ...(input.displayName ? { displayName: input.displayName } : {}),
      issuedAt: now.toISOString(),
      expiresAt: new Date(
        Math.min(
          now.getTime() + input.ttlMs,
          input.notAfter ? Date.parse(input.notAfter) : Number.POSITIVE_INFINITY,
        ),
      ).toISOString(),
      ...(ctx ? { createdBy: ctx.principal.identity } : {}),
      ...(input.system ? { system: true } : {}),
      ...(input.controllerOf ? { controllerOf: input.controllerOf } : {}),
    };
    const hash = hashToken(token);
    const parent = ctx?.principal.accessor;
    const record: TokenRecord = { ...info, hash, ...(parent ? { parent } : {}) };
    const ops: Op[] = [
      { type: 'put', key: keys.token(hash), value: JSON.stringify(record) },
      { type: 'put', key: keys.accessor(accessor), value: JSON.stringify({ hash, tenant }) },
      expiryOp(record),
      ...(parent
        ? [{ type: 'put' as const, key: keys.tokenChild(parent, accessor), value: JSON.stringify({ hash }) }]
        : []),
    ];
    if (ctx && extraOps.audit) {
      const { tokenKey, tokenRevision } = ctx.principal;
      await committer.commit(ctx, async () => {
        // Only while the minting token still exists: a revocation racing this (or seen late
        // through another replica's cache) fails it rather than leave an orphan child.
        if (tokenKey && !(await store.get(tokenKey))) throw unauthenticated('the calling token was revoked');
        return {
          ...(tokenKey && tokenRevision ? { compare: [{ key: tokenKey, modRevision: tokenRevision }] } : {}),
          ops,
          audit: [
            {
              action: 'token.create',
              resource: resourceOf(accessor),
              outcome: 'allowed',
              actingFor: input.identity,
              reason: `policies: ${input.policies.join(', ') || 'none'}`,
            },
          ],
          result: undefined,
        };
      });
    } else {
      await store.txn({ success: ops });
    }
    return { ...info, token };
  }

  async function byAccessor(ctx: CallContext, accessor: string, action: string, live = false) {
    const kv = await store.get(keys.accessor(accessor));
    const ref = kv ? parseRecord<{ hash: string; tenant: string }>(kv.value) : undefined;
    const found = ref && ref.tenant === ctx.tenant ? await store.get(keys.token(ref.hash)) : undefined;
    // A token being revoked is gone for every purpose but finishing its revocation.
    const record = found && live && parseRecord<TokenRecord>(found.value).revoking ? undefined : found;
    if (!record) {
      await committer.record(ctx, {
        action,
        resource: resourceOf(accessor),
        outcome: 'error',
        reason: 'not found',
      });
      throw notFound(`no token with accessor "${accessor}" in tenant "${ctx.tenant}"`);
    }
    return parseRecord<TokenRecord>(record.value);
  }

  return {
    mint,

    /** Resolves a bearer token to a principal, or throws 401 with a reason that leaks nothing. */
    async authenticate(token: string): Promise<Principal> {
      if (!token.startsWith(TOKEN_PREFIX) || token.length > 128)
        throw unauthenticated('the token is malformed');
      const kv = await records.get(keys.token(hashToken(token)));
      if (!kv) throw unauthenticated('the token is unknown or was revoked; log in again');
      const record = parseRecord<TokenRecord>(kv.value);
      if (record.revoking) throw unauthenticated('the token is unknown or was revoked; log in again');
      if (Date.parse(record.expiresAt) <= clock().getTime()) {
        throw unauthenticated(`the token expired at ${record.expiresAt}; log in again`);
      }
      // A controller acts by its role alone: no policy (its own or its identity's) applies.
      const identityKv = record.controllerOf
        ? undefined
        : await records.get(keys.identity(record.tenant, record.identity.type, record.identity.name));
      const identityPolicies = identityKv ? parseRecord<IdentityRecord>(identityKv.value).policies : [];
      return {
        tenant: record.tenant,
        identity: record.identity,
        policies: record.controllerOf ? [] : [...new Set([...record.policies, ...identityPolicies])],
        ...(record.controllerOf ? { controllerOf: record.controllerOf } : {}),
        system: record.system === true,
        accessor: record.accessor,
        tokenPolicies: record.policies,
        tokenKey: kv.key,
        tokenRevision: kv.modRevision,
        expiresAt: record.expiresAt,
        ...(record.createdBy && !sameIdentity(record.createdBy, record.identity)
          ? { delegatedBy: record.createdBy }
          : {}),
      };
    },

    async create(ctx: CallContext, input: CreateTokenInput): Promise<CreatedToken> {
      const resource = `identity/${formatIdentity(input.identity)}`;
      if (isController(ctx.principal)) {
        throw await access.deny(
          ctx,
          'token.create',
          resource,
          `${controllerLabel(ctx.principal)} may not mint tokens; it logs in with its ServiceAccount`,
        );
      }
      if (
        !sameIdentity(input.identity, ctx.principal.identity) ||
        input.policies.some((p) => !(ctx.principal.tokenPolicies ?? ctx.principal.policies).includes(p))
      ) {
        // Minting for someone else, or with policies the caller does not hold, is administration.
        await access.check(ctx, 'admin', resource, undefined, 'token.create');
      }
      // A token never outlives the token that minted it, nor the server's maximum.
      const parentEnd = ctx.principal.expiresAt;
      if (parentEnd && Date.parse(parentEnd) <= clock().getTime())
        throw unauthenticated('the calling token has expired');
      const ttlMs = Math.min(durationMs(input.ttl), MAX_TOKEN_TTL_MS);
      return mint(ctx, ctx.tenant, {
        identity: input.identity,
        policies: input.policies,
        ...(parentEnd ? { notAfter: parentEnd } : {}),
        ttlMs,
        ...(input.displayName ? { displayName: input.displayName } : {}),
      });
    },

    async lookup(ctx: CallContext, accessor: string): Promise<TokenInfo> {
      const record = await byAccessor(ctx, accessor, 'token.lookup', true);
      if (record.accessor !== ctx.principal.accessor) {
        await access.check(ctx, 'admin', resourceOf(accessor), undefined, 'token.lookup');
      }
      try {
        await committer.record(ctx, {
          action: 'token.lookup',
          resource: resourceOf(accessor),
          outcome: 'allowed',
        });
      } catch (err) {
        // A caller reading its own token (whoami, how every SDK and CLI connection starts) is
        // answered when the tenant's chain is tampered, so `vault audit verify` can still
        // connect and name the record; it reveals nothing the caller does not hold.
        const own = record.accessor === ctx.principal.accessor;
        if (!own || !isVaultError(err) || err.code !== 'audit_unavailable') throw err;
        deps.logger.warn({ tenant: ctx.tenant }, 'token lookup not recorded: the audit chain is tampered');
      }
      const { hash: _hash, parent: _parent, revoking: _revoking, ...info } = record;
      return info;
    },

    async revoke(ctx: CallContext, accessor: string): Promise<void> {
      const record = await byAccessor(ctx, accessor, 'token.revoke');
      if (record.accessor !== ctx.principal.accessor) {
        await access.check(ctx, 'admin', resourceOf(accessor), undefined, 'token.revoke');
      }
      // First the token and then every token minted from it, transitively, top down, are
      // marked `revoking`: none of them authenticates or mints any more, so the tree stops
      // growing (a token minting in a loop cannot outrun its revocation, and no mint racing
      // the deletes below leaves a live orphan). The first mark commits only while the
      // caller's token exists; the rest act for the caller without that compare, since the
      // caller's own token may be in the tree (a token revoking the one that minted it).
      await mark(ctx, [{ accessor, hash: record.hash }]);
      const { tokenKey: _key, tokenRevision: _revision, ...principal } = ctx.principal;
      const acting: CallContext = { ...ctx, principal };
      const stack: Array<{ accessor: string; after?: string }> = [{ accessor }];
      while (stack.length > 0) {
        const frame = stack.pop()!;
        const page = await store.range(keys.tokenChildren(frame.accessor), {
          limit: TOKENS_PER_TXN,
          ...(frame.after !== undefined ? { startAfter: frame.after } : {}),
        });
        if (page.kvs.length === 0) continue;
        const children = page.kvs.map((kv) => ({
          accessor: lastSegment(kv.key),
          hash: parseRecord<{ hash: string }>(kv.value).hash,
        }));
        await mark(acting, children);
        // Marked, its children's lists are final; this one's may go on in a later page.
        if (page.more) stack.push({ accessor: frame.accessor, after: page.kvs.at(-1)!.key });
        stack.push(...children.map((child) => ({ accessor: child.accessor })));
      }
      // Then deleted, the deepest first and a chunk at a time, the token itself last: a
      // failure part-way leaves the token (marked) to revoke again rather than orphans.
      const revokeChunk = async (chunk: Doomed[]) => {
        const found = await getMany(
          store,
          chunk.map((t) => keys.token(t.hash)),
        );
        try {
          await committer.commit(acting, async () => ({
            ops: chunk.flatMap((t, i) => {
              const kv = found[i];
              return deleteOps(t, kv ? parseRecord<TokenRecord>(kv.value).expiresAt : undefined);
            }),
            audit: chunk.map((t) => ({
              action: 'token.revoke',
              resource: resourceOf(t.accessor),
              outcome: 'allowed' as const,
              ...(t.accessor === accessor
                ? { actingFor: record.identity }
                : { reason: `minted by ${accessor}` }),
            })),
            result: undefined,
          }));
        } finally {
          for (const t of chunk) records.invalidate(keys.token(t.hash));
        }
      };
      const path = [accessor];
      for (;;) {
        const leaves = await leavesUnder(path, TOKENS_PER_TXN);
        if (leaves.length === 0) break;
        await revokeChunk(leaves);
      }
      await revokeChunk([
        { accessor, hash: record.hash, ...(record.parent ? { parent: record.parent } : {}) },
      ]);
    },

    /**
     * Deletes tokens that expired more than the retention ago (until then, using one answers
     * "expired at ..."), oldest first by the expiry index, a chunk per transaction with an
     * audit record per tenant; resolves with how many went. Safe on every replica at once.
     */
    async purgeExpired(): Promise<number> {
      await backfillExpiries();
      let purged = 0;
      // Past the keys of tenants whose commit failed: they stay for the next run, and do not
      // keep the others' (after them in the index) from going.
      let after: string | undefined;
      for (;;) {
        const cutoff = clock().getTime() - deps.config.leaseRetentionMs;
        const page = await store.range(keys.tokenExpiries(), {
          limit: TOKENS_PER_TXN,
          ...(after !== undefined ? { startAfter: after } : {}),
        });
        const old = page.kvs.filter((kv) => timeBeforeLast(kv.key) < cutoff);
        if (old.length === 0) return purged;
        const entries = old.map((kv) => ({
          key: kv.key,
          accessor: lastSegment(kv.key),
          ...parseRecord<ExpiryEntry>(kv.value),
        }));
        const found = await getMany(
          store,
          entries.map((e) => keys.token(e.hash)),
        );
        const byTenant = new Map<string, Array<{ entry: (typeof entries)[number]; present: boolean }>>();
        for (const [i, entry] of entries.entries()) {
          const group = byTenant.get(entry.tenant) ?? [];
          group.push({ entry, present: !!found[i] });
          byTenant.set(entry.tenant, group);
        }
        for (const [tenant, group] of byTenant) {
          const count = group.filter((g) => g.present).length;
          try {
            await committer.commit(
              systemContext(tenant, tokenPurgerIdentity, `token-purge-${Date.now()}`),
              async () => ({
                ops: group.flatMap(({ entry }) => [
                  ...deleteOps(entry, undefined),
                  { type: 'delete' as const, key: entry.key },
                ]),
                audit:
                  count > 0
                    ? [
                        {
                          action: 'token.purge',
                          resource: 'tokens',
                          outcome: 'allowed' as const,
                          reason: `${count} token records expired more than the retention period ago deleted`,
                        },
                      ]
                    : [],
                result: undefined,
              }),
            );
          } catch (err) {
            deps.logger.warn(
              { tenant },
              `expired tokens of the tenant not purged; retrying later: ${(err as Error).message}`,
            );
            continue;
          }
          for (const { entry } of group) records.invalidate(keys.token(entry.hash));
          purged += count;
        }
        after = old.at(-1)!.key;
        if (old.length < page.kvs.length || !page.more) return purged;
      }
    },
  };
}

export type TokenService = ReturnType<typeof createTokenService>;
