import type { z } from 'zod';
import type { IdentityType } from '../contract/common.js';
import {
  type IdentityRecord,
  type identityBody,
  managedPolicyPrefix,
  type Policy,
  type PolicyBody,
} from '../contract/policies.js';
import { badRequest, notFound } from '../lib/errors.js';
import { scanPrefix } from '../store/paged.js';
import type { Access } from './access.js';
import type { CallContext } from './context.js';
import { continueTokens } from './continue-token.js';
import {
  controllerIdentityRefusal,
  controllerLabel,
  controllerPolicyRefusal,
  isController,
  isManagedPolicy,
  managedPolicyRefusal,
} from './controller-role.js';
import { type CoreDeps, parseRecord } from './deps.js';
import type { Fingerprints } from './fingerprints.js';
import { keys } from './keys.js';

/** One page of an administrative list: at most `limit` records after `continue`. */
export interface AdminListQuery {
  limit: number;
  continue?: string | undefined;
}

/** A controller's change refused on the record the commit compares (audited outside the commit). */
class ControllerRefusal extends Error {}

/**
 * Who may do this: a tenant administrator; or a cluster's controller when `controllerRule`
 * (given the record as it is, for changes) finds nothing to refuse. Without a rule the
 * controller role does not reach the operation at all.
 */
type ControllerRule<T> = ((existing: T | undefined) => string | undefined) | undefined;

