/**
 * The reconcilers' VaultPort over the Vault API (the SDK), with the controller's own token:
 * the controller holds no root key and no store credentials, and can do only what its
 * controller role lets it do in this cluster's tenants (core/controller-role.ts). Responses
 * are turned back into their wire form (ISO strings), which is what the reconcilers compare
 * with the status they wrote.
 */
import type { Identity } from '../contract/common.js';
import type { Credential } from '../contract/credentials.js';
import type { PolicyBody } from '../contract/policies.js';
import { interruptibleSleep } from '../lib/interruptible-sleep.js';
import type { Logger } from '../lib/logger.js';
import type { Vault } from '../sdk/index.js';
import { type LeaseInfo, ownerLabel, type VaultPort } from './vault-port.js';
import type { VaultSession } from './vault-session.js';

const wire = <T>(value: unknown): T => JSON.parse(JSON.stringify(value)) as T;

const isCode = (err: unknown, code: string) => (err as { code?: string } | undefined)?.code === code;

async function orUndefined<T>(call: Promise<T>): Promise<T | undefined> {
  try {
    return await call;
  } catch (err) {
    if (isCode(err, 'not_found')) return undefined;
    throw err;
  }
}

const leaseInfo = (lease: unknown): LeaseInfo => {
  const { value: _value, ...rest } = wire<LeaseInfo & { value?: string }>(lease);
  return rest;
};

/** Serialises read-modify-write updates of one identity within this process. */
function keyedMutex() {
  const tails = new Map<string, Promise<unknown>>();
  return async <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const previous = tails.get(key) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const tail = run.catch(() => {});
    tails.set(key, tail);
    try {
      return await run;
    } finally {
      if (tails.get(key) === tail) tails.delete(key);
    }
  };
}

