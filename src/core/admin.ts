import type { z } from 'zod';
import type { IdentityType } from '../contract/common.js';
import type { IdentityRecord, identityBody, Policy, PolicyBody } from '../contract/policies.js';
import { notFound } from '../lib/errors.js';
import { scanPrefix } from '../store/paged.js';
import type { Access } from './access.js';
import type { CallContext } from './context.js';
import { type CoreDeps, parseRecord } from './deps.js';
import { keys } from './keys.js';

/** Policies and identities: administration of a tenant, every change audited. */
export function createAdminService(deps: CoreDeps & { access: Access }) {
  const { store, committer, access, clock, records } = deps;

  async function put<T extends { createdAt: string }>(
    ctx: CallContext,
    key: string,
    resource: string,
    action: string,
    build: (existing: T | undefined, now: string) => T,
  ): Promise<T> {
    await access.check(ctx, 'admin', resource, undefined, action);
    try {
      return await committer.commit(ctx, async () => {
        const kv = await store.get(key);
        const record = build(kv ? parseRecord<T>(kv.value) : undefined, clock().toISOString());
        return {
          compare: [{ key, modRevision: kv?.modRevision ?? 0 }],
          ops: [{ type: 'put', key, value: JSON.stringify(record) }],
          audit: [{ action, resource, outcome: 'allowed' }],
          result: record,
        };
      });
    } finally {
      records.invalidate(key);
    }
  }

  async function remove(ctx: CallContext, key: string, resource: string, action: string, what: string) {
    await access.check(ctx, 'admin', resource, undefined, action);
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
  ): Promise<T> {
    await access.check(ctx, 'admin', resource, undefined, action);
    const kv = await store.get(key);
    if (!kv) throw notFound(`${what} does not exist in tenant "${ctx.tenant}"`);
    await committer.record(ctx, { action, resource, outcome: 'allowed' });
    return parseRecord<T>(kv.value);
  }

  async function list<T>(ctx: CallContext, prefix: string, resource: string, action: string): Promise<T[]> {
    await access.check(ctx, 'admin', resource, undefined, action);
    const found: T[] = [];
    for await (const kv of scanPrefix(store, prefix)) found.push(parseRecord<T>(kv.value));
    await committer.record(ctx, { action, resource, outcome: 'allowed' });
    return found;
  }

  return {
    policies: {
      put: (ctx: CallContext, name: string, body: PolicyBody) =>
        put<Policy>(ctx, keys.policy(ctx.tenant, name), `policy/${name}`, 'policy.put', (existing, now) => ({
          ...body,
          name,
          createdAt: existing?.createdAt ?? now,
          updatedAt: now,
        })),
      get: (ctx: CallContext, name: string) =>
        read<Policy>(ctx, keys.policy(ctx.tenant, name), `policy/${name}`, 'policy.read', `policy "${name}"`),
      list: (ctx: CallContext) => list<Policy>(ctx, keys.policies(ctx.tenant), 'policies', 'policy.list'),
      delete: (ctx: CallContext, name: string) =>
        remove(ctx, keys.policy(ctx.tenant, name), `policy/${name}`, 'policy.delete', `policy "${name}"`),
    },
    identities: {
      put: (ctx: CallContext, type: IdentityType, name: string, body: z.output<typeof identityBody>) =>
        put<IdentityRecord>(
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
        ),
      get: (ctx: CallContext, type: IdentityType, name: string) =>
        read<IdentityRecord>(
          ctx,
          keys.identity(ctx.tenant, type, name),
          `identity/${type}:${name}`,
          'identity.read',
          `identity ${type}:${name}`,
        ),
      list: (ctx: CallContext) =>
        list<IdentityRecord>(ctx, keys.identities(ctx.tenant), 'identities', 'identity.list'),
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
