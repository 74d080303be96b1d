import { createHash } from 'node:crypto';
import { badRequest } from '../lib/errors.js';

/**
 * A list's continuation token: opaque to clients, the key to resume after, relative to the
 * walk's prefix (so it cannot leave the walk), and bound to that walk: the tenant, and the
 * index and name it follows. A token of another list or tenant is refused, not silently
 * applied to this one.
 */
export function encodeContinue(walk: string, after: string): string {
  return Buffer.from(JSON.stringify({ v: 1, w: walkId(walk), after })).toString('base64url');
}

/** The key to resume after (relative to `walk`), from a token `encodeContinue` gave for it. */
export function decodeContinue(walk: string, token: string): string {
  let parsed: { v?: unknown; w?: unknown; after?: unknown } | undefined;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    // reported below
  }
  if (parsed?.v === 1 && typeof parsed.after === 'string' && parsed.after !== '') {
    if (parsed.w === walkId(walk)) return parsed.after;
    throw badRequest(
      'continue belongs to another list (other filters, or another tenant); start the list again without it',
      { field: 'continue' },
    );
  }
  throw badRequest('continue is not a token this server issued; start the list again without it', {
    field: 'continue',
  });
}

const walkId = (walk: string) => createHash('sha256').update(walk).digest('base64url').slice(0, 12);

/** Keys one list request may read before it answers with what it found and a token. */
export const LIST_SCAN_BUDGET = 10_000;