export function createApiPort(session: VaultSession, logger: Logger): VaultPort {
  const on = <T>(tenant: string, call: (vault: Vault) => Promise<T>) => session.call(tenant, call);
  const lockIdentity = keyedMutex();

  /** Adds or removes one managed policy on an identity, keeping everything else it has. */
  function changePolicies(tenant: string, who: Identity, change: (policies: string[]) => string[]) {
    return lockIdentity(`${tenant}/${who.type}:${who.name}`, () =>
      on(tenant, async (vault) => {
        const current = await orUndefined(vault.identities.get(who.type, who.name));
        const before = current?.policies ?? [];
        const after = change(before);
        if (after.length === before.length && after.every((p, i) => p === before[i])) return false;
        await vault.identities.put(who.type, who.name, {
          policies: after,
          ...(current?.metadata ? { metadata: current.metadata } : {}),
        });
        return true;
      }),
    );
  }

  return {
    // The first call into a tenant of this cluster creates it (the controller role's due).
    getCredential: (tenant, name) =>
      on(tenant, async (vault) => {
        const found = await orUndefined(vault.credentials.get(name));
        return found && wire<Credential>(found);
      }),
    createCredential: (tenant, input) =>
      on(tenant, async (vault) =>
        wire<Credential>(
          await vault.credentials.create({
            name: input.name,
            type: input.type,
            metadata: input.metadata,
            ...(input.leases ? { leases: input.leases } : {}),
            ...(input.value !== undefined ? { value: input.value } : {}),
            ...(input.generate ? { generate: input.generate } : {}),
            ...(input.dynamic ? { dynamic: input.dynamic } : {}),
          }),
        ),
      ),
    updateCredential: (tenant, name, input) =>
      on(tenant, async (vault) => wire<Credential>(await vault.credentials.update(name, input))),
    putVersionIfChanged: (tenant, name, value) =>
      on(tenant, async (vault) =>
        wire<Credential>(await vault.credentials.putVersion(name, value, { ifChanged: true })),
      ),
    rotate: (tenant, name, generate) =>
      on(tenant, async (vault) => wire<Credential>(await vault.credentials.rotate(name, { generate }))),
    deleteCredential: (tenant, name) =>
      on(tenant, async (vault) => {
        const result = await orUndefined(vault.credentials.delete(name));
        return { revoked: result?.revoked ?? 0 };
      }),
    revokeLeasesOf: (tenant, credentialName) =>
      on(tenant, async (vault) => {
        const result = await orUndefined(vault.leases.revokeBulk({ credentialName }));
        return { revoked: result?.revoked ?? 0 };
      }),
    getPolicy: (tenant, name) =>
      on(tenant, async (vault) => {
        const found = await orUndefined(vault.policies.get(name));
        if (!found) return undefined;
        const {
          name: _n,
          createdAt: _c,
          updatedAt: _u,
          ...body
        } = wire<PolicyBody & Record<string, unknown>>(found);
        return body as PolicyBody;
      }),
    putPolicy: (tenant, name, body) =>
      on(tenant, async (vault) => {
        await vault.policies.put(name, body);
      }),
    deletePolicy: (tenant, name) =>
      on(tenant, async (vault) => {
        await orUndefined(vault.policies.delete(name));
      }),
    attachPolicy: (tenant, who, policy) =>
      changePolicies(tenant, who, (policies) =>
        policies.includes(policy) ? policies : [...policies, policy],
      ),
    detachPolicy: (tenant, who, policy) =>
      changePolicies(tenant, who, (policies) => policies.filter((p) => p !== policy)),
    issueLease: (tenant, input) =>
      on(tenant, async (vault) =>
        // The API decides by input.identity's own policies and never returns the value here.
        leaseInfo(
          await vault.leases.create({
            credentialName: input.credentialName,
            identity: input.identity,
            renewable: input.renewable,
            ...(input.ttl ? { ttl: input.ttl } : {}),
            ...(input.maxTtl ? { maxTtl: input.maxTtl } : {}),
            ...(input.owner ? { labels: { [ownerLabel]: input.owner } } : {}),
          }),
        ),
      ),
    getLease: (tenant, id) =>
      on(tenant, async (vault) => {
        const found = await orUndefined(vault.leases.get(id));
        return found && leaseInfo(found);
      }),
    findLeaseFor: (tenant, owner, identity) =>
      on(tenant, async (vault) => {
        // Walks the workload identity's leases (its index), not the tenant's: a tenant of a
        // million leases cost a million reads for every new VaultLease. Pages until found: a
        // page may be cut short by the server's scan budget.
        let next: string | undefined;
        do {
          const page = await vault.leases.page({
            state: 'active',
            identityType: identity.type,
            identityName: identity.name,
            labels: `${ownerLabel}=${owner}`,
            limit: 1,
            ...(next ? { continue: next } : {}),
          });
          if (page.leases[0]) return leaseInfo(page.leases[0]);
          next = page.continue;
        } while (next);
        return undefined;
      }),
    renewLease: (tenant, id, increment) =>
      on(tenant, async (vault) => leaseInfo(await vault.leases.renew(id, increment ? { increment } : {}))),
    revokeLease: (tenant, id) =>
      on(tenant, async (vault) => {
        await orUndefined(vault.leases.revoke(id));
      }),
    async watchLeases(tenant, onEvent, onResumed) {
      const stop = new AbortController();
      const nap = interruptibleSleep();
      const follow = async () => {
        let failures = 0;
        let opened = false;
        // After the first connection, every new one follows a gap without events.
        const onOpen = () => {
          if (opened) onResumed?.();
          opened = true;
        };
        while (!stop.signal.aborted) {
          try {
            for await (const event of session
              .forTenant(tenant)
              .leases.events({ signal: stop.signal, onOpen })) {
              failures = 0;
              onEvent({ type: event.type, leaseId: event.lease.id });
            }
          } catch (err) {
            if (stop.signal.aborted) return;
            failures++;
            logger.debug(
              { tenant, err: err instanceof Error ? err.message : String(err) },
              'lease event stream ended',
            );
          }
          // A stream ends when the token is renewed or the server restarts: follow again.
          await nap.sleep(Math.min(30_000, 250 * 2 ** Math.min(failures, 7)));
        }
      };
      void follow();
      return {
        close: async () => {
          stop.abort();
          nap.wake();
        },
      };
    },
  };
}
