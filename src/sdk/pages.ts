import type { Http, RequestOptions } from './http.js';
import { arr, obj, ResponseShapeError } from './parse.js';

/**
 * Every item of a list the server answers a page at a time (1,000 at most), following its
 * `continue` tokens to the end.
 */
export async function allPages<T>(
  http: Http,
  path: string,
  field: string,
  item: (value: unknown, path: string) => T,
  query: Record<string, string | undefined> = {},
  options: RequestOptions = {},
): Promise<T[]> {
  const all: T[] = [];
  let next: string | undefined;
  do {
    const page = await http.json(
      'get',
      path,
      (body) => {
        const o = obj(body, 'response');
        const token = o.continue;
        // A server (or a proxy's cache) answering the token it was sent would be followed forever.
        if (token !== undefined && token === next)
          throw new ResponseShapeError('response.continue', 'a token other than the one sent');
        return {
          items: arr(o, field, 'response', item),
          continue: typeof token === 'string' && token !== '' ? token : undefined,
        };
      },
      { ...options, query: { ...query, continue: next } },
    );
    all.push(...page.items);
    next = page.continue;
  } while (next);
  return all;
}
