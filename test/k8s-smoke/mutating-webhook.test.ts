import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { AdmissionregistrationV1Api, CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ControlPlane, startControlPlane } from '../support/control-plane.js';

const namespace = 'webhook';
const optInLabel = 'smoke.vault.ghoststack.io/inject';
const mutatedAnnotation = 'smoke.vault.ghoststack.io/mutated';

interface AdmissionReview {
  request: { uid: string; name?: string; object: V1Pod };
}

/** A mutating webhook that annotates every pod it is sent and remembers which it saw. */
function startWebhook(cert: { certPem: string; keyPem: string }) {
  const seen: string[] = [];
  const server = createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => {
      body += chunk.toString('utf8');
    });
    req.on('end', () => {
      if (req.method !== 'POST' || req.url?.split('?')[0] !== '/mutate') {
        res.writeHead(404).end();
        return;
      }
      const review = JSON.parse(body) as AdmissionReview;
      const pod = review.request.object;
      seen.push(pod.metadata?.name ?? review.request.name ?? '');
      const patch = pod.metadata?.annotations
        ? [
            {
              op: 'add',
              path: `/metadata/annotations/${mutatedAnnotation.replace('/', '~1')}`,
              value: 'true',
            },
          ]
        : [{ op: 'add', path: '/metadata/annotations', value: { [mutatedAnnotation]: 'true' } }];
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          apiVersion: 'admission.k8s.io/v1',
          kind: 'AdmissionReview',
          response: {
            uid: review.request.uid,
            allowed: true,
            patchType: 'JSONPatch',
            patch: Buffer.from(JSON.stringify(patch)).toString('base64'),
          },
        }),
      );
    });
  });
  return new Promise<{ server: Server; port: number; seen: string[] }>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, port: (server.address() as AddressInfo).port, seen }),
    );
  });
}

const pod = (name: string, labels?: Record<string, string>): V1Pod => ({
  metadata: { name, labels },
  spec: {
    automountServiceAccountToken: false,
    containers: [{ name: 'app', image: 'registry.invalid/app:1' }],
  },
});

describe('a MutatingWebhookConfiguration served from 127.0.0.1', () => {
  let cp: ControlPlane;
  let core: CoreV1Api;
  let webhook: Awaited<ReturnType<typeof startWebhook>>;

  beforeAll(async () => {
    cp = await startControlPlane();
    core = cp.kubeConfig().makeApiClient(CoreV1Api);
    await cp.createNamespace(namespace);
    webhook = await startWebhook(
      await cp.issueCertificate({ commonName: 'webhook', ipAddresses: ['127.0.0.1'] }),
    );

    await cp
      .kubeConfig()
      .makeApiClient(AdmissionregistrationV1Api)
      .createMutatingWebhookConfiguration({
        body: {
          metadata: { name: 'smoke-mutator' },
          webhooks: [
            {
              name: 'mutate.smoke.vault.ghoststack.io',
              clientConfig: {
                url: `https://127.0.0.1:${webhook.port}/mutate`,
                caBundle: Buffer.from(cp.caPem).toString('base64'),
              },
              rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
              namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } },
              objectSelector: { matchLabels: { [optInLabel]: 'true' } },
              admissionReviewVersions: ['v1'],
              sideEffects: 'None',
              failurePolicy: 'Fail',
              timeoutSeconds: 5,
            },
          ],
        },
      });

    // The apiserver picks the configuration up from its informer; dry-run creations show
    // when it is in effect without leaving pods behind.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const probe = await core.createNamespacedPod({
        namespace,
        dryRun: 'All',
        body: pod('probe', { [optInLabel]: 'true' }),
      });
      if (probe.metadata?.annotations?.[mutatedAnnotation] === 'true') break;
      if (Date.now() > deadline) throw new Error('the webhook configuration never took effect');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  });
  afterAll(async () => {
    await cp?.stop();
    if (webhook?.server.listening) webhook.server.close();
  });

  it('patches a pod that opted in with the label, and the patch is stored', async () => {
    await core.createNamespacedPod({ namespace, body: pod('opted-in', { [optInLabel]: 'true' }) });
    const stored = await core.readNamespacedPod({ name: 'opted-in', namespace });
    expect(stored.metadata?.annotations?.[mutatedAnnotation]).toBe('true');
    expect(webhook.seen).toContain('opted-in');
  });

  it('keeps existing annotations when it adds its own', async () => {
    const body = pod('annotated', { [optInLabel]: 'true' });
    body.metadata!.annotations = { keep: 'me' };
    const created = await core.createNamespacedPod({ namespace, body });
    expect(created.metadata?.annotations).toEqual({ keep: 'me', [mutatedAnnotation]: 'true' });
  });

  it('never sees a pod without the label', async () => {
    const created = await core.createNamespacedPod({ namespace, body: pod('not-opted-in') });
    expect(created.metadata?.annotations?.[mutatedAnnotation]).toBeUndefined();
    expect(webhook.seen).not.toContain('not-opted-in');
  });

  it('refuses opted-in pods while the webhook is down, and still admits the others', async () => {
    await new Promise((resolve) => webhook.server.close(resolve));
    await expect(
      core.createNamespacedPod({ namespace, body: pod('refused', { [optInLabel]: 'true' }) }),
    ).rejects.toMatchObject({ code: 500, body: expect.stringContaining('failed calling webhook') });
    const unaffected = await core.createNamespacedPod({ namespace, body: pod('unaffected') });
    expect(unaffected.metadata?.name).toBe('unaffected');
  });
});
