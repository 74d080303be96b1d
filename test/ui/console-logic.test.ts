/** The console's pure parts (no browser): SSE parsing, lease bookkeeping, and the /ui router. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { describe, expect, it } from 'vitest';
import type { Lease } from '../../src/contract/leases.js';
import { uiContentSecurityPolicy, uiRouter } from '../../src/server/ui.js';
import { applyLeaseEvents, filterLeases, formatRemaining, groupLeases } from '../../ui/src/lib/leases.js';
import { createSseParser, type SseMessage } from '../../ui/src/lib/sse.js';

const lease = (
  id: string,
  name: string,
  credentialName = 'db',
  type: 'agent' | 'human' = 'agent',
): Lease => ({
  id,
  tenant: 'dev',
  credentialName,
  version: 1,
  identity: { type, name },
  issuedBy: { type, name },
  issuedAt: '2026-01-01T00:00:00.000Z',
  expiresAt: '2026-01-01T00:10:00.000Z',
  maxExpiresAt: '2026-01-01T01:00:00.000Z',
  renewable: true,
  renewCount: 0,
  state: 'active',
});

describe('SSE parser', () => {
  it('yields whole events across arbitrary chunk boundaries, skipping comments', () => {
    const seen: SseMessage[] = [];
    const feed = createSseParser((m) => seen.push(m));
    const text =
      ': connected\n\nevent: issued\ndata: {"a":1}\n\n: heartbeat\r\n\r\nevent: revoked\r\ndata: x\r\ndata: y\r\n\r\n';
    for (const char of text) feed(char);
    expect(seen).toEqual([
      { event: 'issued', data: '{"a":1}' },
      { event: 'revoked', data: 'x\ny' },
    ]);
  });
});

describe('lease bookkeeping', () => {
  it('adds issued and renewed leases and drops revoked and expired ones', () => {
    const a = lease('lease_a', 'claude');
    const b = lease('lease_b', 'claude');
    let map = applyLeaseEvents(new Map(), [
      { type: 'issued', lease: a },
      { type: 'issued', lease: b },
    ]);
    map = applyLeaseEvents(map, [
      { type: 'renewed', lease: { ...a, renewCount: 1 } },
      { type: 'revoked', lease: { ...b, state: 'revoked' } },
    ]);
    expect([...map.keys()]).toEqual(['lease_a']);
    expect(map.get('lease_a')!.renewCount).toBe(1);
    expect(applyLeaseEvents(map, [{ type: 'expired', lease: a }]).size).toBe(0);
  });

  it('groups by identity or credential and filters by type and text', () => {
    const leases = [
      lease('lease_1', 'bot', 'db'),
      lease('lease_2', 'bot', 'api'),
      lease('lease_3', 'ann', 'db', 'human'),
    ];
    expect(groupLeases(leases, 'identity').map((g) => [g.key, g.leases.length])).toEqual([
      ['agent/bot', 2],
      ['human/ann', 1],
    ]);
    expect(groupLeases(leases, 'credential').map((g) => g.key)).toEqual(['api', 'db']);
    expect(filterLeases(leases, { text: '', identityType: 'human' }).map((l) => l.id)).toEqual(['lease_3']);
    expect(filterLeases(leases, { text: 'API', identityType: '' }).map((l) => l.id)).toEqual(['lease_2']);
    expect([
      formatRemaining(0),
      formatRemaining(5_500),
      formatRemaining(65_000),
      formatRemaining(3_720_000),
    ]).toEqual(['expired', '5s', '1m 05s', '1h 02m']);
  });
});

describe('/ui router', () => {
  async function serve(dir: string) {
    const app = express();
    app.use('/ui', uiRouter(dir));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return { base, close: () => new Promise((resolve) => server.close(resolve)) };
  }

  it('answers 503 with the fix when the console is not built, CSP included', async () => {
    const { base, close } = await serve(mkdtempSync(join(tmpdir(), 'vault-ui-empty-')));
    const response = await fetch(`${base}/ui/`);
    expect(response.status).toBe(503);
    expect(await response.text()).toMatch(/npm run build/);
    expect(response.headers.get('content-security-policy')).toBe(uiContentSecurityPolicy);
    await close();
  });

  it('serves index.html for client routes, never caches it, and 404s missing assets', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vault-ui-built-'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>x</title>');
    const { base, close } = await serve(dir);
    for (const path of ['/ui', '/ui/', '/ui/leases']) {
      const response = await fetch(`${base}${path}`);
      expect(response.status, path).toBe(200);
      expect(response.headers.get('cache-control')).toBe('no-store');
      expect(response.headers.get('x-frame-options')).toBe('DENY');
    }
    expect((await fetch(`${base}/ui/assets/nope.js`)).status).toBe(404);
    await close();
  });
});
