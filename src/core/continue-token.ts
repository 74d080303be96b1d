import { badRequest } from '../lib/errors.js';

/**
 * A list's continuation token: opaque to clients, the key to resume after (relative to the
 * walk's prefix, so it cannot leave the walk).
 */
export const encodeContinue = (after: string) =>
  Buffer.from(JSON.stringify({ v: 1, after })).toString('base64url');

export function decodeContinue(token: string): string {
  try {
    const parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as {
      v?: unknown;
      after?: unknown;
    };
    if (parsed.v === 1 && typeof parsed.after === 'string' && parsed.after !== '') return parsed.after;
  } catch {
    // reported below
  }
  throw badRequest('continue is not a token this server issued; start the list again without it', {
    field: 'continue',
  });
}

/** Keys one list request may read before it answers with what it found and a token. */
export const LIST_SCAN_BUDGET = 10_000;
