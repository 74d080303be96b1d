import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { defaultMutateConfig, type MutateConfig, mutate } from '../../src/webhook/mutate.js';
import { applyPatch, loadPod } from '../webhook/support.js';

// Red team, session 9c: an app container that mounts the secrets volume read-write.
//
// Attack: the pod declares, in an app container, the very mount the webhook would add but
// without `readOnly: true` (`{ name: vault-secrets, mountPath: /vault/secrets }`). The
// webhook's idempotence check looks at the name and path only, takes it for its own earlier
// mount and leaves it as it is. Likewise a container left out by the
// `vault.ghoststack.io/containers` annotation is skipped before any check, so it can mount
// `vault-secrets` read-write at any path.
//
// Impact: the documented guarantee "read-only in app containers" does not hold. Code in
// the app container can replace a secret file another container reads, pre-create
// `.<file>.tmp-*` names, links and directories in the agent's directory, or fill the shared
// tmpfs so the agent's next write fails. A container the pod deliberately kept away from the
// secrets (the containers annotation) still reads all of them.
//
// Fix: every mount of `vault-secrets` in a container other than the agent is read-only in
// the admitted pod (the webhook refuses, or sets readOnly), whatever the container list says.

const config: MutateConfig = defaultMutateConfig({
  agentImage: 'ghcr.io/ghoststack/vault:0.1.0',
  vaultAddr: 'https://vault.vault-system.svc:8200',
});

const agentNames = new Set(['vault-agent', 'vault-agent-init']);

/** The writable vault-secrets mounts of app containers in the admitted pod (none when refused). */
function writableAppMounts(pod: V1Pod): string[] {
  const result = mutate(pod, config);
  if (!result.allowed) return [];
  const patched = applyPatch(pod, result.patch);
  const all: V1Container[] = [...(patched.spec?.initContainers ?? []), ...(patched.spec?.containers ?? [])];
  return all
    .filter((c) => !agentNames.has(c.name))
    .flatMap((c) =>
      (c.volumeMounts ?? [])
        .filter((m) => m.name === 'vault-secrets' && m.readOnly !== true)
        .map((m) => `${c.name}:${m.mountPath}`),
    );
}

describe('webhook: the secrets volume is read-only in every app container', () => {
  it('an app container that pre-declares the mount without readOnly', () => {
    const pod = loadPod('basic');
    pod.spec!.containers[0]!.volumeMounts = [{ name: 'vault-secrets', mountPath: '/vault/secrets' }];
    expect(writableAppMounts(pod)).toEqual([]);
  });

  it('a container left out by the containers annotation that mounts it itself', () => {
    const pod = loadPod('basic');
    pod.metadata!.annotations!['vault.ghoststack.io/containers'] = 'app';
    pod.spec!.containers.push({
      name: 'log-shipper',
      image: 'registry.example/third-party/shipper:3',
      volumeMounts: [{ name: 'vault-secrets', mountPath: '/scratch' }],
    });
    expect(writableAppMounts(pod)).toEqual([]);
  });
});
