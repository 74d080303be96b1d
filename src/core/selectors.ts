import { badRequest } from '../lib/errors.js';

/** Parses "key=value,key2=value2" label selectors (list queries of credentials and leases). */
export function parseSelectors(text: string | undefined): Array<readonly [string, string]> {
  return (text ?? '')
    .split(',')
    .filter(Boolean)
    .map((pair) => {
      const [key, ...rest] = pair.split('=');
      if (!key || rest.length === 0) throw badRequest(`label selector "${pair}" must look like key=value`);
      return [key.trim(), rest.join('=').trim()] as const;
    });
}
