/** Shell-style globs over names: "*" matches any run of characters, "?" one character. */
export function globMatch(pattern: string, name: string): boolean {
  const cached = cache.get(pattern);
  const regex = cached ?? compile(pattern);
  if (!cached) {
    if (cache.size > 1000) cache.clear();
    cache.set(pattern, regex);
  }
  return regex.test(name);
}

const cache = new Map<string, RegExp>();

function compile(pattern: string): RegExp {
  const body = pattern
    .split('')
    .map((ch) => (ch === '*' ? '.*' : ch === '?' ? '.' : ch.replace(/[.+^${}()|[\]\\/-]/g, '\\$&')))
    .join('');
  return new RegExp(`^${body}$`);
}
