/**
 * Writes the generated reference pages of the documentation site from the sources of truth:
 *
 *   npm run docs:reference            write docs/reference/*.md and docs/public/openapi.json
 *   npm run docs:reference -- --check  write nothing; exit 1 naming every stale file
 *
 * test/docs/reference.test.ts fails when a page is stale.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliPage } from './pages/cli.js';
import { crdPage } from './pages/crds.js';
import { helmValuesPage } from './pages/helm-values.js';
import { httpApiPage, openApiJson } from './pages/http-api.js';
import { mcpToolsPage } from './pages/mcp-tools.js';
import { metricsPage } from './pages/metrics.js';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string })
  .version;

/**
 * Each generated file, relative to the repository, and its expected content. The pages are
 * committed (a test keeps them current); the OpenAPI copy is only written for the build.
 */
export async function renderReference(): Promise<
  Array<{ file: string; content: string; committed?: false }>
> {
  return [
    { file: 'docs/reference/http-api.md', content: httpApiPage(version) },
    { file: 'docs/public/openapi.json', content: openApiJson(version), committed: false },
    { file: 'docs/reference/cli.md', content: await cliPage() },
    { file: 'docs/reference/mcp-tools.md', content: await mcpToolsPage() },
    { file: 'docs/reference/crds.md', content: crdPage() },
    { file: 'docs/reference/helm-values.md', content: helmValuesPage() },
    { file: 'docs/reference/metrics.md', content: metricsPage() },
  ];
}

/** The files whose content on disk differs from what the sources produce. */
export async function staleReference(): Promise<string[]> {
  const stale: string[] = [];
  for (const { file, content, committed } of await renderReference()) {
    if (committed === false) continue;
    let current = '';
    try {
      current = readFileSync(join(repoRoot, file), 'utf8');
    } catch {}
    if (current !== content) stale.push(file);
  }
  return stale;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv.includes('--check')) {
    const stale = await staleReference();
    for (const file of stale) process.stderr.write(`${file} is out of date; run: npm run docs:reference\n`);
    process.exitCode = stale.length ? 1 : 0;
  } else {
    for (const { file, content } of await renderReference()) {
      const path = join(repoRoot, file);
      if (existsSync(path) && readFileSync(path, 'utf8') === content) continue;
      // Written aside and renamed: a test reading the pages meanwhile never sees half a file.
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(`${path}.${process.pid}.tmp`, content);
      renameSync(`${path}.${process.pid}.tmp`, path);
      process.stderr.write(`wrote ${relative(process.cwd(), path)}\n`);
    }
  }
  // The imported server and operator modules hold timers (metrics, caches); nothing else is pending.
  process.exit();
}
