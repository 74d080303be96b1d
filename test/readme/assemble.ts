/**
 * README.md is assembled from the sections in docs/readme/, each kept beside the work it
 * documents; `npm run readme` writes it and a test fails when it is stale.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const sectionsDir = join(root, 'docs');

/** Reading order (interim, while the documentation site takes over). */
const order = [
  'guide/introduction.md',
  'guide/sdk.md',
  'guide/claude-code.md',
  'guide/cli.md',
  'guide/concepts.md',
  'guide/http-api.md',
  'platform/server.md',
  'guide/web-console.md',
  'kubernetes/resources.md',
  'kubernetes/injection.md',
  'platform/helm.md',
  'platform/container-image.md',
  'security/index.md',
  'security/encryption.md',
  'platform/storage.md',
  'development/benchmarks.md',
  'development/control-plane.md',
  'development/index.md',
];

export async function assembleReadme(): Promise<string> {
  const ordered = order;
  const parts = await Promise.all(
    ordered.map(async (name) => (await readFile(join(sectionsDir, name), 'utf8')).trim()),
  );
  return `${parts.join('\n\n')}\n\n<!-- Generated from docs/readme/*.md by \`npm run readme\`; edit those files. -->\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await writeFile(join(root, 'README.md'), await assembleReadme());
}
