/**
 * Red team (issue 13, fair sharing): a lease-event stream whose client never reads. The
 * server wrote every event into the response regardless of backpressure, so each such
 * stream buffered every lease change of the tenant in the server's memory: 16 admin
 * streams that never read, and a bulk revocation of 50,000 leases, took the server from
 * 138 MiB to 706 MiB (and growing) on the development machine; a tenant's admins may open
 * 256 (every stream of the tenant), so one tenant's admin could exhaust the memory of the
 * process every tenant shares. Fair sharing counts streams, so it must also bound what a
 * stream may hold: a stream that falls too far behind is ended, and its slot given back.
 *
 * Real parts: a real etcd, a real `vault server` child process, 50,000 lease records written
 * through the core's op builder with the server stopped, real sockets whose reading side is
 * paused.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEventStreams, stalledEventStream } from '../support/event-streams.js';
import { type BigTenant, startBigTenant } from './scale-tenant.js';

let big: BigTenant;

beforeAll(async () => {
  big = await startBigTenant({ bulk: 50_000, filler: 0 });
}, 300_000);
afterAll(async () => {
  await big?.destroy();
});

async function openStreams(): Promise<number> {
  return openEventStreams((await big.call(big.root, 'GET', '/metrics')).body as string);
}

const rssMib = () =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${big.server.pid}/status`, 'utf8'))?.[1]) / 1024;

describe('lease-event streams whose clients do not read', () => {
  it('are ended once they fall too far behind, so the server does not hold the backlog', async () => {
    // One token's whole share (16), each stream stalled once it is live.
    const streams = await Promise.all(
      Array.from({ length: 16 }, () => stalledEventStream(big.server.url, big.root)),
    );
    expect(await openStreams()).toBe(16);
    const before = rssMib();
    // 50,000 revocations: some 24 MB of events per stream, 380 MB for the 16, more than the
    // sockets' kernel buffers take.
    const revoked = await big.call(big.root, 'POST', '/v1/leases/revoke', { credentialName: 'bulk' });
    expect(revoked.status).toBe(200);
    expect(revoked.body.revoked).toBe(50_000);
    // Wait until every event has been handed to the streams (a bounded wait, not a speed test).
    let peak = rssMib();
    for (let i = 0; i < 40; i++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      peak = Math.max(peak, rssMib());
    }
    // Before: every stream kept open and its events buffered in the server (RSS +570 MiB).
    expect(await openStreams()).toBeLessThan(16);
    expect(peak - before).toBeLessThan(300);
    for (const stream of streams) stream.socket.destroy();
  }, 240_000);
});
