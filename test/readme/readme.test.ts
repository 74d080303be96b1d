/**
 * The README is a page or two that points into the documentation site: it starts with the two
 * commands of a fresh machine, and every link in it (and in CONTRIBUTING.md) reaches a page
 * and an anchor that exist. `npm run readme` runs the same link check.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkLinks, linksOf } from '../../scripts/docs/check-readme.js';

const readme = () => readFile(new URL('../../README.md', import.meta.url), 'utf8');

describe('README.md', () => {
  it('starts with the two commands of a fresh machine, and CI runs the same test command', async () => {
    const firstBlock = /```sh[^\n]*\n([\s\S]*?)```/.exec(await readme())![1]!;
    expect(firstBlock).toContain('npm ci && npm run dev');
    expect(firstBlock).toContain('npm ci && npm test');
    const ci = await readFile(new URL('../../.ci/run', import.meta.url), 'utf8');
    expect(ci).toMatch(/^npm test$/m);
  });

  it('is short: a page or two, with the details on the site', async () => {
    const text = await readme();
    expect(Buffer.byteLength(text)).toBeLessThan(12 * 1024);
    expect(text.split('\n').length).toBeLessThan(150);
  });

  it('links to the site page of every audience', async () => {
    const links = linksOf(await readme());
    for (const page of [
      'docs/guide/getting-started.md',
      'docs/guide/sdk.md',
      'docs/guide/cli.md',
      'docs/guide/claude-code.md',
      'docs/kubernetes/index.md',
      'docs/platform/helm.md',
      'docs/security/index.md',
      'docs/operations/index.md',
      'CONTRIBUTING.md',
    ]) {
      expect(links).toContain(page);
    }
  });

  it('has no broken link or anchor (npm run readme)', async () => {
    expect(await checkLinks()).toEqual([]);
  }, 60_000);

  it('the link check notices a missing page and a missing anchor', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'readme-links-'));
    try {
      const root = new URL('../../', import.meta.url).pathname;
      const file = join(dir, 'BROKEN.md');
      await writeFile(
        file,
        `[a](${relative(dir, join(root, 'docs/guide/nope.md'))}) [b](${relative(dir, join(root, 'docs/guide/cli.md'))}#no-such-heading) [c](${relative(dir, join(root, 'docs/guide/cli.md'))}#exit-codes)`,
      );
      const problems = await checkLinks([relative(root, file)]);
      expect(problems).toHaveLength(2);
      expect(problems[0]).toMatch(/nope\.md does not exist/);
      expect(problems[1]).toMatch(/no heading with the anchor #no-such-heading/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
