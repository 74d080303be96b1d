/**
 * Three `vault server` replicas on one etcd behind one address. What one replica does, the
 * others honour at once: the lease event stream of replica A carries leases issued, renewed,
 * revoked and expired through B and C; a lease revoked through one replica gives no value on
 * another, and a token revoked through one is refused by the others, on the very next
 * request, whatever the others cached (records are cached for 1 s per replica).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { call, type Replicas, sleep, startReplicas } from './harness.js';

let etcd: EtcdProcess;
let replicas: Replicas;
let token: string;
let credentialName: string;
const urls = () => replicas.servers.map((server) => server.url);

beforeAll(async () => {
  etcd = await startEtcd();
  replicas = await startReplicas({ endpoints: [etcd.endpoint], count: 3, tenant: 'replicas' });
  ({ token, credentialName } = replicas.auth);
});
afterAll(async () => {
  await replicas?.close();
  await etcd?.destroy();
});

async function createLease(url: string, ttl = '1h', as = token) {
  const res = await call(url, 'POST', '/v1/leases', as, { credentialName, ttl });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { id: string; value: string };
}

/** Server-sent events of one replica's lease stream, collected as they come. */
async function openEvents(url: string) {
  const controller = new AbortController();
  const res = await fetch(`${url}/v1/leases/events`, {
    headers: { authorization: `Bearer ${token}` },
    signal: controller.signal,
  });
  expect(res.status).toBe(200);
  const events: Array<{ type: string; id: string }> = [];
  const reading = (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
          const data = /^data: (.*)$/m.exec(buffer.slice(0, end))?.[1];
          if (data) {
            const event = JSON.parse(data) as { type: string; lease: { id: string } };
            if (event.lease) events.push({ type: event.type, id: event.lease.id });
          }
          buffer = buffer.slice(end + 2);
          end = buffer.indexOf('\n\n');
        }
      }
    } catch {
      // aborted
    }
  })();
  return {
    events,
    of: (id: string) => events.filter((event) => event.id === id).map((event) => event.type),
    close: async () => {
      controller.abort();
      await reading;
    },
  };
}

async function until(check: () => boolean, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await sleep(20);
  }
}

