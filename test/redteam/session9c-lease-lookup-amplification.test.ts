import { describe, expect, it } from 'vitest';
import { agentConfig, agentConfigEnv } from '../../src/agent/config.js';
import { type AdmissionReview, admit } from '../../src/webhook/admission.js';
import { defaultMutateConfig, mutate } from '../../src/webhook/mutate.js';
import { applyPatch, loadPod, reviewOf } from '../webhook/support.js';

// Red team, session 9c: the webhook admits more files than the agent accepts, and looks up
// every VaultLease a pod names, one Kubernetes request after another, without a bound.
//
// Attack: a namespace user creates a pod (or a Deployment whose ReplicaSet retries forever)
// with thousands of `lease-<file>` annotations: the annotation keys and values are not even
// validated by the API server before mutating admission, and all may name the same
// VaultLease. admit() issues, sequentially and without deduplication, one GET per name
// (missingLeases) and then one SubjectAccessReview per name (leaseReaders.canGet). The
// agent accepts at most 64 files (`agentConfig.files.max(64)`), so such a pod can never run:
// it is admitted (if the lookups finish) and its agent crash-loops on its configuration.
//
// Impact: one admission turns into thousands of API requests made with the webhook's
// ServiceAccount, long after the API server's 10 s admission timeout has given up on the
// answer (nothing cancels them), and a retrying controller repeats that; the webhook's
// client, its API priority-and-fairness share and the API server are loaded for every other
// namespace's pods. Separately, a pod of 65 files is admitted although its agent refuses its
// configuration: a failure moved from admission (clear message) to a crash-looping pod.
//
// Fix: parseInjectionSpec/mutate refuse more files than the agent accepts (the same 64),
// before any lookup, and the lookups ask about each distinct name once.

const config = defaultMutateConfig({
  agentImage: 'ghcr.io/ghoststack/vault:0.1.0',
  vaultAddr: 'https://vault.vault-system.svc:8200',
});

function annotated(annotations: Record<string, string>): AdmissionReview {
  const pod = loadPod('basic');
  pod.metadata!.annotations = annotations;
  return reviewOf(pod, { uid: 'u-1' });
}

describe('webhook: the work of one admission is bounded', () => {
  it('a pod naming one VaultLease from 3,000 files costs at most 64 lookups of each kind', async () => {
    const annotations: Record<string, string> = {};
    for (let i = 0; i < 3_000; i++) annotations[`vault.ghoststack.io/lease-f${i}`] = 'payments-db';
    let gets = 0;
    let reviews = 0;
    await admit(annotated(annotations), {
      config,
      missingLeases: async (_namespace, names) => {
        gets += names.length;
        return [];
      },
      leaseReaders: {
        canGet: async (_namespace, _serviceAccount, names) => {
          reviews += names.length;
          return [];
        },
        role: 'vault-vaultlease-reader',
      },
    });
    expect({ gets, reviews }).toEqual({ gets: Math.min(gets, 64), reviews: Math.min(reviews, 64) });
  });

  it('a pod is admitted only with an agent configuration the agent accepts (65 files)', () => {
    const pod = loadPod('basic');
    pod.metadata!.annotations = {};
    for (let i = 0; i < 65; i++) pod.metadata!.annotations[`vault.ghoststack.io/credential-f${i}`] = 'c';
    const result = mutate(pod, config);
    if (!result.allowed) return; // refused at admission: fine
    const patched = applyPatch(pod, result.patch);
    const agent = patched.spec?.initContainers?.find((c) => c.name === 'vault-agent');
    const json = JSON.parse(agent?.env?.find((e) => e.name === agentConfigEnv)?.value ?? 'null');
    expect(agentConfig.safeParse(json).success).toBe(true);
  });
});
