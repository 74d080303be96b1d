import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubernetesTokenReviewer } from '../../src/server/token-review.js';
import { type ControlPlane, startControlPlane } from '../support/control-plane.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';
import { reviewerKubeconfig } from '../support/token-reviewer.js';

/** Kubernetes login against a real kube-apiserver's TokenReview. */
describe('POST /v1/auth/kubernetes/login', () => {
  let cp: ControlPlane;
  let core: CoreV1Api;
  let vault: TestVault;
  let reviewerPath: string;

  const mint = async (audience: string, expirationSeconds = 600) => {
    const { status } = await core.createNamespacedServiceAccountToken({
      name: 'app',
      namespace: 'shop',
      body: { spec: { audiences: [audience], expirationSeconds } },
    });
    return status!.token;
  };
  const login = (jwt: string, body: Record<string, unknown> = {}) =>
    vault.call('POST', '/v1/auth/kubernetes/login', { token: null, body: { jwt, ...body } });

  beforeAll(async () => {
    cp = await startControlPlane();
    core = cp.kubeConfig().makeApiClient(CoreV1Api);
    await cp.createNamespace('shop');
    await core.createNamespacedServiceAccount({ namespace: 'shop', body: { metadata: { name: 'app' } } });
    reviewerPath = await reviewerKubeconfig(cp);
    vault = await startTestVault({
      kubernetes: {
        reviewer: await kubernetesTokenReviewer({ kubeconfigPath: reviewerPath }),
        audience: 'vault',
        maxTokenTtlMs: 3_600_000,
      },
    });
  }, 120_000);
  afterAll(async () => {
    await vault?.close();
    await cp?.stop();
  });

  it('maps the ServiceAccount to a workload identity in the namespace tenant, for no longer than its token', async () => {
    const jwt = await mint('vault', 600);
    const result = await login(jwt, { ttl: '2h' });
    expect(result.status).toBe(200);
    expect(result.body).toMatchObject({
      tenant: 'shop',
      identity: { type: 'workload', name: 'system:serviceaccount:shop:app' },
    });
    expect(Date.parse(result.body.expiresAt)).toBeLessThanOrEqual(Date.now() + 600_000);
    const me = await vault.call('GET', '/v1/auth/whoami', { token: result.body.token });
    expect(me.body.identity.name).toBe('system:serviceaccount:shop:app');
    expect(result.text).not.toContain(jwt);
  });

  it('refuses a token for another audience, a forged one and garbage, with 401', async () => {
    for (const jwt of [
      await mint('someone-else'),
      `${(await mint('vault')).slice(0, -4)}AAAA`,
      'not.a.jwt',
    ]) {
      const result = await login(jwt);
      expect(result.status).toBe(401);
      expect(result.body.error.message).toContain('audience "vault"');
    }
  });

  it('runs the server as production does: its kubeconfig may review tokens and nothing else', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(reviewerPath);
    const asServer = kc.makeApiClient(CoreV1Api);
    await expect(asServer.listNamespacedSecret({ namespace: 'shop' })).rejects.toMatchObject({ code: 403 });
    await expect(
      asServer.readNamespacedServiceAccount({ namespace: 'shop', name: 'app' }),
    ).rejects.toMatchObject({
      code: 403,
    });
  });
});
