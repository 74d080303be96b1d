/**
 * Every `sh runnable` block of the docs (see runnable-blocks.ts and CONTRIBUTING.md), run as
 * written, in order, as a new user would, on a machine of their own with what they would have
 * (reader-machine.ts): the packages published to a local npm registry that `npm` and `npx` use (so
 * `npm i -g @ghoststack/vault-cli` and `npx @ghoststack/vault-mcp init` install what this checkout
 * builds), the repository's bin/ on PATH, a PostgreSQL, two etcds and a kube-apiserver. Each block
 * runs in bash with `-e -o pipefail`; shell variables and the working directory carry over to the
 * next block, as in one terminal. A failure names the file and line of the command that failed.
 * Every process the blocks started (a detached `vault dev`, a `vault server ... &`) is stopped at
 * the end. `VAULT_DOCS_VERBOSE=1` prints the blocks' output as it comes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../support/vault-dev.js';
import { Terminal } from './block-runner.js';
import { type ReaderMachine, readerMachine } from './reader-machine.js';
import { collectRunnableBlocks, runnableBlocks } from './runnable-blocks.js';

const blockTimeoutMs = 20 * 60_000; // `npm i -g` builds a native module; slow on a busy machine

describe('runnable-blocks', () => {
  it('finds sh runnable blocks, shown and hidden, with their line, and nothing else', () => {
    const text = [
      '# T',
      '```sh',
      'no',
      '```',
      '',
      '```sh runnable',
      'echo a',
      'echo b',
      '```',
      '  ```sh runnable',
      '  echo c',
      '  ```',
      '<!-- a comment -->',
      '<!-- sh runnable',
      'echo d > "$(mktemp)"',
      '-->',
      '```sh cluster',
      'kubectl get pods',
      '```',
    ].join('\n');
    expect(runnableBlocks('x.md', text)).toEqual([
      { file: 'x.md', line: 6, code: 'echo a\necho b\n' },
      { file: 'x.md', line: 10, code: 'echo c\n' },
      { file: 'x.md', line: 14, code: 'echo d > "$(mktemp)"\n' },
    ]);
    expect(() => runnableBlocks('y.md', '```sh runnable\necho')).toThrow(
      'y.md:1: a sh runnable block is never closed',
    );
    expect(() => runnableBlocks('z.md', 'a\n<!-- sh runnable\necho\n```')).toThrow(
      'z.md:2: a sh runnable block is never closed',
    );
  });

  it('reads sh cluster-runnable blocks and the yaml files to save of their pages, for that kind only', () => {
    const text = [
      '```yaml',
      '# save as app.yaml',
      'kind: Pod',
      '```',
      '```yaml',
      'kind: NotSaved',
      '```',
      '```sh runnable',
      'vault whoami',
      '```',
      '<!-- sh cluster-runnable',
      'kubectl create namespace my-app',
      '-->',
      '```sh cluster-runnable',
      'kubectl apply -f app.yaml',
      '```',
    ].join('\n');
    expect(runnableBlocks('x.md', text, 'cluster-runnable')).toEqual([
      {
        file: 'x.md',
        line: 1,
        code: "cat > 'app.yaml' <<'VAULT_DOCS_EOF'\n# save as app.yaml\nkind: Pod\nVAULT_DOCS_EOF\n",
        saves: 'app.yaml',
      },
      { file: 'x.md', line: 11, code: 'kubectl create namespace my-app\n' },
      { file: 'x.md', line: 14, code: 'kubectl apply -f app.yaml\n' },
    ]);
    expect(runnableBlocks('x.md', text).map((b) => b.line)).toEqual([1, 8]);
    // A page without blocks of the kind saves nothing for it.
    expect(runnableBlocks('y.md', text.split('```sh runnable')[0]!)).toEqual([]);
  });
});

describe('docs: sh runnable blocks, in order', () => {
  const blocks = collectRunnableBlocks(repoRoot);
  let reader: ReaderMachine | undefined;
  let terminal: Terminal | undefined;

  beforeAll(async () => {
    reader = await readerMachine();
  }, 1_800_000);

  afterAll(async () => {
    try {
      await terminal?.stop();
    } finally {
      await reader?.stop();
    }
  });

  it('the quick starts (Getting Started, CLI, SDK, Claude Code) are marked runnable', () => {
    const files = new Set(blocks.map((b) => b.file));
    for (const file of [
      'docs/guide/getting-started.md',
      'docs/guide/cli.md',
      'docs/guide/sdk.md',
      'docs/guide/claude-code.md',
    ]) {
      expect(files, `${file} has no sh runnable block`).toContain(file);
    }
  });

  it('every block runs as written', async () => {
    terminal = new Terminal({
      cwd: reader!.work,
      blockTimeoutMs,
      prefix: reader!.prefix,
      env: reader!.env,
      onOutput: process.env.VAULT_DOCS_VERBOSE ? (chunk) => process.stdout.write(chunk) : undefined,
    });
    // VAULT_DOCS_PAGES=docs/a.md,docs/b.md (for working on pages): Getting Started, then only those.
    const pages = process.env.VAULT_DOCS_PAGES?.split(',');
    const run = pages
      ? blocks.filter((b) => b.file === 'docs/guide/getting-started.md' || pages.includes(b.file))
      : blocks;
    for (const block of run) await terminal.run(block);
  }, 3_600_000);
});
