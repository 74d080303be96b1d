/**
 * Removes values from what comes back: an upstream that echoes a request (an Authorization
 * header in a debug response, a value in an error message) must not hand the value to the
 * agent. Streaming, so a large response is never held whole: only the last few bytes, which
 * could be the start of a value split across chunks, are kept back.
 */
import type { Reversal } from './placeholders.js';

export interface Stripper {
  push(chunk: Buffer): Buffer;
  end(): Buffer;
}

/** Works on bytes (latin1 keeps one char per byte), so UTF-8 split across chunks is safe. */
export function createStripper(reversals: readonly Reversal[]): Stripper {
  const pairs = reversals
    .filter((r) => r.needle.length > 0)
    .map((r) => ({
      needle: Buffer.from(r.needle, 'utf8').toString('latin1'),
      replacement: Buffer.from(r.replacement, 'utf8').toString('latin1'),
    }))
    // At one position the longer needle wins (a Basic header before the value inside it).
    .sort((a, b) => b.needle.length - a.needle.length);
  const keep = Math.max(0, ...pairs.map((p) => p.needle.length - 1));
  let carry = '';

  const replaceAll = (text: string, final: boolean): string => {
    let out = '';
    let at = 0;
    for (;;) {
      let best: { index: number; pair: (typeof pairs)[number] } | undefined;
      for (const pair of pairs) {
        const index = text.indexOf(pair.needle, at);
        if (index >= 0 && (!best || index < best.index)) best = { index, pair };
      }
      if (!best) break;
      out += text.slice(at, best.index) + best.pair.replacement;
      at = best.index + best.pair.needle.length;
    }
    const boundary = final ? text.length : Math.max(at, text.length - keep);
    out += text.slice(at, boundary);
    carry = text.slice(boundary);
    return out;
  };

  return {
    push(chunk) {
      if (pairs.length === 0) return chunk;
      return Buffer.from(replaceAll(carry + chunk.toString('latin1'), false), 'latin1');
    },
    end() {
      const rest = replaceAll(carry, true);
      carry = '';
      return Buffer.from(rest, 'latin1');
    },
  };
}

/** One header value, stripped. */
export function stripText(text: string, reversals: readonly Reversal[]): string {
  const stripper = createStripper(reversals);
  return Buffer.concat([stripper.push(Buffer.from(text, 'utf8')), stripper.end()]).toString('utf8');
}
