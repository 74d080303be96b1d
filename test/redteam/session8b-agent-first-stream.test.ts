import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { agentFile } from '../../src/agent/config.js';
import { createFileSink } from '../../src/agent/file-sink.js';
import { createLeaseLoop, leaseApi } from '../../src/agent/lease-loop.js';
import { systemClock } from '../../src/lib/clock.js';
import { silentLogger } from '../../src/lib/logger.js';
import { agentFixture } from '../support/agent-fixture.js';
import type { HangingProxy } from '../support/hanging-proxy.js';
import { until } from '../support/until.js';

// Red team, session 8b: the agent looks its leases up again when its event stream opens after
// a break, but not when the stream opens for the first time. A stream that could not be opened
// at start (a busy or unreachable server, the stream limit) while the files were leased and
// written missed a revocation made in between just the same: the file stayed until its
// renewal (40 minutes for a 1 h lease).

describe('agent: a revocation before its event stream first opens', () => {
  const f = agentFixture({ credential: { name: 'db', value: 'revoked-before-the-stream' } });

  it('wipes the file once the stream opens', async () => {
    const { vault, dir } = f;
    const [events] = f.proxies as [HangingProxy];
    const admin = await f.connect(vault.url, 1_000);
    const viaEvents = await f.connect(f.through(0), 1_000);
    // The stream cannot be opened yet; leasing and writing the file can.
    events.hang();
    const loop = createLeaseLoop({
      files: [agentFile.parse({ name: 'db', credential: 'db', ttl: '1h' })],
      sink: createFileSink(dir),
      api: { ...leaseApi(() => admin), events: leaseApi(() => viaEvents).events },
      clock: systemClock,
      logger: silentLogger,
      registry: new Registry(),
      retryMinMs: 200,
      retryMaxMs: 500,
    });
    f.loop = loop;
    loop.start();
    await loop.allWritten;
    const file = join(dir, 'db');
    expect(existsSync(file)).toBe(true);
    await admin.leases.revoke(loop.leaseIds().db!);
    const streamsBefore = await openStreams();
    events.resume();
    await until('the event stream to open', async () => (await openStreams()) > streamsBefore);
    await until('the file to be wiped', () => !existsSync(file), 5_000);
  }, 60_000);

  async function openStreams(): Promise<number> {
    const metrics = await fetch(`${f.vault.url}/metrics`, {
      headers: { authorization: `Bearer ${f.vault.rootToken}` },
    }).then((r) => r.text());
    return Number(/^vault_event_streams_open(?:\{[^}]*\})? (\d+)/m.exec(metrics)?.[1] ?? 0);
  }
});
