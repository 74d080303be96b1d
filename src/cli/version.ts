import { readFileSync } from 'node:fs';

/**
 * The version of the package this CLI was installed with: `../../package.json` is the CLI
 * package's manifest from its dist/cli, and the repository's from src/cli or the image's dist/cli.
 */
export function cliVersion(): string {
  const manifest = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
  return (JSON.parse(manifest) as { version: string }).version;
}
