import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/core/keys.js';
import { Vault } from '../../src/sdk/index.js';
import { openEmbeddedStore } from '../../src/store/embedded-store.js';
import type { Store } from '../../src/store/store.js';
import { followLeaseEvents, type LeaseEventFollower } from '../support/event-streams.js';
import { storeWith } from '../support/store-proxy.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';
import { until } from '../support/until.js';

/**
 * Lease-event streams of one tenant, many at once (a fleet of agents, one stream each): the
 * server follows the tenant's lease writes once, whatever the number of streams, and each
 * stream still shows exactly what its token may see, as the token is now.
 */

let vault: TestVault;
let real: Store;
/** Store watches of the tenant's lease records: opened and closed. */
const watches = { opened: 0, closed: 0 };
/** The failure callback of the last store watch of the tenant's leases (to fail it as a store would). */
let failWatch: ((err: Error) => void) | undefined;

/** A stream of `token`, once it is live (or ended). */
async function follow(token: string): Promise<LeaseEventFollower> {
  const follower = followLeaseEvents(await Vault.connect({ addr: vault.url, token, tenant: vault.tenant }));
  await Promise.race([follower.live, follower.ended]);
  return follower;
}

beforeAll(async () => {
  real = await openEmbeddedStore({ path: await mkdtemp(join(tmpdir(), 'vault-fanout-')) });
  const store = storeWith(real, (inner) => ({
    async watch(prefix, fromRevision, onEvent, options) {
      const counted = prefix === keys.leases('acme');
      if (counted) {
        watches.opened++;
        failWatch = options?.onError;
      }
      const watcher = await inner.watch(prefix, fromRevision, onEvent, options);
      return {
        async close() {
          if (counted) watches.closed++;
          await watcher.close();
        },
      };
    },
  }));
  vault = await startTestVault({ store });
  expect(vault.tenant).toBe('acme');
  const created = await vault.call('POST', '/v1/credentials', {
    body: { name: 'fleet-db', type: 'password', value: 'fleet-canary-7f3a' },
  });
  expect(created.status, created.text).toBe(201);
  await vault.call('PUT', '/v1/policies/fleet', {
    body: { rules: [{ credentials: ['fleet-db'], actions: ['lease', 'read-metadata'] }] },
  });
});
afterAll(async () => {
  await vault?.close();
});

