/**
 * The documentation site builds from a clean state with one command (`npm run docs:build`:
 * reference pages, VitePress, which fails on a dead link, then the anchor check), every page
 * is reachable from the sidebar, the key pages exist, search works offline, and nothing is
 * loaded from another host.
 */
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sidebar } from '../../docs/.vitepress/sidebar.js';
import { checkSite } from '../../scripts/docs/check-links.js';

const repoRoot = new URL('../../', import.meta.url).pathname;
const docsDir = join(repoRoot, 'docs');

/** Every page source of the site, as a site path: guide/cli.md → /guide/cli, kubernetes/index.md → /kubernetes/. */
function sitePages(): string[] {
  return readdirSync(docsDir, { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.md') && !file.startsWith('.vitepress') && !file.endsWith('README.md'))
    .map((file) => `/${file.replace(/\.md$/, '').replace(/(^|\/)index$/, '$1')}`)
    .sort();
}

function sidebarLinks(items = sidebar): string[] {
  return items.flatMap((item) => [...(item.link ? [item.link] : []), ...sidebarLinks(item.items ?? [])]);
}

describe('the documentation sources', () => {
  it('put every page in the sidebar, once (a page no one can reach is lost content)', () => {
    const links = sidebarLinks();
    const pages = sitePages().filter((page) => page !== '/');
    // Links to a section (/platform/helm#upgrade) are checked by the anchor check of the build.
    const sectionLinks = links.filter((link) => link.includes('#'));
    expect(sectionLinks.every((link) => pages.includes(link.split('#')[0]!))).toBe(true);
    links.splice(0, links.length, ...links.filter((link) => !link.includes('#')));
    expect(pages.filter((page) => !links.includes(page))).toEqual([]);
    expect(links.filter((link) => !pages.includes(link))).toEqual([]);
    expect(new Set(links).size).toBe(links.length);
  });

  it('mark the commands of Getting Started that CI runs with the info string `sh runnable`', () => {
    const text = readFileSync(join(docsDir, 'guide/getting-started.md'), 'utf8');
    const infos = [...text.matchAll(/^```(.*)$/gm)].map((m) => m[1]).filter((info) => info !== '');
    const runnable = [...text.matchAll(/^```sh runnable\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
    expect(runnable.length).toBeGreaterThanOrEqual(5);
    expect(runnable.join('\n')).toContain('npx @ghoststack/vault-mcp init');
    expect(runnable.join('\n')).toContain('npm install @ghoststack/vault-sdk');
    // Exactly "sh runnable": the runner matches the info string as a whole.
    for (const info of infos) expect(['sh', 'sh runnable', 'yaml', 'json', 'ts', 'js']).toContain(info);
  });
});

describe('npm run docs:build, from a clean state', { timeout: 600_000 }, () => {
  const work = mkdtempSync(join(tmpdir(), 'docs-site-'));
  const outDir = join(work, 'dist');
  let result: ReturnType<typeof spawnSync>;

  beforeAll(() => {
    rmSync(join(docsDir, 'public/openapi.json'), { force: true });
    result = spawnSync('npm', ['run', '--silent', 'docs:build'], {
      cwd: repoRoot,
      env: { ...process.env, DOCS_OUT_DIR: outDir, DOCS_CACHE_DIR: join(work, 'cache') },
      encoding: 'utf8',
      timeout: 540_000,
    });
  }, 600_000);

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('succeeds with one command, links and anchors checked', () => {
    expect(result.status, `${result.stdout}\n${result.stderr}`).toBe(0);
    expect(result.stderr).toContain('links and anchors: all good');
  });

  it('renders the key pages of every audience, and the reference pages', () => {
    for (const page of [
      'index.html',
      'guide/getting-started.html',
      'guide/claude-code.html',
      'guide/cli.html',
      'guide/sdk.html',
      'kubernetes/index.html',
      'platform/helm.html',
      'platform/backup-restore.html',
      'security/index.html',
      'operations/index.html',
      'operations/runbooks.html',
      'reference/http-api.html',
      'reference/cli.html',
      'reference/crds.html',
      'reference/helm-values.html',
      'reference/metrics.html',
      'development/index.html',
      'openapi.json',
    ]) {
      expect(existsSync(join(outDir, page)), page).toBe(true);
    }
    const start = readFileSync(join(outDir, 'guide/getting-started.html'), 'utf8').replace(/<[^>]+>/g, '');
    expect(start.includes('npx @ghoststack/vault-mcp init --policy claude-code'), 'the seed command').toBe(
      true,
    );
    for (const runbook of ['a-credential-leaked', 'etcd-is-down', 'the-webhook-is-down']) {
      expect(readFileSync(join(outDir, 'operations/runbooks.html'), 'utf8')).toContain(`id="${runbook}"`);
    }
  });

  it('builds a local search index (no search service)', () => {
    const chunks = readdirSync(join(outDir, 'assets/chunks'));
    const index = chunks.find((file) => file.startsWith('@localSearchIndex'));
    expect(index).toBeDefined();
    expect(readFileSync(join(outDir, 'assets/chunks', index!), 'utf8')).toContain('Getting Started');
  });

  it('the anchor check finds a broken anchor, a missing page and a third-party script', () => {
    const fake = join(work, 'fake');
    mkdirSync(join(fake, 'guide'), { recursive: true });
    writeFileSync(join(fake, 'guide/a.html'), '<h2 id="here">x</h2><a href="/guide/a#here">ok</a>');
    writeFileSync(
      join(fake, 'index.html'),
      '<script src="https://cdn.example/x.js"></script><a href="/guide/a#gone">1</a><a href="/nope">2</a><a href="https://example.com/">3</a>',
    );
    expect(checkSite(fake)).toEqual([
      'index.html: <script> loads https://cdn.example/x.js from another host',
      'index.html: link to /guide/a#gone: guide/a.html has no anchor #gone',
      'index.html: link to /nope: no such page',
    ]);
  });
});
