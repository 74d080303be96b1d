/**
 * The bundled etcd as the chart renders it, run for real: the StatefulSet's own command line
 * (one member, the pod's DNS name swapped for 127.0.0.1 and the ports for free ones) with the
 * certificates the chart generated. The API server's client certificate gets in; one from
 * another CA does not; the probes' endpoints answer.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { b64, type LocalEtcd, startChartEtcd } from './local-run.js';
import { find, render } from './support.js';

describe('the bundled etcd, run with the chart command line and certificates', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vault-chart-etcd-'));
  let etcd: LocalEtcd | undefined;
  let client: { ca: Buffer; cert: Buffer; key: Buffer };

  beforeAll(async () => {
    const objects = await render({ 'etcd.replicas': 1 });
    const data = find(objects, 'Secret', 'vault-etcd-client-tls').data;
    client = { ca: b64(data['ca.crt']), cert: b64(data['tls.crt']), key: b64(data['tls.key']) };
    etcd = await startChartEtcd(objects, dir);
  });

  afterAll(async () => {
    await etcd?.process.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers the liveness and readiness probes on the metrics port', async () => {
    expect((await fetch(`${etcd!.metricsUrl}/livez`)).status).toBe(200);
    expect((await fetch(`${etcd!.metricsUrl}/readyz`)).status).toBe(200);
  });

  it('serves the API server with its client certificate over TLS', async () => {
    const etcd3 = new Etcd3({
      hosts: [etcd!.clientUrl],
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
    const foreign = find(await render({ 'etcd.replicas': 1 }), 'Secret', 'vault-etcd-client-tls').data;
    const etcd3 = new Etcd3({
      hosts: [etcd!.clientUrl],
      credentials: {
        rootCertificate: client.ca,
        certChain: b64(foreign['tls.crt']),
        privateKey: b64(foreign['tls.key']),
      },
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
