/**
 * The etcd store against an etcd that serves TLS, requires client certificates and has auth
 * enabled: right credentials work (from PEM text or from files), wrong ones fail clearly and
 * without echoing secrets, and the store survives an etcd restart (which voids auth tokens).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '../../src/lib/errors.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import type { Store, WatchEvent } from '../../src/store/store.js';
import { dumpEtcd, type EtcdProcess, startEtcd } from '../support/etcd.js';
import { eventually } from './contract.js';

describe('etcd store with TLS and auth', () => {
  let etcd: EtcdProcess;

  beforeAll(async () => {
    etcd = await startEtcd({ tls: true, auth: true });
  });

  afterAll(async () => {
    await etcd?.destroy();
  });

  const pemOptions = () => ({
    endpoints: [etcd.endpoint],
    tls: { ca: etcd.tls!.ca, cert: etcd.tls!.cert, key: etcd.tls!.key },
    username: etcd.auth!.username,
    password: etcd.auth!.password,
    prefix: `tls/${randomUUID()}/`,
    timeoutMs: 2_000,
  });

  it('works with the right CA, client certificate and password (PEM text)', async () => {
    const store = await openEtcdStore(pemOptions());
    try {
      const { revision } = await store.txn({
        compare: [{ key: 'a', modRevision: 0 }],
        success: [{ type: 'put', key: 'a', value: 'tls-value' }],
      });
      expect((await store.get('a'))?.modRevision).toBe(revision);
      const dump = await dumpEtcd(etcd);
      expect(dump.some((kv) => kv.value.toString() === 'tls-value')).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('works with TLS material given as file paths', async () => {
    const store = await openEtcdStore({
      ...pemOptions(),
      tls: { ca: etcd.tls!.caFile, cert: etcd.tls!.certFile, key: etcd.tls!.keyFile },
    });
    try {
      await store.ping();
    } finally {
      await store.close();
    }
  });

  it('a wrong password fails clearly and does not echo it', async () => {
    const password = `wrong-${randomUUID()}`;
    const err = await openEtcdStore({ ...pemOptions(), password }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect((err as Error).message).toMatch(/rejected the configured username or password/);
    expect(JSON.stringify({ message: (err as Error).message, stack: (err as Error).stack })).not.toContain(
      password,
    );
  });

  it('a missing client certificate or an untrusted server fails instead of connecting', async () => {
    // Without the client certificate, etcd's --client-cert-auth refuses the TLS handshake.
    await expect(openEtcdStore({ ...pemOptions(), tls: { ca: etcd.tls!.ca } })).rejects.toBeInstanceOf(
      StoreUnavailableError,
    );
    // Without our CA, the server's certificate is not trusted.
    await expect(
      openEtcdStore({ ...pemOptions(), tls: { cert: etcd.tls!.cert, key: etcd.tls!.key } }),
    ).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  it('authenticates by the client certificate CN when no password is given', async () => {
    // etcd maps a verified client certificate's CN ("root" here) to the etcd user.
    const { username: _u, password: _p, ...certOnly } = pemOptions();
    const store = await openEtcdStore(certOnly);
    await store.close();
  });

  it('recovers after an etcd restart, re-authenticating calls and watches', {
    timeout: 120_000,
  }, async () => {
    const store: Store = await openEtcdStore(pemOptions());
    try {
      const events: WatchEvent[] = [];
      const watcher = await store.watch('w/', 0, (event) => events.push(event));
      await etcd.restart();
      // The first calls after the restart may still fail; the same store recovers without reopening.
      await eventually(async () => {
        await store.txn({ success: [{ type: 'put', key: 'w/after-restart', value: '1' }] });
      }, 60_000);
      await eventually(() => expect(events.map((e) => e.key)).toEqual(['w/after-restart']), 30_000);
      await watcher.close();
    } finally {
      await store.close();
    }
  });
});
