import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Vault } from '../../src/sdk/index.js';
import type { LeaseEvent } from '../../src/sdk/types.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import type { Store } from '../../src/store/store.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { type HangingProxy, startHangingProxy } from '../support/hanging-proxy.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

// Red team, session 8b (held): streams that join the tenant's shared watch while it is being
// set up, and etcd does not answer. Whether the setup fails (every waiting stream is refused,
// and the next one starts a new watch) or succeeds late (every waiting stream follows it), no
// stream is left on a watch that never came.

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('lease events: joining the shared watch while it is set up', () => {
  let etcd: EtcdProcess;
  let proxy: HangingProxy;
  let store: Store;
  let vault: TestVault;
  let sdk: Vault;

  beforeAll(async () => {
    etcd = await startEtcd();
    proxy = await startHangingProxy({ host: '127.0.0.1', port: Number(new URL(etcd.endpoint).port) });
    store = await openEtcdStore({ endpoints: [`http://127.0.0.1:${proxy.port}`], timeoutMs: 2_000 });
    vault = await startTestVault({ store });
    const created = await vault.call('POST', '/v1/credentials', {
      body: { name: 'db', type: 'password', value: 'v-1' },
    });
    expect(created.status).toBe(201);
    sdk = await Vault.connect({
      addr: vault.url,
      token: vault.rootToken,
      tenant: vault.tenant,
      timeoutMs: 20_000,
    });
  }, 120_000);
  afterAll(async () => {
    proxy?.resume();
    await vault?.close();
    await store?.close();
    await proxy?.close();
    await etcd?.destroy();
  });

  function open() {
    const abort = new AbortController();
    const seen: LeaseEvent[] = [];
    let opened = false;
    const done = (async () => {
      for await (const event of sdk.leases.events({
        signal: abort.signal,
        onOpen: () => {
          opened = true;
        },
      }))
        seen.push(event);
      return 'ended';
    })().catch((err: unknown) => err);
    return { seen, done, abort, isOpen: () => opened };
  }

  /** A lease, asked for until the store answers again (its client reconnects after the cut). */
  async function issue(): Promise<string> {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const result = await vault.call('POST', '/v1/leases', { body: { credentialName: 'db', ttl: '5m' } });
      if (result.status === 201) return result.body.id as string;
      if (Date.now() > deadline) throw new Error(`no lease: ${result.text}`);
      await sleep(200);
    }
  }

  async function sees(stream: ReturnType<typeof open>, id: string) {
    const deadline = Date.now() + 10_000;
    while (!stream.seen.some((event) => event.lease.id === id)) {
      if (Date.now() > deadline) throw new Error(`a stream missed lease ${id}`);
      await sleep(20);
    }
  }

  it('a setup that fails refuses every waiting stream; the next one follows a new watch', async () => {
    proxy.hang();
    const waiting = [open(), open(), open()];
    const outcomes = await Promise.all(waiting.map((s) => s.done));
    expect(waiting.map((s) => s.isOpen())).toEqual([false, false, false]);
    for (const outcome of outcomes) expect(outcome).toBeInstanceOf(Error);
    proxy.resume();
    await sleep(500);
    const next = open();
    while (!next.isOpen()) await sleep(20);
    await sees(next, await issue());
    next.abort.abort();
    await next.done;
  }, 60_000);

  it('a setup that succeeds late serves every stream that joined it meanwhile', async () => {
    proxy.hang();
    const waiting = [open(), open(), open()];
    await sleep(800);
    proxy.resume();
    const deadline = Date.now() + 10_000;
    while (!waiting.every((s) => s.isOpen()) && Date.now() < deadline) await sleep(20);
    expect(waiting.map((s) => s.isOpen())).toEqual([true, true, true]);
    const id = await issue();
    for (const stream of waiting) await sees(stream, id);
    for (const stream of waiting) stream.abort.abort();
    await Promise.all(waiting.map((s) => s.done));
  }, 60_000);
});
