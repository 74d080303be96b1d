/**
 * Durations as people write them: "90s", "15m", "1h30m", "2d". Only positive, whole units;
 * "-5m", "abc" and "0s" are rejected with a message saying what is accepted.
 */

const unitMs = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const durationPattern = /^(?:\d+(?:ms|s|m|h|d))+$/;
const partPattern = /(\d+)(ms|s|m|h|d)/g;

export const durationHelp = 'a duration like "90s", "15m", "1h30m" or "2d" (units ms, s, m, h, d)';

/** Parses a duration to milliseconds, or returns an error message saying what to fix. */
export function parseDuration(input: string): { ms: number } | { error: string } {
  const text = input.trim();
  if (!durationPattern.test(text)) return { error: `"${truncate(text)}" is not ${durationHelp}` };
  let ms = 0;
  for (const [, amount, unit] of text.matchAll(partPattern)) {
    ms += Number(amount) * unitMs[unit as keyof typeof unitMs];
  }
  if (!Number.isSafeInteger(ms) || ms <= 0) return { error: `"${truncate(text)}" must be greater than zero` };
  return { ms };
}

export function durationMs(input: string): number {
  const parsed = parseDuration(input);
  if ('error' in parsed) throw new RangeError(parsed.error);
  return parsed.ms;
}

/** Formats milliseconds as the shortest duration string ("1h30m"). */
export function formatDuration(ms: number): string {
  if (ms <= 0) return '0s';
  const parts: string[] = [];
  let rest = Math.round(ms);
  for (const [unit, size] of [
    ['d', unitMs.d],
    ['h', unitMs.h],
    ['m', unitMs.m],
    ['s', unitMs.s],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  if (rest > 0 || parts.length === 0) parts.push(`${rest}ms`);
  return parts.join('');
}

const truncate = (text: string) => (text.length > 32 ? `${text.slice(0, 32)}…` : text);