/** Policies and identities: administration of a tenant, every change audited. */
export function createAdminService(deps: CoreDeps & { access: Access; fingerprints: Fingerprints }) {
  const { store, committer, access, clock, records } = deps;
  const tokens = continueTokens(deps.fingerprints);

  async function authorize<T>(ctx: CallContext, resource: string, action: string, rule?: ControllerRule<T>) {
    if (!isController(ctx.principal)) return access.check(ctx, 'admin', resource, undefined, action);
    if (!rule) {
      throw await access.deny(
        ctx,
        action,
        resource,
        `${controllerLabel(ctx.principal)} may not do "${action}": it is not part of the controller role`,
      );
    }
  }

  async function put<T extends { createdAt: string }>(
    ctx: CallContext,
    key: string,
    resource: string,
    action: string,
    build: (existing: T | undefined, now: string) => T,
    rule?: ControllerRule<T>,
  ): Promise<T> {
    await authorize(ctx, resource, action, rule);
    try {
      return await committer.commit(ctx, async () => {
        const kv = await store.get(key);
        const existing = kv ? parseRecord<T>(kv.value) : undefined;
        const refused = isController(ctx.principal) ? rule?.(existing) : undefined;
        if (refused) throw new ControllerRefusal(refused);
        const record = build(existing, clock().toISOString());
        return {
          compare: [{ key, modRevision: kv?.modRevision ?? 0 }],
          ops: [{ type: 'put', key, value: JSON.stringify(record) }],
          audit: [{ action, resource, outcome: 'allowed' }],
          result: record,
        };
      });
    } catch (err) {
      if (err instanceof ControllerRefusal) throw await access.deny(ctx, action, resource, err.message);
      throw err;
    } finally {
      records.invalidate(key);
    }
  }

  async function remove(
    ctx: CallContext,
    key: string,
    resource: string,
    action: string,
    what: string,
    rule?: ControllerRule<never>,
  ) {
    await authorize(ctx, resource, action, rule);
    const refused = isController(ctx.principal) ? rule?.(undefined) : undefined;
    if (refused) throw await access.deny(ctx, action, resource, refused);
    try {
      await committer.commit(ctx, async () => {
        const kv = await store.get(key);
        if (!kv) throw notFound(`${what} does not exist in tenant "${ctx.tenant}"`);
        return {
          compare: [{ key, modRevision: kv.modRevision }],
          ops: [{ type: 'delete', key }],
          audit: [{ action, resource, outcome: 'allowed' }],
          result: undefined,
        };
      });
    } finally {
      records.invalidate(key);
    }
  }

  async function read<T>(
    ctx: CallContext,
    key: string,
    resource: string,
    action: string,
    what: string,
    rule?: ControllerRule<never>,
  ): Promise<T> {
    await authorize(ctx, resource, action, rule);
    const refused = isController(ctx.principal) ? rule?.(undefined) : undefined;
    if (refused) throw await access.deny(ctx, action, resource, refused);
    const kv = await store.get(key);
    if (!kv) throw notFound(`${what} does not exist in tenant "${ctx.tenant}"`);
    await committer.record(ctx, { action, resource, outcome: 'allowed' });
    return parseRecord<T>(kv.value);
  }

  /** A page of the records under `prefix`, and a token for the next while more may follow. */
  async function list<T>(
    ctx: CallContext,
    prefix: string,
    resource: string,
    action: string,
    query: AdminListQuery,
  ): Promise<{ items: T[]; continue?: string }> {
    await access.check(ctx, 'admin', resource, undefined, action);
    const walk = JSON.stringify([resource]);
    let after =
      query.continue === undefined
        ? undefined
        : prefix + (await tokens.decode(ctx.tenant, walk, query.continue));
    const items: T[] = [];
    let more = false;
    for await (const kv of scanPrefix(store, prefix, {
      pageSize: Math.min(1_000, query.limit + 1),
      ...(after !== undefined ? { startAfter: after } : {}),
    })) {
      if (items.length === query.limit) {
        more = true;
        break;
      }
      items.push(parseRecord<T>(kv.value));
      after = kv.key;
    }
    await committer.record(ctx, { action, resource, outcome: 'allowed', reason: `${items.length} listed` });
    return more && after !== undefined
      ? { items, continue: await tokens.encode(ctx.tenant, walk, after.slice(prefix.length)) }
      : { items };
  }

  /** The stored bodies of the managed policies among `names` (what attaching them would grant). */
  async function managedPolicies(ctx: CallContext, names: string[]): Promise<Map<string, PolicyBody>> {
    const found = await Promise.all(
      names.filter(isManagedPolicy).map(async (name) => {
        const kv = await store.get(keys.policy(ctx.tenant, name));
        return kv ? ([name, parseRecord<PolicyBody>(kv.value)] as const) : undefined;
      }),
    );
    return new Map(found.filter((entry) => entry !== undefined));
  }

  return {
    policies: {
      put: (ctx: CallContext, name: string, body: PolicyBody) =>
        put<Policy>(
          ctx,
          keys.policy(ctx.tenant, name),
          `policy/${name}`,
          'policy.put',
          (existing, now) => {
            const reserved = isManagedPolicy(name) ? managedPolicyRefusal(name, body) : undefined;
            if (reserved) {
              throw badRequest(
                `${reserved}: names starting with ${managedPolicyPrefix} are reserved for the policies the Kubernetes operator writes for VaultCredentials; give this policy another name`,
              );
            }
            return { ...body, name, createdAt: existing?.createdAt ?? now, updatedAt: now };
          },
          () => controllerPolicyRefusal(ctx.principal, name, body),
        ),
      get: (ctx: CallContext, name: string) =>
        read<Policy>(
          ctx,
          keys.policy(ctx.tenant, name),
          `policy/${name}`,
          'policy.read',
          `policy "${name}"`,
          () => controllerPolicyRefusal(ctx.principal, name),
        ),
      list: async (ctx: CallContext, query: AdminListQuery) => {
        const { items, ...page } = await list<Policy>(
          ctx,
          keys.policies(ctx.tenant),
          'policies',
          'policy.list',
          query,
        );
        return { policies: items, ...page };
      },
      delete: (ctx: CallContext, name: string) =>
        remove(
          ctx,
          keys.policy(ctx.tenant, name),
          `policy/${name}`,
          'policy.delete',
          `policy "${name}"`,
          () => controllerPolicyRefusal(ctx.principal, name),
        ),
    },
    identities: {
      put: async (
        ctx: CallContext,
        type: IdentityType,
        name: string,
        body: z.output<typeof identityBody>,
      ) => {
        const stored = isController(ctx.principal) ? await managedPolicies(ctx, body.policies) : undefined;
        return put<IdentityRecord>(
          ctx,
          keys.identity(ctx.tenant, type, name),
          `identity/${type}:${name}`,
          'identity.put',
          (existing, now) => ({
            type,
            name,
            policies: body.policies,
            ...(body.metadata ? { metadata: body.metadata } : {}),
            createdAt: existing?.createdAt ?? now,
            updatedAt: now,
          }),
          (existing) => controllerIdentityRefusal(ctx.principal, type, name, existing, body, stored),
        );
      },
      get: (ctx: CallContext, type: IdentityType, name: string) =>
        read<IdentityRecord>(
          ctx,
          keys.identity(ctx.tenant, type, name),
          `identity/${type}:${name}`,
          'identity.read',
          `identity ${type}:${name}`,
          () => controllerIdentityRefusal(ctx.principal, type, name, undefined, { policies: [] }),
        ),
      list: async (ctx: CallContext, query: AdminListQuery) => {
        const { items, ...page } = await list<IdentityRecord>(
          ctx,
          keys.identities(ctx.tenant),
          'identities',
          'identity.list',
          query,
        );
        return { identities: items, ...page };
      },
      delete: (ctx: CallContext, type: IdentityType, name: string) =>
        remove(
          ctx,
          keys.identity(ctx.tenant, type, name),
          `identity/${type}:${name}`,
          'identity.delete',
          `identity ${type}:${name}`,
        ),
    },
  };
}
