import { z } from 'zod';
import { type AgentFileInput, agentFile } from '../agent/config.js';
import { parseDuration } from '../lib/duration.js';
import {
  defaults,
  type FileAnnotationKind,
  fileAnnotationPrefixes,
  fileFormats,
  fileNamePattern,
  isOurKey,
  logLevels,
  podAnnotations,
} from './annotations.js';

/** What a pod's annotations ask for, checked for syntax (not whether credentials exist). */
export interface InjectionSpec {
  files: AgentFileInput[];
  mountPath: string;
  /** Containers that get the mount; undefined means all. */
  containers: string[] | undefined;
  runAsUser: number | undefined;
  runAsGroup: number | undefined;
  resources: { cpuRequest?: string; cpuLimit?: string; memoryRequest?: string; memoryLimit?: string };
  logLevel: string;
}

export type SpecResult = { ok: true; spec: InjectionSpec } | { ok: false; problems: string[] };

const quantityPattern = /^(\d+(\.\d+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/;
const containerNamePattern = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const fileKinds = Object.entries(fileAnnotationPrefixes) as [FileAnnotationKind, string][];

/**
 * Reads every `vault.ghoststack.io/` annotation. Unknown keys and bad values are problems,
 * each naming the annotation and saying what is accepted, so a typo is refused at admission
 * instead of silently producing a pod without its secret.
 */
export function parseInjectionSpec(annotations: Record<string, string>): SpecResult {
  const problems: string[] = [];
  const perFile = new Map<string, Partial<Record<FileAnnotationKind, string>>>();
  const pod: Partial<Record<keyof typeof podAnnotations, string>> = {};
  const podKeys = Object.entries(podAnnotations) as [keyof typeof podAnnotations, string][];

  for (const [key, value] of Object.entries(annotations)) {
    if (!isOurKey(key)) continue;
    const podKey = podKeys.find(([, k]) => k === key);
    if (podKey) {
      pod[podKey[0]] = value;
      continue;
    }
    const fileKind = fileKinds.find(([, p]) => key.startsWith(p));
    if (!fileKind) {
      problems.push(`unknown annotation "${key}"; see the injection documentation for the accepted keys`);
      continue;
    }
    const [kind, p] = fileKind;
    const file = key.slice(p.length);
    if (!fileNamePattern.test(file)) {
      problems.push(
        `annotation "${key}": "${file}" is not a file name (letters, digits, ".", "_" or "-", starting and ending with a letter or digit)`,
      );
      continue;
    }
    const entry = perFile.get(file) ?? {};
    entry[kind] = value;
    perFile.set(file, entry);
  }

  const files: AgentFileInput[] = [];
  for (const [name, entry] of perFile) {
    const key = (kind: FileAnnotationKind) => `${fileAnnotationPrefixes[kind]}${name}`;
    if (entry.credential === undefined && entry.lease === undefined) {
      const given = Object.keys(entry).map((kind) => `"${key(kind as FileAnnotationKind)}"`);
      problems.push(
        `${given.join(', ')} names file "${name}", but no "${key('credential')}" or "${key('lease')}" says what goes in it`,
      );
      continue;
    }
    if (entry.credential !== undefined && entry.lease !== undefined) {
      problems.push(`file "${name}" has both "${key('credential')}" and "${key('lease')}"; use one`);
      continue;
    }
    if (entry.format !== undefined && !(fileFormats as readonly string[]).includes(entry.format)) {
      problems.push(
        `annotation "${key('format')}": "${entry.format}" is not one of ${fileFormats.join(', ')}`,
      );
      continue;
    }
    if (entry.mode !== undefined && !/^0?[0-7]{3}$/.test(entry.mode)) {
      problems.push(`annotation "${key('mode')}": "${entry.mode}" is not an octal mode like "0400"`);
      continue;
    }
    const before = problems.length;
    for (const kind of ['ttl', 'maxTtl'] as const) {
      const value = entry[kind];
      if (value === undefined) continue;
      if (entry.lease !== undefined) {
        problems.push(
          `annotation "${key(kind)}": file "${name}" comes from a VaultLease, whose spec sets its TTL`,
        );
      } else {
        const parsed = parseDuration(value);
        if ('error' in parsed) problems.push(`annotation "${key(kind)}": ${parsed.error}`);
      }
    }
    if (problems.length > before) continue;
    const candidate = {
      name,
      credential: entry.credential,
      lease: entry.lease,
      format: entry.format,
      mode: entry.mode,
      ttl: entry.ttl,
      maxTtl: entry.maxTtl,
      envName: entry.envName,
    };
    const checked = agentFile.safeParse(candidate);
    if (!checked.success) {
      for (const issue of checked.error.issues) {
        const field = issue.path[0];
        const annotation =
          field === 'name'
            ? `file name "${name}"`
            : typeof field === 'string' && field in fileAnnotationPrefixes
              ? `annotation "${key(field as FileAnnotationKind)}"`
              : `file "${name}"`;
        problems.push(`${annotation}: ${issue.message}`);
      }
      continue;
    }
    files.push(
      Object.fromEntries(
        Object.entries(candidate).filter(([, v]) => v !== undefined),
      ) as unknown as AgentFileInput,
    );
  }
  if (perFile.size === 0) {
    problems.push(
      `the pod is labelled for injection but has no "${fileAnnotationPrefixes.credential}<file>" or "${fileAnnotationPrefixes.lease}<file>" annotation`,
    );
  }

  const mountPath = pod.mountPath ?? defaults.mountPath;
  if (!/^\/[A-Za-z0-9._/-]*$/.test(mountPath) || mountPath.split('/').includes('..') || mountPath === '/') {
    problems.push(`annotation "${podAnnotations.mountPath}": "${mountPath}" is not an absolute path below /`);
  }

  let containers: string[] | undefined;
  if (pod.containers !== undefined) {
    containers = pod.containers
      .split(',')
      .map((c) => c.trim())
      .filter((c) => c !== '');
    const bad = containers.filter((c) => !containerNamePattern.test(c));
    if (containers.length === 0 || bad.length > 0) {
      problems.push(`annotation "${podAnnotations.containers}": expected comma-separated container names`);
    }
  }

  const id = (field: 'agentRunAsUser' | 'agentRunAsGroup'): number | undefined => {
    const value = pod[field];
    if (value === undefined) return undefined;
    const parsed = z.coerce
      .number()
      .int()
      .min(1)
      .max(2_147_483_647)
      .safeParse(value.trim() === '' ? 'x' : value);
    if (!parsed.success) {
      problems.push(
        `annotation "${podAnnotations[field]}": "${value}" is not a non-zero numeric id (the agent never runs as root)`,
      );
      return undefined;
    }
    return parsed.data;
  };
  const runAsUser = id('agentRunAsUser');
  const runAsGroup = id('agentRunAsGroup');

  const resources: InjectionSpec['resources'] = {};
  for (const field of [
    'agentCpuRequest',
    'agentCpuLimit',
    'agentMemoryRequest',
    'agentMemoryLimit',
  ] as const) {
    const value = pod[field];
    if (value === undefined) continue;
    if (!quantityPattern.test(value)) {
      problems.push(
        `annotation "${podAnnotations[field]}": "${value}" is not a quantity like "100m" or "64Mi"`,
      );
      continue;
    }
    const short = {
      agentCpuRequest: 'cpuRequest',
      agentCpuLimit: 'cpuLimit',
      agentMemoryRequest: 'memoryRequest',
      agentMemoryLimit: 'memoryLimit',
    } as const;
    resources[short[field]] = value;
  }

  const logLevel = pod.agentLogLevel ?? defaults.logLevel;
  if (!(logLevels as readonly string[]).includes(logLevel)) {
    problems.push(
      `annotation "${podAnnotations.agentLogLevel}": "${logLevel}" is not one of ${logLevels.join(', ')}`,
    );
  }

  if (problems.length > 0) return { ok: false, problems };
  files.sort((a, b) => a.name.localeCompare(b.name));
  return { ok: true, spec: { files, mountPath, containers, runAsUser, runAsGroup, resources, logLevel } };
}
