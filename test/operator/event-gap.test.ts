/**
 * The controller follows each tenant's lease events over one HTTP stream. When that stream
 * breaks (a network cut, an API server restart), changes made in Vault meanwhile send no event;
 * the controller must catch up as soon as it is connected again, not at the next resync (10
 * minutes by default). Here a TCP proxy between the controller and the API cuts every
 * connection, a lease is revoked in Vault during the cut, and the VaultLease must show it
 * within seconds of the proxy letting connections through again.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemContext } from '../../src/core/index.js';
import { resourceTypes } from '../../src/k8s/api-client.js';
import type { KubeObject } from '../../src/k8s/resources.js';
import type { Operator } from '../../src/operator/manager.js';
import { eventually, type OperatorEnv, setupOperatorEnv } from './support.js';

// biome-ignore lint/suspicious/noExplicitAny: test assertions read arbitrary status fields
type Obj = KubeObject & { status?: Record<string, any> };

/** A TCP proxy to `target` that can cut every connection and refuse new ones until resumed. */
async function cuttableProxy(
  target: URL,
): Promise<{ url: string; cut(): void; resume(): void; close(): Promise<void> }> {
  let open = true;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    if (!open) return void client.destroy();
    const upstream = connect(Number(target.port), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    cut() {
      open = false;
      for (const socket of sockets) socket.destroy();
    },
    resume() {
      open = true;
    },
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('the lease event stream after a disconnection', { timeout: 120_000 }, () => {
  let env: OperatorEnv;
  let proxy: Awaited<ReturnType<typeof cuttableProxy>>;
  let operator: Operator;
  const ns = 'gap';

  beforeAll(async () => {
    env = await setupOperatorEnv();
    proxy = await cuttableProxy(new URL(env.vault.url));
    // The default resync (10 minutes): only the stream, or its catching up, can show a change in time.
    operator = await env.startOperator({ vault: await env.port(proxy.url), resyncMs: 600_000 });
    await env.cp.createNamespace(ns);
    const applied = await env.cp.kubectl(['apply', '-n', ns, '-f', '-'], {
      input: `
apiVersion: v1
kind: ServiceAccount
metadata: {name: billing}
---
apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: token}
spec:
  type: api-key
  source: {generate: {length: 32}}
  access: {serviceAccounts: [billing], defaultTtl: 15m, maxTtl: 1h}
---
apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultLease
metadata: {name: token-for-billing}
spec:
  credentialRef: {name: token}
  serviceAccountName: billing
  ttl: 15m
`,
    });
    if (applied.code !== 0) throw new Error(applied.stderr);
  }, 120_000);

  afterAll(async () => {
    await env?.close();
    await proxy?.close();
  });

  const lease = () => env.admin.get<Obj>(resourceTypes.vaultLeases, ns, 'token-for-billing');

  it('shows a revocation made while it was disconnected as soon as it reconnects', async () => {
    const active = await eventually('the VaultLease Active', async () => {
      const obj = await lease();
      return obj?.status?.phase === 'Active' ? obj : undefined;
    });
    const leaseId: string = active.status?.leaseId;
    // Settled: no reconcile in flight or queued that would read the lease again by itself.
    await operator.idle();
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    await operator.idle();
    // Every connection cut, the event stream with them; the revocation sends no event to it.
    proxy.cut();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await env.core.leases.revoke(systemContext(ns, { type: 'human', name: 'test-admin' }), leaseId);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    proxy.resume();
    const revoked = await eventually(
      'the VaultLease Revoked after the stream reconnects',
      async () => {
        const obj = await lease();
        return obj?.status?.phase === 'Revoked' ? obj : undefined;
      },
      20_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${env.logs().split('\n').slice(-20).join('\n')}`);
    });
    expect(revoked.status?.leaseId).toBe(leaseId);
  });
});
