/**
 * Can the app read what the injected agent writes? Each case takes a pod, lets mutate() decide
 * the agent's uid, gid, file group and mode, runs the file sink as that agent (with the pod's
 * fsGroup as a supplementary group, as the kubelet does) on tmpfs, then reads the file as the
 * app container's user, a different non-root uid. A read fails exactly when the webhook warned.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { V1Pod, V1PodSecurityContext } from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { agentConfig, agentConfigEnv } from '../../src/agent/config.js';
import { defaultMutateConfig, mutate } from '../../src/webhook/mutate.js';
import { canSwitchUser, podVolume, readAs, runAs } from '../support/as-user.js';
import { applyPatch } from '../webhook/support.js';

const ops = fileURLToPath(new URL('../support/as-user-ops.ts', import.meta.url));
const config = defaultMutateConfig({ agentImage: 'vault:test', vaultAddr: 'http://vault:8200' });
/** What an image's `USER 1001` gives when the pod does not say. */
const imageUser = 1001;
const volumes: string[] = [];
afterAll(() => {
  for (const dir of volumes) rmSync(dir, { recursive: true, force: true });
});

const pod = (security: V1PodSecurityContext | undefined, appUser?: number): V1Pod => ({
  metadata: {
    name: 'shop',
    namespace: 'shop',
    labels: { 'vault.ghoststack.io/inject': 'true' },
    annotations: { 'vault.ghoststack.io/credential-api.key': 'api-key' },
  },
  spec: {
    ...(security ? { securityContext: security } : {}),
    containers: [
      {
        name: 'app',
        image: 'registry.example/shop:1',
        ...(appUser === undefined ? {} : { securityContext: { runAsUser: appUser } }),
      },
    ],
  },
});

async function writeAndRead(input: V1Pod) {
  const result = mutate(input, config);
  if (!result.allowed) throw new Error(result.message);
  const out = applyPatch(input, result.patch);
  const agent = out.spec?.initContainers?.find((c) => c.name === 'vault-agent');
  const files = agentConfig.parse(
    JSON.parse(agent?.env?.find((e) => e.name === agentConfigEnv)?.value ?? ''),
  );
  const security = out.spec?.securityContext;
  const fsGroup = security?.fsGroup;
  const groups = fsGroup === undefined ? [] : [fsGroup];
  const dir = podVolume(fsGroup === undefined ? {} : { fsGroup });
  volumes.push(dir);

  const agentUser = {
    uid: agent!.securityContext!.runAsUser!,
    gid: agent!.securityContext!.runAsGroup!,
    groups,
  };
  const file = files.files[0]!;
  const write = await runAs(agentUser, ops, 'sinkWrite', [
    dir,
    file.name,
    'sk_live_app_reads',
    file.mode,
    files.group,
  ]);
  expect(JSON.parse(write.stdout), write.stderr).toEqual({ ok: true });

  const app = out.spec!.containers[0]!;
  const appUid = app.securityContext?.runAsUser ?? security?.runAsUser ?? imageUser;
  const appUser = { uid: appUid, gid: security?.runAsGroup ?? appUid, groups };
  const read = await readAs(appUser, join(dir, file.name));
  return { agentUser, appUser, mode: file.mode, warnings: result.warnings ?? [], read };
}

describe.runIf(canSwitchUser())(
  'files the injected agent writes, read by the app as another non-root uid',
  () => {
    it('with an fsGroup: 0440 in that group, readable, no warning', async () => {
      const { agentUser, appUser, mode, warnings, read } = await writeAndRead(pod({ fsGroup: 2000 }));
      expect(agentUser.uid).not.toBe(appUser.uid);
      expect(mode).toBe(0o440);
      expect(warnings).toEqual([]);
      expect(read).toEqual({ content: 'sk_live_app_reads' });
    });

    it('with every container at one runAsUser: the agent runs as it, 0400, readable, no warning', async () => {
      const { agentUser, appUser, mode, warnings, read } = await writeAndRead(pod(undefined, 1001));
      expect([agentUser.uid, appUser.uid, mode]).toEqual([1001, 1001, 0o400]);
      expect(warnings).toEqual([]);
      expect(read).toEqual({ content: 'sk_live_app_reads' });
    });

    it('with neither: unreadable by the image user, and the webhook said so', async () => {
      const { agentUser, appUser, warnings, read } = await writeAndRead(pod(undefined));
      expect([agentUser.uid, appUser.uid]).toEqual([65532, imageUser]);
      expect(read).toEqual({ error: 'EACCES' });
      expect(warnings).toEqual([
        expect.stringContaining('container "app" (uid from its image) may not read api.key'),
      ]);
    });
  },
);
