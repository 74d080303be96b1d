/** What the API benchmarks share: a tenant set up as a real client would hold it, and a listener. */
import type { Server } from 'node:http';
import { systemContext, type VaultCore } from '../../src/core/index.js';

export const CREDENTIAL = 'bench-key';

/**
 * A tenant with one credential, a policy and a non-system token, as a real client would hold:
 * an agent's by default (it may lease, not read values), or a workload's (it reads what it leases).
 */
export async function bootstrapTenant(
  core: VaultCore,
  tenant: string,
  identityType: 'agent' | 'workload' = 'agent',
): Promise<string> {
  const ctx = systemContext(tenant, { type: 'human', name: 'bench-admin' });
  await core.tenants.ensure(tenant, ctx);
  await core.credentials.create(ctx, {
    name: CREDENTIAL,
    type: 'api-key',
    value: `sk_bench_${tenant}_0123456789abcdef`,
    metadata: { service: 'bench', environment: 'test' },
  });
  await core.policies.put(ctx, 'bench', {
    rules: [{ credentials: ['bench-*'], actions: ['lease', 'read-metadata'], maxTtl: '1h' }],
  });
  const identity = { type: identityType, name: `bench-${identityType}` };
  const minted = await core.tokens.mint(ctx, tenant, { identity, policies: ['bench'], ttlMs: 3_600_000 });
  return minted.token;
}

/** Listens on a free loopback port; the server's URL. */
export function listen(server: Server): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve(`http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`);
    });
  });
}