describe('lease-event streams of one tenant', () => {
  it('share one store watch, and each shows only its own leases', async () => {
    const count = 25;
    const tokens = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        vault.tokenFor({ type: 'workload', name: `fleet-${i}` }, ['fleet']),
      ),
    );
    const before = watches.opened;
    const followers = await Promise.all(tokens.map((token) => follow(token)));
    expect(watches.opened - before).toBe(1);

    const leaseOf: string[] = [];
    for (const token of tokens) {
      const res = await vault.call('POST', '/v1/leases', {
        token,
        body: { credentialName: 'fleet-db', ttl: '1h' },
      });
      expect(res.status, res.text).toBe(201);
      leaseOf.push(res.body.id);
    }
    const revoked = await vault.call('POST', '/v1/leases/revoke', { body: { credentialName: 'fleet-db' } });
    expect(revoked.body.revoked).toBe(count);
    await until('every stream to see its revocation', () =>
      followers.every((f, i) => f.events.some((e) => e.type === 'revoked' && e.lease.id === leaseOf[i])),
    );
    // A moment for anything that should not come.
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (const [i, follower] of followers.entries()) {
      expect(new Set(follower.events.map((e) => e.lease.id))).toEqual(new Set([leaseOf[i]]));
      expect(follower.events.map((e) => e.type)).toEqual(['issued', 'revoked']);
    }
    expect(JSON.stringify(followers.map((f) => f.events))).not.toContain('fleet-canary');
    expect(watches.opened - before).toBe(1);

    const closedBefore = watches.closed;
    await Promise.all(followers.map((f) => f.stop()));
    await until('the shared watch to close with the last stream', () => watches.closed === closedBefore + 1);
    const again = await follow(tokens[0]!);
    expect(watches.opened - before).toBe(2);
    await again.stop();
  });

  it('shows others’ leases only while the token may: a grant removed through this server applies to the next event', async () => {
    await vault.call('PUT', '/v1/policies/oncall', { body: { rules: [{ actions: ['admin'] }] } });
    const oncall = await vault.tokenFor({ type: 'human', name: 'oncall' }, ['oncall']);
    const worker = await vault.tokenFor({ type: 'workload', name: 'fleet-worker' }, ['fleet']);
    const watcher = await follow(oncall);
    const lease = async () => {
      const res = await vault.call('POST', '/v1/leases', {
        token: worker,
        body: { credentialName: 'fleet-db', ttl: '1h' },
      });
      expect(res.status, res.text).toBe(201);
      return res.body.id as string;
    };
    const seen = await lease();
    await until('the admin to see a workload’s lease', () => watcher.events.some((e) => e.lease.id === seen));

    // Within the record cache's second: the change was made here, so it holds at once.
    await vault.call('PUT', '/v1/policies/oncall', { body: { rules: [{ actions: ['list'] }] } });
    const hidden = await lease();
    const marker = await vault.call('POST', '/v1/leases', {
      token: oncall,
      body: { credentialName: 'fleet-db', ttl: '1h' },
    });
    expect(marker.status).toBe(403);
    // Its own lease events still come; none of the worker's after the grant went.
    await vault.call('PUT', '/v1/policies/oncall', {
      body: { rules: [{ credentials: ['fleet-db'], actions: ['lease'] }] },
    });
    const own = await vault.call('POST', '/v1/leases', {
      token: oncall,
      body: { credentialName: 'fleet-db', ttl: '1h' },
    });
    expect(own.status, own.text).toBe(201);
    await until('its own lease’s event', () => watcher.events.some((e) => e.lease.id === own.body.id));
    expect(watcher.events.some((e) => e.lease.id === hidden)).toBe(false);
    await watcher.stop();
  });

  it('ends a stream whose token is revoked through this server, at the next event', async () => {
    await vault.call('PUT', '/v1/policies/oncall', { body: { rules: [{ actions: ['admin'] }] } });
    const res = await vault.call('POST', '/v1/auth/tokens', {
      body: { identity: { type: 'human', name: 'leaver' }, policies: ['oncall'], ttl: '1h' },
    });
    expect(res.status, res.text).toBe(201);
    const watcher = await follow(res.body.token);
    const worker = await vault.tokenFor({ type: 'workload', name: 'fleet-worker-2' }, ['fleet']);
    const first = await vault.call('POST', '/v1/leases', {
      token: worker,
      body: { credentialName: 'fleet-db', ttl: '1h' },
    });
    await until('the first event', () => watcher.events.some((e) => e.lease.id === first.body.id));
    expect((await vault.call('DELETE', `/v1/auth/tokens/${res.body.accessor}`)).status).toBe(200);
    const second = await vault.call('POST', '/v1/leases', {
      token: worker,
      body: { credentialName: 'fleet-db', ttl: '1h' },
    });
    expect(second.status).toBe(201);
    // The stream ends (the server says why) without showing the lease made after the revocation.
    await watcher.ended;
    expect(watcher.events.some((e) => e.lease.id === second.body.id)).toBe(false);
  });

  it('ends every stream of the tenant when the store stops following, and follows again on reconnect', async () => {
    const tokens = await Promise.all(
      [0, 1, 2].map((i) => vault.tokenFor({ type: 'workload', name: `fleet-broken-${i}` }, ['fleet'])),
    );
    const followers = await Promise.all(tokens.map((token) => follow(token)));
    const opened = watches.opened;
    failWatch!(new Error('the store watch was cancelled'));
    // Each stream is told and ends; its client reconnects (the SDK ends the iterator).
    expect(await Promise.all(followers.map((f) => f.ended))).toEqual(['ended', 'ended', 'ended']);
    const again = await follow(tokens[0]!);
    expect(watches.opened).toBe(opened + 1);
    const res = await vault.call('POST', '/v1/leases', {
      token: tokens[0]!,
      body: { credentialName: 'fleet-db', ttl: '1h' },
    });
    await until('an event on the new watch', () => again.events.some((e) => e.lease.id === res.body.id));
    await again.stop();
  });
});
