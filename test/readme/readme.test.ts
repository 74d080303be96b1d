import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { assembleReadme } from './assemble.js';

describe('README.md', () => {
  it('is assembled from docs/readme (run `npm run readme` after editing a section)', async () => {
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    expect(readme).toBe(await assembleReadme());
  });

  it('starts with the two commands of a fresh machine, and CI runs the same test command', async () => {
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    const firstBlock = /```sh\n([\s\S]*?)```/.exec(readme)![1]!;
    expect(firstBlock).toContain('npm ci && npm run dev');
    expect(firstBlock).toContain('npm ci && npm test');
    const ci = await readFile(new URL('../../.ci/run', import.meta.url), 'utf8');
    expect(ci).toMatch(/^npm test$/m);
  });
});
