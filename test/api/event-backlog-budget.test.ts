/**
 * Fair sharing of memory across lease-event streams: each stream may hold 1 MiB of events
 * for a client that does not read, and all the streams of a process together at most
 * `--max-event-backlog-mib` (64 MiB by default). 2,048 streams × 1 MiB would be 2 GiB; past
 * the process's budget, a stream that is behind is disconnected (and reconnects), whatever
 * its own limit.
 *
 * Here the per-stream limit is set far above what the test sends, so only the process
 * budget can end a stream. Real HTTP, real sockets whose reading side is paused, the
 * embedded store; the leases are written through the core's op builder.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/core/keys.js';
import type { LeaseRecord } from '../../src/core/lease-record.js';
import { writeLeases } from '../support/bulk-leases.js';
import { openEventStreams, stalledEventStream } from '../support/event-streams.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

const LEASES = 40_000;
const MIB = 1 << 20;

describe.each([
  { budgetMib: 2, ended: true },
  { budgetMib: 4096, ended: false },
])('streams that do not read, with a process budget of $budgetMib MiB', ({ budgetMib, ended }) => {
  let vault: TestVault;

  beforeAll(async () => {
    vault = await startTestVault({
      app: { eventBacklog: { perStream: 1024 * MIB, perProcess: budgetMib * MIB } },
    });
    await vault.call('POST', '/v1/credentials', { body: { name: 'bulk', type: 'generic', value: 'v' } });
    const first = await vault.call('POST', '/v1/leases', { body: { credentialName: 'bulk', ttl: '1h' } });
    const template = JSON.parse((await vault.store.get(keys.lease(vault.tenant, first.body.id)))!.value);
    await writeLeases(vault.store, vault.tenant, template as LeaseRecord, 'bulk', LEASES);
  }, 120_000);
  afterAll(() => vault?.close());

  const openStreams = async () => openEventStreams((await vault.call('GET', '/metrics')).text);

  it(ended ? 'are disconnected once together they pass it' : 'stay open while under it', async () => {
    const streams = await Promise.all(
      Array.from({ length: 4 }, () => stalledEventStream(vault.url, vault.rootToken)),
    );
    expect(await openStreams()).toBe(4);
    // 40,000 revocations: some 20 MB of events per stream, more than the sockets' kernel
    // buffers take, so most of it waits in the server unless the stream is ended.
    const revoked = await vault.call('POST', '/v1/leases/revoke', { body: { credentialName: 'bulk' } });
    expect(revoked.status, revoked.text).toBe(200);
    expect(revoked.body.revoked).toBe(LEASES + 1);
    // A bounded wait for the events to reach the streams (not a speed test): until one is
    // ended, or for 60 s; under the budget, a few seconds of events.
    const deadline = Date.now() + (ended ? 60_000 : 5_000);
    while (Date.now() < deadline && (await openStreams()) === 4)
      await new Promise((resolve) => setTimeout(resolve, 250));
    // Counted by the server (a paused client socket does not see its end).
    const open = await openStreams();
    if (ended) expect(open, 'streams still open past the budget').toBeLessThan(4);
    else expect(open, 'streams ended under the budget').toBe(4);
    for (const stream of streams) stream.socket.destroy();
  }, 120_000);
});
