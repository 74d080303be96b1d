import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { defaultMutateConfig, type MutateConfig, mutate } from '../../src/webhook/mutate.js';
import { applyPatch, loadPod } from '../webhook/support.js';

// Red team, session 9c: an app container that mounts the agent's own volumes.
//
// Attack: the pod author (or whoever controls a Deployment's template) adds a volumeMount of
// the injector's volume names to an app container, e.g. `{ name: vault-token, mountPath:
// /steal }`, without declaring the volume. The API server validates the pod only after
// mutating admission, and the webhook then adds the `vault-token` volume itself, so the
// reference resolves. The same works for `vault-kube-api`, the API token the webhook projects
// for the agent alone when the pod set `automountServiceAccountToken: false`.
//
// Impact: the app container holds the agent's projected Vault token (audience `vault`) and
// can log in to Vault as the pod's ServiceAccount, leasing any credential the policy grants
// that ServiceAccount, not only the files the pod's annotations name, and without the agent's
// revocation on exit. It also gets the Kubernetes API token that the pod explicitly refused
// for its app containers. The webhook refuses `shareProcessNamespace` for exactly this reason
// ("the projected Vault token and the Kubernetes API token, which are mounted into the agent
// alone"), but the direct mount is admitted.
//
// Fix: the webhook refuses (or never produces) a pod in which any container other than its
// own agent mounts `vault-token` or `vault-kube-api`.

const config: MutateConfig = defaultMutateConfig({
  agentImage: 'ghcr.io/ghoststack/vault:0.1.0',
  vaultAddr: 'https://vault.vault-system.svc:8200',
});

const agentNames = new Set(['vault-agent', 'vault-agent-init']);
const appContainers = (pod: V1Pod): V1Container[] =>
  [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].filter(
    (c) => !agentNames.has(c.name),
  );

/** Admitted pods only: a refusal passes. */
function appMountsOfAdmitted(pod: V1Pod, volume: string): string[] {
  const result = mutate(pod, config);
  if (!result.allowed) return [];
  const patched = applyPatch(pod, result.patch);
  return appContainers(patched).flatMap((c) =>
    (c.volumeMounts ?? []).filter((m) => m.name === volume).map((m) => `${c.name}:${m.mountPath}`),
  );
}

describe('webhook: app containers never get the agent tokens', () => {
  it("an app container that names the agent's Vault-token volume is refused", () => {
    const pod = loadPod('basic');
    pod.spec!.containers[0]!.volumeMounts = [{ name: 'vault-token', mountPath: '/steal', readOnly: true }];
    expect(appMountsOfAdmitted(pod, 'vault-token')).toEqual([]);
  });

  it('an app init container that names it is refused too', () => {
    const pod = loadPod('basic');
    pod.spec!.initContainers = [
      {
        name: 'exfil',
        image: 'registry.example/curl:1',
        volumeMounts: [{ name: 'vault-token', mountPath: '/t' }],
      },
    ];
    expect(appMountsOfAdmitted(pod, 'vault-token')).toEqual([]);
  });

  it('with automountServiceAccountToken: false, an app container cannot mount the API token made for the agent', () => {
    const pod = loadPod('basic');
    pod.metadata!.annotations = { 'vault.ghoststack.io/lease-tls.key': 'payments-tls' };
    pod.spec!.automountServiceAccountToken = false;
    pod.spec!.containers[0]!.volumeMounts = [{ name: 'vault-kube-api', mountPath: '/kube' }];
    expect(appMountsOfAdmitted(pod, 'vault-kube-api')).toEqual([]);
  });
});
