/**
 * Shell-style globs over names: "*" matches any run of characters, "?" one character.
 * Matched greedily with backtracking to the last star only, so the time is linear in
 * pattern × name (no regular expression, no catastrophic backtracking).
 */
export function globMatch(pattern: string, name: string): boolean {
  let p = 0;
  let n = 0;
  let star = -1;
  let resume = 0;
  while (n < name.length) {
    const ch = pattern[p];
    if (ch === '?' || (ch !== undefined && ch !== '*' && ch === name[n])) {
      p += 1;
      n += 1;
    } else if (ch === '*') {
      star = p;
      resume = n;
      p += 1;
    } else if (star >= 0) {
      p = star + 1;
      resume += 1;
      n = resume;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p += 1;
  return p === pattern.length;
}
