import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, VersionApi } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ControlPlane, ControlPlaneStartError, startControlPlane } from '../support/control-plane.js';

/** True when something answers HTTP on the URL's port. */
const answers = (url: string): Promise<boolean> =>
  new Promise((resolve) => {
    const req = request(url, { timeout: 2_000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });

describe('the control-plane harness', () => {
  let cp: ControlPlane;

  beforeAll(async () => {
    cp = await startControlPlane();
  });
  afterAll(() => cp?.stop());

  it('serves Kubernetes 1.34 on a loopback https URL', async () => {
    expect(cp.server).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(cp.serverVersion).toMatchObject({ major: '1', minor: '34' });
    expect(cp.serverVersion.gitVersion).toMatch(/^v1\.34\.\d+$/);
    const viaClient = await cp.kubeConfig().makeApiClient(VersionApi).getCode();
    expect(viaClient.gitVersion).toBe(cp.serverVersion.gitVersion);
  });

  it('writes a kubeconfig for an admin in system:masters', async () => {
    expect(readFileSync(cp.kubeconfigPath, 'utf8')).toContain(cp.server);
    const whoami = await cp.kubectl(['auth', 'whoami', '-o', 'json']);
    expect(whoami.code, whoami.stderr).toBe(0);
    const info = JSON.parse(whoami.stdout) as {
      status: { userInfo: { username: string; groups: string[] } };
    };
    expect(info.status.userInfo.username).toBe('vault-test-admin');
    expect(info.status.userInfo.groups).toContain('system:masters');
  });

  it('authorizes with RBAC: a ServiceAccount token without bindings is forbidden', async () => {
    await cp.createNamespace('rbac');
    const core = cp.kubeConfig().makeApiClient(CoreV1Api);
    const { status } = await core.createNamespacedServiceAccountToken({
      name: 'default',
      namespace: 'rbac',
      body: { spec: { audiences: ['vault'], expirationSeconds: 600 } },
    });
    const asServiceAccount = cp.kubeConfigForToken(status!.token).makeApiClient(CoreV1Api);
    await expect(asServiceAccount.listNamespacedSecret({ namespace: 'rbac' })).rejects.toMatchObject({
      code: 403,
    });
  });

  it('reports a failing kubectl command by its exit code, not by throwing', async () => {
    const result = await cp.kubectl(['get', 'configmap', 'does-not-exist', '-n', 'default']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('NotFound');
  });

  it('stops both processes and removes its temporary directory', async () => {
    const { workDir, etcdEndpoint, server } = cp;
    expect(existsSync(workDir)).toBe(true);
    await cp.stop();
    expect(existsSync(workDir)).toBe(false);
    expect(await answers(`${etcdEndpoint}/health`)).toBe(false);
    expect(await answers(server.replace('https:', 'http:'))).toBe(false);
    await cp.stop(); // idempotent
  });
});

describe('a control plane that cannot start', () => {
  it('fails with the last lines of the apiserver log and keeps nothing running', async () => {
    const workDir = await mkdtemp(join(tmpdir(), 'vault-cp-bad-'));
    try {
      const started = startControlPlane({ workDir, apiserverFlags: ['--no-such-flag=1'] });
      await expect(started).rejects.toBeInstanceOf(ControlPlaneStartError);
      await expect(started).rejects.toThrow(/kube-apiserver exited[\s\S]*unknown flag: --no-such-flag/);
      // A given work directory is kept, with the logs to read.
      expect(readFileSync(join(workDir, 'kube-apiserver.log'), 'utf8')).toContain('unknown flag');
      expect(readFileSync(join(workDir, 'pids'), 'utf8').trim()).toBe('');
    } finally {
      await rm(workDir, { recursive: true, force: true });
    }
  });

  it('gives up on a port that stays taken, after retrying', async () => {
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    const { port } = squatter.address() as AddressInfo;
    try {
      // The flag comes after the harness's own --secure-port, so every attempt hits the squatter.
      await expect(startControlPlane({ apiserverFlags: [`--secure-port=${port}`] })).rejects.toThrow(
        /kube-apiserver exited[\s\S]*address already in use/,
      );
    } finally {
      squatter.close();
    }
  });
});
