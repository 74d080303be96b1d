import type { V1Container, V1Pod, V1PodSecurityContext } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { agentConfig, agentConfigEnv } from '../../src/agent/config.js';
import { defaultMutateConfig, type MutateConfig, mutate } from '../../src/webhook/mutate.js';
import { applyPatch, loadPod } from './support.js';

const config: MutateConfig = defaultMutateConfig({
  agentImage: 'ghcr.io/ghoststack/vault:0.1.0',
  vaultAddr: 'https://vault.vault-system.svc:8200',
  namespacesRefused: ['kube-system', 'kube-public', 'kube-node-lease', 'vault-system'],
});
const legacy: MutateConfig = { ...config, serverVersion: { major: 1, minor: 28 } };

function injected(pod: V1Pod, cfg = config): V1Pod {
  const result = mutate(pod, cfg);
  if (!result.allowed) throw new Error(`refused: ${result.message}`);
  return applyPatch(pod, result.patch);
}

const container = (pod: V1Pod, name: string): V1Container | undefined =>
  [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find((c) => c.name === name);

const agentConfigOf = (c: V1Container | undefined) =>
  agentConfig.parse(JSON.parse(c?.env?.find((e) => e.name === agentConfigEnv)?.value ?? 'null'));

describe('mutate: an opted-in pod on a 1.29+ cluster', () => {
  const pod = injected(loadPod('basic'));

  it('adds the in-memory volume and the projected token with audience vault and a 10-minute expiry', () => {
    expect(pod.spec?.volumes).toEqual([
      { name: 'vault-secrets', emptyDir: { medium: 'Memory', sizeLimit: '8Mi' } },
      {
        name: 'vault-token',
        projected: {
          sources: [{ serviceAccountToken: { audience: 'vault', expirationSeconds: 600, path: 'token' } }],
        },
      },
    ]);
  });

  it('runs the agent as a native sidecar first among the init containers, with a startup probe', () => {
    const agent = pod.spec?.initContainers?.[0];
    expect(agent?.name).toBe('vault-agent');
    expect(agent?.restartPolicy).toBe('Always');
    expect(agent?.args).toEqual(['agent']);
    expect(agent?.startupProbe?.httpGet).toEqual({ path: '/healthz', port: 8099 });
    expect(pod.spec?.containers.map((c) => c.name)).toEqual(['app']);
  });

  it('hardens the agent and gives it small resources', () => {
    const agent = container(pod, 'vault-agent');
    expect(agent?.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(agent?.resources).toEqual({
      requests: { cpu: '10m', memory: '48Mi' },
      limits: { cpu: '200m', memory: '128Mi' },
    });
  });

  it('mounts the volume read-only in the app and read-write plus the token in the agent', () => {
    expect(container(pod, 'app')?.volumeMounts).toEqual([
      { name: 'vault-secrets', mountPath: '/vault/secrets', readOnly: true },
    ]);
    expect(container(pod, 'vault-agent')?.volumeMounts).toEqual([
      { name: 'vault-secrets', mountPath: '/vault/secrets' },
      { name: 'vault-token', mountPath: '/var/run/secrets/vault.ghoststack.io', readOnly: true },
    ]);
  });

  it("passes the agent its files as JSON, with the pod's namespace", () => {
    const agent = container(pod, 'vault-agent');
    expect(agentConfigOf(agent)).toEqual({
      files: [{ name: 'stripe-key', credential: 'stripe-api-key', format: 'raw', mode: 0o400 }],
      directory: '/vault/secrets',
      tokenPath: '/var/run/secrets/vault.ghoststack.io/token',
      healthPort: 8099,
      namespace: 'shop',
    });
    expect(agent?.env?.find((e) => e.name === 'VAULT_ADDR')?.value).toBe(
      'https://vault.vault-system.svc:8200',
    );
  });

  it('marks the pod injected and keeps its labels', () => {
    expect(pod.metadata?.annotations?.['vault.ghoststack.io/status']).toBe('injected');
    expect(pod.metadata?.labels?.app).toBe('shop');
  });

  it('returns an empty patch on reinvocation', () => {
    expect(mutate(pod, config)).toEqual({ allowed: true, patch: [] });
  });

  it('mounts a container another webhook added after the first pass, and nothing else', () => {
    const later = structuredClone(pod);
    later.spec?.containers.push({ name: 'late', image: 'registry.example/late:1', volumeMounts: [] });
    const result = mutate(later, config);
    expect(result).toEqual({
      allowed: true,
      patch: [
        {
          op: 'add',
          path: '/spec/containers/1/volumeMounts/-',
          value: { name: 'vault-secrets', mountPath: '/vault/secrets', readOnly: true },
        },
      ],
    });
  });

  it('tolerates the defaults the API server adds between invocations', () => {
    const defaulted = structuredClone(pod);
    const token = defaulted.spec?.volumes?.find((v) => v.name === 'vault-token');
    if (token?.projected) token.projected.defaultMode = 420;
    const agent = container(defaulted, 'vault-agent');
    if (agent) agent.terminationMessagePath = '/dev/termination-log';
    expect(mutate(defaulted, config)).toEqual({ allowed: true, patch: [] });
  });
});

describe('mutate: a pod with volumes, init containers and many files', () => {
  const original = loadPod('full');
  const pod = injected(original);

  it('keeps existing volumes and appends its own', () => {
    expect(pod.spec?.volumes?.map((v) => v.name)).toEqual([
      'config',
      'kube-api-access-abcde',
      'vault-secrets',
      'vault-token',
    ]);
  });

  it('puts the agent before the existing init container, which gets the mount too', () => {
    expect(pod.spec?.initContainers?.map((c) => c.name)).toEqual(['vault-agent', 'migrate']);
    for (const name of ['migrate', 'api', 'worker']) {
      expect(container(pod, name)?.volumeMounts).toContainEqual({
        name: 'vault-secrets',
        mountPath: '/run/secrets/app',
        readOnly: true,
      });
    }
    expect(container(pod, 'api')?.volumeMounts?.[0]).toEqual({ name: 'config', mountPath: '/etc/payments' });
  });

  it("runs the agent as the pod's user so mode 0400 lets the app read its files", () => {
    const security = container(pod, 'vault-agent')?.securityContext;
    expect([security?.runAsUser, security?.runAsGroup]).toEqual([1000, 3000]);
  });

  it('reads every file annotation, sorted by file name', () => {
    const agent = container(pod, 'vault-agent');
    expect(agentConfigOf(agent).files).toEqual([
      {
        name: 'db.env',
        credential: 'payments-db-url',
        format: 'env',
        envName: 'DATABASE_URL',
        mode: 0o400,
        ttl: '15m',
        maxTtl: '24h',
      },
      { name: 'stripe.json', credential: 'stripe-api-key', format: 'json', mode: 0o440 },
      { name: 'tls.key', lease: 'payments-tls', format: 'raw', mode: 0o400 },
    ]);
    expect(agent?.env?.find((e) => e.name === 'VAULT_LOG_LEVEL')?.value).toBe('debug');
    expect(agent?.resources?.limits).toEqual({ cpu: '200m', memory: '96Mi' });
  });

  it('gives the agent the Kubernetes API token mount because a file comes from a VaultLease', () => {
    expect(container(pod, 'vault-agent')?.volumeMounts).toContainEqual({
      name: 'kube-api-access-abcde',
      mountPath: '/var/run/secrets/kubernetes.io/serviceaccount',
      readOnly: true,
    });
  });

  it('keeps foreign annotations and adds the status marker', () => {
    expect(pod.metadata?.annotations?.['example.com/owner']).toBe('team-payments');
    expect(pod.metadata?.annotations?.['vault.ghoststack.io/status']).toBe('injected');
  });

  it('does not modify its input and is idempotent', () => {
    expect(original.spec?.initContainers?.length).toBe(1);
    expect(mutate(pod, config)).toEqual({ allowed: true, patch: [] });
  });

  it('mounts only the containers named by the containers annotation', () => {
    const limited = structuredClone(original);
    limited.metadata!.annotations!['vault.ghoststack.io/containers'] = 'api';
    const out = injected(limited);
    expect(container(out, 'api')?.volumeMounts?.some((m) => m.name === 'vault-secrets')).toBe(true);
    expect(container(out, 'worker')?.volumeMounts).toBeUndefined();
    expect(container(out, 'migrate')?.volumeMounts?.some((m) => m.name === 'vault-secrets')).toBe(false);
  });
});

describe('mutate: clusters older than 1.29', () => {
  const pod = injected(loadPod('basic'), legacy);

  it('adds a prefetching init container and a regular sidecar instead of a native sidecar', () => {
    const init = pod.spec?.initContainers ?? [];
    expect(init.map((c) => c.name)).toEqual(['vault-agent-init']);
    expect(init[0]?.args).toEqual(['agent', '--once']);
    expect(init[0]?.restartPolicy).toBeUndefined();
    expect(pod.spec?.containers.map((c) => c.name)).toEqual(['app', 'vault-agent']);
    expect(container(pod, 'vault-agent')?.startupProbe).toBeUndefined();
  });

  it('does not mount the volume read-only into its own containers, and is idempotent', () => {
    expect(container(pod, 'vault-agent')?.volumeMounts?.[0]).toEqual({
      name: 'vault-secrets',
      mountPath: '/vault/secrets',
    });
    expect(mutate(pod, legacy)).toEqual({ allowed: true, patch: [] });
  });
});

describe("mutate: the Vault API's CA for the agent", () => {
  const caPem = '-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n';
  const envOf = (c: V1Container | undefined) => (c?.env ?? []).map((e) => e.name);
  const caOf = (c: V1Container | undefined) => c?.env?.find((e) => e.name === 'VAULT_CACERT_PEM')?.value;

  const cases: Array<{ name: string; cfg: MutateConfig; agents: string[]; ca: string | undefined }> = [
    { name: 'no CA configured (Node roots)', cfg: config, agents: ['vault-agent'], ca: undefined },
    {
      name: 'a CA, native sidecar',
      cfg: { ...config, vaultCaPem: caPem },
      agents: ['vault-agent'],
      ca: caPem,
    },
    {
      name: 'a CA, init container and sidecar before 1.29',
      cfg: { ...legacy, vaultCaPem: caPem },
      agents: ['vault-agent-init', 'vault-agent'],
      ca: caPem,
    },
    {
      name: 'an empty CA is no CA',
      cfg: { ...config, vaultCaPem: '' },
      agents: ['vault-agent'],
      ca: undefined,
    },
  ];

  for (const { name, cfg, agents, ca } of cases) {
    it(`${name}: every agent container ${ca ? 'gets' : 'lacks'} VAULT_CACERT_PEM, and reinvocation adds nothing`, () => {
      const pod = injected(loadPod('full'), cfg);
      for (const agentName of agents) {
        const agent = container(pod, agentName);
        expect(agent, agentName).toBeDefined();
        expect(caOf(agent)).toBe(ca);
        // Beside the address it belongs to; nothing else in the environment changes.
        const expected = ['VAULT_ADDR', ...(ca ? ['VAULT_CACERT_PEM'] : []), agentConfigEnv];
        expect(envOf(agent).slice(0, expected.length)).toEqual(expected);
      }
      const apps = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].filter(
        (c) => !agents.includes(c.name),
      );
      expect(apps.map((c) => c.name)).toEqual(['migrate', 'api', 'worker']);
      for (const app of apps)
        expect(app.env?.some((e) => e.name === 'VAULT_CACERT_PEM') ?? false).toBe(false);
      expect(mutate(pod, cfg)).toEqual({ allowed: true, patch: [] });
    });
  }
});

describe('mutate: pods that are left alone or refused', () => {
  it('leaves a pod without the label untouched, annotations or not', () => {
    expect(mutate(loadPod('unlabelled'), config)).toEqual({ allowed: true, patch: [] });
  });

  it('leaves a pod whose label is not "true" untouched', () => {
    const pod = loadPod('basic');
    pod.metadata!.labels!['vault.ghoststack.io/inject'] = 'false';
    expect(mutate(pod, config)).toEqual({ allowed: true, patch: [] });
  });

  it.each(['kube-system', 'vault-system'])('refuses pods in %s', (namespace) => {
    const pod = loadPod('system-namespace');
    pod.metadata!.namespace = namespace;
    const result = mutate(pod, config);
    expect(result.allowed).toBe(false);
    if (!result.allowed) expect(result.message).toContain(`namespace "${namespace}"`);
  });

  it('refuses bad annotations with a message naming each one and what is wrong', () => {
    const result = mutate(loadPod('bad-annotations'), config);
    expect(result.allowed).toBe(false);
    if (result.allowed) return;
    expect(result.message).toContain('unknown annotation "vault.ghoststack.io/credentail-db"');
    expect(result.message).toContain(
      'annotation "vault.ghoststack.io/format-api": "yaml" is not one of raw, env, json',
    );
    expect(result.message).toContain('"vault.ghoststack.io/mode-orphan" names file "orphan", but no');
  });

  it.each([
    ['vault.ghoststack.io/ttl-api', 'soon', '"soon" is not a duration'],
    ['vault.ghoststack.io/mode-api', '0999', '"0999" is not an octal mode'],
    [
      'vault.ghoststack.io/credential-api',
      'bad name!',
      'annotation "vault.ghoststack.io/credential-api": a name is',
    ],
    ['vault.ghoststack.io/lease-api', 'other', 'has both'],
    [
      'vault.ghoststack.io/env-name-api',
      '1BAD',
      'annotation "vault.ghoststack.io/env-name-api": a variable name',
    ],
    ['vault.ghoststack.io/credential-..', 'x', '".." is not a file name'],
    ['vault.ghoststack.io/mount-path', 'relative/path', 'is not an absolute path'],
    ['vault.ghoststack.io/mount-path', '/a/../etc', 'is not an absolute path'],
    ['vault.ghoststack.io/containers', 'nope', 'names "nope", which the pod does not have'],
    ['vault.ghoststack.io/agent-run-as-user', '0', 'never runs as root'],
    ['vault.ghoststack.io/agent-cpu-limit', 'lots', 'is not a quantity'],
    ['vault.ghoststack.io/agent-log-level', 'loud', 'is not one of debug, info, warn, error'],
  ])('refuses %s: %s', (key, value, expected) => {
    const pod = loadPod('basic');
    pod.metadata!.annotations = { 'vault.ghoststack.io/credential-api': 'api-key', [key]: value };
    const result = mutate(pod, config);
    expect(result.allowed).toBe(false);
    if (!result.allowed) expect(result.message).toContain(expected);
  });

  it('refuses a lease-backed file with a TTL, which the VaultLease decides', () => {
    const pod = loadPod('basic');
    pod.metadata!.annotations = {
      'vault.ghoststack.io/lease-tls': 'tls',
      'vault.ghoststack.io/ttl-tls': '1h',
    };
    const result = mutate(pod, config);
    expect(result.allowed).toBe(false);
    if (!result.allowed) expect(result.message).toContain('comes from a VaultLease');
  });

  it('refuses a labelled pod without any file annotation', () => {
    const pod = loadPod('basic');
    pod.metadata!.annotations = {};
    const result = mutate(pod, config);
    expect(result.allowed).toBe(false);
    if (!result.allowed) expect(result.message).toContain('has no "vault.ghoststack.io/credential-<file>"');
  });

  it('refuses a pod that already uses the volume name or the mount path for something else', () => {
    const pod = loadPod('basic');
    pod.spec!.volumes = [{ name: 'vault-secrets', configMap: { name: 'x' } }];
    const result = mutate(pod, config);
    expect(result.allowed).toBe(false);
    if (!result.allowed) expect(result.message).toContain('already has a volume named "vault-secrets"');

    const clash = loadPod('basic');
    clash.spec!.volumes = [{ name: 'cfg', configMap: { name: 'x' } }];
    clash.spec!.containers[0]!.volumeMounts = [{ name: 'cfg', mountPath: '/vault/secrets' }];
    const second = mutate(clash, config);
    expect(second.allowed).toBe(false);
    if (!second.allowed)
      expect(second.message).toContain('container "app" already mounts "cfg" at "/vault/secrets"');
  });
});

describe('mutate: a pod that shares its process namespace', () => {
  it("is refused: its app containers could read the agent's tokens through /proc/<pid>/root", () => {
    const pod = loadPod('basic');
    pod.spec!.shareProcessNamespace = true;
    const result = mutate(pod, config);
    expect(result.allowed).toBe(false);
    if (!result.allowed) expect(result.message).toContain('shareProcessNamespace');
    // The default (false) and an explicit false are admitted.
    pod.spec!.shareProcessNamespace = false;
    expect(mutate(pod, config).allowed).toBe(true);
  });
});

describe('mutate: who can read the files (agent uid, file group and mode, admission warnings)', () => {
  /** `basic` with a pod securityContext and per-container users. */
  const podWith = (
    security: V1PodSecurityContext | undefined,
    containerUsers: (number | undefined)[] = [undefined],
    annotations: Record<string, string> = {},
  ): V1Pod => {
    const pod = loadPod('basic');
    pod.spec!.securityContext = security;
    pod.spec!.containers = containerUsers.map((uid, i) => ({
      name: i === 0 ? 'app' : `app${i}`,
      image: 'registry.example/shop:1.0',
      ...(uid === undefined ? {} : { securityContext: { runAsUser: uid } }),
    }));
    Object.assign(pod.metadata!.annotations!, annotations);
    return pod;
  };
  const outcome = (pod: V1Pod) => {
    const result = mutate(pod, config);
    if (!result.allowed) throw new Error(result.message);
    const out = applyPatch(pod, result.patch);
    const agent = container(out, 'vault-agent');
    const files = agentConfigOf(agent);
    return {
      uid: agent?.securityContext?.runAsUser,
      gid: agent?.securityContext?.runAsGroup,
      group: files.group,
      modes: files.files.map((f) => f.mode),
      warnings: result.warnings ?? [],
    };
  };

  it("without runAsUser or fsGroup: 0400 files of uid 65532, and a warning that the app's image user may not read them", () => {
    const { uid, group, modes, warnings } = outcome(podWith(undefined));
    expect([uid, group, modes]).toEqual([65532, undefined, [0o400]]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('container "app"');
    expect(warnings[0]).toContain('stripe-key');
    expect(warnings[0]).toContain('fsGroup');
    expect(warnings[0]!.length).toBeLessThanOrEqual(256);
  });

  it('with an fsGroup: group-readable 0440 files in that group, no warning', () => {
    expect(outcome(podWith({ fsGroup: 2000 }))).toEqual({
      uid: 65532,
      gid: 65532,
      group: 2000,
      modes: [0o440],
      warnings: [],
    });
  });

  it('with an fsGroup but an explicit mode 0400: a warning, the mode is kept', () => {
    const { modes, warnings } = outcome(
      podWith({ fsGroup: 2000 }, [undefined], { 'vault.ghoststack.io/mode-stripe-key': '0400' }),
    );
    expect(modes).toEqual([0o400]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('mode 0400');
  });

  it('every app container declares the same runAsUser: the agent runs as it, 0400, no warning', () => {
    expect(outcome(podWith(undefined, [1001, 1001]))).toMatchObject({
      uid: 1001,
      modes: [0o400],
      warnings: [],
    });
  });

  it('app containers of different users without an fsGroup: a warning for the one that cannot read', () => {
    const { uid, warnings } = outcome(podWith({ runAsUser: 1000 }, [undefined, 2000]));
    expect(uid).toBe(1000);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('container "app1" runs as uid 2000');
  });

  it('app containers of different users with an fsGroup: 0440 in the fsGroup, no warning', () => {
    expect(outcome(podWith({ runAsUser: 1000, fsGroup: 3000 }, [undefined, 2000]))).toMatchObject({
      uid: 1000,
      group: 3000,
      modes: [0o440],
      warnings: [],
    });
  });

  it('a world-readable mode needs no warning', () => {
    const { warnings } = outcome(
      podWith(undefined, [undefined], { 'vault.ghoststack.io/mode-stripe-key': '0444' }),
    );
    expect(warnings).toEqual([]);
  });

  it('warns only on the first pass, not on reinvocation', () => {
    const pod = podWith(undefined);
    const first = mutate(pod, config);
    if (!first.allowed) throw new Error(first.message);
    expect(first.warnings?.length).toBe(1);
    expect(mutate(applyPatch(pod, first.patch), config)).toEqual({ allowed: true, patch: [] });
  });
});

describe('mutate: lease-<file> files without the pod API token (automountServiceAccountToken: false)', () => {
  const apiPath = '/var/run/secrets/kubernetes.io/serviceaccount';
  const leased = (annotations: Record<string, string>) => {
    const pod = loadPod('basic');
    pod.metadata!.annotations = annotations;
    pod.spec!.automountServiceAccountToken = false;
    pod.spec!.securityContext = { fsGroup: 2000 };
    return pod;
  };

  it('gives the agent alone a projected API token, the cluster CA and the namespace', () => {
    const pod = injected(leased({ 'vault.ghoststack.io/lease-tls.key': 'payments-tls' }));
    const agent = container(pod, 'vault-agent');
    const mount = agent?.volumeMounts?.find((m) => m.mountPath === apiPath);
    expect(mount).toEqual({ name: 'vault-kube-api', mountPath: apiPath, readOnly: true });
    expect(pod.spec?.volumes?.find((v) => v.name === 'vault-kube-api')).toEqual({
      name: 'vault-kube-api',
      projected: {
        sources: [
          { serviceAccountToken: { path: 'token', expirationSeconds: 3607 } },
          { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
          { downwardAPI: { items: [{ path: 'namespace', fieldRef: { fieldPath: 'metadata.namespace' } }] } },
        ],
      },
    });
    expect(container(pod, 'app')?.volumeMounts?.map((m) => m.mountPath)).toEqual(['/vault/secrets']);
    expect(mutate(pod, config)).toEqual({ allowed: true, patch: [] });
  });

  it('adds nothing of the kind for credential files, which need no Kubernetes API', () => {
    const pod = injected(leased({ 'vault.ghoststack.io/credential-db': 'db-url' }));
    expect(pod.spec?.volumes?.map((v) => v.name)).toEqual(['vault-secrets', 'vault-token']);
    expect(container(pod, 'vault-agent')?.volumeMounts?.some((m) => m.mountPath === apiPath)).toBe(false);
  });
});
