/**
 * The etcd store when etcd is not there: it fails fast with StoreUnavailableError, and the
 * same Store object works again once etcd is back, without being reopened.
 */
import { randomUUID } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isVaultError, OutcomeUnknownError, StoreUnavailableError } from '../../src/lib/errors.js';
import { WatchCompactedError } from '../../src/store/errors.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import type { Store, WatchEvent } from '../../src/store/store.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { eventually } from './contract.js';

const timeoutMs = 1_500;
/** Generous: the point is "fails within a few seconds", not a benchmark. */
const failFastBoundMs = 10_000;

async function expectUnavailable(operation: Promise<unknown>): Promise<StoreUnavailableError> {
  const started = Date.now();
  const err = await operation.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StoreUnavailableError);
  expect(Date.now() - started).toBeLessThan(failFastBoundMs);
  return err as StoreUnavailableError;
}

async function waitUntilAvailable(store: Store): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await store.ping();
      return;
    } catch (err) {
      if (!(err instanceof StoreUnavailableError) || Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

describe('etcd store faults', () => {
  let etcd: EtcdProcess;

  beforeAll(async () => {
    etcd = await startEtcd();
  });

  afterAll(async () => {
    await etcd?.destroy();
  });

  it('fails fast while etcd is down and recovers by itself when it is back', {
    timeout: 120_000,
  }, async () => {
    const store = await openEtcdStore({
      endpoints: [etcd.endpoint],
      prefix: `faults/${randomUUID()}/`,
      timeoutMs,
    });
    try {
      const before = await store.txn({ success: [{ type: 'put', key: 'k/before', value: '1' }] });
      const events: WatchEvent[] = [];
      const watcher = await store.watch('k/', 0, (event) => events.push(event));

      await etcd.kill();
      const err = await expectUnavailable(
        store.txn({ success: [{ type: 'put', key: 'k/during', value: 'x' }] }),
      );
      expect(err.message).toMatch(/etcd at http:\/\/127\.0\.0\.1:\d+/);
      expect(err.code).toBe('store_unavailable');
      await expectUnavailable(store.get('k/before'));
      await expectUnavailable(store.range('k/'));
      await expectUnavailable(store.ping());
      await expectUnavailable(store.watch('k/', 0, () => {}));

      await etcd.restart();
      await waitUntilAvailable(store);
      expect((await store.get('k/before'))?.modRevision).toBe(before.revision);
      expect(await store.get('k/during')).toBeUndefined();
      const after = await store.txn({ success: [{ type: 'put', key: 'k/after', value: '2' }] });
      expect(after.succeeded).toBe(true);
      // The watcher opened before the outage resumes and sees the change, once.
      await eventually(() => expect(events.map((e) => e.key)).toEqual(['k/after']), 30_000);
      await watcher.close();
    } finally {
      await store.close();
    }
  });

  it('times out against a hung etcd instead of hanging', { timeout: 120_000 }, async () => {
    const store = await openEtcdStore({
      endpoints: [etcd.endpoint],
      prefix: `hung/${randomUUID()}/`,
      timeoutMs,
    });
    try {
      await store.txn({ success: [{ type: 'put', key: 'a', value: '1' }] });
      await etcd.pause();
      // A write that timed out may have been applied: outcome unknown, not "unavailable".
      const started = Date.now();
      const err = await store.txn({ success: [{ type: 'put', key: 'a', value: '2' }] }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(OutcomeUnknownError);
      expect(Date.now() - started).toBeLessThan(failFastBoundMs);
      expect((err as Error).message).toMatch(
        /the transaction within 1500 ms; it may or may not have been applied/,
      );
      await expectUnavailable(store.get('a'));
      await etcd.resume();
      await waitUntilAvailable(store);
      expect((await store.get('a'))?.value).toMatch(/^[12]$/);
    } finally {
      await etcd.resume();
      await store.close();
    }
  });

  it('openEtcdStore rejects quickly when no etcd listens', async () => {
    const started = Date.now();
    const err = await openEtcdStore({ endpoints: ['http://127.0.0.1:1'], timeoutMs }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect((err as Error).message).toMatch(/etcd at http:\/\/127\.0\.0\.1:1 is unavailable/);
    expect(Date.now() - started).toBeLessThan(failFastBoundMs);
  });

  it('rejects bad options with a message that says what to fix', async () => {
    await expect(openEtcdStore({ endpoints: [] })).rejects.toThrow(/at least one endpoint/);
    await expect(openEtcdStore({ endpoints: [etcd.endpoint], username: 'root' })).rejects.toThrow(
      /both a username and a password/,
    );
    await expect(
      openEtcdStore({ endpoints: [etcd.endpoint], tls: { ca: '/nonexistent/ca.pem' } }),
    ).rejects.toThrow(/cannot read the etcd TLS CA file \/nonexistent\/ca.pem: ENOENT/);
  });

  it('a watch from a compacted revision fails with WatchCompactedError', async () => {
    const store = await openEtcdStore({ endpoints: [etcd.endpoint], prefix: `compact/${randomUUID()}/` });
    const raw = new Etcd3({ hosts: etcd.endpoint });
    try {
      const first = await store.txn({ success: [{ type: 'put', key: 'c', value: '1' }] });
      const second = await store.txn({ success: [{ type: 'put', key: 'c', value: '2' }] });
      await raw.kv.compact({ revision: second.revision, physical: true });
      const err = await store.watch('', first.revision, () => {}).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WatchCompactedError);
      expect((err as Error).message).toMatch(/re-read the current state/);
      // From the compaction point on, history is still there.
      const events: WatchEvent[] = [];
      const watcher = await store.watch('', second.revision, (event) => events.push(event));
      await eventually(() => expect(events).toEqual([expect.objectContaining({ value: '2' })]));
      await watcher.close();
    } finally {
      raw.close();
      await store.close();
    }
  });
});

describe('the first read of a prefix this process has not read yet', () => {
  it('may take ten times the deadline (etcd counts every key of it once), other reads may not', async () => {
    const etcd = await startEtcd();
    const store = await openEtcdStore({ endpoints: [etcd.endpoint], timeoutMs: 1_000 });
    try {
      await store.txn({
        success: [
          { type: 'put', key: 'seen/a', value: '1' },
          { type: 'put', key: 'new/a', value: '1' },
        ],
      });
      await store.range('seen/', { limit: 10 });
      await etcd.pause();
      const unseen = store.range('new/', { limit: 10 });
      const seen = store.range('seen/', { limit: 10 }).catch((err: Error) => err);
      const get = store.get('seen/a').catch((err: Error) => err);
      // Paused until the other reads have given up (their 1 s deadline), however late a busy
      // machine fires their timers, and no longer: the first read's ten deadlines are still
      // running when etcd comes back.
      await Promise.race([Promise.all([seen, get]), new Promise((resolve) => setTimeout(resolve, 8_000))]);
      await etcd.resume();
      expect((await unseen).kvs.map((kv) => kv.key)).toEqual(['new/a']);
      for (const failed of [await seen, await get]) {
        const what = failed instanceof Error ? `${failed.constructor.name}: ${failed.message}` : 'an answer';
        expect(isVaultError(failed) && failed.code, what).toBe('store_unavailable');
        // Its deadline (or, on a busy machine, the connection's keepalive) gave up first.
        expect((failed as Error).message).toMatch(/within 1000 ms|is unavailable/);
      }
    } finally {
      await store.close();
      await etcd.destroy();
    }
  }, 60_000);
});
