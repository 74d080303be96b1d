/**
 * The checks of the restricted Pod Security Standard (plus a read-only root filesystem, which
 * the chart promises on top), as a pure function of a pod spec. The install test proves the
 * same pods are admitted by the API server's own PodSecurity admission; this gives a
 * readable list of what is wrong when a render breaks the rules.
 */
import type { K8sObject } from './support.js';

const allowedVolumeSources = new Set([
  'configMap',
  'csi',
  'downwardAPI',
  'emptyDir',
  'ephemeral',
  'persistentVolumeClaim',
  'projected',
  'secret',
]);

export function restrictedViolations(spec: K8sObject): string[] {
  const problems: string[] = [];
  const pod = spec.securityContext ?? {};
  for (const field of ['hostNetwork', 'hostPID', 'hostIPC'] as const) {
    if (spec[field]) problems.push(`${field} is set`);
  }
  for (const volume of (spec.volumes ?? []) as Array<Record<string, unknown>>) {
    const sources = Object.keys(volume).filter((key) => key !== 'name');
    for (const source of sources) {
      if (!allowedVolumeSources.has(source)) problems.push(`volume ${volume.name} uses ${source}`);
    }
  }
  const containers = [
    ...((spec.initContainers ?? []) as K8sObject[]),
    ...((spec.containers ?? []) as K8sObject[]),
  ];
  if (containers.length === 0) problems.push('no containers');
  for (const container of containers) {
    const sc = container.securityContext ?? {};
    const where = `container ${container.name}`;
    if (sc.privileged) problems.push(`${where} is privileged`);
    if (sc.allowPrivilegeEscalation !== false)
      problems.push(`${where} does not set allowPrivilegeEscalation: false`);
    if ((sc.runAsNonRoot ?? pod.runAsNonRoot) !== true) problems.push(`${where} does not run as non-root`);
    if ((sc.runAsUser ?? pod.runAsUser) === 0) problems.push(`${where} runs as uid 0`);
    const seccomp = sc.seccompProfile?.type ?? pod.seccompProfile?.type;
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost')
      problems.push(`${where} has seccomp ${seccomp}`);
    const drop: string[] = sc.capabilities?.drop ?? [];
    if (!drop.includes('ALL')) problems.push(`${where} does not drop ALL capabilities`);
    const add: string[] = sc.capabilities?.add ?? [];
    for (const cap of add) if (cap !== 'NET_BIND_SERVICE') problems.push(`${where} adds capability ${cap}`);
    if (sc.readOnlyRootFilesystem !== true) problems.push(`${where} has a writable root filesystem`);
    for (const port of (container.ports ?? []) as Array<{ hostPort?: number }>) {
      if (port.hostPort) problems.push(`${where} uses hostPort ${port.hostPort}`);
    }
  }
  return problems;
}
