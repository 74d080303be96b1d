import { createHash } from 'node:crypto';
import { badRequest } from '../lib/errors.js';
import type { Fingerprints } from './fingerprints.js';

/**
 * A list's continuation tokens: opaque to clients. The key to resume after (relative to the
 * walk's prefix, so it cannot leave the walk) is sealed under the tenant's key, so a token
 * names nothing the caller may not see (the walk may stop at a record it may not list), and
 * bound to the walk: the tenant, the index, the name and the filters. A token of another
 * list or tenant is refused, not silently applied to this one.
 */
export function continueTokens(fingerprints: Pick<Fingerprints, 'seal' | 'open'>) {
  return {
    async encode(tenant: string, walk: string, after: string): Promise<string> {
      const sealed = await fingerprints.seal(tenant, walk, after);
      return `${walkId(tenant, walk)}.${sealed}`;
    },

    /** The key to resume after (relative to the walk), from a token `encode` gave for it. */
    async decode(tenant: string, walk: string, token: string): Promise<string> {
      const [id, sealed] = token.split('.', 2);
      if (id && sealed && id !== walkId(tenant, walk))
        throw badRequest(
          'continue belongs to another list (other filters, or another tenant); start the list again without it',
          { field: 'continue' },
        );
      const after = sealed ? await fingerprints.open(tenant, walk, sealed) : undefined;
      if (!after)
        throw badRequest('continue is not a token this server issued; start the list again without it', {
          field: 'continue',
        });
      return after;
    },
  };
}

/** Names the walk in the clear (for the error), from what the caller asked for: no secret. */
const walkId = (tenant: string, walk: string) =>
  createHash('sha256').update(`${tenant}\0${walk}`).digest('base64url').slice(0, 12);

/** Keys one list request may read before it answers with what it found and a token. */
export const LIST_SCAN_BUDGET = 10_000;
