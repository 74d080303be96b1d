import { describe, expect, it } from 'vitest';
import { placeholdersIn, swapHeaders } from './placeholders.js';
import { createStripper } from './strip.js';

describe('createStripper', () => {
  it('replaces a value split across every possible chunk boundary', () => {
    const text = 'echo: sk_live_abcdef and again sk_live_abcdef.';
    for (let cut = 0; cut <= text.length; cut++) {
      for (let cut2 = cut; cut2 <= text.length; cut2 += 3) {
        const stripper = createStripper([{ needle: 'sk_live_abcdef', replacement: 'vault-ph-x' }]);
        const out = Buffer.concat([
          stripper.push(Buffer.from(text.slice(0, cut))),
          stripper.push(Buffer.from(text.slice(cut, cut2))),
          stripper.push(Buffer.from(text.slice(cut2))),
          stripper.end(),
        ]).toString();
        expect(out).toBe('echo: vault-ph-x and again vault-ph-x.');
      }
    }
  });
});

describe('placeholders in headers', () => {
  it('finds and swaps a placeholder inside Basic authorization, and reverses the encoded header', () => {
    const ph = 'vault-ph-abc';
    const header = `Basic ${Buffer.from(`user:${ph}`).toString('base64')}`;
    expect(placeholdersIn([ph], { headers: { authorization: header } })).toEqual(new Set([ph]));
    const { headers, reversals } = swapHeaders({ authorization: header }, [
      { placeholder: ph, value: 's3cret' },
    ]);
    const swapped = Buffer.from(String(headers.authorization).slice(6), 'base64').toString();
    expect(swapped).toBe('user:s3cret');
    expect(reversals.map((r) => r.needle)).toContain(String(headers.authorization).slice(6));
  });
});
