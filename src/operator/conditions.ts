/**
 * Status helpers shared by the reconcilers: the Ready condition keeps its
 * lastTransitionTime while its status stays the same, and statuses are compared
 * structurally so that an unchanged status is never written.
 */
import type { Condition } from '../k8s/resources.js';

export interface ReadyInput {
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
}

export function readyCondition(
  previous: Condition[] | undefined,
  input: ReadyInput,
  generation: number | undefined,
  now: Date,
): Condition[] {
  return setCondition(previous, 'Ready', input, generation, now);
}

/**
 * Sets the condition `type` (last in the list), or removes it when `input` is undefined;
 * lastTransitionTime moves only when its status does.
 */
export function setCondition(
  previous: Condition[] | undefined,
  type: string,
  input: ReadyInput | undefined,
  generation: number | undefined,
  now: Date,
): Condition[] {
  const old = previous?.find((c) => c.type === type);
  const others = (previous ?? []).filter((c) => c.type !== type);
  if (!input) return others;
  const lastTransitionTime =
    old && old.status === input.status ? old.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return [
    ...others,
    {
      type,
      status: input.status,
      reason: input.reason,
      message: input.message,
      lastTransitionTime,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
    },
  ];
}

/** Deep equality of JSON values, ignoring keys whose value is undefined. */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((item, i) => sameJson(item, b[i]));
  }
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  const keysOf = (o: object) =>
    Object.entries(o)
      .filter(([, v]) => v !== undefined)
      .map(([k]) => k)
      .sort();
  const ka = keysOf(a);
  const kb = keysOf(b);
  if (ka.length !== kb.length || ka.some((k, i) => k !== kb[i])) return false;
  return ka.every((k) => sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/**
 * A merge patch that turns `current` into `desired` at the top level of a status: changed
 * fields are set, vanished ones set to null (merge-patch deletion).
 */
export function statusPatch(current: object | undefined, desired: object): Record<string, unknown> {
  const patch: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(desired)) {
    if (value === undefined) continue;
    if (!sameJson((current as Record<string, unknown> | undefined)?.[key], value)) patch[key] = value;
  }
  for (const key of Object.keys(current ?? {})) {
    if ((desired as Record<string, unknown>)[key] === undefined) patch[key] = null;
  }
  return patch;
}
