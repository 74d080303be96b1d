import { randomBytes } from 'node:crypto';

/**
 * Placeholders: what the agent's processes hold instead of values. Opaque, random, bound to
 * one lease by the broker's table (nothing about the value can be derived from one), and
 * shaped like an API key so tools pass them through unchanged.
 */

export const placeholderPrefix = 'vault-ph-';

export const newPlaceholder = () => `${placeholderPrefix}${randomBytes(24).toString('base64url')}`;

export interface Swap {
  placeholder: string;
  value: string;
}

/** A replacement the broker made, to undo in responses (value → what the agent sent). */
export interface Reversal {
  needle: string;
  replacement: string;
}

type Headers = Record<string, string | string[] | undefined>;

const basic = /^(\s*basic\s+)([A-Za-z0-9+/=]+)\s*$/i;

/** The header values, with `Authorization: Basic` (and its proxy twin) decoded as well. */
function visibleTexts(headers: Headers): string[] {
  const texts: string[] = [];
  for (const [name, raw] of Object.entries(headers)) {
    for (const value of Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]) {
      texts.push(value);
      const match = name === 'authorization' ? basic.exec(value) : null;
      if (match) texts.push(Buffer.from(match[2]!, 'base64').toString('latin1'));
    }
  }
  return texts;
}

/** Which of `placeholders` appear in any of the texts, or in the headers (Basic decoded). */
export function placeholdersIn(
  placeholders: readonly string[],
  sources: { headers: Headers; texts?: readonly string[] },
): Set<string> {
  const texts = [...visibleTexts(sources.headers), ...(sources.texts ?? [])];
  return new Set(placeholders.filter((p) => texts.some((text) => text.includes(p))));
}

/**
 * Headers with each placeholder replaced by its value. A Basic `Authorization` header is
 * decoded, swapped and encoded again; the new header is returned as a reversal too, so an
 * upstream that echoes it back is stripped as well as one that echoes the raw value.
 */
export function swapHeaders(
  headers: Headers,
  swaps: readonly Swap[],
): { headers: Headers; reversals: Reversal[] } {
  const reversals: Reversal[] = swaps.map((s) => ({ needle: s.value, replacement: s.placeholder }));
  const swapText = (text: string) => swaps.reduce((acc, s) => acc.split(s.placeholder).join(s.value), text);
  const out: Headers = {};
  for (const [name, raw] of Object.entries(headers)) {
    if (raw === undefined) continue;
    const one = (value: string) => {
      const match = name === 'authorization' ? basic.exec(value) : null;
      if (match) {
        const decoded = Buffer.from(match[2]!, 'base64').toString('latin1');
        const swapped = swapText(decoded);
        if (swapped !== decoded) {
          const encoded = Buffer.from(swapped, 'latin1').toString('base64');
          reversals.push({ needle: encoded, replacement: match[2]! });
          return `${match[1]}${encoded}`;
        }
      }
      return swapText(value);
    };
    out[name] = Array.isArray(raw) ? raw.map(one) : one(raw);
  }
  return { headers: out, reversals };
}

/** A request body with the placeholders replaced (bytes outside them are kept exactly). */
export function swapBody(body: Buffer, swaps: readonly Swap[]): Buffer {
  let text = body.toString('latin1');
  let changed = false;
  for (const s of swaps) {
    const needle = Buffer.from(s.placeholder).toString('latin1');
    if (!text.includes(needle)) continue;
    text = text.split(needle).join(Buffer.from(s.value, 'utf8').toString('latin1'));
    changed = true;
  }
  return changed ? Buffer.from(text, 'latin1') : body;
}
