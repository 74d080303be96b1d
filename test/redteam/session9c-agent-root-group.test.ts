import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { defaultMutateConfig, type MutateConfig, mutate } from '../../src/webhook/mutate.js';
import { applyPatch, loadPod } from '../webhook/support.js';

// Red team, session 9c: the agent runs with gid 0 when the pod says so.
//
// Attack: the `agent-run-as-group` annotation refuses 0 ("the agent never runs as root"), but
// when it is absent the agent's gid is taken from the pod's `securityContext.runAsGroup`, or
// from the group every mounting container shares, unchecked. A pod with `runAsGroup: 0` (or
// containers that all say `runAsGroup: 0`) gets an agent running as group root.
//
// Impact (low): the agent, which holds the pod's Vault token and every secret of the pod,
// runs with the root group, which the webhook's own annotation rule forbids ("the agent never
// runs as root"); its files get group 0 when no fsGroup is set, and it can use whatever group-0
// permissions its filesystem has. The uid is protected against the same inheritance (0 is
// skipped for runAsUser), the gid is not.
//
// Fix: the agent's gid is never 0, whichever source it comes from (refuse, or fall back to
// the agent's uid as for a missing group).

const config: MutateConfig = defaultMutateConfig({
  agentImage: 'ghcr.io/ghoststack/vault:0.1.0',
  vaultAddr: 'https://vault.vault-system.svc:8200',
});

/** The agent's runAsGroup in the admitted pod; undefined when refused. */
function agentGroup(pod: V1Pod): number | undefined {
  const result = mutate(pod, config);
  if (!result.allowed) return undefined;
  const patched = applyPatch(pod, result.patch);
  return patched.spec?.initContainers?.find((c) => c.name === 'vault-agent')?.securityContext?.runAsGroup;
}

describe('webhook: the agent never runs as group root', () => {
  it("with the pod's runAsGroup: 0", () => {
    const pod = loadPod('basic');
    pod.spec!.securityContext = { runAsUser: 1000, runAsGroup: 0 };
    expect(agentGroup(pod)).not.toBe(0);
  });

  it('with every app container at runAsGroup: 0', () => {
    const pod = loadPod('basic');
    pod.spec!.containers[0]!.securityContext = { runAsUser: 1000, runAsGroup: 0 };
    expect(agentGroup(pod)).not.toBe(0);
  });

  it('the annotation already refuses 0 (control)', () => {
    const pod = loadPod('basic');
    pod.metadata!.annotations!['vault.ghoststack.io/agent-run-as-group'] = '0';
    expect(mutate(pod, config).allowed).toBe(false);
  });
});
