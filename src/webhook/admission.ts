import type { V1Pod } from '@kubernetes/client-node';
import { z } from 'zod';
import { isVaultError } from '../lib/errors.js';
import { fileAnnotationPrefixes } from './annotations.js';
import { ephemeralProblems, type MutateConfig, mutate } from './mutate.js';

/**
 * The AdmissionReview v1 codec and the decision around `mutate`: decode, decide, encode.
 * Kept apart from the HTTP server so it is testable by calling it.
 */

export const admissionReview = z.object({
  apiVersion: z.literal('admission.k8s.io/v1'),
  kind: z.literal('AdmissionReview'),
  request: z.object({
    uid: z.string().min(1),
    kind: z.object({ group: z.string(), version: z.string(), kind: z.string() }),
    namespace: z.string().optional(),
    operation: z.string(),
    dryRun: z.boolean().optional(),
    object: z.record(z.string(), z.unknown()).nullable().optional(),
  }),
});
export type AdmissionReview = z.infer<typeof admissionReview>;

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  patchType?: 'JSONPatch';
  /** base64 of the JSON Patch. */
  patch?: string;
  status?: { code: number; message: string };
  /** Shown by kubectl and clients as "Warning: ..."; the pod is still admitted. */
  warnings?: string[];
}

export interface AdmissionDeps {
  config: MutateConfig;
  /**
   * Which of these VaultLease names do not exist in the namespace. Optional: without it only
   * the annotations' syntax is checked, and a missing VaultLease shows up in the agent's log.
   */
  missingLeases?: (namespace: string, names: string[]) => Promise<string[]>;
  /**
   * Which of these VaultLeases the ServiceAccount may not read, and the ClusterRole that
   * grants it. The agent reads them with the pod's ServiceAccount; without `get` it would
   * retry forever and the app never start, so the pod is refused with what to bind.
   */
  leaseReaders?: {
    canGet: (namespace: string, serviceAccount: string, names: string[]) => Promise<string[]>;
    role: string;
  };
}

export type Outcome = 'patched' | 'unchanged' | 'refused' | 'error';

export async function admit(
  review: AdmissionReview,
  deps: AdmissionDeps,
): Promise<{ response: AdmissionResponse; outcome: Outcome }> {
  const { request } = review;
  const uid = request.uid;
  if (request.kind.kind !== 'Pod' || request.kind.group !== '' || !request.object) {
    return { response: { uid, allowed: true }, outcome: 'unchanged' };
  }
  const pod = structuredClone(request.object) as V1Pod;
  // On CREATE the namespace is often only on the request.
  pod.metadata = { ...pod.metadata, namespace: pod.metadata?.namespace ?? request.namespace };
  if (request.operation === 'UPDATE') {
    // The one update sent here: ephemeral containers added to an injected pod (kubectl debug).
    const problems = ephemeralProblems(pod);
    return problems.length > 0
      ? { response: refusal(uid, 403, `vault injector: ${problems.join('; ')}`), outcome: 'refused' }
      : { response: { uid, allowed: true }, outcome: 'unchanged' };
  }
  try {
    const result = mutate(pod, deps.config);
    if (!result.allowed) return { response: refusal(uid, 403, result.message), outcome: 'refused' };
    if (result.patch.length === 0) return { response: { uid, allowed: true }, outcome: 'unchanged' };

    const namespace = pod.metadata.namespace ?? '';
    const serviceAccount = pod.spec?.serviceAccountName || 'default';
    if (deps.missingLeases) {
      // Each VaultLease once, however many files name it.
      const leaseNames = [
        ...new Set(
          Object.entries(pod.metadata.annotations ?? {})
            .filter(([key]) => key.startsWith(fileAnnotationPrefixes.lease))
            .map(([, name]) => name),
        ),
      ];
      const missing =
        leaseNames.length > 0 ? await deps.missingLeases(pod.metadata.namespace ?? '', leaseNames) : [];
      if (missing.length > 0) {
        const list = missing.map((n) => `"${n}"`).join(', ');
        return {
          response: refusal(
            uid,
            403,
            `vault injector: VaultLease ${list} does not exist in namespace "${pod.metadata.namespace}"; create it first`,
          ),
          outcome: 'refused',
        };
      }
      const denied =
        leaseNames.length > 0 && deps.leaseReaders
          ? await deps.leaseReaders.canGet(namespace, serviceAccount, leaseNames)
          : [];
      if (denied.length > 0) {
        const list = denied.map((n) => `"${n}"`).join(', ');
        return {
          response: refusal(
            uid,
            403,
            `vault injector: ServiceAccount "${serviceAccount}" cannot read VaultLease ${list} in namespace "${namespace}", which its agent reads for lease-<file> files; allow it with: kubectl create rolebinding ${serviceAccount}-vaultlease-reader --namespace=${namespace} --clusterrole=${deps.leaseReaders!.role} --serviceaccount=${namespace}:${serviceAccount}`,
          ),
          outcome: 'refused',
        };
      }
    }
    return {
      response: {
        uid,
        allowed: true,
        patchType: 'JSONPatch',
        patch: Buffer.from(JSON.stringify(result.patch)).toString('base64'),
        ...(result.warnings ? { warnings: result.warnings } : {}),
      },
      outcome: 'patched',
    };
  } catch (err) {
    return { response: admissionError(uid, err), outcome: 'error' };
  }
}

const refusal = (uid: string, code: number, message: string): AdmissionResponse => ({
  uid,
  allowed: false,
  status: { code, message },
});

/** The one mapping of errors to admission responses; unknown errors carry no detail. */
export function admissionError(uid: string, err: unknown): AdmissionResponse {
  if (isVaultError(err)) return refusal(uid, err.status, `vault injector: ${err.message}`);
  return refusal(uid, 500, 'vault injector: internal error; see the webhook log');
}

export function reviewResponse(response: AdmissionResponse) {
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response };
}
