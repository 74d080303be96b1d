import type { V1EphemeralContainer, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { type AdmissionReview, admit } from '../../src/webhook/admission.js';
import { webhookConfiguration } from '../../src/webhook/configuration.js';
import { defaultMutateConfig, type MutateConfig, mutate } from '../../src/webhook/mutate.js';
import { applyPatch, loadPod, reviewOf } from '../webhook/support.js';

// Red team, session 9c: ephemeral containers are never reviewed.
//
// Attack: after an injected pod is running, a namespace user with `update` on
// `pods/ephemeralcontainers` (what `kubectl debug` uses) adds an ephemeral container to it
// that either mounts the agent's volumes (`vault-token`, `vault-secrets` read-write) or sets
// `targetContainerName: vault-agent`, which puts it in the agent's process namespace, so it can
// open /proc/<agent pid>/root and /proc/<agent pid>/environ. The webhook's rules cover only
// CREATE of pods, so the API server never asks it; and were it asked, admit() would run
// mutate(), find the pod already injected and allow it unchanged.
//
// Impact: everything the webhook refuses at CREATE, `shareProcessNamespace: true` above all
// ("would let every container of the pod read the agent's tokens through /proc/<pid>/root"),
// is available afterwards: the agent's projected Vault token (log in as the pod's
// ServiceAccount and lease whatever its policy allows, with no agent revoking it), the
// agent's Kubernetes API token, and a writable secrets volume.
//
// Fix: the webhook configuration (src/webhook/configuration.ts and the chart's
// webhook-configuration.yaml) also sends UPDATE of `pods/ephemeralcontainers` for
// labelled pods, and the webhook refuses an ephemeral container that targets the agent or
// mounts `vault-token`, `vault-kube-api` or a writable `vault-secrets`.

const config: MutateConfig = defaultMutateConfig({
  agentImage: 'ghcr.io/ghoststack/vault:0.1.0',
  vaultAddr: 'https://vault.vault-system.svc:8200',
});

function runningInjectedPod(): V1Pod {
  const pod = loadPod('basic');
  const result = mutate(pod, config);
  if (!result.allowed) throw new Error(result.message);
  return applyPatch(pod, result.patch);
}

function ephemeralUpdate(pod: V1Pod, container: V1EphemeralContainer): AdmissionReview {
  const updated = structuredClone(pod);
  updated.spec!.ephemeralContainers = [container];
  return reviewOf(updated, { uid: 'e-1', operation: 'UPDATE' });
}

describe('webhook: ephemeral containers get no more than app containers', () => {
  it('the webhook configuration sends ephemeral-container updates of labelled pods', () => {
    const rules = webhookConfiguration({ namespace: 'vault-system', url: 'https://127.0.0.1:1/mutate' })
      .webhooks?.[0]?.rules;
    const covered = (rules ?? []).some(
      (r) => r.resources?.includes('pods/ephemeralcontainers') && r.operations?.includes('UPDATE'),
    );
    expect(covered).toBe(true);
  });

  it("an ephemeral container that mounts the agent's Vault token is refused", async () => {
    const review = ephemeralUpdate(runningInjectedPod(), {
      name: 'debugger',
      image: 'registry.example/busybox:1',
      volumeMounts: [
        { name: 'vault-token', mountPath: '/t' },
        { name: 'vault-secrets', mountPath: '/s' },
      ],
    });
    const { response } = await admit(review, { config });
    expect(response.allowed).toBe(false);
  });

  it("an ephemeral container in the agent's process namespace is refused", async () => {
    const review = ephemeralUpdate(runningInjectedPod(), {
      name: 'debugger',
      image: 'registry.example/busybox:1',
      targetContainerName: 'vault-agent',
    });
    const { response } = await admit(review, { config });
    expect(response.allowed).toBe(false);
  });
});
