import type { CreatedToken } from '../contract/auth.js';
import { conflict, notFound, permissionDenied } from '../lib/errors.js';
import type { Compare, Op } from '../store/store.js';
import { type CallContext, systemContext } from './context.js';
import { controllerActsIn, controllerLabel } from './controller-role.js';
import type { CoreDeps } from './deps.js';
import { parseRecord } from './deps.js';
import { keys } from './keys.js';
import { leaseIndexComplete } from './lease-index-backfill.js';
import { ROOT_POLICY } from './policy-engine.js';
import type { TokenService } from './tokens.js';

export interface TenantRecord {
  id: string;
  createdAt: string;
  description?: string;
}

export function createTenantService(deps: CoreDeps & { tokens: TokenService }) {
  const { store, keyring, committer, clock, config } = deps;
  const known = new Set<string>();

  async function create(ctx: CallContext, id: string, description?: string): Promise<TenantRecord> {
    const key = keys.tenant(id);
    const record: TenantRecord = {
      id,
      createdAt: clock().toISOString(),
      ...(description ? { description } : {}),
    };
    // Checked before anything is written (the tenant key): refused requests write nothing.
    if (ctx.principal.controllerOf) await withinClusterQuota(ctx, id);
    await keyring.ensureTenantKey(id);
    const tenantCtx = { ...ctx, tenant: id };
    await committer.commit(tenantCtx, async () => {
      if (await store.get(key)) throw conflict(`tenant "${id}" already exists`);
      // Counted again in the transaction, against the quota key it compares: of creations
      // racing past the first count, one commits and the others count again.
      const quota = ctx.principal.controllerOf ? await withinClusterQuota(ctx, id) : undefined;
      return {
        compare: [{ key, modRevision: 0 }, ...(quota ? [quota.compare] : [])],
        ops: [
          { type: 'put', key, value: JSON.stringify(record) },
          // A new tenant's leases are indexed from the first: nothing to backfill.
          { type: 'put', key: keys.leaseIndexState(id), value: JSON.stringify(leaseIndexComplete) },
          ...(quota ? [quota.op] : []),
        ],
        audit: [{ action: 'tenant.create', resource: `tenant/${id}`, outcome: 'allowed' }],
        result: undefined,
      };
    });
    known.add(id);
    return record;
  }

  /**
   * Refuses a controller's new tenant `id` once its cluster has `maxTenantsPerCluster` (a
   * count, not a read); else the compare and put on the cluster's quota key that make a
   * creation's count exact against concurrent ones (on any replica).
   */
  async function withinClusterQuota(ctx: CallContext, id: string): Promise<{ compare: Compare; op: Op }> {
    const cluster = ctx.principal.controllerOf?.cluster;
    const quotaKey = keys.clusterTenantQuota(cluster);
    const marker = await store.get(quotaKey);
    const held = await store.count(cluster ? keys.tenant(`${cluster}.`) : keys.tenants());
    if (held >= config.maxTenantsPerCluster) {
      const which = cluster ? `cluster "${cluster}" has` : 'this server has';
      deps.logger.warn(
        { tenant: id, cluster, held },
        'controller refused a new tenant: cluster tenant quota',
      );
      throw permissionDenied(
        `${controllerLabel(ctx.principal)} may not create tenant "${id}": ${which} ${held} tenants, the most this server allows (--max-tenants-per-cluster ${config.maxTenantsPerCluster}); raise it if the cluster really has that many namespaces`,
      );
    }
    return {
      compare: { key: quotaKey, modRevision: marker?.modRevision ?? 0 },
      op: { type: 'put', key: quotaKey, value: JSON.stringify({ lastTenant: id }) },
    };
  }

  return {
    create,

    /** Creates the tenant and an admin token for it (POST /v1/sys/tenants). */
    async createWithAdmin(
      ctx: CallContext,
      id: string,
      description?: string,
    ): Promise<{ tenant: TenantRecord; adminToken: CreatedToken }> {
      const tenant = await create(ctx, id, description);
      // Never outlives the system token that asked for it.
      const adminToken = await deps.tokens.mint({ ...ctx, tenant: id }, id, {
        identity: { type: 'human', name: 'admin' },
        policies: [ROOT_POLICY],
        ttlMs: 24 * 3_600_000,
        ...(ctx.principal.expiresAt ? { notAfter: ctx.principal.expiresAt } : {}),
      });
      return { tenant, adminToken };
    },

    /** One page of tenants in id order; `continue` (the last id) while more may follow. */
    async list(query: { limit: number; continue?: string | undefined }): Promise<{
      tenants: TenantRecord[];
      continue?: string;
    }> {
      const page = await store.range(keys.tenants(), {
        limit: query.limit,
        ...(query.continue !== undefined ? { startAfter: keys.tenant(query.continue) } : {}),
      });
      const tenants = page.kvs.map((kv) => parseRecord<TenantRecord>(kv.value));
      return page.more && tenants.length > 0 ? { tenants, continue: tenants.at(-1)!.id } : { tenants };
    },

    async exists(id: string): Promise<boolean> {
      if (known.has(id)) return true;
      const found = (await store.get(keys.tenant(id))) !== undefined;
      if (found) known.add(id);
      return found;
    },

    /** Idempotently creates a tenant (operator: one per namespace; dev: on first use). */
    async ensure(
      id: string,
      ctx: CallContext = systemContext(id, { type: 'workload', name: 'vault-system' }),
    ) {
      if (known.has(id) || (await store.get(keys.tenant(id)))) {
        known.add(id);
        return;
      }
      try {
        await create(ctx, id);
      } catch (err) {
        // Created meanwhile by another request; a conflict that left no tenant (too many
        // concurrent changes) is the caller's to retry.
        if (!(err instanceof Error && 'code' in err && err.code === 'conflict')) throw err;
        if (!(await store.get(keys.tenant(id)))) throw err;
        known.add(id);
      }
    },

    /** Resolves the tenant a request acts in, creating it for system tokens in dev mode. */
    async require(ctx: CallContext) {
      if (await this.exists(ctx.tenant)) return;
      if (ctx.principal.system && config.autoCreateTenants) return this.ensure(ctx.tenant, ctx);
      // A cluster's controller reaches a namespace's tenant before any of its workloads logs in.
      if (controllerActsIn(ctx.principal, ctx.tenant)) return this.ensure(ctx.tenant, ctx);
      throw notFound(`tenant "${ctx.tenant}" does not exist`);
    },
  };
}

export type TenantService = ReturnType<typeof createTenantService>;
