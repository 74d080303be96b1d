/**
 * A lease event that arrives while the event stream is still being set up (the store's watch
 * already delivering, its answer not back yet) waits for the stream's headers: it used to be
 * written first, which sent default headers, and the stream's own headers then threw.
 *
 * Real HTTP and the embedded store; only the store's watch answers a second late.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEmbeddedStore } from '../../src/store/embedded-store.js';
import type { Store } from '../../src/store/store.js';
import { storeWith } from '../support/store-proxy.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

describe('an event stream whose first event comes before its watch is set up', () => {
  let vault: TestVault;
  let dir: string;
  let inner: Store;
  let slowWatch = false;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vault-early-event-'));
    inner = await openEmbeddedStore({ path: dir });
    const slow = storeWith(inner, (target) => ({
      watch: async (...args: Parameters<Store['watch']>) => {
        const watcher = await target.watch(...args);
        if (slowWatch) await new Promise((resolve) => setTimeout(resolve, 1_000));
        return watcher;
      },
    }));
    vault = await startTestVault({ store: slow });
    await vault.call('POST', '/v1/credentials', { body: { name: 'k', type: 'generic', value: 'v' } });
  });
  afterAll(async () => {
    await vault?.close();
    await inner?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is delivered after the stream’s headers', async () => {
    slowWatch = true;
    const controller = new AbortController();
    const opened = fetch(`${vault.url}/v1/leases/events`, {
      headers: { authorization: `Bearer ${vault.rootToken}` },
      signal: controller.signal,
    });
    // While the watch's answer is held back, a lease is issued: its event comes at once.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const lease = await vault.call('POST', '/v1/leases', { body: { credentialName: 'k', ttl: '1m' } });
    expect(lease.status).toBe(201);
    const res = await opened;
    slowWatch = false;
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const reader = res.body!.getReader();
    let text = '';
    const deadline = Date.now() + 5_000;
    while (!text.includes(lease.body.id) && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    controller.abort();
    expect(text.startsWith(': connected')).toBe(true);
    expect(text).toContain(lease.body.id);
    expect(vault.output()).not.toContain('ERR_HTTP_HEADERS_SENT');
  });
});
