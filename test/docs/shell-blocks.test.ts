/**
 * Every shell command of the docs either runs in CI (`sh runnable`, see runnable.test.ts) or
 * says why it cannot (`sh docker`, `sh claude`, ...: nonRunnableKinds), so no new command
 * reaches the docs untested by accident.
 */
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../support/vault-dev.js';
import { collectShellBlocks, nonRunnableKinds, shellBlocks, unmarkedShellBlocks } from './runnable-blocks.js';

describe('shell blocks of the docs', () => {
  it('are runnable or marked with a reason kind', () => {
    const unmarked = unmarkedShellBlocks(collectShellBlocks(repoRoot));
    expect(
      unmarked,
      `mark each as \`sh runnable\` (CI runs it) or \`sh <kind>\`, kind one of: ${Object.entries(
        nonRunnableKinds,
      )
        .map(([kind, why]) => `${kind} (${why})`)
        .join('; ')}`,
    ).toEqual([]);
  });

  it('the check finds unmarked sh, bash and console blocks, indented ones too, and nothing else', () => {
    const text = [
      '```sh',
      'a',
      '```',
      '```bash',
      'b',
      '```',
      '```sh runnable',
      'c',
      '```',
      '  ```sh docker',
      '  docker build .',
      '  ```',
      '```sh clusters',
      'd',
      '```',
      '```yaml',
      'e: 1',
      '```',
      '````md',
      '```sh',
      'inside another block: not a block of its own',
      '```',
      '````',
      '```console',
      '$ f',
      '```',
    ].join('\n');
    const blocks = shellBlocks('x.md', text);
    expect(blocks.map((b) => b.line)).toEqual([1, 4, 7, 10, 13, 24]);
    expect(unmarkedShellBlocks(blocks)).toEqual([
      'x.md:1: ```sh',
      'x.md:4: ```bash',
      'x.md:13: ```sh clusters',
      'x.md:24: ```console',
    ]);
  });
});
