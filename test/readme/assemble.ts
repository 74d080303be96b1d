/**
 * README.md is assembled from the sections in docs/readme/, each kept beside the work it
 * documents; `npm run readme` writes it and a test fails when it is stale.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const sectionsDir = join(root, 'docs/readme');

/** Reading order; sections not listed follow in name order. */
const order = [
  '00-intro.md',
  'sdk.md',
  'mcp.md',
  'cli.md',
  '10-concepts.md',
  'dynamic.md',
  '20-api.md',
  '30-server.md',
  'ui.md',
  'operator.md',
  'injection.md',
  'helm.md',
  'docker.md',
  '40-security.md',
  'crypto.md',
  'store.md',
  'performance.md',
  'control-plane.md',
  '90-development.md',
];

export async function assembleReadme(): Promise<string> {
  const files = (await readdir(sectionsDir)).filter((name) => name.endsWith('.md'));
  const ordered = [
    ...order.filter((name) => files.includes(name)),
    ...files.filter((name) => !order.includes(name)).sort(),
  ];
  const parts = await Promise.all(
    ordered.map(async (name) => (await readFile(join(sectionsDir, name), 'utf8')).trim()),
  );
  return `${parts.join('\n\n')}\n\n<!-- Generated from docs/readme/*.md by \`npm run readme\`; edit those files. -->\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await writeFile(join(root, 'README.md'), await assembleReadme());
}
