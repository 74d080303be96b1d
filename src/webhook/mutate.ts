import type {
  V1Container,
  V1EnvVar,
  V1EphemeralContainer,
  V1Pod,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
import { type AgentConfigInput, agentCaPemEnv, agentClusterEnv, agentConfigEnv } from '../agent/config.js';
import { injectLabel, injectLabelValue, podAnnotations, statusInjected } from './annotations.js';
import { decideFileAccess, type FileAccess } from './file-access.js';
import { type InjectionSpec, parseInjectionSpec } from './injection-spec.js';

/**
 * The whole injection decision: a pure function of the pod and the webhook's configuration,
 * returning a JSON Patch. It only adds what is missing, so a second pass over its own output
 * (reinvocation) returns an empty patch, and a container another webhook added later still
 * gets its mount.
 */

export interface JsonPatchOp {
  op: 'add' | 'replace' | 'remove';
  path: string;
  value?: unknown;
}

export type MutateResult =
  | {
      allowed: true;
      patch: JsonPatchOp[];
      /** For the user (AdmissionReview `warnings`): the pod is admitted, but may not work as meant. */
      warnings?: string[];
    }
  | { allowed: false; message: string };

export interface AgentResources {
  cpuRequest: string;
  cpuLimit: string;
  memoryRequest: string;
  memoryLimit: string;
}

export interface MutateConfig {
  agentImage: string;
  agentImagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  /** The Vault API address as seen from pods. */
  vaultAddr: string;
  /**
   * The PEM CA bundle agents trust for an https `vaultAddr`, passed in their environment
   * (public, and needs no object in the pod's namespace). Undefined: Node's built-in roots.
   */
  vaultCaPem?: string;
  /**
   * The name Vault knows this cluster by: agents log in naming it, and their tenant is
   * `<cluster>.<namespace>`. Undefined: the namespace is the tenant.
   */
  vaultCluster?: string;
  /** The cluster's version: native sidecars need 1.29 or later. */
  serverVersion: { major: number; minor: number };
  resources: AgentResources;
  /** Namespaces whose pods are never injected (system namespaces, the webhook's own). */
  namespacesRefused: string[];
  tokenAudience: string;
  tokenExpirationSeconds: number;
  /** The agent's /healthz port inside the pod. */
  healthPort: number;
}

export const names = {
  secretsVolume: 'vault-secrets',
  tokenVolume: 'vault-token',
  kubeApiVolume: 'vault-kube-api',
  agent: 'vault-agent',
  agentInit: 'vault-agent-init',
  tokenDir: '/var/run/secrets/vault.ghoststack.io',
  tokenFile: 'token',
} as const;

export const agentNodeOptions = '--max-semi-space-size=1 --max-old-space-size=48';

export const systemNamespaces = ['kube-system', 'kube-public', 'kube-node-lease'];
const serviceAccountMountPath = '/var/run/secrets/kubernetes.io/serviceaccount';

export function defaultMutateConfig(
  overrides: Partial<MutateConfig> & Pick<MutateConfig, 'agentImage' | 'vaultAddr'>,
): MutateConfig {
  return {
    agentImagePullPolicy: 'IfNotPresent',
    serverVersion: { major: 1, minor: 29 },
    resources: { cpuRequest: '10m', cpuLimit: '200m', memoryRequest: '48Mi', memoryLimit: '128Mi' },
    namespacesRefused: [...systemNamespaces],
    tokenAudience: 'vault',
    tokenExpirationSeconds: 600,
    healthPort: 8099,
    ...overrides,
  };
}

export const supportsNativeSidecars = (version: MutateConfig['serverVersion']): boolean =>
  version.major > 1 || (version.major === 1 && version.minor >= 29);

export function mutate(pod: V1Pod, config: MutateConfig): MutateResult {
  const labels = pod.metadata?.labels ?? {};
  if (labels[injectLabel] !== injectLabelValue) return { allowed: true, patch: [] };

  const namespace = pod.metadata?.namespace ?? '';
  if (config.namespacesRefused.includes(namespace)) {
    return refuse(`pods in namespace "${namespace}" are never injected; remove the "${injectLabel}" label`);
  }
  const parsed = parseInjectionSpec(pod.metadata?.annotations ?? {});
  if (!parsed.ok) return refuse(parsed.problems.join('; '));
  const spec = parsed.spec;
  const podSpec = pod.spec;
  if (!podSpec) return refuse('the pod has no spec');
  // The agent takes at most this many; deciding more would also cost the webhook time that
  // grows with files × containers, while every other namespace's pods wait.
  if (spec.files.length > maxFiles) {
    return refuse(`the pod asks for ${spec.files.length} files; an agent writes at most ${maxFiles}`);
  }

  const problems: string[] = [];
  const warnings: string[] = [];
  // In one process namespace every container sees the agent's processes, and an app container
  // of the agent's uid (the usual case: the agent takes the app's uid so 0400 files are
  // readable) may open /proc/<agent pid>/root and /proc/<agent pid>/environ: the projected
  // Vault token and the Kubernetes API token, which are mounted into the agent alone.
  if (podSpec.shareProcessNamespace) {
    problems.push(
      `"shareProcessNamespace: true" would let every container of the pod read the agent's tokens through /proc/<pid>/root; remove it or do not inject this pod`,
    );
  }
  const patch: JsonPatchOp[] = [];
  const isOurs = (c: V1Container) => c.name === names.agent || c.name === names.agentInit;
  const appContainers = podSpec.containers.filter((c) => !isOurs(c));
  const appInits = (podSpec.initContainers ?? []).filter((c) => !isOurs(c));
  // The agent's tokens are the agent's alone (an app holding the Vault token could lease
  // whatever the ServiceAccount may, with nothing revoking it), and the secrets volume is
  // read-only wherever the injector does not mount it for the agent.
  for (const container of [...appInits, ...appContainers]) {
    problems.push(...appMountProblems(container, spec.containers));
  }

  if (spec.containers) {
    const known = new Set([...appContainers, ...appInits].map((c) => c.name));
    const missing = spec.containers.filter((c) => !known.has(c));
    if (missing.length > 0) {
      problems.push(
        `annotation "${podAnnotations.containers}" names ${missing.map((c) => `"${c}"`).join(', ')}, which the pod does not have`,
      );
    }
  }

  // The agent reads VaultLeases with the pod's ServiceAccount, through the Kubernetes API
  // token the ServiceAccount admission plugin mounts into app containers. A pod that turned
  // that off (automountServiceAccountToken: false) gets the same projection for the agent
  // alone, so its app containers still hold no API token.
  const serviceAccountMount = [...appContainers, ...appInits]
    .flatMap((c) => c.volumeMounts ?? [])
    .find((m) => m.mountPath === serviceAccountMountPath);
  const ownApiToken = spec.files.some((f) => f.lease !== undefined) && !serviceAccountMount;

  // Volumes.
  const wantedVolumes: V1Volume[] = [
    secretsVolume(),
    tokenVolume(config),
    ...(ownApiToken ? [kubeApiVolume()] : []),
  ];
  const missingVolumes: V1Volume[] = [];
  for (const wanted of wantedVolumes) {
    const existing = podSpec.volumes?.find((v) => v.name === wanted.name);
    if (!existing) missingVolumes.push(wanted);
    else if (!sameVolumeSource(existing, wanted)) {
      problems.push(
        `the pod already has a volume named "${wanted.name}" that the injector did not add; rename it`,
      );
    }
  }

  // Read-only mounts in the app containers, before any index shifts.
  const mount: V1VolumeMount = { name: names.secretsVolume, mountPath: spec.mountPath, readOnly: true };
  const mountOps = (list: V1Container[] | undefined, field: 'containers' | 'initContainers') => {
    (list ?? []).forEach((container, index) => {
      if (isOurs(container)) return;
      if (spec.containers && !spec.containers.includes(container.name)) return;
      const mounts = container.volumeMounts ?? [];
      const same = mounts.find((m) => m.name === names.secretsVolume && m.mountPath === spec.mountPath);
      if (same) return;
      const clash = mounts.find((m) => m.mountPath === spec.mountPath || m.name === names.secretsVolume);
      if (clash) {
        problems.push(
          `container "${container.name}" already mounts "${clash.name}" at "${clash.mountPath}"; choose another "${podAnnotations.mountPath}"`,
        );
        return;
      }
      const base = `/spec/${field}/${index}/volumeMounts`;
      patch.push(
        container.volumeMounts
          ? { op: 'add', path: `${base}/-`, value: mount }
          : { op: 'add', path: base, value: [mount] },
      );
    });
  };
  mountOps(podSpec.containers, 'containers');
  mountOps(podSpec.initContainers, 'initContainers');

  if (missingVolumes.length > 0) {
    if (podSpec.volumes) {
      for (const value of missingVolumes) patch.push({ op: 'add', path: '/spec/volumes/-', value });
    } else {
      patch.push({ op: 'add', path: '/spec/volumes', value: missingVolumes });
    }
  }

  // The agent.
  const native = supportsNativeSidecars(config.serverVersion);
  // The agent needs the Kubernetes API token only for VaultLease files, but the ServiceAccount
  // admission plugin, which runs again after this patch, mounts it into every container that
  // lacks it. Mounting it here keeps the patch complete, so the API server does not call the
  // webhook a second time (reinvocationPolicy IfNeeded) for every pod. Pods that want no API
  // token anywhere set `automountServiceAccountToken: false`.
  const agentApiMount: V1VolumeMount | undefined =
    serviceAccountMount ??
    (ownApiToken ? { name: names.kubeApiVolume, mountPath: serviceAccountMountPath } : undefined);
  const mounted = [...appInits, ...appContainers].filter(
    (c) => !spec.containers || spec.containers.includes(c.name),
  );
  const access = decideFileAccess(pod, spec, mounted);
  const agent = (mode: 'native' | 'init' | 'sidecar') =>
    agentContainer(pod, spec, access, config, mode, agentApiMount);
  const hasInit = (name: string) => (podSpec.initContainers ?? []).some((c) => c.name === name);
  const hasContainer = (name: string) => podSpec.containers.some((c) => c.name === name);
  const prependInit = (container: V1Container) =>
    patch.push(
      podSpec.initContainers
        ? { op: 'add', path: '/spec/initContainers/0', value: container }
        : { op: 'add', path: '/spec/initContainers', value: [container] },
    );
  // A container under the agent's name is the injector's own from an earlier pass, or refused:
  // it would run, unchecked, with the agent's token and the writable secrets volume.
  const existing = (list: V1Container[] | undefined, name: string) =>
    (list ?? []).find((c) => c.name === name);
  const checkOwn = (found: V1Container | undefined, mode: 'native' | 'init' | 'sidecar', where: string) => {
    if (found && !sameAgent(found, agent(mode)))
      problems.push(
        `the pod already has ${where} named "${found.name}" that the injector did not make; rename it`,
      );
    return found !== undefined;
  };
  if (native) {
    if (hasContainer(names.agent)) problems.push(`the pod already has a container named "${names.agent}"`);
    if (hasInit(names.agentInit) || hasContainer(names.agentInit))
      problems.push(`the pod already has a container named "${names.agentInit}"`);
    if (!checkOwn(existing(podSpec.initContainers, names.agent), 'native', 'an init container'))
      prependInit(agent('native'));
  } else {
    if (hasContainer(names.agentInit) || hasInit(names.agent))
      problems.push(
        `the pod already has a container named "${names.agentInit}" or "${names.agent}" out of place`,
      );
    if (!checkOwn(existing(podSpec.initContainers, names.agentInit), 'init', 'an init container'))
      prependInit(agent('init'));
    if (!checkOwn(existing(podSpec.containers, names.agent), 'sidecar', 'a container'))
      patch.push({ op: 'add', path: '/spec/containers/-', value: agent('sidecar') });
  }

  if (problems.length > 0) return refuse(problems.join('; '));

  const annotations = pod.metadata?.annotations;
  if (annotations?.[podAnnotations.status] !== statusInjected) {
    // Said once, on the first pass; a reinvocation repeats nothing.
    if (access.warnings.length > 0) warnings.push(...access.warnings);
    patch.push(
      annotations
        ? {
            op: 'add',
            path: `/metadata/annotations/${escapePointer(podAnnotations.status)}`,
            value: statusInjected,
          }
        : { op: 'add', path: '/metadata/annotations', value: { [podAnnotations.status]: statusInjected } },
    );
  }
  return warnings.length > 0 ? { allowed: true, patch, warnings } : { allowed: true, patch };
}

/** The most files one agent writes (the agent's own limit). */
export const maxFiles = 64;

/** Volumes the injector mounts into the agent alone. */
const agentOnlyVolumes: ReadonlySet<string> = new Set([names.tokenVolume, names.kubeApiVolume]);

/**
 * Why an app container's own mounts break the injection's promises: it mounts a token meant
 * for the agent, mounts the secrets volume writable, or mounts it at all while the `containers`
 * annotation leaves it out.
 */
function appMountProblems(
  container: V1Container | V1EphemeralContainer,
  only: string[] | undefined,
): string[] {
  const problems: string[] = [];
  for (const m of container.volumeMounts ?? []) {
    if (agentOnlyVolumes.has(m.name)) {
      problems.push(
        `container "${container.name}" mounts "${m.name}", which is the agent's alone; remove that mount`,
      );
    } else if (m.name === names.secretsVolume) {
      if (only && !only.includes(container.name))
        problems.push(
          `container "${container.name}" mounts "${m.name}" although annotation "${podAnnotations.containers}" leaves it out; remove that mount or name the container there`,
        );
      else if (!m.readOnly)
        problems.push(
          `container "${container.name}" mounts "${m.name}" writable; the secrets are read-only outside the agent (set readOnly: true, or let the injector add the mount)`,
        );
    }
  }
  return problems;
}

/**
 * Why an ephemeral container added to an injected pod (`kubectl debug`) may not be, or
 * undefined: it gets no more than an app container — no agent token, no writable secrets,
 * and not the agent's process namespace (whose /proc shows the agent's tokens).
 */
export function ephemeralProblems(pod: V1Pod): string[] {
  const problems: string[] = [];
  for (const container of pod.spec?.ephemeralContainers ?? []) {
    if (container.targetContainerName === names.agent || container.targetContainerName === names.agentInit)
      problems.push(
        `ephemeral container "${container.name}" targets "${container.targetContainerName}", whose processes hold the agent's tokens; target an app container`,
      );
    problems.push(...appMountProblems(container, undefined));
  }
  return problems;
}

/**
 * Whether an existing agent container is the one the injector would add: what it runs, as
 * whom, with what it mounts (fields the API server defaults since are not compared).
 */
function sameAgent(found: V1Container, wanted: V1Container): boolean {
  const shape = (c: V1Container) =>
    JSON.stringify({
      image: c.image,
      command: c.command ?? null,
      args: c.args ?? null,
      // The API server fills in defaults (a fieldRef's apiVersion) between passes.
      env: (c.env ?? []).map((e) => [
        e.name,
        e.value ?? null,
        e.valueFrom ? Object.keys(e.valueFrom).sort() : null,
        e.valueFrom?.fieldRef?.fieldPath ?? null,
      ]),
      envFrom: c.envFrom ?? null,
      restartPolicy: c.restartPolicy ?? null,
      securityContext: c.securityContext ?? null,
      volumeMounts: (c.volumeMounts ?? []).map((m) => [
        m.name,
        m.mountPath,
        m.readOnly ?? false,
        m.subPath ?? null,
      ]),
    });
  return shape(found) === shape(wanted);
}

function refuse(message: string): MutateResult {
  return { allowed: false, message: `vault injector: ${message}` };
}

function secretsVolume(): V1Volume {
  return { name: names.secretsVolume, emptyDir: { medium: 'Memory', sizeLimit: '8Mi' } };
}

function tokenVolume(config: MutateConfig): V1Volume {
  return {
    name: names.tokenVolume,
    projected: {
      sources: [
        {
          serviceAccountToken: {
            audience: config.tokenAudience,
            expirationSeconds: config.tokenExpirationSeconds,
            path: names.tokenFile,
          },
        },
      ],
    },
  };
}

/** What the ServiceAccount admission plugin projects as `kube-api-access-*`, for the agent only. */
function kubeApiVolume(): V1Volume {
  return {
    name: names.kubeApiVolume,
    projected: {
      sources: [
        { serviceAccountToken: { path: 'token', expirationSeconds: 3607 } },
        { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        { downwardAPI: { items: [{ path: 'namespace', fieldRef: { fieldPath: 'metadata.namespace' } }] } },
      ],
    },
  };
}

/** Ours if it has the same kind of source; the API server adds defaults (defaultMode) in between. */
function sameVolumeSource(existing: V1Volume, wanted: V1Volume): boolean {
  if (wanted.emptyDir) return existing.emptyDir?.medium === 'Memory';
  const token = existing.projected?.sources?.[0]?.serviceAccountToken;
  const wantedToken = wanted.projected?.sources?.[0]?.serviceAccountToken;
  return token !== undefined && token.audience === wantedToken?.audience && token.path === wantedToken?.path;
}

function agentContainer(
  pod: V1Pod,
  spec: InjectionSpec,
  access: FileAccess,
  config: MutateConfig,
  mode: 'native' | 'init' | 'sidecar',
  serviceAccountMount: V1VolumeMount | undefined,
): V1Container {
  const { runAsUser, runAsGroup } = access;
  const agentConfig: AgentConfigInput = {
    files: access.files,
    directory: spec.mountPath,
    tokenPath: `${names.tokenDir}/${names.tokenFile}`,
    healthPort: config.healthPort,
    namespace: pod.metadata?.namespace,
    ...(access.group === undefined ? {} : { group: access.group }),
  };
  const env: V1EnvVar[] = [
    { name: 'VAULT_ADDR', value: config.vaultAddr },
    ...(config.vaultCaPem ? [{ name: agentCaPemEnv, value: config.vaultCaPem }] : []),
    ...(config.vaultCluster ? [{ name: agentClusterEnv, value: config.vaultCluster }] : []),
    { name: agentConfigEnv, value: JSON.stringify(agentConfig) },
    { name: 'VAULT_LOG_LEVEL', value: spec.logLevel },
    // A small young generation and a bounded heap keep the agent's resident memory low.
    { name: 'NODE_OPTIONS', value: agentNodeOptions },
    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
  ];
  const resources = { ...config.resources, ...spec.resources };
  const container: V1Container = {
    name: mode === 'init' ? names.agentInit : names.agent,
    image: config.agentImage,
    imagePullPolicy: config.agentImagePullPolicy,
    args: mode === 'init' ? ['agent', '--once'] : ['agent'],
    env,
    resources: {
      requests: { cpu: resources.cpuRequest, memory: resources.memoryRequest },
      limits: { cpu: resources.cpuLimit, memory: resources.memoryLimit },
    },
    securityContext: {
      runAsNonRoot: true,
      runAsUser,
      runAsGroup,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumeMounts: [
      { name: names.secretsVolume, mountPath: spec.mountPath },
      { name: names.tokenVolume, mountPath: names.tokenDir, readOnly: true },
      ...(serviceAccountMount ? [{ ...serviceAccountMount, readOnly: true }] : []),
    ],
  };
  if (mode === 'native') {
    container.restartPolicy = 'Always';
    // Passes once every file is written, so app containers start after their secrets exist.
    container.startupProbe = {
      httpGet: { path: '/healthz', port: config.healthPort },
      periodSeconds: 1,
      timeoutSeconds: 2,
      failureThreshold: 300,
    };
  }
  return container;
}

/** RFC 6901: "~" and "/" inside a JSON Pointer segment. */
export const escapePointer = (segment: string): string => segment.replaceAll('~', '~0').replaceAll('/', '~1');
