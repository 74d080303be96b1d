import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { type AgentFileInput, fileMode } from '../agent/config.js';
import { defaults } from './annotations.js';
import type { InjectionSpec } from './injection-spec.js';

/**
 * Who can read the files: the agent's uid and gid, the files' group and default mode, and a
 * warning for every app container the webhook cannot promise a read. Pure, like mutate().
 *
 * - When every container that mounts the files declares the same uid, the agent runs as it
 *   and files stay 0400.
 * - Otherwise, with the pod's `fsGroup` (which the kubelet adds to every container's groups),
 *   files are given that group and default to 0440.
 * - Otherwise the files are 0400 of the agent's uid (65532 unless told), which an image of
 *   another USER cannot read: the pod is admitted with a warning that says what to set.
 */

export interface FileAccess {
  runAsUser: number;
  runAsGroup: number;
  /** The group files are given (the fsGroup); undefined: the agent's own. */
  group: number | undefined;
  /** The files, each with its mode decided. */
  files: AgentFileInput[];
  warnings: string[];
}

const positive = (id: number | undefined) => (id !== undefined && id > 0 ? id : undefined);

export function decideFileAccess(pod: V1Pod, spec: InjectionSpec, mounted: V1Container[]): FileAccess {
  const podSecurity = pod.spec?.securityContext;
  const uidOf = (c: V1Container) => c.securityContext?.runAsUser ?? podSecurity?.runAsUser;
  const gidOf = (c: V1Container) => c.securityContext?.runAsGroup ?? podSecurity?.runAsGroup;
  const common = (ids: (number | undefined)[]) =>
    ids.length > 0 && ids.every((id) => id !== undefined && id === ids[0]) ? ids[0] : undefined;

  const runAsUser =
    spec.runAsUser ??
    positive(common(mounted.map(uidOf))) ??
    positive(podSecurity?.runAsUser) ??
    defaults.runAsUser;
  // Like the uid, a group copied from the pod is never root's (the annotation refuses 0 too).
  const runAsGroup =
    spec.runAsGroup ?? positive(podSecurity?.runAsGroup) ?? positive(common(mounted.map(gidOf))) ?? runAsUser;
  const fsGroup = podSecurity?.fsGroup;
  const allSameUser = mounted.every((c) => uidOf(c) === runAsUser);
  const defaultMode = !allSameUser && fsGroup !== undefined ? 0o440 : defaults.mode;

  const files = spec.files.map((file) => ({
    ...file,
    mode: file.mode === undefined ? defaultMode : fileMode.parse(file.mode),
  }));
  const fileGroup = fsGroup ?? runAsGroup;

  const canRead = (c: V1Container, mode: number): boolean => {
    if (mode & 0o004) return true;
    const uid = uidOf(c);
    if (uid === runAsUser && mode & 0o400) return true;
    const dropped = c.securityContext?.capabilities?.drop ?? [];
    if (uid === 0 && !dropped.some((cap) => cap === 'ALL' || cap === 'DAC_OVERRIDE')) return true;
    const groups = new Set([
      ...(fsGroup === undefined ? [] : [fsGroup]),
      ...(podSecurity?.supplementalGroups ?? []),
      ...(gidOf(c) === undefined ? [] : [gidOf(c)]),
    ]);
    return (mode & 0o040) !== 0 && groups.has(fileGroup);
  };

  const warnings: string[] = [];
  for (const c of mounted) {
    const unreadable = files.filter((f) => !canRead(c, f.mode));
    if (unreadable.length === 0) continue;
    const uid = uidOf(c);
    const who = uid === undefined ? `(uid from its image)` : `runs as uid ${uid} and`;
    const listed = unreadable
      .slice(0, 3)
      .map((f) => `${f.name} (mode ${f.mode.toString(8).padStart(4, '0')})`)
      .join(', ');
    const more = unreadable.length > 3 ? ` and ${unreadable.length - 3} more` : '';
    warnings.push(
      `vault injector: container "${c.name}" ${who} may not read ${listed}${more}, owned by uid ${runAsUser}; set the pod's fsGroup (files become 0440 in it) or a runAsUser for all containers`,
    );
  }
  return { runAsUser, runAsGroup, group: fsGroup, files, warnings };
}
