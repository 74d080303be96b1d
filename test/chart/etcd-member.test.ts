/**
 * The bundled etcd as the chart renders it, run for real: the StatefulSet's own command line
 * (one member, the pod's DNS name swapped for 127.0.0.1 and the ports for free ones) with the
 * certificates the chart generated. The API server's client certificate gets in; one from
 * another CA does not; the probes' endpoints answer.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveAssets } from '../support/assets.js';
import { find, podTemplate, render } from './support.js';

const b64 = (text: string) => Buffer.from(text, 'base64');

async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer());
  const ports = await Promise.all(
    servers.map(
      (server) =>
        new Promise<number>((resolve, reject) => {
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => {
            const address = server.address();
            resolve(typeof address === 'object' && address ? address.port : 0);
          });
        }),
    ),
  );
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

describe('the bundled etcd, run with the chart command line and certificates', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vault-chart-etcd-'));
  let etcd: ChildProcess | undefined;
  let log = '';
  let client: { ca: Buffer; cert: Buffer; key: Buffer };
  let clientUrl = '';
  let metricsUrl = '';

  beforeAll(async () => {
    const objects = await render({ 'etcd.replicas': 1 });
    const member = find(objects, 'Secret', 'vault-etcd-tls').data;
    const clientData = find(objects, 'Secret', 'vault-etcd-client-tls').data;
    client = {
      ca: b64(clientData['ca.crt']),
      cert: b64(clientData['tls.crt']),
      key: b64(clientData['tls.key']),
    };
    for (const file of ['ca.crt', 'tls.crt', 'tls.key'])
      writeFileSync(join(dir, file), b64(member[file]), { mode: 0o600 });

    const container = podTemplate(find(objects, 'StatefulSet', 'vault-etcd')).spec.containers[0];
    const [clientPort, peerPort, metricsPort] = await freePorts(3);
    clientUrl = `https://127.0.0.1:${clientPort}`;
    metricsUrl = `http://127.0.0.1:${metricsPort}`;
    const args = (container.args as string[]).map((arg) =>
      arg
        .replaceAll('$(POD_NAME).vault-etcd.vault.svc', '127.0.0.1')
        .replaceAll('vault-etcd-0.vault-etcd.vault.svc', '127.0.0.1')
        .replaceAll('$(POD_NAME)', 'vault-etcd-0')
        .replaceAll('0.0.0.0', '127.0.0.1')
        .replaceAll(':2379', `:${clientPort}`)
        .replaceAll(':2380', `:${peerPort}`)
        .replaceAll(':2381', `:${metricsPort}`)
        .replaceAll('/etc/etcd/tls', dir)
        .replaceAll('/var/lib/etcd', join(dir, 'var')),
    );
    expect(args.join(' ')).not.toMatch(/svc|\/etc\/etcd|\/var\/lib/);
    etcd = spawn(resolveAssets().etcd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    etcd.stdout?.on('data', (chunk) => {
      log += chunk;
    });
    etcd.stderr?.on('data', (chunk) => {
      log += chunk;
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (etcd.exitCode !== null) throw new Error(`etcd exited (${etcd.exitCode}):\n${log.slice(-3000)}`);
      const ready = await fetch(`${metricsUrl}/readyz`).then(
        (res) => res.ok,
        () => false,
      );
      if (ready) break;
      if (Date.now() > deadline) throw new Error(`etcd never became ready:\n${log.slice(-3000)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  });

  afterAll(async () => {
    if (etcd && etcd.exitCode === null) {
      const exited = new Promise((resolve) => etcd!.once('exit', resolve));
      etcd.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers the liveness and readiness probes on the metrics port', async () => {
    expect((await fetch(`${metricsUrl}/livez`)).status).toBe(200);
    expect((await fetch(`${metricsUrl}/readyz`)).status).toBe(200);
  });

  it('serves the API server with its client certificate over TLS', async () => {
    const etcd3 = new Etcd3({
      hosts: [clientUrl],
      credentials: { rootCertificate: client.ca, certChain: client.cert, privateKey: client.key },
    });
    try {
      await etcd3.put('chart-test').value('ok');
      expect(await etcd3.get('chart-test').string()).toBe('ok');
    } finally {
      etcd3.close();
    }
  });

  it('refuses a client certificate from another CA', async () => {
    const other = await render({ 'etcd.replicas': 1 });
    const foreign = find(other, 'Secret', 'vault-etcd-client-tls').data;
    const etcd3 = new Etcd3({
      hosts: [clientUrl],
      credentials: {
        rootCertificate: client.ca,
        certChain: b64(foreign['tls.crt']),
        privateKey: b64(foreign['tls.key']),
      },
      dialTimeout: 3_000,
    });
    try {
      const error = await etcd3
        .get('chart-test')
        .string()
        .then(
          () => undefined,
          (err: Error) => err,
        );
      expect(String(error)).toMatch(/unknown ca/);
    } finally {
      etcd3.close();
    }
  });
});
