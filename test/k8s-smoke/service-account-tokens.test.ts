import {
  AuthenticationV1Api,
  CoreV1Api,
  type V1Pod,
  type V1TokenReviewStatus,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ControlPlane, startControlPlane } from '../support/control-plane.js';

const namespace = 'tokens';
const serviceAccount = 'app';

/** A pod that never runs (no kubelet) and needs no token volume. */
const podFor = (name: string, serviceAccountName?: string): V1Pod => ({
  metadata: { name },
  spec: {
    serviceAccountName,
    automountServiceAccountToken: false,
    containers: [{ name: 'app', image: 'registry.invalid/app:1' }],
  },
});

async function eventually<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe('ServiceAccount tokens: TokenRequest and TokenReview', () => {
  let cp: ControlPlane;
  let core: CoreV1Api;
  let authn: AuthenticationV1Api;

  const mint = async (audience: string, pod?: V1Pod): Promise<string> => {
    const { status } = await core.createNamespacedServiceAccountToken({
      name: serviceAccount,
      namespace,
      body: {
        spec: {
          audiences: [audience],
          expirationSeconds: 600,
          boundObjectRef: pod && {
            apiVersion: 'v1',
            kind: 'Pod',
            name: pod.metadata!.name,
            uid: pod.metadata!.uid,
          },
        },
      },
    });
    return status!.token;
  };
  const review = async (token: string, audiences = ['vault']): Promise<V1TokenReviewStatus> => {
    const { status } = await authn.createTokenReview({ body: { spec: { token, audiences } } });
    return status!;
  };

  beforeAll(async () => {
    cp = await startControlPlane();
    core = cp.kubeConfig().makeApiClient(CoreV1Api);
    authn = cp.kubeConfig().makeApiClient(AuthenticationV1Api);
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: serviceAccount } } });
  });
  afterAll(() => cp?.stop());

  it('refuses a pod whose ServiceAccount does not exist (no controller creates `default`)', async () => {
    await expect(core.createNamespacedPod({ namespace, body: podFor('orphan') })).rejects.toMatchObject({
      code: 403,
      body: expect.stringContaining('serviceaccount \\"default\\" not found'),
    });
  });

  it('mints a pod-bound token for audience vault that TokenReview accepts, bound to the pod', async () => {
    const pod = await core.createNamespacedPod({ namespace, body: podFor('bound', serviceAccount) });
    expect(pod.status?.phase).toBe('Pending');
    const token = await mint('vault', pod);

    const status = await review(token);
    expect(status.error ?? '').toBe('');
    expect(status.authenticated).toBe(true);
    expect(status.audiences).toEqual(['vault']);
    expect(status.user?.username).toBe(`system:serviceaccount:${namespace}:${serviceAccount}`);
    expect(status.user?.groups).toContain(`system:serviceaccounts:${namespace}`);
    expect(status.user?.extra?.['authentication.kubernetes.io/pod-name']).toEqual(['bound']);
    expect(status.user?.extra?.['authentication.kubernetes.io/pod-uid']).toEqual([pod.metadata!.uid]);
  });

  it('rejects a token minted for another audience', async () => {
    const token = await mint('not-vault');
    const status = await review(token);
    expect(status.authenticated ?? false).toBe(false);
    expect(status.error).toMatch(/audience|invalid bearer token/i);
    // The same token is fine for the audience it was minted for.
    expect((await review(token, ['not-vault'])).authenticated).toBe(true);
  });

  it('rejects a malformed token', async () => {
    const status = await review('not-a-jwt');
    expect(status.authenticated ?? false).toBe(false);
  });

  it('stops accepting a pod-bound token once its pod is deleted', async () => {
    const pod = await core.createNamespacedPod({ namespace, body: podFor('short-lived', serviceAccount) });
    const token = await mint('vault', pod);
    expect((await review(token)).authenticated).toBe(true);

    // An unscheduled pod is deleted at once (no kubelet to wait for).
    await core.deleteNamespacedPod({ name: 'short-lived', namespace });
    const status = await eventually(
      () => review(token),
      (s) => s.authenticated !== true,
    );
    expect(status.authenticated ?? false).toBe(false);
    expect(status.error).toMatch(/pod|not found|invalid/i);
  });
});
