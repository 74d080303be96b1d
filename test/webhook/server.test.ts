import { X509Certificate } from 'node:crypto';
import { request } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/lib/logger.js';
import { applyRotation, type CertState, caBundle, defaultRotationPolicy } from '../../src/webhook/certs.js';
import { defaultMutateConfig } from '../../src/webhook/mutate.js';
import { startWebhookServer, type WebhookServer } from '../../src/webhook/server.js';
import { loadPod } from './support.js';

const policy = defaultRotationPolicy({ ipAddresses: ['127.0.0.1'] });

function call(
  server: WebhookServer,
  ca: string,
  method: string,
  path: string,
  body?: string,
): Promise<{ status: number; body: string; peerCert: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: server.port,
        method,
        path,
        ca,
        agent: false,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        const peerCert = (res.socket as TLSSocket).getPeerCertificate().fingerprint256 ?? '';
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, peerCert }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const review = (object: unknown, uid = 'uid-1') =>
  JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'shop',
      operation: 'CREATE',
      object,
    },
  });

describe('the webhook HTTPS server', () => {
  let server: WebhookServer;
  let certs: CertState;
  let ca: string;
  const registry = new Registry();
  const asked: string[][] = [];

  beforeAll(async () => {
    certs = await applyRotation(undefined, 'create', policy, new Date());
    ca = caBundle(certs, new Date());
    server = await startWebhookServer({
      logger: silentLogger,
      registry,
      certificate: certs.serving,
      config: defaultMutateConfig({ agentImage: 'vault:test', vaultAddr: 'http://vault:8200' }),
      maxBodyBytes: 64 * 1024,
      missingLeases: async (_ns, names) => {
        asked.push(names);
        return names.filter((n) => n.startsWith('missing'));
      },
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('answers an AdmissionReview with a base64 JSON patch and the same uid', async () => {
    const pod = loadPod('basic');
    delete pod.metadata?.namespace;
    const res = await call(server, ca, 'POST', '/mutate', review(pod, 'abc-123'));
    expect(res.status).toBe(200);
    const body = JSON.parse(res.body);
    expect(body.apiVersion).toBe('admission.k8s.io/v1');
    expect(body.response.uid).toBe('abc-123');
    expect(body.response.allowed).toBe(true);
    expect(body.response.patchType).toBe('JSONPatch');
    const patch = JSON.parse(Buffer.from(body.response.patch, 'base64').toString('utf8'));
    const agent = patch.find((op: { path: string }) => op.path === '/spec/initContainers');
    expect(agent.value[0].name).toBe('vault-agent');
    // The namespace came from the request, not the object.
    const env = agent.value[0].env.find((e: { name: string }) => e.name === 'VAULT_AGENT_CONFIG');
    expect(JSON.parse(env.value).namespace).toBe('shop');
    // No runAsUser and no fsGroup: admitted, with a warning kubectl shows.
    expect(body.response.warnings).toEqual([expect.stringContaining('container "app" (uid from its image)')]);
  });

  it('returns no warning when the pod sets an fsGroup', async () => {
    const pod = loadPod('basic');
    pod.spec!.securityContext = { fsGroup: 2000 };
    const body = JSON.parse((await call(server, ca, 'POST', '/mutate', review(pod))).body);
    expect(body.response.allowed).toBe(true);
    expect(body.response.warnings).toBeUndefined();
  });

  it('refuses bad annotations with a 403 status that says which annotation', async () => {
    const res = await call(server, ca, 'POST', '/mutate', review(loadPod('bad-annotations')));
    const body = JSON.parse(res.body);
    expect(body.response.allowed).toBe(false);
    expect(body.response.status.code).toBe(403);
    expect(body.response.status.message).toContain('vault.ghoststack.io/credentail-db');
  });

  it('refuses a pod naming a VaultLease that does not exist', async () => {
    const pod = loadPod('basic');
    pod.metadata!.annotations = {
      'vault.ghoststack.io/lease-db': 'missing-db',
      'vault.ghoststack.io/lease-ok': 'present',
    };
    const body = JSON.parse((await call(server, ca, 'POST', '/mutate', review(pod))).body);
    expect(body.response.allowed).toBe(false);
    expect(body.response.status.message).toContain(
      'VaultLease "missing-db" does not exist in namespace "shop"',
    );
    expect(asked.at(-1)).toEqual(['missing-db', 'present']);
  });

  it('allows pods without the label and objects that are not pods, without a patch', async () => {
    const plain = JSON.parse((await call(server, ca, 'POST', '/mutate', review(loadPod('unlabelled')))).body);
    expect(plain.response).toEqual({ uid: 'uid-1', allowed: true });
  });

  it('rejects what is not an AdmissionReview, and bodies over the limit', async () => {
    expect((await call(server, ca, 'POST', '/mutate', '{"hello":1}')).status).toBe(400);
    expect((await call(server, ca, 'POST', '/mutate', 'not json')).status).toBe(400);
    const big = review({ metadata: { annotations: { x: 'y'.repeat(100 * 1024) } } });
    expect((await call(server, ca, 'POST', '/mutate', big)).status).toBe(413);
    expect((await call(server, ca, 'GET', '/mutate')).status).toBe(404);
  });

  it('serves /healthz and the admission latency histogram on /metrics', async () => {
    expect((await call(server, ca, 'GET', '/healthz')).status).toBe(200);
    const metrics = (await call(server, ca, 'GET', '/metrics')).body;
    expect(metrics).toMatch(/vault_webhook_admission_duration_seconds_count\{outcome="patched"\} [1-9]/);
    expect(metrics).toMatch(/vault_webhook_admission_duration_seconds_count\{outcome="refused"\} [1-9]/);
    expect(metrics).toMatch(/vault_webhook_admission_duration_seconds_count\{outcome="bad_request"\} [1-9]/);
  });

  it('switches to a rotated serving certificate without a restart', async () => {
    const before = (await call(server, ca, 'GET', '/healthz')).peerCert;
    const rotated = await applyRotation(certs, 'reissue-serving', policy, new Date());
    server.setCertificate(rotated.serving);
    const after = (await call(server, ca, 'GET', '/healthz')).peerCert;
    expect(after).not.toBe(before);
    expect(after).toBe(new X509Certificate(rotated.serving.certPem).fingerprint256);
  });
});