describe('three API replicas on one etcd', () => {
  it('streams, on replica A, what was done through B and C, and each lease end once', async () => {
    const [a, b, c] = urls() as [string, string, string];
    const stream = await openEvents(a);
    try {
      const kept = await createLease(b);
      const revoked = await createLease(c);
      const expiring = await createLease(b, '2s');
      expect((await call(c, 'POST', `/v1/leases/${kept.id}/renew`, token, { increment: '2h' })).status).toBe(
        200,
      );
      expect((await call(b, 'POST', `/v1/leases/${revoked.id}/revoke`, token, {})).status).toBe(200);
      await until(() => stream.of(expiring.id).includes('expired'));
      await until(() => stream.of(revoked.id).includes('revoked') && stream.of(kept.id).includes('renewed'));
      expect(stream.of(kept.id)).toEqual(['issued', 'renewed']);
      expect(stream.of(revoked.id)).toEqual(['issued', 'revoked']);
      expect(stream.of(expiring.id)).toEqual(['issued', 'expired']);
    } finally {
      await stream.close();
    }
  }, 60_000);

  it('gives no value through any replica once a lease was revoked through another', async () => {
    const all = urls();
    for (let round = 0; round < 12; round++) {
      const [origin, ...others] = [...all.slice(round % 3), ...all.slice(0, round % 3)];
      const lease = await createLease(origin!);
      // Every replica has read it (and whatever it caches is warm)...
      for (const url of all)
        expect((await call(url, 'GET', `/v1/leases/${lease.id}/value`, token)).status).toBe(200);
      expect((await call(origin!, 'POST', `/v1/leases/${lease.id}/revoke`, token, {})).status).toBe(200);
      // ...and the next read anywhere, right after the revocation was answered, is refused.
      for (const url of others) {
        const read = await call(url!, 'GET', `/v1/leases/${lease.id}/value`, token);
        expect(read.status, `round ${round}: ${JSON.stringify(read.body)}`).toBe(410);
        expect(read.body.error.code).toBe('lease_revoked');
        expect(JSON.stringify(read.body)).not.toContain(lease.value);
      }
    }
  }, 60_000);

  it('refuses a token on every replica as soon as it was revoked through one', async () => {
    const [a, b, c] = urls() as [string, string, string];
    for (let round = 0; round < 6; round++) {
      const minted = await call(a, 'POST', '/v1/auth/tokens', token, {
        identity: { type: 'human', name: 'crash-test' },
        policies: ['root'],
        ttl: '10m',
      });
      expect(minted.status, JSON.stringify(minted.body)).toBe(201);
      const child = minted.body.token as string;
      const lease = await createLease(a, '1h', child);
      // B and C authenticate the token (and cache its record) and serve its reads...
      for (const url of [b, c]) {
        expect((await call(url, 'GET', `/v1/leases/${lease.id}/value`, child)).status).toBe(200);
      }
      expect((await call(a, 'DELETE', `/v1/auth/tokens/${minted.body.accessor}`, token)).status).toBe(200);
      // ...and refuse it on the next request: no value, no new lease.
      for (const url of [b, c]) {
        const read = await call(url, 'GET', `/v1/leases/${lease.id}/value`, child);
        expect(read.status, `round ${round}: ${JSON.stringify(read.body)}`).toBe(401);
        expect(JSON.stringify(read.body)).not.toContain(lease.value);
        const created = await call(url, 'POST', '/v1/leases', child, { credentialName, ttl: '1h' });
        expect(created.status, `round ${round}: ${JSON.stringify(created.body)}`).toBe(401);
      }
    }
  }, 60_000);

  it('decides by a policy changed through another replica within the record cache TTL (1 s)', async () => {
    const [a, b] = urls() as [string, string];
    const rules = [{ credentials: [credentialName], actions: ['lease'], maxTtl: '1h' }];
    expect((await call(a, 'PUT', '/v1/policies/leaser', token, { rules })).status).toBe(200);
    const minted = await call(a, 'POST', '/v1/auth/tokens', token, {
      identity: { type: 'human', name: 'bob' },
      policies: ['leaser'],
      ttl: '10m',
    });
    expect(minted.status, JSON.stringify(minted.body)).toBe(201);
    const bob = minted.body.token as string;
    // B caches the policy while serving bob...
    expect((await call(b, 'POST', '/v1/leases', bob, { credentialName, ttl: '1h' })).status).toBe(201);
    // ...the grant is withdrawn through A...
    const none = [{ credentials: ['nothing-*'], actions: ['lease'], maxTtl: '1h' }];
    expect((await call(a, 'PUT', '/v1/policies/leaser', token, { rules: none })).status).toBe(200);
    // ...and once the TTL has passed, B decides on the new policy (A at once).
    expect((await call(a, 'POST', '/v1/leases', bob, { credentialName, ttl: '1h' })).status).toBe(403);
    await sleep(1_100);
    expect((await call(b, 'POST', '/v1/leases', bob, { credentialName, ttl: '1h' })).status).toBe(403);
  }, 60_000);

  it("gives no value through a replica that cached a credential's labels changed through another", async () => {
    const [a, b] = urls() as [string, string];
    // An agent reads the values it leases only where a rule grants "reveal": here, on
    // credentials labelled tier=open (leasing is granted whatever the label).
    const rules = [
      { credentials: [credentialName], actions: ['lease'], maxTtl: '1h' },
      { credentials: [credentialName], labels: { tier: 'open' }, actions: ['reveal'] },
    ];
    expect((await call(a, 'PUT', '/v1/policies/open-reader', token, { rules })).status).toBe(200);
    const label = (tier: string) =>
      call(a, 'PATCH', `/v1/credentials/${credentialName}`, token, { metadata: { tier } });
    const minted = await call(a, 'POST', '/v1/auth/tokens', token, {
      identity: { type: 'agent', name: 'carol' },
      policies: ['open-reader'],
      ttl: '10m',
    });
    const carol = minted.body.token as string;
    for (let round = 0; round < 3; round++) {
      expect((await label('open')).status).toBe(200);
      const lease = await createLease(a, '1h', carol);
      // (B may have cached the credential as it was a moment ago, within the TTL.)
      await sleep(1_100);
      // B reads it (its caches are warm: lease, credential, sealed value)...
      const warm = await call(b, 'GET', `/v1/leases/${lease.id}/value`, carol);
      expect(warm.status, JSON.stringify(warm.body)).toBe(200);
      // ...the label that granted it is changed through A...
      const closed = await label('closed');
      expect(closed.status, JSON.stringify(closed.body)).toBe(200);
      // ...and B's next read, right away, is decided on the new labels.
      const read = await call(b, 'GET', `/v1/leases/${lease.id}/value`, carol);
      expect(read.status, `round ${round}: ${JSON.stringify(read.body)}`).toBe(403);
      expect(JSON.stringify(read.body)).not.toContain(lease.value);
    }
    await label('open');
  }, 60_000);
});
