/**
 * The token from what was pasted: `vault dev` prints `export VAULT_TOKEN=vlt_…` among other
 * export lines, and the line, quoted or not, or all of them (a text field drops the line
 * breaks) is what people copy.
 */
export function pastedToken(text: string): string {
  // Up to a space, the end, or the "export" of a next line that lost its line break.
  const exported = /VAULT_TOKEN=['"]?([^\s'"]+?)['"]?(?:export(?=\s+VAULT_)|(?=\s|$))/.exec(text)?.[1];
  return exported ?? text.trim();
}
