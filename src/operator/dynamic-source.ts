/**
 * `spec.source.dynamic` of a VaultCredential, mapped onto the Vault API: the admin
 * connection is imported from a Secret key exactly like `spec.source.secretRef` (same
 * consent, same versioning), the engine settings become the credential's `dynamic`, and the
 * API's retry state of upstream removals becomes the RevocationsFailing condition. Pure
 * functions of the object and what Vault answered.
 */
import type { Credential, DynamicSpec } from '../contract/credentials.js';
import type { Condition, VaultCredentialSpec } from '../k8s/resources.js';
import { sameJson, setCondition } from './conditions.js';

type Source = VaultCredentialSpec['source'];
type SecretKeyRef = { name: string; key: string };

/** The Secret key a VaultCredential imports its value from: secretRef, or a dynamic engine's admin connection. */
export function importedSecretRef(source: Partial<Source> | undefined): SecretKeyRef | undefined {
  return (
    source?.secretRef ??
    source?.dynamic?.postgres?.connectionSecretRef ??
    source?.dynamic?.redis?.connectionSecretRef
  );
}

/** The engine settings a VaultCredential asks Vault for, if it is dynamic. */
export function dynamicSpecOf(source: Source): DynamicSpec | undefined {
  const { postgres, redis } = source.dynamic ?? {};
  if (postgres)
    return {
      engine: 'postgres',
      creationStatements: postgres.creationStatements,
      ...(postgres.scramIterations !== undefined ? { scramIterations: postgres.scramIterations } : {}),
    };
  if (redis) return { engine: 'redis', aclRules: redis.aclRules };
  return undefined;
}

/**
 * Why the credential in Vault cannot follow the spec's source, if it cannot: a dynamic
 * credential stays dynamic with its engine (the API refuses the change), and a static one
 * stays static.
 */
export function sourceMismatch(source: Source, credential: Credential): string | undefined {
  const wanted = dynamicSpecOf(source)?.engine;
  const has = credential.dynamic?.engine;
  if (wanted === has) return undefined;
  const what = (engine: string | undefined) =>
    engine ? `a dynamic ${engine} credential` : 'a static credential';
  return (
    `credential "${credential.name}" is ${what(has)} and the spec asks for ${what(wanted)}; ` +
    'delete the VaultCredential and create it again to change that'
  );
}

/** Changes of the engine settings to send with the credential's update, if any. */
export function dynamicUpdate(source: Source, credential: Credential): { dynamic: DynamicSpec } | undefined {
  const wanted = dynamicSpecOf(source);
  if (!wanted || sameJson(wanted, credential.dynamic)) return undefined;
  return { dynamic: wanted };
}

export const revocationsConditionType = 'RevocationsFailing';

/**
 * RevocationsFailing: True while Vault retries removing ended leases' upstream accounts
 * (the database is unreachable or refuses), False once none is waiting; absent on static
 * credentials.
 */
export function revocationsCondition(
  previous: Condition[] | undefined,
  credential: Credential,
  generation: number | undefined,
  now: Date,
): Condition[] {
  if (!credential.dynamic)
    return setCondition(previous, revocationsConditionType, undefined, generation, now);
  const state = credential.revocations;
  const input =
    state && state.failing > 0
      ? {
          status: 'True' as const,
          reason: 'Retrying',
          message:
            `${state.failing} upstream account${state.failing === 1 ? '' : 's'} of ended leases not removed yet ` +
            `(${state.attempts ?? 1} attempt${state.attempts === 1 ? '' : 's'} so far, next at ${state.nextAttemptAt ?? 'soon'}); ` +
            `Vault retries with backoff until the ${credential.dynamic.engine} server confirms: ${(state.lastError ?? '').slice(0, 1024)}`,
        }
      : {
          status: 'False' as const,
          reason: 'NoneFailing',
          message: 'every ended lease has had its upstream account removed',
        };
  return setCondition(previous, revocationsConditionType, input, generation, now);
}

/** When to look at the retry state again: soon after the next attempt while failing. */
export function revocationsRecheckMs(credential: Credential, now: Date, pollMs: number): number | undefined {
  if (!credential.dynamic) return undefined;
  const next = credential.revocations?.nextAttemptAt;
  if (!credential.revocations?.failing || !next) return pollMs;
  return Math.min(pollMs, Math.max(1_000, Date.parse(next) - now.getTime() + 500));
}
