import { readFileSync } from 'node:fs';
import type { V1Pod } from '@kubernetes/client-node';
import { parse } from 'yaml';
import type { AdmissionReview } from '../../src/webhook/admission.js';
import type { JsonPatchOp } from '../../src/webhook/mutate.js';

/** An AdmissionReview of `pod` (a CREATE in namespace "shop" unless told). */
export function reviewOf(
  pod: unknown,
  options: { uid?: string; namespace?: string; operation?: 'CREATE' | 'UPDATE' } = {},
): AdmissionReview {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: options.uid ?? 'uid-1',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      namespace: options.namespace ?? 'shop',
      operation: options.operation ?? 'CREATE',
      object: pod as Record<string, unknown>,
    },
  };
}

export function loadPod(name: string): V1Pod {
  return parse(readFileSync(new URL(`../fixtures/pods/${name}.yaml`, import.meta.url), 'utf8')) as V1Pod;
}

/**
 * Applies a JSON Patch (RFC 6902 add/replace/remove, which is all the injector emits) to a
 * copy, so tests can check the patched pod and run mutate() on it again. The end-to-end test
 * checks the same patches against the real API server.
 */
export function applyPatch<T>(doc: T, patch: JsonPatchOp[]): T {
  const root = structuredClone(doc) as unknown as Record<string, unknown>;
  for (const op of patch) {
    const segments = op.path
      .split('/')
      .slice(1)
      .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));
    const last = segments.pop();
    if (last === undefined) throw new Error(`bad path ${op.path}`);
    let parent: unknown = root;
    for (const segment of segments) {
      parent = (parent as Record<string, unknown>)[segment];
      if (parent === undefined) throw new Error(`path ${op.path} does not exist`);
    }
    if (Array.isArray(parent)) {
      const index = last === '-' ? parent.length : Number(last);
      if (!Number.isInteger(index) || index > parent.length) throw new Error(`bad index in ${op.path}`);
      if (op.op === 'add') parent.splice(index, 0, structuredClone(op.value));
      else if (op.op === 'replace') parent[index] = structuredClone(op.value);
      else parent.splice(index, 1);
    } else {
      const object = parent as Record<string, unknown>;
      if (op.op === 'remove') delete object[last];
      else {
        if (op.op === 'replace' && !(last in object)) throw new Error(`replace of missing ${op.path}`);
        object[last] = structuredClone(op.value);
      }
    }
  }
  return root as unknown as T;
}
